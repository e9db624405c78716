/* store.h - the embedded vector store: plain C data, no Lua.
 *
 * A collection keeps its vectors in one contiguous float32 array (cosine
 * vectors are normalised on insert, as Chroma does), ids in an open
 * addressing hash map, flat metadata as tagged C values.  Every function
 * here runs on libuv's thread pool under the collection's lock (readers
 * share it, writers own it); nothing here touches a lua_State. */
#ifndef VDB_STORE_H
#define VDB_STORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Byte strings: ids, collection names, metadata keys and strings, and
 * documents keep every byte, NULs included.  One is a char * to its bytes,
 * NUL-terminated for printing, with the length stored just before them:
 * bytes_len() reads it.  Made by bytes_new/bytes_dup, freed by bytes_free
 * (never free()); NULL is allowed wherever free(NULL) would be. */
char *bytes_new(const char *p, size_t n);
char *bytes_dup(const char *b);
void  bytes_free(char *b);
static inline size_t bytes_len(const char *b) { size_t n; memcpy(&n, b - sizeof n, sizeof n); return n; }
static inline int bytes_eq(const char *a, const char *b) {
  size_t n = bytes_len(a);
  return n == bytes_len(b) && memcmp(a, b, n) == 0;
}
/* b equals the n bytes at p */
static inline int bytes_is(const char *b, const char *p, size_t n) { return bytes_len(b) == n && memcmp(b, p, n) == 0; }

/* the largest dimension a collection takes (4 MiB a vector) */
#define STORE_MAX_DIM (1 << 20)

void bytes_list_free(char **list, int n);   /* n byte strings and the list */

enum { METRIC_L2 = 0, METRIC_COSINE, METRIC_IP };
enum { MV_STR = 0, MV_NUM, MV_BOOL };

typedef struct MetaKV {      /* key and str are byte strings */
  char *key;
  int type;
  double num;                /* MV_NUM, MV_BOOL (0/1) */
  char *str;                 /* MV_STR */
} MetaKV;

typedef struct Meta { int n; MetaKV *kv; } Meta;

typedef struct Record {      /* id and doc are byte strings */
  char *id;
  Meta meta;
  char *doc;                 /* or NULL */
} Record;

typedef struct Filter Filter;   /* filter.c */

typedef struct Collection {
  char *name;                /* a byte string */
  int dim;                   /* 0 until the first insert */
  int metric;
  float *vecs;               /* rows x dim */
  float *sqnorms;            /* rows: |x|^2, for the batched l2 kernel */
  Record *recs;              /* rows; a deleted record's row is a tombstone (id NULL) */
  size_t rows, cap;          /* rows in use, live or dead; room for cap */
  size_t count, dead;        /* live records; tombstones among the rows */
  size_t live_bytes;         /* what the records take in a snapshot (the log's dead space is the rest) */
  size_t *buckets;           /* the id map: open addressing, row + 1 (0: empty, SIZE_MAX: deleted) */
  size_t nbuckets, used;
  pthread_rwlock_t lock;
  int refs;                  /* Lua handles and operations in flight (loop thread only) */
  int dim_learning;          /* inserts in flight checked against a dim no insert has fixed yet (loop thread) */
  int dim_settled;           /* dim is fixed for good (loop thread) */
  struct Log *log;           /* file: backend, or NULL (memory:) */
  struct Index *index;       /* what answers its searches (index/index.h): made and freed above the store */
} Collection;

/* a batch of records to insert, validated on the loop thread */
typedef struct Batch {
  int n, dim;
  char **ids;                /* byte strings, as docs */
  float *vecs;               /* n x dim, or NULL when every row is borrowed */
  int adopted;               /* vecs became a collection's own array */
  const char **src;          /* or NULL: row i's dim floats (little-endian), read in
                                place from a Lua string the caller keeps alive, or
                                pointing into vecs */
  Meta *metas;               /* n, each possibly empty */
  char **docs;               /* n, each possibly NULL */
} Batch;

/* packed vectors and the log file are little-endian float32: on such a
 * host they are used as they are */
static inline int host_little_endian(void) { const uint16_t one = 1; return *(const unsigned char *)&one == 1; }

static inline const void *batch_row(const Batch *b, int i) {
  return b->src ? (const void *)b->src[i] : (const void *)(b->vecs + (size_t)i * b->dim);
}

typedef struct Hit { size_t index; float distance; } Hit;

Collection *store_new(const char *name, size_t namelen, int dim, int metric);
void store_free(Collection *c);
void batch_free(Batch *b);
void meta_free(Meta *m);
int  meta_copy(Meta *dst, const Meta *src);

/* writers (caller holds the write lock) */
long store_find(const Collection *c, const char *id, size_t len);     /* index or -1 */
/* Insert the batch, all or nothing: the count, or -1 with *err (and the
 * record's index in *at) when an id exists (upsert off), an id comes twice
 * in the batch, or memory runs out.  landed: n indices, or NULL. */
enum { PUT_EXISTS = 1, PUT_TWICE, PUT_NOMEM };
long store_put(Collection *c, Batch *b, int upsert, size_t *landed, int *err, int *at);
/* store_put in steps, so the log can be written while the batch is applied:
 * the checks (and memory), then the records in (cannot fail), then the
 * batch gives up what the collection now owns */
int  store_check(Collection *c, Batch *b, int upsert, int *err, int *at);
void store_apply(Collection *c, const Batch *b, size_t *landed);
void batch_disown(Batch *b);
/* A record's row stays where it is for as long as the record lives, so an
 * index can name it: a delete leaves a tombstone (rows at the end are
 * given back), and store_compact_rows moves the live rows down when the
 * dead ones are worth it, telling the caller where each went. */
static inline int store_row_live(const Collection *c, size_t i) { return c->recs[i].id != NULL; }
int  store_delete_index(Collection *c, size_t i);
void store_truncate(Collection *c, size_t from);
int  store_compact_due(const Collection *c);
/* old_to_new (rows entries, or NULL): each row's new index, SIZE_MAX for a
 * tombstone */
void store_compact_rows(Collection *c, size_t *old_to_new);

/* readers (caller holds at least the read lock) */
/* top-k by ascending distance among records passing f (NULL: all);
 * fills hits (capacity k), returns how many */
size_t store_search(const Collection *c, const float *q, size_t k, const Filter *f, Hit *hits);
#define STORE_QBLOCK 16          /* queries searched together in one pass */
void store_search_block(const Collection *c, const float *qs, int nq, size_t k, const Filter *f,
                        Hit *hits, size_t *nh);
void store_normalize(float *v, int dim);
int  store_finite(const void *v, int d);      /* no NaN or infinity among d floats at v */

/* filter.c */
int filter_match(const Filter *f, const Meta *m);
void filter_free(Filter *f);

#endif
