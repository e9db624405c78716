-- vdb's Chroma backend under the load of ../shared/reference/bench/bench_chroma.mjs:
-- insert 100,000 x 128 clustered vectors (base64, split at the server's
-- batch limit), then 1,000 top-10 queries at each concurrency.
--   lua5.4 bench/vdb_chroma_lua.lua URL DATA_DIR SERVER_PID [CONC=1,8,64 | none]
-- KEEP=1: reuse the collection when it holds the data (queries only), and
-- leave it on the server.
-- Prints "key value" lines: client CPU from os.clock (every thread of this
-- process), server CPU from /proc.
package.cpath = "./?.so;" .. package.cpath
local async = require "async"
local vdb = require "vdb"
local await = async.await

local url, dir, spid = arg[1], arg[2], tonumber(arg[3])
local conc = {}
for c in (arg[4] or "1,8,64"):gmatch("%d+") do conc[#conc + 1] = tonumber(c) end   -- "none": insert only
local DIM, K, NQ = 128, 10, 1000

local function read(name)
  local f = assert(io.open(dir .. "/" .. name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function server_cpu()
  local f = assert(io.open("/proc/" .. spid .. "/stat"))
  local s = f:read("a")
  f:close()
  local fields = {}
  for x in s:sub(s:find(")", 1, true) + 2):gmatch("%S+") do fields[#fields + 1] = x end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

local data, qdata = read("data_clustered_100k_128.f32"), read("queries_clustered_1k_128.f32")
local gt = read("gt_clustered_1k_100.i32")
local N = #data // (4 * DIM)
local ids, vecs, queries = {}, {}, {}
for i = 1, N do ids[i] = "id" .. (i - 1); vecs[i] = data:sub((i - 1) * DIM * 4 + 1, i * DIM * 4) end
for i = 1, NQ do queries[i] = qdata:sub((i - 1) * DIM * 4 + 1, i * DIM * 4) end
data = nil

local function measure(f)
  local c0, s0, t0 = os.clock(), server_cpu(), async.time()
  f()
  local wall = async.time() - t0
  return wall, os.clock() - c0, server_cpu() - s0
end

async.run(function()
  local db <close> = await(vdb.connect(url, { max_connections = 64 }))
  local keep = os.getenv("KEEP")         -- KEEP=1: reuse the collection, queries only
  if not keep then pcall(await, db:drop("bench_lua")) end
  local col = await(db:collection("bench_lua", { metric = "l2" }))
  if not keep or await(col:count()) ~= N then
    local wall, cli, srv = measure(function() await(col:batch_insert { ids = ids, vectors = vecs }) end)
    print("insert_vps", N / wall)
    print("insert_client_cpu_s", cli)
    print("insert_server_cpu_s", srv)
    assert(await(col:count()) == N)
  end
  local opts = { top_k = K, include = { "distances" } }
  if #conc > 0 then for i = 1, 100 do await(col:search(queries[i], opts)) end end   -- warm-up
  for _, c in ipairs(conc) do
    local res, next_q = {}, 1
    local w, cl, sv = measure(function()
      local workers = {}
      for j = 1, c do
        workers[j] = async.spawn(function()
          while next_q <= NQ do
            local i = next_q
            next_q = next_q + 1
            res[i] = await(col:search(queries[i], opts))
          end
        end)
      end
      await(async.gather(workers))
    end)
    local hit = 0
    for i = 1, NQ do
      local truth = {}
      for j = 0, K - 1 do truth["id" .. string.unpack("<i4", gt, ((i - 1) * 100 + j) * 4 + 1)] = true end
      for _, h in ipairs(res[i]) do if truth[h.id] then hit = hit + 1 end end
    end
    print(("query_c%d_qps"):format(c), NQ / w)
    print(("query_c%d_client_ms"):format(c), 1000 * cl / NQ)
    print(("query_c%d_server_ms"):format(c), 1000 * sv / NQ)
    print(("query_c%d_recall"):format(c), hit / (NQ * K))
  end
  if not keep then await(db:drop("bench_lua")) end
end)
