/* index.h - what answers a collection's searches.
 *
 * Every search goes through a collection's Index.  The exact scan
 * (exact.c) is the first kind: it keeps nothing of its own and reads the
 * store's rows.  An approximate one (an HNSW graph) would keep its
 * structure here and be told of every change.  Rows are the store's
 * record indices, which stay put while a record lives (store.h); when the
 * store moves its live rows down (store_compact_rows) the index is told
 * where each went.  Every function runs on the thread pool under the
 * collection's lock: search under the read lock, the rest under the write
 * lock.  Nothing here touches a lua_State. */
#ifndef VDB_INDEX_H
#define VDB_INDEX_H

#include <stdio.h>
#include "../store.h"

typedef struct Index Index;

typedef struct IndexType {
  const char *name;
  /* a new index over the collection's live rows, or NULL (no memory) */
  Index *(*build)(const Collection *c);
  /* the row now holds a new or replaced record: 0, or -1 (no memory);
   * NULL: this kind has nothing to do on a write */
  int (*add)(Index *ix, const Collection *c, size_t row);
  /* the row's record is gone (NULL: nothing to do) */
  void (*remove)(Index *ix, const Collection *c, size_t row);
  /* the rows moved: old_to_new[old] (SIZE_MAX for none); NULL: nothing to do */
  void (*moved)(Index *ix, const Collection *c, const size_t *old_to_new, size_t old_rows);
  /* the k nearest live rows passing f (NULL: all) to each of nq queries
   * (at most STORE_QBLOCK, dim floats each): hits[q * k ...], nh[q] of them,
   * best first */
  void (*search)(const Index *ix, const Collection *c, const float *qs, int nq, size_t k,
                 const Filter *f, Hit *hits, size_t *nh);
  /* its own state to a file and back (NULL: it keeps none; load = build) */
  int (*save)(const Index *ix, FILE *out);
  Index *(*load)(const Collection *c, FILE *in);
  void (*free)(Index *ix);
} IndexType;

struct Index { const IndexType *type; };

extern const IndexType index_exact;

/* the calls the operations make, whatever the kind */
static inline void index_search(const Index *ix, const Collection *c, const float *qs, int nq, size_t k,
                                const Filter *f, Hit *hits, size_t *nh) {
  ix->type->search(ix, c, qs, nq, k, f, hits, nh);
}
static inline int index_wants_writes(const Index *ix) { return ix->type->add != NULL; }
static inline void index_free(Index *ix) { if (ix) ix->type->free(ix); }

#endif
