-- fuzz/make_corpus.lua DIR: seed files for the loader's fuzz target, written by
-- vdb itself: an empty store, a log with every kind of record, a compacted
-- snapshot (run from the repository's top, after make)
package.cpath = "./?.so;" .. package.cpath
local async, vdb = require "async", require "vdb"
local await = async.await
local dir = assert(arg[1], "usage: make_corpus.lua DIR")

local function raw(db)                          -- leave the log as written (no compaction)
  db.closed = true
  for _, c in pairs(db.cols) do c.h = nil end
  db.log = nil
  collectgarbage(); collectgarbage()
end

async.run(function()
  local p = dir .. "/empty.vdb"
  os.remove(p)
  raw(await(vdb.connect("file:" .. p)))

  p = dir .. "/log.vdb"
  os.remove(p)
  local db = await(vdb.connect("file:" .. p))
  local col = await(db:collection("docs", { metric = "cosine" }))
  await(col:insert("a", { 1, 2, 3 }, { genre = "news", year = 2021, hot = true }, "apple"))
  await(col:batch_insert { ids = { "b", "c\0x" }, vectors = { { 0, 1, 0 }, { 0, 0, 1 } },
                           metadatas = { { v = 2 }, nil }, documents = { nil, "c doc" } })
  await(col:upsert { { id = "b", vector = { 0, 2, 0 }, metadata = { v = 3.5 } } })
  await(col:delete({ "a" }))
  local gone = await(db:collection("gone"))
  await(gone:insert("g", { 1 }))
  await(db:drop("gone"))
  raw(db)

  p = dir .. "/snapshot.vdb"
  os.remove(p)
  db = await(vdb.connect("file:" .. p))
  col = await(db:collection("s", { dim = 2 }))
  for _ = 1, 30 do                              -- dead space enough for disconnect to compact
    local items = {}
    for i = 1, 200 do items[i] = { id = "s" .. i, vector = { i, -i }, metadata = { i = i } } end
    await(col:upsert(items))
  end
  await(db:disconnect())
end)
for _, name in ipairs { "empty.vdb", "log.vdb", "snapshot.vdb" } do
  local f = assert(io.open(dir .. "/" .. name, "rb"))
  print(name, #f:read("a"))
  f:close()
end
