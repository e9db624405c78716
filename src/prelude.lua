-- prelude.lua: the part of `async` written in Lua, over the C core.
--
-- The core (src/*.c) gives futures, tasks, await, sleep and the loop; what is
-- here composes them the way asyncio does: error classes, gather, wait_for,
-- timeout scopes, wait, as_completed, race, shield, the synchronisation
-- primitives and async generators.  It is compiled into the module.
local core = ...

local await, Future, create_task = core.await, core.Future, core.create_task
local iscoroutine, isfuture = core.iscoroutine, core.isfuture
local setmetatable, getmetatable, error, pcall, select = setmetatable, getmetatable, error, pcall, select
local type, tostring, rawget = type, tostring, rawget
local pack, unpack = table.pack, table.unpack

local M = {}

---------------------------------------------------------------------------
-- error classes
---------------------------------------------------------------------------

local function is_instance(cls, e)
  local mt = getmetatable(e)
  while mt do
    if mt == cls then return true end
    mt = rawget(mt, "_parent")
  end
  return false
end

local function class(name, parent)
  local cls = { __name = name, _parent = parent, is = is_instance }
  cls.__index = cls
  cls.__tostring = function(e)
    local m = e.message
    if m == nil or m == "" then return name end
    return name .. ": " .. tostring(m)
  end
  return setmetatable(cls, {
    __index = parent,
    __call = function(c, message, fields)
      local e = { message = message }
      if fields then for k, v in pairs(fields) do e[k] = v end end
      return setmetatable(e, c)
    end,
    __tostring = function() return "class " .. name end,
  })
end

M.Error = class("Error")
M.CancelledError = class("CancelledError", M.Error)
M.TimeoutError = class("TimeoutError", M.Error)
M.InvalidStateError = class("InvalidStateError", M.Error)
M.QueueEmpty = class("QueueEmpty", M.Error)
M.QueueFull = class("QueueFull", M.Error)
M.QueueShutDown = class("QueueShutDown", M.Error)
M.ConnectionError = class("ConnectionError", M.Error)
M.class = class

local CancelledError, TimeoutError, InvalidStateError = M.CancelledError, M.TimeoutError, M.InvalidStateError

core.set_errors {
  CancelledError = CancelledError,
  InvalidStateError = InvalidStateError,
  TimeoutError = TimeoutError,
  is_cancelled = function(e) return getmetatable(e) == CancelledError end,
}

---------------------------------------------------------------------------
-- async functions, running
---------------------------------------------------------------------------

local asyncfns = setmetatable({}, { __mode = "k" })

local function fn(f)
  if type(f) ~= "function" then
    error(("bad argument #1 to 'async' (function expected, got %s)"):format(type(f)), 2)
  end
  local af = core.fn(f)
  asyncfns[af] = true
  return af
end

M.fn = fn
M.await = await
M.sleep = core.sleep
M.Future = Future
M.time = core.time
M.call_soon = core.call_soon
M.call_later = core.call_later
M.current_task = core.current_task
M.all_tasks = core.all_tasks
M.iscoroutine = iscoroutine
M.isfuture = isfuture
M.istask = core.istask
M.traceback = core.traceback
M.set_debug = core.set_debug
M.get_debug = core.get_debug
M.set_exception_handler = core.set_exception_handler
M.step = core.step

function M.isawaitable(x) return iscoroutine(x) or isfuture(x) end
function M.iscoroutinefunction(f) return asyncfns[f] == true end

-- main: a coroutine object, an async function or a plain function
local function to_coro(main, ...)
  if iscoroutine(main) then return main end
  if asyncfns[main] then return main(...) end
  if type(main) == "function" then return core.coro(main, ...) end
  error(("bad argument #1 (coroutine object or function expected, got %s)"):format(type(main)), 3)
end

function M.run(main, ...)
  if core.running() then
    error("async.run() cannot be called from a running event loop", 2)
  end
  return core.run_task(create_task(to_coro(main, ...)))
end

function M.start(main, ...)
  return create_task(to_coro(main, ...))
end

function M.create_task(coro, name)
  if not core.running() then
    error("create_task: no running event loop (use async.run, or async.start for a host loop)", 2)
  end
  return create_task(coro, name)
end

function M.spawn(f, ...)
  return M.create_task(to_coro(f, ...))
end

-- an awaitable as a future: coroutine objects become tasks
local function ensure_future(aw, level)
  if isfuture(aw) then return aw end
  if iscoroutine(aw) then return create_task(aw) end
  error(("bad argument (awaitable expected, got %s)"):format(type(aw)), level or 3)
end
M.ensure_future = ensure_future

local function cancel_all(futs, n)
  for i = 1, n do futs[i]:cancel() end
end

-- the args of a variadic-or-list call: (aw1, aw2, ...) or (list, opts)
local function awaitables(...)
  local first = ...
  if type(first) == "table" and not getmetatable(first) then
    return first, #first, (select(2, ...))
  end
  return pack(...), select("#", ...), nil
end

---------------------------------------------------------------------------
-- gather
---------------------------------------------------------------------------

-- the children's bookkeeping is in C (src/combinators.c)
local function gather_body(list, n, return_exceptions)
  local outer, futs = core.gather(list, n, return_exceptions)
  local ok, res = pcall(await, outer)
  if not ok and outer:cancelled() then cancel_all(futs, n) end
  if not ok then error(res, 0) end
  return res
end

function M.gather(...)
  local list, n, opts = awaitables(...)
  if n == 0 then return core.coro(function() return { n = 0 } end) end
  for i = 1, n do        -- fail at the call, not when awaited
    local aw = list[i]
    if not (iscoroutine(aw) or isfuture(aw)) then
      error(("bad argument #%d to 'gather' (awaitable expected, got %s)"):format(i, type(aw)), 2)
    end
  end
  return core.coro(gather_body, list, n, opts and opts.return_exceptions)
end

---------------------------------------------------------------------------
-- timeout scopes and wait_for
---------------------------------------------------------------------------

local Timeout = {}
Timeout.__index = Timeout

function Timeout:reschedule(delay)
  if self.state ~= "active" and self.state ~= "expiring" then
    error("timeout: cannot reschedule a scope that has ended", 2)
  end
  if self.handle then self.handle:cancel(); self.handle = nil end
  self.state = "active"
  if delay == nil then self.deadline = nil; return end
  self.deadline = core.time() + delay
  self.handle = core.call_later(delay, function()
    if self.state == "active" then
      self.state = "expiring"
      self.task:cancel()
    end
  end)
end

function Timeout:when() return self.deadline end
function Timeout:expired() return self.state == "expiring" or self.state == "expired" end

Timeout.__close = function(self, err)
  if self.handle then self.handle:cancel(); self.handle = nil end
  if self.state == "expiring" then
    self.state = "expired"
    if self.task:uncancel() <= self.cancelling and getmetatable(err) == CancelledError then
      error(TimeoutError(("timed out after %gs"):format(self.delay)), 0)
    end
  else
    self.state = "exited"
  end
end

function M.timeout(delay)
  if delay ~= nil and type(delay) ~= "number" then
    error(("bad argument #1 to 'timeout' (number or nil expected, got %s)"):format(type(delay)), 2)
  end
  local task = core.current_task()
  if not task then error("async.timeout: must be used inside a running task", 2) end
  local self = setmetatable({ task = task, state = "active", delay = delay,
                              cancelling = task:cancelling() }, Timeout)
  self:reschedule(delay)
  return self
end

local function wait_for_body(aw, timeout)
  local scope <close> = M.timeout(timeout)
  return await(aw)
end

function M.wait_for(aw, timeout)
  if not M.isawaitable(aw) then
    error(("bad argument #1 to 'wait_for' (awaitable expected, got %s)"):format(type(aw)), 2)
  end
  if timeout == nil then return core.coro(await, aw) end
  if type(timeout) ~= "number" then
    error(("bad argument #2 to 'wait_for' (number expected, got %s)"):format(type(timeout)), 2)
  end
  return core.coro(wait_for_body, aw, timeout)
end

---------------------------------------------------------------------------
-- wait, as_completed, race, shield
---------------------------------------------------------------------------

local RETURN_WHEN = { ALL_COMPLETED = true, FIRST_COMPLETED = true, FIRST_EXCEPTION = true }

local function wait_body(futs, n, timeout, when)
  local waiter = Future()
  local remaining = n
  local function wake() if not waiter:done() then waiter:set_result() end end
  local function on_done(f)
    remaining = remaining - 1
    if remaining <= 0 or when == "FIRST_COMPLETED"
       or (when == "FIRST_EXCEPTION" and not f:cancelled() and f:exception() ~= nil) then
      wake()
    end
  end
  local handle = timeout and core.call_later(timeout, wake)
  for i = 1, n do futs[i]:add_done_callback(on_done) end
  local ok, err = pcall(await, waiter)
  if handle then handle:cancel() end
  for i = 1, n do futs[i]:remove_done_callback(on_done) end
  if not ok then error(err, 0) end
  local done, pending = {}, {}
  for i = 1, n do
    local f = futs[i]
    if f:done() then done[#done + 1] = f else pending[#pending + 1] = f end
  end
  return done, pending
end

function M.wait(list, opts)
  if type(list) ~= "table" then
    error(("bad argument #1 to 'wait' (list of awaitables expected, got %s)"):format(type(list)), 2)
  end
  opts = opts or {}
  local when = opts.return_when or "ALL_COMPLETED"
  if not RETURN_WHEN[when] then
    error(("bad argument #2 to 'wait' (return_when must be ALL_COMPLETED, FIRST_COMPLETED or FIRST_EXCEPTION, got %s)"):format(tostring(when)), 2)
  end
  return core.coro(function()
    local futs, n = {}, #list
    for i = 1, n do futs[i] = ensure_future(list[i], 4) end
    if n == 0 then return {}, {} end
    return wait_body(futs, n, opts.timeout, when)
  end)
end

function M.as_completed(list, opts)
  local timeout = opts and opts.timeout
  local futs, n = {}, #list
  for i = 1, n do futs[i] = ensure_future(list[i]) end
  local done, head, tail = {}, 1, 0
  local waiter
  local function on_done(f)
    tail = tail + 1
    done[tail] = f
    if waiter and not waiter:done() then waiter:set_result() end
  end
  for i = 1, n do futs[i]:add_done_callback(on_done) end
  local deadline = timeout and core.time() + timeout
  local yielded = 0
  return function()
    if yielded == n then return nil end
    while head > tail do
      waiter = Future()
      local handle
      if deadline then
        local left = deadline - core.time()
        handle = core.call_later(left > 0 and left or 0, function()
          if not waiter:done() then waiter:set_result() end
        end)
      end
      local ok, err = pcall(await, waiter)
      if handle then handle:cancel() end
      if not ok then error(err, 0) end
      if head > tail and deadline and core.time() >= deadline then
        for i = 1, n do futs[i]:remove_done_callback(on_done) end
        error(TimeoutError("as_completed timed out"), 0)
      end
    end
    local f = done[head]
    done[head] = nil
    head = head + 1
    yielded = yielded + 1
    return f
  end
end

local function race_body(list, n)
  local futs = {}
  for i = 1, n do futs[i] = ensure_future(list[i], 4) end
  local waiter, first = Future(), nil
  local function on_done(f)
    if first == nil then first = f; waiter:set_result() end
  end
  for i = 1, n do futs[i]:add_done_callback(on_done) end
  local ok, err = pcall(await, waiter)
  for i = 1, n do
    local f = futs[i]
    if f ~= first then
      f:remove_done_callback(on_done)
      if f:cancel() then
        f:add_done_callback(function(g) if not g:cancelled() then g:exception() end end)
      end
    end
  end
  if not ok then error(err, 0) end
  return first:result()
end

function M.race(...)
  local list, n = awaitables(...)
  if n == 0 then error("bad argument #1 to 'race' (at least one awaitable expected)", 2) end
  return core.coro(race_body, list, n)
end

function M.shield(aw)
  local inner = ensure_future(aw)
  if inner:done() then return inner end
  local outer = Future()
  inner:add_done_callback(function(f)
    if outer:done() then
      if not f:cancelled() then f:exception() end
      return
    end
    if f:cancelled() then return outer:cancel() end
    local e = f:exception()
    if e ~= nil then outer:set_exception(e) else outer:set_result(f:result()) end
  end)
  return outer
end

---------------------------------------------------------------------------
-- a small FIFO of futures, shared by the primitives below
---------------------------------------------------------------------------

local Deque = {}
Deque.__index = Deque
local function deque() return setmetatable({ first = 1, last = 0 }, Deque) end
function Deque:push(v) local l = self.last + 1; self.last = l; self[l] = v end
function Deque:empty() return self.first > self.last end
function Deque:popleft()
  local f = self.first
  if f > self.last then return nil end
  local v = self[f]; self[f] = nil; self.first = f + 1
  return v
end
function Deque:remove(v)
  local f, l = self.first, self.last
  if self[f] == v then self[f] = nil; self.first = f + 1; return end
  for i = f + 1, l do
    if self[i] == v then
      for j = i, l - 1 do self[j] = self[j + 1] end
      self[l] = nil; self.last = l - 1
      return
    end
  end
end
function Deque:iter()
  local i = self.first - 1
  return function() i = i + 1; if i <= self.last then return self[i] end end
end

-- wake the first waiter that is still waiting
local function wake_next(waiters)
  while not waiters:empty() do
    local w = waiters:popleft()
    if not w:done() then w:set_result(); return true end
  end
  return false
end

---------------------------------------------------------------------------
-- Semaphore, BoundedSemaphore, Lock
---------------------------------------------------------------------------

local Guard = {}
Guard.__index = Guard
function Guard:release()
  if not self.released then
    self.released = true
    self.owner:release()
  end
end
Guard.__close = Guard.release

local Semaphore = {}
Semaphore.__index = Semaphore

local function new_semaphore(mt, value, what)
  if value == nil then value = 1 end
  if math.type(value) ~= "integer" or value < 0 then
    error(("bad argument #1 to '%s' (non-negative integer expected, got %s)"):format(what, tostring(value)), 3)
  end
  return setmetatable({ _value = value, _bound = value, _waiters = deque() }, mt)
end

function Semaphore:locked()
  if self._value == 0 then return true end
  for w in self._waiters:iter() do if not w:cancelled() then return true end end
  return false
end
function Semaphore:value() return self._value end

local function wake_up_next(self)
  local waiters = self._waiters
  for w in waiters:iter() do
    if not w:done() then
      self._value = self._value - 1
      w:set_result()
      return true
    end
  end
  return false
end

local function sem_acquire(self)
  if self._waiters:empty() and self._value > 0 then
    self._value = self._value - 1
    return setmetatable({ owner = self }, Guard)
  end
  if not self:locked() then
    self._value = self._value - 1
    return setmetatable({ owner = self }, Guard)
  end
  local fut = Future()
  self._waiters:push(fut)
  local ok, err = pcall(await, fut)
  self._waiters:remove(fut)
  if not ok and fut:done() and not fut:cancelled() then
    self._value = self._value + 1     -- woken, but cancelled: pass the turn on
  end
  while self._value > 0 do
    if not wake_up_next(self) then break end
  end
  if not ok then error(err, 0) end
  return setmetatable({ owner = self }, Guard)
end
Semaphore.acquire = fn(sem_acquire)

function Semaphore:release()
  self._value = self._value + 1
  wake_up_next(self)
end

function M.Semaphore(value) return new_semaphore(Semaphore, value, "Semaphore") end

local BoundedSemaphore = setmetatable({}, { __index = Semaphore })
BoundedSemaphore.__index = BoundedSemaphore
function BoundedSemaphore:release()
  if self._value >= self._bound then
    error("BoundedSemaphore released too many times", 2)
  end
  Semaphore.release(self)
end
function M.BoundedSemaphore(value) return new_semaphore(BoundedSemaphore, value, "BoundedSemaphore") end

local Lock = setmetatable({}, { __index = Semaphore })
Lock.__index = Lock
function Lock:locked() return self._value == 0 end
function Lock:release()
  if self._value ~= 0 then error("Lock.release: the lock is not acquired", 2) end
  Semaphore.release(self)
end
function M.Lock() return new_semaphore(Lock, 1, "Lock") end

---------------------------------------------------------------------------
-- Event
---------------------------------------------------------------------------

local Event = {}
Event.__index = Event
function M.Event() return setmetatable({ _value = false, _waiters = deque() }, Event) end
function Event:is_set() return self._value end
function Event:clear() self._value = false end
function Event:set()
  if self._value then return end
  self._value = true
  for w in self._waiters:iter() do if not w:done() then w:set_result(true) end end
end
Event.wait = fn(function(self)
  if self._value then return true end
  local fut = Future()
  self._waiters:push(fut)
  local ok, err = pcall(await, fut)
  self._waiters:remove(fut)
  if not ok then error(err, 0) end
  return true
end)

---------------------------------------------------------------------------
-- Condition
---------------------------------------------------------------------------

local Condition = {}
Condition.__index = Condition
function M.Condition(lock)
  lock = lock or M.Lock()
  if getmetatable(lock) ~= Lock then
    error("bad argument #1 to 'Condition' (async.Lock expected)", 2)
  end
  return setmetatable({ _lock = lock, _waiters = deque() }, Condition)
end
function Condition:acquire() return self._lock:acquire() end
function Condition:release() return self._lock:release() end
function Condition:locked() return self._lock:locked() end

Condition.wait = fn(function(self)
  if not self._lock:locked() then error("Condition.wait: the lock is not acquired", 2) end
  self._lock:release()
  local fut = Future()
  self._waiters:push(fut)
  local ok, err = pcall(await, fut)
  self._waiters:remove(fut)
  -- the lock must be held again on the way out, even when cancelled
  local cancel_err
  while true do
    local ok2, e2 = pcall(await, self._lock:acquire())
    if ok2 then break end
    cancel_err = e2
  end
  if cancel_err ~= nil then error(cancel_err, 0) end
  if not ok then error(err, 0) end
  return true
end)

Condition.wait_for = fn(function(self, pred)
  local r = pred()
  while not r do
    await(self:wait())
    r = pred()
  end
  return r
end)

function Condition:notify(n)
  if not self._lock:locked() then error("Condition.notify: the lock is not acquired", 2) end
  n = n or 1
  local woken = 0
  for w in self._waiters:iter() do
    if woken >= n then break end
    if not w:done() then woken = woken + 1; w:set_result(false) end
  end
end
function Condition:notify_all() self:notify(math.huge) end

---------------------------------------------------------------------------
-- Queue
---------------------------------------------------------------------------

local Queue = {}
Queue.__index = Queue
function M.Queue(maxsize)
  maxsize = maxsize or 0
  if math.type(maxsize) ~= "integer" then
    error(("bad argument #1 to 'Queue' (integer expected, got %s)"):format(tostring(maxsize)), 2)
  end
  return setmetatable({ _maxsize = maxsize, _items = deque(), _n = 0,
                        _getters = deque(), _putters = deque(),
                        _unfinished = 0, _finished = M.Event(), _shutdown = false }, Queue)
end
function Queue:qsize() return self._n end
function Queue:maxsize() return self._maxsize end
function Queue:empty() return self._n == 0 end
function Queue:full() return self._maxsize > 0 and self._n >= self._maxsize end

function Queue:put_nowait(item)
  if item == nil then error("bad argument #1 to 'put' (a queue item cannot be nil)", 2) end
  if self._shutdown then error(M.QueueShutDown("the queue is shut down"), 2) end
  if self:full() then error(M.QueueFull("the queue is full"), 2) end
  self._items:push(item)
  self._n = self._n + 1
  self._unfinished = self._unfinished + 1
  self._finished:clear()
  wake_next(self._getters)
end

function Queue:get_nowait()
  if self._n == 0 then
    if self._shutdown then error(M.QueueShutDown("the queue is shut down"), 2) end
    error(M.QueueEmpty("the queue is empty"), 2)
  end
  local item = self._items:popleft()
  self._n = self._n - 1
  wake_next(self._putters)
  return item
end

-- wait in `waiters` until woken; on cancellation hand the turn on
local function queue_wait(self, waiters, still_blocked)
  local fut = Future()
  waiters:push(fut)
  local ok, err = pcall(await, fut)
  if not ok then
    fut:cancel()
    waiters:remove(fut)
    if not still_blocked(self) and not fut:cancelled() then wake_next(waiters) end
    error(err, 0)
  end
end

Queue.put = fn(function(self, item)
  if item == nil then error("bad argument #1 to 'put' (a queue item cannot be nil)", 2) end
  while self:full() do
    if self._shutdown then error(M.QueueShutDown("the queue is shut down"), 0) end
    queue_wait(self, self._putters, Queue.full)
  end
  return self:put_nowait(item)
end)

Queue.get = fn(function(self)
  while self._n == 0 do
    if self._shutdown then error(M.QueueShutDown("the queue is shut down"), 0) end
    queue_wait(self, self._getters, Queue.empty)
  end
  return self:get_nowait()
end)

function Queue:task_done()
  if self._unfinished <= 0 then error("Queue.task_done() called too many times", 2) end
  self._unfinished = self._unfinished - 1
  if self._unfinished == 0 then self._finished:set() end
end

Queue.join = fn(function(self)
  if self._unfinished > 0 then await(self._finished:wait()) end
end)

function Queue:shutdown(immediate)
  self._shutdown = true
  if immediate then
    while self._n > 0 do
      self._items:popleft()
      self._n = self._n - 1
      if self._unfinished > 0 then self._unfinished = self._unfinished - 1 end
    end
    if self._unfinished == 0 then self._finished:set() end
  end
  for _, ws in ipairs { self._getters, self._putters } do
    while not ws:empty() do
      local w = ws:popleft()
      if not w:done() then w:set_result() end
    end
  end
end

---------------------------------------------------------------------------
-- async generators
---------------------------------------------------------------------------

local AWAIT_MARK = core.AWAIT_MARK
local CLOSE = {}                      -- resumes a suspended generator to close it
local FAILED = {}                     -- a generator body's error, caught in its thread
M.GeneratorExit = class("GeneratorExit", M.Error)

local function gen_yield(...)
  if (...) == nil then error("async.generator: cannot yield nil as the first value", 2) end
  if coroutine.yield(...) == CLOSE then error(M.GeneratorExit(), 0) end
end

function M.generator(body)
  if type(body) ~= "function" then
    error(("bad argument #1 to 'generator' (function expected, got %s)"):format(type(body)), 2)
  end
  return function(...)
    local args = pack(...)
    -- the body runs under pcall inside its own thread: only then are its
    -- <close> variables closed (and may await) when it fails
    local co = core.gen_thread(function()
      local ok, e = pcall(body, gen_yield, unpack(args, 1, args.n))
      if not ok then return FAILED, e end
    end)
    local finished, running = false, false

    -- resume the generator, carrying its awaits up to the loop, until it
    -- yields values (returned) or ends (nothing)
    local function advance(...)
      local r = pack(coroutine.resume(co, ...))
      while true do
        if not r[1] then finished = true; error(r[2], 0) end
        if coroutine.status(co) == "dead" then
          finished = true
          if r[2] == FAILED then error(r[3], 0) end
          return nil
        end
        if r[2] ~= AWAIT_MARK then return unpack(r, 2, r.n) end
        r = pack(coroutine.resume(co, core.suspend()))
      end
    end

    local function iter()
      if finished then return nil end
      running = true
      return advance()
    end

    local closer = setmetatable({}, { __close = function()
      if finished then return end
      finished = true
      if not running then coroutine.close(co); return end
      local r = pack(pcall(advance, CLOSE))
      if r[1] and r[2] ~= nil then
        error("async.generator: the generator yielded a value while being closed", 0)
      end
      if not r[1] and getmetatable(r[2]) ~= M.GeneratorExit then error(r[2], 0) end
    end })
    return iter, nil, nil, closer
  end
end

---------------------------------------------------------------------------

return setmetatable(M, {
  __call = function(_, f) return fn(f) end,
})
