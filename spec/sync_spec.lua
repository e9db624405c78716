-- API.md section 5: Semaphore, BoundedSemaphore, Lock, Event, Condition, Queue
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
    assert.is_true(dt >= 0.89 and dt < 1.6, "took " .. dt)
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

describe("Queue", function()
  it("put blocks when full (back-pressure) and get when empty, in FIFO order", function()
    async.run(function()
      local q = async.Queue(2)
      local log = {}
      local producer = async.spawn(function()
        for i = 1, 5 do await(q:put(i)); log[#log + 1] = "put " .. i end
      end)
      await(async.sleep(0.01))
      assert.same({ "put 1", "put 2" }, log)
      assert.is_true(q:full())
      local got = {}
      for _ = 1, 5 do got[#got + 1] = await(q:get()) end
      await(producer)
      assert.same({ 1, 2, 3, 4, 5 }, got)
      assert.is_true(q:empty())
    end)
  end)

  it("nowait variants raise QueueFull and QueueEmpty, nil items are refused", function()
    local q = async.Queue(1)
    q:put_nowait("x")
    assert.is_true(async.QueueFull:is(H.catch(q.put_nowait, q, "y")))
    assert.equal(1, q:qsize())
    assert.equal("x", q:get_nowait())
    assert.is_true(async.QueueEmpty:is(H.catch(q.get_nowait, q)))
    assert.matches("cannot be nil", H.catch(q.put_nowait, q, nil))
    assert.equal(0, q:qsize())
  end)

  it("join waits until every item is task_done; too many task_done is an error", function()
    async.run(function()
      local q = async.Queue()
      for i = 1, 3 do q:put_nowait(i) end
      local processed = 0
      async.spawn(function()
        while true do await(q:get()); await(async.sleep(0.001)); processed = processed + 1; q:task_done() end
      end)
      await(q:join())
      assert.equal(3, processed)
      assert.matches("too many times", H.catch(q.task_done, q))
    end)
  end)

  it("shutdown wakes getters with QueueShutDown; immediate drops the items", function()
    async.run(function()
      local q = async.Queue()
      local getter = async.spawn(function() return await(q:get()) end)
      await(async.sleep(0))
      q:shutdown()
      assert.is_true(async.QueueShutDown:is(H.catch(await, getter)))
      assert.is_true(async.QueueShutDown:is(H.catch(q.put_nowait, q, 1)))
      local q2 = async.Queue()
      q2:put_nowait(1); q2:put_nowait(2)
      q2:shutdown(true)
      assert.equal(0, q2:qsize())
      await(q2:join())          -- nothing unfinished
    end)
  end)

  it("a cancelled getter loses no item", function()
    async.run(function()
      local q = async.Queue()
      local g1 = async.spawn(function() return await(q:get()) end)
      local g2 = async.spawn(function() return await(q:get()) end)
      await(async.sleep(0))
      q:put_nowait("only")
      g1:cancel()
      assert.equal("only", await(g2))
      assert.is_true(g1:cancelled())
    end)
  end)
  describe("PriorityQueue and LifoQueue", function()
    it("a PriorityQueue gives the smallest first, FIFO among equal priorities, against a sort of 2,000 random puts", function()
      H.run(async.fn(function()
        math.randomseed(7)
        local q, all = async.PriorityQueue(), {}
        for i = 1, 2000 do
          local p = math.random(1, 50)
          local item = { p, i }
          all[#all + 1] = item
          q:put_nowait(item)
          if i % 7 == 0 then                            -- gets between the puts
            table.sort(all, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
            assert.equal(table.remove(all, 1), await(q:get()))
          end
        end
        table.sort(all, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
        for _, want in ipairs(all) do assert.equal(want, q:get_nowait()) end
        assert.is_true(q:empty())
        local s = async.PriorityQueue()
        for _, w in ipairs { "pear", "apple", "fig" } do s:put_nowait(w) end
        assert.same({ "apple", "fig", "pear" }, { s:get_nowait(), s:get_nowait(), s:get_nowait() })
      end))
    end)

    it("a PriorityQueue refuses keys it cannot order, and changes nothing", function()
      H.run(async.fn(function()
        local q = async.PriorityQueue()
        q:put_nowait(3)
        for _, bad in ipairs { {}, { {} }, 0 / 0, "three", true } do
          assert.has_error(function() q:put_nowait(bad) end)
          assert.has_error(function() await(q:put(bad)) end)
        end
        assert.equal(1, q:qsize())
        assert.equal(3, q:get_nowait())
        q:put_nowait("now strings")                       -- an empty queue takes any one kind
        assert.equal("now strings", q:get_nowait())
      end))
    end)

    it("a LifoQueue gives the newest first; both wait, time out and shut down as Queue does", function()
      H.run(async.fn(function()
        local l = async.LifoQueue(3)
        for i = 1, 3 do await(l:put(i)) end
        assert.is_true(l:full())
        local blocked = async.spawn(function() await(l:put(4)) end)
        await(async.sleep(0))
        assert.is_false(blocked:done())
        assert.equal(3, await(l:get()))
        await(blocked)
        assert.same({ 4, 2, 1 }, { l:get_nowait(), l:get_nowait(), l:get_nowait() })
        local p = async.PriorityQueue()
        assert.is_true(async.TimeoutError:is(select(2, pcall(await, async.wait_for(p:get(), 0.01)))))
        local getter = async.spawn(function() return await(p:get()) end)
        await(async.sleep(0))
        p:put_nowait(5)
        assert.equal(5, await(getter))
        p:put_nowait(1)
        p:shutdown(true)
        assert.equal(0, p:qsize())
        assert.is_true(async.QueueShutDown:is(select(2, pcall(await, p:get()))))
        assert.matches("^<PriorityQueue", tostring(p))
      end))
    end)
  end)
end)
