/* replay_fuzz.c - libFuzzer target for the file: loader (src/vdb/replay.c).
 *
 * Any bytes at all: reading them must not crash, hang, leak or read memory
 * it should not (the build adds ASan and UBSan), and what it reports must
 * hold together: a file it calls a store has every byte accounted for
 * (records kept, damage skipped, or an incomplete tail), reading is
 * deterministic, and recover keeps at least what a plain open keeps.
 *   make fuzz              (FUZZ_SECONDS=300 by default; corpus in fuzz/corpus) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vdb/replay.h"

static uint64_t live(const Replay *rp) {
  uint64_t n = 0;
  for (int i = 0; i < rp->ncols; i++) n += rp->cols[i]->count;
  return n;
}

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "replay_fuzz: %s\n", #cond); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Replay a, b, r;
  int ka = replay_image(data, size, 0, &a);
  int kb = replay_image(data, size, 0, &b);
  int kr = replay_image(data, size, 1, &r);
  CHECK(ka == kb && ka == kr);
  if (ka == REPLAY_STORE) {
    CHECK(a.records == b.records && a.damaged == b.damaged && live(&a) == live(&b));
    CHECK(a.end <= size && a.end + a.torn == size);
    CHECK(a.damaged_bytes <= size);
    CHECK(a.damaged || a.torn || a.end == size);
    CHECK(r.records >= a.records);
    CHECK(r.damaged <= a.damaged);
    if (!a.damaged) CHECK(r.records == a.records && live(&r) == live(&a));
  }
  replay_free(&a);
  replay_free(&b);
  replay_free(&r);
  return 0;
}
