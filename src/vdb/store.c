/* store.c - records, the id map, distances and exact top-k search. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "store.h"

#define DELETED SIZE_MAX

/* ---- byte strings ------------------------------------------------------- */

char *bytes_new(const char *p, size_t n) {
  if (n > SIZE_MAX - sizeof n - 1) return NULL;
  char *m = malloc(sizeof n + n + 1);
  if (!m) return NULL;
  memcpy(m, &n, sizeof n);
  if (n) memcpy(m + sizeof n, p, n);
  m[sizeof n + n] = 0;
  return m + sizeof n;
}

char *bytes_dup(const char *b) { return b ? bytes_new(b, bytes_len(b)) : NULL; }

void bytes_free(char *b) { if (b) free(b - sizeof(size_t)); }

void bytes_list_free(char **list, int n) {
  if (!list) return;
  for (int i = 0; i < n; i++) bytes_free(list[i]);
  free(list);
}

static uint64_t hash_bytes(const char *s, size_t n) {        /* FNV-1a */
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
  return h;
}

Collection *store_new(const char *name, size_t namelen, int dim, int metric) {
  Collection *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  if (!(c->name = bytes_new(name, namelen))) { free(c); return NULL; }
  c->dim = dim;
  c->dim_settled = dim > 0;
  c->metric = metric;
  pthread_rwlock_init(&c->lock, NULL);
  return c;
}

void meta_free(Meta *m) {
  for (int i = 0; i < m->n; i++) { bytes_free(m->kv[i].key); bytes_free(m->kv[i].str); }
  free(m->kv);
  m->kv = NULL; m->n = 0;
}

int meta_copy(Meta *dst, const Meta *src) {
  dst->n = 0; dst->kv = NULL;
  if (src->n == 0) return 0;
  dst->kv = calloc((size_t)src->n, sizeof *dst->kv);
  if (!dst->kv) return -1;
  for (int i = 0; i < src->n; i++) {
    dst->kv[i] = src->kv[i];
    dst->kv[i].key = bytes_dup(src->kv[i].key);
    dst->kv[i].str = bytes_dup(src->kv[i].str);
    dst->n = i + 1;
  }
  return 0;
}

/* the bytes a record takes in a snapshot (replay.h's PUT_COLUMNS layout) */
static size_t record_bytes(const Collection *c, const Record *r) {
  size_t n = 4 + bytes_len(r->id) + 4 + 1 + (r->doc ? 4 + bytes_len(r->doc) : 0) + (size_t)c->dim * 4;
  for (int i = 0; i < r->meta.n; i++)
    n += 4 + bytes_len(r->meta.kv[i].key) + 1 + (r->meta.kv[i].type == MV_STR ? 4 + bytes_len(r->meta.kv[i].str) : 8);
  return n;
}

static void record_free(Record *r) {
  bytes_free(r->id); bytes_free(r->doc); meta_free(&r->meta);
}

void store_free(Collection *c) {
  if (!c) return;
  for (size_t i = 0; i < c->rows; i++) record_free(&c->recs[i]);
  free(c->recs); free(c->vecs); free(c->sqnorms); free(c->buckets); bytes_free(c->name);
  pthread_rwlock_destroy(&c->lock);
  free(c);
}

void batch_free(Batch *b) {
  if (!b) return;
  for (int i = 0; i < b->n; i++) {
    if (b->ids) bytes_free(b->ids[i]);
    if (b->docs) bytes_free(b->docs[i]);
    if (b->metas) meta_free(&b->metas[i]);
  }
  free(b->ids); free(b->docs); free(b->metas); free(b->src);
  if (!b->adopted) free(b->vecs);
  free(b);
}

/* ---- the id map --------------------------------------------------------- */

static size_t *bucket_for(const Collection *c, const char *id, size_t len, int for_insert) {
  if (c->nbuckets == 0) return NULL;
  size_t mask = c->nbuckets - 1, i = hash_bytes(id, len) & mask, *tomb = NULL;
  for (;;) {
    size_t *s = &c->buckets[i];
    if (*s == 0) return for_insert && tomb ? tomb : (for_insert ? s : NULL);
    if (*s == DELETED) { if (!tomb) tomb = s; }
    else if (bytes_is(c->recs[*s - 1].id, id, len)) return s;
    i = (i + 1) & mask;
  }
}

