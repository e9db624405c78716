-- README "The file: format": a file that is not a store, a newer format, and
-- damage anywhere but an incomplete last record are refused (corrupt) and
-- left byte for byte as they were; opts.recover keeps every intact record.
local H = require "helper"
local async, await = H.async, H.await
local vdb = require "vdb"
local code_of = H.code_of

local tmpfile, slurp = H.tmpfile, H.slurp

local function spit(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- flip one bit of the byte at offset (0-based)
local function flip(path, offset, bit)
  local s = slurp(path)
  local b = s:byte(offset + 1) ~ (1 << (bit or 0))
  spit(path, s:sub(1, offset) .. string.char(b) .. s:sub(offset + 2))
end

local function refused(path, opts)
  return async.run(function()
    return select(2, code_of(await, vdb.connect("file:" .. path, opts)))
  end)
end

local function cleanup(path)
  for _, p in ipairs { path, path .. ".damaged", path .. ".damaged.2", path .. ".format0", path .. ".tmp" } do os.remove(p) end
end

-- n single-record inserts into collection "k" (ids "r1".."rn"); the log's
-- size after each, and the database left without compacting
local function write_log(path, n, dim)
  local ends = {}
  async.run(function()
    local db = await(vdb.connect("file:" .. path))
    local col = await(db:collection("k"))
    for i = 1, n do
      local v = {}
      for j = 1, dim or 2 do v[j] = i + j end
      await(col:insert("r" .. i, v, { i = i }))
      ends[i] = db:stats().bytes
    end
    H.abandon(db)
  end)
  return ends
end

describe("vdb file: refuses what it cannot read", function()
  it("a file that is not a vdb store is refused (corrupt) and left byte for byte as it was", function()
    local path = tmpfile()
    local text = ("notes: buy milk, call Ann.\n"):rep(1000)           -- 27 KB of text
    spit(path, text)
    local e = refused(path)
    assert.equal("corrupt", e.code)
    assert.matches("not a vdb store", e.message)
    assert.matches("nothing was changed", e.message)
    assert.equal(text, slurp(path))
    assert.equal(text, slurp(path), "recover does not touch it either")
    e = refused(path, { recover = true })
    assert.equal("corrupt", e.code)
    assert.equal(text, slurp(path))
    spit(path, "x")                                                  -- even one byte
    assert.equal("corrupt", refused(path).code)
    assert.equal("x", slurp(path))
    assert.is_nil(io.open(path .. ".tmp", "rb"))
    cleanup(path)
  end)

  it("a store in a newer format version (or with unknown feature bits) is refused, untouched", function()
    local path = tmpfile()
    write_log(path, 3)
    local s = slurp(path)
    for _, field in ipairs { 8, 12 } do                             -- version, feature bits
      local h = s:sub(1, field) .. string.pack("<I4", 2) .. s:sub(field + 5, 28)
      local crc = (function()                                        -- the header's checksum, redone
        local c = 0xffffffff
        for i = 1, 28 do
          c = c ~ h:byte(i)
          for _ = 1, 8 do c = (c >> 1) ~ (0xedb88320 & -(c & 1)) end
        end
        return ~c & 0xffffffff
      end)()
      local newer = h .. string.pack("<I4", crc) .. s:sub(33)
      spit(path, newer)
      local e = refused(path)
      assert.equal("corrupt", e.code)
      assert.matches("newer vdb", e.message)
      assert.equal(newer, slurp(path))
      assert.equal("corrupt", refused(path, { recover = true }).code)
      assert.equal(newer, slurp(path))
    end
    cleanup(path)
  end)

  it("a header cut as the file was made holds nothing and becomes an empty store", function()
    local path = tmpfile()
    spit(path, "\x89VDB\r\n")
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path))
      assert.same({}, await(db:collections()))
    end)
    assert.equal(32, #slurp(path))
    cleanup(path)
  end)

  it("opens a file written by the previous release (no header) with every record, and keeps the original", function()
    local path = tmpfile()
    local original = slurp("spec/vdb/fixtures/log_columns_v0.vdb")
    spit(path, original)
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path))
      assert.matches("rewritten", db.recovered.message)
      assert.same({ "docs", "plain" }, await(db:collections()))
      local docs = await(db:collection("docs"))
      assert.equal("cosine", docs.metric)
      assert.equal(3, await(docs:count()))
      local a = await(docs:get({ "a" }))[1]
      assert.same({ genre = "news", year = 2021, hot = true }, a.metadata)
      assert.equal("apple", a.document)
      assert.near(0.6, a.vector[1], 1e-6)
      assert.same({ v = 3 }, await(docs:get({ "b" }))[1].metadata)
      assert.equal("c doc", await(docs:get({ "c" }))[1].document)
      assert.equal(0, #await(docs:get({ "d" })))
      local plain = await(db:collection("plain"))
      assert.equal(50, await(plain:count()))
      assert.same({ 50, -50 }, await(plain:get({ "p50" }))[1].vector)
    end)
    assert.equal(original, slurp(path .. ".format0"))
    assert.equal("\x89VDB\r\n\x1a\n", slurp(path):sub(1, 8))
    cleanup(path)
  end)
