-- docs/reference.md "The C API" (include/lua_async.h): a C module suspends tasks on futures
-- that libuv callbacks settle.
local H = require "helper"
local async, await = H.async, H.await
package.cpath = "./build/?.so;" .. package.cpath
local capi = require "capi_test"

describe("the C API", function()
  it("a future resolved from a libuv callback gives all its values", function()
    local a, b = async.run(function() return await(capi.after(10, false, "x", 42)) end)
    assert.equal("x", a); assert.equal(42, b)
  end)

  it("a rejected future raises the very error value", function()
    local err = { code = "boom" }
    async.run(function()
      local ok, e = pcall(await, capi.after(5, true, err))
      assert.is_false(ok); assert.equal(err, e)
    end)
  end)

  it("other tasks run while C work is pending", function()
    async.run(function()
      local ticks = 0
      local ticker = async.spawn(function() while true do await(async.sleep(0.002)); ticks = ticks + 1 end end)
      local t0 = async.time()
      await(capi.after(50, false, true))
      local took = async.time() - t0
      -- it ticked throughout: at least a fifth of the 2 ms ticks the wait allowed
      assert.is_true(ticks >= math.min(5, took / 0.002 / 5), ("ticks %d in %.3fs"):format(ticks, took))
      ticker:cancel()
    end)
  end)

  it("a future cancelled by its awaiter is settled later by C without harm", function()
    local settled0, cancelled0 = capi.counts()
    async.run(function()
      local t = async.spawn(function() return await(capi.after(30, false, "late")) end)
      await(async.sleep(0.005))
      t:cancel()
      assert.is_true(async.CancelledError:is(H.catch(await, t)))
      await(async.sleep(0.05))           -- the C side settles the cancelled future
    end)
    local settled1, cancelled1 = capi.counts()
    assert.equal(settled0 + 1, settled1)
    assert.equal(cancelled0 + 1, cancelled1)
  end)

  it("many concurrent C futures complete", function()
    async.run(function()
      local fs = {}
      for i = 1, 1000 do fs[i] = capi.after(i % 20, false, i) end
      local r = await(async.gather(fs))
      local sum = 0
      for i = 1, 1000 do sum = sum + r[i] end
      assert.equal(500500, sum)
    end)
  end)

  it("version 3: a lazy awaitable made in C starts its work only when awaited, or when a Task runs it", function()
    async.run(function()
      local _, _, starts0 = capi.counts()
      local lazy = capi.lazy(5, false, "a", "b")
      await(async.sleep(0.02))
      local _, _, starts1 = capi.counts()
      assert.equal(starts0, starts1)                 -- nothing started yet
      assert.same({ "a", "b" }, { await(lazy) })
      local _, _, starts2 = capi.counts()
      assert.equal(starts0 + 1, starts2)
      assert.equal("t", await(async.create_task(capi.lazy(1, false, "t"))))
      local err = { code = "x" }
      assert.equal(err, H.catch(await, capi.lazy(1, true, err)))
      assert.is_true(async.InvalidStateError:is(H.catch(await, lazy)))   -- awaited once, like any coroutine object
      -- cancelled while its C work runs: CancelledError, and the C side settles it later without harm
      local t = async.spawn(function() return await(capi.lazy(30, false, "late")) end)
      await(async.sleep(0.005))
      t:cancel()
      assert.is_true(async.CancelledError:is(H.catch(await, t)))
    end)
  end)

  it("version 4: a lazy awaitable's start may give its results at once, with no future", function()
    async.run(function()
      local _, _, starts0 = capi.counts()
      local now = capi.now("a", nil, 3)
      local _, _, starts1 = capi.counts()
      assert.equal(starts0, starts1)                 -- still lazy
      assert.same({ n = 3, "a", nil, 3 }, table.pack(await(now)))
      assert.equal(0, select("#", await(capi.now())))
      assert.equal("t", await(async.create_task(capi.now("t"))))   -- and when a Task runs it
      local _, _, starts2 = capi.counts()
      assert.equal(starts0 + 3, starts2)
    end)
  end)

  it("version 3: error classes by name", function()
    async.run(function()
      local e = capi.error("ConnectionError", "refused")
      assert.is_true(async.ConnectionError:is(e))
      assert.equal("refused", e.message)
      assert.is_true(async.TimeoutError:is(capi.error("TimeoutError", "slow")))
      assert.is_true(async.ExceptionGroup:is(capi.error("ExceptionGroup", "several")))
      assert.is_true(async.Error:is(capi.error("sleep", "not a class")))
      local other = capi.error("NoSuchError", "what")
      assert.is_true(async.Error:is(other))
      assert.equal("what", other.message)
    end)
  end)

  it("version 3: a handle is pinned while active and closed once, also when the script drops it", function()
    local _, _, _, closes0 = capi.counts()
    async.run(function()
      local k = capi.ticker(1)
      local weak = setmetatable({ capi.ticker(1) }, { __mode = "v" })   -- dropped at once, still running
      collectgarbage(); collectgarbage()
      assert.is_not_nil(weak[1])                     -- pinned: not collected while active
      await(async.sleep(0.03))
      assert.is_true(k:ticks() >= 1)
      assert.is_true(weak[1]:ticks() >= 1)
      k:stop()
      k:stop()
      weak[1]:stop()
      await(async.sleep(0))
    end)
    local _, _, _, closes1 = capi.counts()
    assert.equal(closes0 + 2, closes1)               -- each closed exactly once
  end)

  it("version 3: handles still open when the state closes are closed, and nothing calls into Lua after", function()
    local out, ok = H.lua([[
      package.cpath = "./build/?.so;" .. package.cpath
      local async = require "async"
      local capi = require "capi_test"
      async.run(function()
        _G.keep = capi.ticker(1)                     -- never stopped
        local _ = require("async").http               -- its timer and sockets use the same life cycle
        await = async.await
        await(async.sleep(0.01))
      end)
      print("ended")
    ]])
    assert.is_true(ok, out)
    assert.matches("ended", out)
  end)
end)
