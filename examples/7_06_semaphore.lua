-- Tutorial 7.6: at most 3 at once: 9 tasks of 0.3 s take about 0.9 s.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

print("\n=== 6. Concurrency limit ===")

local limited_task = async(function(sem, task_id)
  local _ <close> = await(sem:acquire())     -- async with sem:
  print(("[%d] got the semaphore, running"):format(task_id))
  await(async.sleep(0.3))
  print(("[%d] done, releasing"):format(task_id))
  return task_id
end)

local semaphore_demo = async(function()
  local sem = async.Semaphore(3)             -- at most 3 at once
  local start = async.time()
  local tasks = {}
  for i = 0, 8 do tasks[#tasks + 1] = limited_task(sem, i) end
  await(async.gather(tasks))
  print(("\ntotal: %.2fs"):format(async.time() - start))
  print("expected: 9 tasks / 3 at once * 0.3s = 0.9s")
end)

async.run(semaphore_demo)
