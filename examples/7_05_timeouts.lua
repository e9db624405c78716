-- Tutorial 7.5: wait_for, alone and in a batch.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

print("\n=== 5. Timeouts ===")

local slow_operation = async(function(duration)
  await(async.sleep(duration))
  return "finished"
end)

local timeout_demo = async(function()
  local ok, r = pcall(await, async.wait_for(slow_operation(5), 1.0))
  if ok then print("result: " .. r)
  elseif async.TimeoutError:is(r) then print("operation timed out!") end

  print("\nbatch with timeouts:")
  local tasks = {
    async.wait_for(slow_operation(0.5), 1),
    async.wait_for(slow_operation(2), 1),     -- times out
    async.wait_for(slow_operation(0.3), 1),
  }
  local results = await(async.gather(tasks, { return_exceptions = true }))
  for i = 1, results.n do
    if async.TimeoutError:is(results[i]) then print(("  task%d: timed out"):format(i - 1))
    else print(("  task%d: %s"):format(i - 1, results[i])) end
  end
end)

async.run(timeout_demo)
