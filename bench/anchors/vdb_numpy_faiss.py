# numpy and faiss (IndexFlatL2, OpenBLAS) on the same data and queries as
# bench/vdb_lua.lua; also the time to read the data once (the bandwidth
# bound).  Prints "name value" lines.  Run with /usr/bin/python3.
import sys, time
import numpy as np
import faiss

d = sys.argv[1] if len(sys.argv) > 1 else ".cache/vdb-data"
X = np.fromfile(d + "/data_clustered_100k_128.f32", dtype="<f4").reshape(-1, 128)
Q = np.fromfile(d + "/queries_clustered_1k_128.f32", dtype="<f4").reshape(-1, 128)
k = 10

def best(f, reps=5):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return min(ts)

# one pass over the bytes: the memory-bandwidth bound of a single query
flat = X.ravel()
print("read_once_ms", "%.3f" % (1000 * best(lambda: flat @ flat)))

xx = (X * X).sum(axis=1)
def np_single(q):
    dist = xx - 2 * (X @ q) + q @ q
    idx = np.argpartition(dist, k)[:k]
    return idx[np.argsort(dist[idx])]

nq1 = 300
t0 = time.perf_counter()
for i in range(nq1): np_single(Q[i])
print("numpy_single_qps", "%.1f" % (nq1 / (time.perf_counter() - t0)))

def np_batch():
    dist = xx[None, :] - 2 * (Q @ X.T) + (Q * Q).sum(axis=1)[:, None]
    idx = np.argpartition(dist, k, axis=1)[:, :k]
    return idx
print("numpy_batch_qps", "%.1f" % (len(Q) / best(np_batch, 3)))

index = faiss.IndexFlatL2(128)
index.add(X)
for threads in (1, 2):
    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    for i in range(nq1): index.search(Q[i:i + 1], k)
    print("faiss_single_qps_t%d" % threads, "%.1f" % (nq1 / (time.perf_counter() - t0)))
    print("faiss_batch_qps_t%d" % threads, "%.1f" % (len(Q) / best(lambda: index.search(Q, k), 3)))
