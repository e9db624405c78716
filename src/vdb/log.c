/* log.c - the file: backend's log: open, append, group commit, compact. */
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
#include "codec.h"
#include "log.h"

/* ---- writing records ---------------------------------------------------- */

/* A record on its way out: head holds the frame header's room and every
 * field but the vectors, which are written from where they are (vec: runs
 * of a batch's rows, or of a collection's), not copied into one more buffer
 * first. */
typedef struct Rec {
  Buf head;
  struct iovec *vec;
  int nvec;
  char *swapped;               /* big-endian hosts: the vectors in file order */
} Rec;

static void rec_free(Rec *r) { free(r->head.p); free(r->vec); free(r->swapped); memset(r, 0, sizeof *r); }

/* start a record: its frame header is sealed when it is written */
static void begin_record(Buf *b, unsigned type) {
  static const char room[FRAME_BYTES];
  put_bytes(b, room, FRAME_BYTES);
  put_u8(b, type);
}

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
 * its frame header last.  Small pieces (a vector read in place from its
 * Lua string) are first gathered in a staging buffer that stays in cache,
 * so the checksum and the kernel's copy read them from there; big runs go
 * straight from where they are.  Every WRITEBACK bytes, the disk is told to
 * start writing (sync_file_range), so it works while the rest is checksummed
 * and copied, and the fsync that follows has little left to wait for.
 * Until the header lands the record reads as torn (zeros where the header
 * goes), and is cut at the next open. */
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
  size_t len = r->head.len - FRAME_BYTES;
  for (int i = 0; i < r->nvec; i++) len += r->vec[i].iov_len;
  if (len > UINT32_MAX) return 0;
  Window w = {fd, at + FRAME_BYTES, at, NULL, 0, len < STAGE ? len : STAGE, 0, 0};
  if (!(w.stage = malloc(w.cap ? w.cap : 1))) return 0;
  window_add(&w, r->head.p + FRAME_BYTES, r->head.len - FRAME_BYTES);
  for (int i = 0; i < r->nvec; i++) window_add(&w, r->vec[i].iov_base, r->vec[i].iov_len);
  window_flush(&w);
  free(w.stage);
  if (w.bad) return 0;
  frame_seal((unsigned char *)r->head.p, (uint32_t)len, w.crc);
  return pwrite_all(fd, r->head.p, FRAME_BYTES, at) == 0 ? len + FRAME_BYTES : 0;
}

/* What a PUT record holds: a batch (ids, metadata, documents, vectors), or
 * without a batch n of the collection's records, at the rows listed (its
 * live ones). */
typedef struct PutSrc {
  const Collection *c;
  const Batch *b;
  size_t n;
  const size_t *rows;
} PutSrc;

static const void *src_row(const PutSrc *s, size_t k, const char **id, const Meta **meta, const char **doc) {
  const Collection *c = s->c;
  if (!s->b) {
    k = s->rows[k];
    *id = c->recs[k].id; *meta = &c->recs[k].meta; *doc = c->recs[k].doc;
    return c->vecs + k * (size_t)c->dim;
  }
  *id = s->b->ids[k]; *meta = &s->b->metas[k]; *doc = s->b->docs[k];
  return batch_row(s->b, (int)k);
}

/* PUT_COLUMNS records of src: per record its id, metadata and document,
 * then every vector in one block.  A record holds at most max_bytes of
 * vectors and max_rows records (the log: 256 MiB, as the length is 32
 * bits; a snapshot: small blocks, so that damage stays local).  emit writes
 * each; 0, or -1 as soon as one fails. */
#define PUT_VECTOR_BYTES ((size_t)256 << 20)
#define SNAPSHOT_BLOCK_BYTES ((size_t)1 << 20)
#define SNAPSHOT_BLOCK_ROWS ((size_t)1024)

