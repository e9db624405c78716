-- docs/reference.md "Coroutine objects and await"
local H = require "helper"
local async, await = H.async, H.await

describe("async functions and coroutine objects", function()
  it("calling an async function runs nothing: it returns a coroutine object", function()
    local ran = false
    local f = async(function() ran = true end)
    local co = f()
    assert.is_true(async.iscoroutine(co))
    assert.is_true(async.isawaitable(co))
    assert.is_false(ran)
    H.run(function() await(co) end)
    assert.is_true(ran)
  end)

  it("async.fn is the same as async(f)", function()
    local f = async.fn(function(a, b) return a + b end)
    assert.equal(5, H.run(function() return await(f(2, 3)) end))
  end)

  it("async(f) rejects a non-function with a clear message", function()
    local e = H.catch(async, 42)
    assert.matches("bad argument #1 to 'async' %(function expected, got number%)", e)
  end)

  it("await returns all results of a coroutine object", function()
    local f = async(function() return 1, nil, "three" end)
    local a, b, c = H.run(function() return await(f()) end)
    assert.same({ 1, nil, "three" }, { a, b, c })
  end)

  it("awaiting a coroutine object runs it inline, in the same task", function()
    local inner_task
    local f = async(function() inner_task = async.current_task() end)
    local outer = H.run(function() await(f()); return async.current_task() end)
    assert.equal(outer, inner_task)
  end)

  it("awaits coroutine objects nested 100,000 deep (past Lua's 200 C levels), also through pcall, gather and errors", function()
    local down, guarded, gathered, failing
    down = async(function(n) if n == 0 then await(async.sleep(0)); return 0 end return 1 + await(down(n - 1)) end)
    guarded = async(function(n)
      if n == 0 then return 0 end
      local ok, v = pcall(await, guarded(n - 1))
      assert(ok, v)
      return 1 + v
    end)
    gathered = async(function(n) if n == 0 then return 0 end return 1 + await(async.gather({ gathered(n - 1) }))[1] end)
    failing = async(function(n) if n == 0 then error("at the bottom", 0) end return await(failing(n - 1)) end)
    async.run(function()
      assert.equal(100000, await(down(100000)))
      assert.equal(5000, await(guarded(5000)))
      assert.equal(2000, await(gathered(2000)))
      assert.equal("at the bottom", H.catch(await, failing(1000)))
      -- errors caught at depth leave the task able to await inline, in the same task
      for _ = 1, 500 do assert.equal("at the bottom", H.catch(await, failing(30))) end
      local me = async.current_task()
      assert.equal(me, await(async(function() return async.current_task() end)()))
    end)
  end)

  it("await raises the very value that was raised", function()
    local tbl = { code = 7 }
    local f = async(function(v) error(v, 0) end)
    H.run(function()
      local ok, e = pcall(await, f(tbl))
      assert.is_false(ok); assert.equal(tbl, e)
      ok, e = pcall(await, f("plain string"))
      assert.equal("plain string", e)
    end)
  end)

  it("a coroutine object can be awaited only once", function()
    H.run(function()
      local co = async(function() return 1 end)()
      assert.equal(1, await(co))
      local e = H.catch(await, co)
      assert.is_true(async.InvalidStateError:is(e))
    end)
  end)

  it("await outside a running task raises", function()
    local co = async(function() end)()
    local e = H.catch(await, co)
    assert.matches("await outside of a running task", e)
    H.run(function() await(co) end) -- still usable, and no warning later
  end)

  it("await of a non-awaitable names the argument", function()
    H.run(function()
      local e = H.catch(await, 42)
      assert.matches("bad argument #1 to 'await' %(awaitable", e)
    end)
  end)

  it("await from a plain coroutine inside a task raises, never yielding to the wrong resumer", function()
    H.run(function()
      local co = coroutine.wrap(function() await(async.sleep(0)) end)
      local e = H.catch(co)
      assert.matches("plain coroutine", e)
      await(async.sleep(0))  -- the task itself is fine
    end)
  end)

  it("a bare coroutine.yield inside a task fails that task with a clear error", function()
    H.run(function()
      local t = async.spawn(function() coroutine.yield() end)
      local ok, e = pcall(await, t)
      assert.is_false(ok)
      assert.matches("coroutine.yield%(%) inside a task", e)
    end)
  end)

  it("await inside a callback that cannot yield gives a clear error", function()
    H.run(function()
      local e = H.catch(table.sort, { 3, 1, 2 }, function(a, b) await(async.sleep(0)); return a < b end)
      assert.matches("cannot suspend here", e)
    end)
  end)

  it("warns when a coroutine object is never awaited, naming where it was created", function()
    local out = H.lua([[
      local async = require "async"
      local f = async(function() end)
      local co = f()
      co = nil
      collectgarbage(); collectgarbage()
    ]])
    assert.matches("was never awaited", out)
    assert.matches("created at .-:4", out)
  end)

  it("in debug mode, the warning carries the creation traceback", function()
    local out = H.lua([[
      local async = require "async"
      async.set_debug(true)
      local f = async(function() end)
      local function make() return f() end
      local co = make()
      co = nil
      collectgarbage(); collectgarbage()
    ]])
    assert.matches("was never awaited; created at stack traceback", out)
    assert.matches("in local 'make'", out)
  end)

  it("does not warn for coroutine objects that were awaited or scheduled", function()
    local out = H.lua([[
      local async = require "async"
      local f = async(function() end)
      async.run(function() async.await(f()); async.await(async.create_task(f())) end)
      collectgarbage(); collectgarbage()
    ]])
    assert.not_matches("never awaited", out)
  end)
end)
