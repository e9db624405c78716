/* log.c - the file: backend's log: append, group commit, replay, compact. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
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
/* float32 arrays: one copy on little-endian hosts (the file's byte order) */
static int little_endian(void) { const uint16_t one = 1; return *(const unsigned char *)&one == 1; }

static void put_f32s(Buf *b, const float *v, size_t n) {
  if (little_endian()) put_bytes(b, v, n * sizeof *v);
  else for (size_t i = 0; i < n; i++) put_f32(b, v[i]);
}

static void put_str(Buf *b, const char *s) { size_t n = strlen(s); put_u32(b, (uint32_t)n); put_bytes(b, s, n); }

/* start a record: length and crc are filled by end_record */
static size_t begin_record(Buf *b, unsigned type) {
  size_t at = b->len;
  put_u32(b, 0); put_u32(b, 0);
  put_u8(b, type);
  return at;
}

static void end_record(Buf *b, size_t at) {
  if (b->oom) return;
  uint32_t len = (uint32_t)(b->len - at - 8);
  uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)b->p + at + 8, len);
  unsigned char *h = (unsigned char *)b->p + at;
  for (int i = 0; i < 4; i++) { h[i] = (unsigned char)(len >> (8 * i)); h[4 + i] = (unsigned char)(crc >> (8 * i)); }
}

static void encode_rows(Buf *b, const Collection *c, const size_t *rows, size_t n, int upsert) {
  size_t want = b->len + n * ((size_t)c->dim * 4 + 48) + 64;   /* one allocation, mostly */
  if (want > b->cap && !b->oom) {
    char *p = realloc(b->p, want);
    if (p) { b->p = p; b->cap = want; }
  }
  size_t at = begin_record(b, LOG_PUT);
  put_str(b, c->name);
  put_u8(b, (unsigned)upsert);
  put_u32(b, (uint32_t)n);
  put_u32(b, (uint32_t)c->dim);
  for (size_t r = 0; r < n; r++) {
    size_t i = rows ? rows[r] : r;
    const Record *rec = &c->recs[i];
    put_str(b, rec->id);
    put_f32s(b, c->vecs + i * (size_t)c->dim, (size_t)c->dim);
    put_u32(b, (uint32_t)rec->meta.n);
    for (int k = 0; k < rec->meta.n; k++) {
      const MetaKV *kv = &rec->meta.kv[k];
      put_str(b, kv->key);
      put_u8(b, (unsigned)kv->type);
      if (kv->type == MV_STR) put_str(b, kv->str); else put_f64(b, kv->num);
    }
    put_u8(b, rec->doc != NULL);
    if (rec->doc) put_str(b, rec->doc);
  }
  end_record(b, at);
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
  if (type == LOG_PUT) {
    char *name = get_str(r);
    int upsert = (int)get_u8(r);
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
      float *dst = b->vecs + (size_t)i * dim;
      if (little_endian() && r->at + (size_t)dim * 4 <= r->len) { memcpy(dst, r->p + r->at, (size_t)dim * 4); r->at += (size_t)dim * 4; }
      else for (uint32_t j = 0; j < dim; j++) dst[j] = get_f32(r);
      uint32_t nm = get_u32(r);
      if (nm > r->len) { r->bad = 1; break; }
      if (nm) b->metas[i].kv = calloc(nm, sizeof *b->metas[i].kv);
      for (uint32_t k = 0; k < nm && !r->bad && b->metas[i].kv; k++) {
        MetaKV *kv = &b->metas[i].kv[k];
        kv->key = get_str(r);
        b->metas[i].n = (int)k + 1;
        kv->type = (int)get_u8(r);
        if (kv->type == MV_STR) kv->str = get_str(r); else kv->num = get_f64(r);
      }
      if (get_u8(r)) b->docs[i] = get_str(r);
    }
    int err, at;
    int rc = r->bad ? -1 : (store_put(c, b, 1, NULL, &err, &at) < 0 ? -1 : 0);
    (void)upsert;
    batch_free(b);
    return rc;
  }
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
  int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
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
  pthread_cond_init(&lg->cv, NULL);
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
  pthread_cond_destroy(&lg->cv);
  free(lg->buf); free(lg->path);
  free(lg);
}

