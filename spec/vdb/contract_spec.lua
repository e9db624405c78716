-- docs/reference.md "vdb", on the embedded store (memory:) and, in chroma_spec, on a Chroma server
local H = require "helper"
local async, await = H.async, H.await
local vdb = require "vdb"

local function rand_vec(d)
  local v = {}
  for j = 1, d do v[j] = math.random() * 2 - 1 end
  return v
end

-- brute force in Lua, Chroma's definitions
local function distance(metric, q, x)
  if metric == "l2" then
    local s = 0
    for j = 1, #q do s = s + (q[j] - x[j]) ^ 2 end
    return s
  end
  local dot, nq, nx = 0, 0, 0
  for j = 1, #q do dot = dot + q[j] * x[j]; nq = nq + q[j] ^ 2; nx = nx + x[j] ^ 2 end
  if metric == "ip" then return 1 - dot end
  return 1 - dot / math.sqrt(nq * nx)
end

local code_of = H.code_of

-- The same contract on both backends: the embedded store and a Chroma
-- server (started by the helper on a free port; each test gets a fresh
-- database there).
local backends = {
  { name = "memory:", embedded = true, target = function() return "memory:" end },
  { name = "a Chroma server", target = H.chroma_db },
}

for _, backend in ipairs(backends) do

local function connect() return vdb.connect(backend.target()) end

local function with_db(body)
  return async.run(function()
    local db <close> = await(connect())
    return body(db)
  end)
end

