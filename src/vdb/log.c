/* log.c - the file: backend's log: append, group commit, replay, compact. */
#define _GNU_SOURCE              /* sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>     /* struct iovec: a piece of a record */
#include <unistd.h>
#include <zlib.h>
#include "log.h"

/* ---- encoding ----------------------------------------------------------- */

typedef struct Buf { char *p; size_t len, cap; int oom; } Buf;

static void put_bytes(Buf *b, const void *src, size_t n) {
  if (b->oom) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return; }
    b->p = p; b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void put_u8(Buf *b, unsigned v) { unsigned char c = (unsigned char)v; put_bytes(b, &c, 1); }
static void put_u32(Buf *b, uint32_t v) {
  unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
  put_bytes(b, c, 4);
}
static void put_f32(Buf *b, float f) { uint32_t u; memcpy(&u, &f, 4); put_u32(b, u); }
static void put_f64(Buf *b, double d) { uint64_t u; memcpy(&u, &d, 8); put_u32(b, (uint32_t)u); put_u32(b, (uint32_t)(u >> 32)); }

static void put_str(Buf *b, const char *s) { size_t n = strlen(s); put_u32(b, (uint32_t)n); put_bytes(b, s, n); }

/* start a record: its length and crc are sealed when it is written */
static void begin_record(Buf *b, unsigned type) {
  put_u32(b, 0); put_u32(b, 0);
  put_u8(b, type);
}

static void seal(unsigned char *h, uint32_t len, uint32_t crc) {
  for (int i = 0; i < 4; i++) { h[i] = (unsigned char)(len >> (8 * i)); h[4 + i] = (unsigned char)(crc >> (8 * i)); }
}

/* A record on its way out: head holds the header and every field but the
 * vectors, which are written from where they are (vec: runs of a
 * collection's consecutive rows, or a batch's Lua strings), not copied into
 * one more buffer first. */
typedef struct Rec {
  Buf head;
  struct iovec *vec;
  int nvec;
  char *swapped;               /* big-endian hosts: the vectors in file order */
} Rec;

static void rec_free(Rec *r) { free(r->head.p); free(r->vec); free(r->swapped); memset(r, 0, sizeof *r); }

static int pwrite_all(int fd, const char *p, size_t n, off_t at) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w; n -= (size_t)w; at += w;
  }
  return 0;
}

/* A record is written front to back, its crc computed along the way, and
 * its header last.  Small pieces (a vector read in place from its Lua
 * string) are first gathered in a staging buffer that stays in cache, so
 * the checksum and the kernel's copy read them from there; big runs go
 * straight from where they are.  Every WRITEBACK bytes, the disk is told to
 * start writing (sync_file_range), so it works while the rest is checksummed
 * and copied, and the fsync that follows has little left to wait for (a
 * 51 MB batch: ~20 ms instead of ~30).  Until the header lands the record
 * reads as torn (zero length), and is cut at the next open. */
#define STAGE ((size_t)1 << 20)
#define WRITEBACK ((size_t)4 << 20)

typedef struct Window {
  int fd;
  off_t at, unsynced;          /* where the next bytes go; where writeback has not started */
  char *stage;
  size_t staged, cap;
  uint32_t crc;
  int bad;
} Window;

static void window_write(Window *w, const char *p, size_t n) {
  if (w->bad || n == 0) return;
  w->crc = (uint32_t)crc32_z(w->crc, (const Bytef *)p, n);
  if (pwrite_all(w->fd, p, n, w->at) != 0) { w->bad = 1; return; }
  w->at += (off_t)n;
#ifdef SYNC_FILE_RANGE_WRITE
  if ((size_t)(w->at - w->unsynced) >= WRITEBACK) {
    sync_file_range(w->fd, w->unsynced, w->at - w->unsynced, SYNC_FILE_RANGE_WRITE);   /* a hint */
    w->unsynced = w->at;
  }
#endif
}

static void window_flush(Window *w) { window_write(w, w->stage, w->staged); w->staged = 0; }

