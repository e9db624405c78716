-- Shared by the specs: the module, and a way to run a Lua snippet in a
-- fresh process (for warnings, stderr reports and process-level behaviour).
package.cpath = "./?.so;" .. package.cpath
local async = require "async"

local H = { async = async, await = async.await }

-- run `code` with lua5.4 (-W: warnings on); returns stdout..stderr, exit ok
function H.lua(code, env)
  local f = os.tmpname()
  local fh = assert(io.open(f, "w"))
  fh:write('package.cpath = "./?.so;" .. package.cpath\n', code)
  fh:close()
  local p = assert(io.popen((env or "") .. " lua5.4 -W " .. f .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  os.remove(f)
  local status = out:match("exit=(%d+)%s*$")
  return out:gsub("exit=%d+%s*$", ""), status == "0"
end

-- run an async body on a fresh loop and return its results
function H.run(fn, ...) return async.run(fn, ...) end

-- pcall that returns the error value
function H.catch(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  return e
end

return H
