/* ops.h - vdb's operations: one call's work, done on libuv's thread pool.
 *
 * The bindings (vdb.c) read a call's arguments into an Op on the loop
 * thread and queue it; ops.c does the work under the collection's lock,
 * touching no Lua; for a file: store, commit.c makes its completion wait
 * for the fsync that covers its log record (group commit); the bindings
 * then settle the call's future from the Op. */
#ifndef VDB_OPS_H
#define VDB_OPS_H

#include <uv.h>
#include "../../include/lua_async.h"
#include "store.h"
#include "filter.h"
#include "log.h"

/* One per Lua state, shared by its operations.  When the state closes with
 * operations still in flight (a host that owns the loop, or lua_close
 * without async.run), their completions may run later: they then free
 * their C data and touch neither Lua nor async (closing), and the library
 * is pinned in memory so that their code is still there. */
typedef struct Module { int closing; int refs; } Module;

enum { OP_PUT, OP_GET, OP_DELETE, OP_COUNT, OP_SEARCH, OP_OPEN, OP_META, OP_COMPACT };

typedef struct OutRec {      /* a record or hit, copied out for the loop thread */
  char *id;
  float *vec;
  Meta meta;
  char *doc;
  float distance;
} OutRec;

typedef struct Op {
  /* every kind */
  uv_work_t req;
  int kind;
  Module *mod;
  uv_loop_t *loop;
  Collection *c;                     /* (open, meta, compact: none) */
  const lua_async_api *api;
  lua_async_future *fut;
  void (*finish)(struct Op *op);     /* settles fut on the loop thread (vdb.c) */
  long result;
  char err_code[32], err_msg[700];
  uint64_t seq;                      /* file: the log record to wait for */
  struct Op *next;                   /* in the log's list of waiters (commit.c) */
  /* put */
  Batch *batch;
  int anchor;                        /* registry ref keeping the batch's borrowed strings */
  int upsert, learnt_dim;
  /* get, delete: by ids or a filter; get and search: what to copy out */
  char **ids; int nids;
  Filter *filter;                    /* (search too) */
  long limit, offset;
  int inc_vec, inc_meta, inc_doc;
  OutRec *out; size_t nout;          /* get; search: nq * k slots */
  /* search */
  float *queries; int nq, qdim; size_t k;
  size_t *nhits;                     /* hits per query */
  /* open, meta, compact: the file */
  Log *log;
  char *path; int recover; Opened opened;          /* open */
  char *name; int meta_kind, meta_dim, meta_metric; /* meta: a create or drop record for name */
  Collection **cols; int ncols;                    /* compact: what to snapshot */
  uint64_t epoch; int skip, closing;  /* compact: the log's epoch when cols were taken; a creation or drop in flight */
} Op;

static inline void log_unref(Log *lg) { if (lg && --lg->refs == 0) log_close(lg); }

/* ops.c */
void op_fail(Op *op, const char *code, const char *msg);
void op_work(uv_work_t *req);                /* the thread pool's half of every kind */

/* commit.c: wait, off the thread pool, for the fsync that covers op->seq */
void commit_wait(Op *op, Log *lg);

#endif
