-- docs/reference.md "Queues"
local H = require "helper"
local async, await = H.async, H.await

describe("Queue", function()
  it("put blocks when full (back-pressure) and get when empty, in FIFO order", function()
    async.run(function()
      local q = async.Queue(2)
      local log = {}
      local producer = async.spawn(function()
        for i = 1, 5 do await(q:put(i)); log[#log + 1] = "put " .. i end
      end)
      await(async.sleep(0.01))
      assert.same({ "put 1", "put 2" }, log)
      assert.is_true(q:full())
      local got = {}
      for _ = 1, 5 do got[#got + 1] = await(q:get()) end
      await(producer)
      assert.same({ 1, 2, 3, 4, 5 }, got)
      assert.is_true(q:empty())
    end)
  end)

  it("nowait variants raise QueueFull and QueueEmpty, nil items are refused", function()
    local q = async.Queue(1)
    q:put_nowait("x")
    assert.is_true(async.QueueFull:is(H.catch(q.put_nowait, q, "y")))
    assert.equal(1, q:qsize())
    assert.equal("x", q:get_nowait())
    assert.is_true(async.QueueEmpty:is(H.catch(q.get_nowait, q)))
    assert.matches("cannot be nil", H.catch(q.put_nowait, q, nil))
    assert.equal(0, q:qsize())
  end)

  it("join waits until every item is task_done; too many task_done is an error", function()
    async.run(function()
      local q = async.Queue()
      for i = 1, 3 do q:put_nowait(i) end
      local processed = 0
      async.spawn(function()
        while true do await(q:get()); await(async.sleep(0.001)); processed = processed + 1; q:task_done() end
      end)
      await(q:join())
      assert.equal(3, processed)
      assert.matches("too many times", H.catch(q.task_done, q))
    end)
  end)

  it("shutdown wakes getters with QueueShutDown; immediate drops the items", function()
    async.run(function()
      local q = async.Queue()
      local getter = async.spawn(function() return await(q:get()) end)
      await(async.sleep(0))
      q:shutdown()
      assert.is_true(async.QueueShutDown:is(H.catch(await, getter)))
      assert.is_true(async.QueueShutDown:is(H.catch(q.put_nowait, q, 1)))
      local q2 = async.Queue()
      q2:put_nowait(1); q2:put_nowait(2)
      q2:shutdown(true)
      assert.equal(0, q2:qsize())
      await(q2:join())          -- nothing unfinished
    end)
  end)

  it("a cancelled getter loses no item", function()
    async.run(function()
      local q = async.Queue()
      local g1 = async.spawn(function() return await(q:get()) end)
      local g2 = async.spawn(function() return await(q:get()) end)
      await(async.sleep(0))
      q:put_nowait("only")
      g1:cancel()
      assert.equal("only", await(g2))
      assert.is_true(g1:cancelled())
    end)
  end)
  describe("PriorityQueue and LifoQueue", function()
    it("a PriorityQueue gives the smallest first, FIFO among equal priorities, against a sort of 2,000 random puts", function()
      H.run(async.fn(function()
        math.randomseed(7)
        local q, all = async.PriorityQueue(), {}
        for i = 1, 2000 do
          local p = math.random(1, 50)
          local item = { p, i }
          all[#all + 1] = item
          q:put_nowait(item)
          if i % 7 == 0 then                            -- gets between the puts
            table.sort(all, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
            assert.equal(table.remove(all, 1), await(q:get()))
          end
        end
        table.sort(all, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
        for _, want in ipairs(all) do assert.equal(want, q:get_nowait()) end
        assert.is_true(q:empty())
        local s = async.PriorityQueue()
        for _, w in ipairs { "pear", "apple", "fig" } do s:put_nowait(w) end
        assert.same({ "apple", "fig", "pear" }, { s:get_nowait(), s:get_nowait(), s:get_nowait() })
      end))
    end)

    it("a PriorityQueue refuses keys it cannot order, and changes nothing", function()
      H.run(async.fn(function()
        local q = async.PriorityQueue()
        q:put_nowait(3)
        for _, bad in ipairs { {}, { {} }, 0 / 0, "three", true } do
          assert.has_error(function() q:put_nowait(bad) end)
          assert.has_error(function() await(q:put(bad)) end)
        end
        assert.equal(1, q:qsize())
        assert.equal(3, q:get_nowait())
        q:put_nowait("now strings")                       -- an empty queue takes any one kind
        assert.equal("now strings", q:get_nowait())
      end))
    end)

    it("a LifoQueue gives the newest first; both wait, time out and shut down as Queue does", function()
      H.run(async.fn(function()
        local l = async.LifoQueue(3)
        for i = 1, 3 do await(l:put(i)) end
        assert.is_true(l:full())
        local blocked = async.spawn(function() await(l:put(4)) end)
        await(async.sleep(0))
        assert.is_false(blocked:done())
        assert.equal(3, await(l:get()))
        await(blocked)
        assert.same({ 4, 2, 1 }, { l:get_nowait(), l:get_nowait(), l:get_nowait() })
        local p = async.PriorityQueue()
        assert.is_true(async.TimeoutError:is(select(2, pcall(await, async.wait_for(p:get(), 0.01)))))
        local getter = async.spawn(function() return await(p:get()) end)
        await(async.sleep(0))
        p:put_nowait(5)
        assert.equal(5, await(getter))
        p:put_nowait(1)
        p:shutdown(true)
        assert.equal(0, p:qsize())
        assert.is_true(async.QueueShutDown:is(select(2, pcall(await, p:get()))))
        assert.matches("^<PriorityQueue", tostring(p))
      end))
    end)
  end)
end)
