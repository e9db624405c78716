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
end)
