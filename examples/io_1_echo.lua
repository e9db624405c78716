-- An echo server and its client, on one loop: async.serve runs each
-- connection's handler as a Task; async.connect gives a stream.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

async.run(function()
  local server = await(async.serve(function(stream)
    for line in stream:lines() do
      await(stream:write("echo: ", line, "\n"))
    end
  end, "127.0.0.1", 0))                             -- port 0: a free port
  local host, port = server:sockname()
  print(("listening on %s:%d"):format(host, port))

  local client <close> = await(async.connect(host, port))
  for _, word in ipairs({ "hello", "world" }) do
    await(client:write(word, "\n"))
    print(await(client:read("l")))
  end
  await(server:close())
end)
