-- docs/reference.md "Async generators and <close>"
local H = require "helper"
local async, await = H.async, H.await

describe("async.generator", function()
  it("streams values whose production awaits (tutorial 7.9)", function()
    local stream = async.generator(function(yield, count)
      for i = 1, count do
        await(async.sleep(0.01))
        yield(i, { id = i })
      end
    end)
    async.run(function()
      local got = {}
      for i, item in stream(3) do got[#got + 1] = i .. ":" .. item.id end
      assert.same({ "1:1", "2:2", "3:3" }, got)
    end)
  end)

  it("other tasks run while the generator awaits", function()
    async.run(function()
      local ticks = 0
      local ticker = async.spawn(function() while true do await(async.sleep(0.005)); ticks = ticks + 1 end end)
      local gen = async.generator(function(yield) for i = 1, 3 do await(async.sleep(0.02)); yield(i) end end)
      for _ in gen() do end
      assert.is_true(ticks >= 5, ticks)
      ticker:cancel()
    end)
  end)

  it("breaking out early closes the generator, running its cleanup, which may await", function()
    local log = {}
    local gen = async.generator(function(yield)
      local _ <close> = setmetatable({}, { __close = function()
        await(async.sleep(0.01))
        log[#log + 1] = "cleanup"
      end })
      for i = 1, 100 do yield(i) end
    end)
    async.run(function()
      for i in gen() do
        log[#log + 1] = i
        if i == 2 then break end
      end
      log[#log + 1] = "after loop"
    end)
    assert.same({ 1, 2, "cleanup", "after loop" }, log)
  end)

  it("errors inside the generator reach the for loop", function()
    local gen = async.generator(function(yield) yield(1); await(async.sleep(0)); error("gen failed", 0) end)
    async.run(function()
      local seen = {}
      local ok, e = pcall(function() for v in gen() do seen[#seen + 1] = v end end)
      assert.is_false(ok); assert.equal("gen failed", e); assert.same({ 1 }, seen)
    end)
  end)

  it("a cancelled task stops a generator mid-await and its cleanup runs", function()
    local cleaned = false
    local gen = async.generator(function(yield)
      local _ <close> = setmetatable({}, { __close = function() cleaned = true end })
      while true do await(async.sleep(1)); yield(1) end
    end)
    async.run(function()
      local t = async.spawn(function() for _ in gen() do end end)
      await(async.sleep(0.01))
      t:cancel()
      assert.is_true(async.CancelledError:is(H.catch(await, t)))
      assert.is_true(cleaned)
    end)
  end)

  it("generators nest", function()
    local inner = async.generator(function(yield, n) for i = 1, n do await(async.sleep(0)); yield(i) end end)
    local outer = async.generator(function(yield)
      for i in inner(2) do for j in inner(2) do yield(i * 10 + j) end end
    end)
    async.run(function()
      local got = {}
      for v in outer() do got[#got + 1] = v end
      assert.same({ 11, 12, 21, 22 }, got)
    end)
  end)
end)

describe("async context managers", function()
  local Conn = {}
  Conn.__index = Conn
  Conn.__close = function(self)
    self.log[#self.log + 1] = "closing"
    await(async.sleep(0.01))
    self.log[#self.log + 1] = "closed"
  end
  local open = async(function(log)
    await(async.sleep(0.01))
    log[#log + 1] = "open"
    return setmetatable({ log = log }, Conn)
  end)

  it("__close may await when the scope ends normally (tutorial 7.8)", function()
    local log = {}
    async.run(function()
      do
        local c <close> = await(open(log))
        log[#log + 1] = "query"
      end
      log[#log + 1] = "after"
    end)
    assert.same({ "open", "query", "closing", "closed", "after" }, log)
  end)

  it("and when it ends by an error or a cancellation", function()
    local log = {}
    async.run(function()
      local ok = pcall(function()
        local c <close> = await(open(log))
        error("query failed")
      end)
      assert.is_false(ok)
      local t = async.spawn(function()
        local c <close> = await(open(log))
        await(async.sleep(10))
      end)
      await(async.sleep(0.05))
      t:cancel()
      pcall(await, t)
    end)
    assert.same({ "open", "closing", "closed", "open", "closing", "closed" }, log)
  end)
end)
