-- Exact top-100 ground truth for the clustered set, by vdb's embedded store
-- (exact search): DATA_DIR/gt_clustered_1k_100.i32, 1,000 x 100 int32 rows.
--   lua5.4 bench/gt.lua DATA_DIR
package.cpath = "./?.so;" .. package.cpath
local async = require "async"
local vdb = require "vdb"
local await, dir, DIM = async.await, arg[1], 128
local function read(name) local f = assert(io.open(dir .. "/" .. name, "rb")) local s = f:read("a") f:close() return s end
async.run(function()
  local data, q = read("data_clustered_100k_128.f32"), read("queries_clustered_1k_128.f32")
  local db <close> = await(vdb.connect())
  local col = await(db:collection("gt"))
  local ids, vecs, qs = {}, {}, {}
  for i = 1, #data // (4 * DIM) do ids[i] = tostring(i - 1); vecs[i] = data:sub((i - 1) * DIM * 4 + 1, i * DIM * 4) end
  for i = 1, #q // (4 * DIM) do qs[i] = q:sub((i - 1) * DIM * 4 + 1, i * DIM * 4) end
  await(col:batch_insert { ids = ids, vectors = vecs })
  local out = {}
  for i, hits in ipairs(await(col:batch_search(qs, { top_k = 100, include = { "distances" } }))) do
    local row = {}
    for j, h in ipairs(hits) do row[j] = string.pack("<i4", tonumber(h.id)) end
    out[i] = table.concat(row)
  end
  local f = assert(io.open(dir .. "/gt_clustered_1k_100.i32", "wb"))
  f:write(table.concat(out))
  f:close()
end)
