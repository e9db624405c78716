-- docs/reference.md "Sleep and callbacks", with the tutorial's timing stories
local H = require "helper"
local async, await = H.async, H.await

local elapsed = H.elapsed

describe("sleep", function()
  it("completes after the delay with the given results", function()
    local later_done
    local dt, a, b = elapsed(function() return async.run(function()
      local later = async.spawn(function() await(async.sleep(0.5)) end)   -- ten times as long
      local x, y = await(async.sleep(0.05, "x", "y"))
      later_done = later:done()
      later:cancel()
      return x, y
    end) end)
    assert.same({ "x", "y" }, { a, b })
    assert.is_true(dt >= 0.05, dt)                 -- never early
    assert.is_false(later_done)                    -- and by its own deadline, not a later one
  end)

  it("never wakes before its delay on async.time()'s clock, even after a long step", function()
    local early = {}
    async.run(function()
      local t0 = async.time()
      while async.time() - t0 < 0.03 do end   -- a step that leaves the loop's cached time behind
      for _, d in ipairs { 0.02, 0.0015, 0.0101, 0.003 } do
        local s = async.time()
        await(async.sleep(d))
        local took = async.time() - s
        if took < d then early[#early + 1] = ("sleep(%g) took %.6f s"):format(d, took) end
      end
      local s, fired = async.time(), nil
      async.call_later(0.012, function() fired = async.time() end)
      await(async.sleep(0.05))
      if fired - s < 0.012 then early[#early + 1] = ("call_later(0.012) after %.6f s"):format(fired - s) end
    end)
    assert.same({}, early)
  end)

  it("sleep(0) yields once to the loop", function()
    local log = {}
    async.run(function()
      async.spawn(function() log[#log + 1] = "other" end)
      log[#log + 1] = "before"
      await(async.sleep(0))
      log[#log + 1] = "after"
    end)
    assert.same({ "before", "other", "after" }, log)
  end)

  it("is lazy: nothing happens until awaited", function()
    async.run(function()
      local s = async.sleep(10)
      assert.is_true(async.iscoroutine(s))
      await(async.sleep(0))
      s = nil
      collectgarbage()
    end)
  end)
end)


describe("time, call_soon, call_later", function()
  it("time() is monotonic seconds", function()
    local t0 = async.time()
    async.run(function() await(async.sleep(0.05)) end)
    local dt = async.time() - t0
    assert.is_true(dt >= 0.05, dt)               -- a sleep never wakes early
    assert.is_true(dt < 25, dt)                  -- seconds, not milliseconds (that would read 50)
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
