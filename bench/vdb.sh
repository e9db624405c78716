#!/bin/sh
# make bench, part 2: vdb's embedded store beside numpy and faiss, on the
# seeded clustered data of ../shared/reference/bench/gen_data.mjs.
cd "$(dirname "$0")/.." || exit 2
EXTRA_DEPS="python3-numpy python3-faiss libopenblas0-pthread nodejs" tools/deps.sh || exit 1
data=.cache/vdb-data
gen=../shared/reference/bench/gen_data.mjs
if [ ! -f $data/data_clustered_100k_128.f32 ]; then
  [ -f $gen ] || { echo "vdb bench: $gen not found (shared/ beside the repo)"; exit 0; }
  mkdir -p $data && node $gen $data >/dev/null || exit 1
fi
ours=$(mktemp); theirs=$(mktemp)
trap 'rm -f "$ours" "$theirs"' EXIT
lua5.4 bench/vdb_lua.lua $data > "$ours" || exit 1
# (OpenBLAS's core-type override slows a current numpy: unset for this command only)
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/anchors/vdb_numpy_faiss.py $data > "$theirs" || exit 1
lua5.4 - "$ours" "$theirs" <<'LUA'
local function load(p) local t = {} for l in io.lines(p) do local k, v = l:match("^(%S+)%s+(%S+)") if k then t[k] = tonumber(v) end end return t end
local o, t = load(arg[1]), load(arg[2])
local bound = 1000 / t.read_once_ms
print("\nvdb embedded, 100,000 x 128 clustered, top-10 L2 (ratio = ours / theirs; > 1: vdb faster)")
print(("  one query at a time   %8.1f QPS   numpy %7.1f (%4.2fx)   faiss 1 thread %7.1f (%4.2fx)   memory bound %7.1f QPS (we reach %3.0f%%)"):format(
  o.single_qps, t.numpy_single_qps, o.single_qps / t.numpy_single_qps, t.faiss_single_qps_t1,
  o.single_qps / t.faiss_single_qps_t1, bound, 100 * o.single_qps / bound))
print(("  batch of 1,000        %8.1f QPS   numpy %7.1f (%4.2fx)   faiss 1 thread %7.1f (%4.2fx)   faiss 2 threads %7.1f (%4.2fx)"):format(
  o.batch_qps, t.numpy_batch_qps, o.batch_qps / t.numpy_batch_qps, t.faiss_batch_qps_t1,
  o.batch_qps / t.faiss_batch_qps_t1, t.faiss_batch_qps_t2, o.batch_qps / t.faiss_batch_qps_t2))
print(("  bulk insert (packed)  memory: %.0f vectors/s   file: %.0f vectors/s (%.0f MB/s of vectors)"):format(
  o.insert_memory_vps, o.insert_file_vps, o.insert_file_mbps))
print(("                        disk, dd with fdatasync: %.0f MB/s   file: insert is %.2fx slower than the disk"):format(
  o.disk_write_mbps, o.disk_write_mbps / o.insert_file_mbps))
print(("  1,000 concurrent single inserts into file:   %d fsyncs, %.3f s"):format(
  o.concurrent_insert_fsyncs, o.concurrent_insert_seconds))
LUA
