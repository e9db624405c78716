-- Tutorial 4.1: define and call an async function.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

local greet = async(function(name)
  await(async.sleep(1))   -- stands for an async operation
  return ("Hello, %s!"):format(name)
end)

local main = async(function()
  local result = await(greet("World"))
  print(result)
end)

async.run(main)