static void window_add(Window *w, const char *p, size_t n) {
  if (n >= w->cap) {                          /* a big run: straight from where it is */
    window_flush(w);
    for (size_t k; n > 0; p += k, n -= k) { k = n < WRITEBACK ? n : WRITEBACK; window_write(w, p, k); }
    return;
  }
  while (n > 0) {
    size_t k = w->cap - w->staged < n ? w->cap - w->staged : n;
    memcpy(w->stage + w->staged, p, k);
    w->staged += k; p += k; n -= k;
    if (w->staged == w->cap) window_flush(w);
  }
}

/* write the record at offset at: its size, or 0 on failure */
static size_t rec_write(int fd, off_t at, Rec *r) {
  if (r->head.oom) return 0;
  size_t len = r->head.len - 8;
  for (int i = 0; i < r->nvec; i++) len += r->vec[i].iov_len;
  if (len > UINT32_MAX) return 0;
  Window w = {fd, at + 8, at, NULL, 0, len < STAGE ? len : STAGE, 0, 0};
  if (!(w.stage = malloc(w.cap))) return 0;
  window_add(&w, r->head.p + 8, r->head.len - 8);
  for (int i = 0; i < r->nvec; i++) window_add(&w, r->vec[i].iov_base, r->vec[i].iov_len);
  window_flush(&w);
  free(w.stage);
  if (w.bad) return 0;
  seal((unsigned char *)r->head.p, (uint32_t)len, w.crc);
  return pwrite_all(fd, r->head.p, 8, at) == 0 ? len + 8 : 0;
}

/* What a PUT record holds: a batch (ids, metadata, documents; vectors from
 * the batch, or from the collection's rows it landed at), or without a
 * batch the collection's records 0..n-1. */
typedef struct PutSrc {
  const Collection *c;
  const Batch *b;
  const size_t *landed;
  size_t n;
} PutSrc;

static const void *src_row(const PutSrc *s, size_t k, const char **id, const Meta **meta, const char **doc) {
  const Collection *c = s->c;
  if (!s->b) {
    *id = c->recs[k].id; *meta = &c->recs[k].meta; *doc = c->recs[k].doc;
    return c->vecs + k * (size_t)c->dim;
  }
  *id = s->b->ids[k]; *meta = &s->b->metas[k]; *doc = s->b->docs[k];
  return s->landed ? (const void *)(c->vecs + s->landed[k] * (size_t)c->dim) : batch_row(s->b, (int)k);
}

/* PUT_COLUMNS records of src: per record its id, metadata and document,
 * then every vector in one block.  A huge batch is cut into records of at
 * most 256 MiB of vectors (the length is 32 bits).  emit writes each; 0, or
 * -1 as soon as one fails. */
#define PUT_VECTOR_BYTES ((size_t)256 << 20)

static int put_records(const PutSrc *src, int upsert, int (*emit)(void *ctx, Rec *r), void *ctx) {
  const Collection *c = src->c;
  size_t n = src->n, row_bytes = (size_t)c->dim * sizeof(float);
  size_t per = PUT_VECTOR_BYTES / row_bytes ? PUT_VECTOR_BYTES / row_bytes : 1;
  size_t from = 0;
  do {                                        /* (an empty batch still makes one record) */
    size_t m = n - from < per ? n - from : per;
    Rec r = {0};
    r.vec = malloc((m ? m : 1) * sizeof *r.vec);
    if (!r.vec) return -1;
    begin_record(&r.head, LOG_PUT_COLUMNS);
    put_str(&r.head, c->name);
    put_u8(&r.head, (unsigned)upsert);
    put_u32(&r.head, (uint32_t)m);
    put_u32(&r.head, (uint32_t)c->dim);
    for (size_t k = from; k < from + m; k++) {
      const char *id, *doc;
      const Meta *meta;
      const char *v = src_row(src, k, &id, &meta, &doc);
      put_str(&r.head, id);
      put_u32(&r.head, (uint32_t)meta->n);
      for (int j = 0; j < meta->n; j++) {
        const MetaKV *kv = &meta->kv[j];
        put_str(&r.head, kv->key);
        put_u8(&r.head, (unsigned)kv->type);
        if (kv->type == MV_STR) put_str(&r.head, kv->str); else put_f64(&r.head, kv->num);
      }
      put_u8(&r.head, doc != NULL);
      if (doc) put_str(&r.head, doc);
      struct iovec *last = r.nvec ? &r.vec[r.nvec - 1] : NULL;
      if (last && (const char *)last->iov_base + last->iov_len == v) last->iov_len += row_bytes;   /* a run */
      else { r.vec[r.nvec].iov_base = (void *)v; r.vec[r.nvec].iov_len = row_bytes; r.nvec++; }
    }
    if (!host_little_endian() && m) {              /* the file is little-endian */
      Buf sw = {0};
      for (int j = 0; j < r.nvec; j++) {
        const float *v = r.vec[j].iov_base;
        for (size_t k = 0; k < r.vec[j].iov_len / sizeof(float); k++) put_f32(&sw, v[k]);
      }
      r.swapped = sw.p;
      r.vec[0].iov_base = sw.p; r.vec[0].iov_len = sw.len; r.nvec = 1;
      if (sw.oom) r.head.oom = 1;
    }
    int rc = emit(ctx, &r);
    rec_free(&r);
    if (rc != 0) return -1;
    from += m;
  } while (from < n);
  return 0;
}

