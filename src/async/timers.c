/*
 * timers.c - which sleeps and call_later handles fall due, and when.
 *
 * Programs mostly sleep a few fixed delays, so timers mostly arrive in the
 * order they fall due.  Those go to a FIFO ring, where adding and taking
 * touch nothing but the entry; a timer that would fall due before the
 * ring's last one goes to a binary heap ordered by (due, seq).  The next
 * timer is the earlier of the two fronts.
 *
 * Each task or handle records where its entry is (timer_pos), so that a
 * cancel finds it: >= 0 a heap index, <= -2 the ring's place -2 - pos, TIMER_NONE
 * when it is not scheduled.  A ring entry cancelled in the middle becomes a
 * hole (obj NULL): holes at either end are dropped at once, and the ring is
 * compacted when they outnumber the live entries, so a program that keeps
 * cancelling long timeouts does not pile them up.
 */
#include <stdlib.h>
#include "core.h"

static int *pos_of(const TimerEntry *e) {
  return e->is_task ? &((Task *)e->obj)->timer_pos : &((Handle *)e->obj)->timer_pos;
}

static int entry_less(const TimerEntry *a, const TimerEntry *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

/* ---- the heap ----------------------------------------------------------- */

static void heap_place(Timers *tm, int i, const TimerEntry *e) {
  tm->heap[i] = *e;
  *pos_of(e) = i;
}

static void sift_up(Timers *tm, int i) {
  TimerEntry e = tm->heap[i];
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!entry_less(&e, &tm->heap[p])) break;
    heap_place(tm, i, &tm->heap[p]);
    i = p;
  }
  heap_place(tm, i, &e);
}

static void sift_down(Timers *tm, int i) {
  TimerEntry e = tm->heap[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= tm->heap_n) break;
    if (c + 1 < tm->heap_n && entry_less(&tm->heap[c + 1], &tm->heap[c])) c++;
    if (!entry_less(&tm->heap[c], &e)) break;
    heap_place(tm, i, &tm->heap[c]);
    i = c;
  }
  heap_place(tm, i, &e);
}

static int heap_add(Timers *tm, const TimerEntry *e) {
  if (tm->heap_n == tm->heap_cap) {
    int cap = tm->heap_cap ? tm->heap_cap * 2 : 64;
    TimerEntry *h = realloc(tm->heap, (size_t)cap * sizeof *h);
    if (!h) return -1;
    tm->heap = h; tm->heap_cap = cap;
  }
  tm->heap[tm->heap_n] = *e;
  sift_up(tm, tm->heap_n++);
  return 0;
}

static void heap_take(Timers *tm, int i) {
  *pos_of(&tm->heap[i]) = TIMER_NONE;
  if (i != --tm->heap_n) {
    heap_place(tm, i, &tm->heap[tm->heap_n]);
    sift_down(tm, i);
    sift_up(tm, i);
  }
}

/* ---- the ring ----------------------------------------------------------- */

#define RING_AT(tm, i) (&(tm)->ring[((tm)->head + (i)) & ((tm)->cap - 1)])

static void ring_place(Timers *tm, unsigned pos, const TimerEntry *e) {
  tm->ring[pos] = *e;
  if (e->obj) *pos_of(e) = -2 - (int)pos;
}

static int ring_add(Timers *tm, const TimerEntry *e) {
  if (tm->n == tm->cap) {
    unsigned cap = tm->cap ? tm->cap * 2 : 64;
    if (cap > (unsigned)INT32_MAX / 2) return -1;
    TimerEntry *r = realloc(tm->ring, (size_t)cap * sizeof *r);
    if (!r) return -1;
    tm->ring = r;
    /* entries that had wrapped round to the start move past the old end */
    for (unsigned s = 0; s < tm->head; s++) ring_place(tm, tm->cap + s, &tm->ring[s]);
    tm->cap = cap;
  }
  ring_place(tm, (tm->head + tm->n++) & (tm->cap - 1), e);
  return 0;
}

/* drop holes at both ends: a non-empty ring starts and ends live */
static void ring_trim(Timers *tm) {
  while (tm->n > 0 && !tm->ring[tm->head].obj) {
    tm->head = (tm->head + 1) & (tm->cap - 1); tm->n--; tm->dead--;
  }
  while (tm->n > 0 && !RING_AT(tm, tm->n - 1)->obj) { tm->n--; tm->dead--; }
}

static void ring_compact(Timers *tm) {
  unsigned j = 0;
  for (unsigned i = 0; i < tm->n; i++) {
    TimerEntry *e = RING_AT(tm, i);
    if (e->obj) ring_place(tm, (tm->head + j++) & (tm->cap - 1), e);
  }
  tm->n = j; tm->dead = 0;
}

static void ring_take(Timers *tm, unsigned slot) {
  TimerEntry *e = &tm->ring[slot];
  *pos_of(e) = TIMER_NONE;
  e->obj = NULL;
  tm->dead++;
  ring_trim(tm);
  if (tm->dead > 64 && tm->dead > tm->n / 2) ring_compact(tm);
}

/* ---- both --------------------------------------------------------------- */

static TimerEntry *timer_front(Timers *tm) {
  TimerEntry *h = tm->heap_n ? &tm->heap[0] : NULL;
  TimerEntry *r = tm->n ? &tm->ring[tm->head] : NULL;
  if (!h || !r) return h ? h : r;
  return entry_less(r, h) ? r : h;
}

int timer_add(Timers *tm, uint64_t due, int is_task, void *obj) {
  TimerEntry e = { due, tm->seq++, (unsigned char)is_task, obj };
  int in_ring = tm->n == 0 || due >= RING_AT(tm, tm->n - 1)->due;
  if ((in_ring ? ring_add(tm, &e) : heap_add(tm, &e)) != 0) return -1;
  return timer_front(tm)->obj == obj;
}

int timer_remove(Timers *tm, int pos) {
  TimerEntry *front = timer_front(tm);
  int was_front;
  if (pos >= 0) {
    was_front = front == tm->heap + pos;
    heap_take(tm, pos);
  } else {
    was_front = front == tm->ring + (-2 - pos);
    ring_take(tm, (unsigned)(-2 - pos));
  }
  return was_front;
}

int timer_next_due(Timers *tm, uint64_t *due) {
  TimerEntry *e = timer_front(tm);
  if (!e) return 0;
  *due = e->due;
  return 1;
}

int timer_pop_due(Timers *tm, uint64_t now, TimerEntry *out) {
  TimerEntry *e = timer_front(tm);
  if (!e || e->due > now) return 0;
  *out = *e;
  if (tm->heap_n && e == tm->heap) heap_take(tm, 0);
  else ring_take(tm, tm->head);
  return 1;
}

int timer_count(const Timers *tm) { return tm->heap_n + (int)(tm->n - tm->dead); }

void timers_free(Timers *tm) {
  free(tm->heap);
  free(tm->ring);
}
