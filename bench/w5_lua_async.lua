-- W5, TCP echo on lua-async: CLIENTS client tasks x TRIPS round trips x
-- SIZE bytes (100 x 1,000 x 64 B; the throughput rows: one client, large
-- messages) against an echo server in the same process.  Prints "W5 <seconds>".
package.cpath = "./?.so;" .. package.cpath
local async = require "async"
local await = async.await
local CLIENTS, TRIPS, SIZE = tonumber(arg[1]) or 100, tonumber(arg[2]) or 1000, tonumber(arg[3]) or 64
local msg = ("x"):rep(SIZE)
async.run(function()
  local sv = await(async.serve(function(s)
    while true do
      local d = await(s:read(65536))
      if not d then break end
      await(s:write(d))
    end
  end, "127.0.0.1", 0))
  local _, port = sv:sockname()
  local t0 = async.time()
  local clients = {}
  for i = 1, CLIENTS do
    clients[i] = async.spawn(function()
      local c = await(async.connect("127.0.0.1", port))
      for _ = 1, TRIPS do
        await(c:write(msg))
        assert(#await(c:read_exactly(SIZE)) == SIZE)
      end
      await(c:close())
    end)
  end
  await(async.gather(clients))
  print(("W5 %.3f"):format(async.time() - t0))
  await(sv:close())
end)
