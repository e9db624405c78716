-- docs/reference.md "Streams" (async.stdin, stdout, stderr): the process's
-- standard streams, whether a pipe, a file or a terminal
local H = require "helper"

local function child(code, shell_in, shell_out)
  local script = H.tmpfile()
  local f = assert(io.open(script, "w"))
  f:write('package.cpath = "./?.so;" .. package.cpath\nlocal async = require "async"\nlocal await = async.await\n', code)
  f:close()
  local p = assert(io.popen(("%s lua5.4 %s %s; echo \"exit=$?\""):format(shell_in, script, shell_out)))
  local out = p:read("a")
  p:close()
  os.remove(script)
  return out
end

describe("async.stdin, async.stdout, async.stderr", function()
  local echo = [[
    async.run(function()
      local ticks, stop = 0, false
      local ticker = async.spawn(function() while not stop do await(async.sleep(0.001)); ticks = ticks + 1 end end)
      for line in async.stdin:lines() do await(async.stdout:write("got: ", line, "\n")) end
      stop = true
      await(ticker)
      await(async.stderr:write("to stderr\n"))
      await(async.stdout:write("ticks>0: ", tostring(ticks > 0), "\n"))
    end)
  ]]

  it("read lines from a pipe and write to a pipe, the loop going on meanwhile", function()
    local out = child(echo, "(printf 'one\\n'; sleep 0.1; printf 'two\\n') |", "2>&1 | cat")
    assert.matches("got: one\ngot: two\n", out)
    assert.matches("to stderr", out)
    assert.matches("ticks>0: true", out)
    assert.matches("exit=0", out)
  end)

  it("read from a file and write to a file (the thread pool does those)", function()
    local input, output = H.tmpfile(), H.tmpfile()
    local f = io.open(input, "w"); f:write("a\nb\nlast without newline"); f:close()
    local out = child(echo, "", ("< %s > %s 2>/dev/null"):format(input, output))
    assert.matches("exit=0", out)
    assert.equal("got: a\ngot: b\ngot: last without newline\nticks>0: true\n", H.slurp(output))
    os.remove(input); os.remove(output)
  end)
end)
