#!/bin/sh
# make bench, part 3: vdb's Chroma backend beside Chroma's own JS client
# (chromadb@3.0.12), a bare keep-alive node:http client (both driven by
# ../shared/reference/bench/bench_chroma.mjs) and wrk, one after the other
# on one server, on the seeded clustered data: 100,000 x 128, 1,000 top-10
# queries at concurrency 1, 8 and 64.
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
EXTRA_DEPS="nodejs wrk" tools/deps.sh || exit 1
tools/chroma.sh install || exit 1
data=$root/.cache/vdb-data
ref=$root/../shared/reference/bench
[ -f $ref/bench_chroma.mjs ] || { echo "chroma bench: $ref/bench_chroma.mjs not found (shared/ beside the repo)"; exit 0; }
if [ ! -f $data/data_clustered_100k_128.f32 ]; then
  mkdir -p $data && node $ref/gen_data.mjs $data >/dev/null || exit 1
fi
[ -f $data/gt_clustered_1k_100.i32 ] || lua5.4 bench/gt.lua $data || exit 1

out=$(mktemp -d)
wrapper=
trap 'kill $wrapper 2>/dev/null; rm -rf "$out"' EXIT
start_server() {
  set -- $(spec/servers/chroma.sh) || exit 1
  port=$1 wrapper=$2
  spid=$(pgrep -f "chroma run .*--port $port" | head -1)
  url=http://127.0.0.1:$port
}
stop_server() { kill $wrapper; sleep 1; wrapper=; }
js() { (cd .cache/chroma && DIR=$data PORT=$port CHROMA_PID=$spid node $ref/bench_chroma.mjs "$@" clustered); }
rm -f $data/results.jsonl   # (bench_chroma.mjs appends there)
irounds=${INSERT_RUNS:-3} rounds=${RUNS:-3}
echo "chroma bench: $irounds insert rounds, $rounds query rounds; about 4 minutes"

# Inserts: each side into a fresh server of its own, every round.
for r in $(seq 1 $irounds); do
  start_server; CONC=1 NQ=1 INSERT=1 js client > $out/ins_client_$r.jsonl || exit 1; stop_server
  start_server; CONC=1 NQ=1 INSERT=1 ENC=base64 js http > $out/ins_http_$r.jsonl || exit 1; stop_server
  start_server; lua5.4 bench/vdb_chroma_lua.lua $url $data $spid none > $out/ins_ours_$r.txt || exit 1; stop_server
  echo "  insert round $r of $irounds done" >&2
done

# Queries: one server holding bare node:http's collection (which the JS
# client and wrk query too) and vdb's; rounds interleaved across sides.
start_server
CONC=1 NQ=1 INSERT=1 ENC=base64 js http > /dev/null || exit 1
KEEP=1 lua5.4 bench/vdb_chroma_lua.lua $url $data $spid none > /dev/null || exit 1
path=$(lua5.4 bench/wrk_bodies.lua $url $data bench_clustered $out/bodies.txt) || exit 1
for r in $(seq 1 $rounds); do
  INSERT=0 js client > $out/client_$r.jsonl || exit 1
  INSERT=0 js http > $out/http_$r.jsonl || exit 1
  for c in 1 8 64; do
    WRK_BODIES=$out/bodies.txt wrk -t1 -c$c -d3s -s bench/wrk_query.lua "$path" |
      awk -v c=$c '/Requests\/sec/ { print "wrk_c" c "_qps", $2 }' >> $out/wrk_$r.txt
  done
  KEEP=1 lua5.4 bench/vdb_chroma_lua.lua $url $data $spid > $out/ours_$r.txt || exit 1
  echo "  query round $r of $rounds done" >&2
done