static int put_records(const PutSrc *src, int upsert, size_t max_bytes, size_t max_rows,
                       int (*emit)(void *ctx, Rec *r), void *ctx) {
  const Collection *c = src->c;
  if (c->dim <= 0) return src->n ? -1 : 0;
  size_t n = src->n, row_bytes = (size_t)c->dim * sizeof(float);
  size_t per = max_bytes / row_bytes ? max_bytes / row_bytes : 1;
  if (per > max_rows) per = max_rows;
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

static void create_record(Buf *b, const char *name, int dim, int metric) {
  begin_record(b, LOG_CREATE);
  put_str(b, name);
  put_u32(b, (uint32_t)dim);
  put_u8(b, (unsigned)metric);
}

/* ---- snapshots: the live state as a new file ---------------------------- */

typedef struct Sink { int fd; size_t bytes; } Sink;

static int to_sink(void *ctx, Rec *r) {
  Sink *s = ctx;
  size_t len = rec_write(s->fd, (off_t)s->bytes, r);
  s->bytes += len;
  return len ? 0 : -1;
}

/* the header, then each collection: its creation and its records, read
 * under its read lock (locked: 0 when nothing else can touch cols) */
static int write_snapshot(int fd, Collection *const *cols, int ncols, int locked, size_t *bytes) {
  unsigned char h[VDB_HEADER_BYTES];
  header_write(h);
  if (pwrite_all(fd, (const char *)h, sizeof h, 0) != 0) return -1;
  Sink sink = {fd, sizeof h};
  int rc = 0;
  for (int i = 0; i < ncols && rc == 0; i++) {
    Collection *c = cols[i];
    if (locked) pthread_rwlock_rdlock(&c->lock);
    Rec r = {0};
    create_record(&r.head, c->name, c->dim, c->metric);
    rc = to_sink(&sink, &r);
    rec_free(&r);
    if (rc == 0 && c->count) {
      size_t *live = malloc(c->count * sizeof *live), n = 0;
      if (!live) rc = -1;
      else {
        for (size_t row = 0; row < c->rows; row++) if (store_row_live(c, row)) live[n++] = row;
        PutSrc all = {c, NULL, n, live};
        rc = put_records(&all, 1, SNAPSHOT_BLOCK_BYTES, SNAPSHOT_BLOCK_ROWS, to_sink, &sink);
        free(live);
      }
    }
    if (locked) pthread_rwlock_unlock(&c->lock);
  }
  *bytes = sink.bytes;
  return rc;
}

static char *with_suffix(const char *path, const char *suffix) {
  size_t a = strlen(path), b = strlen(suffix);
  char *s = malloc(a + b + 1);
  if (s) { memcpy(s, path, a); memcpy(s + a, suffix, b + 1); }
  return s;
}

static void sync_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, (size_t)(slash - path + 1)) : strdup(".");
  int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dfd >= 0) { fsync(dfd); close(dfd); }
  free(dir);
}

/* Keep the original beside the file about to replace it: a hard link
 * PATH.SUFFIX (or PATH.SUFFIX.2, ...), the bytes untouched.  The name, or
 * NULL if no name could be made. */
static char *keep_original(const char *path, const char *suffix) {
  char *base = with_suffix(path, suffix);
  if (!base) return NULL;
  char *name = strdup(base);
  for (int i = 2; name && i < 1000; i++) {
    if (link(path, name) == 0) { free(base); return name; }
    if (errno != EEXIST) break;
    free(name);
    char tail[16];
    snprintf(tail, sizeof tail, ".%d", i);
    name = with_suffix(base, tail);
  }
  free(name); free(base);
  return NULL;
}

/* PATH.tmp, created empty and locked: its fd, or -1 */
static int open_tmp(const char *tmp) {
  int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) { close(fd); unlink(tmp); return -1; }
  return fd;
}

/* tmp, synced, takes path's place: the old file stays whole until then */
static int install(const char *tmp, const char *path, int fd) {
  if (fsync(fd) != 0 || rename(tmp, path) != 0) return -1;   /* rename: old or new, never half */
  sync_dir(path);
  return 0;
}

