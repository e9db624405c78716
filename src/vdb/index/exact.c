/* exact.c - the exact scan as an index: every live row scored against the
 * query (store.c's vectorised kernels), the k best kept.  It holds no state
 * of its own, so writes, moves, save and load have nothing to do. */
#include <stdlib.h>
#include "index.h"

static Index *exact_build(const Collection *c) {
  (void)c;
  Index *ix = malloc(sizeof *ix);
  if (ix) ix->type = &index_exact;
  return ix;
}

static void exact_search(const Index *ix, const Collection *c, const float *qs, int nq, size_t k,
                         const Filter *f, Hit *hits, size_t *nh) {
  (void)ix;
  if (nq == 1) nh[0] = store_search(c, qs, k, f, hits);      /* one query: the single-query kernel */
  else store_search_block(c, qs, nq, k, f, hits, nh);
}

static void exact_free(Index *ix) { free(ix); }

const IndexType index_exact = {
  "exact", exact_build, NULL, NULL, NULL, exact_search, NULL, NULL, exact_free,
};
