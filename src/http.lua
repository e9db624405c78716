-- http.lua: the Lua face of async.http, over raw_request (src/http.c).
-- Compiled into async/http.so; `require "async.http"` (or just reading
-- async.http) loads it.
local raw_request, async, Response = ...
local type, tostring, error = type, tostring, error

local http = {}

-- resp:json(): the body decoded (async.json, cJSON)
local decode = async.json.decode
Response.__index = { json = function(self) return decode(self.body) end }

local function check_opts(name, opts, argn)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (table expected, got %s)"):format(argn, name, type(opts)), 3)
  end
  return opts or {}
end

-- request{method=, url=, headers=, body=, timeout=, insecure=, follow_redirects=}
function http.request(opts)
  if type(opts) ~= "table" then
    error(("bad argument #1 to 'request' (table expected, got %s)"):format(type(opts)), 2)
  end
  local method, url, body, timeout = opts.method or "GET", opts.url, opts.body, opts.timeout
  if type(url) ~= "string" or not url:match("^%a[%w+.-]*://") then
    error(("bad argument 'url' to 'request' (an absolute URL string expected, got %s)"):format(
      type(url) == "string" and ("%q"):format(url) or type(url)), 2)
  end
  if type(method) ~= "string" or not method:match("^%u+$") then
    error(("bad argument 'method' to 'request' (an upper-case method such as \"GET\" expected, got %s)"):format(tostring(method)), 2)
  end
  if body ~= nil and type(body) ~= "string" then
    error(("bad argument 'body' to 'request' (string expected, got %s)"):format(type(body)), 2)
  end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout <= 0) then
    error(("bad argument 'timeout' to 'request' (positive number of seconds expected, got %s)"):format(tostring(timeout)), 2)
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then
    error(("bad argument 'headers' to 'request' (table expected, got %s)"):format(type(opts.headers)), 2)
  end
  return raw_request(method, url, opts.headers, body, timeout, opts.insecure, opts.follow_redirects)
end

local function shortcut(method, opts, url, body)
  return http.request { method = method, url = url, body = body, headers = opts.headers,
                        timeout = opts.timeout, insecure = opts.insecure,
                        follow_redirects = opts.follow_redirects }
end

function http.get(url, opts) return shortcut("GET", check_opts("get", opts, 2), url) end
function http.post(url, body, opts) return shortcut("POST", check_opts("post", opts, 3), url, body) end

return http
