-- Tutorial 7.10: retry an async call up to N times with a delay between.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

print("\n=== 10. Practical patterns ===")

local retry_async = async(function(coro_func, max_retries, delay)
  max_retries, delay = max_retries or 3, delay or 0.5
  for attempt = 1, max_retries do
    local ok, result = pcall(await, coro_func())
    if ok then return result end
    if attempt == max_retries then error(result, 0) end
    print(("  attempt %d failed: %s, retrying in %ss"):format(attempt, tostring(result), delay))
    await(async.sleep(delay))
  end
end)

local flaky_operation = async(function()
  if math.random() < 0.7 then error(async.ConnectionError("connection failed"), 0) end
  return "success"
end)

local retry_demo = async(function()
  print("retry pattern:")
  local ok, result = pcall(await, retry_async(flaky_operation, 5, 0.2))
  if ok then print("  final result: " .. result)
  elseif async.ConnectionError:is(result) then print("  every attempt failed") end
end)

if arg[1] then math.randomseed(tonumber(arg[1])) end
async.run(retry_demo)