/* ---- appending and group commit ----------------------------------------- */

static uint64_t enqueue(Log *lg, Buf *b) {
  pthread_mutex_lock(&lg->m);
  uint64_t seq = 0;
  if (b->oom || lg->broken) { lg->broken = 1; pthread_mutex_unlock(&lg->m); free(b->p); return 0; }
  if (lg->len == 0) {                       /* nothing queued: take the buffer as it is */
    free(lg->buf);
    lg->buf = b->p; lg->len = b->len; lg->cap = b->cap;
    b->p = NULL;
  } else {
    Buf q = {lg->buf, lg->len, lg->cap, 0};
    put_bytes(&q, b->p, b->len);
    lg->buf = q.p; lg->len = q.len; lg->cap = q.cap;
    if (q.oom) lg->broken = 1;
  }
  if (!lg->broken) seq = ++lg->queued;
  pthread_mutex_unlock(&lg->m);
  free(b->p);
  return seq;
}

uint64_t log_put(Log *lg, const Collection *c, const size_t *rows, size_t n, int upsert) {
  Buf b = {0};
  encode_rows(&b, c, rows, n, upsert);
  return enqueue(lg, &b);
}

uint64_t log_delete(Log *lg, const char *coll, char *const *ids, size_t n) {
  Buf b = {0};
  size_t at = begin_record(&b, LOG_DELETE);
  put_str(&b, coll);
  put_u32(&b, (uint32_t)n);
  for (size_t i = 0; i < n; i++) put_str(&b, ids[i]);
  end_record(&b, at);
  return enqueue(lg, &b);
}

uint64_t log_create(Log *lg, const char *name, int dim, int metric) {
  Buf b = {0};
  size_t at = begin_record(&b, LOG_CREATE);
  put_str(&b, name);
  put_u32(&b, (uint32_t)dim);
  put_u8(&b, (unsigned)metric);
  end_record(&b, at);
  return enqueue(lg, &b);
}

uint64_t log_drop(Log *lg, const char *name) {
  Buf b = {0};
  size_t at = begin_record(&b, LOG_DROP);
  put_str(&b, name);
  end_record(&b, at);
  return enqueue(lg, &b);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w; n -= (size_t)w;
  }
  return 0;
}

int log_flush(Log *lg) {
  pthread_mutex_lock(&lg->m);
  if (lg->broken || lg->len == 0) { int rc = lg->broken ? -1 : 0; pthread_mutex_unlock(&lg->m); return rc; }
  char *buf = lg->buf;
  size_t len = lg->len;
  uint64_t upto = lg->queued;
  lg->buf = NULL; lg->len = lg->cap = 0;
  pthread_mutex_unlock(&lg->m);
  int rc = write_all(lg->fd, buf, len);
  if (rc == 0) rc = fdatasync(lg->fd);
  free(buf);
  pthread_mutex_lock(&lg->m);
  lg->fsyncs++;
  if (rc == 0) { lg->durable = upto; lg->bytes += len; }
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

int log_compact(Log *lg, Collection *const *cols, int ncols) {
  Buf b = {0};
  for (int i = 0; i < ncols; i++) {
    size_t at = begin_record(&b, LOG_CREATE);
    put_str(&b, cols[i]->name);
    put_u32(&b, (uint32_t)cols[i]->dim);
    put_u8(&b, (unsigned)cols[i]->metric);
    end_record(&b, at);
    if (cols[i]->n) encode_rows(&b, cols[i], NULL, cols[i]->n, 1);
  }
  if (b.oom) { free(b.p); return -1; }
  size_t plen = strlen(lg->path);
  char *tmp = malloc(plen + 5);
  if (!tmp) { free(b.p); return -1; }
  memcpy(tmp, lg->path, plen);
  memcpy(tmp + plen, ".tmp", 5);
  int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  int rc = fd < 0 ? -1 : 0;
  if (rc == 0) rc = flock(fd, LOCK_EX | LOCK_NB);
  if (rc == 0) rc = write_all(fd, b.p, b.len);
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
    lg->bytes = b.len;
    fd = -1;
  }
  if (fd >= 0) { close(fd); unlink(tmp); }
  free(tmp);
  free(b.p);
  return rc == 0 ? 0 : -1;
}
