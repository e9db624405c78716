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

-- certificates made once a run with openssl: a CA and a leaf it signed for
-- localhost, 127.0.0.1 and ::1 (ca, cert, key), and a self-signed one for
-- localhost (self_cert, self_key); a table of their paths
local certs
function H.certs()
  if certs then return certs end
  local dir = os.tmpname()
  os.remove(dir)
  local ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local steps = {
    "mkdir -p " .. dir .. " && cd " .. dir,
    "openssl req -x509" .. ec .. " -days 2 -subj /CN=lua-async-test-CA -keyout ca.key -out ca.crt",
    "openssl req" .. ec .. " -subj /CN=localhost -keyout leaf.key -out leaf.csr",
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' > leaf.ext",
    "openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out leaf.crt",
    "openssl req -x509" .. ec .. " -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout self.key -out self.crt",
  }
  assert(os.execute("(" .. table.concat(steps, " && ") .. ") >/dev/null 2>&1"), "openssl could not make the test certificates")
  certs = { dir = dir, ca = dir .. "/ca.crt", cert = dir .. "/leaf.crt", key = dir .. "/leaf.key",
            self_cert = dir .. "/self.crt", self_key = dir .. "/self.key",
            guard = setmetatable({}, { __gc = function() os.execute("rm -rf " .. dir) end }) }
  return certs
end

return H
