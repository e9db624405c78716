-- docs/reference.md "Running the loop"
local H = require "helper"
local async, await = H.async, H.await

describe("async.run", function()
  it("accepts an async function, a plain function or a coroutine object, with arguments", function()
    local af = async(function(a, b) await(async.sleep(0)); return a * b end)
    assert.equal(6, async.run(af, 2, 3))
    assert.equal(7, async.run(function(x) return x + 1 end, 6))
    assert.equal(12, async.run(af(3, 4)))
  end)

  it("returns all results and raises the main task's error value", function()
    local a, b = async.run(function() return "a", "b" end)
    assert.same({ "a", "b" }, { a, b })
    local err = setmetatable({}, { __tostring = function() return "custom" end })
    local ok, e = pcall(async.run, function() await(async.sleep(0)); error(err) end)
    assert.is_false(ok); assert.equal(err, e)
  end)

  it("cannot be called from a running loop", function()
    async.run(function()
      local e = H.catch(async.run, function() end)
      assert.matches("cannot be called from a running event loop", e)
    end)
  end)

  it("cancels tasks still pending at the end and waits for their cleanup", function()
    local cleaned, cancelled = false, false
    async.run(function()
      async.spawn(function()
        local _ <close> = setmetatable({}, { __close = function()
          await(async.sleep(0.01))  -- cleanup may await
          cleaned = true
        end })
        local ok, e = pcall(await, async.sleep(10))
        cancelled = not ok and async.CancelledError:is(e)
        error(e, 0)
      end)
      await(async.sleep(0))
    end)
    assert.is_true(cancelled)
    assert.is_true(cleaned)
    assert.same({}, async.all_tasks())
  end)

  it("reports a deadlock instead of hanging", function()
    local e = H.catch(async.run, function() await(async.Future()) end)
    assert.matches("deadlock", e)
    assert.equal(3, async.run(function() return 3 end))  -- the loop is still usable
  end)

  it("an idle loop waits in the kernel, using no CPU", function()
    local c0 = os.clock()
    async.run(function() await(async.sleep(0.3)) end)
    -- a busy loop would spend the whole 0.3 s; allow a third of it
    assert.is_true(os.clock() - c0 < 0.3 / 3, "CPU time while sleeping: " .. (os.clock() - c0))
  end)
end)

describe("start/step for hosts with their own main loop", function()
  it("start schedules without running; step runs slices until nothing remains", function()
    local log = {}
    local t = async.start(function()
      log[#log + 1] = "begin"
      await(async.sleep(0.02))
      log[#log + 1] = "end"
      return "result"
    end)
    assert.same({}, log)
    assert.is_false(t:done())
    local steps = 0
    while async.step(0.01) do steps = steps + 1; assert.is_true(steps < 1000) end
    assert.same({ "begin", "end" }, log)
    assert.equal("result", t:result())
  end)

  it("step(0) never blocks", function()
    local t = async.start(function() await(async.sleep(0.5)) end)
    local t0 = async.time()
    assert.is_true(async.step(0))
    assert.is_true(async.time() - t0 < 0.5)        -- it did not wait for the task's sleep
    assert.is_false(t:done())
    t:cancel()
    while async.step(0) do end
    assert.is_true(t:cancelled())
  end)
end)

describe("a C host that owns its libuv loop", function()
  it("hands the loop over with lua_async_use_loop and drives tasks with uv_run", function()
    local p = assert(io.popen("./build/host spec/host/script.lua 2>&1"))
    local out = p:read("a")
    p:close()
    assert.matches("tick 1\ntick 2\ntick 3\n", out)
    assert.matches("host loop adopted: true", out)
    assert.matches("run refused: .*belongs to the host", out)
    assert.matches("host: loop closed cleanly", out)
  end)
end)
