-- vdb/chroma.lua: the server backend: a Chroma server over its HTTP API v2,
-- through async.http (libcurl on the loop).  The same Lua calls and results
-- as the embedded store: arguments are checked locally first, by the same C
-- code (src/vdb/input.c), so a bad call never reaches the server; bodies
-- and answers are built and read in C (src/vdb/chroma/wire.c).
--
-- Chroma's ways this file smooths over (../shared/reference/chroma-api-v2.md):
-- collections are addressed by name for get/delete and by id for records;
-- an `add` of an existing id answers 201 and keeps the old record, so
-- insert asks first which ids exist; a `where` object holds one key; the
-- server's batch limit (pre-flight checks) and 40 MiB body limit split
-- large batches; delete does not say how many records went.
local core, S = ...
local async = require "async"
local await, json = async.await, async.json   -- (async.http: loaded at the first request)
local fail, new_error = S.fail, S.new_error
local begin, finish = S.begin, S.finish

local MAX_BYTES = 32 * 1024 * 1024      -- a body's size by default, under the server's 40 MiB
local METRIC_CODE = S.METRICS

local Server = {}
Server.__index = Server
local Remote = {}
Remote.__index = Remote

---------------------------------------------------------------------------
-- requests and errors
---------------------------------------------------------------------------

-- an HTTP error answer as a vdb.Error, by the contract's codes
local function answer_error(resp, what)
  local message = resp.body
  local ok, t = pcall(json.decode, resp.body)
  if ok and type(t) == "table" and type(t.message) == "string" then message = t.message end
  message = tostring(message):sub(1, 400)
  local status, code = resp.status, "server_error"
  if status == 404 or message:find("does not exist", 1, true) then code = "not_found"
  elseif status == 409 then code = "conflict"
  elseif message:find("expecting embedding with dimension", 1, true) then code = "dimension_mismatch"
  elseif status >= 400 and status < 500 then code = "invalid_argument" end
  return new_error(code, ("%s: HTTP %d: %s"):format(what, status, message), status)
end

-- one request on a pooled keep-alive connection; raises a vdb.Error
local function request(db, method, url, body, what)
  local _ <close> = await(db.slots:acquire())
  -- (no cap on the answer: a get of a large collection is as big as the caller asked for)
  local ok, resp = pcall(await, async.http.request { method = method, url = url, body = body,
                                               headers = db.headers, timeout = db.timeout, max_body = false })
  if not ok then
    if async.TimeoutError:is(resp) then
      error(new_error("timeout", ("%s: no answer within %gs (%s)"):format(what, db.timeout, resp.message)), 0)
    elseif async.ConnectionError:is(resp) then
      error(new_error("unavailable", ("%s: %s"):format(what, resp.message)), 0)
    end
    error(resp, 0)                      -- a cancellation goes on up
  end
  if resp.status >= 300 then error(answer_error(resp, what), 0) end
  return resp
end

-- run f(...) as one operation of db: disconnect waits for it
local function op(db, f, ...)
  begin(db)
  local r = table.pack(pcall(f, ...))
  finish(db)
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

-- a decoded JSON answer; an unreadable one is a server_error
local function answer_json(resp, what)
  local ok, t = pcall(json.decode, resp.body)
  if not ok then fail("server_error", "%s: the answer is not JSON: %s", what, resp.body:sub(1, 100)) end
  return t
end

---------------------------------------------------------------------------
-- connecting
---------------------------------------------------------------------------

local CONNECT_KEYS = { "tenant", "database", "headers", "timeout", "max_connections", "max_request_bytes" }

local function check_opts(opts)
  S.check_opts(opts, S.keys(table.unpack(CONNECT_KEYS)), "connect")
  local function bad(what, expected, got)
    fail("invalid_argument", "connect: opts.%s must be %s, got %s", what, expected, tostring(got))
  end
  for _, k in ipairs { "tenant", "database" } do
    if opts[k] ~= nil and (type(opts[k]) ~= "string" or not opts[k]:match("^[%w._-]+$")) then
      bad(k, "a name", opts[k])
    end
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then bad("headers", "a table", opts.headers) end
  for k, v in pairs(opts.headers or {}) do
    if type(k) ~= "string" or type(v) ~= "string" then bad("headers", "a table of strings", ("a %s key with a %s value"):format(type(k), type(v))) end
  end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout <= 0) then
    bad("timeout", "a positive number of seconds", opts.timeout)
  end
  local mc = opts.max_connections
  if mc ~= nil and (math.type(mc) ~= "integer" or mc < 1) then bad("max_connections", "a positive integer", mc) end
  local mb = opts.max_request_bytes
  if mb ~= nil and (math.type(mb) ~= "integer" or mb < 4096) then bad("max_request_bytes", "an integer >= 4096", mb) end
