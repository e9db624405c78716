/*
 * commit.c - group commit: one flush job at a time on the thread pool, for
 * every operation waiting for its log record to be durable.  Writers that
 * wait together share one fsync.
 */
#include <stdlib.h>
#include "ops.h"

typedef struct Flush { uv_work_t req; Log *lg; uv_loop_t *loop; } Flush;

static void flush_work(uv_work_t *req) {
  Flush *f = req->data;
  log_flush(f->lg);
}

static void start_flush(Log *lg, uv_loop_t *loop);

static void flush_done(uv_work_t *req, int status) {
  Flush *f = req->data;
  Log *lg = f->lg;
  (void)status;
  lg->flush_running = 0;
  Op *keep = NULL, *op = lg->waiters;
  lg->waiters = NULL;
  while (op) {
    Op *next = op->next;
    int d = log_durable(lg, op->seq);
    if (d == 0) { op->next = keep; keep = op; }
    else {
      if (d < 0) op_fail(op, "unavailable", "writing the log failed (disk full or I/O error): the store now refuses writes");
      op->finish(op);
    }
    op = next;
  }
  lg->waiters = keep;
  if (keep) start_flush(lg, f->loop);
  log_unref(lg);
  free(f);
}

static void start_flush(Log *lg, uv_loop_t *loop) {
  if (lg->flush_running) return;
  Flush *f = calloc(1, sizeof *f);
  if (!f) return;                             /* retried by the next write */
  f->lg = lg; f->loop = loop;
  f->req.data = f;
  lg->refs++;
  lg->flush_running = 1;
  if (uv_queue_work(loop, &f->req, flush_work, flush_done) != 0) {
    lg->flush_running = 0; lg->refs--; free(f);
  }
}

void commit_wait(Op *op, Log *lg) {
  op->next = lg->waiters;
  lg->waiters = op;
  start_flush(lg, op->loop);
}
