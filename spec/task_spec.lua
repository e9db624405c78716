-- API.md section 3: tasks, cancellation, lost errors
local H = require "helper"
local async, await = H.async, H.await

describe("tasks", function()
  it("create_task starts the task at the next iteration, before the creator's next await returns", function()
    local log = {}
    async.run(function()
      local t = async.create_task(async(function() log[#log + 1] = "task" end)())
      log[#log + 1] = "created"
      await(async.sleep(0))
      log[#log + 1] = "after await"
      assert.is_true(t:done())
    end)
    assert.same({ "created", "task", "after await" }, log)
  end)

  it("create_task needs a running loop and a fresh coroutine object", function()
    local co = async(function() end)()
    assert.matches("no running event loop", H.catch(async.create_task, co))
    async.run(function()
      assert.matches("bad argument #1 to 'create_task' %(awaitable expected, got number%)", H.catch(async.create_task, 42))
      await(async.create_task(co))
      assert.is_true(async.InvalidStateError:is(H.catch(async.create_task, co)))
    end)
  end)

  it("argument errors name the caller's line, not the library's files", function()
    async.run(function()
      local cases = {
        { function() async.create_task(function() end) end, "'create_task' %(awaitable expected, got function%)" },
        { function() async.create_task(async.sleep(0), 5) end, "#2 to 'create_task' %(string expected" },
        { function() async.ensure_future(1) end, "#1 to 'ensure_future' %(awaitable expected" },
        { function() async.shield(1) end, "#1 to 'shield' %(awaitable expected" },
        { function() async.as_completed(1) end, "#1 to 'as_completed' %(list of awaitables" },
        { function() async.PriorityQueue("x") end, "#1 to 'PriorityQueue' %(integer expected" },
        { function() async.LifoQueue("x") end, "#1 to 'LifoQueue' %(integer expected" },
      }
      for i, case in ipairs(cases) do
        local ok, err = pcall(case[1])
        assert.is_false(ok, i)
        assert.matches("^[^:]*task_spec%.lua:%d+: bad argument " .. ".*" .. case[2], err)
        assert.not_matches("prelude", err)
      end
    end)
  end)

  it("spawn(fn, ...) runs fn with its arguments as a task", function()
    assert.equal(9, async.run(function()
      return await(async.spawn(function(a, b) await(async.sleep(0)); return a + b end, 4, 5))
    end))
  end)

  it("has names Task-N by default, set_name/get_name, and current_task/all_tasks", function()
    async.run(function()
      local me = async.current_task()
      assert.matches("^Task%-%d+$", me:get_name())
      local t = async.create_task(async.sleep(1), "sleeper")
      assert.equal("sleeper", t:get_name())
      t:set_name("renamed")
      assert.equal("renamed", t:get_name())
      local all = async.all_tasks()
      assert.equal(2, #all)
      t:cancel()
      await(async.wait({ t }))
      assert.same({ me }, async.all_tasks())
      assert.matches("<Task cancelled name='renamed'>", tostring(t))
    end)
    assert.is_nil(async.current_task())
  end)

  it("result/exception/done/cancelled reflect the outcome", function()
    async.run(function()
      local ok_t = async.spawn(function() return 1, 2 end)
      local bad_t = async.spawn(function() error({ why = "bad" }) end)
      assert.is_true(async.InvalidStateError:is(H.catch(ok_t.result, ok_t)))
      await(async.sleep(0))
      assert.is_true(ok_t:done()); assert.is_false(ok_t:cancelled())
      assert.same({ 1, 2 }, { ok_t:result() })
      assert.is_nil(ok_t:exception())
      assert.equal("bad", bad_t:exception().why)
      assert.equal("bad", H.catch(bad_t.result, bad_t).why)
    end)
  end)

  it("add_done_callback runs fn(task) on the loop, in registration order, when it completes", function()
    local log = {}
    async.run(function()
      local t = async.spawn(function() await(async.sleep(0.01)) end)
      t:add_done_callback(function(x) log[#log + 1] = x end)
      await(t)
      log[#log + 1] = "awaiter resumed"
      t:add_done_callback(function() log[#log + 1] = "late callback" end)
      assert.equal(3 - 1, #log)    -- queued, not run inline
      await(async.sleep(0))
      assert.same({ t, "awaiter resumed", "late callback" }, log)
    end)
  end)

  it("an error in one task never stops the loop or the other tasks", function()
    local out = H.lua([[
      local async = require "async"
      local n = 0
      async.run(function()
        for i = 1, 5 do async.spawn(function() async.await(async.sleep(0.001 * i)); error("task " .. i .. " failed") end) end
        for i = 1, 5 do async.spawn(function() async.await(async.sleep(0.002)); n = n + 1 end) end
        async.await(async.sleep(0.05))
      end)
      print("others finished: " .. n)
    ]])
    assert.matches("others finished: 5", out)
  end)
end)

describe("cancellation", function()
  it("raises CancelledError at the await, so pcall and <close> cleanup run, and __close may await", function()
    local log = {}
    async.run(function()
      local t = async.spawn(function()
        local _ <close> = setmetatable({}, { __close = function()
          await(async.sleep(0.01))
          log[#log + 1] = "closed"
        end })
        local ok, e = pcall(await, async.sleep(10))
        log[#log + 1] = async.CancelledError:is(e) and "caught" or "?"
        error(e, 0)
      end)
      await(async.sleep(0.01))
      assert.is_true(t:cancel("enough"))
      local e = H.catch(await, t)
      assert.is_true(async.CancelledError:is(e))
      assert.is_true(t:cancelled())
    end)
    assert.same({ "caught", "closed" }, log)
  end)

  it("cancel returns false for a finished task, and a task may refuse by catching", function()
    async.run(function()
      local t = async.spawn(function() return 1 end)
      await(t)
      assert.is_false(t:cancel())
      local stubborn = async.spawn(function()
        pcall(await, async.sleep(10))
        return "kept going"
      end)
      await(async.sleep(0))
      stubborn:cancel()
      assert.equal("kept going", await(stubborn))
    end)
  end)

  it("a task cancelled before it starts never runs its body", function()
    local ran = false
    async.run(function()
      local t = async.spawn(function() ran = true end)
      t:cancel()
      assert.is_true(async.CancelledError:is(H.catch(await, t)))
    end)
    assert.is_false(ran)
  end)

  it("cancelling a task that awaits another task cancels the inner one too", function()
    async.run(function()
      local inner = async.spawn(function() await(async.sleep(10)) end)
      local outer = async.spawn(function() await(inner) end)
      await(async.sleep(0.01))
      outer:cancel()
      pcall(await, outer)
      assert.is_true(inner:cancelled())
      assert.is_true(outer:cancelled())
    end)
  end)

  it("<close> handlers run, and may await, when a scope exits by an error (the tutorial's finally)", function()
    local log = {}
    async.run(function()
      local ok, e = pcall(await, async(function()
        local _ <close> = setmetatable({}, { __close = function(_, err)
          await(async.sleep(0.01))
          log[#log + 1] = "cleanup saw: " .. tostring(err)
        end })
        error("failed", 0)
      end)())
      assert.is_false(ok); assert.equal("failed", e)
    end)
    assert.same({ "cleanup saw: failed" }, log)
  end)
end)

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
      assert.matches("task_spec%.lua:" .. debug.getinfo(case[1], "S").linedefined .. ":", tb)
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