end

local function connect(url, opts)
  opts = opts or {}
  check_opts(opts)
  local base = url:gsub("/+$", "")
  local api = base .. "/api/v2"
  local headers = { ["content-type"] = "application/json" }
  for k, v in pairs(opts.headers or {}) do headers[k:lower()] = v end
  local idle = async.Event()
  idle:set()
  local db = setmetatable({
    url = url, api = api, headers = headers, timeout = opts.timeout or 60,
    tenant = opts.tenant or "default_tenant", database = opts.database or "default_database",
    slots = async.Semaphore(opts.max_connections or 16),
    max_bytes = opts.max_request_bytes or MAX_BYTES,   -- lower it for a proxy that caps bodies
    cols = {}, inflight = 0, closed = false, idle = idle,
  }, Server)
  db.cpath = ("%s/tenants/%s/databases/%s/collections"):format(api, db.tenant, db.database)
  request(db, "GET", api .. "/heartbeat", nil, "connect " .. url)
  local checks = answer_json(request(db, "GET", api .. "/pre-flight-checks", nil, "connect"), "pre-flight checks")
  db.max_batch = math.tointeger(type(checks) == "table" and checks.max_batch_size) or 1000
  if type(checks) == "table" and checks.supports_base64_encoding == false then
    fail("unavailable", "connect: this server does not take base64 embeddings (Chroma 1.0 or later is needed)")
  end
  return db
end

---------------------------------------------------------------------------
-- databases
---------------------------------------------------------------------------

local function new_remote(db, t, metric, dim)
  return setmetatable({ db = db, name = t.name, id = t.id, metric = metric, dim = dim,
                        url = db.cpath .. "/" .. t.id }, Remote)
end

Server.collection = async.fn(function(self, name, opts)
  local metric, dim
  metric, dim, opts = S.collection_opts(self, name, opts)
  local col = self.cols[name]
  if not col then
    local body = { name = name, get_or_create = true, configuration = { hnsw = { space = metric } } }
    if dim then body.metadata = { ["vdb:dim"] = dim } end
    local t = op(self, function()
      return answer_json(request(self, "POST", self.cpath, json.encode(body), "collection " .. name), "collection")
    end)
    if type(t) ~= "table" or type(t.id) ~= "string" then fail("server_error", "collection %q: no id in the answer", name) end
    local conf = type(t.configuration_json) == "table" and t.configuration_json.hnsw
    local space = type(conf) == "table" and conf.space or metric
    local meta = type(t.metadata) == "table" and t.metadata or {}
    local have = math.tointeger(t.dimension) or math.tointeger(meta["vdb:dim"]) or dim
    col = new_remote(self, t, space, have)
    if self.cols[name] then col = self.cols[name] else self.cols[name] = col end
  end
  if opts.metric and opts.metric ~= col.metric then
    fail("invalid_argument", "collection %q uses metric %s, not %s", name, col.metric, metric)
  end
  if dim and col.dim and dim ~= col.dim then
    fail("dimension_mismatch", "collection %q has %d dimensions, not %d", name, col.dim, dim)
  end
  col.dim = col.dim or dim
  return col
end)