/* a record's own id */
static size_t *bucket_of(const Collection *c, const char *id, int for_insert) {
  return bucket_for(c, id, bytes_len(id), for_insert);
}

long store_find(const Collection *c, const char *id, size_t len) {
  size_t *s = bucket_for(c, id, len, 0);
  return s ? (long)(*s - 1) : -1;
}

static int map_rebuild(Collection *c, size_t want) {
  size_t n = 16;
  while (n < want * 2) n *= 2;
  size_t *buckets = calloc(n, sizeof *buckets);
  if (!buckets) return -1;
  free(c->buckets);
  c->buckets = buckets; c->nbuckets = n; c->used = 0;
  for (size_t i = 0; i < c->rows; i++) {
    if (!store_row_live(c, i)) continue;
    size_t *s = bucket_of(c, c->recs[i].id, 1);
    *s = i + 1;
    c->used++;
  }
  return 0;
}

static int reserve(Collection *c, size_t more) {
  size_t need = c->rows + more;
  if (need > c->cap) {
    size_t cap = c->cap ? c->cap : 64;
    while (cap < need) cap *= 2;
    float *v = realloc(c->vecs, cap * (size_t)c->dim * sizeof *v);
    if (!v) return -1;
    c->vecs = v;
    Record *r = realloc(c->recs, cap * sizeof *r);
    if (!r) return -1;
    c->recs = r;
    float *q = realloc(c->sqnorms, cap * sizeof *q);
    if (!q) return -1;
    c->sqnorms = q;
    c->cap = cap;
  }
  if ((c->used + more) * 2 > c->nbuckets) return map_rebuild(c, c->count + more);
  return 0;
}

void store_normalize(float *v, int dim) {
  double s = 0;
  for (int j = 0; j < dim; j++) s += (double)v[j] * v[j];
  if (s > 0) {
    float inv = (float)(1.0 / sqrt(s));
    for (int j = 0; j < dim; j++) v[j] *= inv;
  }
}

static float sqnorm(const float *v, int d);   /* vectorised, below */

/* an id given twice in the batch: the index of its second use, or -1 */
static int batch_twice(const Batch *b) {
  size_t n = 16;
  while (n < (size_t)b->n * 2) n *= 2;
  int *set = malloc(n * sizeof *set);
  if (!set) return -2;
  for (size_t i = 0; i < n; i++) set[i] = -1;
  int found = -1;
  for (int i = 0; i < b->n && found < 0; i++) {
    size_t h = hash_bytes(b->ids[i], bytes_len(b->ids[i])) & (n - 1);
    while (set[h] >= 0 && !bytes_eq(b->ids[set[h]], b->ids[i])) h = (h + 1) & (n - 1);
    if (set[h] >= 0) found = i; else set[h] = i;
  }
  free(set);
  return found;
}

/* The checks of store_put, and room for the batch: 0, or -1 with *err and
 * the record's index in *at_out; nothing has changed then.  After 0,
 * store_apply cannot fail. */
int store_check(Collection *c, Batch *b, int upsert, int *err, int *at_out) {
  int twice = batch_twice(b);
  if (twice != -1) { *err = twice == -2 ? PUT_NOMEM : PUT_TWICE; *at_out = twice; return -1; }
  if (!upsert)
    for (int i = 0; i < b->n; i++)
      if (store_find(c, b->ids[i], bytes_len(b->ids[i])) >= 0) { *err = PUT_EXISTS; *at_out = i; return -1; }
  *at_out = 0;
  *err = PUT_NOMEM;
  /* a first insert into an empty collection adopts the batch's own vector buffer */
  int adopt = c->rows == 0 && b->n > 0 && !b->src && c->cap < (size_t)b->n && b->dim == c->dim;
  if (adopt) {
    Record *r = realloc(c->recs, (size_t)b->n * sizeof *r);
    if (!r) return -1;
    c->recs = r;
    float *q = realloc(c->sqnorms, (size_t)b->n * sizeof *q);
    if (!q) return -1;
    c->sqnorms = q;
    free(c->vecs);
    c->vecs = b->vecs;                          /* record i lands at index i, in place */
    b->adopted = 1;
    c->cap = (size_t)b->n;
    return map_rebuild(c, (size_t)b->n);
  }
  return reserve(c, (size_t)b->n);
}

