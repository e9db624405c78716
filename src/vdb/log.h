/* log.h - the `file:` backend's durability: an append-only log of
 * checksummed records, group commit, replay and compaction.
 *
 * Record: u32 payload length | u32 crc32(payload) | payload, little-endian.
 * Payloads: CREATE(name, dim, metric), PUT(collection, records as stored),
 * DELETE(collection, ids), DROP(name).  A write is appended while its
 * collection's write lock is held (so the log's order is the apply order),
 * and its operation completes only when a flush covering it has been
 * fsynced.  One flush runs at a time and writes out everything queued by
 * then, so concurrent writers share one fsync (group commit). */
#ifndef VDB_LOG_H
#define VDB_LOG_H

#include <pthread.h>
#include <stdint.h>
#include "store.h"

typedef struct Log {
  int fd;
  char *path;
  pthread_mutex_t m;
  pthread_cond_t cv;
  uint64_t queued, durable;  /* sequence numbers */
  int flushing, broken;
  char *buf;                 /* bytes queued, not yet written */
  size_t len, cap;
  uint64_t bytes;            /* the file's size */
  uint64_t fsyncs, records;  /* counters, for tests and benchmarks */
  int refs;                  /* loop thread only */
  void *waiters;             /* loop thread only: operations waiting to be durable */
  int flush_running;         /* loop thread only */
  int shut;                  /* the file is closed (the lock released) */
} Log;

enum { LOG_CREATE = 1, LOG_PUT, LOG_DELETE, LOG_DROP };

/* what replay found: collections rebuilt, and a report of a bad tail */
typedef struct Replay {
  Collection **cols;
  int ncols;
  char report[256];          /* empty if the file was clean */
} Replay;

/* open (creating) and lock the file, replay it; NULL with err on failure.
 * err_code is "unavailable" (locked, unreadable) or "invalid_argument". */
Log *log_open(const char *path, Replay *out, const char **err_code, char *err, size_t errlen);
void log_close(Log *lg);          /* frees (refs reached 0) */
void log_shutdown(Log *lg);       /* closes the file and releases the lock now */
void replay_free(Replay *r);

/* append (caller holds the collection's write lock); returns the sequence */
uint64_t log_put(Log *lg, const Collection *c, const size_t *rows, size_t n, int upsert);
uint64_t log_delete(Log *lg, const char *coll, char *const *ids, size_t n);
uint64_t log_create(Log *lg, const char *name, int dim, int metric);
uint64_t log_drop(Log *lg, const char *name);
/* write out and fsync everything queued (one flush at a time); 0 or -1 */
int log_flush(Log *lg);
/* is seq durable: 1 yes, 0 not yet, -1 never (the log is broken) */
int log_durable(Log *lg, uint64_t seq);

/* rewrite the file as the live state of cols (atomic rename); 0 or -1 */
int log_compact(Log *lg, Collection *const *cols, int ncols);

#endif
