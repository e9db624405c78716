-- For the wrk anchor: the query bodies of bench/vdb_chroma_lua.lua, one per
-- line, and the query path of collection NAME.
--   lua5.4 bench/wrk_bodies.lua URL DATA_DIR NAME OUT_FILE   (prints the path)
package.cpath = "./?.so;" .. package.cpath
local async = require "async"
local url, dir, name, out = arg[1], arg[2], arg[3], arg[4]
local f = assert(io.open(dir .. "/queries_clustered_1k_128.f32", "rb"))
local q = f:read("a")
f:close()
local o = assert(io.open(out, "w"))
for i = 0, #q // 512 - 1 do
  local v = { string.unpack("<" .. string.rep("f", 128), q, i * 512 + 1) }
  v[129] = nil
  o:write(async.json.encode { query_embeddings = { v }, n_results = 10, include = { "distances" } }, "\n")
end
o:close()
async.run(function()
  local base = url .. "/api/v2/tenants/default_tenant/databases/default_database/collections/"
  local c = async.await(async.http.get(base .. name)):json()
  print(base .. c.id .. "/query")
end)
