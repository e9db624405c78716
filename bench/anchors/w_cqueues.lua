-- The four runtime workloads on cqueues (Debian's lua-cqueues, Lua 5.4).
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local which = arg[1] or "all"
local N = tonumber(arg[2]) or 100000

local W = {}

function W.W1()
  local cq = cqueues.new()
  local results, left, done = {}, N, condition.new()
  cq:wrap(function()
    for i = 1, N do
      cq:wrap(function() results[i] = i; left = left - 1; if left == 0 then done:signal() end end)
    end
    if left > 0 then done:wait() end
  end)
  assert(cq:loop())
  assert(results[N] == N)
end

function W.W2()
  local cq = cqueues.new()
  for _ = 1, N do cq:wrap(function() cqueues.sleep(0.01) end) end
  assert(cq:loop())
end

function W.W3()
  local cq = cqueues.new()
  local value, cond = 100, condition.new()
  for _ = 1, N do
    cq:wrap(function()
      while value == 0 do cond:wait() end
      value = value - 1
      cqueues.sleep(0)
      value = value + 1
      cond:signal(1)
    end)
  end
  assert(cq:loop())
end

function W.W4()
  local cq = cqueues.new()
  local R = 2 * N
  local function queue() return { items = {}, head = 1, tail = 0, cond = condition.new() } end
  local function put(q, x) q.tail = q.tail + 1; q.items[q.tail] = x; q.cond:signal(1) end
  local function get(q)
    while q.head > q.tail do q.cond:wait() end
    local x = q.items[q.head]; q.items[q.head] = nil; q.head = q.head + 1
    return x
  end
  local ping, pong = queue(), queue()
  cq:wrap(function() for _ = 1, R do put(pong, get(ping)) end end)
  cq:wrap(function() for i = 1, R do put(ping, i); get(pong) end end)
  assert(cq:loop())
end

for _, name in ipairs { "W1", "W2", "W3", "W4" } do
  if which == "all" or which == name then
    local t0 = cqueues.monotime()
    W[name]()
    print(name, string.format("%.3f", cqueues.monotime() - t0))
  end
end
