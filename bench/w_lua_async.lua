-- The four runtime workloads on lua-async.  Prints "W<n> <seconds> <peakKiB>".
package.cpath = "./?.so;" .. package.cpath
local async = require "async"
local await = async.await
local which = arg[1] or "all"
local N = tonumber(arg[2]) or 100000

local function W1()
  local trivial = async(function(i) return i end)
  return async.run(function()
    local cs = {}
    for i = 1, N do cs[i] = trivial(i) end
    local r = await(async.gather(cs))
    assert(r[N] == N)
  end)
end

local function W2()
  local sleeper = async(function() await(async.sleep(0.01)) end)
  async.run(function()
    local cs = {}
    for i = 1, N do cs[i] = sleeper() end
    await(async.gather(cs))
  end)
end

local function W3()
  local sem = async.Semaphore(100)
  local worker = async(function()
    local g <close> = await(sem:acquire())
    await(async.sleep(0))
  end)
  async.run(function()
    local cs = {}
    for i = 1, N do cs[i] = worker() end
    await(async.gather(cs))
  end)
end

local function W4()
  local R = 2 * N
  async.run(function()
    local ping, pong = async.Queue(), async.Queue()
    local t = async.spawn(function()
      for _ = 1, R do pong:put_nowait(await(ping:get())) end
    end)
    for i = 1, R do ping:put_nowait(i); await(pong:get()) end
    await(t)
  end)
end

local ws = { W1 = W1, W2 = W2, W3 = W3, W4 = W4 }
for _, name in ipairs { "W1", "W2", "W3", "W4" } do
  if which == "all" or which == name then
    collectgarbage(); collectgarbage()
    local t0 = async.time()
    ws[name]()
    print(name, string.format("%.3f", async.time() - t0))
  end
end
