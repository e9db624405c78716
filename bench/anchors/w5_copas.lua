-- W5 on copas (LuaSocket): CLIENTS coroutines x TRIPS round trips x SIZE bytes
-- against an echo server in the same process.  Prints "W5 <seconds>".
-- (Debian's lua-copas is 1.x, in its Lua 5.2 directory; it runs on 5.4.)
package.path = package.path .. ";/usr/share/lua/5.2/?.lua"
local copas = require "copas"
local socket = require "socket"
local CLIENTS, TRIPS, SIZE = tonumber(arg[1]) or 100, tonumber(arg[2]) or 1000, tonumber(arg[3]) or 64
local msg = ("x"):rep(SIZE)
local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
copas.addserver(server, function(raw)
  raw:setoption("tcp-nodelay", true)
  local conn = copas.wrap(raw)               -- (copas 1.x hands the handler the raw socket)
  while true do
    local d, err, partial = conn:receive(SIZE)
    d = d or partial
    if d and #d > 0 then conn:send(d) end
    if err then break end
  end
end)
local done, t0 = 0, socket.gettime()
for _ = 1, CLIENTS do
  copas.addthread(function()
    local raw = socket.tcp()
    assert(copas.connect(raw, "127.0.0.1", port))
    raw:setoption("tcp-nodelay", true)
    local c = copas.wrap(raw)
    for _ = 1, TRIPS do
      c:send(msg)
      local got, err = c:receive(SIZE)
      assert(got and #got == SIZE, err)
    end
    raw:close()
    done = done + 1
    if done == CLIENTS then
      print(("W5 %.3f"):format(socket.gettime() - t0))
    end
  end)
end
while done < CLIENTS do copas.step(0.1) end   -- copas 1.x: loop() never returns
