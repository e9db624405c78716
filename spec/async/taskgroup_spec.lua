-- docs/reference.md "TaskGroup and Barrier"
local H = require "helper"
local async, await = H.async, H.await

describe("async.TaskGroup", function()
  it("leaving the scope waits for every task of the group", function()
    local order = H.run(async.fn(function()
      local done = {}
      do
        local tg <close> = async.TaskGroup()
        for i = 3, 1, -1 do tg:spawn(function() await(async.sleep(0.005 * i)); done[#done + 1] = i end) end
        tg:spawn(async.fn(function(x) done[#done + 1] = x end)("now"))     -- a coroutine object too
      end
      return done
    end))
    assert.same({ "now", 1, 2, 3 }, order)
  end)

  it("the first task that fails cancels the rest and the body; the scope raises that error", function()
    local ok, e, cancelled, cancelling = H.run(async.fn(function()
      local cancelled = 0
      local ok, e = pcall(function()
        local tg <close> = async.TaskGroup()
        tg:spawn(function() await(async.sleep(0.01)); error("boom", 0) end)
        for _ = 1, 2 do
          tg:spawn(function()
            local ok, err = pcall(await, async.sleep(30))
            if not ok and async.CancelledError:is(err) then cancelled = cancelled + 1 end
            error(err, 0)
          end)
        end
        await(async.sleep(30))                       -- the body is interrupted
        error("not reached")
      end)
      return ok, e, cancelled, async.current_task():cancelling()
    end))
    assert.is_false(ok)
    assert.equal("boom", e)
    assert.equal(2, cancelled)
    assert.equal(0, cancelling)                         -- the group withdrew its own cancellation
  end)

  it("several failures raise an ExceptionGroup with e.errors", function()
    local e = H.run(async.fn(function()
      return select(2, pcall(function()
        local tg <close> = async.TaskGroup()
        tg:spawn(function() error("a", 0) end)
        tg:spawn(function() error("b", 0) end)
      end))
    end))
    assert.is_true(async.ExceptionGroup:is(e))
    table.sort(e.errors)
    assert.same({ "a", "b" }, e.errors)
  end)

  it("an error in the body cancels the tasks, waits for them, and is raised", function()
    local e, finished = H.run(async.fn(function()
      local finished = false
      local ok, e = pcall(function()
        local tg <close> = async.TaskGroup()
        tg:spawn(function()
          local _ <close> = setmetatable({}, { __close = function() await(async.sleep(0.01)); finished = true end })
          await(async.sleep(30))
        end)
        await(async.sleep(0))
        error("body", 0)
      end)
      assert(not ok)
      return e, finished
    end))
    assert.equal("body", e)
    assert.is_true(finished)                            -- its cleanup ran (and awaited) before the scope ended
  end)

  it("a cancelled owner cancels the group and stays cancelled", function()
    local inner_cancelled, owner_err = H.run(async.fn(function()
      local inner
      local owner = async.spawn(function()
        local tg <close> = async.TaskGroup()
        inner = tg:spawn(function() await(async.sleep(30)) end)
        await(async.sleep(30))
      end)
      await(async.sleep(0.01))
      owner:cancel()
      local _, e = pcall(await, owner)
      return inner:cancelled(), e
    end))
    assert.is_true(inner_cancelled)
    assert.is_true(async.CancelledError:is(owner_err))
  end)

  it("refuses tasks once it has finished or is shutting down", function()
    H.run(async.fn(function()
      local tg = async.TaskGroup()
      do local _ <close> = tg end
      assert.has_error(function() tg:spawn(function() end) end, "TaskGroup:spawn: the group has finished")
      local ok = pcall(function()
        local g <close> = async.TaskGroup()
        g:spawn(function() error("x", 0) end)
        await(async.sleep(0.01))
      end)
      assert.is_false(ok)
    end))
  end)
end)

describe("async.Barrier", function()
  it("releases n waiters together, each with its arrival index, and starts again", function()
    local got = H.run(async.fn(function()
      local b, out = async.Barrier(3), {}
      for _ = 1, 2 do
        local ts = {}
        for i = 1, 3 do ts[i] = async.spawn(function() local v = await(b:wait()); out[#out + 1] = v end) end
        await(async.gather(ts))
      end
      return out
    end))
    table.sort(got)
    assert.same({ 0, 0, 1, 1, 2, 2 }, got)
  end)

  it("abort breaks it (waiters and later waits raise BrokenBarrierError) until reset; a cancelled waiter leaves", function()
    H.run(async.fn(function()
      local b = async.Barrier(2)
      local leaving = async.spawn(function() return await(b:wait()) end)
      await(async.sleep(0))
      assert.equal(1, b.n_waiting)
      leaving:cancel()
      assert.is_false((pcall(await, leaving)))
      assert.equal(0, b.n_waiting)
      local w = async.spawn(function() return await(b:wait()) end)
      await(async.sleep(0))
      b:abort()
      local ok, e = pcall(await, w)
      assert.is_false(ok)
      assert.is_true(async.BrokenBarrierError:is(e))
      assert.is_true(async.BrokenBarrierError:is(select(2, pcall(await, b:wait()))))
      b:reset()
      local a = async.spawn(function() return await(b:wait()) end)
      await(async.sleep(0))                               -- a arrives first
      assert.equal(1, await(b:wait()))
      assert.equal(0, await(a))
      assert.has_error(function() async.Barrier(0) end)
    end))
  end)
end)