/* ---- decoding ----------------------------------------------------------- */

typedef struct Rd { const unsigned char *p; size_t len, at; int bad; } Rd;

static uint32_t get_u32(Rd *r) {
  if (r->at + 4 > r->len) { r->bad = 1; return 0; }
  const unsigned char *p = r->p + r->at;
  r->at += 4;
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static unsigned get_u8(Rd *r) { if (r->at + 1 > r->len) { r->bad = 1; return 0; } return r->p[r->at++]; }
static float get_f32(Rd *r) { uint32_t u = get_u32(r); float f; memcpy(&f, &u, 4); return f; }
static double get_f64(Rd *r) { uint64_t lo = get_u32(r), hi = get_u32(r); uint64_t u = lo | hi << 32; double d; memcpy(&d, &u, 8); return d; }
static char *get_str(Rd *r) {
  uint32_t n = get_u32(r);
  if (r->bad || r->at + n > r->len) { r->bad = 1; return NULL; }
  char *s = malloc((size_t)n + 1);
  if (!s) { r->bad = 1; return NULL; }
  memcpy(s, r->p + r->at, n);
  s[n] = 0;
  r->at += n;
  return s;
}

static Collection *find_col(Replay *rp, const char *name) {
  for (int i = 0; i < rp->ncols; i++) if (strcmp(rp->cols[i]->name, name) == 0) return rp->cols[i];
  return NULL;
}

static int add_col(Replay *rp, Collection *c) {
  Collection **cs = realloc(rp->cols, (size_t)(rp->ncols + 1) * sizeof *cs);
  if (!cs) return -1;
  rp->cols = cs;
  rp->cols[rp->ncols++] = c;
  return 0;
}

static void remove_col(Replay *rp, const char *name) {
  for (int i = 0; i < rp->ncols; i++) {
    if (strcmp(rp->cols[i]->name, name) == 0) {
      store_free(rp->cols[i]);
      rp->cols[i] = rp->cols[--rp->ncols];
      return;
    }
  }
}

static void get_f32s(Rd *r, float *dst, size_t n) {
  if (host_little_endian() && r->at + n * 4 <= r->len) { memcpy(dst, r->p + r->at, n * 4); r->at += n * 4; }
  else for (size_t j = 0; j < n; j++) dst[j] = get_f32(r);
}

/* a record's metadata and document, as encoded by put_records */
static void get_meta_doc(Rd *r, Batch *b, uint32_t i) {
  uint32_t nm = get_u32(r);
  if (nm > r->len) { r->bad = 1; return; }
  if (nm && !(b->metas[i].kv = calloc(nm, sizeof *b->metas[i].kv))) { r->bad = 1; return; }
  for (uint32_t k = 0; k < nm && !r->bad; k++) {
    MetaKV *kv = &b->metas[i].kv[k];
    kv->key = get_str(r);
    b->metas[i].n = (int)k + 1;
    kv->type = (int)get_u8(r);
    if (kv->type == MV_STR) kv->str = get_str(r); else kv->num = get_f64(r);
  }
  if (get_u8(r)) b->docs[i] = get_str(r);
}

/* PUT (rows: id, vector, metadata, document; files before the columns
 * layout) or PUT_COLUMNS (ids, metadata and documents, then the vectors) */
static int apply_put(Replay *rp, Rd *r, int columns) {
  char *name = get_str(r);
  (void)get_u8(r);                          /* upsert: replay always upserts */
  uint32_t n = get_u32(r), dim = get_u32(r);
  Collection *c = name ? find_col(rp, name) : NULL;
  free(name);
  if (r->bad || !c || dim == 0 || (c->dim && c->dim != (int)dim) || n > r->len) return -1;
  c->dim = (int)dim;
  Batch *b = calloc(1, sizeof *b);
  if (!b) return -1;
  b->n = (int)n; b->dim = (int)dim;
  b->ids = calloc(n ? n : 1, sizeof *b->ids);
  b->docs = calloc(n ? n : 1, sizeof *b->docs);
  b->metas = calloc(n ? n : 1, sizeof *b->metas);
  b->vecs = malloc((n ? n : 1) * (size_t)dim * sizeof(float));
  if (!b->ids || !b->docs || !b->metas || !b->vecs) { batch_free(b); return -1; }
  for (uint32_t i = 0; i < n && !r->bad; i++) {
    b->ids[i] = get_str(r);
    if (!columns) get_f32s(r, b->vecs + (size_t)i * dim, dim);
    get_meta_doc(r, b, i);
  }
  if (columns && !r->bad) get_f32s(r, b->vecs, (size_t)n * dim);
  int err, at;
  int rc = r->bad || r->at != r->len ? -1 : (store_put(c, b, 1, NULL, &err, &at) < 0 ? -1 : 0);
  batch_free(b);
  return rc;
}

/* apply one payload; 0, or -1 if it does not decode */
static int apply(Replay *rp, Rd *r) {
  unsigned type = get_u8(r);
  if (type == LOG_CREATE) {
    char *name = get_str(r);
    int dim = (int)get_u32(r), metric = (int)get_u8(r);
    if (r->bad) { free(name); return -1; }
    if (!find_col(rp, name)) add_col(rp, store_new(name, dim, metric));
    free(name);
    return 0;
  }
  if (type == LOG_DROP) {
    char *name = get_str(r);
    if (r->bad) { free(name); return -1; }
    remove_col(rp, name);
    free(name);
    return 0;
  }
  if (type == LOG_DELETE) {
    char *name = get_str(r);
    uint32_t n = get_u32(r);
    Collection *c = name ? find_col(rp, name) : NULL;
    free(name);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
      char *id = get_str(r);
      long at = (c && id) ? store_find(c, id) : -1;
      if (at >= 0) store_delete_index(c, (size_t)at);
      free(id);
    }
    return r->bad ? -1 : 0;
  }
  if (type == LOG_PUT || type == LOG_PUT_COLUMNS) return apply_put(rp, r, type == LOG_PUT_COLUMNS);
  return -1;
}

