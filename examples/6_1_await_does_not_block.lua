-- Tutorial 6, pitfall 1: await does not block the whole program.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

local task_a = async(function()
  print("A: start")
  await(async.sleep(2))   -- pauses A, not B
  print("A: end")
end)

local task_b = async(function()
  print("B: start")
  await(async.sleep(1))   -- pauses B, not A
  print("B: end")
end)

local t0 = async.time()
async.run(function() await(async.gather(task_a(), task_b())) end)
print(("total: %.1f s, not 3 s"):format(async.time() - t0))
