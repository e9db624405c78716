-- docs/reference.md "vdb" (the embedded store): a record keeps its row while
-- it lives, so that an index can name it (src/vdb/index/index.h); deletes
-- leave tombstones that a compaction of the rows takes away.
local H = require "helper"
local async, await = H.async, H.await
local vdb = require "vdb"

local function ids_of(recs)
  local out = {}
  for i, r in ipairs(recs) do out[i] = r.id end
  return out
end

describe("vdb rows", function()
  it("a delete moves no other record: get keeps the order records came in", function()
    async.run(function()
      local db <close> = await(vdb.connect("memory:"))
      local col = await(db:collection("rows", { dim = 2 }))
      await(col:batch_insert { ids = { "a", "b", "c", "d", "e" }, vectors = { { 1, 0 }, { 2, 0 }, { 3, 0 }, { 4, 0 }, { 5, 0 } } })
      assert.equal(2, await(col:delete { "b", "d" }))
      assert.same({ "a", "c", "e" }, ids_of(await(col:get {})))
      assert.equal(3, await(col:count()))
      await(col:insert("f", { 6, 0 }))                -- new records come after
      assert.same({ "a", "c", "e", "f" }, ids_of(await(col:get {})))
      assert.same({ "c", "a" }, ids_of(await(col:search({ 2.9, 0 }, 2))))
      assert.equal(0, await(col:delete { "zz" }))
    end)
  end)

  it("many deletes compact the rows: counts, searches, order and ids stay right, in memory and on reopen", function()
    local path = H.tmpfile()
    local n = 5000
    local function check(col, kept)
      assert.equal(#kept, await(col:count()))
      local got = ids_of(await(col:get {}))
      assert.same(kept, got)
      -- every kept record is found by its own vector, and no deleted one is
      for _, i in ipairs({ 1, 2, #kept // 2, #kept }) do
        local id = kept[i]
        local v = tonumber(id:match("%d+")) or 0.5
        local hit = await(col:search({ v, -v }, 1))[1]
        assert.equal(id, hit.id)
      end
      assert.same({}, await(col:get { "r2", "r4" }))
    end
    async.run(function()
      local db = await(vdb.connect("file:" .. path))
      local col = await(db:collection("rows", { dim = 2 }))
      local items = {}
      for i = 1, n do items[i] = { id = "r" .. i, vector = { i, -i } } end
      await(col:batch_insert(items))
      local gone, kept = {}, {}
      for i = 1, n do
        if i % 5 ~= 0 then gone[#gone + 1] = "r" .. i else kept[#kept + 1] = "r" .. i end
      end
      assert.equal(#gone, await(col:delete(gone)))   -- 4,000 of 5,000: the rows compact
      check(col, kept)
      await(col:insert("new", { 0.5, -0.5 }))
      kept[#kept + 1] = "new"
      assert.equal("new", await(col:search({ 0.5, -0.5 }, 1))[1].id)
      await(db:disconnect())
      local db2 <close> = await(vdb.connect("file:" .. path))
      check(await(db2:collection("rows")), kept)
    end)
    os.remove(path)
  end)

  it("deleting everything and inserting again starts from an empty store", function()
    async.run(function()
      local db <close> = await(vdb.connect("memory:"))
      local col = await(db:collection("again", { dim = 1 }))
      for round = 1, 3 do
        local ids, vecs = {}, {}
        for i = 1, 2000 do ids[i] = round .. ":" .. i; vecs[i] = { i } end
        await(col:batch_insert { ids = ids, vectors = vecs })
        assert.equal(2000, await(col:count()))
        assert.equal(2000, await(col:delete(ids)))
        assert.equal(0, await(col:count()))
        assert.same({}, await(col:search({ 1 }, 5)))
      end
    end)
  end)
end)