/* The batch's records into the collection; their strings and metadata now
 * belong to it (batch_disown the batch after).  landed: n indices, or NULL. */
void store_apply(Collection *c, const Batch *b, size_t *landed) {
  size_t row = (size_t)c->dim * sizeof(float);
  for (int i = 0; i < b->n; i++) {
    size_t *s = bucket_of(c, b->ids[i], 1);
    size_t at;
    if (*s != 0 && *s != DELETED) {             /* upsert of an existing id */
      at = *s - 1;
      c->live_bytes -= record_bytes(c, &c->recs[at]);
      record_free(&c->recs[at]);
    } else {
      at = c->rows++;
      c->count++;
      if (*s == 0) c->used++;
      *s = at + 1;
    }
    if (landed) landed[i] = at;
    float *dst = c->vecs + at * (size_t)c->dim;
    const void *src = batch_row(b, i);
    if (src != dst) memcpy(dst, src, row);
    if (c->metric == METRIC_COSINE) store_normalize(dst, c->dim);
    c->sqnorms[at] = sqnorm(dst, c->dim);
    c->recs[at].id = b->ids[i];
    c->recs[at].doc = b->docs[i];
    c->recs[at].meta = b->metas[i];
    c->live_bytes += record_bytes(c, &c->recs[at]);
  }
}

void batch_disown(Batch *b) {
  for (int i = 0; i < b->n; i++) { b->ids[i] = NULL; b->docs[i] = NULL; b->metas[i].n = 0; b->metas[i].kv = NULL; }
}

long store_put(Collection *c, Batch *b, int upsert, size_t *landed, int *err, int *at_out) {
  if (store_check(c, b, upsert, err, at_out) != 0) return -1;
  store_apply(c, b, landed);
  batch_disown(b);
  return b->n;
}

/* drop the records from row `from` on (the newest: nothing moves) */
void store_truncate(Collection *c, size_t from) {
  while (c->rows > from) {
    if (store_row_live(c, c->rows - 1)) store_delete_index(c, c->rows - 1);
    else { c->rows--; c->dead--; }
  }
}

/* delete record i: its row becomes a tombstone; tombstones at the end are
 * given back */
int store_delete_index(Collection *c, size_t i) {
  size_t *s = bucket_of(c, c->recs[i].id, 0);
  if (s) *s = DELETED;
  c->live_bytes -= record_bytes(c, &c->recs[i]);
  record_free(&c->recs[i]);
  memset(&c->recs[i], 0, sizeof c->recs[i]);
  c->count--;
  c->dead++;
  while (c->rows > 0 && !store_row_live(c, c->rows - 1)) { c->rows--; c->dead--; }
  return 0;
}

/* worth moving the live rows down: more dead rows than live ones, and
 * enough of them to pay for a pass */
int store_compact_due(const Collection *c) { return c->dead >= 1024 && c->dead > c->count; }

/* the id map is rebuilt in place (same size: it held these ids already),
 * so this cannot fail once the rows have moved */
static void map_reindex(Collection *c) {
  memset(c->buckets, 0, c->nbuckets * sizeof *c->buckets);
  c->used = 0;
  for (size_t i = 0; i < c->rows; i++) {
    size_t *s = bucket_of(c, c->recs[i].id, 1);
    *s = i + 1;
    c->used++;
  }
}

void store_compact_rows(Collection *c, size_t *old_to_new) {
  size_t to = 0, d = (size_t)c->dim;
  for (size_t i = 0; i < c->rows; i++) {
    if (!store_row_live(c, i)) { if (old_to_new) old_to_new[i] = SIZE_MAX; continue; }
    if (old_to_new) old_to_new[i] = to;
    if (i != to) {
      c->recs[to] = c->recs[i];
      memcpy(c->vecs + to * d, c->vecs + i * d, d * sizeof(float));
      c->sqnorms[to] = c->sqnorms[i];
    }
    to++;
  }
  c->rows = to;
  c->dead = 0;
  if (c->nbuckets) map_reindex(c);
}

/* ---- distances and top-k ------------------------------------------------ */