Server.collections = async.fn(function(self)
  if self.closed then fail("closed", "the database is disconnected") end
  return op(self, function()
    local names, offset, page = {}, 0, 100
    while true do
      local url = ("%s?limit=%d&offset=%d"):format(self.cpath, page, offset)
      local list = answer_json(request(self, "GET", url, nil, "collections"), "collections")
      if type(list) ~= "table" then fail("server_error", "collections: the answer is not a list") end
      for _, c in ipairs(list) do names[#names + 1] = c.name end
      if #list < page then break end
      offset = offset + page
    end
    table.sort(names)
    return names
  end)
end)

Server.drop = async.fn(function(self, name)
  if self.closed then fail("closed", "the database is disconnected") end
  S.check_name(name)
  op(self, request, self, "DELETE", self.cpath .. "/" .. name, nil, "drop " .. name)
  if self.cols[name] then self.cols[name].dropped = true end
  self.cols[name] = nil
  return true
end)

Server.disconnect = async.fn(function(self)
  self.closed = true
  if self.inflight > 0 then await(self.idle:wait()) end
  return true
end)

function Server:stats() return { fsyncs = 0, replayed = 0, bytes = 0 } end

Server.__close = function(self) await(self:disconnect()) end

for _, m in ipairs { "insert", "batch_insert", "upsert", "search", "batch_search", "get", "delete", "count" } do
  Server[m] = S.shortcuts[m]
end

---------------------------------------------------------------------------
-- collections
---------------------------------------------------------------------------

local function live(col)
  if col.dropped then fail("not_found", "collection %q was dropped", col.name) end
  if col.db.closed then fail("closed", "the database is disconnected") end
  return col.db
end

local function post(col, path, body, what)
  return request(col.db, "POST", col.url .. path, body, what .. " on " .. col.name)
end

local fetch       -- records by ids and/or where (below)

-- list[from..to] in slices of at most size: for i, slice in chunks(...)
local function chunks(list, size, from, to)
  from, to = from or 1, to or #list
  return function(_, at)
    at = at and at + size or from
    if at > to then return nil end
    return at, table.move(list, at, math.min(at + size - 1, to), 1, {})
  end
end

local function record_count(col)
  local n = math.tointeger(tonumber(request(col.db, "GET", col.url .. "/count", nil, "count on " .. col.name).body))
  if not n then fail("server_error", "count on %s: the answer is not a number", col.name) end
  return n
end

-- the records among ids that exist (fields: include), as a map by id
local function existing(col, ids, n, include, what)
  local found = {}
  for _, slice in chunks(ids, col.db.max_batch, 1, n) do
    for _, rec in ipairs(fetch(col, slice, nil, nil, nil, include, what)) do found[rec.id] = rec end
  end
  return found
end

-- one call, split where the server's limits demand; all or nothing as far
-- as the server lets us: a failed insert deletes the parts already added
local function put(col, ids, vectors, metas, docs, n, upsert)
  local db = live(col)
  if n == 0 then return 0 end
  local parts, counts, dim = core.wire_put(col.dim or 0, ids, vectors, metas, docs, n, db.max_batch, db.max_bytes)
  local per                               -- upsert: metadata keys to clear, by record
  return op(db, function()
    if upsert then                        -- Chroma merges metadata: drop the old keys not given anew
      local old = existing(col, ids, n, '["metadatas"]', "upsert")
      per = {}
      for i = 1, n do
        local was, new = old[ids[i]], metas[i] or {}
        local keys = {}
        for k in pairs(was and was.metadata or {}) do if new[k] == nil then keys[#keys + 1] = k end end
        if #keys > 0 then per[i] = keys end
      end
    -- Chroma keeps the old record silently: ask first which ids exist (an
    -- empty collection has none: one cheap count instead, for bulk loads)
    elseif record_count(col) > 0 then
      local found = existing(col, ids, n, "[]", "insert")
      for i = 1, n do
        if found[ids[i]] then
          fail("conflict", "record %d: id '%s' already exists (nothing was inserted)", i, ids[i])
        end
      end
    end
    -- one part after another (two at once measured no faster: the server
    -- indexes one at a time); each part's JSON is written just before it
    -- is sent.  A failed insert takes back the parts that went in.
    local done = 0
    for i = 1, #counts do
      local ok, err = pcall(post, col, upsert and "/upsert" or "/add", core.wire_part(parts, i, per),
                            upsert and "upsert" or "insert")
      if not ok then
        if not upsert and done > 0 then   -- best effort: the server may be gone
          pcall(post, col, "/delete", '{"ids":' .. json.encode(table.move(ids, 1, done, 1, {})) .. "}", "undo")
        end
        error(err, 0)
      end
      done = done + counts[i]
    end
    col.dim = dim
    return n
  end)
end

Remote.insert = async.fn(function(self, id, vector, metadata, document)
  put(self, { id }, { vector }, { metadata }, { document }, 1, false)
  return true
end)

Remote.batch_insert = async.fn(function(self, items)
  local ids, vectors, metas, docs, n = S.columns(items)
  return put(self, ids, vectors, metas, docs, n, false)
end)

Remote.upsert = async.fn(function(self, items)
  local ids, vectors, metas, docs, n = S.columns(items)
  return put(self, ids, vectors, metas, docs, n, true)
end)

-- a `where` in Chroma's shape: one key per object, several become $and
local function chroma_where(w)
  if type(w) ~= "table" then return w end
  local keys = {}
  for k in pairs(w) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = w[k]
    if k == "$and" or k == "$or" then
      local sub = {}
      for i, c in ipairs(v) do sub[i] = chroma_where(c) end
      if #sub == 1 then parts[#parts + 1] = sub[1] else parts[#parts + 1] = { [k] = sub } end
    elseif type(v) == "table" then       -- several operators on one field
      local ops = {}
      for o in pairs(v) do ops[#ops + 1] = o end
      table.sort(ops)
      for _, o in ipairs(ops) do parts[#parts + 1] = { [k] = { [o] = v[o] } } end
    else
      parts[#parts + 1] = { [k] = v }
    end
  end
  if #parts == 0 then return nil end
  if #parts == 1 then return parts[1] end
  return { ["$and"] = parts }
end

local function where_of(where)
  core.check_where(where)
  return chroma_where(where)
end

local function check_window(limit, offset)
  if limit ~= nil and (math.type(limit) ~= "integer" or limit < 0) then fail("invalid_argument", "limit must be >= 0") end
  if offset ~= nil and (math.type(offset) ~= "integer" or offset < 0) then fail("invalid_argument", "offset must be >= 0") end
end

-- records by ids and/or where; include: the fields to fetch
-- (include is JSON text: an empty Lua table would encode as {}, not [])
function fetch(col, ids, where, limit, offset, include, what)
  local text = json.encode { ids = ids, where = where, limit = limit, offset = offset }
  text = text:sub(1, -2) .. (text == "{}" and "" or ",") .. '"include":' .. include .. "}"
  return core.wire_records(post(col, "/get", text, what).body)
end

Remote.get = async.fn(function(self, arg)
  local ids, where, limit, offset = S.selector(arg or {}, "get")
  if ids then core.check_ids(ids) end
  check_window(limit, offset)
  where = where_of(where)
  local db = live(self)
  if ids and #ids == 0 then return {} end
  return op(db, function()
    if not ids then
      return fetch(self, nil, where, limit, offset, '["embeddings","metadatas","documents"]', "get")
    end
    -- by ids: in the order asked, then the window, as the embedded store does
    local recs = fetch(self, ids, where, nil, nil, '["embeddings","metadatas","documents"]', "get")
    local by, out = {}, {}
    for _, r in ipairs(recs) do by[r.id] = r end
    local skip, room = offset or 0, limit or math.huge
    for _, id in ipairs(ids) do
      if by[id] and room > 0 then
        if skip > 0 then skip = skip - 1 else out[#out + 1] = by[id]; room = room - 1 end
      end
    end
    return out
  end)
end)

Remote.delete = async.fn(function(self, arg)
  local ids, where = S.selector(arg, "delete")
  if ids then core.check_ids(ids) end
  where = where_of(where)
  if not ids and not where then fail("invalid_argument", "delete needs ids or a where filter") end
  local db = live(self)
  if ids and #ids == 0 then return 0 end
  return op(db, function()
    -- Chroma does not say how many went: find them, then delete those
    local recs = fetch(self, ids, where, nil, nil, "[]", "delete")
    if #recs == 0 then return 0 end
    local gone = {}
    for i, r in ipairs(recs) do gone[i] = r.id end
    for _, slice in chunks(gone, db.max_batch) do
      post(self, "/delete", '{"ids":' .. json.encode(slice) .. "}", "delete")
    end
    return #gone
  end)
end)

Remote.count = async.fn(function(self)
  return op(live(self), record_count, self)
end)

-- bodies for queries (as many per request as the server's batch limit allows)
local function queries(self, list, k_or_opts)
  local k, where, meta, doc, vec = S.search_opts(k_or_opts)
  where = where_of(where)
  local db = live(self)
  local bodies = core.wire_query(self.dim or 0, list, k, where, meta, doc, vec, db.max_batch, db.max_bytes)
  return db, bodies, k, meta
end

Remote.search = async.fn(function(self, query, k_or_opts)
  S.check_query(query)
  local db, bodies, k, meta = queries(self, { query }, k_or_opts)
  if k == 0 then return {} end
  return op(db, function()
    return core.wire_hits(post(self, "/query", bodies[1], "search").body, METRIC_CODE[self.metric], meta)[1]
  end)
end)

Remote.batch_search = async.fn(function(self, list, k_or_opts)
  if type(list) ~= "table" then
    fail("invalid_argument", "batch_search takes a list of query vectors, got %s", type(list))
  end
  local db, bodies, k, meta = queries(self, list, k_or_opts)
  if #list == 0 then return {} end
  if k == 0 then
    local out = {}
    for i = 1, #list do out[i] = {} end
    return out
  end
  return op(db, function()
    local parts = {}
    for i, body in ipairs(bodies) do
      parts[i] = async.fn(function() return core.wire_hits(post(self, "/query", body, "batch_search").body,
                                                           METRIC_CODE[self.metric], meta) end)()
    end
    local out = {}
    for _, hits in ipairs(await(async.gather(parts))) do
      for _, h in ipairs(hits) do out[#out + 1] = h end
    end
    return out
  end)
end)

Remote.scan = S.scanner(function(self, where, size, offset)
  return await(self:get { where = where, limit = size, offset = offset })
end)

return { connect = async.fn(connect) }
