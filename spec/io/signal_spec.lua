-- docs/reference.md "Signals and Ctrl-C": async.on_signal, async.signal, and
-- what the first and second SIGINT do to async.run (real signals, sent by
-- kill to this process or to a child lua5.4)
local H = require "helper"
local async, await = H.async, H.await

local function kill_me(sig) os.execute("kill -" .. sig .. " $PPID") end   -- $PPID: this lua5.4

-- run code in a child lua5.4; once it prints "ready", send it the signals
-- (a pause between); its output and whether it exited 0
local function child_with_signals(code, signals)
  local script = H.tmpfile()
  local f = assert(io.open(script, "w"))
  f:write('package.cpath = "./?.so;" .. package.cpath\n', code)
  f:close()
  local out = H.tmpfile()
  local cmd = ("lua5.4 %s > %s 2>&1 & pid=$!; for i in $(seq 200); do grep -q ready %s 2>/dev/null && break; sleep 0.02; done; "
               .. "for s in %s; do kill -$s $pid; sleep 0.3; done; wait $pid; echo \"exit=$?\" >> %s"):format(
               script, out, out, table.concat(signals, " "), out)
  os.execute(cmd)
  local text = H.slurp(out) or ""
  os.remove(script); os.remove(out)
  return text, text:match("exit=(%d+)%s*$")
end

describe("async.on_signal and async.signal", function()
  it("runs every handler of a signal, in the order added, until cancelled", function()
    async.run(function()
      local got = {}
      local h1 = async.on_signal("SIGUSR1", function(s) got[#got + 1] = "first " .. s end)
      local h2 = async.on_signal("SIGUSR1", function(s) got[#got + 1] = "second " .. s end)
      kill_me("USR1")
      for _ = 1, 100 do if #got == 2 then break end await(async.sleep(0.01)) end
      assert.same({ "first SIGUSR1", "second SIGUSR1" }, got)
      h1:cancel()
      h1:cancel()                                    -- twice is fine
      kill_me("USR1")
      for _ = 1, 100 do if #got == 3 then break end await(async.sleep(0.01)) end
      assert.same({ "first SIGUSR1", "second SIGUSR1", "second SIGUSR1" }, got)
      h2:cancel()
    end)
  end)

  it("an error in one handler is reported, and the others still run", function()
    local seen, reported = false, nil
    async.run(function()
      async.set_exception_handler(function(ctx) reported = ctx.message end)
      local a = async.on_signal("SIGUSR2", function() error("handler broke") end)
      local b = async.on_signal("SIGUSR2", function() seen = true end)
      kill_me("USR2")
      for _ = 1, 100 do if seen then break end await(async.sleep(0.01)) end
      a:cancel(); b:cancel()
      async.set_exception_handler(nil)
    end)
    assert.is_true(seen)
    assert.matches("Exception in callback", reported)
  end)

  it("signal(sig) completes at the next signal, and keeps the loop waiting for it", function()
    async.run(function()
      local t = async.spawn(function() return await(async.signal("SIGHUP")) end)
      await(async.sleep(0.01))
      assert.is_false(t:done())
      async.spawn(function() await(async.sleep(0.05)); kill_me("HUP") end)
      assert.equal("SIGHUP", await(t))
    end)
    -- nothing else to wake it: run waits in the kernel for the signal, no deadlock error
    local out, code = child_with_signals([[
      local async = require "async"
      print(async.run(function() print("ready"); io.stdout:flush(); return async.await(async.signal("SIGUSR1")) end))
    ]], { "USR1" })
    assert.equal("0", code, out)
    assert.matches("SIGUSR1", out)
  end)

  it("refuses what is not a signal name", function()
    assert.matches("bad argument #1 to 'on_signal' %(a signal name", H.catch(async.on_signal, "SIGNOPE", print))
    assert.matches("bad argument #2 to 'on_signal' %(function expected", H.catch(async.on_signal, "SIGHUP", 1))
    assert.matches("bad argument #1 to 'signal'", H.catch(async.signal, 9))
  end)
end)

describe("Ctrl-C during async.run", function()
  local script = [[
    local async = require "async"
    local await = async.await
    async.run(function()
      local guard <close> = setmetatable({}, { __close = function()
        await(async.sleep(CLEANUP))                    -- cleanup may await
        print("cleanup done"); io.stdout:flush()
      end })
      print("ready"); io.stdout:flush()
      local ok, e = pcall(await, async.sleep(30))
      print("main saw " .. tostring(e)); io.stdout:flush()
      error(e, 0)
    end)
    print("not reached")
  ]]

  it("the first SIGINT cancels the main task, its cleanup runs, and run raises async.Interrupted", function()
    local out, code = child_with_signals(script:gsub("CLEANUP", "0.05"), { "INT" })
    assert.matches("main saw CancelledError", out)
    assert.matches("cleanup done", out)
    assert.matches("Interrupted: interrupted by SIGINT", out)
    assert.not_matches("not reached", out)
    assert.are_not.equal("0", code)
  end)

  it("a second SIGINT during the cleanup stops at once", function()
    local t0 = os.time()
    local out, code = child_with_signals(script:gsub("CLEANUP", "20"), { "INT", "INT" })
    assert.matches("main saw CancelledError", out)
    assert.not_matches("cleanup done", out)
    assert.are_not.equal("0", code)
    assert.is_true(os.time() - t0 < 20, "it waited for the cleanup")   -- before the cleanup's own 20 s
  end)

  it("a script with its own SIGINT handler gets the signal instead", function()
    local out, code = child_with_signals([[
      local async = require "async"
      async.run(function()
        local stop = async.Future()
        async.on_signal("SIGINT", function() print("handled"); io.stdout:flush(); stop:set_result() end)
        print("ready"); io.stdout:flush()
        async.await(stop)
        print("clean end")
      end)
    ]], { "INT" })
    assert.equal("0", code, out)
    assert.matches("handled", out)
    assert.matches("clean end", out)
  end)
end)
