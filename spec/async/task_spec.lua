-- docs/reference.md "Tasks"
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
