/*
 * ops.c - each kind of vdb operation, run on libuv's thread pool under the
 * collection's lock: puts (logged first, or beside, for a file: store),
 * gets, deletes (which leave tombstones, and compact the rows when due),
 * searches (through the collection's index), and the file's own work
 * (open, create/drop records, compaction).  No Lua here.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "index/index.h"

static void outrec_fill(Op *op, OutRec *o, size_t i) {
  const Record *r = &op->c->recs[i];
  o->id = bytes_dup(r->id);
  if (op->inc_meta) meta_copy(&o->meta, &r->meta);
  if (op->inc_doc && r->doc) o->doc = bytes_dup(r->doc);
  if (op->inc_vec) {
    o->vec = malloc((size_t)op->c->dim * sizeof(float));
    if (o->vec) memcpy(o->vec, op->c->vecs + i * (size_t)op->c->dim, (size_t)op->c->dim * sizeof(float));
  }
}

void op_fail(Op *op, const char *code, const char *msg) {
  snprintf(op->err_code, sizeof op->err_code, "%s", code);
  snprintf(op->err_msg, sizeof op->err_msg, "%s", msg);
}

/* file: backend: the op completes once its log sequence is durable */
static void wait_durable(Op *op, Log *lg, uint64_t seq) {
  if (lg && seq == 0)
    op_fail(op, "unavailable", "writing the log failed (out of memory or I/O error): the store now refuses writes");
  op->seq = seq;
}

/* the log record of a batch, written while the batch is applied */
typedef struct LogJob { Log *lg; const Collection *c; const Batch *b; int upsert; uint64_t seq; } LogJob;

static void *log_job(void *arg) {
  LogJob *j = arg;
  j->seq = log_put(j->lg, j->c, j->b, j->upsert);
  return NULL;
}

#define LOG_THREAD_BYTES ((size_t)1 << 20)   /* a batch this big writes its log on a second thread */

static int replaces_any(const Collection *c, const Batch *b) {
  for (int i = 0; i < b->n; i++) if (store_find(c, b->ids[i], bytes_len(b->ids[i])) >= 0) return 1;
  return 0;
}

/* A batch of new records is logged while it is applied, and taken back out
 * (they are the newest rows) if the log refuses it.  A batch that replaces
 * records is logged first and applied only once the log has it, so that a
 * refused write leaves memory exactly as it was.  Either way the batch
 * gives up what the collection took (or freed). */
static uint64_t put_logged(Collection *c, Batch *b, int upsert) {
  Log *lg = c->log;
  LogJob job = {lg, c, b, upsert, 0};
  if (upsert && replaces_any(c, b)) {
    log_job(&job);
    if (job.seq) { store_apply(c, b, NULL); batch_disown(b); }
    return job.seq;
  }
  pthread_t writer;
  int threaded = (size_t)b->n * (size_t)b->dim * sizeof(float) >= LOG_THREAD_BYTES &&
                 pthread_create(&writer, NULL, log_job, &job) == 0;
  if (!threaded) log_job(&job);
  size_t before = c->rows;
  store_apply(c, b, NULL);                  /* both only read the batch */
  if (threaded) pthread_join(writer, NULL);
  if (job.seq == 0) store_truncate(c, before);
  batch_disown(b);
  return job.seq;
}

static void run_put(Op *op) {
  Collection *c = op->c;
  Batch *b = op->batch;
  int err = 0, at = 0;
  pthread_rwlock_wrlock(&c->lock);
  int rc = store_check(c, b, op->upsert, &err, &at);
  if (rc == 0) {
    if (c->log) {
      size_t live = c->live_bytes;
      wait_durable(op, c->log, put_logged(c, b, op->upsert));
      log_account(c->log, (int64_t)c->live_bytes - (int64_t)live);
    } else {
      store_apply(c, b, NULL);
      batch_disown(b);
    }
    op->result = b->n;
  }
  pthread_rwlock_unlock(&c->lock);
  if (rc == 0) return;
  char msg[256];
  if (err == PUT_NOMEM) { op_fail(op, "invalid_argument", "out of memory"); return; }
  snprintf(msg, sizeof msg, err == PUT_TWICE ? "record %d: id '%.100s' is given twice in the batch (nothing was inserted)"
                                             : "record %d: id '%.100s' already exists (nothing was inserted)",
           at + 1, b->ids[at]);
  op_fail(op, err == PUT_TWICE ? "invalid_argument" : "conflict", msg);
}

