-- docs/reference.md "Gather"
local H = require "helper"
local async, await = H.async, H.await

local elapsed = H.elapsed

local task = async(function(name, delay, log)
  log[#log + 1] = name .. " start"
  await(async.sleep(delay))
  log[#log + 1] = name .. " done"
  return name .. "_result"
end)

describe("gather", function()
  it("runs concurrently: sleeps of 1, 0.5 and 0.8 s take about 1 s, results in argument order", function()
    local log = {}
    local dt, r = elapsed(function()
      return async.run(function() return await(async.gather(task("A", 1, log), task("B", 0.5, log), task("C", 0.8, log))) end)
    end)
    assert.same({ "A_result", "B_result", "C_result" }, { r[1], r[2], r[3] })
    -- as long as the longest, and less than the 2.3 s of one after the other
    assert.is_true(dt >= 0.99 and dt < 2.3, "took " .. dt)
    assert.same({ "A start", "B start", "C start", "B done", "C done", "A done" }, log)
  end)

  it("takes a list with options, and gather() of nothing gives {}", function()
    async.run(function()
      local r = await(async.gather({ async.sleep(0, 1), async.sleep(0, 2, "ignored") }))
      assert.same({ 1, 2 }, { r[1], r[2] })
      assert.same({}, { table.unpack(await(async.gather())) })
      assert.same({}, { table.unpack(await(async.gather({}))) })
    end)
  end)

  it("gives a plain list (deep-equal to a table literal) that also answers r.n", function()
    async.run(function()
      local f = async(function(x) await(async.sleep(0)); return x, "second results are dropped" end)
      local r = await(async.gather(f("A"), f("B"), f("C")))
      assert.same({ "A", "B", "C" }, r)
      assert.equal(3, r.n)
      local keys = {}
      for k in pairs(r) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.same({ 1, 2, 3 }, keys)                       -- n is no key of the list
      assert.same({}, await(async.gather()))               -- API.md: gather() of nothing is {}
      assert.equal(0, await(async.gather()).n)
      assert.same({}, await(async.gather({})))
      local holes = await(async.gather(async(function() end)(), f("y")))
      assert.same({ [2] = "y" }, holes)
      assert.equal(2, holes.n)
      local mixed = await(async.gather({ f(1), async(function() error("e", 0) end)() }, { return_exceptions = true }))
      assert.same({ 1, "e" }, mixed)
      -- lists of one length share their metatable; other lengths differ
      local again = await(async.gather(f(1), f(2), f(3)))
      assert.equal(getmetatable(r), getmetatable(again))
      assert.are_not.equal(getmetatable(r), getmetatable(mixed))
      -- the list is the caller's: its own metatable replaces ours
      setmetatable(again, nil)
      assert.is_nil(again.n)
      assert.equal(3, r.n)
    end)
  end)

  it("accepts tasks and futures, and gives nil results their place", function()
    async.run(function()
      local t = async.spawn(function() return nil end)
      local f = async.Future()
      async.call_soon(function() f:set_result("f") end)
      local r = await(async.gather(t, f, async.sleep(0, 3)))
      assert.is_nil(r[1]); assert.equal("f", r[2]); assert.equal(3, r[3]); assert.equal(3, r.n)
    end)
  end)

  it("raises the first error at once; the others go on running", function()
    local finished = false
    async.run(function()
      local slow = async.spawn(function() await(async.sleep(0.05)); finished = true end)
      local t0 = async.time()
      local e = H.catch(await, async.gather(slow, async(function() await(async.sleep(0.01)); error("early", 0) end)()))
      assert.equal("early", e)
      assert.is_false(finished)
      await(slow)
      assert.is_true(finished)
    end)
  end)

  it("return_exceptions puts errors in the list", function()
    async.run(function()
      local fail = async(function() await(async.sleep(0.01)); error({ kind = "ValueError" }) end)
      local r = await(async.gather({ async.sleep(0, "ok1"), fail(), async.sleep(0, "ok3") }, { return_exceptions = true }))
      assert.equal("ok1", r[1]); assert.equal("ValueError", r[2].kind); assert.equal("ok3", r[3])
    end)
  end)

  it("cancelling the gather cancels every child", function()
    async.run(function()
      local a = async.spawn(function() await(async.sleep(10)) end)
      local b = async.spawn(function() await(async.sleep(10)) end)
      local g = async.spawn(function() return await(async.gather(a, b)) end)
      await(async.sleep(0.01))
      g:cancel()
      assert.is_true(async.CancelledError:is(H.catch(await, g)))
      await(async.sleep(0))
      assert.is_true(a:cancelled()); assert.is_true(b:cancelled())
    end)
  end)

  it("starts its children at once when awaited, in argument order (eager tasks)", function()
    local log = {}
    async.run(function()
      async.spawn(function() log[#log + 1] = "queued earlier" end)
      local child = async(function(name) log[#log + 1] = name; await(async.sleep(0)); log[#log + 1] = name .. " again" end)
      await(async.gather(child("a"), child("b")))
    end)
    assert.same({ "a", "b", "queued earlier", "a again", "b again" }, log)
  end)

  it("rejects a non-awaitable at the call, naming the argument", function()
    assert.matches("bad argument #2 to 'gather' %(awaitable expected, got number%)",
      H.catch(async.gather, async.sleep(0), 5))
  end)

  -- children that finish in their first step run without a Task of their
  -- own until they need one: none of that may show
  describe("children that finish at once", function()
    it("give their results in place: first values, nil holes, and n", function()
      async.run(function()
        local r = await(async.gather(async(function() return 1, 2 end)(), async(function() end)(),
                                     async.sleep(0, "s"), async(function() return "x" end)()))
        assert.same({ 1, nil, "s", "x", n = 4 }, r)
      end)
    end)

    it("see their own task in current_task and all_tasks, the same object each time", function()
      async.run(function()
        local seen = {}
        local child = async(function(i)
          local all = async.all_tasks()
          local t = async.current_task()
          assert.is_true(async.istask(t))
          assert.equal(t, async.current_task())
          local listed = false
          for _, x in ipairs(all) do if x == t then listed = true end end
          seen[i] = { t, listed }
          return i
        end)
        assert.same({ 1, 2, n = 2 }, await(async.gather(child(1), child(2))))
        assert.are_not.equal(seen[1][1], seen[2][1])
        assert.is_true(seen[1][2] and seen[2][2])
        assert.is_true(seen[1][1]:done())
        assert.equal(1, seen[1][1]:result())
      end)
    end)

    -- such children run one after another in one thread, each under its
    -- own pcall; these cross that run's edges
    it("keep their order and outcomes across every way a child can leave the run", function()
      async.run(function()
        local log = {}
        local function kid(kind, i)
          return async(function()
            log[#log + 1] = i
            if kind == "ret" then return i
            elseif kind == "err" then error({ i = i })
            elseif kind == "task" then return async.current_task():get_name() and i
            elseif kind == "task_err" then local _ = async.current_task(); error({ i = i })
            elseif kind == "sleep" then await(async.sleep(0)); return i
            elseif kind == "sleep_err" then await(async.sleep(0)); error({ i = i })
            end
          end)()
        end
        local kinds = { "ret", "err", "sleep", "err", "task", "task_err", "ret", "sleep_err", "ret", "err" }
        local cs = {}
        for i, k in ipairs(kinds) do cs[i] = kid(k, i) end
        table.insert(cs, 4, async.sleep(0, "plain"))            -- a library awaitable mid-list
        local f = async.Future(); f:set_result("future")
        table.insert(cs, 8, f)                                  -- and a future
        local r = await(async.gather(cs, { return_exceptions = true }))
        assert.equal(12, r.n)
        assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, log)     -- started in order, at once
        local want = { 1, { i = 2 }, 3, "plain", { i = 4 }, 5, { i = 6 }, "future", 7, { i = 8 }, 9, { i = 10 } }
        for j = 1, 12 do assert.same(want[j], r[j]) end
        -- without return_exceptions: the first error (in list order of raising) wins
        local ok, e = pcall(await, async.gather(kid("sleep", 1), kid("ret", 2), kid("task_err", 3), kid("err", 4)))
        assert.is_false(ok); assert.same({ i = 3 }, e)
      end)
    end)

    it("a coroutine object already awaited, deep in the list, is refused when the gather starts", function()
      async.run(function()
        local c = async(function() return 1 end)()
        await(c)
        local ran = {}
        local function k(i) return async(function() ran[#ran + 1] = i; return i end)() end
        local e = H.catch(await, async.gather(k(1), k(2), c, k(4)))
        assert.is_true(async.InvalidStateError:is(e))
        assert.same({ 1, 2 }, ran)                             -- those before it had started
      end)
    end)

    it("raise the first error at once with its value; later children still run", function()
      local ran = false
      async.run(function()
        local err = { kind = "ValueError" }
        local bad = async(function() error(err) end)
        local later = async(function() ran = true; return "late" end)
        local e = H.catch(await, async.gather(bad(), later()))
        assert.equal(err, e)
        assert.is_true(ran)
        local r = await(async.gather({ bad(), later() }, { return_exceptions = true }))
        assert.equal(err, r[1]); assert.equal("late", r[2])
      end)
    end)

    it("a CancelledError raised at once cancels the gather, or takes its place in the list", function()
      async.run(function()
        local cancelled = async(function() error(async.CancelledError("stop")) end)
        assert.is_true(async.CancelledError:is(H.catch(await, async.gather(cancelled(), async.sleep(0)))))
        local r = await(async.gather({ cancelled(), async.sleep(0, "ok") }, { return_exceptions = true }))
        assert.is_true(async.CancelledError:is(r[1]))
        assert.equal("ok", r[2])
      end)
    end)

    it("a bare coroutine.yield fails the child with the usual message", function()
      async.run(function()
        local e = H.catch(await, async.gather(async(function() coroutine.yield() end)()))
        assert.matches("coroutine.yield%(%) inside a task", tostring(e))
      end)
    end)

    it("mix with children that wait: awaiting done futures, inline coroutines, nested gathers, sleeps", function()
      async.run(function()
        local f = async.Future(); f:set_result("f")
        local inner = async(function(x) return x * 2 end)
        local child = async(function(i)
          if i % 4 == 0 then return await(f) .. i end
          if i % 4 == 1 then return await(inner(i)) end
          if i % 4 == 2 then
            local r = await(async.gather(inner(i), async.sleep(0.001, i)))
            return r[1] + r[2]
          end
          error("odd " .. i, 0)
        end)
        local list = {}
        for i = 1, 40 do list[i] = child(i) end
        local r = await(async.gather(list, { return_exceptions = true }))
        for i = 1, 40 do
          local want = ({ [0] = "f" .. i, i * 2, i * 3, "odd " .. i })[i % 4]
          assert.equal(want, r[i])
        end
      end)
    end)

    it("a cancelled gather cancels the children still waiting, and not the finished ones", function()
      async.run(function()
        local waiting = {}
        local child = async(function(i)
          if i % 2 == 0 then waiting[#waiting + 1] = async.current_task(); await(async.sleep(10)) end
          return i
        end)
        local list = {}
        for i = 1, 10 do list[i] = child(i) end
        local g = async.spawn(function() return await(async.gather(list)) end)
        await(async.sleep(0.01))
        g:cancel()
        assert.is_true(async.CancelledError:is(H.catch(await, g)))
        await(async.sleep(0))
        assert.equal(5, #waiting)
        for _, t in ipairs(waiting) do assert.is_true(t:cancelled()) end
      end)
    end)

    it("an async generator awaiting inside a child gives the child its task from the generator's thread", function()
      async.run(function()
        local gen = async.generator(function(yield, n)
          for i = 1, n do await(async.sleep(0)); yield(i) end
        end)
        local child = async(function(n)
          local sum = 0
          for v in gen(n) do sum = sum + v end
          return sum, async.current_task()
        end)
        local r = await(async.gather(child(3), child(4), async(function() return 0 end)()))
        assert.same({ 6, 10, 0, n = 3 }, r)
      end)
    end)

    it("a coroutine object cannot be gathered twice", function()
      async.run(function()
        local c = async(function() return 1 end)()
        await(async.gather(c))
        assert.is_true(async.InvalidStateError:is(H.catch(await, async.gather(c))))
      end)
    end)
  end)
end)

