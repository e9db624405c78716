-- The four runtime workloads on luv (Debian's lua-luv) with hand-written
-- coroutine scheduling: what a Lua programmer writes without a runtime.
local uv = require "luv"
local which = arg[1] or "all"
local N = tonumber(arg[2]) or 100000

-- a minimal scheduler: a ready list drained from an idle handle
local ready, rhead, rtail = {}, 1, 0
local idle = uv.new_idle()
local function drain()
  local stop = rtail
  while rhead <= stop do
    local co, v = ready[rhead], ready[rhead + 1]
    ready[rhead], ready[rhead + 1] = nil, nil
    rhead = rhead + 2
    assert(coroutine.resume(co, v))
  end
  if rhead > rtail then rhead, rtail = 1, 0; idle:stop() end
end
local function wake(co, v)
  if rhead > rtail then idle:start(drain) end
  ready[rtail + 1], ready[rtail + 2] = co, v or false
  rtail = rtail + 2
end
local function spawn(f, ...) local co = coroutine.create(f); wake(co, select("#", ...) > 0 and ... or false); return co end
local function sleep(s)
  local co = coroutine.running()
  if s == 0 then wake(co) return coroutine.yield() end
  local t = uv.new_timer()
  t:start(math.floor(s * 1000), 0, function() t:close(); wake(co) end)
  return coroutine.yield()
end

local W = {}
function W.W1()
  local results, left = {}, N
  for i = 1, N do spawn(function() results[i] = i; left = left - 1 end) end
  uv.run()
  assert(left == 0 and results[N] == N)
end
function W.W2()
  for _ = 1, N do spawn(function() sleep(0.01) end) end
  uv.run()
end
function W.W3()
  local value, waiters, wh, wt = 100, {}, 1, 0
  for _ = 1, N do
    spawn(function()
      if value == 0 then wt = wt + 1; waiters[wt] = coroutine.running(); coroutine.yield() else value = value - 1 end
      sleep(0)
      if wh <= wt then local w = waiters[wh]; waiters[wh] = nil; wh = wh + 1; wake(w) else value = value + 1 end
    end)
  end
  uv.run()
end
function W.W4()
  local R = 2 * N
  local function queue() return { items = {}, h = 1, t = 0 } end
  local function put(q, x)
    if q.waiter then local w = q.waiter; q.waiter = nil; wake(w, x) else q.t = q.t + 1; q.items[q.t] = x end
  end
  local function get(q)
    if q.h <= q.t then local x = q.items[q.h]; q.items[q.h] = nil; q.h = q.h + 1; return x end
    q.waiter = coroutine.running()
    return coroutine.yield()
  end
  local ping, pong = queue(), queue()
  spawn(function() for _ = 1, R do put(pong, get(ping)) end end)
  spawn(function() for i = 1, R do put(ping, i); get(pong) end end)
  uv.run()
end

for _, name in ipairs { "W1", "W2", "W3", "W4" } do
  if which == "all" or which == name then
    local t0 = uv.hrtime()
    W[name]()
    print(name, string.format("%.3f", (uv.hrtime() - t0) / 1e9))
  end
end