end)

describe("vdb file: damage", function()
  it("a flipped byte a third of the way into a log: connect refuses, says where, changes nothing", function()
    local path = tmpfile()
    local ends = write_log(path, 4000)
    local at = ends[1334] - 2                                        -- inside record 1334's vector
    flip(path, at)
    local damaged = slurp(path)
    local e = refused(path)
    assert.equal("corrupt", e.code)
    assert.matches("record 1335 at offset " .. ends[1333], e.message)   -- record 1 is the collection's creation
    assert.matches("4000 records are intact", e.message)            -- the creation and 3,999 inserts
    assert.matches("opts.recover = true", e.message)
    assert.equal(damaged, slurp(path))
    assert.is_nil(io.open(path .. ".damaged", "rb"))
    -- recover: every intact record, the damaged one reported, the original kept
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path, { recover = true }))
      local r = db.recovered
      assert.equal(1, r.skipped_records)
      assert.same({ "r1334" }, r.skipped_ids)
      assert.equal(path .. ".damaged", r.original)
      local col = await(db:collection("k"))
      assert.equal(3999, await(col:count()))
      assert.equal(0, #await(col:get({ "r1334" })))
      assert.equal(1, #await(col:get({ "r1335" })))
      assert.same({ 4000, 4001 }, await(col:get({ "r3999" }))[1].vector)
      await(col:insert("new", { 1, 1 }))
    end)
    assert.equal(damaged, slurp(path .. ".damaged"))
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path))
      assert.is_nil(db.recovered)
      assert.equal(4000, await((await(db:collection("k"))):count()))
    end)
    cleanup(path)
  end)

  it("a damaged record header (its length) loses only that record: the next intact record is found", function()
    local path = tmpfile()
    local ends = write_log(path, 100)
    flip(path, ends[49] + 5, 6)                                      -- the length of record 50's frame
    assert.equal("corrupt", refused(path).code)
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path, { recover = true }))
      assert.equal(1, db.recovered.skipped_records)
      assert.equal(99, await((await(db:collection("k"))):count()))
      assert.equal(0, #await((await(db:collection("k"))):get({ "r50" })))
    end)
    cleanup(path)
  end)

  it("a flipped bit in the last whole record is damage, not a torn write: refused", function()
    local path = tmpfile()
    local ends = write_log(path, 10)
    flip(path, ends[10] - 2)
    assert.equal("corrupt", refused(path).code)
    cleanup(path)
  end)

  it("a flipped bit in a compacted snapshot loses one block at most; intact log records after it are kept", function()
    local path = tmpfile()
    local N, DIM = 5000, 16
    async.run(function()
      local db = await(vdb.connect("file:" .. path))
      local col = await(db:collection("s"))
      local ids, vecs = {}, {}
      for i = 1, N do
        ids[i] = "s" .. i
        local v = {}
        for j = 1, DIM do v[j] = (i * j) % 97 end
        vecs[i] = v
      end
      await(col:batch_insert { ids = ids, vectors = vecs })
      for _ = 1, 3 do await(col:upsert { ids = ids, vectors = vecs }) end   -- dead space: closing compacts
      await(db:disconnect())
    end)
    local snapshot = #slurp(path)
    assert.is_true(snapshot < N * DIM * 4 * 1.5, "compacted: " .. snapshot)
    async.run(function()                                             -- log records after the snapshot
      local db = await(vdb.connect("file:" .. path))
      local col = await(db:collection("s"))
      for i = 1, 5 do await(col:insert("late" .. i, (string.pack("<" .. ("f"):rep(DIM), table.unpack((function()
        local v = {} for j = 1, DIM do v[j] = i end return v end)()))))) end
      H.abandon(db)
    end)
    flip(path, snapshot // 3, 3)
    assert.equal("corrupt", refused(path).code)
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path, { recover = true }))
      local col = await(db:collection("s"))
      local n = await(col:count())
      assert.equal(1, db.recovered.skipped_records)
      assert.is_true(n >= N + 5 - 1024, "kept " .. n)                -- one block of at most 1,024 records lost
      assert.is_true(n < N + 5)
      assert.equal(N + 5 - n, #db.recovered.skipped_ids + db.recovered.more_skipped_ids)
      assert.equal(5, #await(col:get({ "late1", "late2", "late3", "late4", "late5" })))
    end)
    cleanup(path)
  end)

  it("garbage appended after the last record is damage, not a torn write", function()
    local path = tmpfile()
    write_log(path, 3)
    local f = assert(io.open(path, "ab")); f:write("hello, this is not a record"); f:close()
    local before = slurp(path)
    assert.equal("corrupt", refused(path).code)
    assert.equal(before, slurp(path))
    cleanup(path)
  end)

  it("a compaction cut short leaves PATH.tmp, which the next open removes (the store is whole)", function()
    local path = tmpfile()
    write_log(path, 5)
    spit(path .. ".tmp", "half a snapshot")
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path))
      assert.equal(5, await((await(db:collection("k"))):count()))
    end)
    assert.is_nil(io.open(path .. ".tmp", "rb"))
    cleanup(path)
  end)
