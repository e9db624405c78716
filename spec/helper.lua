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

-- start a server process whose first output line is "PORT PID"; returns
-- port and a stop function (also run at exit of the busted process)
function H.server(cmd)
  local p = assert(io.popen(cmd .. " 2>/dev/null", "r"))
  local line = p:read("l")
  assert(line, "server did not start: " .. cmd)
  local port, pid = line:match("^(%d+) (%d+)")
  assert(port, "server said: " .. line)
  local stopped = false
  local function stop()
    if stopped then return end
    stopped = true
    os.execute("kill " .. pid .. " 2>/dev/null")
    p:close()
  end
  return tonumber(port), stop, tonumber(pid)
end

return H
