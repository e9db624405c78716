-- Ctrl-C: the first one cancels the main task, so its cleanup runs (and
-- may await); async.run then raises async.Interrupted.  A second Ctrl-C
-- during the cleanup stops at once.  Run it and press Ctrl-C.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

local ok, err = pcall(async.run, function()
  local cleanup <close> = setmetatable({}, { __close = function()
    print("cleaning up (one second; Ctrl-C again to stop at once)...")
    await(async.sleep(1))
    print("clean")
  end })
  print("working; press Ctrl-C")
  await(async.sleep(3600))
end)
print(async.Interrupted:is(err) and "interrupted, cleanly" or tostring(err))