void replay_free(Replay *r) {
  for (int i = 0; i < r->ncols; i++) store_free(r->cols[i]);
  free(r->cols);
  r->cols = NULL; r->ncols = 0;
}

static int read_all(int fd, unsigned char **data, size_t *len) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -1;
  *len = (size_t)st.st_size;
  *data = malloc(*len ? *len : 1);
  if (!*data) return -1;
  size_t got = 0;
  while (got < *len) {
    ssize_t r = pread(fd, *data + got, *len - got, (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

Log *log_open(const char *path, Replay *out, const char **code, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) { *code = "unavailable"; snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno)); return NULL; }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    *code = "unavailable";
    snprintf(err, errlen, "%s is in use by another connection or process (locked)", path);
    close(fd);
    return NULL;
  }
  unsigned char *data;
  size_t len;
  if (read_all(fd, &data, &len) != 0) {
    *code = "unavailable"; snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    close(fd); return NULL;
  }
  size_t at = 0, good = 0;
  uint64_t records = 0;
  while (at + 8 <= len) {
    Rd h = {data + at, 8, 0, 0};
    uint32_t plen = get_u32(&h), crc = get_u32(&h);
    if (plen > len - at - 8) break;                               /* torn */
    if ((uint32_t)crc32(0L, data + at + 8, plen) != crc) break;    /* corrupt */
    Rd r = {data + at + 8, plen, 0, 0};
    if (apply(out, &r) != 0) break;
    at += 8 + plen;
    good = at;
    records++;
  }
  if (good < len) {
    snprintf(out->report, sizeof out->report,
             "%s: %zu bytes after the last good record (offset %zu, %llu records kept) were torn or corrupt and were truncated",
             path, len - good, good, (unsigned long long)records);
    if (ftruncate(fd, (off_t)good) != 0 || fsync(fd) != 0) {
      *code = "unavailable"; snprintf(err, errlen, "cannot truncate %s: %s", path, strerror(errno));
      free(data); replay_free(out); close(fd); return NULL;
    }
  }
  free(data);
  Log *lg = calloc(1, sizeof *lg);
  if (!lg) { replay_free(out); close(fd); *code = "unavailable"; snprintf(err, errlen, "out of memory"); return NULL; }
  lg->fd = fd;
  lg->path = strdup(path);
  lg->bytes = good;
  lg->records = records;
  pthread_mutex_init(&lg->m, NULL);
  pthread_mutex_init(&lg->wm, NULL);
  return lg;
}

