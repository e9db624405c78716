-- W5, TCP echo on lua-async: 100 client tasks x 1,000 round trips x 64 B
-- against an echo server in the same process.  Prints "W5 <seconds>".
package.cpath = "./?.so;" .. package.cpath
local async = require "async"
local await = async.await
local CLIENTS, TRIPS = tonumber(arg[1]) or 100, tonumber(arg[2]) or 1000
local msg = ("x"):rep(63) .. "\n"
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
        assert(#await(c:read_exactly(64)) == 64)
      end
      await(c:close())
    end)
  end
  await(async.gather(clients))
  print(("W5 %.3f"):format(async.time() - t0))
  await(sv:close())
end)