/* Write cols (nothing else touches them) as a snapshot over path.  The
 * new fd, or -1 (path as it was). */
static int replace_file(const char *path, Collection *const *cols, int ncols, size_t *bytes) {
  char *tmp = with_suffix(path, ".tmp");
  if (!tmp) return -1;
  int fd = open_tmp(tmp);
  if (fd >= 0 && (write_snapshot(fd, cols, ncols, 0, bytes) != 0 || install(tmp, path, fd) != 0)) {
    close(fd); unlink(tmp); fd = -1;
  }
  free(tmp);
  return fd;
}

/* ---- opening ------------------------------------------------------------ */

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
    if (r <= 0) { free(*data); *data = NULL; return -1; }
    got += (size_t)r;
  }
  return 0;
}

void opened_free(Opened *o) {
  replay_free(&o->replay);
  free(o->kept);
  o->kept = NULL;
}

static uint64_t live_records(const Replay *rp) {
  uint64_t n = 0;
  for (int i = 0; i < rp->ncols; i++) n += rp->cols[i]->count;
  return n;
}

/* the refusal of a damaged file */
static void describe_damage(const Replay *rp, const char *path, char *err, size_t errlen) {
  snprintf(err, errlen,
           "%s is damaged: %s %llu at offset %llu %s (%llu damaged, %llu bytes); %llu records are intact. "
           "Nothing was changed. To open it anyway with every intact record, pass opts.recover = true "
           "(the original is kept beside it as %s.damaged)",
           path, rp->first_record ? "record" : "the header,", (unsigned long long)rp->first_record,
           (unsigned long long)rp->first_offset, rp->first_why, (unsigned long long)rp->damaged,
           (unsigned long long)rp->damaged_bytes, (unsigned long long)rp->records, path);
}

/* open the file, take its lock and read it whole: 0, or -1 with err */
static int open_and_read(const char *path, int *fd_out, unsigned char **data, size_t *len, char *err, size_t errlen) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) { snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno)); return -1; }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    snprintf(err, errlen, "%s is in use by another connection or process (locked)", path);
    close(fd);
    return -1;
  }
  if (read_all(fd, data, len) != 0) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  *fd_out = fd;
  return 0;
}

/* Rewrite what was read as a format-1 snapshot, the original kept beside
 * it (a damaged file opened with recover, or format 0): 0 with *fd the new
 * file's, or -1 with err. */
static int rewrite_kept(const char *path, Opened *out, int *fd, size_t *bytes, char *err, size_t errlen) {
  Replay *rp = &out->replay;
  out->kept = keep_original(path, rp->damaged ? ".damaged" : ".format0");
  int nfd = out->kept ? replace_file(path, rp->cols, rp->ncols, bytes) : -1;
  if (nfd < 0) {
    if (out->kept) { unlink(out->kept); free(out->kept); out->kept = NULL; }
    snprintf(err, errlen, "cannot rewrite %s: %s", path, strerror(errno));
    return -1;
  }
  close(*fd);
  *fd = nfd;
  if (rp->damaged)
    snprintf(out->report, sizeof out->report,
             "%s: recovered %llu records; skipped %llu damaged records (%llu bytes, the first at offset %llu: %s)%s%s; "
             "the original is kept as %s",
             path, (unsigned long long)live_records(rp), (unsigned long long)rp->damaged,
             (unsigned long long)rp->damaged_bytes, (unsigned long long)rp->first_offset, rp->first_why,
             rp->notes[0] ? "; " : "", rp->notes, out->kept);
  else
    snprintf(out->report, sizeof out->report, "%s: rewritten in format %d; the file as it was is kept as %s",
             path, VDB_FORMAT, out->kept);
  return 0;
}

