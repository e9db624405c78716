-- Tutorial 7.3: tasks start at once; the caller does other work meanwhile.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

print("\n=== 3. create_task ===")

local task = async(function(name, delay)
  print(("[%s] start (delay=%ss)"):format(name, delay))
  await(async.sleep(delay))
  print(("[%s] done"):format(name))
  return name .. "_result"
end)

local create_task_demo = async(function()
  local start = async.time()
  -- create_task starts running now (no await needed)
  local task1 = async.create_task(task("Task1", 0.5))
  local task2 = async.create_task(task("Task2", 0.5))
  -- meanwhile, other work
  print("tasks started, doing other things...")
  await(async.sleep(0.1))
  print("other things done")
  -- collect the results when they are needed
  local result1 = await(task1)
  local result2 = await(task2)
  print(("elapsed: %.2fs"):format(async.time() - start))
end)

async.run(create_task_demo)
