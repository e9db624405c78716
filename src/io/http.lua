-- http.lua: the Lua face of async.http, over raw_request (src/io/http.c).
-- Compiled into async/http.so; `require "async.http"` (or just reading
-- async.http) loads it.
--
-- Every call gives an awaitable and raises at await, also for a bad URL,
-- header or option: arguments are checked here, and a refused call gives a
-- Future that already holds its error.
local raw_request, async, Response = ...
local type, tostring, error, pairs, ipairs = type, tostring, error, pairs, ipairs

local http = {}

-- resp:json(): the body decoded (async.json); an error names resp:json
local decode = async.json.decode
Response.__index = {
  json = function(self)
    local ok, v = pcall(decode, self.body)
    if not ok then error(("resp:json(): %s"):format(tostring(v):gsub("^.-json%.decode: ", "")), 2) end
    return v
  end,
}

local DEFAULT_TIMEOUT, DEFAULT_MAX_BODY, DEFAULT_REDIRECTS = 300, 256 * 1024 * 1024, 10
local OPTIONS = { "headers", "timeout", "insecure", "follow_redirects", "max_body" }
local REQUEST = { "method", "url", "body", table.unpack(OPTIONS) }

local function set_of(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end
local OPTION_SET, REQUEST_SET = set_of(OPTIONS), set_of(REQUEST)

local function refused(fmt, ...)
  local f = async.Future()
  f:set_exception(fmt:format(...))
  return f
end

-- the checked arguments of raw_request, or nil and why not
local function checked(name, opts, allowed, keys)
  for k in pairs(opts) do
    if not allowed[k] then
      return nil, ("%s: unknown option %s (expected one of %s)"):format(name, tostring(k), table.concat(keys, ", "))
    end
  end
  local method, url, body = opts.method or "GET", opts.url, opts.body
  if type(url) ~= "string" or not url:match("^[hH][tT][tT][pP][sS]?://[^/]") then
    return nil, ("%s: url must be an http:// or https:// URL, got %s"):format(name,
      type(url) == "string" and ("%q"):format(url) or type(url))
  end
  if url:find("[%z\r\n ]") then return nil, ("%s: url holds a space, CR, LF or NUL"):format(name) end
  if type(method) ~= "string" or not method:match("^%u+$") then
    return nil, ("%s: method must be an upper-case method such as \"GET\", got %s"):format(name, tostring(method))
  end
  if body ~= nil and type(body) ~= "string" then
    return nil, ("%s: body must be a string, got %s"):format(name, type(body))
  end
  local timeout = opts.timeout
  if timeout == nil then timeout = DEFAULT_TIMEOUT
  elseif timeout == false then timeout = nil
  elseif type(timeout) ~= "number" or not (timeout > 0 and timeout < math.huge) then
    return nil, ("%s: timeout must be a positive finite number of seconds (or false for none), got %s"):format(name, tostring(timeout))
  end
  if opts.insecure ~= nil and type(opts.insecure) ~= "boolean" then
    return nil, ("%s: insecure must be a boolean, got %s"):format(name, type(opts.insecure))
  end
  local follow = opts.follow_redirects
  if follow == nil or follow == false then follow = 0
  elseif follow == true then follow = DEFAULT_REDIRECTS
  elseif math.type(follow) ~= "integer" or follow < 0 then
    return nil, ("%s: follow_redirects must be a boolean or a count, got %s"):format(name, tostring(follow))
  end
  local max_body = opts.max_body
  if max_body == nil then max_body = DEFAULT_MAX_BODY
  elseif max_body == false then max_body = 0
  elseif math.type(max_body) ~= "integer" or max_body <= 0 then
    return nil, ("%s: max_body must be a positive number of bytes (or false for none), got %s"):format(name, tostring(max_body))
  end
  local headers = opts.headers
  if headers ~= nil then
    if type(headers) ~= "table" then return nil, ("%s: headers must be a table, got %s"):format(name, type(headers)) end
    for k, v in pairs(headers) do
      if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
        return nil, ("%s: headers must map names to strings, got a %s key and a %s value"):format(name, type(k), type(v))
      end
      if not k:match("^[!#$%%&'*+.^_`|~%w-]+$") then
        return nil, ("%s: header name %q is not a token (no spaces, colons, CR, LF or NUL)"):format(name, k)
      end
      if tostring(v):find("[%z\r\n]") then
        return nil, ("%s: the value of header %s holds CR, LF or NUL"):format(name, k)
      end
    end
  end
  return method, url, headers, body, timeout, opts.insecure, follow, max_body
end

local function send(name, opts, allowed, keys)
  local method, url, headers, body, timeout, insecure, follow, max_body = checked(name, opts, allowed, keys)
  if not method then return refused("%s", url) end
  return raw_request(method, url, headers, body, timeout, insecure, follow, max_body)
end

-- request{method=, url=, headers=, body=, timeout=, insecure=, follow_redirects=, max_body=}
function http.request(opts)
  if type(opts) ~= "table" then return refused("request: takes an options table, got %s", type(opts)) end
  return send("request", opts, REQUEST_SET, REQUEST)
end

local function shortcut(name, method, url, body, opts)
  if opts ~= nil and type(opts) ~= "table" then return refused("%s: options must be a table, got %s", name, type(opts)) end
  opts = opts or {}
  for k in pairs(opts) do
    if not OPTION_SET[k] then
      return refused("%s: unknown option %s (expected one of %s)", name, tostring(k), table.concat(OPTIONS, ", "))
    end
  end
  local all = { method = method, url = url, body = body }
  for _, k in ipairs(OPTIONS) do all[k] = opts[k] end
  return send(name, all, REQUEST_SET, REQUEST)
end

function http.get(url, opts) return shortcut("get", "GET", url, nil, opts) end
function http.post(url, body, opts) return shortcut("post", "POST", url, body, opts) end

return http
