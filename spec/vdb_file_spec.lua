-- API.md section 8, file:PATH: durable, restored on reopen, torn tails cut
local H = require "helper"
local async, await = H.async, H.await
local vdb = require "vdb"

local function tmpfile()
  local p = os.tmpname()
  os.remove(p)
  return p
end

local function size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

local function code_of(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  assert(vdb.Error:is(e), tostring(e))
  return e.code, e
end

describe("vdb file:", function()
  it("restores every acknowledged write on reopen: records, metadata, deletes, upserts, drops", function()
    local path = tmpfile()
    async.run(function()
      local db = await(vdb.connect("file:" .. path))
      local col = await(db:collection("docs", { metric = "cosine" }))
      await(col:insert("a", { 1, 0, 0 }, { genre = "news", year = 2021, hot = true }, "apple"))
      await(col:batch_insert { { id = "b", vector = { 0, 1, 0 } }, { id = "c", vector = { 0, 0, 1 }, document = "c doc" } })
      await(col:upsert { { id = "b", vector = { 0, 2, 0 }, metadata = { v = 2 } } })
      await(col:delete({ "c" }))
      local gone = await(db:collection("gone"))
      await(gone:insert("x", { 1 }))
      await(db:drop("gone"))
      await(db:collection("empty", { dim = 4, metric = "ip" }))
      await(db:disconnect())
    end)
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path))
      assert.same({ "docs", "empty" }, await(db:collections()))
      local col = await(db:collection("docs"))
      assert.equal("cosine", col.metric)
      assert.equal(2, await(col:count()))
      local a = await(col:get({ "a" }))[1]
      assert.same({ genre = "news", year = 2021, hot = true }, a.metadata)
      assert.equal("apple", a.document)
      local b = await(col:get({ "b" }))[1]
      assert.same({ v = 2 }, b.metadata)
      assert.same({ 0, 1, 0 }, b.vector)              -- cosine vectors are stored normalised
      assert.equal(0, #await(col:get({ "c" })))
      assert.equal("ip", (await(db:collection("empty"))).metric)
      assert.equal("b", await(col:search({ 0, 1, 0 }, 1))[1].id)
    end)
    os.remove(path)
  end)

  it("survives kill -9 right after each write's awaitable completes", function()
    local path = tmpfile()
    local p = assert(io.popen("exec 2>/dev/null; lua5.4 -", "w"))
    p:write(([[
      package.cpath = "./?.so;" .. package.cpath
      local async, vdb = require "async", require "vdb"
      local pid = io.open("/proc/self/stat"):read("n")
      local out = assert(io.open(%q, "w"))
      async.run(function()
        local db = async.await(vdb.connect("file:%s"))
        local col = async.await(db:collection("k"))
        local n = 0
        for i = 1, 300 do
          local batch = {}
          for j = 1, 10 do batch[j] = { id = ("r%%d_%%d"):format(i, j), vector = { i, j } } end
          async.await(col:batch_insert(batch))
          out:write(i, "\n"); out:flush()          -- acknowledged
          if i == 150 then os.execute("kill -9 " .. pid) end
        end
      end)
    ]]):format(path .. ".acks", path))
    p:close()
    local acked = 0
    for line in io.lines(path .. ".acks") do acked = math.max(acked, tonumber(line)) end
    assert.is_true(acked >= 150, "acked " .. acked)
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path))
      local col = await(db:collection("k"))
      local n = await(col:count())
      assert.is_true(n >= acked * 10, ("%d records for %d acknowledged batches"):format(n, acked))
      assert.equal(0, n % 10)                          -- no partial batch
      for i = 1, acked do assert.equal(1, #await(col:get({ ("r%d_10"):format(i) }))) end
    end)
    os.remove(path); os.remove(path .. ".acks")
  end)

  it("detects a torn tail and a corrupt record, reports them, truncates, and goes on", function()
    local path = tmpfile()
    async.run(function()
      local db = await(vdb.connect("file:" .. path))
      local col = await(db:collection("t"))
      for i = 1, 5 do await(col:insert("r" .. i, { i, i })) end
      await(db:disconnect())
    end)
    local good = size(path)
    -- a torn record: half of a header and payload
    local f = assert(io.open(path, "ab")); f:write("\40\0\0\0\1\2"); f:close()
    async.run(function()
      local db = await(vdb.connect("file:" .. path))
      assert.matches("truncated", db.recovered)
      local col = await(db:collection("t"))
      assert.equal(5, await(col:count()))
      await(db:disconnect())
    end)
    assert.equal(good, size(path))
    -- a flipped byte inside the last record: it is dropped, the rest kept
    f = assert(io.open(path, "r+b")); f:seek("set", good - 3); f:write("\255"); f:close()
    async.run(function()
      local db = await(vdb.connect("file:" .. path))
      assert.matches("corrupt", db.recovered)
      local col = await(db:collection("t"))
      assert.equal(4, await(col:count()))              -- never wrong data: the bad record is gone
      await(col:insert("r5", { 5, 5 }))                -- and writing goes on
      await(db:disconnect())
    end)
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path))
      assert.is_nil(db.recovered)
      assert.equal(5, await((await(db:collection("t"))):count()))
    end)
    os.remove(path)
  end)

  it("refuses a second connection to the same file, in this process or another", function()
    local path = tmpfile()
    async.run(function()
      local db = await(vdb.connect("file:" .. path))
      local code, e = code_of(await, vdb.connect("file:" .. path))
      assert.equal("unavailable", code)
      assert.matches("in use", e.message)
      local out = H.lua(([[
        local async, vdb = require "async", require "vdb"
        local ok, e = pcall(async.run, function() return async.await(vdb.connect("file:%s")) end)
        print(ok, e.code)
      ]]):format(path))
      assert.matches("false%s+unavailable", out)
      await(db:disconnect())
      await((await(vdb.connect("file:" .. path))):disconnect())   -- free again once closed
    end)
    os.remove(path)
  end)

  it("shares fsyncs among concurrent writers (group commit)", function()
    local path = tmpfile()
    local fsyncs
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path))
      local col = await(db:collection("g"))
      local before = db:stats().fsyncs
      local ins = {}
      for i = 1, 1000 do ins[i] = col:insert("r" .. i, { i }) end
      await(async.gather(ins))
      fsyncs = db:stats().fsyncs - before
      assert.equal(1000, await(col:count()))
    end)
    assert.is_true(fsyncs < 100, "fsyncs: " .. fsyncs)
    os.remove(path)
  end)

  it("compacts a log full of overwritten records when it closes", function()
    local path = tmpfile()
    async.run(function()
      local db = await(vdb.connect("file:" .. path))
      local col = await(db:collection("c"))
      local vec = {}
      for j = 1, 64 do vec[j] = j end
      for _ = 1, 40 do
        local batch = {}
        for i = 1, 100 do batch[i] = { id = "r" .. i, vector = vec } end
        await(col:upsert(batch))
      end
      await(db:disconnect())
    end)
    assert.is_true(size(path) < 100 * 64 * 4 * 3, "size " .. size(path))
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path))
      assert.equal(100, await((await(db:collection("c"))):count()))
    end)
    os.remove(path)
  end)

  it("rejects a bad write without logging it", function()
    local path = tmpfile()
    async.run(function()
      local db = await(vdb.connect("file:" .. path))
      local col = await(db:collection("r", { dim = 2 }))
      await(col:insert("a", { 1, 1 }))
      assert.equal("conflict", (code_of(await, col:batch_insert { { id = "b", vector = { 1, 2 } }, { id = "a", vector = { 1, 2 } } })))
      assert.equal("dimension_mismatch", (code_of(await, col:insert("c", { 1 }))))
      await(db:disconnect())
    end)
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path))
      local col = await(db:collection("r"))
      assert.equal(1, await(col:count()))
      assert.equal(0, #await(col:get({ "b" })))
    end)
    os.remove(path)
  end)
end)