/* the Log over an opened file, or NULL (no memory) */
static Log *log_new(const char *path, int fd, size_t bytes, const Replay *rp) {
  Log *lg = calloc(1, sizeof *lg);
  if (lg && !(lg->path = strdup(path))) { free(lg); lg = NULL; }
  if (!lg) return NULL;
  lg->fd = fd;
  lg->bytes = bytes;
  lg->records = rp->records;
  for (int i = 0; i < rp->ncols; i++) lg->live += rp->cols[i]->live_bytes;
  pthread_mutex_init(&lg->m, NULL);
  pthread_mutex_init(&lg->wm, NULL);
  pthread_cond_init(&lg->flushed, NULL);
  return lg;
}

Log *log_open(const char *path, int recover, Opened *out, const char **code, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  *code = "unavailable";
  int fd;
  unsigned char *data;
  size_t len;
  if (open_and_read(path, &fd, &data, &len, err, errlen) != 0) return NULL;
  Replay *rp = &out->replay;
  int kind = replay_image(data, len, recover, rp);
  free(data);
  size_t bytes = (size_t)rp->end;
  int failed = 0;
  if (kind == REPLAY_NEW || kind == REPLAY_STORE) {
    char *tmp = with_suffix(path, ".tmp");  /* a compaction cut short: never renamed, the file is whole */
    if (tmp) { unlink(tmp); free(tmp); }
  }
  if (kind == REPLAY_NEW) {                 /* empty, or a header cut as the file was made */
    unsigned char h[VDB_HEADER_BYTES];
    header_write(h);
    failed = pwrite_all(fd, (const char *)h, sizeof h, 0) != 0 || ftruncate(fd, sizeof h) != 0 || fsync(fd) != 0;
    bytes = sizeof h;
    if (failed) snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
  } else if (kind == REPLAY_FOREIGN) {
    *code = "corrupt";
    snprintf(err, errlen, "%s is not a vdb store (it does not start with vdb's header); nothing was changed", path);
  } else if (kind == REPLAY_NEWER) {
    *code = "corrupt";
    snprintf(err, errlen, "%s was written by a newer vdb (format %u, features %#x; this one reads format %d); nothing was changed",
             path, rp->found_version, rp->found_features, VDB_FORMAT);
  } else if (kind == REPLAY_NOMEM) {
    snprintf(err, errlen, "out of memory reading %s", path);
  } else if (rp->damaged && !recover) {
    *code = "corrupt";
    describe_damage(rp, path, err, errlen);
  } else if (rp->damaged || rp->format == 0) {
    failed = rewrite_kept(path, out, &fd, &bytes, err, errlen) != 0;
  } else if (rp->torn) {                    /* only an incomplete last record is ever cut */
    snprintf(out->report, sizeof out->report,
             "%s: an incomplete last record (%llu bytes at offset %llu: a write cut by a crash, never acknowledged) was dropped",
             path, (unsigned long long)rp->torn, (unsigned long long)rp->end);
    failed = ftruncate(fd, (off_t)rp->end) != 0 || fsync(fd) != 0;
    if (failed) snprintf(err, errlen, "cannot truncate %s: %s", path, strerror(errno));
  }
  Log *lg = NULL;
  if (!failed && (kind == REPLAY_NEW || (kind == REPLAY_STORE && !(rp->damaged && !recover)))) {
    lg = log_new(path, fd, bytes, rp);
    if (!lg) snprintf(err, errlen, "out of memory");
  }
  if (!lg) { opened_free(out); close(fd); return NULL; }
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
  pthread_cond_destroy(&lg->flushed);
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

uint64_t log_put(Log *lg, const Collection *c, const Batch *b, int upsert) {
  PutSrc src = {c, b, (size_t)b->n, NULL};
  pthread_mutex_lock(&lg->wm);
  uint64_t seq = appended(lg, put_records(&src, upsert, PUT_VECTOR_BYTES, SIZE_MAX, append, lg));
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

/* fsync what is written; the records covered become durable.  A
 * compaction does not swap the fd while this runs (flushing). */
int log_flush(Log *lg) {
  pthread_mutex_lock(&lg->m);
  uint64_t upto = lg->written;
  int broken = lg->broken, idle = upto == lg->durable, fd = lg->fd;
  if (!broken && !idle) lg->flushing = 1;
  pthread_mutex_unlock(&lg->m);
  if (broken) return -1;
  if (idle) return 0;
  int rc = fdatasync(fd);
  pthread_mutex_lock(&lg->m);
  lg->flushing = 0;
  pthread_cond_broadcast(&lg->flushed);
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

void log_account(Log *lg, int64_t delta) {
  pthread_mutex_lock(&lg->m);
  lg->live = delta < 0 && (uint64_t)-delta > lg->live ? 0 : lg->live + (uint64_t)delta;
  pthread_mutex_unlock(&lg->m);
}

int log_compact_due(Log *lg, uint64_t min_dead) {
  pthread_mutex_lock(&lg->m);
  uint64_t dead = lg->bytes > lg->live ? lg->bytes - lg->live : 0;
  int due = !lg->broken && dead > lg->live && dead > min_dead;
  pthread_mutex_unlock(&lg->m);
  return due;
}

/* bytes [from, to) of the file in fd onto the end of out at `at` */
static int copy_range(int fd, uint64_t from, uint64_t to, int out, uint64_t at) {
  char *buf = malloc(STAGE);
  int rc = buf ? 0 : -1;
  while (rc == 0 && from < to) {
    size_t n = to - from < STAGE ? (size_t)(to - from) : STAGE;
    ssize_t r = pread(fd, buf, n, (off_t)from);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || pwrite_all(out, buf, (size_t)r, (off_t)at) != 0) rc = -1;
    from += (uint64_t)(r > 0 ? r : 0); at += (uint64_t)(r > 0 ? r : 0);
  }
  free(buf);
  return rc;
}

/* Every record the snapshot may miss was appended after `from`: it is
 * copied after the snapshot, and replaying it there changes nothing the
 * snapshot already holds (puts replace, deletes remove: the last word on
 * each id is the same). */
int log_compact(Log *lg, Collection *const *cols, int ncols, uint64_t epoch) {
  char *tmp = with_suffix(lg->path, ".tmp");
  if (!tmp) return -1;
  pthread_mutex_lock(&lg->m);
  uint64_t from = lg->bytes;
  int broken = lg->broken;
  pthread_mutex_unlock(&lg->m);
  size_t bytes = 0;
  int fd = broken ? -1 : open_tmp(tmp);
  int rc = fd < 0 ? -1 : write_snapshot(fd, cols, ncols, 1, &bytes);
  if (rc == 0) rc = fdatasync(fd);            /* the big part, synced while writers go on */
  uint64_t snapshot_live = 0;
  for (int i = 0; i < ncols; i++) snapshot_live += cols[i]->live_bytes;   /* (an estimate: unlocked) */
  pthread_mutex_lock(&lg->wm);                /* writers wait from here: only for the tail */
  pthread_mutex_lock(&lg->m);
  uint64_t to = lg->bytes;
  if (rc == 0 && (lg->epoch != epoch || lg->broken)) rc = 1;
  pthread_mutex_unlock(&lg->m);
  if (rc == 0) rc = copy_range(lg->fd, from, to, fd, bytes);
  if (rc == 0) rc = install(tmp, lg->path, fd);
  if (rc == 0) {
    pthread_mutex_lock(&lg->m);
    while (lg->flushing) pthread_cond_wait(&lg->flushed, &lg->m);
    close(lg->fd);                            /* the new file, locked, takes over */
    lg->fd = fd;
    lg->bytes = bytes + (to - from);
    lg->live = snapshot_live;
    lg->compactions++;
    pthread_mutex_unlock(&lg->m);
    fd = -1;
  }
  pthread_mutex_unlock(&lg->wm);
  if (fd >= 0) { close(fd); unlink(tmp); }
  free(tmp);
  return rc;
}