void log_shutdown(Log *lg) {
  if (lg->shut) return;
  lg->shut = 1;
  close(lg->fd);                          /* releases the lock */
}

void log_close(Log *lg) {
  if (!lg) return;
  log_shutdown(lg);
  pthread_mutex_destroy(&lg->m);
  pthread_mutex_destroy(&lg->wm);
  free(lg->path);
  free(lg);
}

/* ---- appending and group commit ----------------------------------------- */

/* Records are written at once, in order (wm); a flush only fsyncs, so every
 * writer queued behind a running fsync shares the next one. */
static int append(void *ctx, Rec *r) {
  Log *lg = ctx;
  pthread_mutex_lock(&lg->m);
  int broken = lg->broken;
  pthread_mutex_unlock(&lg->m);
  size_t len = broken ? 0 : rec_write(lg->fd, (off_t)lg->bytes, r);
  pthread_mutex_lock(&lg->m);
  if (len) { lg->written++; lg->bytes += len; }
  else lg->broken = 1;                      /* a torn tail is cut at the next open */
  pthread_mutex_unlock(&lg->m);
  return len ? 0 : -1;
}

/* the sequence number of the last record appended, or 0 */
static uint64_t appended(Log *lg, int rc) {
  if (rc != 0) return 0;
  pthread_mutex_lock(&lg->m);
  uint64_t seq = lg->written;
  pthread_mutex_unlock(&lg->m);
  return seq;
}

static uint64_t append_small(Log *lg, Buf *b) {
  Rec r = {.head = *b};
  pthread_mutex_lock(&lg->wm);
  uint64_t seq = appended(lg, append(lg, &r));
  pthread_mutex_unlock(&lg->wm);
  rec_free(&r);
  return seq;
}

uint64_t log_put(Log *lg, const Collection *c, const Batch *b, const size_t *landed, int upsert) {
  PutSrc src = {c, b, landed, (size_t)b->n};
  pthread_mutex_lock(&lg->wm);
  uint64_t seq = appended(lg, put_records(&src, upsert, append, lg));
  pthread_mutex_unlock(&lg->wm);
  return seq;
}

uint64_t log_delete(Log *lg, const char *coll, char *const *ids, size_t n) {
  Buf b = {0};
  begin_record(&b, LOG_DELETE);
  put_str(&b, coll);
  put_u32(&b, (uint32_t)n);
  for (size_t i = 0; i < n; i++) put_str(&b, ids[i]);
  return append_small(lg, &b);
}