describe("vdb contract on " .. backend.name, function()
  it("connects lazily, disconnects, and refuses calls after disconnect", function()
    local conn = connect()
    assert.is_true(async.iscoroutine(conn))
    async.run(function()
      local db = await(conn)
      local col = await(db:collection("col_c"))
      await(col:insert("a", { 1, 2 }))
      assert.is_true(await(db:disconnect()))
      assert.equal("closed", code_of(await, col:count()))
      assert.equal("closed", code_of(await, db:collection("col_x")))
    end)
  end)

  it("the tutorial's client: batch_insert of a {[id] = vector} map, search, batch_search", function()
    with_db(function(db)
      local vectors = {}
      for i = 0, 99 do vectors["vec_" .. i] = rand_vec(4) end
      assert.equal(100, await(db:batch_insert(vectors)))
      local hits = await(db:search(rand_vec(4), 5))
      assert.equal(5, #hits)
      for i = 2, 5 do assert.is_true(hits[i - 1].distance <= hits[i].distance) end
      assert.equal(-hits[1].distance, hits[1].score)
      local qs = {}
      for i = 1, 10 do qs[i] = rand_vec(4) end
      local all = await(db:batch_search(qs))
      assert.equal(10, #all)
      assert.equal(10, #all[1])            -- default top-k
      assert.equal(100, await(db:count()))
    end)
  end)

  for _, metric in ipairs { "l2", "cosine", "ip" } do
    it("is exact against brute force for " .. metric, function()
      with_db(function(db)
        local col = await(db:collection("col_m", { metric = metric }))
        local data, items = {}, {}
        for i = 1, 300 do data[i] = rand_vec(8); items[i] = { id = "r" .. i, vector = data[i] } end
        await(col:batch_insert(items))
        for _ = 1, 5 do
          local q = rand_vec(8)
          local expect = {}
          for i = 1, 300 do expect[i] = { id = "r" .. i, d = distance(metric, q, data[i]) } end
          table.sort(expect, function(a, b) return a.d < b.d end)
          local hits = await(col:search(q, 10))
          for j = 1, 10 do
            assert.equal(expect[j].id, hits[j].id)
            assert.is_true(math.abs(expect[j].d - hits[j].distance) < 1e-4)
            local score = metric == "l2" and -hits[j].distance or 1 - hits[j].distance
            assert.is_true(math.abs(score - hits[j].score) < 1e-9)
          end
        end
      end)
    end)
  end

  it("batch_search gives what one search per query gives, for every metric", function()
    with_db(function(db)
      for _, metric in ipairs { "l2", "cosine", "ip" } do
        local col = await(db:collection("bs_" .. metric, { metric = metric }))
        local items = {}
        for i = 1, 501 do items[i] = { id = "r" .. i, vector = rand_vec(24), metadata = { odd = i % 2 == 1 } } end
        await(col:batch_insert(items))
        local qs = {}
        for i = 1, 37 do qs[i] = rand_vec(24) end          -- not a multiple of the block
        for _, where in ipairs { false, { odd = true } } do  -- contiguous rows, and scattered ones
          local opts = { top_k = 7, where = where or nil }
          local batch = await(col:batch_search(qs, opts))
          assert.equal(37, #batch)
          for i = 1, 37 do
            local one = await(col:search(qs[i], opts))
            for j = 1, 7 do
              assert.equal(one[j].id, batch[i][j].id)
              assert.is_true(math.abs(one[j].distance - batch[i][j].distance) < 1e-4)
            end
          end
        end
      end
    end)
  end)

  it("keeps metadata and documents; get, count, upsert, delete by ids and where", function()
    with_db(function(db)
      local col = await(db:collection("docs", { dim = 3 }))
      assert.is_true(await(col:insert("a", { 1, 0, 0 }, { genre = "news", year = 2021, hot = true }, "apple")))
      await(col:batch_insert { ids = { "b", "c" }, vectors = { { 0, 1, 0 }, { 0, 0, 1 } },
                               metadatas = { { genre = "blog", year = 2019 }, { genre = "news", year = 2018 } },
                               documents = { "banana", nil } })
      local recs = await(col:get({ "a", "missing" }))
      assert.equal(1, #recs)
      assert.same({ id = "a", vector = { 1, 0, 0 }, metadata = { genre = "news", year = 2021, hot = true }, document = "apple" }, recs[1])
      assert.equal(2, await(col:upsert { { id = "a", vector = { 0, 0, 2 } }, { id = "d", vector = { 2, 2, 2 } } }))
      assert.equal(4, await(col:count()))
      assert.same({ 0, 0, 2 }, await(col:get({ "a" }))[1].vector)
      assert.equal(1, #await(col:get { where = { genre = "news" } }))   -- the upsert replaced a's metadata
      assert.equal(1, #await(col:get { limit = 1, offset = 3 }))
      local window = await(col:get { ids = { "d", "missing", "c", "a" }, offset = 1, limit = 1 })
      assert.equal(1, #window)
      assert.equal("c", window[1].id)                                     -- the asked order, then the window
      assert.equal(1, await(col:delete({ "b" })))
      assert.equal(1, await(col:delete { where = { year = { ["$lt"] = 2020 } } }))
      assert.equal(2, await(col:count()))
    end)
  end)

  it("filters with every operator", function()
    with_db(function(db)
      local col = await(db:collection("col_f"))
      local items = {}
      for i = 1, 20 do
        items[i] = { id = "r" .. i, vector = { i, 0 }, metadata = { n = i, kind = i % 2 == 0 and "even" or "odd", big = i > 10 } }
      end
      await(col:batch_insert(items))
      local function ids(where)
        local hits = await(col:search({ 0, 0 }, { top_k = 100, where = where }))
        return #hits
      end
      assert.equal(10, ids { kind = "even" })
      assert.equal(10, ids { kind = { ["$ne"] = "even" } })
      assert.equal(5, ids { n = { ["$gt"] = 15 } })
      assert.equal(6, ids { n = { ["$gte"] = 15 } })
      assert.equal(4, ids { n = { ["$lt"] = 5 } })
      assert.equal(5, ids { n = { ["$lte"] = 5 } })
      assert.equal(3, ids { n = { ["$in"] = { 1, 2, 3 } } })
      assert.equal(17, ids { n = { ["$nin"] = { 1, 2, 3 } } })
      assert.equal(10, ids { big = true })
      assert.equal(5, ids { kind = "even", big = true })                      -- several keys: $and
      assert.equal(5, ids { ["$and"] = { { kind = "even" }, { big = true } } })
      assert.equal(15, ids { ["$or"] = { { kind = "even" }, { big = true } } })
      assert.equal(0, ids { missing = "x" })
    end)
  end)

  it("accepts packed little-endian float32 strings", function()
    with_db(function(db)
      local col = await(db:collection("col_p"))
      await(col:insert("s", string.pack("<fff", 1, 2, 3)))
      await(col:batch_insert { ids = { "t" }, vectors = { string.pack("<fff", 4, 5, 6) } })
      local hits = await(col:search(string.pack("<fff", 4, 5, 6), 1))
      assert.equal("t", hits[1].id)
      assert.equal(0, hits[1].distance)
      assert.same({ 1, 2, 3 }, await(col:get({ "s" }))[1].vector)
    end)
  end)

  it("rejects every bad input with its code, before anything changes", function()
    with_db(function(db)
      local col = await(db:collection("col_e", { dim = 2 }))
      await(col:insert("ok", { 1, 1 }))
      local function rejected(code, aw)
        assert.equal(code, (code_of(await, aw)))
        assert.equal(1, await(col:count()))
      end
      rejected("invalid_argument", col:insert("", { 1, 1 }))
      rejected("invalid_argument", col:insert(42, { 1, 1 }))
      rejected("invalid_argument", col:insert("x", { 1, "a" }))
      rejected("invalid_argument", col:insert("x", { 1, 0 / 0 }))
      rejected("invalid_argument", col:insert("x", { 1, math.huge }))
      rejected("invalid_argument", col:insert("x", {}))
      rejected("dimension_mismatch", col:insert("x", { 1, 2, 3 }))
      rejected("invalid_argument", col:insert("x", { 1, 2 }, { nested = { 1 } }))
      rejected("conflict", col:insert("ok", { 2, 2 }))
      rejected("invalid_argument", col:search({ 1, 1 }, -1))
      rejected("dimension_mismatch", col:search({ 1, 1, 1 }))
      rejected("invalid_argument", col:insert("x", string.pack("<ff", 1, 0 / 0)))       -- packed NaN, inserted
      rejected("invalid_argument", col:batch_insert { ids = { "p1", "p2" },
                                                      vectors = { string.pack("<ff", 1, 2), string.pack("<ff", math.huge, 2) } })
      rejected("invalid_argument", col:upsert { { id = "ok", vector = string.pack("<ff", 0 / 0, 1) } })
      assert.same({ 1, 1 }, await(col:get({ "ok" }, { include_vectors = true }))[1].vector)   -- untouched
      rejected("invalid_argument", col:search(string.pack("<ff", 1, 0 / 0)))        -- packed NaN, searched
      rejected("invalid_argument", col:batch_search({ { 1, 1 }, string.pack("<ff", math.huge, 1) }))
      rejected("invalid_argument", col:search({ 1, 1 }, { where = { n = { ["$bogus"] = 1 } } }))
      rejected("invalid_argument", col:search({ 1, 1 }, { where = { n = { ["$gt"] = "x" } } }))
      -- a batch with one bad record inserts nothing
      rejected("invalid_argument", col:batch_insert { { id = "b1", vector = { 1, 2 } }, { id = "b2", vector = { 1 / 0, 2 } } })
      rejected("dimension_mismatch", col:batch_insert { { id = "b1", vector = { 1, 2 } }, { id = "b2", vector = { 1 } } })
      rejected("invalid_argument", col:batch_insert { { id = "b1", vector = { 1, 2 } }, { id = "b1", vector = { 3, 4 } } })
      rejected("conflict", col:batch_insert { { id = "b1", vector = { 1, 2 } }, { id = "ok", vector = { 3, 4 } } })
      rejected("invalid_argument", db:collection("bad", { metric = "dot" }))
      assert.equal("not_found", (code_of(await, db:drop("nope"))))
      local e = select(2, code_of(await, col:insert("ok", { 2, 2 })))
      assert.matches("^vdb.Error%(conflict%)", tostring(e))
      assert.is_string(e.message)
    end)
  end)

  it("lists and drops collections", function()
    with_db(function(db)
      await(db:collection("col_b")); await(db:collection("col_a"))
      assert.same({ "col_a", "col_b" }, await(db:collections()))
      local b = await(db:collection("col_b"))
      assert.is_true(await(db:drop("col_b")))
      assert.same({ "col_a" }, await(db:collections()))
      assert.equal("not_found", (code_of(await, b:count())))
    end)
  end)

  it("streams with scan in batches, with a filter", function()
    with_db(function(db)
      local col = await(db:collection("col_s"))
      local items = {}
      for i = 1, 25 do items[i] = { id = ("r%02d"):format(i), vector = { i }, metadata = { odd = i % 2 == 1 } } end
      await(col:batch_insert(items))
      local n, odd = 0, 0
      for rec in col:scan { batch_size = 7 } do n = n + 1; assert.is_string(rec.id) end
      for _ in col:scan { batch_size = 4, where = { odd = true } } do odd = odd + 1 end
      assert.equal(25, n); assert.equal(13, odd)
    end)
  end)

  it("disconnect (and <close>) waits for the work in flight", function()
    local counted
    async.run(function()
      local db = await(connect())
      local col = await(db:collection("col_w"))
      local items = {}
      for i = 1, 2000 do items[i] = { id = "r" .. i, vector = rand_vec(64) } end
      local ins = async.spawn(function() return await(col:batch_insert(items)) end)
      await(async.sleep(0))
      await(db:disconnect())
      counted = await(ins)
    end)
    assert.equal(2000, counted)
  end)

  it("refuses misread arguments and unknown option keys, naming them, before anything changes", function()
    with_db(function(db)
      local col = await(db:collection("col_args"))
      await(col:batch_insert { ids = { "a", "b" }, vectors = { { 1, 0 }, { 0, 1 } } })
      local function bad(aw, pattern)
        local code, e = code_of(await, aw)
        assert.equal("invalid_argument", code)
        if pattern then assert.matches(pattern, e.message) end
      end
      bad(col:get { ids = "abc" }, "ids must be a list")
      bad(col:delete { ids = "abc" }, "ids must be a list")
      bad(col:search(nil), "query must be a vector")
      bad(col:search(42), "query must be a vector")
      bad(col:batch_insert { ids = { "c" }, vectors = { { 1, 1 } }, metadatas = "oops" }, "metadatas must be a list")
      bad(col:batch_insert { ids = { "c" }, vectors = { { 1, 1 } }, documents = 7 }, "documents must be a list")
      bad(col:batch_insert { ids = { "c" }, vectors = { { 1, 1 } }, metadata = { { x = 1 } } }, "unknown option metadata")
      bad(col:get { limit = 1.5 }, "limit must be a non%-negative integer")
      bad(col:get { limit = -1 }, "limit must be >= 0")
      bad(col:get { offset = 0 / 0 }, "offset")
      bad(col:get { limt = 1 }, "unknown option limt")
      bad(col:search({ 1, 0 }, { topk = 3 }), "unknown option topk")
      bad(col:search({ 1, 0 }, 0 / 0), "top_k")
      bad(col:search({ 1, 0 }, -math.huge), "top_k")
      bad(col:search({ 1, 0 }, 2.5), "top_k")
      bad(db:collection("col_args2", { dims = 3 }), "unknown option dims")
      bad(vdb.connect("memory:", { recover = true }), "unknown option recover %(this call takes no options%)")
      bad(db:collection("col_args3", { dim = 2 ^ 32 + 3 }), "dim")
      bad(db:collection("col_args3", { dim = (1 << 32) + 3 }), "dim")
      bad(col:insert("big", ("\0"):rep(4 * (1 << 20) + 4)), "at most 1048576 dimensions")
      local code = code_of(col.scan, col, { batchsize = 3 })
      assert.equal("invalid_argument", code)
      assert.equal(2, await(col:count()))
    end)
  end)

  it("a top_k above the collection's size gives every record, with no allocation sized by it", function()
    with_db(function(db)
      local col = await(db:collection("col_k"))
      local items = {}
      for i = 1, 10 do items["r" .. i] = { i, 0 } end
      await(col:batch_insert(items))
      assert.equal(10, #await(col:search({ 0, 0 }, 1e8)))
      assert.equal(10, #await(col:search({ 0, 0 }, math.huge)))
      assert.equal(10, #await(col:search({ 0, 0 }, { top_k = math.maxinteger })))
      local qs = {}
      for i = 1, 16 do qs[i] = { i, 0 } end
      local all = await(col:batch_search(qs, 1 << 62))
      assert.equal(16, #all)
      for i = 1, 16 do
        assert.equal(10, #all[i])
        assert.equal("r" .. math.min(i, 10), all[i][1].id)
      end
    end)
  end)

  it("keeps every byte of ids, metadata keys and strings, and documents, NULs included", function()
    with_db(function(db)
      local col = await(db:collection("col_nul"))
      await(col:batch_insert { ids = { "a\0b", "a\0c", "a" }, vectors = { { 1, 0 }, { 0, 1 }, { 1, 1 } },
                               metadatas = { { ["k\0x"] = "v\0w", k = "plain" }, { tag = "x\0" }, nil },
                               documents = { "d\0oc", nil, "a doc" } })
      assert.equal(3, await(col:count()))
      assert.same({}, await(col:get({ "a\0zzz" })))
      local r = await(col:get({ "a\0b" }))
      assert.equal(1, #r)
      assert.equal("a\0b", r[1].id)
      assert.same({ ["k\0x"] = "v\0w", k = "plain" }, r[1].metadata)
      assert.equal("d\0oc", r[1].document)
      assert.equal("a", await(col:get({ "a" }))[1].id)
      assert.same({ "a\0c" }, (function(hits) local t = {} for i, h in ipairs(hits) do t[i] = h.id end return t end)(
        await(col:search({ 0, 1 }, { top_k = 1 }))))
      assert.equal(1, #await(col:get { where = { tag = "x\0" } }))
      assert.equal(0, #await(col:get { where = { tag = "x" } }))
      assert.equal("conflict", (code_of(await, col:insert("a\0b", { 2, 2 }))))
      await(col:delete({ "a\0c" }))
      assert.equal(2, await(col:count()))
      assert.equal(1, #await(col:get({ "a\0b" })))
    end)
  end)

  it("a delete that names an id twice deletes that one record, and no other", function()
    with_db(function(db)
      local col = await(db:collection("col_twice"))
      await(col:batch_insert { ids = { "a", "b", "c", "d" }, vectors = { { 1, 0 }, { 2, 0 }, { 3, 0 }, { 4, 0 } } })
      await(col:delete({ "b", "b", "missing", "b" }))
      assert.equal(3, await(col:count()))
      assert.equal(3, #await(col:get({ "a", "c", "d" })))
    end)
  end)

  if backend.embedded then
  it("a ticker keeps running during a 50,000-vector batch_search on the thread pool", function()
    async.run(function()
      local db <close> = await(vdb.connect())
      local col = await(db:collection("big"))
      local d, n = 64, 50000
      local parts = {}
      for i = 1, n do
        local v = {}
        for j = 1, d do v[j] = math.random() end
        parts[i] = string.pack("<" .. string.rep("f", d), table.unpack(v))
      end
      await(col:batch_insert { ids = (function() local t = {} for i = 1, n do t[i] = "r" .. i end return t end)(), vectors = parts })
      local qs = {}
      for i = 1, 200 do qs[i] = parts[i] end
      local ticks, done = 0, false
      local ticker = async.spawn(function() while not done do await(async.sleep(0.001)); ticks = ticks + 1 end end)
      local t0 = async.time()
      local res = await(col:batch_search(qs, 3))
      local took = async.time() - t0
      done = true
      await(ticker)
      assert.equal(200, #res)
      assert.equal("r1", res[1][1].id)
      -- the loop was free while the search ran: the ticker ticked throughout
      -- (valgrind runs one thread at a time, so there it can only tick at all)
      local want = os.getenv("VALGRIND") and 1 or math.min(5, took / 0.004)
      assert.is_true(ticks >= want, ("ticks %d in %.3fs"):format(ticks, took))
    end)
  end)

  it("refuses URLs it cannot use, clearly", function()
    async.run(function()
      assert.equal("invalid_argument", (code_of(await, vdb.connect("file:"))))
      assert.equal("unavailable", (code_of(await, vdb.connect("http://127.0.0.1:1"))))
      assert.equal("invalid_argument", (code_of(await, vdb.connect("ftp://x"))))
    end)
  end)
  end
end)

end
