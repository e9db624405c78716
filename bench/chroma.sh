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

set -- $(spec/servers/chroma.sh) || exit 1
port=$1 wrapper=$2
out=$(mktemp -d)
trap 'kill $wrapper 2>/dev/null; rm -rf "$out"' EXIT
spid=$(pgrep -f "chroma run .*--port $port" | head -1)
url=http://127.0.0.1:$port
echo "chroma bench: server on $url (pid $spid); about 2 minutes"

# their side: the official client, then bare node:http with base64 inserts
(cd .cache/chroma && DIR=$data PORT=$port CHROMA_PID=$spid node $ref/bench_chroma.mjs client clustered) > $out/client.jsonl || exit 1
(cd .cache/chroma && DIR=$data PORT=$port CHROMA_PID=$spid ENC=base64 node $ref/bench_chroma.mjs http clustered) > $out/http.jsonl || exit 1
# wrk on the collection the bare client made
path=$(lua5.4 bench/wrk_bodies.lua $url $data bench_clustered $out/bodies.txt) || exit 1
for c in 1 8 64; do
  WRK_BODIES=$out/bodies.txt wrk -t1 -c$c -d5s -s bench/wrk_query.lua "$path" |
    awk -v c=$c '/Requests\/sec/ { print "wrk_c" c "_qps", $2 }' >> $out/wrk.txt
done
# ours
lua5.4 bench/vdb_chroma_lua.lua $url $data $spid > $out/ours.txt || exit 1

lua5.4 - $out <<'LUA'
package.cpath = "./?.so;" .. package.cpath
local json = require("async").json
local dir = arg[1]
local function kv(p) local t = {} for l in io.lines(p) do local k, v = l:match("^(%S+)%s+(%S+)") if k then t[k] = tonumber(v) end end return t end
local function jl(p) local t = {} for l in io.lines(p) do local r = json.decode(l) t[r.phase] = r end return t end
local o, w, cl, ht = kv(dir .. "/ours.txt"), kv(dir .. "/wrk.txt"), jl(dir .. "/client.jsonl"), jl(dir .. "/http.jsonl")
print("\nvdb on Chroma (chromadb 3.0.12 server), 100,000 x 128 clustered, top-10 L2; ratio = ours / theirs")
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
