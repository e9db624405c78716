-- docs/reference.md "Tasks" and "Cancellation" under load: many tasks at once, mass cancellation with every cleanup run
local H = require "helper"
local async, await = H.async, H.await

describe("stress", function()
  it("gathers 100,000 tasks", function()
    local trivial = async(function(i) return i * 2 end)
    local r = async.run(function()
      local cs = {}
      for i = 1, 100000 do cs[i] = trivial(i) end
      return await(async.gather(cs))
    end)
    assert.equal(100000, r.n)
    local ok = true
    for i = 1, 100000 do if r[i] ~= i * 2 then ok = false; break end end
    assert.is_true(ok)
  end)

  it("gathers 20,000 children of every kind, with collections in between, each outcome in its place", function()
    local kinds = 6
    local child = async(function(i)
      local k = i % kinds
      if k == 0 then return i end                                   -- done at once, no Task
      if k == 1 then error("e" .. i, 0) end                         -- fails at once
      if k == 2 then await(async.sleep(0)); return i end            -- waits
      if k == 3 then                                                -- asks for its task
        if i % 600 == 3 then collectgarbage("step") end
        return async.current_task():get_name()
      end
      if k == 4 then async.current_task():cancel(); await(async.sleep(0)) end             -- cancels itself
      local r = await(async.gather(async(function() return i end)(), async.sleep(0, -i)))  -- nests
      return r[1] + r[2]
    end)
    local r = async.run(function()
      local cs = {}
      for i = 1, 20000 do cs[i] = child(i) end
      collectgarbage()
      return await(async.gather(cs, { return_exceptions = true }))
    end)
    assert.equal(20000, r.n)
    for i = 1, 20000 do
      local k, v = i % kinds, r[i]
      if k == 0 or k == 2 then assert.equal(i, v)
      elseif k == 1 then assert.equal("e" .. i, v)
      elseif k == 3 then assert.is_string(v)
      elseif k == 4 then assert.is_true(async.CancelledError:is(v))
      else assert.equal(0, v) end
    end
  end)

  it("cancels 10,000 tasks mid-sleep and runs every cleanup", function()
    local cleaned, caught = 0, 0
    async.run(function()
      local ts = {}
      for i = 1, 10000 do
        ts[i] = async.spawn(function()
          local _ <close> = setmetatable({}, { __close = function() cleaned = cleaned + 1 end })
          local ok, e = pcall(await, async.sleep(30))
          if not ok and async.CancelledError:is(e) then caught = caught + 1 end
          error(e, 0)
        end)
      end
      await(async.sleep(0.01))
      for i = 1, 10000 do ts[i]:cancel() end
      local r = await(async.gather(ts, { return_exceptions = true }))
      local n = 0
      for i = 1, 10000 do if async.CancelledError:is(r[i]) then n = n + 1 end end
      assert.equal(10000, n)
    end)
    assert.equal(10000, caught)
    assert.equal(10000, cleaned)
    assert.same({}, async.all_tasks())
  end)

  it("keeps ping-ponging through queues without growing", function()
    async.run(function()
      local ping, pong = async.Queue(), async.Queue()
      local t = async.spawn(function() while true do pong:put_nowait(await(ping:get())) end end)
      local function rounds(n) for i = 1, n do ping:put_nowait(i); assert(await(pong:get()) == i) end end
      rounds(20000)
      collectgarbage(); collectgarbage()
      local m1 = collectgarbage("count")
      rounds(60000)   -- a leak of even 20 bytes a round trip would show
      collectgarbage(); collectgarbage()
      local grew = collectgarbage("count") - m1
      assert.is_true(grew < 1024, "grew by KiB: " .. grew)
      t:cancel()
    end)
  end)
end)
