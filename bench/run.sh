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

# Issue 15's rows: W5 (TCP echo) beside every anchor and a C libuv floor;
# one connection's throughput at three message sizes; 1,000 processes; a
# 256 MiB read_file; the memory of idle streams.  Medians of RUNS, sides
# interleaved; ratio = theirs / ours (> 1: lua-async faster).
mkdir -p build
cc -O2 -o build/w5_floor bench/anchors/w5_floor.c -luv || exit 1
cc -O2 -o build/read_floor bench/anchors/read_floor.c || exit 1
w5cmd() {
  case $1 in
    lua-async) echo "lua5.4 bench/w5_lua_async.lua" ;;
    floor)     echo "build/w5_floor" ;;
    node)      echo "node bench/anchors/w5_node.mjs" ;;
    asyncio)   echo "/usr/bin/python3 bench/anchors/w5_asyncio.py" ;;
    cqueues)   echo "lua5.4 bench/anchors/w5_cqueues.lua" ;;
    luv)       echo "lua5.4 bench/anchors/w5_luv.lua" ;;
    copas)     echo "timeout 120 lua5.4 bench/anchors/w5_copas.lua" ;;
  esac
}
io_results=$(mktemp)
trap 'rm -f "$results" "$io_results"' EXIT
for r in $(seq "$RUNS"); do
  for side in lua-async floor node asyncio cqueues luv copas; do
    t=$($(w5cmd $side) 100 1000 64 | awk '$1 == "W5" { print $2 }')
    echo "W5 $side $t" >> "$io_results"
  done
  # throughput: one connection, a fixed byte count per size
  for size in 1024:65536 65536:4096 1048576:256; do
    bytes=${size%%:*}; trips=${size##*:}
    for side in lua-async floor node; do
      t=$($(w5cmd $side) 1 "$trips" "$bytes" | awk '$1 == "W5" { print $2 }')
      echo "T$bytes $side $t" >> "$io_results"
    done
  done
  echo "exec lua-async $(lua5.4 bench/io_lua_async.lua exec 1000 | awk '{ print $2 }')" >> "$io_results"
  echo "exec node $(node bench/anchors/io_node.mjs exec 1000 | awk '{ print $2 }')" >> "$io_results"
done
big=$(mktemp)
head -c $((256 << 20)) /dev/urandom > "$big"
cat "$big" > /dev/null                          # (in the page cache for every side)
for r in $(seq "$RUNS"); do
  echo "read_file lua-async $(lua5.4 bench/io_lua_async.lua read_file "$big" | awk '{ print $2 }')" >> "$io_results"
  echo "read_file floor $(build/read_floor "$big" | awk '{ print $2 }')" >> "$io_results"
  s0=$(date +%s.%N); cat "$big" > /dev/null; s1=$(date +%s.%N)
  echo "read_file cat $(echo "$s0 $s1" | awk '{ printf "%.3f", $2 - $1 }')" >> "$io_results"
done
rm -f "$big"
idle=$(lua5.4 bench/io_lua_async.lua idle 9000 | awk '{ print $2 }')   # (9,000: both ends in one process, under a 20,000-descriptor limit)

lua5.4 - "$io_results" "$idle" <<'LUA'
local rows = {}
for line in io.lines(arg[1]) do
  local row, side, t = line:match("^(%S+) (%S+) (%S+)")
  if t and tonumber(t) then
    rows[row] = rows[row] or {}
    rows[row][side] = rows[row][side] or {}
    table.insert(rows[row][side], tonumber(t))
  end
end
local function median(xs)
  if not xs or #xs == 0 then return nil end
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end
local function line(label, row, sides)
  local r = rows[row] or {}
  local ours = median(r["lua-async"])
  local cells = { ("%-44s %8s"):format(label, ours and ("%.3f"):format(ours) or "n/a") }
  for _, side in ipairs(sides) do
    local m = median(r[side])
    cells[#cells + 1] = ("%s %s"):format(side, m and ours and ("%.3f (%.2fx)"):format(m, m / ours) or "n/a")
  end
  print(table.concat(cells, "   "))
end
print("\nmedian seconds (ratio = theirs / ours; > 1: lua-async faster)")
line("W5 TCP echo, 100 clients x 1000 x 64 B", "W5", { "floor", "node", "asyncio", "cqueues", "luv", "copas" })
local mib = 1024 * 1024
for _, t in ipairs { { 1024, 65536 }, { 65536, 4096 }, { 1048576, 256 } } do
  local size, trips = t[1], t[2]
  local ours = median((rows["T" .. size] or {})["lua-async"])
  line(("throughput %d B messages, %d MiB%s"):format(size, size * trips // mib,
       ours and (" (%.0f MB/s)"):format(2 * size * trips / ours / 1e6) or ""), "T" .. size, { "floor", "node" })
end
line("1000 x exec{\"true\"} + wait", "exec", { "node" })
line("read_file 256 MiB (page cache)", "read_file", { "floor", "cat" })
print(("idle connected streams: %s bytes each (both ends of 9,000 connections; the handler's Task included)"):format(arg[2]))
print("floor: plain C on libuv with callbacks (bench/anchors/w5_floor.c); read_file floor: malloc + read(2)" ..
      " (bench/anchors/read_floor.c); cat: `cat > /dev/null`, which keeps no copy")
LUA
