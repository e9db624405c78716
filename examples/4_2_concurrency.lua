-- Tutorial 4.2: run several coroutines concurrently.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

local fetch = async(function(id)
  await(async.sleep(0.5))
  return "Result " .. id
end)

local function show(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = ("'%s'"):format(v) end
  return "[" .. table.concat(parts, ", ") .. "]"
end

async.run(function()
  -- way 1: gather (recommended)
  local results = await(async.gather(fetch(1), fetch(2), fetch(3)))
  print(show(results))   -- ['Result 1', 'Result 2', 'Result 3']

  -- way 2: create_task
  local task1 = async.create_task(fetch(1))
  local task2 = async.create_task(fetch(2))
  local result1 = await(task1)
  local result2 = await(task2)
  print(result1, result2)
end)
