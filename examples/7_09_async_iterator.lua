-- Tutorial 7.9: an async iterator streams vectors one by one.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

print("\n=== 9. Async iterator ===")

local vector_stream = async.generator(function(yield, count)
  for index = 1, count do
    await(async.sleep(0.1))                  -- an async read
    local vector = {}
    for j = 1, 4 do vector[j] = math.random() end
    yield({ id = index, vector = vector })
  end
end)

local async_iterator_demo = async(function()
  print("streaming vectors:")
  for item in vector_stream(3) do             -- async for
    print(("  received: %d"):format(item.id))
  end
end)

async.run(async_iterator_demo)
