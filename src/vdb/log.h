/* log.h - the `file:` backend's durability: an append-only log of
 * checksummed records (the format is in replay.h), group commit, opening
 * (with its refusals and repair) and compaction.
 *
 * A write goes to the file at once, while its collection's write lock is
 * held (so the log's order is the apply order, and a bulk insert's vectors
 * are written from the batch, not copied); its operation completes only
 * when an fsync after it has returned.  One flush (fsync) runs at a time
 * and covers every record written before it started, so concurrent
 * writers share fsyncs (group commit). */
#ifndef VDB_LOG_H
#define VDB_LOG_H

#include <pthread.h>
#include <stdint.h>
#include "store.h"
#include "replay.h"

typedef struct Log {
  int fd;
  char *path;
  pthread_mutex_t wm;        /* writing: one record at a time, in order */
  pthread_mutex_t m;         /* the fields below */
  uint64_t written, durable; /* sequence numbers of records */
  int broken;
  uint64_t bytes;            /* the file's size */
  uint64_t fsyncs, records;  /* counters, for tests and benchmarks */
  uint64_t live;             /* what the live records take in a snapshot */
  uint64_t epoch;            /* changes with every creation or drop begun or ended */
  uint64_t compactions;
  int flushing;              /* an fsync runs on fd (compaction waits before swapping it) */
  pthread_cond_t flushed;
  int refs;                  /* loop thread only */
  void *waiters;             /* loop thread only: operations waiting to be durable */
  int flush_running;         /* loop thread only */
  int meta_busy;             /* loop thread only: creations and drops in flight */
  int shut;                  /* the file is closed (the lock released) */
} Log;

/* What opening found, beside the collections (out->cols) */
typedef struct Opened {
  Replay replay;
  char *kept;                /* the original file, kept beside a rewritten one (or NULL) */
  char report[600];          /* what was dropped or skipped, or "" */
} Opened;

/* Open (creating) and lock the file, and read it.  NULL on failure, with
 * err_code "unavailable" (locked, unreadable), "corrupt" (not a vdb store,
 * a newer format, or damaged and not recover) or "invalid_argument". */
Log *log_open(const char *path, int recover, Opened *out, const char **err_code, char *err, size_t errlen);
void opened_free(Opened *o);
void log_close(Log *lg);          /* frees (refs reached 0) */
void log_shutdown(Log *lg);       /* closes the file and releases the lock now */

/* Append (caller holds the collection's write lock); returns the sequence,
 * or 0 if the log refused it (out of memory, I/O error: it is broken from
 * then on).  log_put writes batch b for collection c (the batch must still
 * own its records). */
uint64_t log_put(Log *lg, const Collection *c, const Batch *b, int upsert);
uint64_t log_delete(Log *lg, const char *coll, char *const *ids, size_t n);
uint64_t log_create(Log *lg, const char *name, int dim, int metric);
uint64_t log_drop(Log *lg, const char *name);
/* fsync everything written (one flush at a time); 0 or -1 */
int log_flush(Log *lg);
/* is seq durable: 1 yes, 0 not yet, -1 never (the log is broken) */
int log_durable(Log *lg, uint64_t seq);

/* live bytes changed by delta (a write applied; caller holds the collection's lock) */
void log_account(Log *lg, int64_t delta);
/* is the log's dead space worth a compaction: more than its live data and
 * more than min_dead bytes (COMPACT_MIN_DEAD while the store is in use,
 * COMPACT_MIN_DEAD_CLOSING when it closes) */
#define COMPACT_MIN_DEAD ((uint64_t)256 << 10)
#define COMPACT_MIN_DEAD_CLOSING ((uint64_t)64 << 10)
int log_compact_due(Log *lg, uint64_t min_dead);

/* Rewrite the file as a snapshot of cols (each read under its read lock,
 * so reads go on and only writes to the collection being read wait), then
 * the records appended meanwhile, and rename it into place.  Writers wait
 * only for that copy of the tail.  epoch: lg->epoch when cols were taken;
 * if a creation or drop came since, nothing is changed.  0 done, 1 given
 * up (epoch), -1 failed (the file as it was). */
int log_compact(Log *lg, Collection *const *cols, int ncols, uint64_t epoch);

#endif
