-- docs/reference.md "Cancellation", "Timeouts", "Locks, semaphores, events, conditions":
-- cases from CPython 3.13's own asyncio tests, translated to our API.  Each
-- `it` names the asyncio test it mirrors (file: Class.test_name).
local H = require "helper"
local async, await = H.async, H.await
local vdb = require "vdb"

local CancelledError, TimeoutError = async.CancelledError, async.TimeoutError

-- Run `body(me)` in a task that has just cancelled itself, with a ticker
-- counting loop iterations beside it.  Returns the error the task's await
-- raised (or its result), whether it ended cancelled, and the ticks seen
-- meanwhile: a pending cancellation must be delivered at the first
-- suspension, a few iterations at most, whatever the await waits for.
local function after_self_cancel(body)
  local ticks, stop = 0, false
  local ticker = async.spawn(function() while not stop do ticks = ticks + 1; await(async.sleep(0)) end end)
  local seen, ticks_then
  local t = async.spawn(function()
    local me = async.current_task()
    me:cancel()
    local ok, e = pcall(body, me)
    seen, ticks_then = ok and "returned" or e, ticks
    if not ok then error(e, 0) end
    return e
  end)
  -- a guard for the old behaviour (the await finishing by itself, or never)
  local guard = async.spawn(function() await(async.sleep(5)); t:cancel() end)
  pcall(await, t)
  guard:cancel()
  stop = true
  await(ticker)
  return seen, t:cancelled(), ticks_then
end

