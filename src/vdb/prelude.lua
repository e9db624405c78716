-- vdb/prelude.lua: the Lua-facing objects of `vdb` over its C core (vdb.c).
--
-- Every operation returns a coroutine object: nothing happens until it is
-- awaited.  Arguments are validated in C before any work is queued, so a
-- rejected call changes nothing.
local core = ...
local async = require "async"
local await = async.await

local vdb = {}

---------------------------------------------------------------------------
-- errors
---------------------------------------------------------------------------

local Error = async.class("vdb.Error", async.Error)
Error.__tostring = function(e)
  return ("vdb.Error(%s): %s"):format(tostring(e.code), tostring(e.message))
end
vdb.Error = Error

local function new_error(code, message, status)
  return Error(message, { code = code, status = status })
end
core.set_errors(new_error)

local function fail(code, fmt, ...)
  error(new_error(code, fmt:format(...)), 0)
end

-- an options table: nil ({}) or a table whose every key is one of `allowed`
local function check_opts(opts, allowed, what)
  if opts == nil then return {} end
  if type(opts) ~= "table" then fail("invalid_argument", "%s: options must be a table, got %s", what, type(opts)) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for name in pairs(allowed) do names[#names + 1] = name end
      table.sort(names)
      if #names == 0 then fail("invalid_argument", "%s: unknown option %s (this call takes no options)", what, tostring(k)) end
      fail("invalid_argument", "%s: unknown option %s (expected one of %s)", what, tostring(k), table.concat(names, ", "))
    end
  end
  return opts
end

local function keys(...)
  local set = {}
  for _, k in ipairs { ... } do set[k] = true end
  return set
end

-- a count from the caller: a non-negative integer (a float with an integer
-- value is taken; math.huge means "no limit" where huge_ok)
local function check_count(v, what, huge_ok)
  if math.type(v) == "integer" then
    if v < 0 then fail("invalid_argument", "%s must be >= 0, got %d", what, v) end
    return v
  end
  if math.type(v) == "float" then
    if huge_ok and v == math.huge then return math.maxinteger end
    local i = math.tointeger(v)
    if i and i >= 0 then return i end
  end
  fail("invalid_argument", "%s must be a non-negative integer, got %s", what, tostring(v))
end

---------------------------------------------------------------------------
-- databases
---------------------------------------------------------------------------

local METRICS = { l2 = 0, cosine = 1, ip = 2 }
local MAX_DIM = 1 << 20          -- as STORE_MAX_DIM in store.h
local METRIC_NAMES = { [0] = "l2", [1] = "cosine", [2] = "ip" }

local Database = {}
Database.__index = Database

local chroma          -- the server backend, set at the end of this file

local Collection = {}
Collection.__index = Collection

local function begin(db)
  if db.closed then fail("closed", "the database is disconnected") end
  db.inflight = db.inflight + 1
  db.idle:clear()
end

local function finish(db)
  db.inflight = db.inflight - 1
  if db.inflight == 0 then db.idle:set() end
end

-- run one C operation for db: validate and queue (f returns a future), await
local function run(db, f, ...)
  begin(db)
  local ok, r = pcall(f, ...)
  if ok then ok, r = pcall(await, r) end
  finish(db)
  if not ok then error(r, 0) end
  return r
end

function vdb.connect(url, opts)
  if url ~= nil and type(url) ~= "string" then
    error(("bad argument #1 to 'connect' (string expected, got %s)"):format(type(url)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to 'connect' (table expected, got %s)"):format(type(opts)), 2)
  end
  return async.fn(function()
    url = url or "memory:"
    local function new_db()
      local idle = async.Event()
      idle:set()
      return setmetatable({ url = url, cols = {}, inflight = 0, closed = false, idle = idle }, Database)
    end
    if url == "memory:" then
      check_opts(opts, {}, "connect")
      return new_db()
    elseif url:match("^file:") then
      local path = url:sub(6)
      if path == "" then fail("invalid_argument", "file: needs a path, as in file:/var/lib/app/vectors.vdb") end
      opts = check_opts(opts, keys("recover"), "connect")
      if opts.recover ~= nil and type(opts.recover) ~= "boolean" then
        fail("invalid_argument", "connect: opts.recover must be a boolean, got %s", type(opts.recover))
      end
      local log, found, report = await(core.open(path, opts.recover))
      local db = new_db()
      db.log, db.recovered = log, report
      if report then warn("vdb: " .. report.message) end
      for _, c in ipairs(found) do
        db.cols[c.name] = setmetatable({ db = db, name = c.name, metric = METRIC_NAMES[c.metric], h = c.h }, Collection)
      end
      return db
    elseif url:match("^https?://") then
      return await(chroma.connect(url, opts))
    end
    fail("invalid_argument", "unknown URL %q (expected memory:, file:PATH or http://HOST:PORT)", url)
  end)()
end

local function check_name(name)
  if type(name) ~= "string" or name == "" then
    fail("invalid_argument", "a collection name must be a non-empty string, got %s", type(name))
  end
end

-- the checks of collection(name, opts) both backends make: metric, dim
local function collection_opts(db, name, opts)
  if db.closed then fail("closed", "the database is disconnected") end
  check_name(name)
  opts = check_opts(opts, keys("dim", "metric"), "collection")
  local metric = opts.metric or "l2"
  if METRICS[metric] == nil then
    fail("invalid_argument", "metric must be \"l2\", \"cosine\" or \"ip\", got %s", tostring(metric))
  end
  local dim = opts.dim
  if dim ~= nil and (math.type(dim) ~= "integer" or dim <= 0 or dim > MAX_DIM) then
    fail("invalid_argument", "dim must be an integer from 1 to %d, got %s", MAX_DIM, tostring(dim))
  end
  return metric, dim, opts
end

Database.collection = async.fn(function(self, name, opts)
  local metric, dim
  metric, dim, opts = collection_opts(self, name, opts)
  local col = self.cols[name]
  if col then
    if opts.metric and opts.metric ~= col.metric then
      fail("invalid_argument", "collection %q uses metric %s, not %s", name, col.metric, metric)
    end
    local have = core.dim(col.h)
    if dim and have ~= 0 and dim ~= have then
      fail("dimension_mismatch", "collection %q has %d dimensions, not %d", name, have, dim)
    end
    return col
  end
  col = setmetatable({ db = self, name = name, metric = metric,
                       h = core.new_collection(name, dim or 0, METRICS[metric]) }, Collection)
  if self.log then                              -- file: the creation is logged first
    core.attach(self.log, col.h)
    local log = self.log
    core.meta_mark(log, true)
    local ok, err = pcall(run, self, core.log_meta, log, "create", name, dim or 0, METRICS[metric])
    if ok then self.cols[name] = col end
    core.meta_mark(log, false)
    if not ok then error(err, 0) end
    return col
  end
  self.cols[name] = col
  return col
end)

Database.collections = async.fn(function(self)
  if self.closed then fail("closed", "the database is disconnected") end
  local names = {}
  for name in pairs(self.cols) do names[#names + 1] = name end
  table.sort(names)
  return names
end)

Database.drop = async.fn(function(self, name)
  if self.closed then fail("closed", "the database is disconnected") end
  check_name(name)
  if not self.cols[name] then fail("not_found", "no collection %q", name) end
  if self.log then
    local log = self.log
    core.meta_mark(log, true)
    local ok, err = pcall(run, self, core.log_meta, log, "drop", name)
    if ok then self.cols[name].dropped = true; self.cols[name] = nil end
    core.meta_mark(log, false)
    if not ok then error(err, 0) end
    return true
  end
  self.cols[name].dropped = true
  self.cols[name] = nil
  return true
end)

local function handles(db)
  local hs = {}
  for _, col in pairs(db.cols) do hs[#hs + 1] = col.h end
  return hs
end

Database.disconnect = async.fn(function(self)
  if self.closed and not self.log then return true end
  self.closed = true
  if self.inflight > 0 then await(self.idle:wait()) end
  if self.compacting then pcall(await, self.compacting) end
  if self.log then                              -- file: compact if worth it, release the file
    local log = self.log
    self.log = nil
    local ok, err = pcall(await, core.compact(log, handles(self), true))
    core.close_log(log, handles(self))
    if not ok then error(err, 0) end
  end
  return true
end)

-- file: counters (fsyncs, records replayed at open, file size)
function Database:stats()
  if not self.log then return { fsyncs = 0, replayed = 0, bytes = 0 } end
  return core.log_stats(self.log)
end

Database.__close = function(self)
  await(self:disconnect())
end

-- the tutorial's shortcuts: the "default" collection
for _, m in ipairs { "insert", "batch_insert", "upsert", "search", "batch_search", "get", "delete", "count" } do
  Database[m] = async.fn(function(self, ...)
    local col = await(self:collection("default"))
    return await(col[m](col, ...))
  end)
end

---------------------------------------------------------------------------
-- collections
---------------------------------------------------------------------------

-- file: after a write, compact in the background once the log's dead space
-- is more than its live data (and more than 256 KiB); one at a time
local function compact_if_due(db)
  if not db.log or db.compacting or db.closed or not core.compact_due(db.log) then return end
  local log = db.log
  db.compacting = async.spawn(function()
    local ok, err = pcall(await, core.compact(log, handles(db)))
    db.compacting = nil
    if not ok and not async.CancelledError:is(err) then warn("vdb: background compaction failed: " .. tostring(err)) end
  end)
end

local function live(col)
  if col.dropped then fail("not_found", "collection %q was dropped", col.name) end
  return col.db
end

Collection.insert = async.fn(function(self, id, vector, metadata, document)
  run(live(self), core.put, self.h, { id }, { vector }, { metadata }, { document }, 1, false)
  compact_if_due(self.db)
  return true
end)

-- the three shapes of a batch, as columns
local function columns(items)
  if type(items) ~= "table" then
    fail("invalid_argument", "a batch must be a table, got %s", type(items))
  end
  if items.ids ~= nil or items.vectors ~= nil then
    check_opts(items, keys("ids", "vectors", "metadatas", "documents"), "batch")
    local ids, vectors = items.ids, items.vectors
    if type(ids) ~= "table" or type(vectors) ~= "table" or #ids ~= #vectors then
      fail("invalid_argument", "columns need ids and vectors lists of the same length")
    end
    for _, name in ipairs { "metadatas", "documents" } do
      if items[name] ~= nil and type(items[name]) ~= "table" then
        fail("invalid_argument", "batch: %s must be a list, got %s", name, type(items[name]))
      end
    end
    return ids, vectors, items.metadatas or {}, items.documents or {}, #ids
  end
  local ids, vectors, metas, docs = {}, {}, {}, {}
  if items[1] ~= nil then                       -- a list of records
    for i, r in ipairs(items) do
      if type(r) ~= "table" then fail("invalid_argument", "record %d: a record must be a table", i) end
      ids[i], vectors[i], metas[i], docs[i] = r.id, r.vector, r.metadata, r.document
    end
    return ids, vectors, metas, docs, #items
  end
  for id in pairs(items) do                      -- the tutorial's {[id] = vector}
    if type(id) ~= "string" then
      fail("invalid_argument", "in a {[id] = vector} batch every key must be a string id, got %s", type(id))
    end
    ids[#ids + 1] = id
  end
  table.sort(ids)
  for i, id in ipairs(ids) do vectors[i] = items[id] end
  return ids, vectors, metas, docs, #ids
end

local function put(self, items, upsert)
  local ids, vectors, metas, docs, n = columns(items)
  if n == 0 then live(self); return 0 end
  local count = run(live(self), core.put, self.h, ids, vectors, metas, docs, n, upsert)
  compact_if_due(self.db)
  return count
end

Collection.batch_insert = async.fn(function(self, items) return put(self, items, false) end)
Collection.upsert = async.fn(function(self, items) return put(self, items, true) end)

-- get(ids) or get{ids=, where=, limit=, offset=}
local SELECT_KEYS = { get = keys("ids", "where", "limit", "offset"), delete = keys("ids", "where") }

local function selector(arg, what)
  if type(arg) ~= "table" then
    fail("invalid_argument", "%s takes a list of ids or an options table, got %s", what, type(arg))
  end
  if arg[1] ~= nil then return arg, nil, nil, nil end
  check_opts(arg, SELECT_KEYS[what], what)
  if arg.ids ~= nil and type(arg.ids) ~= "table" then
    fail("invalid_argument", "%s: ids must be a list of ids, got %s", what, type(arg.ids))
  end
  local limit = arg.limit ~= nil and check_count(arg.limit, what .. ": limit", true) or nil
  local offset = arg.offset ~= nil and check_count(arg.offset, what .. ": offset") or nil
  return arg.ids, arg.where, limit, offset
end

Collection.get = async.fn(function(self, arg)
  local ids, where, limit, offset = selector(arg or {}, "get")
  return run(live(self), core.get, self.h, ids, where, limit, offset, true)
end)

Collection.delete = async.fn(function(self, arg)
  local ids, where = selector(arg, "delete")
  local count = run(live(self), core.delete, self.h, ids, where)
  compact_if_due(self.db)
  return count
end)

Collection.count = async.fn(function(self)
  return run(live(self), core.count, self.h)
end)

-- k_or_opts: a number, or {top_k=, where=, include=}
local SEARCH_KEYS = keys("top_k", "where", "include")

local function search_opts(k_or_opts)
  local k, where, include = 10, nil, nil
  if type(k_or_opts) == "number" then
    k = k_or_opts
  elseif type(k_or_opts) == "table" then
    check_opts(k_or_opts, SEARCH_KEYS, "search")
    k, where, include = k_or_opts.top_k or 10, k_or_opts.where, k_or_opts.include
  elseif k_or_opts ~= nil then
    fail("invalid_argument", "search takes a top-k number or an options table, got %s", type(k_or_opts))
  end
  k = check_count(k, "top_k", true)         -- above the collection's size: every record
  local meta, doc, vec = true, true, false
  if include ~= nil then
    if type(include) ~= "table" then fail("invalid_argument", "include must be a list") end
    meta, doc = false, false
    for _, name in ipairs(include) do
      if name == "metadata" or name == "metadatas" then meta = true
      elseif name == "document" or name == "documents" then doc = true
      elseif name == "vector" or name == "vectors" or name == "embeddings" then vec = true
      elseif name ~= "distances" then fail("invalid_argument", "include: unknown field %s", tostring(name)) end
    end
  end
  return k, where, meta, doc, vec
end

local function check_query(query)
  if type(query) ~= "table" and type(query) ~= "string" then
    fail("invalid_argument", "search: the query must be a vector (a list of numbers or a packed string), got %s", type(query))
  end
end

Collection.search = async.fn(function(self, query, k_or_opts)
  check_query(query)
  local k, where, meta, doc, vec = search_opts(k_or_opts)
  return run(live(self), core.search, self.h, { query }, k, where, meta, doc, vec)[1]
end)

-- queries spread over the thread pool in a few slices, searched at once
local SLICES = 4

Collection.batch_search = async.fn(function(self, queries, k_or_opts)
  if type(queries) ~= "table" then
    fail("invalid_argument", "batch_search takes a list of query vectors, got %s", type(queries))
  end
  local k, where, meta, doc, vec = search_opts(k_or_opts)
  local n = #queries
  if n == 0 then return {} end
  local db = live(self)
  local slices, per = {}, math.ceil(n / math.min(SLICES, n))
  for from = 1, n, per do
    slices[#slices + 1] = table.move(queries, from, math.min(from + per - 1, n), 1, {})
  end
  local parts = {}
  for i, slice in ipairs(slices) do
    parts[i] = async.fn(function() return run(db, core.search, self.h, slice, k, where, meta, doc, vec) end)()
  end
  local results, out = await(async.gather(parts)), {}
  for _, part in ipairs(results) do
    for _, hits in ipairs(part) do out[#out + 1] = hits end
  end
  return out
end)

-- for rec in col:scan{batch_size=, where=} do ... end, over page(where,
-- size, offset), a backend's way to fetch records by offset
local function scanner(page)
  return function(self, opts)
    opts = check_opts(opts, keys("batch_size", "where"), "scan")
    local size = opts.batch_size or 100
    if math.type(size) ~= "integer" or size <= 0 or size > 1 << 30 then
      fail("invalid_argument", "batch_size must be an integer from 1 to 2^30, got %s", tostring(size))
    end
    local where = opts.where
    return async.generator(function(yield)
      local offset = 0
      while true do
        local recs = page(self, where, size, offset)
        for _, rec in ipairs(recs) do yield(rec) end
        if #recs < size then return end
        offset = offset + size
      end
    end)()
  end
end

Collection.scan = scanner(function(self, where, size, offset)
  return run(live(self), core.get, self.h, nil, where, size, offset, true)
end)

---------------------------------------------------------------------------
-- the Chroma server backend (src/vdb/chroma/client.lua) shares these
---------------------------------------------------------------------------

chroma = core.chroma(core, {
  fail = fail, new_error = new_error, check_name = check_name, check_opts = check_opts, keys = keys,
  check_query = check_query, begin = begin, finish = finish,
  collection_opts = collection_opts, columns = columns, selector = selector,
  search_opts = search_opts, METRICS = METRICS, shortcuts = Database, scanner = scanner,
})

return vdb
