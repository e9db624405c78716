-- Tutorial 7.8 with the real client: a database connection is an async
-- context manager; <close> awaits the disconnect when the scope ends.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local vdb = require "vdb"
local await = async.await

print("\n=== 8. Async context manager (vdb) ===")

async.run(function()
  do
    print("[main] connecting...")
    local db <close> = await(vdb.connect(os.getenv("VDB_URL")))
    print("[main] connected")
    local col = await(db:collection("vectors", { dim = 4 }))
    await(col:insert("doc_1", { 0.1, 0.2, 0.3, 0.4 }, { kind = "demo" }, "SELECT * FROM vectors"))
    local hits = await(col:search({ 0.1, 0.2, 0.3, 0.4 }, 1))
    print("query result: " .. hits[1].id .. " " .. hits[1].document)
    print("[main] closing connection...")
  end                                   -- disconnect is awaited here
  print("[main] connection closed")
end)
