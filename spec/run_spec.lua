-- API.md section 2: running the loop
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
    assert.is_true(os.clock() - c0 < 0.1, "CPU time while sleeping: " .. (os.clock() - c0))
  end)
end)

describe("time, call_soon, call_later", function()
  it("time() is monotonic seconds", function()
    local t0 = async.time()
    async.run(function() await(async.sleep(0.05)) end)
    local dt = async.time() - t0
    assert.is_true(dt >= 0.05 and dt < 1, dt)    -- a sleep never wakes early
  end)

  it("call_soon runs callbacks in order with their arguments; cancel stops one", function()
    local got = {}
    async.run(function()
      async.call_soon(function(x) got[#got + 1] = x end, 1)
      local h = async.call_soon(function() got[#got + 1] = "no" end)
      async.call_soon(function(x, y) got[#got + 1] = x .. y end, "a", "b")
      h:cancel()
      await(async.sleep(0))
    end)
    assert.same({ 1, "ab" }, got)
  end)

  it("call_later fires by deadline order and can be cancelled", function()
    local got = {}
    async.run(function()
      async.call_later(0.03, function() got[#got + 1] = "late" end)
      async.call_later(0.01, function() got[#got + 1] = "early" end)
      local h = async.call_later(0.02, function() got[#got + 1] = "cancelled" end)
      h:cancel()
      await(async.sleep(0.06))
    end)
    assert.same({ "early", "late" }, got)
  end)

  -- k and a half milliseconds: never on a millisecond boundary
  local function ms(k) return (k + 0.5) / 1000 end
  local function lcg(seed)
    return function(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
  end

  it("timers fire by (deadline, creation) however they arrive and whichever are cancelled", function()
    -- in-order runs go to a FIFO ring, the rest to a heap: mix both, cancel
    -- at the ends and in the middle (enough to compact the ring).  Each
    -- deadline counts from the clock as call_later reads it, somewhere in
    -- [before, after], and is rounded up to a whole millisecond.
    local rnd, fired, handles = lcg(7), {}, {}
    async.run(function()
      for i = 1, 3000 do
        local k = i <= 1000 and i // 100 or rnd(40)       -- first a long in-order run
        local before = async.time()
        local h = async.call_later(ms(k), function() fired[#fired + 1] = i end)
        handles[i] = { k = k, i = i, h = h, before = before, after = async.time() }
      end
      for i = 1, 3000 do
        if i == 1 or i == 1000 or i == 3000 or rnd(10) < 6 then
          handles[i].h:cancel(); handles[i].cancelled = true
        end
      end
      await(async.sleep(ms(45)))
    end)
    local want = {}
    for _, e in ipairs(handles) do if not e.cancelled then want[e.i] = true end end
    local last_of_k, late = {}, {}
    for p, i in ipairs(fired) do
      assert.is_true(want[i], i); want[i] = nil
      local e = handles[i]
      -- the same delay made later falls due no earlier: creation order exactly
      assert.is_true((last_of_k[e.k] or 0) < i)
      last_of_k[e.k] = i
      -- a timer that fired before the next one cannot have been due surely after it
      local nxt = handles[fired[p + 1]]
      if nxt and (e.before * 1000 + e.k) - (nxt.after * 1000 + nxt.k) >= 1 then
        late[#late + 1] = ("%d (k=%d) fired before %d (k=%d)"):format(i, e.k, nxt.i, nxt.k)
      end
    end
    assert.same({}, want)
    assert.same({}, late)
  end)

  it("sleeping tasks wake by deadline while timers are added and fire (the ring wraps and grows)", function()
    local rnd, woke, rounds = lcg(11), {}, {}
    async.run(function()
      local ts = {}
      for r = 1, 30 do                       -- each round adds more than the last round's fired
        rounds[r] = {}
        for j = 1, 20 * r do
          local k, id = 2 + rnd(3), #ts + 1
          rounds[r][#rounds[r] + 1] = { k = k, id = id }
          ts[id] = async.spawn(function() await(async.sleep(ms(k))); woke[#woke + 1] = id end)
          if rnd(7) == 0 then ts[id]:cancel() ; rounds[r][#rounds[r]].cancelled = true end
        end
        await(async.sleep(ms(0)))
      end
      await(async.wait(ts))
    end)
    local pos = {}
    for p, id in ipairs(woke) do pos[id] = p end
    local n = 0
    for _, round in ipairs(rounds) do
      local live = {}
      for _, e in ipairs(round) do
        if e.cancelled then assert.is_nil(pos[e.id]) else n = n + 1; live[#live + 1] = e end
      end
      -- made at one loop time: they wake in (deadline, creation) order
      for j = 2, #live do
        local a, b = live[j - 1], live[j]
        if a.k <= b.k then assert.is_true(pos[a.id] < pos[b.id]) end
      end
    end
    assert.equal(n, #woke)
  end)

  it("an error in a callback is reported and the loop goes on", function()
    local out = H.lua([[
      local async = require "async"
      async.run(function()
        async.call_soon(function() error("callback broke") end)
        async.await(async.sleep(0.01))
        print("still running")
      end)
    ]])
    assert.matches("callback broke", out)
    assert.matches("still running", out)
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
    assert.is_true(async.time() - t0 < 0.2)
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

describe("debug mode", function()
  it("names a task that blocks the loop (the time.sleep mistake)", function()
    local out = H.lua([[
      local async = require "async"
      async.set_debug(true)
      async.run(function()
        local t0 = os.clock(); while os.clock() - t0 < 0.25 do end  -- blocking
      end)
    ]])
    assert.matches("Executing <Task name='Task%-%d+'> took 0%.%d%d%d seconds", out)
  end)

  it("is on with LUA_ASYNC_DEBUG=1", function()
    local out = H.lua([[
      local async = require "async"
      print("debug:", async.get_debug())
    ]], "LUA_ASYNC_DEBUG=1")
    assert.matches("debug:%s+true", out)
  end)
  it("a never-retrieved error whose __tostring itself errors is still reported, and run returns main's result", function()
    local out, ok = H.lua([[
      local async = require "async"
      local bad = setmetatable({}, { __tostring = function() error("no tostring for you") end })
      print("run", async.run(function()
        async.spawn(function() error(bad) end)
        async.await(async.sleep(0.01))
        return "main ok"
      end))
      async.set_exception_handler(function() error(bad) end)     -- a hostile handler too
      print("again", async.run(function()
        async.spawn(function() error("plain") end)
        async.await(async.sleep(0.01))
        return "fine"
      end))
    ]])
    assert.is_true(ok, out)
    assert.matches("run%s+main ok", out)
    assert.matches("Task exception was never retrieved", out)
    assert.matches("a table whose __tostring failed", out)
    assert.matches("again%s+fine", out)
    assert.matches("exception handler failed", out)
  end)
  it("run refuses to start while a task from async.start is pending (it would cancel it), and runs once it is done", function()
    local out, ok = H.lua([[
      local async = require "async"
      local hosted = async.start(function() async.await(async.sleep(0.01)); return "host done" end)
      print("refused", pcall(async.run, function() return 1 end))
      while async.step(0.05) do end
      print("host", hosted:result())
      print("run", async.run(function() return "main" end))
    ]])
    assert.is_true(ok, out)
    assert.matches("refused%s+false%s+[^\n]*1 task started with async.start is still pending", out)
    assert.matches("host%s+host done", out)
    assert.matches("run%s+main", out)
  end)
  it("an 'Exception in callback' report carries the traceback of where the callback failed", function()
    local out, ok = H.lua([[
      local async = require "async"
      local function deep_inside() error("in a callback") end
      async.run(function()
        async.call_soon(function() deep_inside() end)
        async.call_later(0.001, function() deep_inside() end)
        async.await(async.sleep(0.01))
      end)
    ]])
    assert.is_true(ok, out)
    local _, reports = out:gsub("Exception in callback", "")
    assert.equal(2, reports)
    local _, traces = out:gsub("in upvalue 'deep_inside'", "")
    assert.equal(2, traces)
  end)
end)
