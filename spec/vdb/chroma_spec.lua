-- README "On a Chroma server" and docs/reference.md "vdb": the same answers as the embedded store, and the
-- faults a network brings, through a fault-injecting proxy of our own
-- (spec/servers/fault_proxy.mjs) in front of the server the helper starts.
local H = require "helper"
local async, await = H.async, H.await
local vdb = require "vdb"
local http = async.http

local code_of = H.code_of

local function rand_vec(d)
  local v = {}
  for j = 1, d do v[j] = math.random() * 2 - 1 end
  return v
end

describe("vdb on Chroma and in memory", function()
  for _, metric in ipairs { "l2", "cosine", "ip" } do
    it("gives the same top-10 and distances for " .. metric .. " (2,000 vectors)", function()
      local url, opts = H.chroma_db()
      async.run(function()
        local mem <close> = await(vdb.connect("memory:"))
        local srv <close> = await(vdb.connect(url, opts))
        local a = await(mem:collection("same", { metric = metric }))
        local b = await(srv:collection("same", { metric = metric }))
        local items = {}
        for i = 1, 2000 do items[i] = { id = "r" .. i, vector = rand_vec(16), metadata = { i = i } } end
        assert.equal(2000, await(a:batch_insert(items)))
        assert.equal(2000, await(b:batch_insert(items)))
        local found, total = 0, 0
        for _ = 1, 20 do
          local q = rand_vec(16)
          local ha, hb = await(a:search(q, 10)), await(b:search(q, 10))
          local by = {}
          for _, h in ipairs(hb) do by[h.id] = h end
          for _, h in ipairs(ha) do
            total = total + 1
            if by[h.id] then
              found = found + 1
              assert.is_true(math.abs(h.distance - by[h.id].distance) < 1e-4,
                             ("%s: %g vs %g"):format(h.id, h.distance, by[h.id].distance))
              assert.is_true(math.abs(h.score - by[h.id].score) < 1e-4)
              assert.same(h.metadata, by[h.id].metadata)
            end
          end
        end
        assert.is_true(found / total >= 0.99, ("recall %.3f"):format(found / total))
      end)
    end)
  end

  it("splits a batch over the server's limit, and batch_search sends as few requests as it allows", function()
    local url, opts = H.chroma_db()
    async.run(function()
      local db <close> = await(vdb.connect(url, opts))
      assert.equal(5461, db.max_batch)           -- learnt from the pre-flight checks
      local col = await(db:collection("big_batch"))
      local ids, vecs = {}, {}
      for i = 1, 12000 do ids[i] = "r" .. i; vecs[i] = string.pack("<ff", i, -i) end
      assert.equal(12000, await(col:batch_insert { ids = ids, vectors = vecs }))
      assert.equal(12000, await(col:count()))
      local qs = {}
      for i = 1, 50 do qs[i] = { i, -i } end
      local res = await(col:batch_search(qs, 1))
      assert.equal(50, #res)
      for i = 1, 50 do assert.equal("r" .. i, res[i][1].id) end
    end)
  end)

  it("sends float32 components exactly: a stored vector queried with its own numbers is at distance 0", function()
    local url, opts = H.chroma_db()
    async.run(function()
      local db <close> = await(vdb.connect(url, opts))
      local col = await(db:collection("exact_f32"))
      local vs = {}
      for i = 1, 50 do
        local v = {}
        for j = 1, 32 do   -- awkward float32 values over many magnitudes
          v[j] = string.unpack("<f", string.pack("<f", (math.random() - 0.5) * 10 ^ math.random(-6, 9)))
        end
        vs[i] = v
        await(col:insert("v" .. i, v))
      end
      for i = 1, 50 do
        local hit = await(col:search(vs[i], 1))[1]
        assert.equal("v" .. i, hit.id)
        assert.equal(0, hit.distance)
      end
    end)
  end)

  it("passes tenant, database and headers; refuses bad options locally", function()
    local url, opts = H.chroma_db()
    async.run(function()
      local db <close> = await(vdb.connect(url, { database = opts.database, headers = { ["X-Chroma-Token"] = "t" },
                                                   timeout = 5, max_connections = 2 }))
      local col = await(db:collection("opts_col"))
      await(col:insert("a", { 1, 2 }))
      assert.equal(1, await(col:count()))
      assert.equal("invalid_argument", (code_of(await, vdb.connect(url, { timeout = -1 }))))
      assert.equal("invalid_argument", (code_of(await, vdb.connect(url, { max_connections = 0 }))))
      assert.equal("invalid_argument", (code_of(await, vdb.connect(url, { tenant = "a/b" }))))
      assert.equal("invalid_argument", (code_of(await, vdb.connect(url, { headers = { token = 42 } }))))
      -- what only the server can see: a dimension fixed by another client,
      -- a name Chroma refuses (4xx)
      local other_db <close> = await(vdb.connect(url, opts))
      local mine = await(db:collection("dim_race"))
      local theirs = await(other_db:collection("dim_race"))   -- dimension still unknown here
      await(mine:insert("a", { 1, 2, 3 }))
      assert.equal("dimension_mismatch", (code_of(await, theirs:insert("b", { 1, 2 }))))
      assert.equal(1, await(mine:count()))
      local code, e = code_of(await, db:collection("x"))
      assert.equal("invalid_argument", code)
      assert.equal(400, e.status)
      -- an unknown database: the server says not found
      local other <close> = await(vdb.connect(url, { database = "no_such_db" }))
      assert.equal("not_found", (code_of(await, other:collection("x_col"))))
    end)
  end)
end)

describe("vdb on a Chroma server that crashes", function()
  it("kill -9 mid-batch: unavailable, the loop goes on; after a restart, what was acknowledged is there", function()
    local dir = os.tmpname()
    os.remove(dir)
    local port, stop, _, spid = H.server("spec/servers/chroma.sh")   -- a free port
    stop()
    port, stop, _, spid = H.server(("spec/servers/chroma.sh %d %s"):format(port, dir))
    local url = "http://127.0.0.1:" .. port
    async.run(function()
      local db <close> = await(vdb.connect(url))
      local col = await(db:collection("crash_col"))
      local acked = {}
      for i = 1, 200 do acked[i] = { id = "a" .. i, vector = { i, 0, 1 } } end
      assert.equal(200, await(col:batch_insert(acked)))
      local ids, vecs = {}, {}
      for i = 1, 40000 do ids[i] = "b" .. i; vecs[i] = string.pack("<fff", i, 1, 0) end
      local ticks, done = 0, false
      local ticker = async.spawn(function() while not done do await(async.sleep(0.01)); ticks = ticks + 1 end end)
      local batch = async.spawn(function() return await(col:batch_insert { ids = ids, vectors = vecs }) end)
      await(async.sleep(0.5))                  -- the batch's parts are on their way
      os.execute("kill -9 " .. spid)
      local code = code_of(await, batch)
      local ticks_at_crash = ticks
      stop()
      port, stop = H.server(("spec/servers/chroma.sh %d %s"):format(port, dir))   -- restart, same data
      await(async.sleep(0.05))
      done = true
      await(ticker)
      assert.equal("unavailable", code)
      assert.is_true(ticks_at_crash > 0)
      -- the same database object works again, and the acknowledged records
      -- survived.  (Chroma itself now and then segfaults while recovering
      -- the directory of a server killed mid-write; then it is started once
      -- more: what is checked here is the client, not Chroma's recovery.)
      local ok, got = pcall(await, col:get { "a1", "a100", "a200" })
      if not ok and vdb.Error:is(got) and got.code == "unavailable" then
        stop()
        port, stop = H.server(("spec/servers/chroma.sh %d %s"):format(port, dir))
        ok, got = true, await(col:get { "a1", "a100", "a200" })
      end
      assert(ok, tostring(got))
      assert.equal(3, #got)
      assert.is_true(await(col:insert("after", { 0, 0, 0 })))
    end)
    stop()
    os.execute("rm -rf " .. dir)
  end)
end)

describe("vdb on Chroma through faults", function()
  local proxy, stop_proxy, ctrl
  setup(function()
    local _, chroma = H.chroma()
    local port, stop, _, cport = H.server("node spec/servers/fault_proxy.mjs " .. chroma.port)
    proxy, stop_proxy, ctrl = "http://127.0.0.1:" .. port, stop, "http://127.0.0.1:" .. cport
  end)
  teardown(function() stop_proxy() end)

  local function fault(mode, after)
    local r = await(http.get(ctrl .. "/mode/" .. mode .. (after and ("?after=" .. after) or "")))
    assert(r.status == 200)
  end
  local function log() return await(http.get(ctrl .. "/log")):json() end

  -- a database behind the proxy, with one collection holding one record
  local function setup_db(opts)
    local _, o = H.chroma_db()
    for k, v in pairs(opts or {}) do o[k] = v end
    local db = await(vdb.connect(proxy, o))
    local col = await(db:collection("faulty"))
    await(col:insert("kept", { 1, 0, 0 }))
    return db, col
  end

  it("sends the auth headers given at connect with every request", function()
    async.run(function()
      local db <close>, col = setup_db { headers = { ["X-Chroma-Token"] = "s3cret" } }
      local before = #log()
      await(col:count())
      await(col:search({ 1, 0, 0 }, 1))
      local l = log()
      assert.is_true(#l >= before + 2)
      for i = before + 1, #l do assert.equal("s3cret", l[i][4]) end
    end)
  end)

  it("splits by bytes as well as by count (max_request_bytes), for records and for queries", function()
    async.run(function()
      local db <close>, col = setup_db { max_request_bytes = 64 * 1024 }
      local big = await(db:collection("bytes_col"))
      local ids, vecs = {}, {}
      local zeros = string.pack("<" .. string.rep("f", 63), table.unpack(setmetatable({}, { __index = function() return 0 end }), 1, 63))
      for i = 1, 1000 do ids[i] = "r" .. i; vecs[i] = string.pack("<f", i) .. zeros end
      local before = #log()
      assert.equal(1000, await(big:batch_insert { ids = ids, vectors = vecs }))
      local adds, queries = 0, 0
      local l = log()
      for i = before + 1, #l do if l[i][3]:match("/add$") then adds = adds + 1 end end
      assert.is_true(adds >= 4, "adds: " .. adds)           -- 1000 x ~350 B of base64 > 4 x 64 KiB
      assert.equal(1000, await(big:count()))
      local qs = {}
      for i = 1, 200 do qs[i] = vecs[i] end
      before = #log()
      local res = await(big:batch_search(qs, 1))
      l = log()
      for i = before + 1, #l do if l[i][3]:match("/query$") then queries = queries + 1 end end
      assert.is_true(queries >= 2, "queries: " .. queries)  -- 200 x 64 numbers > 64 KiB
      for i = 1, 200 do assert.equal("r" .. i, res[i][1].id) end
      assert.equal("invalid_argument", (code_of(await, vdb.connect(proxy, { max_request_bytes = 10 }))))
    end)
  end)

  it("raises unavailable when no server runs at connect", function()
    async.run(function()
      fault("down")
      local code = code_of(await, vdb.connect(proxy))
      fault("pass")
      assert.equal("unavailable", code)
    end)
  end)

  it("a server killed mid-batch: unavailable, the loop goes on, the next call after a restart succeeds", function()
    async.run(function()
      local db <close>, col = setup_db()
      local ticks, done = 0, false
      local ticker = async.spawn(function() while not done do await(async.sleep(0.005)); ticks = ticks + 1 end end)
      local ids, vecs = {}, {}
      for i = 1, 12000 do ids[i] = "b" .. i; vecs[i] = { i, 0, 1 } end
      -- a count, 3 lookups for existing ids, then 3 adds: the server dies at the second add
      fault("down", 5)
      local code = code_of(await, col:batch_insert { ids = ids, vectors = vecs })
      fault("pass")                             -- the server is back
      done = true
      await(ticker)
      assert.equal("unavailable", code)
      assert.is_true(ticks > 0)
      local got = await(col:get { "kept" })   -- what was acknowledged is there
      assert.equal(1, #got)
      assert.is_true(await(col:insert("after", { 0, 1, 0 })))
    end)
  end)

  it("a part of a batch refused mid-way: the parts already added are taken back", function()
    async.run(function()
      local db <close>, col = setup_db()
      local ids, vecs = {}, {}
      for i = 1, 12000 do ids[i] = "p" .. i; vecs[i] = { i, 1, 0 } end
      -- a count, 3 lookups, the first add: then one 500 on the second add
      fault("error500once", 5)
      local code = code_of(await, col:batch_insert { ids = ids, vectors = vecs })
      fault("pass")
      assert.equal("server_error", code)
      assert.equal(1, await(col:count()))            -- only what was there before
      assert.equal(0, #await(col:get { "p1", "p5461", "p12000" }))
    end)
  end)

  it("a stalled answer: wait_for times out, and the connection is not reused", function()
    async.run(function()
      local db <close>, col = setup_db()
      fault("stall")
      local ok, e = pcall(await, async.wait_for(col:search({ 1, 0, 0 }, 1), 0.3))
      fault("pass")
      assert.is_false(ok)
      assert.is_true(async.TimeoutError:is(e))
      local before = #log()
      assert.equal("kept", await(col:search({ 1, 0, 0 }, 1))[1].id)
      local l = log()
      local stalled, next_req = l[before], l[before + 1]
      assert.matches("/query$", stalled[3])
      assert.are_not.equal(stalled[1], next_req[1])   -- a fresh connection
    end)
  end)

  it("opts.timeout exceeded raises timeout", function()
    async.run(function()
      local db <close>, col = setup_db { timeout = 0.3 }
      fault("stall")
      local code = code_of(await, col:count())
      fault("pass")
      assert.equal("timeout", code)
      assert.equal(1, await(col:count()))
    end)
  end)

  it("500s and truncated JSON raise server_error; a dropped connection raises unavailable", function()
    async.run(function()
      local db <close>, col = setup_db()
      fault("error500")
      local c1, e1 = code_of(await, col:search({ 1, 0, 0 }))
      fault("garbage")
      local c2 = code_of(await, col:search({ 1, 0, 0 }))
      fault("drop")
      local c3 = code_of(await, col:insert("x", { 1, 1, 1 }))
      fault("pass")
      assert.equal("server_error", c1)
      assert.equal(500, e1.status)
      assert.equal("server_error", c2)
      assert.equal("unavailable", c3)
      assert.equal(1, await(col:count()))       -- nothing half-done
    end)
  end)

  it("a cancelled search frees its connection", function()
    async.run(function()
      local db <close>, col = setup_db { max_connections = 1 }
      fault("stall")
      local t = async.spawn(function() return await(col:search({ 1, 0, 0 })) end)
      await(async.sleep(0.2))
      t:cancel()
      assert.is_true(async.CancelledError:is(select(2, pcall(await, t))))
      fault("pass")
      -- the one connection slot is free again: this does not wait for the stalled one
      local hits = await(async.wait_for(col:search({ 1, 0, 0 }, 1), 5))
      assert.equal("kept", hits[1].id)
    end)
  end)
end)
