-- Copy a file with async.fs, a chunk at a time, while a ticker keeps
-- running: file work happens on libuv's thread pool.
-- usage: lua5.4 examples/io_3_copy_file.lua FROM TO
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await
local from, to = arg[1] or arg[0], arg[2] or os.tmpname()

async.run(function()
  local ticks = 0
  local ticker = async.spawn(function() while true do await(async.sleep(0.001)); ticks = ticks + 1 end end)
  local src <close> = await(async.fs.open(from, "r"))
  local dst <close> = await(async.fs.open(to, "w"))
  local bytes = 0
  while true do
    local chunk = await(src:read(65536))
    if not chunk then break end
    await(dst:write(chunk))
    bytes = bytes + #chunk
  end
  await(dst:sync())
  ticker:cancel()
  print(("copied %d bytes to %s; the loop ticked %d times meanwhile"):format(bytes, to, ticks))
end)
