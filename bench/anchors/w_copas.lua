-- W1 on copas (Debian's lua-copas, loaded from its Lua 5.2 directory, runs on
-- 5.4): 100,000 trivial coroutines added and run to completion, results kept.
package.path = package.path .. ";/usr/share/lua/5.2/?.lua"
local copas = require "copas"
local socket = require "socket"
local which = arg[1] or "W1"
local N = tonumber(arg[2]) or 100000
if which ~= "W1" and which ~= "all" then return end
local results, left = {}, N
local t0 = socket.gettime()
for i = 1, N do
  copas.addthread(function() results[i] = i; left = left - 1 end)
end
while left > 0 do copas.step(0) end   -- copas 1.x: loop() never returns
assert(left == 0 and results[N] == N)
print("W1", string.format("%.3f", socket.gettime() - t0))
