-- Tutorial 7.9 with the real client: stream a collection's records with
-- scan, a few at a time, in a plain for loop that awaits.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local vdb = require "vdb"
local await = async.await

print("\n=== 9. Async iterator (vdb scan) ===")

async.run(function()
  local db <close> = await(vdb.connect(os.getenv("VDB_URL")))
  local col = await(db:collection("stream"))
  local batch = {}
  for i = 1, 3 do batch[i] = { id = ("%d"):format(i), vector = { math.random(), math.random(), math.random(), math.random() } } end
  await(col:batch_insert(batch))
  print("streaming vectors:")
  for rec in col:scan { batch_size = 2 } do    -- fetched two at a time
    print(("  received: %s"):format(rec.id))
  end
end)