describe("a task that cancels itself (_must_cancel)", function()
  it("test_tasks: test_cancel_current_task -- the next await raises CancelledError at once", function()
    async.run(function()
      local seen, cancelled, ticks = after_self_cancel(function() await(async.sleep(3600)); return 12 end)
      assert.is_true(CancelledError:is(seen))
      assert.is_true(cancelled)
      assert.is_true(ticks <= 2, "ticks " .. ticks)
      local t = async.spawn(function() async.current_task():cancel(); await(async.sleep(3600)) end)
      assert.is_true(CancelledError:is(H.catch(await, async.wait_for(t, 5))))
      assert.is_false(t:cancel())                  -- done: nothing left to cancel
    end)
  end)

  it("test_tasks: test_cancel_at_end -- returning with a cancellation pending ends cancelled", function()
    async.run(function()
      local t = async.spawn(function() async.current_task():cancel(); return 12 end)
      assert.is_true(CancelledError:is(H.catch(await, t)))
      assert.is_true(t:cancelled())
      -- the message given to cancel() is the CancelledError's
      local t2 = async.spawn(function() async.current_task():cancel("bye"); return 12 end)
      assert.equal("bye", H.catch(await, t2).message)
      -- uncancel() withdraws it: the task's result stands
      local t3 = async.spawn(function() local me = async.current_task(); me:cancel(); me:uncancel(); return 12 end)
      assert.equal(12, await(t3))
    end)
  end)

  it("test_tasks: test_cancel_awaited_task -- the task it then awaits is cancelled too", function()
    async.run(function()
      local fut = async.Future()
      local nested = async.spawn(function() await(fut) end)
      local outer = async.spawn(function()
        await(async.sleep(0))
        async.current_task():cancel()
        await(nested)
      end)
      assert.is_true(CancelledError:is(H.catch(await, outer)))
      assert.is_true(outer:cancelled())
      assert.is_true(nested:cancelled())
      assert.is_true(fut:cancelled())
    end)
  end)

  it("test_timeouts: test_foreign_cancel_doesnt_timeout_if_not_expired", function()
    async.run(function()
      local cm
      local e = H.catch(function()
        local scope <close> = async.timeout(10)
        cm = scope
        async.current_task():cancel()
        await(async.sleep(10))
      end)
      assert.is_true(CancelledError:is(e))         -- a cancellation, not a TimeoutError
      assert.is_false(cm:expired())
    end)
  end)

  it("delivers at every kind of suspension: future, lock, semaphore, queue, event, gather, wait_for, vdb", function()
    async.run(function()
      local lock, sem, q, ev = async.Lock(), async.Semaphore(0), async.Queue(), async.Event()
      local held = await(lock:acquire())
      local db = await(vdb.connect("memory:"))
      local col = await(db:collection("c", { dim = 2 }))
      await(col:upsert { ids = { "a" }, vectors = { { 1, 0 } } })
      local cases = {
        future = function() return await(async.Future()) end,
        lock = function() return await(lock:acquire()) end,
        semaphore = function() return await(sem:acquire()) end,
        queue_get = function() return await(q:get()) end,
        queue_join = function() local jq = async.Queue(); jq:put_nowait(1); return await(jq:join()) end,
        event = function() return await(ev:wait()) end,
        gather = function() return await(async.gather(async.sleep(3600), async.Future())) end,
        wait_for = function() return await(async.wait_for(async.Future(), 3600)) end,
        shield = function() return await(async.shield(async.sleep(3600))) end,
        vdb = function() return await(col:search({ 1, 0 }, 1)) end,
      }
      for name, body in pairs(cases) do
        local seen, cancelled, ticks = after_self_cancel(body)
        assert.is_true(CancelledError:is(seen), name .. ": " .. tostring(seen))
        assert.is_true(cancelled, name)
        assert.is_true(ticks <= 3, name .. ": ticks " .. ticks)
      end
      -- the primitives were left as they were: nobody took the lock's or the
      -- queue's turn, and the database goes on
      held:release()
      assert.is_false(lock:locked())
      assert.equal(0, q:qsize())
      assert.equal("a", await(col:search({ 1, 0 }, 1))[1].id)
      await(db:disconnect())
    end)
  end)

  it("delivers at an async.http request, which is then abandoned", function()
    local port, stop = H.server("node spec/servers/http_fixture.mjs")
    async.run(function()
      local seen, cancelled, ticks = after_self_cancel(function()
        return await(async.http.get("http://127.0.0.1:" .. port .. "/stall"))
      end)
      assert.is_true(CancelledError:is(seen), tostring(seen))
      assert.is_true(cancelled)
      assert.is_true(ticks <= 3, "ticks " .. ticks)
      -- the connection was given up: the server sees no stalled request left
      local left
      for _ = 1, 200 do
        left = tonumber(await(async.http.get("http://127.0.0.1:" .. port .. "/stalled")).body)
        if left == 0 then break end
        await(async.sleep(0.01))
      end
      assert.equal(0, left)
    end)
    stop()
  end)

  it("a task cancelled by another while running sees it at its next await, once", function()
    async.run(function()
      local log = {}
      local victim
      victim = async.spawn(function()
        async.spawn(function() victim:cancel() end)
        await(async.sleep(0))                    -- the canceller runs here; the step brings it
        log[#log + 1] = "not reached"
      end)
      assert.is_true(CancelledError:is(H.catch(await, victim)))
      assert.same({}, log)
      assert.equal(1, victim:cancelling())
    end)
  end)
end)

describe("cancelling() and uncancel()", function()
  it("test_tasks: test_uncancel_basic -- cancelling counts requests, uncancel withdraws one", function()
    async.run(function()
      local t = async.spawn(function()
        local me = async.current_task()
        local ok, e = pcall(await, async.sleep(3600))
        assert.is_false(ok)
        assert.is_true(CancelledError:is(e))
        assert.equal(2, me:cancelling())           -- two requests before the step that delivered them
        assert.equal(1, me:uncancel())
        assert.equal(0, me:uncancel())
        assert.equal(0, me:uncancel())             -- never below zero
        await(async.sleep(0))                     -- and nothing is pending any more
        return "went on"
      end)
      await(async.sleep(0))
      assert.is_true(t:cancel())
      assert.is_true(t:cancel())
      assert.equal("went on", await(t))
      assert.is_false(t:cancel())
    end)
  end)

  it("test_tasks: test_uncancel_resets_must_cancel -- uncancel to zero withdraws a request not yet delivered", function()
    async.run(function()
      local t = async.spawn(function()
        local me = async.current_task()
        me:cancel()
        assert.equal(1, me:cancelling())
        assert.equal(0, me:uncancel())
        await(async.sleep(0))                     -- no CancelledError
        return "kept"
      end)
      assert.equal("kept", await(t))
    end)
  end)
end)

describe("wait_for with no time left", function()
  it("test_waitfor: test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started", function()
    async.run(function()
      for _, timeout in ipairs({ 0, -1 }) do
        local started = false
        local e = H.catch(await, async.wait_for(async(function() started = true; return 1 end)(), timeout))
        assert.is_true(TimeoutError:is(e))
        assert.is_false(started)
      end
    end)
  end)

  it("test_waitfor: test_wait_for_timeout_less_then_0_or_0_future_done", function()
    async.run(function()
      local fut = async.Future()
      fut:set_result("done")
      assert.equal("done", await(async.wait_for(fut, 0)))
      local t = async.spawn(function() return "task done" end)
      await(async.sleep(0))
      assert.equal("task done", await(async.wait_for(t, -5)))
    end)
  end)

  it("test_waitfor: test_wait_for_timeout_less_then_0_or_0 -- a pending one is cancelled, then TimeoutError", function()
    async.run(function()
      local fut = async.Future()
      assert.is_true(TimeoutError:is(H.catch(await, async.wait_for(fut, 0))))
      assert.is_true(fut:cancelled())
      local t = async.spawn(function() await(async.sleep(3600)) end)
      assert.is_true(TimeoutError:is(H.catch(await, async.wait_for(t, 0))))
      assert.is_true(t:cancelled())
      -- a task that refuses the cancellation: its result is the outcome
      local stubborn = async.spawn(function() pcall(await, async.sleep(3600)); return "refused" end)
      await(async.sleep(0))
      assert.equal("refused", await(async.wait_for(stubborn, 0)))
    end)
  end)
end)

describe("timeout scopes", function()
  it("test_timeouts: test_timeout_zero_sleep_zero -- and timeout(-11), and a past timeout_at", function()
    async.run(function()
      local scopes = {
        function() return async.timeout(0) end,
        function() return async.timeout(-11) end,
        function() return async.timeout_at(async.time() - 5) end,
      }
      for i, make in ipairs(scopes) do
        local cm
        local e = H.catch(function()
          local scope <close> = make()
          cm = scope
          await(async.sleep(0))
        end)
        assert.is_true(TimeoutError:is(e), i .. ": " .. tostring(e))
        assert.is_true(cm:expired(), i)
        assert.equal(0, async.current_task():cancelling(), i)
      end
    end)
  end)

  it("test_timeouts: test_timeout_expiring -- reschedule is refused while expiring, and cancelling() is back to 0", function()
    async.run(function()
      local me = async.current_task()
      local cm, caught, refused
      local ok = pcall(function()
        local scope <close> = async.timeout(0.01)
        cm = scope
        caught = H.catch(await, async.sleep(3600))
        assert.is_true(cm:expired())
        refused = H.catch(cm.reschedule, cm, 0.02)
        assert.equal(me:cancelling(), 1)
      end)
      assert.is_true(ok)                             -- the CancelledError was caught inside: no TimeoutError
      assert.is_true(CancelledError:is(caught))
      assert.is_true(async.InvalidStateError:is(refused))
      assert.matches("Cannot change state of expiring Timeout", refused.message)
      assert.equal(0, me:cancelling())
      -- and after the scope: expired, so no more changes either
      assert.matches("Cannot change state of expired Timeout", H.catch(cm.reschedule, cm, 1).message)
      assert.matches("Cannot change state of expired Timeout", H.catch(cm.reschedule_at, cm, 1).message)
    end)
  end)

  it("test_timeouts: test_timeout_when -- when() is the absolute deadline, nil for none", function()
    async.run(function()
      local scope <close> = async.timeout(nil)
      assert.is_nil(scope:when())
      local t0 = async.time()
      scope:reschedule(10)
      assert.is_true(scope:when() >= t0 + 10 and scope:when() <= async.time() + 10)
      scope:reschedule_at(t0 + 100)
      assert.equal(t0 + 100, scope:when())
      scope:reschedule(nil)
      assert.is_nil(scope:when())
      assert.is_false(scope:expired())
    end)
  end)
end)

describe("a wake-up given to one waiter is not lost when that waiter is cancelled", function()
  -- run the waiters up to their wait, give one wake-up, cancel the woken
  -- one before it runs: the other must get it
  local function two_waiters(wait, wake)
    local got = {}
    local t1 = async.spawn(function() wait(); got[#got + 1] = 1 end)
    local t2 = async.spawn(function() wait(); got[#got + 1] = 2 end)
    for _ = 1, 3 do await(async.sleep(0)) end
    wake()
    t1:cancel()
    for _ = 1, 5 do await(async.sleep(0)) end
    return got, t1, t2
  end

  it("test_locks: ConditionTests.test_cancelled_wakeup", function()
    async.run(function()
      local cond = async.Condition()
      local state = 0
      local got, t1, t2 = two_waiters(function()
        local g <close> = await(cond:acquire())
        await(cond:wait_for(function() return state ~= 0 end))
      end, function()
        local g <close> = await(cond:acquire())
        state = 1
        cond:notify(1)
      end)
      assert.same({ 2 }, got)
      assert.is_true(t1:cancelled())
      assert.is_true(t2:done() and not t2:cancelled())
      assert.is_false(cond:locked())
    end)
  end)

  it("test_locks: ConditionTests.test_cancelled_error_re_aquire -- the lock is held again on the way out", function()
    async.run(function()
      local cond = async.Condition()
      local held_after
      local t = async.spawn(function()
        local g <close> = await(cond:acquire())
        local ok, e = pcall(await, cond:wait())
        held_after = cond:locked()
        if not ok then error(e, 0) end
      end)
      await(async.sleep(0))
      local g = await(cond:acquire())               -- t waits for the lock again after its cancel
      t:cancel()
      await(async.sleep(0))
      g:release()
      assert.is_true(CancelledError:is(H.catch(await, t)))
      assert.is_true(held_after)
      assert.is_false(cond:locked())
    end)
  end)

  it("test_locks: SemaphoreTests.test_acquire_cancel_after_release (and Lock)", function()
    async.run(function()
      for _, make in ipairs({ function() return async.Semaphore(0) end, function() return async.Lock() end }) do
        local s = make()
        local first = s.locked and (s:locked() == false) and await(s:acquire()) or nil
        local got, t1 = two_waiters(function() local g <close> = await(s:acquire()) end, function()
          if first then first:release() else s:release() end
        end)
        assert.same({ 2 }, got)
        assert.is_true(t1:cancelled())
        assert.is_false(s:locked())
      end
    end)
  end)

  it("test_queues: QueueGetTests.test_cancelled_getters_not_being_held_in_self_getters (and putters)", function()
    async.run(function()
      local q = async.Queue()
      local got, t1 = two_waiters(function() assert.equal("item", await(q:get())) end, function() q:put_nowait("item") end)
      assert.same({ 2 }, got)
      assert.is_true(t1:cancelled())
      assert.equal(0, q:qsize())
      local full = async.Queue(1)
      full:put_nowait("x")
      local got2, p1 = two_waiters(function() await(full:put("y")) end, function() full:get_nowait() end)
      assert.same({ 2 }, got2)
      assert.is_true(p1:cancelled())
      assert.equal("y", full:get_nowait())
    end)
  end)

  it("Event is exempt: every waiter is woken, a cancelled one just leaves", function()
    async.run(function()
      local ev = async.Event()
      local got, t1 = two_waiters(function() await(ev:wait()) end, function() ev:set() end)
      assert.same({ 2 }, got)
      assert.is_true(t1:cancelled())
    end)
  end)

  it("a Lock hands itself to the next waiter on release: locked() stays true until that waiter runs", function()
    async.run(function()
      local lock = async.Lock()
      local g = await(lock:acquire())
      local order = {}
      local waiter = async.spawn(function() local g2 <close> = await(lock:acquire()); order[#order + 1] = "waiter" end)
      await(async.sleep(0))
      g:release()
      assert.is_true(lock:locked())                  -- CPython's Lock says false here (see README)
      await(waiter)
      assert.same({ "waiter" }, order)
      assert.is_false(lock:locked())
    end)
  end)
end)
