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

-- a fresh path for a file: store (nothing there yet)
function H.tmpfile()
  local p = os.tmpname()
  os.remove(p)
  return p
end

-- a file's bytes, or nil
function H.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- leave a file: database as a crash would: no last compaction, the file
-- released once its handles are collected (called from a task: a
-- background compaction, which holds the file too, is waited for)
function H.abandon(db)
  if db.compacting then pcall(async.await, db.compacting) end
  db.closed = true
  for _, c in pairs(db.cols) do c.h = nil end
  db.log = nil
  collectgarbage(); collectgarbage()
end

-- run an async body on a fresh loop and return its results
function H.run(fn, ...) return async.run(fn, ...) end

-- seconds f took on async.time()'s clock, then f's results
function H.elapsed(f)
  local t0 = async.time()
  local r = table.pack(f())
  return async.time() - t0, table.unpack(r, 1, r.n)
end

-- pcall that returns the error value
function H.catch(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  return e
end

-- the vdb.Error code (and the error) of a call that must fail
function H.code_of(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  local vdb = require "vdb"
  assert(vdb.Error:is(e), "not a vdb.Error: " .. tostring(e))
  return e.code, e
end

-- start a server process whose first output line is "PORT PID"; returns
-- port and a stop function (also run at exit of the busted process)
local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

function H.server(cmd)
  -- WATCH_PID: the server also stops when this process ends, however it ends
  -- (env -u LD_PRELOAD: the sanitizer runtime is for us, not for node)
  local p = assert(io.popen("exec env -u LD_PRELOAD WATCH_PID=" .. my_pid() .. " " .. cmd, "r"))   -- (exec: no shell left to say "Terminated")
  local line = p:read("l")
  assert(line, "server did not start: " .. cmd)
  local port, pid, extra = line:match("^(%d+) (%d+) ?(%d*)")
  assert(port, "server said: " .. line)
  local stopped = false
  local function stop()
    if stopped then return end
    stopped = true
    os.execute("kill " .. pid .. " 2>/dev/null")
    p:close()
  end
  return tonumber(port), stop, tonumber(pid), tonumber(extra)
end

-- the pinned Chroma server (spec/servers/chroma.sh), started once for the
-- whole run on a free port; its base URL
local chroma
function H.chroma()
  if not chroma then
    local port, stop, pid = H.server("spec/servers/chroma.sh")
    chroma = { url = "http://127.0.0.1:" .. port, port = port, stop = stop, pid = pid,
               guard = setmetatable({}, { __gc = stop }) }
  end
  return chroma.url, chroma
end

-- a fresh Chroma database (so each test starts empty): connect options
local ndb = 0
function H.chroma_db()
  local url = H.chroma()
  ndb = ndb + 1
  local name = ("spec_%d_%d"):format(my_pid(), ndb)
  local req = async.http.post(url .. "/api/v2/tenants/default_tenant/databases",
    async.json.encode { name = name }, { headers = { ["content-type"] = "application/json" } })
  local r = async.current_task() and async.await(req) or async.run(function() return async.await(req) end)
  assert(r.status == 200, "creating a Chroma database: " .. r.status .. " " .. r.body)
  return url, { database = name }
end

return H
