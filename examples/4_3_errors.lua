-- Tutorial 4.3: errors, one await at a time and through gather.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

local ValueError = async.class("ValueError")

local fetch = async(function(id)
  await(async.sleep(0.5))
  return "Result " .. id
end)

local risky_operation = async(function()
  await(async.sleep(0.1))
  error(ValueError("Something went wrong"))
end)

async.run(function()
  -- one coroutine: pcall is the try/except
  local ok, e = pcall(await, risky_operation())
  if not ok and ValueError:is(e) then
    print("Caught: " .. e.message)
  end

  -- gather: errors come back in the list
  local results = await(async.gather({ fetch(1), risky_operation(), fetch(3) },
                                     { return_exceptions = true }))
  for _, r in ipairs(results) do
    if ValueError:is(r) then print("Error: " .. r.message)
    else print("Result: " .. r) end
  end
end)
