#!/bin/sh
# make bench: the runtime workloads W1-W4 on lua-async and on what users
# would pick instead, side by side in one run.  Each side runs each workload
# RUNS times in a fresh process; medians are printed with ratios
# (theirs / ours: above 1 means lua-async is faster).
cd "$(dirname "$0")/.." || exit 2
RUNS=${RUNS:-5}   # this 2-core VM is noisy (runs of one side differ by up to 60%): medians of 5
N=${N:-100000}
EXTRA_DEPS="lua-cqueues lua-luv lua-copas lua-socket python3 nodejs time" tools/deps.sh || exit 1

sides="lua-async asyncio node cqueues luv copas bare"
cmd() {
  case $1 in
    lua-async) echo "lua5.4 bench/w_lua_async.lua" ;;
    asyncio)   echo "/usr/bin/python3 bench/anchors/w_asyncio.py" ;;
    node)      echo "node bench/anchors/w_node.mjs" ;;
    cqueues)   echo "lua5.4 bench/anchors/w_cqueues.lua" ;;
    luv)       echo "lua5.4 bench/anchors/w_luv.lua" ;;
    copas)     echo "timeout 60 lua5.4 bench/anchors/w_copas.lua" ;;
    bare)      echo "lua5.4 bench/anchors/w_bare.lua" ;;
  esac
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for w in W1 W2 W3 W4; do
  for r in $(seq "$RUNS"); do
    for side in $sides; do
      [ "$side" = copas ] && [ "$w" != W1 ] && continue     # copas: W1 only, as in the issue
      [ "$side" = bare ] && [ "$w" = W4 ] && continue       # the floor: W1-W3
      # interleave sides so that machine noise hits all of them alike
      out=$(/usr/bin/time -f "rss %M" $(cmd "$side") "$w" "$N" 2>&1) || { echo "$side $w failed: $out"; continue; }
      t=$(echo "$out" | awk -v w="$w" '$1 == w { print $2 }')
      rss=$(echo "$out" | awk '$1 == "rss" { print $2 }')
      echo "$w $side $t $rss" >> "$results"
    done
  done
done

lua5.4 - "$results" "$N" <<'LUA'
local rows, N = {}, tonumber(arg[2])
for line in io.lines(arg[1]) do
  local w, side, t, rss = line:match("^(%S+) (%S+) (%S+) (%S+)")
  if w then
    rows[w] = rows[w] or {}
    rows[w][side] = rows[w][side] or { t = {}, rss = {} }
    table.insert(rows[w][side].t, tonumber(t))
    table.insert(rows[w][side].rss, tonumber(rss))
  end
end
local function median(xs)
  table.sort(xs)
  local n = #xs
  if n == 0 then return nil end
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end
local names = {
  W1 = "gather " .. N .. " trivial coroutines",
  W2 = N .. " concurrent sleep(0.01)",
  W3 = "Semaphore(100), " .. N .. " acquire/sleep(0)/release",
  W4 = "queue ping-pong, " .. 2 * N .. " round trips",
}
local sides = { "asyncio", "node", "cqueues", "luv", "copas", "bare" }
print(("\nmedian seconds of %d runs (ratio = theirs / ours; > 1: lua-async faster)"):format(#(rows.W1 and rows.W1["lua-async"].t or {})))
print(("%-48s %9s %16s %16s %16s %16s %16s %16s"):format("workload", "lua-async", "asyncio", "node", "cqueues", "luv", "copas", "bare (floor)"))
for _, w in ipairs { "W1", "W2", "W3", "W4" } do
  local r = rows[w] or {}
  local ours = r["lua-async"] and median(r["lua-async"].t)
  local cells = {}
  for i, side in ipairs(sides) do
    local m = r[side] and median(r[side].t)
    cells[i] = m and ours and ("%7.3f (%5.1fx)"):format(m, m / ours) or "     n/a"
  end
  print(("%-48s %9s %16s %16s %16s %16s %16s %16s"):format(w .. " " .. names[w], ours and ("%.3f"):format(ours) or "n/a",
        table.unpack(cells)))
end
print("bare (floor): plain coroutines, a pcall each, a FIFO scheduler, no loop and no waiting" ..
      " (bench/anchors/w_bare.lua): what a thread per task costs in Lua 5.4 before any runtime work")
print("lua-async's own spread (min-max over the runs):")
for _, w in ipairs { "W1", "W2", "W3", "W4" } do
  local t = rows[w] and rows[w]["lua-async"] and rows[w]["lua-async"].t
  if t and #t > 0 then table.sort(t); print(("  %s %.3f-%.3f s"):format(w, t[1], t[#t])) end
end
local r = rows.W2 or {}
print("\nW2 peak RSS per sleeping task (whole process / " .. N .. "):")
for _, side in ipairs { "lua-async", "asyncio", "node", "cqueues", "luv", "bare" } do
  local m = r[side] and median(r[side].rss)
  if m then print(("  %-10s %7.0f MB  %5.2f KiB/task"):format(side, m / 1024, m / N)) end
end
LUA

# W5, TCP echo (issue 15): lua-async beside Node, medians of RUNS; the other
# anchors and the C floor are still to come
w5() { for r in $(seq "$RUNS"); do $1 | awk '$1 == "W5" { print $2 }'; done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ours=$(w5 "lua5.4 bench/w5_lua_async.lua")
node=$(w5 "node bench/anchors/w5_node.mjs")
echo
echo "W5 TCP echo, 100 clients x 1000 round trips x 64 B (median of $RUNS): lua-async $ours s, node $node s ($(echo "$node $ours" | awk '{ printf "%.2fx", $1 / $2 }'))"
