-- Tutorial 7.7: the async vector-database client, for real: the embedded
-- store by default, or a server when VDB_URL says so.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local vdb = require "vdb"
local await = async.await

print("\n=== 7. Async vector-database client ===")

local vector_db_demo = async(function()
  local db = await(vdb.connect(os.getenv("VDB_URL")))    -- nil: memory:
  print("database connected")
  if os.getenv("VDB_URL") then                          -- a server keeps data between runs
    pcall(await, db:drop("default"))
  end

  print("\nbatch insert of 100 vectors:")
  local vectors = {}
  for i = 0, 99 do
    vectors["vec_" .. i] = { math.random(), math.random(), math.random(), math.random() }
  end
  local start = async.time()
  local count = await(db:batch_insert(vectors))         -- one round trip
  print(("  inserted %d, took: %.3fs"):format(count, async.time() - start))

  print("\nbatch search of 10 queries:")
  local queries = {}
  for i = 1, 10 do queries[i] = { math.random(), math.random(), math.random(), math.random() } end
  start = async.time()
  local results = await(db:batch_search(queries, 5))
  print(("  finished %d queries, took: %.3fs"):format(#results, async.time() - start))
  local best = results[1][1]
  print(("  best match for query 1: %s (score %.3f)"):format(best.id, best.score))

  await(db:disconnect())
  print("database disconnected")
end)

async.run(vector_db_demo)
