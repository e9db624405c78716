-- docs/reference.md "Locks, semaphores, events, conditions"
local H = require "helper"
local async, await = H.async, H.await

describe("Semaphore", function()
  it("limits concurrency: 9 tasks of 0.3 s under Semaphore(3) take about 0.9 s (tutorial 7.6)", function()
    local sem = async.Semaphore(3)
    local running, peak = 0, 0
    local limited = async(function(i)
      local _ <close> = await(sem:acquire())
      running = running + 1; peak = math.max(peak, running)
      await(async.sleep(0.3))
      running = running - 1
      return i
    end)
    local t0 = async.time()
    local r = async.run(function()
      local cs = {}
      for i = 1, 9 do cs[i] = limited(i) end
      return await(async.gather(cs))
    end)
    local dt = async.time() - t0
    assert.equal(3, peak)
    assert.equal(9, r[9])
    -- three at a time: at least 3 rounds of 0.3 s, and less than the 2.7 s of one at a time
    assert.is_true(dt >= 0.89 and dt < 2.7, "took " .. dt)
    assert.equal(3, sem:value())
  end)

  it("serves waiters first come, first served", function()
    local order = {}
    async.run(function()
      local sem = async.Semaphore(1)
      local g = await(sem:acquire())
      local ts = {}
      for i = 1, 5 do
        ts[i] = async.spawn(function() local _ <close> = await(sem:acquire()); order[#order + 1] = i end)
      end
      await(async.sleep(0))
      assert.is_true(sem:locked())
      g:release()
      await(async.gather(ts))
    end)
    assert.same({ 1, 2, 3, 4, 5 }, order)
  end)

  it("the guard releases at scope exit, also on error; release() early makes __close do nothing", function()
    async.run(function()
      local sem = async.Semaphore(2)
      pcall(function()
        local _ <close> = await(sem:acquire())
        assert.equal(1, sem:value())
        error("boom")
      end)
      assert.equal(2, sem:value())
      do
        local g <close> = await(sem:acquire())
        g:release()
        assert.equal(2, sem:value())
      end
      assert.equal(2, sem:value())
    end)
  end)

  it("a cancelled waiter does not take a slot", function()
    async.run(function()
      local sem = async.Semaphore(1)
      local g = await(sem:acquire())
      local w = async.spawn(function() await(sem:acquire()) end)
      local got = false
      local w2 = async.spawn(function() local _ <close> = await(sem:acquire()); got = true end)
      await(async.sleep(0))
      w:cancel()
      g:release()
      await(w2)
      assert.is_true(got)
      assert.is_true(w:cancelled())
      assert.equal(1, sem:value())
    end)
  end)

  it("stale waiters (cancelled, finished and collected, or waiting again) are skipped in FIFO order", function()
    async.run(function()
      local sem = async.Semaphore(1)
      local g = await(sem:acquire())
      local order, ts = {}, {}
      local function waiter(i)
        return async.spawn(function()
          local ok = pcall(function() local _ <close> = await(sem:acquire()); order[#order + 1] = i end)
          if not ok then                        -- cancelled: wait again, at the back now
            local _ <close> = await(sem:acquire())
            order[#order + 1] = -i
          end
        end)
      end
      for i = 1, 200 do ts[i] = waiter(i) end
      await(async.sleep(0))
      for i = 1, 200, 2 do ts[i]:cancel() end   -- odd ones: cancelled once, then wait again
      await(async.sleep(0))
      -- gone for good: tasks that waited, were cancelled and are collected
      local gone = {}
      for i = 1, 100 do gone[i] = async.spawn(function() await(sem:acquire()) end) end
      await(async.sleep(0))
      for i = 1, 100 do gone[i]:cancel() end
      await(async.sleep(0))
      gone = nil
      collectgarbage(); collectgarbage()
      g:release()
      await(async.gather(ts))
      local want = {}
      for i = 2, 200, 2 do want[#want + 1] = i end
      for i = 1, 200, 2 do want[#want + 1] = -i end
      assert.same(want, order)
      assert.equal(1, sem:value())
    end)
  end)

  it("a cancellation withdrawn (uncancel) before it reaches a waiter leaves it waiting: no slot is taken", function()
    async.run(function()
      local sem = async.Semaphore(1)
      local g = await(sem:acquire())
      local got = false
      local w = async.spawn(function() local _ <close> = await(sem:acquire()); got = true end)
      await(async.sleep(0))
      w:cancel(); w:uncancel()
      await(async.sleep(0.01))
      assert.is_false(got)                      -- still waiting: the semaphore is held
      assert.equal(0, sem:value())
      g:release()
      await(w)
      assert.is_true(got)
      assert.equal(1, sem:value())
    end)
  end)

  it("BoundedSemaphore raises when released above its start value", function()
    local b = async.BoundedSemaphore(1)
    assert.matches("released too many times", H.catch(b.release, b))
    assert.equal(1, b:value())
  end)

  it("rejects a bad initial value", function()
    assert.matches("non%-negative integer", H.catch(async.Semaphore, -1))
  end)
end)

describe("shared library awaitables", function()
  it("sem:acquire(), q:get() and sleep(0) may be awaited again: each await acts anew", function()
    async.run(function()
      local sem = async.Semaphore(2)
      local acq = sem:acquire()
      local g1, g2 = await(acq), await(acq)
      assert.equal(0, sem:value())
      g1:release(); g2:release()
      local q = async.Queue()
      q:put_nowait("a"); q:put_nowait("b")
      local get = q:get()
      local r = await(async.gather(get, get))
      assert.same({ "a", "b" }, { r[1], r[2] })
      local nap = async.sleep(0)
      await(nap); await(nap)
      assert.is_true(async.iscoroutine(nap))
      local tick = async.sleep(0.01)
      assert.equal(tick, async.sleep(0.01))        -- the latest delay's awaitable, shared
      local t0 = async.time()
      await(tick); await(tick)
      assert.is_true(async.time() - t0 >= 0.02)      -- two sleeps, not one
    end)
  end)
end)

describe("Lock", function()
  it("is exclusive, and releasing an unacquired lock is an error", function()
    async.run(function()
      local lock = async.Lock()
      assert.is_false(lock:locked())
      local inside, max = 0, 0
      local function worker()
        local _ <close> = await(lock:acquire())
        inside = inside + 1; max = math.max(max, inside)
        await(async.sleep(0.001))
        inside = inside - 1
      end
      await(async.gather(async.fn(worker)(), async.fn(worker)(), async.fn(worker)()))
      assert.equal(1, max)
      assert.matches("not acquired", H.catch(lock.release, lock))
      assert.is_false(lock:locked())
    end)
  end)
end)

describe("Event", function()
  it("wakes every waiter on set; clear resets it", function()
    async.run(function()
      local ev = async.Event()
      local woke = 0
      local ts = {}
      for i = 1, 3 do ts[i] = async.spawn(function() await(ev:wait()); woke = woke + 1 end) end
      await(async.sleep(0.01))
      assert.equal(0, woke)
      ev:set()
      assert.is_true(ev:is_set())
      await(async.gather(ts))
      assert.equal(3, woke)
      assert.is_true(await(ev:wait()))
      ev:clear()
      assert.is_false(ev:is_set())
    end)
  end)
end)

describe("Condition", function()
  it("notify wakes n waiters; wait_for waits for a predicate", function()
    async.run(function()
      local cond = async.Condition()
      local items, got = {}, {}
      local consumers = {}
      for i = 1, 2 do
        consumers[i] = async.spawn(function()
          local _ <close> = await(cond:acquire())
          await(cond:wait_for(function() return #items > 0 end))
          got[#got + 1] = table.remove(items, 1)
        end)
      end
      await(async.sleep(0.01))
      do
        local _ <close> = await(cond:acquire())
        items[1] = "a"; items[2] = "b"
        cond:notify_all()
      end
      await(async.gather(consumers))
      table.sort(got)
      assert.same({ "a", "b" }, got)
    end)
  end)

  it("wait and notify need the lock", function()
    async.run(function()
      local cond = async.Condition()
      assert.matches("not acquired", H.catch(cond.notify, cond))
      assert.matches("not acquired", H.catch(await, cond:wait()))
    end)
  end)
end)