/* the indices selected by ids (existing ones) or by filter, within lock */
static size_t select_rows(Op *op, size_t **rows) {
  Collection *c = op->c;
  size_t n = 0, cap = op->ids ? (size_t)op->nids : c->count;
  *rows = malloc((cap ? cap : 1) * sizeof **rows);
  if (!*rows) return 0;
  if (op->ids) {
    for (int i = 0; i < op->nids; i++) {
      long at = store_find(c, op->ids[i], bytes_len(op->ids[i]));
      if (at >= 0 && (!op->filter || filter_match(op->filter, &c->recs[at].meta))) (*rows)[n++] = (size_t)at;
    }
  } else {
    for (size_t i = 0; i < c->rows; i++)
      if (store_row_live(c, i) && (!op->filter || filter_match(op->filter, &c->recs[i].meta))) (*rows)[n++] = i;
  }
  return n;
}

static void run_get(Op *op) {
  Collection *c = op->c;
  size_t *rows;
  pthread_rwlock_rdlock(&c->lock);
  size_t n = select_rows(op, &rows);
  size_t from = op->offset > 0 ? (size_t)op->offset : 0;
  size_t count = from < n ? n - from : 0;
  if (op->limit >= 0 && (size_t)op->limit < count) count = (size_t)op->limit;
  op->out = calloc(count ? count : 1, sizeof *op->out);
  if (op->out) {
    for (size_t i = 0; i < count; i++) outrec_fill(op, &op->out[i], rows[from + i]);
    op->nout = count;
  }
  pthread_rwlock_unlock(&c->lock);
  free(rows);
}

