-- Tutorial 7.2: three tasks of 1, 0.5 and 0.8 s run together in about 1 s.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

print("\n=== 2. Concurrent execution ===")

local task = async(function(name, delay)
  print(("[%s] start (delay=%ss)"):format(name, delay))
  await(async.sleep(delay))
  print(("[%s] done"):format(name))
  return name .. "_result"
end)

local concurrent_demo = async(function()
  local start = async.time()
  local results = await(async.gather(task("A", 1), task("B", 0.5), task("C", 0.8)))
  print(("\nelapsed: %.2fs (concurrent, not 2.3s)"):format(async.time() - start))
  print(("results: ['%s']"):format(table.concat(results, "', '")))
end)

async.run(concurrent_demo)