lua5.4 - $out $rounds $irounds <<'LUA'
package.cpath = "./?.so;" .. package.cpath
local json = require("async").json
local dir, rounds, irounds = arg[1], tonumber(arg[2]), tonumber(arg[3])
local function kv(p) local t = {} for l in io.lines(p) do local k, v = l:match("^(%S+)%s+(%S+)") if k then t[k] = tonumber(v) end end return t end
local function jl(p)
  local t = {}
  for l in io.lines(p) do
    local r = json.decode(l)
    t[r.phase] = r
    if r.nq then for k, v in pairs(r) do t[r.phase .. "_" .. k] = v end end
    if r.phase == "insert" then for k, v in pairs(r) do t["insert_" .. k] = v end end
  end
  return t
end
-- each key's median over the rounds (inserts: round 1 only)
local function median_of(load, name, n)
  local all, out = {}, {}
  n = n or rounds
  for r = 1, n do all[r] = load(dir .. "/" .. name:format(r)) end
  for k, v in pairs(all[1]) do
    if type(v) == "number" then
      local xs = {}
      for r = 1, n do xs[#xs + 1] = all[r][k] end
      table.sort(xs)
      out[k] = xs[(#xs + 1) // 2]
    else out[k] = v end
  end
  return out
end
local o, w = median_of(kv, "ours_%d.txt"), median_of(kv, "wrk_%d.txt")
local cl, ht = median_of(jl, "client_%d.jsonl"), median_of(jl, "http_%d.jsonl")
local io_, icl, iht = median_of(kv, "ins_ours_%d.txt", irounds), median_of(jl, "ins_client_%d.jsonl", irounds),
                      median_of(jl, "ins_http_%d.jsonl", irounds)
o.insert_vps, o.insert_client_cpu_s = io_.insert_vps, io_.insert_client_cpu_s
cl.insert_vectors_per_s, cl.insert_client_cpu_s = icl.insert_vectors_per_s, icl.insert_client_cpu_s
ht.insert_vectors_per_s, ht.insert_client_cpu_s = iht.insert_vectors_per_s, iht.insert_client_cpu_s
for _, t in ipairs { cl, ht } do
  t.insert = { vectors_per_s = t.insert_vectors_per_s, client_cpu_s = t.insert_client_cpu_s }
  for _, c in ipairs { 1, 8, 64 } do
    local q = "query_c" .. c
    t[q] = { qps = t[q .. "_qps"], client_cpu_s = t[q .. "_client_cpu_s"], nq = t[q .. "_nq"] }
  end
end
print(("\nvdb on Chroma (chromadb 3.0.12 server), 100,000 x 128 clustered, top-10 L2; ratio = ours / theirs; medians of %d insert rounds (a fresh server each) and %d query rounds"):format(irounds, rounds))
print(("  inserts        vdb %6.0f vectors/s, client CPU %.2f s   |  JS client %6.0f (%.2fx, CPU %.2f s)   bare HTTP base64 %6.0f (%.2fx, CPU %.2f s)"):format(
  o.insert_vps, o.insert_client_cpu_s, cl.insert.vectors_per_s, o.insert_vps / cl.insert.vectors_per_s, cl.insert.client_cpu_s,
  ht.insert.vectors_per_s, o.insert_vps / ht.insert.vectors_per_s, ht.insert.client_cpu_s))
for _, c in ipairs { 1, 8, 64 } do
  local q = "query_c" .. c
  local ours, js, bare, wrk = o[q .. "_qps"], cl[q].qps, ht[q].qps, w["wrk_c" .. c .. "_qps"] or 0 / 0
  local cms = o[q .. "_client_ms"]
  print(("  queries c=%-3d  vdb %5.0f QPS, client %.3f ms/query (%2.0f%% of each query's time)   |  JS client %4.0f (%.2fx, %.2f ms)   node:http %4.0f (%.2fx, %.2f ms)   wrk %4.0f (%.2fx)   recall@10 %.3f"):format(
    c, ours, cms, 100 * cms / (1000 / ours) / math.min(c, 1), js, ours / js, 1000 * cl[q].client_cpu_s / cl[q].nq, bare, ours / bare,
    1000 * ht[q].client_cpu_s / ht[q].nq, wrk, ours / wrk, o[q .. "_recall"]))
end
LUA