static int cmp_desc(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Deleting is logged first: a delete the log refuses changes nothing. */
/* Deletes leave tombstones; once they outweigh the live rows, the rows
 * move down and the index is told where each went.  (With no memory for
 * that map, an index that needs it is rebuilt instead.) */
static void compact_rows_if_due(Collection *c) {
  if (!store_compact_due(c)) return;
  const IndexType *t = c->index->type;
  size_t old_rows = c->rows, *map = t->moved ? malloc(old_rows * sizeof *map) : NULL;
  store_compact_rows(c, map);
  if (t->moved && map) t->moved(c->index, c, map, old_rows);
  else if (t->moved) {
    Index *fresh = t->build(c);
    if (fresh) { index_free(c->index); c->index = fresh; }
  }
  free(map);
}

static void run_delete(Op *op) {
  Collection *c = op->c;
  size_t *rows;
  Log *lg = c->log;
  pthread_rwlock_wrlock(&c->lock);
  size_t n = select_rows(op, &rows);
  qsort(rows, n, sizeof *rows, cmp_desc);
  size_t uniq = 0;                             /* an id given twice is one row, deleted once */
  for (size_t i = 0; i < n; i++) if (i == 0 || rows[i] != rows[uniq - 1]) rows[uniq++] = rows[i];
  n = uniq;
  int logged = 1;
  if (lg && n) {
    uint64_t seq = 0;
    char **ids = malloc(n * sizeof *ids);
    if (ids) {
      for (size_t i = 0; i < n; i++) ids[i] = c->recs[rows[i]].id;
      seq = log_delete(lg, c->name, ids, n);
      free(ids);
    }
    wait_durable(op, lg, seq);
    logged = seq != 0;
  }
  size_t live = c->live_bytes;
  if (logged) {
    for (size_t i = 0; i < n; i++) {
      if (c->index->type->remove) c->index->type->remove(c->index, c, rows[i]);
      store_delete_index(c, rows[i]);
    }
    compact_rows_if_due(c);
  }
  if (lg) log_account(lg, (int64_t)c->live_bytes - (int64_t)live);
  pthread_rwlock_unlock(&c->lock);
  free(rows);
  op->result = (long)n;
}

/* top_k is cut to the collection's size under the lock, before anything
 * is sized by it: a top_k above the size gives every record */
static void run_search(Op *op) {
  Collection *c = op->c;
  pthread_rwlock_rdlock(&c->lock);
  size_t k = op->k < c->count ? op->k : c->count;
  op->k = k;
  size_t slots = k ? k : 1;
  int too_big = (size_t)op->nq > SIZE_MAX / sizeof *op->out / slots || (size_t)STORE_QBLOCK > SIZE_MAX / sizeof(Hit) / slots;
  Hit *hits = NULL;
  if (!too_big) {
    op->out = calloc((size_t)op->nq * slots, sizeof *op->out);
    op->nhits = calloc((size_t)(op->nq ? op->nq : 1), sizeof *op->nhits);
    hits = malloc((size_t)STORE_QBLOCK * slots * sizeof *hits);
  }
  if (!op->out || !op->nhits || !hits) {
    pthread_rwlock_unlock(&c->lock);
    free(hits);
    op->nq = 0;
    op_fail(op, "invalid_argument", too_big ? "top_k times the number of queries is too large"
                                            : "out of memory (top_k too large?)");
    return;
  }
  if (c->dim && op->qdim != c->dim) {
    char msg[128];
    snprintf(msg, sizeof msg, "query has %d dimensions, the collection %d", op->qdim, c->dim);
    op_fail(op, "dimension_mismatch", msg);
    op->nq = 0;
  }
  if (c->metric == METRIC_COSINE)
    for (int q = 0; q < op->nq; q++) store_normalize(op->queries + (size_t)q * op->qdim, op->qdim);
  for (int q0 = 0; q0 < op->nq && c->dim && k; q0 += STORE_QBLOCK) {     /* a block of queries a pass */
    int nb = op->nq - q0 < STORE_QBLOCK ? op->nq - q0 : STORE_QBLOCK;
    size_t nh[STORE_QBLOCK];
    index_search(c->index, c, op->queries + (size_t)q0 * op->qdim, nb, k, op->filter, hits, nh);
    for (int b = 0; b < nb; b++) {
      for (size_t j = 0; j < nh[b]; j++) {
        OutRec *o = &op->out[(size_t)(q0 + b) * k + j];
        outrec_fill(op, o, hits[(size_t)b * k + j].index);
        o->distance = hits[(size_t)b * k + j].distance;
      }
      op->nhits[q0 + b] = nh[b];
    }
  }
  pthread_rwlock_unlock(&c->lock);
  free(hits);
}

/* the collections a file held get their index, here on the pool (an index
 * may take a while to build) */
static void index_replayed(Op *op) {
  Replay *rp = &op->opened.replay;
  for (int i = 0; i < rp->ncols; i++) {
    Collection *c = rp->cols[i];
    if (store_compact_due(c)) store_compact_rows(c, NULL);   /* no index yet to tell */
    if (!(c->index = index_exact.build(c))) {
      for (int j = 0; j < i; j++) { index_free(rp->cols[j]->index); rp->cols[j]->index = NULL; }
      log_close(op->log);
      op->log = NULL;
      op_fail(op, "unavailable", "out of memory for the collections' indexes");
      return;
    }
  }
}

void op_work(uv_work_t *req) {
  Op *op = req->data;
  switch (op->kind) {
    case OP_PUT: run_put(op); break;
    case OP_GET: run_get(op); break;
    case OP_DELETE: run_delete(op); break;
    case OP_COUNT:
      pthread_rwlock_rdlock(&op->c->lock);
      op->result = (long)op->c->count;
      pthread_rwlock_unlock(&op->c->lock);
      break;
    case OP_SEARCH: run_search(op); break;
    case OP_OPEN: {
      const char *code = NULL;
      op->log = log_open(op->path, op->recover, &op->opened, &code, op->err_msg, sizeof op->err_msg);
      if (!op->log) snprintf(op->err_code, sizeof op->err_code, "%s", code);
      else index_replayed(op);
      break;
    }
    case OP_META: {
      uint64_t seq = op->meta_kind == LOG_CREATE
        ? log_create(op->log, op->name, op->meta_dim, op->meta_metric) : log_drop(op->log, op->name);
      wait_durable(op, op->log, seq);
      break;
    }
    case OP_COMPACT: {                       /* only when the dead space is worth it */
      op->result = 0;
      if (!op->skip && log_compact_due(op->log, op->closing ? COMPACT_MIN_DEAD_CLOSING : COMPACT_MIN_DEAD)) {
        int rc = log_compact(op->log, op->cols, op->ncols, op->epoch);
        if (rc < 0) op_fail(op, "unavailable", "compaction failed (the file is as it was)");
        else op->result = rc == 0;
      }
      break;
    }
  }
}
