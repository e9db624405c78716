package.cpath = "./?.so;" .. package.cpath
local async = require "async"
local task = async.start(function()
  for i = 1, 3 do
    async.await(async.sleep(0.01))
    print("tick " .. i)
  end
  return "done"
end)
local ok, err = pcall(async.run, function() end)
print("run refused: " .. tostring(err))
function finish()
  print("task result: " .. tostring(task:result()))
end
