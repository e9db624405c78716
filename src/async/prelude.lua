-- prelude.lua: the part of `async` written in Lua, over the C core.
--
-- The core (src/async/*.c) gives futures, tasks, await, sleep and the loop; what is
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
M.OSError = class("OSError", M.Error)              -- e.code ("ENOENT"), e.errno, e.message
M.ConnectionError = class("ConnectionError", M.OSError)
M.Interrupted = class("Interrupted", M.Error)      -- async.run stopped by Ctrl-C
M.IncompleteReadError = class("IncompleteReadError", M.Error)   -- e.partial, e.expected
M.LimitOverrunError = class("LimitOverrunError", M.Error)
M.class = class

local CancelledError, TimeoutError, InvalidStateError = M.CancelledError, M.TimeoutError, M.InvalidStateError

local errors_by_name = {
  CancelledError = CancelledError,
  InvalidStateError = InvalidStateError,
  TimeoutError = TimeoutError,
  QueueEmpty = M.QueueEmpty,
  QueueFull = M.QueueFull,
  QueueShutDown = M.QueueShutDown,
  ConnectionError = M.ConnectionError,
  is_cancelled = function(e) return getmetatable(e) == CancelledError end,
}
-- the rest of the module's classes (ExceptionGroup, BrokenBarrierError,
-- Error ...) by name too, for the C API's error_new
core.set_errors(setmetatable(errors_by_name, { __index = M }))

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

-- tasks a host started with async.start: run would cancel every pending
-- task when it ends, so it refuses to start while one of these is pending
local hosted = setmetatable({}, { __mode = "k" })

function M.run(main, ...)
  if core.running() then
    error("async.run() cannot be called from a running event loop", 2)
  end
  local n = 0
  if core.owns_loop() then                       -- (a host's own loop: run_task refuses anyway)
    for t in pairs(hosted) do if not t:done() then n = n + 1 end end
  end
  if n > 0 then
    error(("async.run: %d task%s started with async.start %s still pending (run cancels every task left when it ends); "
           .. "drive them with async.step until they finish, or cancel them, first"):format(n, n == 1 and "" or "s",
           n == 1 and "is" or "are"), 2)
  end
  local t = create_task(to_coro(main, ...))
  if not core.get_debug() then return core.run_task(t) end
  -- debug mode: the standalone interpreter shows only run's own frames for
  -- an error that escapes, so write where it was raised before it goes on
  local r = table.pack(pcall(core.run_task, t))
  if r[1] then return table.unpack(r, 2, r.n) end
  local tb = core.traceback(r[2])
  if tb then
    local okm, msg = pcall(tostring, r[2])
    io.stderr:write("async.run: the main task failed: ", okm and msg or "(an error value whose __tostring failed)",
                    "\n", tb, "\n")
  end
  error(r[2], 0)
end

function M.start(main, ...)
  local t = create_task(to_coro(main, ...))
  hosted[t] = true
  return t
end

-- a Future as a coroutine object: a Task made of it gives its result, and
-- cancelling that Task cancels the Future
local function awaiting(f) return core.coro(await, f) end

function M.create_task(coro, name)
  if not core.running() then
    error("create_task: no running event loop (use async.run, or async.start for a host loop)", 2)
  end
  if isfuture(coro) then coro = awaiting(coro)          -- any awaitable (async.http's calls give Futures)
  elseif not iscoroutine(coro) then
    error(("bad argument #1 to 'create_task' (awaitable expected, got %s)"):format(type(coro)), 2)
  end
  if name ~= nil and type(name) ~= "string" then
    error(("bad argument #2 to 'create_task' (string expected, got %s)"):format(type(name)), 2)
  end
  return create_task(coro, name)
end

function M.spawn(f, ...)
  return M.create_task(to_coro(f, ...))
end

-- an awaitable as a future: coroutine objects become tasks; `arg` names
-- the argument in the error (e.g. "#1 to 'shield'")
local function ensure_future(aw, level, arg)
  if isfuture(aw) then return aw end
  if iscoroutine(aw) then return create_task(aw) end
  error(("bad argument %s (awaitable expected, got %s)"):format(arg or "", type(aw)), level or 3)
end
function M.ensure_future(aw) return ensure_future(aw, 2, "#1 to 'ensure_future'") end  -- (a tail call)

local function cancel_all(futs, n)   -- (gather: nil for a child that finished at once)
  for i = 1, n do if futs[i] then futs[i]:cancel() end end
end

-- an options table (nil: {}) whose keys are all in `allowed` (a list);
-- an error at the caller's call otherwise
local function check_options(opts, allowed, fname, argn)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (options table expected, got %s)"):format(argn, fname, type(opts)), 3)
  end
  for k in pairs(opts) do
    local known = false
    for _, name in ipairs(allowed) do known = known or k == name end
    if not known then
      error(("bad argument #%d to '%s' (unknown option %s; expected %s)"):format(argn, fname, tostring(k), table.concat(allowed, ", ")), 3)
    end
  end
  return opts
end

local function check_timeout(t, fname)
  if t ~= nil and (type(t) ~= "number" or t ~= t) then
    error(("bad argument to '%s' (timeout must be a number of seconds or nil, got %s)"):format(fname, tostring(t)), 3)
  end
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

-- the children's bookkeeping is in C (src/async/combinators.c)
local function gather_body(list, n, return_exceptions)
  local outer, futs = core.gather(list, n, return_exceptions)
  local ok, res = pcall(await, outer)
  if not ok and outer:cancelled() then cancel_all(futs, n) end
  if not ok then error(res, 0) end
  return res
end

function M.gather(...)
  local list, n, opts = awaitables(...)
  local bad = core.first_non_awaitable(list, n)   -- fail at the call, not when awaited
  if bad then
    error(("bad argument #%d to 'gather' (awaitable expected, got %s)"):format(bad, type(list[bad])), 2)
  end
  opts = check_options(opts, { "return_exceptions" }, "gather", 2)
  if opts.return_exceptions ~= nil and type(opts.return_exceptions) ~= "boolean" then
    error(("bad argument #2 to 'gather' (return_exceptions must be a boolean, got %s)"):format(type(opts.return_exceptions)), 2)
  end
  return core.coro(gather_body, list, n, opts.return_exceptions)
end

---------------------------------------------------------------------------
-- timeout scopes and wait_for
---------------------------------------------------------------------------

local Timeout = {}
Timeout.__index = Timeout

local function expire(self)
  if self.state == "active" then
    self.state = "expiring"
    self.handle = nil
    self.task:cancel()
  end
end

function Timeout:reschedule(delay)
  if delay ~= nil and (type(delay) ~= "number" or delay ~= delay) then
    error(("bad argument #1 to 'reschedule' (a delay in seconds or nil expected, got %s)"):format(delay ~= delay and "nan" or tostring(delay)), 2)
  end
  if self.state ~= "active" then                  -- (asyncio: RuntimeError)
    error(InvalidStateError(("Cannot change state of %s Timeout"):format(self.state)), 2)
  end
  if self.handle then self.handle:cancel(); self.handle = nil end
  if delay == nil then self.deadline = nil; return end
  self.deadline = core.time() + delay
  -- a deadline now or past expires before the task's next step, as
  -- asyncio's call_soon: timeout(0) around sleep(0) times out
  if delay <= 0 then self.handle = core.call_soon(expire, self)
  else self.handle = core.call_later(delay, expire, self) end
end

-- the same with an absolute deadline on async.time()'s clock (a past one
-- expires at the next suspension)
function Timeout:reschedule_at(when)
  if when ~= nil and (type(when) ~= "number" or when ~= when) then
    error(("bad argument #1 to 'reschedule_at' (a time on async.time()'s clock or nil expected, got %s)"):format(tostring(when)), 2)
  end
  if self.state ~= "active" then
    error(InvalidStateError(("Cannot change state of %s Timeout"):format(self.state)), 2)
  end
  if when == nil then return self:reschedule(nil) end
  self:reschedule(math.max(0, when - core.time()))
  self.deadline = when
end

function Timeout:when() return self.deadline end
function Timeout:expired() return self.state == "expiring" or self.state == "expired" end

Timeout.__close = function(self, err)
  if self.handle then self.handle:cancel(); self.handle = nil end
  if self.state == "expiring" then
    self.state = "expired"         -- (uncancel: the cancellation it made is withdrawn)
    if self.task:uncancel() <= self.cancelling and getmetatable(err) == CancelledError then
      error(TimeoutError(("timed out after %gs"):format(math.max(0, self.delay or 0))), 0)
    end
  else
    self.state = "exited"
  end
end

function M.timeout_at(when)
  if type(when) ~= "number" and when ~= nil then
    error(("bad argument #1 to 'timeout_at' (number or nil expected, got %s)"):format(type(when)), 2)
  end
  local task = core.current_task()
  if not task then error("async.timeout_at: must be used inside a running task", 2) end
  local self = setmetatable({ task = task, state = "active", delay = when and math.max(0, when - core.time()),
                              cancelling = task:cancelling() }, Timeout)
  self:reschedule_at(when)
  return self
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

-- wait_for with no time left (asyncio): a coroutine object never starts;
-- a Task or Future done gives its outcome, else it is cancelled, waited
-- for, and its result (it may refuse) or TimeoutError is the outcome
local function wait_for_nothing_left(aw)
  local fut = ensure_future(aw, 4, "#1 to 'wait_for'")
  if not fut:done() then
    fut:cancel()
    local waiter = Future()
    local function on_done() if not waiter:done() then waiter:set_result() end end
    fut:add_done_callback(on_done)
    local ok, err = pcall(await, waiter)
    if not ok then fut:remove_done_callback(on_done); error(err, 0) end
  end
  if fut:cancelled() then error(TimeoutError("timed out after 0s"), 0) end
  return fut:result()
end

local function wait_for_body(aw, timeout)
  if timeout <= 0 then return wait_for_nothing_left(aw) end
  local scope <close> = M.timeout(timeout)
  return await(aw)
end

function M.wait_for(aw, timeout)
  if not M.isawaitable(aw) then
    error(("bad argument #1 to 'wait_for' (awaitable expected, got %s)"):format(type(aw)), 2)
  end
  if timeout == nil then return core.coro(await, aw) end
  if type(timeout) ~= "number" or timeout ~= timeout then
    error(("bad argument #2 to 'wait_for' (a number of seconds or nil expected, got %s)"):format(
      type(timeout) == "number" and "nan" or type(timeout)), 2)
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
  opts = check_options(opts, { "timeout", "return_when" }, "wait", 2)
  check_timeout(opts.timeout, "wait")
  local when = opts.return_when or "ALL_COMPLETED"
  if not RETURN_WHEN[when] then
    error(("bad argument #2 to 'wait' (return_when must be ALL_COMPLETED, FIRST_COMPLETED or FIRST_EXCEPTION, got %s)"):format(tostring(when)), 2)
  end
  return core.coro(function()
    local futs, n = {}, #list
    for i = 1, n do futs[i] = ensure_future(list[i], 4, "#1 to 'wait'") end
    if n == 0 then return {}, {} end
    return wait_body(futs, n, opts.timeout, when)
  end)
end

function M.as_completed(list, opts)
  if type(list) ~= "table" then
    error(("bad argument #1 to 'as_completed' (list of awaitables expected, got %s)"):format(type(list)), 2)
  end
  opts = check_options(opts, { "timeout" }, "as_completed", 2)
  check_timeout(opts.timeout, "as_completed")
  local timeout = opts.timeout
  local futs, n = {}, #list
  for i = 1, n do futs[i] = ensure_future(list[i], 3, "#1 to 'as_completed'") end
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
  for i = 1, n do futs[i] = ensure_future(list[i], 4, "#1 to 'race'") end
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
  local inner = ensure_future(aw, 3, "#1 to 'shield'")
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
-- a small FIFO of futures, for Event and Condition
---------------------------------------------------------------------------

local Deque = {}
Deque.__index = Deque
local function deque() return setmetatable({ first = 1, last = 0 }, Deque) end
function Deque:push(v) local l = self.last + 1; self.last = l; self[l] = v end
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


---------------------------------------------------------------------------
-- Semaphore, BoundedSemaphore, Lock and Queue are in C (src/async/sync.c)
---------------------------------------------------------------------------

M.Semaphore = core.Semaphore
M.BoundedSemaphore = core.BoundedSemaphore
M.Lock = core.Lock
M.Queue = core.Queue
M.LifoQueue = core.LifoQueue
M.PriorityQueue = core.PriorityQueue

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
  if not core.islock(lock) then
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
  if cancel_err == nil and ok then return true end
  -- it may have been notified before the error came (cancelled after its
  -- wake-up): the notification goes to another waiter, not lost (asyncio
  -- 3.13; a spurious wake-up is allowed, a lost one is not)
  self:notify(1)
  error(cancel_err ~= nil and cancel_err or err, 0)
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
-- TaskGroup (Python 3.11's structured concurrency) and Barrier
---------------------------------------------------------------------------

M.ExceptionGroup = class("ExceptionGroup", M.Error)
M.BrokenBarrierError = class("BrokenBarrierError", M.Error)

local TaskGroup = {}
TaskGroup.__index = TaskGroup

function M.TaskGroup()
  local owner = core.current_task()
  if not owner then error("async.TaskGroup: must be used inside a running task", 2) end
  return setmetatable({ owner = owner, tasks = {}, pending = 0, errors = {}, state = "open", done = M.Event() }, TaskGroup)
end

-- cancel the tasks still running; while the body runs, interrupt it too
-- (its CancelledError is the group's own, withdrawn at the scope's end)
local function tg_abort(self)
  self.aborting = true
  for t in pairs(self.tasks) do t:cancel() end
  if self.state == "open" and not self.interrupted then
    self.interrupted = true
    self.owner:cancel()
  end
end

local function tg_finished(self, t)
  self.tasks[t] = nil
  self.pending = self.pending - 1
  if not t:cancelled() then
    local e = t:exception()
    if e ~= nil then
      self.errors[#self.errors + 1] = e
      if not self.aborting then tg_abort(self) end
    end
  end
  if self.pending == 0 then self.done:set() end
end

-- tg:spawn(coro) or tg:spawn(fn, ...): a Task of the group
function TaskGroup:spawn(f, ...)
  if self.state == "finished" then error("TaskGroup:spawn: the group has finished", 2) end
  if self.aborting then error("TaskGroup:spawn: the group is shutting down (a task failed or it was cancelled)", 2) end
  local t = create_task(to_coro(f, ...))
  self.tasks[t] = true
  self.pending = self.pending + 1
  self.done:clear()
  t:add_done_callback(function(task) tg_finished(self, task) end)
  return t
end

-- leaving the scope waits for every task of the group
TaskGroup.__close = function(self, err)
  self.state = "closing"
  local raised                                   -- the body's error, or a cancellation from outside
  if err ~= nil then
    if getmetatable(err) == CancelledError and self.interrupted then
      self.owner:uncancel(); self.interrupted = "withdrawn"
    else
      raised = err
      if not self.aborting then tg_abort(self) end
    end
  end
  while self.pending > 0 do
    local ok, e = pcall(await, self.done:wait())
    if not ok then
      if getmetatable(e) == CancelledError and self.interrupted == true then
        self.owner:uncancel(); self.interrupted = "withdrawn"   -- the group's own, arriving late
      else
        raised = raised or e                     -- cancelled from outside while waiting
        tg_abort(self)
      end
    end
  end
  self.state = "finished"
  if raised ~= nil and getmetatable(raised) ~= CancelledError then error(raised, 0) end
  if #self.errors == 1 then error(self.errors[1], 0) end
  if #self.errors > 1 then
    error(M.ExceptionGroup(("%d tasks of a TaskGroup failed"):format(#self.errors), { errors = self.errors }), 0)
  end
  if raised ~= nil then error(raised, 0) end
end

local Barrier = {}
Barrier.__index = Barrier

function M.Barrier(parties)
  if math.type(parties) ~= "integer" or parties < 1 then
    error(("bad argument #1 to 'Barrier' (a positive integer expected, got %s)"):format(tostring(parties)), 2)
  end
  return setmetatable({ parties = parties, n_waiting = 0, broken = false, cycle = Future() }, Barrier)
end

-- the waiters of this cycle fail with BrokenBarrierError; the next starts empty
local function barrier_break(self, why)
  if self.n_waiting == 0 then return end          -- (nobody to tell)
  local cycle = self.cycle
  self.cycle, self.n_waiting = Future(), 0
  cycle:set_exception(M.BrokenBarrierError(why))
end

local function barrier_wait(self)
  if self.broken then error(M.BrokenBarrierError("the barrier is broken (aborted)"), 0) end
  local index, cycle = self.n_waiting, self.cycle
  self.n_waiting = index + 1
  if self.n_waiting == self.parties then       -- the last one: release them all
    self.cycle, self.n_waiting = Future(), 0
    cycle:set_result(true)
    return index
  end
  local ok, e = pcall(await, M.shield(cycle))  -- (shielded: one waiter's cancellation is its own)
  if not ok then
    if cycle == self.cycle and not cycle:done() then self.n_waiting = self.n_waiting - 1 end
    error(e, 0)
  end
  return index
end

-- await(b:wait()): when `parties` tasks wait, each gets its arrival index 0..parties-1
function Barrier:wait() return core.coro(barrier_wait, self) end
function Barrier:reset() barrier_break(self, "the barrier was reset"); self.broken = false end
function Barrier:abort() self.broken = true; barrier_break(self, "the barrier was aborted") end
Barrier.__tostring = function(self)
  return ("<Barrier parties=%d waiting=%d%s>"):format(self.parties, self.n_waiting, self.broken and " broken" or "")
end

---------------------------------------------------------------------------
-- JSON and HTTP (libcurl on this loop: src/io/http.c)
---------------------------------------------------------------------------

M.json = core.json

-- async.http lives in its own module (async/http.so, libcurl), loaded on
-- first use: a script that makes no request never loads libcurl.  So does
-- the I/O layer (async/io.so): to_thread now.

function M.to_thread(...)
  return require("async.io").to_thread(...)
end

-- Signals: each signal has one watcher (async.io) and a list of handlers,
-- run in the order they were added, each queued on the loop (call_soon),
-- so that an error in one is reported and the others still run.  While a
-- signal has handlers its watcher counts as something that may wake a
-- task (run does not call waiting for it a deadlock); it never keeps run
-- going once main has ended.  Handlers of SIGINT take Ctrl-C from
-- async.run (core.sigint_taken).
local signal_state = {}

local function check_signal(sig, fname)
  if type(sig) ~= "string" or not require("async.io").signal_known(sig) then
    error(("bad argument #1 to '%s' (a signal name such as \"SIGHUP\" or \"SIGUSR1\" expected, got %s)"):format(
      fname, type(sig) == "string" and ("%q"):format(sig) or type(sig)), 3)
  end
end

local function signal_entry(sig)
  local e = signal_state[sig]
  if e then return e end
  e = { handlers = {} }
  e.watcher = require("async.io").watch_signal(sig, function(name)
    local list = table.move(e.handlers, 1, #e.handlers, 1, {})
    for _, h in ipairs(list) do core.call_soon(h, name) end
  end)
  signal_state[sig] = e
  return e
end

local function signal_changed(sig, e)
  if sig == "SIGINT" then core.sigint_taken(#e.handlers > 0) end
  e.watcher:ref(#e.handlers > 0)
  if #e.handlers == 0 then e.watcher:close(); signal_state[sig] = nil end
end

local function signal_remove(e, h)
  for i, x in ipairs(e.handlers) do if x == h then table.remove(e.handlers, i); return end end
end

local SignalHandle = {}
SignalHandle.__index = SignalHandle
function SignalHandle:cancel()
  if self.cancelled then return end
  self.cancelled = true
  local e = signal_state[self.sig]
  if e then signal_remove(e, self.fn); signal_changed(self.sig, e) end
end

function M.on_signal(sig, fn)
  check_signal(sig, "on_signal")
  if type(fn) ~= "function" then
    error(("bad argument #2 to 'on_signal' (function expected, got %s)"):format(type(fn)), 2)
  end
  local e = signal_entry(sig)
  local h = function(name) return fn(name) end           -- its own identity in the list
  e.handlers[#e.handlers + 1] = h
  signal_changed(sig, e)
  return setmetatable({ sig = sig, fn = h }, SignalHandle)
end

function M.signal(sig)
  check_signal(sig, "signal")
  return core.coro(function()
    local e = signal_entry(sig)
    local f = Future()
    local h = function(name) if not f:done() then f:set_result(name) end end
    e.handlers[#e.handlers + 1] = h
    signal_changed(sig, e)
    local ok, r = pcall(await, f)
    signal_remove(e, h)
    signal_changed(sig, e)
    if not ok then error(r, 0) end
    return r
  end)
end

---------------------------------------------------------------------------

---------------------------------------------------------------------------
-- async.fs: file work on the thread pool (async/io.so's fs_op); file
-- objects buffer what they read, for the io formats
---------------------------------------------------------------------------

local FS = { read_file = 0, write_file = 1, stat = 2, list = 3, mkdir = 4, remove = 5, rename = 6,
             open = 7, read = 8, write = 9, sync = 10, close = 11 }
local CHUNK = 65536

local function make_fs()
  local io_ = require "async.io"
  local op, seek, close_now = io_.fs_op, io_.fs_seek, io_.fs_close_now
  local fs = {}

  local function check_path(p, fname, argn)
    if type(p) ~= "string" or p == "" or p:find("\0", 1, true) then
      error(("bad argument #%d to '%s' (a path expected, got %s)"):format(argn or 1, fname,
            type(p) == "string" and ("%q"):format(p) or type(p)), 3)
    end
  end

  function fs.read_file(path) check_path(path, "read_file"); return op(FS.read_file, path) end
  function fs.write_file(path, data, opts)
    check_path(path, "write_file")
    if type(data) ~= "string" then
      error(("bad argument #2 to 'write_file' (string expected, got %s)"):format(type(data)), 2)
    end
    opts = check_options(opts, { "append", "mode", "sync" }, "write_file", 3)
    if opts.mode ~= nil and math.type(opts.mode) ~= "integer" then
      error("bad argument #3 to 'write_file' (mode must be an integer such as 420 (0644))", 2)
    end
    return op(FS.write_file, path, data, opts.append == true, opts.mode or 420, opts.sync == true)
  end
  function fs.stat(path) check_path(path, "stat"); return op(FS.stat, path) end
  function fs.list(path) check_path(path, "list"); return op(FS.list, path) end
  function fs.mkdir(path, opts)
    check_path(path, "mkdir")
    opts = check_options(opts, { "parents", "mode" }, "mkdir", 2)
    return op(FS.mkdir, path, opts.parents == true, opts.mode or 511)
  end
  function fs.remove(path, opts)
    check_path(path, "remove")
    opts = check_options(opts, { "recursive" }, "remove", 2)
    return op(FS.remove, path, opts.recursive == true)
  end
  function fs.rename(from, to)
    check_path(from, "rename"); check_path(to, "rename", 2)
    return op(FS.rename, from, to)
  end

  local File = {}
  File.__index = File
  local function check_open(self, what)
    if self.fd == nil then error(("%s: the file is closed"):format(what), 3) end
  end

  -- more bytes into the buffer; false at the end of the file
  local function fill(self)
    local chunk = await(op(FS.read, self.fd, CHUNK, self.path))
    if chunk == "" then self.eof = true; return false end
    self.buf = self.buf .. chunk
    return true
  end

  local function take(self, n)
    local s = self.buf:sub(1, n)
    self.buf = self.buf:sub(n + 1)
    return s
  end

  local function read_one(self, fmt)
    if math.type(fmt) == "integer" and fmt >= 0 then
      while #self.buf < fmt and not self.eof and fill(self) do end
      if #self.buf == 0 and fmt > 0 then return nil end
      return take(self, fmt)
    end
    fmt = type(fmt) == "string" and fmt:gsub("^%*", "") or fmt
    if fmt == "a" then
      while not self.eof and fill(self) do end
      return take(self, #self.buf)
    elseif fmt == "l" or fmt == "L" then
      local nl = self.buf:find("\n", 1, true)
      while not nl and not self.eof and fill(self) do nl = self.buf:find("\n", 1, true) end
      if nl then local line = take(self, nl); return fmt == "l" and line:sub(1, -2) or line end
      if #self.buf == 0 then return nil end
      return take(self, #self.buf)
    end
    error(("bad argument to 'read' (a byte count, \"l\", \"L\" or \"a\" expected, got %s)"):format(tostring(fmt)), 3)
  end

  File.read = fn(function(self, ...)
    check_open(self, "read")
    local fmts = select("#", ...) > 0 and pack(...) or { "l", n = 1 }
    local out = {}
    for i = 1, fmts.n do
      out[i] = read_one(self, fmts[i])
      if out[i] == nil then return unpack(out, 1, i) end
    end
    return unpack(out, 1, fmts.n)
  end)

  -- the file's position is ahead of the reader by what the buffer holds
  local function drop_buffer(self)
    if #self.buf > 0 then seek(self.fd, "cur", -#self.buf) end
    self.buf, self.eof = "", false
  end

  File.write = fn(function(self, ...)
    check_open(self, "write")
    local parts = pack(...)
    for i = 1, parts.n do
      local v = parts[i]
      if type(v) ~= "string" and type(v) ~= "number" then
        error(("bad argument #%d to 'write' (string or number expected, got %s)"):format(i, type(v)), 0)
      end
      parts[i] = tostring(v)
    end
    drop_buffer(self)
    await(op(FS.write, self.fd, table.concat(parts, "", 1, parts.n), self.path))
    return self
  end)

  function File:seek(whence, offset)
    check_open(self, "seek")
    whence = whence or "cur"
    if whence ~= "set" and whence ~= "cur" and whence ~= "end" then
      error(("bad argument #1 to 'seek' (\"set\", \"cur\" or \"end\" expected, got %s)"):format(tostring(whence)), 2)
    end
    offset = offset or 0
    if whence == "cur" then offset = offset - #self.buf end
    self.buf, self.eof = "", false
    return seek(self.fd, whence, offset)
  end

  File.sync = fn(function(self)
    check_open(self, "sync")
    return await(op(FS.sync, self.fd, self.path))
  end)

  File.close = fn(function(self)
    if self.fd == nil then return true end
    local fd = self.fd
    self.fd = nil
    if self.keep_fd then return true end            -- stdio: the process's own, left open
    return await(op(FS.close, fd, self.path))
  end)

  function File:lines(fmt)
    check_open(self, "lines")
    return function() return await(self:read(fmt or "l")) end
  end

  File.__close = function(self) if self.fd ~= nil then await(self:close()) end end
  File.__gc = function(self) if self.fd ~= nil and not self.keep_fd then close_now(self.fd); self.fd = nil end end
  File.__tostring = function(self) return ("<file %s%s>"):format(self.path, self.fd and "" or " (closed)") end

  -- a file object over one of this process's descriptors, left open (stdio)
  function fs._over_fd(fd, name)
    return setmetatable({ fd = fd, path = name, buf = "", eof = false, keep_fd = true }, File)
  end

  function fs.open(path, mode)
    check_path(path, "open")
    mode = mode or "r"
    if type(mode) ~= "string" or not mode:gsub("b", ""):match("^[rwa]%+?$") then
      error(("bad argument #2 to 'open' (mode \"r\", \"w\", \"a\", \"r+\", \"w+\" or \"a+\" expected, got %s)"):format(tostring(mode)), 2)
    end
    return core.coro(function()
      local fd = await(op(FS.open, path, mode:gsub("b", "")))
      return setmetatable({ fd = fd, path = path, buf = "", eof = false }, File)
    end)
  end

  return fs
end

---------------------------------------------------------------------------
-- Streams and servers (TCP): the buffer, the waits and the sockets are C's
-- (async/io.so: stream.c, tcp.c); here are the formats and the tasks
---------------------------------------------------------------------------

local server_handlers = setmetatable({}, { __mode = "k" })   -- server -> its handler tasks (weak)
local function streams()
  local io_ = require "async.io"
  local S = io_.stream_methods
  if S.lines then return io_ end                 -- (a module loaded again, as busted's insulation does, has none)

  -- (read, read_exactly, read_until, write and drain are C's: each gives
  -- the operation's awaitable itself, a bad argument raised at the call)
  function S:lines(fmt)
    return function() return await(self:read(fmt or "l")) end
  end
  S.close = fn(function(s) return await(s:_close("close")) end)
  S.close_write = fn(function(s) return await(s:_close("write")) end)
  -- leaving a `<close>` scope closes the stream; by an error, at once (abort)
  getmetatable(io_.new_tcp()).__close = function(s, err)
    if err ~= nil then s:abort() else await(s:_close("close")) end
  end

  local Sv = io_.server_methods
  Sv.close = fn(function(sv)
    sv:_close()
    await(core.sleep(0))                         -- the close callback comes at the next step
    return true
  end)
  Sv.wait_closed = fn(function(sv)
    while not sv:_closed() do await(core.sleep(0.01)) end
    for t in pairs(server_handlers[sv] or {}) do   -- waited for, not retrieved: their errors are still reported
      if not t:done() then
        local f = Future()
        t:add_done_callback(function() f:set_result() end)
        await(f)
      end
    end
    return true
  end)
  Sv.serve_forever = fn(function(sv)
    local ok, e = pcall(function() while not sv:_closed() do await(core.sleep(0.05)) end end)
    if not ok then sv:_close(); error(e, 0) end
    return true
  end)
  return io_
end

local function check_port(port, fname, argn)
  if math.type(port) ~= "integer" or port < 0 or port > 65535 then
    error(("bad argument #%d to '%s' (port must be an integer 0-65535, got %s)"):format(argn, fname,
          type(port) == "string" and ("%q"):format(port) or tostring(port)), 3)
  end
end

function M.getaddrinfo(host, port, opts)
  if type(host) ~= "string" then
    error(("bad argument #1 to 'getaddrinfo' (a host name or address expected, got %s)"):format(type(host)), 2)
  end
  if port ~= nil then check_port(port, "getaddrinfo", 2) end
  opts = check_options(opts, { "family" }, "getaddrinfo", 3)
  if opts.family ~= nil and opts.family ~= "inet" and opts.family ~= "inet6" then
    error("bad argument #3 to 'getaddrinfo' (family must be \"inet\" or \"inet6\")", 2)
  end
  return streams().getaddrinfo(host, port or 0, opts.family)
end

-- opts.tls: true (a client's) or a table of the fields named, each of the
-- type named; a server's needs cert_file and key_file, a client's both or
-- neither
local function check_tls(tls, fields, fname, argn, server)
  if tls == nil or tls == false then return nil end
  if tls == true and not server then return {} end
  if type(tls) ~= "table" then
    error(("bad argument #%d to '%s' (opts.tls must be %s, got %s)"):format(argn, fname,
          server and "a table" or "true or a table", tostring(tls)), 3)
  end
  for k, v in pairs(tls) do
    local want = fields[k]
    if not want then
      local names = {}
      for name in pairs(fields) do names[#names + 1] = name end
      table.sort(names)
      error(("bad argument #%d to '%s' (unknown option tls.%s; expected %s)"):format(argn, fname, tostring(k),
            table.concat(names, ", ")), 3)
    end
    if type(v) ~= want then
      error(("bad argument #%d to '%s' (opts.tls.%s must be a %s, got %s)"):format(argn, fname, k, want, type(v)), 3)
    end
  end
  for _, k in ipairs { "cert_file", "key_file" } do   -- a server's both; a client's (mutual TLS) both or neither
    if (server or tls.cert_file or tls.key_file) and tls[k] == nil then
      error(("bad argument #%d to '%s' (opts.tls.%s is required)"):format(argn, fname, k), 3)
    end
  end
  if tls.handshake_timeout ~= nil and not (tls.handshake_timeout > 0) then
    error(("bad argument #%d to '%s' (opts.tls.handshake_timeout must be a number of seconds above 0)"):format(argn, fname), 3)
  end
  return tls
end

-- a TLS context; what is wrong with its files is raised at the user's
-- call (level: theirs, counted from here)
local function new_context(io_, opts, level)
  local ok, ctx = pcall(io_.tls_context, opts)
  if ok then return ctx end
  error(ctx, type(ctx) == "string" and level + 1 or 0)
end

-- a client's TLS context: the two without files of their own (the
-- system's CA store; insecure) are made once
local system_ctx, insecure_ctx
local function client_context(io_, tls)
  if tls.ca_file or tls.cert_file then
    return new_context(io_, { ca_file = tls.ca_file, cert_file = tls.cert_file, key_file = tls.key_file,
                              insecure = tls.insecure }, 3)
  end
  if tls.insecure then
    insecure_ctx = insecure_ctx or new_context(io_, { insecure = true }, 3)
    return insecure_ctx
  end
  system_ctx = system_ctx or new_context(io_, {}, 3)
  return system_ctx
end

function M.connect(host, port, opts)
  if type(host) ~= "string" then
    error(("bad argument #1 to 'connect' (a host name or address expected, got %s)"):format(type(host)), 2)
  end
  check_port(port, "connect", 2)
  opts = check_options(opts, { "timeout", "limit", "nodelay", "tls" }, "connect", 3)
  local tls = check_tls(opts.tls, { servername = "string", ca_file = "string", insecure = "boolean",
                                    cert_file = "string", key_file = "string" }, "connect", 3)
  local io_ = streams()
  local ctx = tls and client_context(io_, tls)  -- (a ca_file that cannot be read fails here, at the call)
  local function handshake(s)
    s:_tls(ctx, tls.servername or host)
    local ok, e = pcall(await, s:_handshake())
    if ok then return s end
    s:abort()
    if type(e) == "table" and e.message then e.message = ("%s:%d: %s"):format(host, port, e.message) end
    error(e, 0)
  end
  local body = function()
    local addrs = await(io_.getaddrinfo(host, port))
    local last
    for _, a in ipairs(addrs) do                   -- each address in turn
      local s = io_.new_tcp(opts.limit)
      local ok, e = pcall(await, io_.connect_addr(s, a.address, port))
      if ok then
        if opts.nodelay ~= false then s:set_nodelay(true) end
        if tls then return handshake(s) end   -- (a handshake that fails is not retried on another address)
        return s
      end
      s:abort()
      last = e
      if CancelledError:is(e) then error(e, 0) end
    end
    if last then
      last.message = ("%s:%d: %s"):format(host, port, last.message)
      error(last, 0)
    end
    error(M.OSError(("connect %s:%d: no address"):format(host, port)), 0)
  end
  if opts.timeout then return M.wait_for(core.coro(body), opts.timeout) end
  return core.coro(body)
end

-- each connection's handler as a Task, the stream closed when it ends;
-- listen(on_conn) makes the server
local TLS_HANDSHAKE_TIMEOUT = 60   -- seconds a TLS client has by default to finish its handshake (asyncio's)
local function serving(handler, listen, tls)
  local handlers = setmetatable({}, { __mode = "k" })
  local function on_conn(s)
    local t = M.spawn(function()
      local stream <close> = s
      if tls then                    -- the handler sees only streams whose handshake succeeded
        local ok, e = pcall(await, M.wait_for(s:_handshake(), tls.handshake_timeout or TLS_HANDSHAKE_TIMEOUT))
        if not ok then
          s:abort()
          if CancelledError:is(e) then error(e, 0) end   -- (a failed handshake is no one's error; a cancellation is)
          return
        end
      end
      return handler(s)
    end)
    handlers[t] = true
  end
  local sv = listen(on_conn)
  server_handlers[sv] = handlers
  return sv
end

local function check_handler(handler, fname)
  if type(handler) ~= "function" then
    error(("bad argument #1 to '%s' (function expected, got %s)"):format(fname, type(handler)), 3)
  end
end

function M.serve(handler, host, port, opts)
  check_handler(handler, "serve")
  if type(host) ~= "string" then
    error(("bad argument #2 to 'serve' (a host address expected, got %s)"):format(type(host)), 2)
  end
  check_port(port, "serve", 3)
  opts = check_options(opts, { "backlog", "limit", "reuse_port", "tls" }, "serve", 4)
  local tls = check_tls(opts.tls, { cert_file = "string", key_file = "string", ca_file = "string",
                                    handshake_timeout = "number" }, "serve", 4, true)
  local io_ = streams()
  local ctx = tls and new_context(io_, { server = true, cert_file = tls.cert_file, key_file = tls.key_file,
                                         ca_file = tls.ca_file }, 2)
  return core.coro(function()
    local addrs = await(io_.getaddrinfo(host, port))
    if #addrs == 0 then error(M.OSError(("serve %s:%d: no address"):format(host, port)), 0) end
    return serving(handler, function(on_conn)
      return io_.listen_tcp(addrs[1].address, port, opts.backlog, on_conn, opts.limit, opts.reuse_port, ctx)
    end, tls)
  end)
end

local function check_socket_path(path, fname, argn)
  if type(path) ~= "string" or path == "" or path:find("\0", 1, true) then
    error(("bad argument #%d to '%s' (a socket path expected, got %s)"):format(argn, fname, type(path)), 3)
  end
end

function M.serve_unix(handler, path, opts)
  check_handler(handler, "serve_unix")
  check_socket_path(path, "serve_unix", 2)
  opts = check_options(opts, { "backlog", "limit" }, "serve_unix", 3)
  local io_ = streams()
  return core.coro(function()
    return serving(handler, function(on_conn) return io_.listen_unix(path, opts.backlog, on_conn, opts.limit) end)
  end)
end

function M.connect_unix(path, opts)
  check_socket_path(path, "connect_unix", 1)
  opts = check_options(opts, { "timeout", "limit" }, "connect_unix", 2)
  local io_ = streams()
  local body = function()
    local s = io_.new_pipe(opts.limit)
    local ok, e = pcall(await, io_.connect_unix(s, path))
    if not ok then
      s:abort()
      if type(e) == "table" and e.message then e.message = path .. ": " .. e.message end
      error(e, 0)
    end
    return s
  end
  if opts.timeout then return M.wait_for(core.coro(body), opts.timeout) end
  return core.coro(body)
end

---------------------------------------------------------------------------
-- UDP (async/io.so's udp_open)
---------------------------------------------------------------------------

local function udp_methods(io_)
  local U = io_.udp_methods
  if U.send then return end
  U.send = fn(function(u, data, host, port)
    if type(data) ~= "string" then
      error(("bad argument #1 to 'send' (string expected, got %s)"):format(type(data)), 0)
    end
    if host ~= nil then
      local addrs = await(io_.getaddrinfo(host, port))
      if #addrs == 0 then error(M.OSError(("send %s: no address"):format(host)), 0) end
      host = addrs[1].address
    end
    return await(u:_send(data, host, port))
  end)
  U.close = fn(function(u) u:_close(); await(core.sleep(0)); return true end)
end

function M.udp(opts)
  opts = check_options(opts, { "host", "port", "peer" }, "udp", 1)
  if opts.port ~= nil then check_port(opts.port, "udp", 1) end
  if opts.peer ~= nil and (type(opts.peer) ~= "table" or type(opts.peer[1]) ~= "string") then
    error("bad argument #1 to 'udp' (peer must be {host, port})", 2)
  end
  if opts.peer then check_port(opts.peer[2], "udp", 1) end
  local io_ = streams()
  udp_methods(io_)
  return core.coro(function()
    local host = opts.host or "0.0.0.0"
    local addrs = await(io_.getaddrinfo(host, opts.port or 0))
    local peer
    if opts.peer then
      local p = await(io_.getaddrinfo(opts.peer[1], opts.peer[2]))
      peer = p[1] and p[1].address
    end
    return io_.udp_open(addrs[1].address, opts.port or 0, peer, opts.peer and opts.peer[2])
  end)
end

---------------------------------------------------------------------------
-- Child processes (async/io.so's spawn; the pipes are streams)
---------------------------------------------------------------------------

local Process = {}
Process.__index = Process
function Process:wait() return self._box:_wait() end
function Process:kill(sig) return self._box:kill(sig) end
Process.communicate = fn(function(self, input)
  if input ~= nil and type(input) ~= "string" then
    error(("bad argument #1 to 'communicate' (string expected, got %s)"):format(type(input)), 0)
  end
  local parts = {}
  if self.stdin then
    parts[#parts + 1] = M.spawn(function()
      if input and #input > 0 then pcall(await, self.stdin:write(input)) end   -- a child that exits early: fine
      await(self.stdin:close())
    end)
  end
  local out = self.stdout and M.spawn(function() return await(self.stdout:read("a")) end)
  local err = self.stderr and M.spawn(function() return await(self.stderr:read("a")) end)
  if out then parts[#parts + 1] = out end
  if err then parts[#parts + 1] = err end
  await(M.gather(parts))                          -- both pipes read at once: no pipe deadlock
  local code, sig = await(self:wait())
  return out and out:result(), err and err:result(), code, sig
end)

local STDIO = { pipe = true, inherit = true, null = true }

local function exec(argv, opts, fname)
  opts = check_options(opts, { "stdin", "stdout", "stderr", "env", "cwd", "limit" }, fname, 2)
  for _, k in ipairs({ "stdin", "stdout", "stderr" }) do
    if opts[k] ~= nil and not STDIO[opts[k]] and not (k == "stderr" and opts[k] == "stdout") then
      error(("bad argument #2 to '%s' (%s must be \"pipe\", \"inherit\" or \"null\", got %s)"):format(
        fname, k, tostring(opts[k])), 3)
    end
  end
  if opts.env ~= nil and type(opts.env) ~= "table" then
    error(("bad argument #2 to '%s' (env must be a table of names to values)"):format(fname), 3)
  end
  local io_ = streams()
  return core.coro(function()
    local box, i, o, e = io_.spawn(argv, { opts.stdin, opts.stdout, opts.stderr }, opts.env, opts.cwd, opts.limit)
    return setmetatable({ pid = box:_pid(), stdin = i, stdout = o, stderr = e, _box = box }, Process)
  end)
end

M.process = {}
function M.process.exec(argv, opts)
  if type(argv) ~= "table" or type(argv[1]) ~= "string" then
    error("bad argument #1 to 'exec' (a list: the program, then its arguments)", 2)
  end
  return exec(argv, opts, "exec")
end
function M.process.shell(cmd, opts)
  if type(cmd) ~= "string" then
    error(("bad argument #1 to 'shell' (string expected, got %s)"):format(type(cmd)), 2)
  end
  return exec({ "/bin/sh", "-c", cmd }, opts, "shell")
end

return setmetatable(M, {
  __call = function(_, f) return fn(f) end,
  __index = function(t, k)
    if k == "http" then
      local http = require "async.http"
      rawset(t, "http", http)
      return http
    elseif k == "fs" then
      local fs = make_fs()
      rawset(t, "fs", fs)
      return fs
    elseif k == "stdin" or k == "stdout" or k == "stderr" then
      -- a stream over a terminal, pipe or socket; a file object over a file
      local fd = k == "stdin" and 0 or k == "stdout" and 1 or 2
      local s = streams().stdio_stream(fd) or t.fs._over_fd(fd, "<" .. k .. ">")
      rawset(t, k, s)
      return s
    end
  end,
})
