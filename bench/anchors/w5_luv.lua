-- W5 on luv, with hand-written coroutines over its callbacks: CLIENTS x
-- TRIPS round trips x SIZE bytes against an echo server in the same
-- process.  Prints "W5 <seconds>".
local uv = require "luv"
local CLIENTS, TRIPS, SIZE = tonumber(arg[1]) or 100, tonumber(arg[2]) or 1000, tonumber(arg[3]) or 64
local msg = ("x"):rep(SIZE)

-- a coroutine-style stream: read_exactly(n) and write(data) suspend the caller
local function stream(tcp)
  local buf, waiting, want = {}, nil, 0
  local have = 0
  tcp:read_start(function(err, data)
    assert(not err, err)
    if data then buf[#buf + 1] = data; have = have + #data end
    if waiting and (have >= want or not data) then
      local co = waiting; waiting = nil
      assert(coroutine.resume(co))
    end
  end)
  local s = {}
  function s.read_exactly(n)
    if have < n then want = n; waiting = coroutine.running(); coroutine.yield() end
    local all = table.concat(buf)
    buf = { all:sub(n + 1) }; have = have - n
    return all:sub(1, n)
  end
  function s.write(data)
    local co = coroutine.running()
    tcp:write(data, function() assert(coroutine.resume(co)) end)
    coroutine.yield()
  end
  return s
end

local server = uv.new_tcp()
server:bind("127.0.0.1", 0)
server:listen(511, function()
  local c = uv.new_tcp()
  server:accept(c)
  c:nodelay(true)
  c:read_start(function(err, data)
    if data then c:write(data) else c:close() end
  end)
end)
local port = server:getsockname().port
local done, t0 = 0, uv.hrtime()
for _ = 1, CLIENTS do
  local tcp = uv.new_tcp()
  tcp:connect("127.0.0.1", port, function(err)
    assert(not err, err)
    tcp:nodelay(true)
    coroutine.wrap(function()
      local s = stream(tcp)
      for _ = 1, TRIPS do
        s.write(msg)
        assert(#s.read_exactly(SIZE) == SIZE)
      end
      tcp:close()
      done = done + 1
      if done == CLIENTS then
        print(("W5 %.3f"):format((uv.hrtime() - t0) / 1e9))
        server:close()
      end
    end)()
  end)
end
uv.run()
