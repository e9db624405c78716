-- vdb on the embedded store, on the seeded clustered set: 100,000 x 128
-- float32 (gen_data.mjs), top-10, L2.  Prints "name value" lines.
package.cpath = "./?.so;" .. package.cpath
local async, vdb = require "async", require "vdb"
local await = async.await
local dir = arg[1] or ".cache/vdb-data"
local D, ROW = 128, 128 * 4

local function rows(path, limit)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  local t = {}
  for i = 1, math.min(limit or math.huge, #data // ROW) do t[i] = data:sub((i - 1) * ROW + 1, i * ROW) end
  return t
end

local data = rows(dir .. "/data_clustered_100k_128.f32")
local queries = rows(dir .. "/queries_clustered_1k_128.f32")
local ids = {}
for i = 1, #data do ids[i] = "id" .. (i - 1) end
local N = #data

local function report(name, v) print(name, v) end

async.run(function()
  -- bulk insert into memory:
  local db = await(vdb.connect("memory:"))
  local col = await(db:collection("bench"))
  local t0 = async.time()
  await(col:batch_insert { ids = ids, vectors = data })
  report("insert_memory_vps", ("%.0f"):format(N / (async.time() - t0)))

  -- one query at a time
  local nq1 = 300
  t0 = async.time()
  for i = 1, nq1 do await(col:search(queries[i], 10)) end
  report("single_qps", ("%.1f"):format(nq1 / (async.time() - t0)))

  -- a batch of 1,000
  t0 = async.time()
  local res = await(col:batch_search(queries, 10))
  report("batch_qps", ("%.1f"):format(#queries / (async.time() - t0)))
  assert(#res == #queries and #res[1] == 10)
  await(db:disconnect())

  -- bulk insert into file:, beside dd writing as many bytes with one
  -- fdatasync at the end (the disk's sequential write speed), interleaved,
  -- medians of 3, each into a new file
  local function median(t) table.sort(t) return t[(#t + 1) // 2] end
  local function dd(path, mib)
    local p = assert(io.popen(("dd if=/dev/zero of=%s bs=1M count=%d conv=fdatasync 2>&1"):format(path, mib)))
    local out = p:read("a")
    p:close()
    os.remove(path)
    return assert(tonumber(out:match("copied, ([%d.]+) s")), out)
  end
  local file_s, dd_s = {}, {}
  local mib = N * ROW // (1 << 20)
  for rep = 1, 3 do
    local path = os.tmpname()
    os.remove(path)
    dd_s[rep] = dd(path, mib) * (N * ROW) / (mib << 20)
    local db = await(vdb.connect("file:" .. path))
    local fcol = await(db:collection("bench"))
    t0 = async.time()
    await(fcol:batch_insert { ids = ids, vectors = data })
    file_s[rep] = async.time() - t0
    await(db:disconnect())
    os.remove(path)
  end
  local dt = median(file_s)
  report("insert_file_vps", ("%.0f"):format(N / dt))
  report("insert_file_mbps", ("%.1f"):format(N * ROW / dt / 1e6))
  report("disk_write_mbps", ("%.1f"):format(N * ROW / median(dd_s) / 1e6))

  -- 1,000 concurrent single-record inserts: fsyncs shared
  local path = os.tmpname()
  os.remove(path)
  local fdb = await(vdb.connect("file:" .. path))
  local fcol = await(fdb:collection("bench"))
  local before = fdb:stats().fsyncs
  local ins = {}
  for i = 1, 1000 do ins[i] = fcol:insert("extra" .. i, data[i]) end
  t0 = async.time()
  await(async.gather(ins))
  report("concurrent_inserts", 1000)
  report("concurrent_insert_fsyncs", fdb:stats().fsyncs - before)
  report("concurrent_insert_seconds", ("%.3f"):format(async.time() - t0))
  await(fdb:disconnect())
  os.remove(path)
end)
