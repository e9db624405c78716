-- Tutorial 6, pitfall 3: a blocking sleep inside an async function stops
-- every task.  Debug mode names the task that blocked the loop.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await
async.set_debug(true)

local bad_sleep = async(function()
  print("start")
  os.execute("sleep 0.5")      -- blocks the whole thread: everyone waits
  print("end")
end)

local good_sleep = async(function()
  print("start")
  await(async.sleep(0.5))      -- pauses only this coroutine
  print("end")
end)

local t0 = async.time()
async.run(function() await(async.gather(bad_sleep(), bad_sleep())) end)
print(("bad: %.1f s (one after the other)"):format(async.time() - t0))
t0 = async.time()
async.run(function() await(async.gather(good_sleep(), good_sleep())) end)
print(("good: %.1f s (together)"):format(async.time() - t0))
