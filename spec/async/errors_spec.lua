-- docs/reference.md "Errors" and "Tasks" (errors nobody retrieved)
local H = require "helper"
local async, await = H.async, H.await

describe("errors nobody retrieved", function()
  it("are reported with traceback as 'Task exception was never retrieved'", function()
    local out = H.lua([[
      local async = require "async"
      async.run(function()
        async.spawn(function() error("lost error") end)
        async.await(async.sleep(0.01))
      end)
    ]])
    assert.matches("Task exception was never retrieved", out)
    assert.matches("lost error", out)
    assert.matches("stack traceback", out)
  end)

  it("are reported when the task is collected, while the loop runs", function()
    local out = H.lua([[
      local async = require "async"
      async.run(function()
        async.spawn(function() error("collected error") end)
        async.await(async.sleep(0.01))
        collectgarbage(); collectgarbage()
        io.stderr:write("after collect\n")
      end)
    ]])
    local report = out:find("Task exception was never retrieved", 1, true)
    local after = out:find("after collect", 1, true)
    assert.is_truthy(report); assert.is_truthy(after)
    assert.is_true(report < after)
    assert.matches("collected error", out)
  end)

  it("are not reported once retrieved", function()
    local out = H.lua([[
      local async = require "async"
      async.run(function()
        local t = async.spawn(function() error("seen") end)
        async.await(async.sleep(0.01))
        assert(t:exception())
      end)
      collectgarbage()
    ]])
    assert.not_matches("never retrieved", out)
  end)

  it("go to set_exception_handler when one is set", function()
    local got
    async.set_exception_handler(function(ctx) got = ctx end)
    async.run(function()
      async.spawn(function() error("handled", 0) end)
      await(async.sleep(0.01))
    end)
    async.set_exception_handler(nil)
    assert.equal("handled", got.exception)
    assert.matches("never retrieved", got.message)
    assert.is_true(async.istask(got.task))
  end)
end)

describe("error classes", function()
  it("have :is, message, and tostring 'Class: message'", function()
    local e = async.TimeoutError("too slow")
    assert.is_true(async.TimeoutError:is(e))
    assert.is_false(async.CancelledError:is(e))
    assert.is_false(async.TimeoutError:is("string"))
    assert.equal("too slow", e.message)
    assert.equal("TimeoutError: too slow", tostring(e))
    for _, name in ipairs { "CancelledError", "TimeoutError", "InvalidStateError", "QueueEmpty",
                            "QueueFull", "QueueShutDown", "ConnectionError" } do
      assert.is_true(async.Error:is(async[name]("x")), name)
    end
  end)

  it("traceback(e) gives where a task's error was raised, also for strings", function()
    async.run(function()
      local function deep() error("deep string error", 0) end
      local t = async.spawn(function() deep() end)
      local e = H.catch(await, t)
      assert.equal("deep string error", e)
      assert.matches("'deep'", async.traceback(e) or "")
      local tbl = {}
      local t2 = async.spawn(function() error(tbl) end)
      assert.equal(tbl, H.catch(await, t2))
      assert.matches("stack traceback", async.traceback(tbl))
    end)
  end)

  it("an error that escapes async.run keeps, unchanged, the traceback of where it was first raised", function()
    local function origin() error("escaped string error") end
    local tbl = setmetatable({}, { __tostring = function() return "escaped table error" end })
    local function origin_tbl() error(tbl) end
    for _, case in ipairs({ { origin, "escaped string error" }, { origin_tbl, tbl } }) do
      local ok, e = pcall(async.run, function()
        local inner = async.spawn(function() case[1]() end)           -- a task two awaits below main
        local middle = async.spawn(function() return await(inner) end)
        return await(middle)
      end)
      assert.is_false(ok)
      if type(case[2]) == "string" then assert.matches(case[2] .. "$", e) else assert.equal(tbl, e) end
      local tb = async.traceback(e) or ""
      -- the line that raised it, not the awaits that passed it on
      assert.matches("errors_spec%.lua:" .. debug.getinfo(case[1], "S").linedefined .. ":", tb)
    end
  end)

  it("in debug mode, async.run writes where an escaping error was raised before raising it", function()
    local out, ok = H.lua([[
      local async = require "async"
      local function raiser() error("from the task") end
      async.run(function() await = async.await; await(async.spawn(function() raiser() end)) end)
    ]], "LUA_ASYNC_DEBUG=1")
    assert.is_false(ok)
    assert.matches("async.run: the main task failed: [^\n]*from the task\nstack traceback:[^\n]*\n[^\n]*\n[^\n]*'raiser'", out)
    local out2 = H.lua([[
      local async = require "async"
      print(pcall(async.run, function() error("quiet") end))
    ]])
    assert.not_matches("main task failed", out2)
  end)

  it("traceback(e) works for number and boolean errors, and such records stay bounded", function()
    async.run(function()
      local function deepnum() error(4242) end
      assert.equal(4242, H.catch(await, async.spawn(function() deepnum() end)))
      assert.matches("'deepnum'", async.traceback(4242) or "")
      assert.equal(false, H.catch(await, async.spawn(function() error(false) end)))
      assert.matches("stack traceback", async.traceback(false) or "")
      assert.equal("#", H.catch(await, async.spawn(function() error("#", 0) end)))
      assert.matches("stack traceback", async.traceback("#") or "")   -- no key of ours in the way
      -- values that are never collected: the oldest records go, the newest stay
      local ts = {}
      for i = 1, 1500 do ts[i] = async.spawn(function() error(1e6 + i) end) end
      local r = await(async.gather(ts, { return_exceptions = true }))
      assert.equal(1e6 + 1500, r[1500])
      assert.is_nil(async.traceback(1e6 + 1))
      assert.matches("stack traceback", async.traceback(1e6 + 1500) or "")
    end)
  end)
end)