/* Chroma's definitions: l2 = squared Euclidean, ip = 1 - q.x, cosine =
 * 1 - q.x on normalised data.  The loops are vectorised (the simd pragma
 * allows reordering the sum); on x86-64 one clone per instruction set is
 * built and the loader picks the best the CPU has (AVX-512, AVX2, SSE2). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DISPATCH __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DISPATCH
#endif

/* no NaN or infinity (all exponent bits set) among d floats at v, which
 * may be unaligned (a Lua string): input checks, a pass over every vector */
DISPATCH int store_finite(const void *v, int d) {
  uint32_t bad = 0;
  for (int j = 0; j < d; j++) {
    uint32_t u;
    memcpy(&u, (const char *)v + 4 * (size_t)j, 4);
    bad |= (u & 0x7f800000u) == 0x7f800000u;
  }
  return !bad;
}

DISPATCH static float dot(const float *restrict a, const float *restrict b, int d) {
  float s = 0;
#pragma omp simd reduction(+:s)
  for (int j = 0; j < d; j++) s += a[j] * b[j];
  return s;
}

DISPATCH static float sqnorm(const float *v, int d) {
  float s = 0;
#pragma omp simd reduction(+:s)
  for (int j = 0; j < d; j++) s += v[j] * v[j];
  return s;
}

/* Dot products of record x with a block of queries stored transposed (qt:
 * d rows of STORE_QBLOCK floats, query q in lane q): each dimension is one
 * broadcast and one fused multiply-add over the whole block, with no
 * horizontal sums.  l2 comes out as |x|^2 + |q|^2 - 2 x.q, as BLAS-based
 * searches compute it (faiss): one operation per dimension instead of two. */
#define RBLOCK 4                 /* records at once: independent FMA chains hide latency */

DISPATCH static void block_dots(const float *restrict x, size_t stride, const float *restrict qt, int d,
                                float acc[RBLOCK][STORE_QBLOCK]) {
  float a0[STORE_QBLOCK] = {0}, a1[STORE_QBLOCK] = {0}, a2[STORE_QBLOCK] = {0}, a3[STORE_QBLOCK] = {0};
  const float *restrict x0 = x, *restrict x1 = x + stride, *restrict x2 = x + 2 * stride, *restrict x3 = x + 3 * stride;
  for (int j = 0; j < d; j++) {
    const float *restrict row = qt + (size_t)j * STORE_QBLOCK;
    const float v0 = x0[j], v1 = x1[j], v2 = x2[j], v3 = x3[j];
#pragma omp simd
    for (int q = 0; q < STORE_QBLOCK; q++) {
      a0[q] += row[q] * v0; a1[q] += row[q] * v1; a2[q] += row[q] * v2; a3[q] += row[q] * v3;
    }
  }
  for (int q = 0; q < STORE_QBLOCK; q++) { acc[0][q] = a0[q]; acc[1][q] = a1[q]; acc[2][q] = a2[q]; acc[3][q] = a3[q]; }
}


/* a max-heap of the k best so far: the worst on top */
static void heap_down(Hit *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < n && h[l].distance > h[m].distance) m = l;
    if (l + 1 < n && h[l + 1].distance > h[m].distance) m = l + 1;
    if (m == i) return;
    Hit t = h[i]; h[i] = h[m]; h[m] = t;
    i = m;
  }
}

static void heap_up(Hit *h, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h[p].distance >= h[i].distance) return;
    Hit t = h[i]; h[i] = h[p]; h[p] = t;
    i = p;
  }
}

