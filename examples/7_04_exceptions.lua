-- Tutorial 7.4: catching errors from one await and from gather.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

print("\n=== 4. Exceptions ===")

local ValueError = async.class("ValueError")

local might_fail = async(function(should_fail)
  await(async.sleep(0.1))
  if should_fail then error(ValueError("simulated error")) end
  return "success"
end)

local exception_demo = async(function()
  local ok, e = pcall(await, might_fail(true))
  if not ok and ValueError:is(e) then print("caught: " .. e.message) end

  print("\ngather error handling:")
  local results = await(async.gather({ might_fail(false), might_fail(true), might_fail(false) },
                                     { return_exceptions = true }))
  for i = 1, results.n do
    local r = results[i]
    if ValueError:is(r) then print(("  task%d: failed - %s"):format(i - 1, r.message))
    else print(("  task%d: %s"):format(i - 1, r)) end
  end
end)

async.run(exception_demo)
