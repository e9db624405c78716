-- docs/reference.md "Debugging"
local H = require "helper"
local async, await = H.async, H.await

describe("debug mode", function()
  it("names a task that blocks the loop (the time.sleep mistake)", function()
    local out = H.lua([[
      local async = require "async"
      async.set_debug(true)
      async.run(function()
        local t0 = os.clock(); while os.clock() - t0 < 0.25 do end  -- blocking
      end)
    ]])
    assert.matches("Executing <Task name='Task%-%d+'> took 0%.%d%d%d seconds", out)
  end)

  it("is on with LUA_ASYNC_DEBUG=1", function()
    local out = H.lua([[
      local async = require "async"
      print("debug:", async.get_debug())
    ]], "LUA_ASYNC_DEBUG=1")
    assert.matches("debug:%s+true", out)
  end)
  it("a never-retrieved error whose __tostring itself errors is still reported, and run returns main's result", function()
    local out, ok = H.lua([[
      local async = require "async"
      local bad = setmetatable({}, { __tostring = function() error("no tostring for you") end })
      print("run", async.run(function()
        async.spawn(function() error(bad) end)
        async.await(async.sleep(0.01))
        return "main ok"
      end))
      async.set_exception_handler(function() error(bad) end)     -- a hostile handler too
      print("again", async.run(function()
        async.spawn(function() error("plain") end)
        async.await(async.sleep(0.01))
        return "fine"
      end))
    ]])
    assert.is_true(ok, out)
    assert.matches("run%s+main ok", out)
    assert.matches("Task exception was never retrieved", out)
    assert.matches("a table whose __tostring failed", out)
    assert.matches("again%s+fine", out)
    assert.matches("exception handler failed", out)
  end)
  it("run refuses to start while a task from async.start is pending (it would cancel it), and runs once it is done", function()
    local out, ok = H.lua([[
      local async = require "async"
      local hosted = async.start(function() async.await(async.sleep(0.01)); return "host done" end)
      print("refused", pcall(async.run, function() return 1 end))
      while async.step(0.05) do end
      print("host", hosted:result())
      print("run", async.run(function() return "main" end))
    ]])
    assert.is_true(ok, out)
    assert.matches("refused%s+false%s+[^\n]*1 task started with async.start is still pending", out)
    assert.matches("host%s+host done", out)
    assert.matches("run%s+main", out)
  end)
  it("an 'Exception in callback' report carries the traceback of where the callback failed", function()
    local out, ok = H.lua([[
      local async = require "async"
      local function deep_inside() error("in a callback") end
      async.run(function()
        async.call_soon(function() deep_inside() end)
        async.call_later(0.001, function() deep_inside() end)
        async.await(async.sleep(0.01))
      end)
    ]])
    assert.is_true(ok, out)
    local _, reports = out:gsub("Exception in callback", "")
    assert.equal(2, reports)
    local _, traces = out:gsub("in upvalue 'deep_inside'", "")
    assert.equal(2, traces)
  end)
end)
