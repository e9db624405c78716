-- W5 on cqueues sockets: CLIENTS coroutines x TRIPS round trips x SIZE bytes
-- against an echo server in the same process.  Prints "W5 <seconds>".
local cqueues = require "cqueues"
local socket = require "cqueues.socket"
local CLIENTS, TRIPS, SIZE = tonumber(arg[1]) or 100, tonumber(arg[2]) or 1000, tonumber(arg[3]) or 64
local msg = ("x"):rep(SIZE)
local cq = cqueues.new()
local server = socket.listen("127.0.0.1", 0)
server:listen()
local _, _, port = server:localname()
local done = 0
local t0
cq:wrap(function()
  for conn in server:clients() do
    cq:wrap(function()
      conn:setmode("b", "bn")
      while true do
        local d = conn:read(-65536)
        if not d then break end
        conn:write(d); conn:flush()
      end
      conn:close()
    end)
    if done == CLIENTS then break end
  end
end)
t0 = cqueues.monotime()
for _ = 1, CLIENTS do
  cq:wrap(function()
    local c = socket.connect("127.0.0.1", port)
    c:setmode("b", "bn")
    c:connect()
    for _ = 1, TRIPS do
      c:write(msg); c:flush()
      assert(#c:read(SIZE) == SIZE)
    end
    c:close()
    done = done + 1
    if done == CLIENTS then
      print(("W5 %.3f"):format(cqueues.monotime() - t0))
      os.exit(0)                              -- (the accept loop still waits)
    end
  end)
end
assert(cq:loop())
