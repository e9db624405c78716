-- Tutorial 7.8: an async context manager is a to-be-closed variable whose
-- __close awaits.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

print("\n=== 8. Async context manager ===")

local AsyncDBConnection = {}
AsyncDBConnection.__index = AsyncDBConnection

-- __aenter__: connect
AsyncDBConnection.open = async(function(name)
  print(("[%s] connecting..."):format(name))
  await(async.sleep(0.1))
  print(("[%s] connected"):format(name))
  return setmetatable({ name = name }, AsyncDBConnection)
end)

-- __aexit__: runs when the scope ends, by return, error or cancellation
function AsyncDBConnection:__close()
  print(("[%s] closing connection..."):format(self.name))
  await(async.sleep(0.05))
  print(("[%s] connection closed"):format(self.name))
end

AsyncDBConnection.query = async(function(self, sql)
  await(async.sleep(0.05))
  return "result: " .. sql
end)

local context_manager_demo = async(function()
  local conn <close> = await(AsyncDBConnection.open("primary"))
  local result = await(conn:query("SELECT * FROM vectors"))
  print("query " .. result)
end)   -- closed automatically here

async.run(context_manager_demo)
