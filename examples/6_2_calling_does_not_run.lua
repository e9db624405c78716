-- Tutorial 6, pitfall 2: calling an async function does not run it.
-- Run with lua5.4 -W to see the "was never awaited" warning.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

local fetch = async(function()
  print("fetching data...")
  return "data"
end)

local function wrong()
  local result = fetch()   -- only creates a coroutine object!
  print(result)            -- <coroutine object created: ...>
end                        -- warning: ... was never awaited

local right = async(function()
  local result = await(fetch())   -- now it runs
  print(result)                   -- data
end)

wrong()
collectgarbage()
async.run(right)
