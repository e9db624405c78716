-- Tutorial 7.1: the simplest async function.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

print("=== 1. Basic async function ===")

local simple_async = async(function()
  print("async operation started")
  await(async.sleep(0.5))
  print("async operation finished")
  return "result"
end)

local result = async.run(simple_async)
print("returned: " .. result)
