-- Tutorial 4.4: a timeout around a slow operation.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

local slow_operation = async(function()
  await(async.sleep(10))
  return "Done"
end)

async.run(function()
  -- a 2 second timeout
  local ok, err = pcall(await, async.wait_for(slow_operation(), 2.0))
  if not ok and async.TimeoutError:is(err) then
    print("Operation timed out!")
  end
end)
