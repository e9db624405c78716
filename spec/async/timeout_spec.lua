-- docs/reference.md "Timeouts"
local H = require "helper"
local async, await = H.async, H.await

local elapsed = H.elapsed

local slow_operation = async(function(d) await(async.sleep(d)); return "done" end)

describe("wait_for", function()
  it("gives the results in time, else cancels and raises TimeoutError", function()
    async.run(function()
      assert.equal("done", await(async.wait_for(slow_operation(0.01), 1)))
      local t0 = async.time()
      local e = H.catch(await, async.wait_for(slow_operation(5), 0.1))
      assert.is_true(async.TimeoutError:is(e))
      assert.matches("^TimeoutError", tostring(e))
      assert.is_true(async.time() - t0 < 5)          -- before the operation would have ended
      assert.equal("done", await(async.wait_for(slow_operation(0.01), nil)))
    end)
  end)

  it("waits for the awaitable to finish cancelling before raising", function()
    local cleaned = false
    async.run(function()
      local op = async(function()
        local _ <close> = setmetatable({}, { __close = function() await(async.sleep(0.02)); cleaned = true end })
        await(async.sleep(5))
      end)
      assert.is_true(async.TimeoutError:is(H.catch(await, async.wait_for(op(), 0.01))))
      assert.is_true(cleaned)
    end)
  end)

  it("gathered with return_exceptions: only the slow one times out (tutorial 7.5)", function()
    async.run(function()
      local r = await(async.gather({
        async.wait_for(slow_operation(0.05), 0.2),
        async.wait_for(slow_operation(1), 0.2),
        async.wait_for(slow_operation(0.03), 0.2),
      }, { return_exceptions = true }))
      assert.equal("done", r[1]); assert.is_true(async.TimeoutError:is(r[2])); assert.equal("done", r[3])
    end)
  end)

  it("does not swallow an outer cancellation", function()
    async.run(function()
      local t = async.spawn(function() await(async.wait_for(async.sleep(5), 2)) end)
      await(async.sleep(0.01))
      t:cancel()
      assert.is_true(async.CancelledError:is(H.catch(await, t)))
    end)
  end)
end)

describe("timeout scopes", function()
  it("turn the deadline's cancellation into TimeoutError when the scope exits", function()
    async.run(function()
      local scope
      local e = H.catch(await, async(function()
        local t <close> = async.timeout(0.05)
        scope = t
        await(async.sleep(5))
      end)())
      assert.is_true(async.TimeoutError:is(e))
      assert.is_true(scope:expired())
    end)
  end)

  it("do nothing when the work finishes in time; reschedule moves the deadline", function()
    async.run(function()
      do
        local t <close> = async.timeout(1)
        await(async.sleep(0.01))
        assert.is_false(t:expired())
      end
      local e = H.catch(await, async(function()
        local t <close> = async.timeout(10)
        t:reschedule(0.02)
        await(async.sleep(1))
      end)())
      assert.is_true(async.TimeoutError:is(e))
      do
        local t <close> = async.timeout(0.01)
        t:reschedule(nil)          -- no deadline any more
        await(async.sleep(0.03))
      end
    end)
  end)

  it("need a running task", function()
    assert.matches("inside a running task", H.catch(async.timeout, 1))
  end)
end)

describe("async.timeout_at", function()
  it("expires at an absolute time on async.time()'s clock; reschedule_at moves it", function()
    H.run(async.fn(function()
      local t0 = async.time()
      local ok, e = pcall(function()
        local t <close> = async.timeout_at(async.time() + 0.02)
        assert.near(t0 + 0.02, t:when(), 0.005)
        await(async.sleep(10))
      end)
      assert.is_false(ok)
      assert.is_true(async.TimeoutError:is(e))
      assert.is_true(async.time() - t0 >= 0.02)
      local scope <close> = async.timeout_at(nil)
      local at = async.time() + 60
      scope:reschedule_at(at)
      assert.equal(at, scope:when())
      await(async.sleep(0.01))
      assert.is_false(scope:expired())
      scope:reschedule_at(nil)
      assert.is_nil(scope:when())
    end))
  end)
end)