static int hit_cmp(const void *a, const void *b) {
  const Hit *x = a, *y = b;
  if (x->distance < y->distance) return -1;
  if (x->distance > y->distance) return 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

static void heap_offer(Hit *h, size_t *n, size_t k, size_t i, float d) {
  if (*n < k) { h[*n].index = i; h[*n].distance = d; heap_up(h, (*n)++); }
  else if (d < h[0].distance) { h[0].index = i; h[0].distance = d; heap_down(h, *n, 0); }
}

/* top-k for nq queries at once (rows of qs); hits: nq blocks of k, counts in nh */
void store_search_block(const Collection *c, const float *qs, int nq, size_t k, const Filter *f,
                        Hit *hits, size_t *nh) {
  float dist[STORE_QBLOCK];
  int d = c->dim;
  for (int q = 0; q < nq; q++) nh[q] = 0;
  if (k == 0) return;
  float *qt = calloc((size_t)d * STORE_QBLOCK, sizeof *qt);     /* the block, transposed */
  float *gather = malloc((size_t)RBLOCK * d * sizeof *gather);
  float qn[STORE_QBLOCK] = {0};
  int l2 = c->metric == METRIC_L2;
  if (!qt || !gather) { free(qt); free(gather); return; }
  for (int q = 0; q < nq; q++) {
    qn[q] = sqnorm(qs + (size_t)q * d, d);
    for (int j = 0; j < d; j++) qt[(size_t)j * STORE_QBLOCK + q] = qs[(size_t)q * d + j];
  }
  /* each query's admission threshold: its worst kept hit once it has k */
  float thr[STORE_QBLOCK];
  for (int q = 0; q < STORE_QBLOCK; q++) thr[q] = q < nq ? INFINITY : -INFINITY;
  float acc[RBLOCK][STORE_QBLOCK];
  size_t rows[RBLOCK];
  int nr = 0;
  for (size_t i = 0; i <= c->rows; i++) {
    /* gather RBLOCK live records (passing the filter), then score them together */
    if (i < c->rows) {
      if (!store_row_live(c, i) || (f && !filter_match(f, &c->recs[i].meta))) continue;
      rows[nr++] = i;
      if (nr < RBLOCK) continue;
    }
    if (nr == 0) break;
    if (nr == RBLOCK && rows[RBLOCK - 1] == rows[0] + RBLOCK - 1) {
      block_dots(c->vecs + rows[0] * (size_t)d, (size_t)d, qt, d, acc);
    } else {                      /* filtered (scattered) rows or a short tail: copy them together */
      for (int r = 0; r < RBLOCK; r++)
        memcpy(gather + (size_t)r * d, c->vecs + rows[r < nr ? r : nr - 1] * (size_t)d, (size_t)d * sizeof *gather);
      block_dots(gather, (size_t)d, qt, d, acc);
    }
    for (int r = 0; r < nr; r++) {
      size_t ri = rows[r];
      float xn = l2 ? c->sqnorms[ri] : 0;
      int any = 0;
      for (int q = 0; q < STORE_QBLOCK; q++) {  /* branch-free: most records enter no heap */
        dist[q] = l2 ? xn + qn[q] - 2.0f * acc[r][q] : 1.0f - acc[r][q];
        any |= dist[q] < thr[q];
      }
      if (!any) continue;
      for (int q = 0; q < nq; q++) {
        if (!(dist[q] < thr[q])) continue;
        float dq = l2 && dist[q] < 0 ? 0 : dist[q];   /* rounding, for identical vectors */
        Hit *h = hits + (size_t)q * k;
        heap_offer(h, &nh[q], k, ri, dq);
        if (nh[q] == k) thr[q] = h[0].distance;
      }
    }
    nr = 0;
  }
  free(qt);
  free(gather);
  for (int q = 0; q < nq; q++) qsort(hits + (size_t)q * k, nh[q], sizeof *hits, hit_cmp);
}

size_t store_search(const Collection *c, const float *q, size_t k, const Filter *f, Hit *hits) {
  size_t n = 0;
  int l2 = c->metric == METRIC_L2;
  float qn = l2 ? sqnorm(q, c->dim) : 0;
  if (k == 0) return 0;
  for (size_t i = 0; i < c->rows; i++) {
    if (!store_row_live(c, i) || (f && !filter_match(f, &c->recs[i].meta))) continue;
    /* l2 as |x|^2 + |q|^2 - 2 x.q: one operation per dimension */
    float dp = dot(q, c->vecs + i * (size_t)c->dim, c->dim);
    float d = l2 ? c->sqnorms[i] + qn - 2.0f * dp : 1.0f - dp;
    if (d < 0 && l2) d = 0;                   /* rounding, for identical vectors */
    if (n < k) { hits[n].index = i; hits[n].distance = d; heap_up(hits, n++); }
    else if (d < hits[0].distance) { hits[0].index = i; hits[0].distance = d; heap_down(hits, n, 0); }
  }
  qsort(hits, n, sizeof *hits, hit_cmp);
  return n;
}
