-- The floor of "one Lua thread per task": W1-W3 with bare coroutines and a
-- scheduler a few lines long, no event loop.  Each task is a coroutine whose
-- body runs under pcall (a runtime must keep one task's error from the
-- others); a sleep or a semaphore wait yields, the scheduler resumes in FIFO
-- order.  Time waited is not counted (the 10 ms of W2 are not waited for):
-- this is only the work any runtime built on Lua 5.4 coroutines must do.
-- Prints "W<n> <seconds>" (CPU seconds: there is no waiting to miss).
local which = arg[1] or "all"
local N = tonumber(arg[2]) or 100000
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield

local ready, rhead, rtail                    -- the ready FIFO
local function reset() ready, rhead, rtail = {}, 1, 0 end
local function push(co) rtail = rtail + 1; ready[rtail] = co end
local function drain()
  while rhead <= rtail do
    local co = ready[rhead]; ready[rhead] = nil; rhead = rhead + 1
    resume(co)
  end
end
local function body(f, ...) pcall(f, ...) end
local function spawn(f, ...)                 -- start at once, as gather does
  local co = create(body)
  resume(co, f, ...)
  return co
end

local W = {}

function W.W1()
  local results = {}
  for i = 1, N do spawn(function(j) results[j] = j end, i) end
  assert(results[N] == N)
end

function W.W2()
  reset()
  local function sleep() push(coroutine.running()); yield() end
  for _ = 1, N do spawn(sleep) end
  drain()
end

function W.W3()
  reset()
  local value, waiters, whead, wtail = 100, {}, 1, 0
  local function acquire()
    if value > 0 then value = value - 1; return end
    wtail = wtail + 1; waiters[wtail] = coroutine.running()
    yield()                                  -- woken holding the slot
  end
  local function release()
    if whead <= wtail then
      local co = waiters[whead]; waiters[whead] = nil; whead = whead + 1
      push(co)
    else
      value = value + 1
    end
  end
  local function worker()
    acquire()
    push(coroutine.running()); yield()       -- sleep(0)
    release()
  end
  for _ = 1, N do spawn(worker) end
  drain()
  assert(value == 100)
end

for _, name in ipairs { "W1", "W2", "W3" } do
  if which == "all" or which == name then
    collectgarbage(); collectgarbage()
    local t0 = os.clock()
    W[name]()
    print(name, string.format("%.3f", os.clock() - t0))
  end
end
