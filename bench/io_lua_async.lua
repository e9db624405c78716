-- The I/O rows of make bench on lua-async (issue 15), one per run:
--   exec N        N sequential exec{"true"} + wait     -> "exec <seconds>"
--   read_file P   async.fs.read_file(P)                -> "read_file <seconds>"
--   idle N        N idle connected TCP connections (both ends in this
--                 process: 2N streams), each end's handler waiting in a
--                 read                                 -> "idle <bytes per stream>"
package.cpath = "./?.so;" .. package.cpath
local async = require "async"
local await = async.await
local what, arg2 = arg[1], arg[2]

local function rss()                            -- resident bytes, from /proc
  local f = assert(io.open("/proc/self/statm"))
  local pages = f:read("n"); pages = f:read("n")
  f:close()
  return pages * 4096
end

async.run(function()
  if what == "exec" then
    local n = tonumber(arg2) or 1000
    local t0 = async.time()
    for _ = 1, n do
      local p = await(async.process.exec({ "true" }))
      assert(await(p:wait()) == 0)
    end
    print(("exec %.3f"):format(async.time() - t0))
  elseif what == "read_file" then
    local t0 = async.time()
    local data = await(async.fs.read_file(arg2))
    print(("read_file %.3f"):format(async.time() - t0), #data)
  elseif what == "idle" then
    local n = tonumber(arg2) or 10000
    local sv = await(async.serve(function(s) await(s:read()) end, "127.0.0.1", 0, { backlog = 4096 }))
    local _, port = sv:sockname()
    collectgarbage(); collectgarbage()
    local before = rss()
    local clients = {}
    for i = 1, n do clients[i] = await(async.connect("127.0.0.1", port)) end
    for _ = 1, 10 do await(async.sleep(0.01)) end      -- every handler started and waits
    collectgarbage(); collectgarbage()
    print(("idle %.0f"):format((rss() - before) / (2 * n)))
    for _, c in ipairs(clients) do c:abort() end
    await(sv:close())
  end
end)
