-- A subprocess: its output read while other tasks go on, and communicate
-- for input and both outputs at once.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

async.run(function()
  local p = await(async.process.exec({ "ls", "/" }, { stdout = "pipe" }))
  local entries = 0
  for _ in p.stdout:lines() do entries = entries + 1 end
  print(("ls / listed %d entries, exit code %d"):format(entries, await(p:wait())))

  local sort = await(async.process.exec({ "sort" }, { stdin = "pipe", stdout = "pipe" }))
  local out, _, code = await(sort:communicate("pear\napple\nfig\n"))
  io.write(out)
  print("sort exited with", code)
end)