end)

describe("vdb file: background compaction", function()
  it("keeps the log near its live size under insert+delete churn, while writes and reads go on; a reopen holds exactly the live state", function()
    local path = tmpfile()
    local expect = {}
    async.run(function()
      local db = await(vdb.connect("file:" .. path))
      local a, b = await(db:collection("a")), await(db:collection("b", { metric = "cosine" }))
      local function churn(col, tag, n)
        for i = 1, n do
          local id = tag .. (i % 97)
          if i % 3 == 0 then
            await(col:delete({ id }))
            expect[col.name .. "/" .. id] = nil
          else
            local v = { i, i % 7 + 1, tag == "x" and 1 or 2 }
            await(col:upsert { { id = id, vector = v, metadata = { i = i }, document = ("d"):rep(i % 50) } })
            expect[col.name .. "/" .. id] = i
          end
        end
      end
      local reads = 0
      local reader = async.spawn(function()
        while true do
          await(a:search({ 1, 1, 1 }, 3)); reads = reads + 1
          await(async.sleep(0))
        end
      end)
      await(async.gather(
        async.fn(churn)(a, "x", 6000), async.fn(churn)(a, "y", 6000), async.fn(churn)(b, "z", 6000)))
      reader:cancel()
      local st = db:stats()
      assert.is_true(st.compactions >= 3, "compactions: " .. st.compactions)
      assert.is_true(st.bytes < 4 * 1024 * 1024, "bytes: " .. st.bytes)
      assert.is_true(reads > 0)
      H.abandon(db)                                     -- as a crash would leave it: no last compaction
    end)
    collectgarbage(); collectgarbage()                  -- (the finished compaction task held the file too)
    async.run(function()
      local db <close> = await(vdb.connect("file:" .. path))
      assert.is_nil(db.recovered)
      local got = {}
      for _, name in ipairs { "a", "b" } do
        local col = await(db:collection(name))
        for _, r in ipairs(await(col:get())) do got[name .. "/" .. r.id] = r.metadata.i end
      end
      assert.same(expect, got)
    end)
    cleanup(path)
  end)
end)
