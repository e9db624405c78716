-- docs/reference.md "Threads": async.to_thread runs a function in another
-- Lua state on libuv's thread pool, values copied both ways
local H = require "helper"
local async, await = H.async, H.await

describe("async.to_thread", function()
  it("gives fn's results, its arguments and results copied whole (nested tables, every byte, integer or float)", function()
    async.run(function()
      local a, b, c = await(async.to_thread(function(t, n, f)
        return t.list[2] .. "!", n + 1, { back = t, kinds = { math.type(n), math.type(f) } }
      end, { list = { "x", "y\0z" }, flag = true }, 41, 2.5))
      assert.equal("y\0z!", a)
      assert.equal(42, b)
      assert.equal(math.type(42), math.type(b))
      assert.same({ "integer", "float" }, c.kinds)
      assert.same({ list = { "x", "y\0z" }, flag = true }, c.back)
      assert.same({}, { await(async.to_thread(function() end)) })
      assert.same({ nil, 2 }, { await(async.to_thread(function() return nil, 2 end)) })
    end)
  end)

  it("keeps the loop going while a CPU-bound function runs", function()
    async.run(function()
      local ticks, stop = 0, false
      local ticker = async.spawn(function() while not stop do await(async.sleep(0.002)); ticks = ticks + 1 end end)
      local t0 = async.time()
      local r = await(async.to_thread(function(n) local s = 0 for i = 1, n do s = s + i % 7 end return s end, 2e7))
      local took = async.time() - t0
      stop = true
      await(ticker)
      assert.is_true(r > 0)
      -- it ticked throughout: at least a fifth of the 2 ms ticks the wait allowed
      assert.is_true(ticks >= math.min(5, took / 0.002 / 5), ("ticks %d in %.3fs"):format(ticks, took))
    end)
  end)

  it("runs calls side by side on the pool, and require works there", function()
    async.run(function()
      local calls = {}
      for i = 1, 16 do calls[i] = async.to_thread(function(x) return require("string").rep("a", x) end, i) end
      local r = await(async.gather(calls))
      for i = 1, 16 do assert.equal(("a"):rep(i), r[i]) end
      assert.is_true(await(async.to_thread(function() return require("helper") ~= nil end)))   -- package.path travels
    end)
  end)

  it("raises fn's error in the awaiting task, a string keeping its text", function()
    async.run(function()
      assert.matches("thread_spec%.lua:%d+: in the worker$", H.catch(await, async.to_thread(function() error("in the worker") end)))
      assert.equal("plain", H.catch(await, async.to_thread(function() error("plain", 0) end)))
      -- and the loop and the pool go on
      assert.equal(3, await(async.to_thread(function() return 3 end)))
    end)
  end)

  it("refuses, before anything runs, what cannot travel, naming it", function()
    async.run(function()
      local up = 5
      local function uses_up() return up end
      assert.matches("uses the upvalue 'up'.*pass up as an argument", H.catch(await, async.to_thread(uses_up)))
      assert.matches("a Lua function expected, got a C function", H.catch(await, async.to_thread(print)))
      assert.matches("a Lua function expected, got number", H.catch(await, async.to_thread(42)))
      assert.matches("argument #2 is a function", H.catch(await, async.to_thread(function(x) return x end, print)))
      local cyc = {}
      cyc.self = cyc
      assert.matches("argument #3%.deep%[1%]%.self is a table inside itself",
                     H.catch(await, async.to_thread(function() end, 1, { deep = { cyc } })))
      assert.matches("argument #2 is a table with a metatable",
                     H.catch(await, async.to_thread(function() end, setmetatable({}, {}))))
      assert.matches("result #2 is a function", H.catch(await, async.to_thread(function() return 1, print end)))
      -- the same table twice (not a cycle) travels, as two copies
      local shared = { 1 }
      local a, b = await(async.to_thread(function(x, y) return x, y end, shared, shared))
      assert.same({ 1 }, a); assert.same({ 1 }, b)
    end)
  end)

  it("is lazy: nothing runs until it is awaited", function()
    local path = H.tmpfile()
    async.run(function()
      local write = function(p) local f = io.open(p, "w"); f:write("ran"); f:close(); return true end
      local pending = async.to_thread(write, path)
      await(async.sleep(0.05))
      assert.is_nil(H.slurp(path))                   -- made, not awaited: nothing ran
      assert.is_true(await(pending))
      assert.equal("ran", H.slurp(path))
    end)
    os.remove(path)
  end)

  it("a cancelled awaiter gets CancelledError at once; the worker finishes and its results are dropped", function()
    async.run(function()
      local t = async.spawn(function()
        return await(async.to_thread(function() local s = 0 for i = 1, 3e7 do s = s + i end return s end))
      end)
      await(async.sleep(0.01))
      t:cancel()
      assert.is_true(async.CancelledError:is(H.catch(await, t)))
      assert.equal(7, await(async.to_thread(function() return 7 end)))
    end)
  end)

  it("a state closed with a call in flight ends cleanly", function()
    local out, ok = H.lua([[
      local async = require "async"
      async.start(function()
        async.await(async.to_thread(function() local s = 0 for i = 1, 2e7 do s = s + i end return s end))
      end)
      async.step(0); async.step(0)                    -- the call is on the pool now
      print("closing")
    ]])
    assert.is_true(ok, out)
    assert.matches("closing", out)
  end)
end)
