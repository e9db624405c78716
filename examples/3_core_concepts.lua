-- Tutorial 3: coroutine functions vs coroutine objects; the three awaitables.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

local my_coroutine = async(function()
  await(async.sleep(0.1))
  return "done"
end)

local coro = my_coroutine()                 -- nothing runs yet
print(async.iscoroutine(coro), tostring(coro):match("^<coroutine object %a+"))
print(async.run(coro))                      -- now it runs: done

local coro_func = async(function() return "coroutine result" end)

async.run(function()
  -- 1. a coroutine object
  print(await(coro_func()))
  -- 2. a Task: starts on its own, await it for the result
  local task = async.create_task(coro_func())
  print(await(task))
  -- 3. a Future: a placeholder whose result is set elsewhere
  local future = async.Future()
  future:set_result("Future result")
  print(await(future))
  -- gather of tasks
  local t1, t2 = async.create_task(coro_func()), async.create_task(coro_func())
  local results = await(async.gather(t1, t2))
  print(#results .. " results")
end)