static void create_record(Buf *b, const char *name, int dim, int metric) {
  begin_record(b, LOG_CREATE);
  put_str(b, name);
  put_u32(b, (uint32_t)dim);
  put_u8(b, (unsigned)metric);
}

uint64_t log_create(Log *lg, const char *name, int dim, int metric) {
  Buf b = {0};
  create_record(&b, name, dim, metric);
  return append_small(lg, &b);
}

uint64_t log_drop(Log *lg, const char *name) {
  Buf b = {0};
  begin_record(&b, LOG_DROP);
  put_str(&b, name);
  return append_small(lg, &b);
}

/* fsync what is written; the records covered become durable.  The fd is
 * read unlocked: compaction swaps it only when no operation is in flight. */
int log_flush(Log *lg) {
  pthread_mutex_lock(&lg->m);
  uint64_t upto = lg->written;
  int broken = lg->broken, idle = upto == lg->durable;
  pthread_mutex_unlock(&lg->m);
  if (broken) return -1;
  if (idle) return 0;
  int rc = fdatasync(lg->fd);
  pthread_mutex_lock(&lg->m);
  lg->fsyncs++;
  if (rc == 0) { if (upto > lg->durable) lg->durable = upto; }
  else lg->broken = 1;
  pthread_mutex_unlock(&lg->m);
  return rc == 0 ? 0 : -1;
}

int log_durable(Log *lg, uint64_t seq) {
  pthread_mutex_lock(&lg->m);
  int r = lg->broken ? -1 : lg->durable >= seq;
  pthread_mutex_unlock(&lg->m);
  return r;
}

/* ---- compaction --------------------------------------------------------- */

typedef struct Sink { int fd; size_t bytes; } Sink;

static int to_sink(void *ctx, Rec *r) {
  Sink *s = ctx;
  size_t len = rec_write(s->fd, (off_t)s->bytes, r);
  s->bytes += len;
  return len ? 0 : -1;
}

static int write_snapshot(int fd, Collection *const *cols, int ncols, size_t *bytes) {
  Sink sink = {fd, 0};
  int rc = 0;
  for (int i = 0; i < ncols && rc == 0; i++) {
    Rec r = {0};
    create_record(&r.head, cols[i]->name, cols[i]->dim, cols[i]->metric);
    rc = to_sink(&sink, &r);
    rec_free(&r);
    PutSrc all = {cols[i], NULL, NULL, cols[i]->n};
    if (rc == 0 && cols[i]->n) rc = put_records(&all, 1, to_sink, &sink);
  }
  *bytes = sink.bytes;
  return rc;
}

int log_compact(Log *lg, Collection *const *cols, int ncols) {
  size_t plen = strlen(lg->path), bytes = 0;
  char *tmp = malloc(plen + 5);
  if (!tmp) return -1;
  memcpy(tmp, lg->path, plen);
  memcpy(tmp + plen, ".tmp", 5);
  pthread_mutex_lock(&lg->wm);
  int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int rc = fd < 0 ? -1 : 0;
  if (rc == 0) rc = flock(fd, LOCK_EX | LOCK_NB);
  if (rc == 0) rc = write_snapshot(fd, cols, ncols, &bytes);
  if (rc == 0) rc = fsync(fd);
  if (rc == 0) rc = rename(tmp, lg->path);     /* atomic: old or new, never half */
  if (rc == 0) {
    char *slash = strrchr(lg->path, '/');
    char *dir = slash ? strndup(lg->path, (size_t)(slash - lg->path + 1)) : strdup(".");
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY) : -1;
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    free(dir);
    close(lg->fd);                              /* the new file, locked, takes over */
    lg->fd = fd;
    pthread_mutex_lock(&lg->m);
    lg->bytes = bytes;
    pthread_mutex_unlock(&lg->m);
    fd = -1;
  }
  pthread_mutex_unlock(&lg->wm);
  if (fd >= 0) { close(fd); unlink(tmp); }
  free(tmp);
  return rc == 0 ? 0 : -1;
}
