/*
 * sync.c - Semaphore, BoundedSemaphore, Lock and Queue (asyncio's rules).
 *
 * Each waiter is the waiting task itself, in a FIFO ring; whoever frees a
 * slot (release, put, get) wakes the first task still waiting there.  A
 * waiter that was cancelled leaves a stale entry, skipped when it reaches
 * the head.  `sem:acquire()`, `q:get()`, `q:put(x)` and `q:join()` return
 * coroutine objects over the C functions below, so they stay lazy, and the
 * common case (a free slot, an item ready) returns without suspending.
 */
#include <stdlib.h>
#include <string.h>
#include "core.h"

/* ---- a FIFO of Lua values in a table kept as a user value --------------- */

typedef struct Ring { int head, tail; } Ring;   /* items at [head, tail) */

static void ring_init(lua_State *L, int ud, int slot, Ring *r) {
  r->head = r->tail = 1;
  lua_newtable(L);
  lua_setiuservalue(L, ud, slot);
}

static int ring_len(const Ring *r) { return r->tail - r->head; }

static void ring_push(lua_State *L, int ud, int slot, Ring *r, int v) {
  v = lua_absindex(L, v);
  lua_getiuservalue(L, ud, slot);
  lua_pushvalue(L, v);
  lua_rawseti(L, -2, r->tail++);
  lua_pop(L, 1);
}

/* push the head (nil if empty) and remove it */
static void ring_pop(lua_State *L, int ud, int slot, Ring *r) {
  if (r->head == r->tail) { lua_pushnil(L); return; }
  lua_getiuservalue(L, ud, slot);
  lua_rawgeti(L, -1, r->head);
  lua_pushnil(L);
  lua_rawseti(L, -3, r->head++);
  lua_remove(L, -2);
  if (r->head == r->tail) r->head = r->tail = 1;   /* keep indices small */
}

/* Waiter rings: the waiting tasks themselves, in a C array, woken directly
 * with no future between.  An entry is stale once its task stopped waiting
 * there (cancelled, done: ring_owner cleared, its slot given up) or waits
 * again (a newer wait_id); stale entries are dropped when they reach the
 * head.  A pending task is kept alive by the loop, so an entry is
 * dereferenced only once the loop confirms it is still pending. */
typedef struct Waiter { Task *t; int slot; uint64_t wait_id; } Waiter;
typedef struct Waiters { Waiter *w; int head, tail, cap; } Waiters;   /* at [head, tail) */

static int wring_len(const Waiters *r) { return r->tail - r->head; }

static void wring_free(Waiters *r) { free(r->w); r->w = NULL; r->head = r->tail = r->cap = 0; }

/* the current task waits in r (raises if it cannot wait) */
static void wring_add(lua_State *L, Waiters *r, const void *owner) {
  if (r->tail == r->cap) {
    if (r->head > 0) {                        /* room at the front: slide down */
      memmove(r->w, r->w + r->head, (size_t)(r->tail - r->head) * sizeof *r->w);
      r->tail -= r->head; r->head = 0;
    } else {
      int cap = r->cap ? r->cap * 2 : 8;
      Waiter *w = realloc(r->w, (size_t)cap * sizeof *w);
      if (!w) luaL_error(L, "async: out of memory");
      r->w = w; r->cap = cap;
    }
  }
  Task *t = task_ring_wait(L, owner);
  r->w[r->tail++] = (Waiter){t, t->slot, t->wait_id};
}

static void wring_drop_head(Waiters *r) {
  if (++r->head == r->tail) r->head = r->tail = 0;
}

/* the first task still waiting in the ring (stale entries dropped), or NULL */
static Task *wring_head(Loop *lp, Waiters *r, const void *owner) {
  while (r->head < r->tail) {
    Waiter *e = &r->w[r->head];
    if (task_still_waits(lp, e->slot, e->t, e->wait_id, owner)) return e->t;
    wring_drop_head(r);
  }
  return NULL;
}

/* give the first waiting task its turn; 1 if there was one */
static int wring_wake(lua_State *L, Loop *lp, Waiters *r, const void *owner) {
  Task *t = wring_head(lp, r, owner);
  if (!t) return 0;
  wring_drop_head(r);
  t->ring_owner = NULL;
  t->granted = 1;
  loop_enqueue_task(L, lp, t);
  return 1;
}

/* after a ring wait: 1 if the task was woken for its turn, else 0 with the
 * error (a cancellation) pushed; *turn says whether a turn had been granted
 * (and is now lost, to be passed on) */
static int ring_wait_outcome(lua_State *L, int okidx, int *turn) {
  Task *t = loop_get(L)->current;
  *turn = t->granted;
  t->granted = 0;
  if (lua_toboolean(L, okidx)) return 1;
  lua_pushvalue(L, okidx + 1);
  return 0;
}

/* ---- Semaphore, BoundedSemaphore, Lock ---------------------------------- */

enum { K_SEM, K_BOUNDED, K_LOCK };
static const char *const kind_names[] = {"Semaphore", "BoundedSemaphore", "Lock"};

typedef struct Sem {
  unsigned char tag, kind;
  int value, bound;
  Waiters waiters;
} Sem;

typedef struct Guard { unsigned char tag, released; } Guard;   /* user value 1: its owner */

#define SEM_MT "async.Semaphore"
#define GUARD_MT "async.Guard"
#define QUEUE_MT "async.Queue"

/* our userdata, by metatable identity (callers have the loop as upvalue 1) */
static void *test_ud(lua_State *L, int idx, int which) {
  void *p = lua_touserdata(L, idx);
  return p && loop_hasmetatable(L, loop_get(L), idx, which) ? p : NULL;
}

static void *check_ud(lua_State *L, int idx, int which, const char *what) {
  void *p = test_ud(L, idx, which);
  if (!p) luaL_typeerror(L, idx, what);
  return p;
}

static Sem *sem_check(lua_State *L, int idx) { return check_ud(L, idx, MT_SEM, "Semaphore or Lock"); }

static int sem_locked_now(lua_State *L, Sem *s) {
  if (s->kind == K_LOCK || s->value == 0) return s->value == 0;
  return wring_head(loop_get(L), &s->waiters, s) != NULL;
}

/* hand free slots to waiters, first come first served */
static void sem_wake_while_free(lua_State *L, Sem *s) {
  Loop *lp = loop_get(L);
  while (s->value > 0 && wring_wake(L, lp, &s->waiters, s)) s->value--;
}

static void sem_release_at(lua_State *L, Sem *s) {
  if (s->kind == K_LOCK && s->value != 0)
    luaL_error(L, "Lock.release: the lock is not acquired");
  if (s->kind == K_BOUNDED && s->value >= s->bound)
    luaL_error(L, "BoundedSemaphore released too many times");
  s->value++;
  sem_wake_while_free(L, s);
}

static int push_guard(lua_State *L, int semidx) {
  Guard *g = lua_newuserdatauv(L, sizeof *g, 1);
  g->tag = TAG_GUARD; g->released = 0;
  loop_setmetatable(L, loop_get(L), MT_GUARD);
  lua_pushvalue(L, semidx);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* after waiting: stack = sem, ok, err? */
static int acquire_impl(lua_State *L);

static int acquire_k(lua_State *L, int status, lua_KContext ctx) {
  Sem *s = lua_touserdata(L, 1);
  int turn;
  (void)status; (void)ctx;
  if (!ring_wait_outcome(L, 2, &turn)) {
    if (turn) s->value++;                          /* pass the turn on */
    sem_wake_while_free(L, s);
    return lua_error(L);
  }
  if (!turn) {              /* woken with no slot (its cancellation withdrawn): wait again */
    lua_settop(L, 1);
    return acquire_impl(L);
  }
  sem_wake_while_free(L, s);
  return push_guard(L, 1);
}

/* the body of sem:acquire(), run when awaited */
static int acquire_impl(lua_State *L) {
  Sem *s = lua_touserdata(L, 1);
  lua_settop(L, 1);
  if (!sem_locked_now(L, s)) {
    s->value--;
    return push_guard(L, 1);
  }
  wring_add(L, &s->waiters, s);
  return task_suspend(L, 0, acquire_k);
}

/* sem:acquire() and q:get() hand out one shared awaitable per object,
 * made on first use (user value 1 of a semaphore, Q_GET of a queue) */
static int shared_awaitable(lua_State *L, int slot) {
  int debug = loop_get(L)->debug;
  if (!debug && lua_getiuservalue(L, 1, slot) == LUA_TUSERDATA) return 1;
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));      /* the body */
  lua_pushvalue(L, 1);
  if (debug) { coro_push(L, 2, 1, 1); return 1; }   /* debug: warn if never awaited */
  coro_push_shared(L, 2, 1);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, slot);
  return 1;
}

static int sem_acquire(lua_State *L) {
  sem_check(L, 1);
  return shared_awaitable(L, 1);
}

static int sem_release(lua_State *L) {
  sem_release_at(L, sem_check(L, 1));
  return 0;
}

static int sem_locked(lua_State *L) {
  Sem *s = sem_check(L, 1);
  lua_pushboolean(L, sem_locked_now(L, s));
  return 1;
}

static int sem_value(lua_State *L) {
  lua_pushinteger(L, sem_check(L, 1)->value);
  return 1;
}

static int sem_tostring(lua_State *L) {
  Sem *s = sem_check(L, 1);
  lua_pushfstring(L, "<%s value=%d waiters=%d>", kind_names[s->kind], s->value, wring_len(&s->waiters));
  return 1;
}

static int sem_gc(lua_State *L) {
  wring_free(&((Sem *)lua_touserdata(L, 1))->waiters);
  return 0;
}

static int new_sem(lua_State *L, int kind, lua_Integer value) {
  if (value < 0 || value > 0x7fffffff)
    return luaL_error(L, "bad argument #1 to '%s' (non-negative integer expected, got %d)",
                      kind_names[kind], (int)value);
  Sem *s = lua_newuserdatauv(L, sizeof *s, 1);
  s->tag = TAG_SEM; s->kind = (unsigned char)kind; s->value = s->bound = (int)value;
  memset(&s->waiters, 0, sizeof s->waiters);
  loop_setmetatable(L, loop_get(L), MT_SEM);
  return 1;
}

static lua_Integer opt_count(lua_State *L, const char *fname) {
  if (lua_isnoneornil(L, 1)) return 1;
  if (!lua_isinteger(L, 1))
    luaL_error(L, "bad argument #1 to '%s' (non-negative integer expected, got %s)",
               fname, lua_isnumber(L, 1) ? lua_tostring(L, 1) : luaL_typename(L, 1));
  return lua_tointeger(L, 1);
}

static int l_semaphore(lua_State *L) { return new_sem(L, K_SEM, opt_count(L, "Semaphore")); }
static int l_bounded(lua_State *L) { return new_sem(L, K_BOUNDED, opt_count(L, "BoundedSemaphore")); }
static int l_lock(lua_State *L) { return new_sem(L, K_LOCK, 1); }

static int l_islock(lua_State *L) {
  Sem *s = test_ud(L, 1, MT_SEM);
  lua_pushboolean(L, s && s->kind == K_LOCK);
  return 1;
}

static int guard_release(lua_State *L) {
  Guard *g = check_ud(L, 1, MT_GUARD, "semaphore guard");
  if (g->released) return 0;
  g->released = 1;
  lua_getiuservalue(L, 1, 1);
  sem_release_at(L, lua_touserdata(L, -1));
  return 0;
}

/* ---- Queue -------------------------------------------------------------- */

enum { Q_ITEMS = 1, Q_GET, Q_SEQS, Q_NUV = Q_SEQS };
enum { Q_FIFO, Q_LIFO, Q_PRIORITY };          /* which item get takes */

typedef struct Queue {
  unsigned char tag, shutdown, order;
  int key_type;                               /* priority: the Lua type of every key, or LUA_TNONE */
  int maxsize, unfinished;
  lua_Integer seq;                            /* priority: puts so far (FIFO among equal keys) */
  Ring items;                                 /* priority: a binary heap at [1, tail) */
  Waiters getters, putters, joiners;
} Queue;

static Queue *queue_check(lua_State *L, int idx) { return check_ud(L, idx, MT_QUEUE, "Queue"); }

static int q_full(Queue *q) { return q->maxsize > 0 && ring_len(&q->items) >= q->maxsize; }

static int raise_queue(lua_State *L, const char *cls, const char *msg) {
  return raise_error(L, loop_get(L), cls, "%s", msg);
}

/* ---- PriorityQueue: a heap of items by key, then by order of arrival ---- */

/* push an item's key: the item, or the first element of a {priority, value} list */
static int push_key(lua_State *L, int v) {
  if (lua_type(L, v) == LUA_TTABLE) return lua_rawgeti(L, v, 1);
  lua_pushvalue(L, v);
  return lua_type(L, -1);
}

/* a put's item must have a key comparable with every other: numbers (not
 * NaN) or strings, one kind per queue while it holds items */
static void check_key(lua_State *L, Queue *q, int v) {
  if (q->order != Q_PRIORITY) return;
  int t = push_key(L, v);
  int nan = t == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1);
  lua_pop(L, 1);
  if ((t != LUA_TNUMBER && t != LUA_TSTRING) || nan)
    luaL_error(L, "bad argument #1 to 'put' (a priority queue item is a number, a string or a {priority, value} list "
                  "with a number or string first; got %s)", nan ? "NaN" : lua_typename(L, t));
  if (ring_len(&q->items) > 0 && q->key_type != t)
    luaL_error(L, "bad argument #1 to 'put' (this priority queue holds %s keys, not %s)",
               lua_typename(L, q->key_type), lua_typename(L, t));
}

/* items[i] before items[j]; items and seqs at it, st */
static int heap_before(lua_State *L, int it, int st, int i, int j) {
  lua_rawgeti(L, it, i); push_key(L, lua_gettop(L));
  lua_rawgeti(L, it, j); push_key(L, lua_gettop(L));
  int lt = lua_compare(L, -3, -1, LUA_OPLT), gt = !lt && lua_compare(L, -1, -3, LUA_OPLT);
  lua_pop(L, 4);
  if (lt || gt) return lt;
  lua_rawgeti(L, st, i); lua_rawgeti(L, st, j);
  int first = lua_tointeger(L, -2) < lua_tointeger(L, -1);
  lua_pop(L, 2);
  return first;
}

static void heap_swap(lua_State *L, int it, int st, int i, int j) {
  for (int t = it; t; t = t == it ? st : 0) {
    lua_rawgeti(L, t, i); lua_rawgeti(L, t, j);
    lua_rawseti(L, t, i); lua_rawseti(L, t, j);
  }
}

static void heap_push(lua_State *L, int qi, Queue *q, int v) {
  v = lua_absindex(L, v);
  if (ring_len(&q->items) == 0) { q->key_type = push_key(L, v); lua_pop(L, 1); }
  lua_getiuservalue(L, qi, Q_ITEMS);
  lua_getiuservalue(L, qi, Q_SEQS);
  int it = lua_gettop(L) - 1, st = it + 1, i = q->items.tail++;
  lua_pushvalue(L, v); lua_rawseti(L, it, i);
  lua_pushinteger(L, ++q->seq); lua_rawseti(L, st, i);
  for (; i > 1 && heap_before(L, it, st, i, i / 2); i /= 2) heap_swap(L, it, st, i, i / 2);
  lua_pop(L, 2);
}

/* push the first item and remove it */
static void heap_pop(lua_State *L, int qi, Queue *q) {
  lua_getiuservalue(L, qi, Q_ITEMS);
  lua_getiuservalue(L, qi, Q_SEQS);
  int it = lua_gettop(L) - 1, st = it + 1, n = --q->items.tail - 1;   /* items left after */
  lua_rawgeti(L, it, 1);                      /* the result */
  heap_swap(L, it, st, 1, n + 1);
  lua_pushnil(L); lua_rawseti(L, it, n + 1);
  lua_pushnil(L); lua_rawseti(L, st, n + 1);
  for (int i = 1;;) {
    int c = 2 * i;
    if (c > n) break;
    if (c + 1 <= n && heap_before(L, it, st, c + 1, c)) c++;
    if (!heap_before(L, it, st, c, i)) break;
    heap_swap(L, it, st, i, c);
    i = c;
  }
  lua_replace(L, it);
  lua_pop(L, 1);
}

/* push the item get takes next, and remove it */
static void items_pop(lua_State *L, int qi, Queue *q) {
  if (q->order == Q_FIFO) { ring_pop(L, qi, Q_ITEMS, &q->items); return; }
  if (q->order == Q_PRIORITY) { heap_pop(L, qi, q); return; }
  lua_getiuservalue(L, qi, Q_ITEMS);             /* LIFO: the newest */
  lua_rawgeti(L, -1, --q->items.tail);
  lua_pushnil(L);
  lua_rawseti(L, -3, q->items.tail);
  lua_remove(L, -2);
}

static void queue_put_now(lua_State *L, int qi, Queue *q, int v) {
  if (q->order == Q_PRIORITY) heap_push(L, qi, q, v);
  else ring_push(L, qi, Q_ITEMS, &q->items, v);
  q->unfinished++;
  wring_wake(L, loop_get(L), &q->getters, q);
}

static int q_put_nowait(lua_State *L) {
  Queue *q = queue_check(L, 1);
  if (lua_isnoneornil(L, 2)) return luaL_error(L, "bad argument #1 to 'put' (a queue item cannot be nil)");
  check_key(L, q, 2);
  if (q->shutdown) return raise_queue(L, "QueueShutDown", "the queue is shut down");
  if (q_full(q)) return raise_queue(L, "QueueFull", "the queue is full");
  queue_put_now(L, 1, q, 2);
  return 0;
}

static int queue_get_now(lua_State *L, int qi, Queue *q) {
  items_pop(L, qi, q);
  wring_wake(L, loop_get(L), &q->putters, q);
  return 1;
}

static int q_get_nowait(lua_State *L) {
  Queue *q = queue_check(L, 1);
  if (ring_len(&q->items) == 0)
    return q->shutdown ? raise_queue(L, "QueueShutDown", "the queue is shut down")
                       : raise_queue(L, "QueueEmpty", "the queue is empty");
  return queue_get_now(L, 1, q);
}

/* get and put wait in a loop: a woken waiter checks again (another task may
 * have taken the item first).  Stack: queue[, item]. */
static int get_loop(lua_State *L);

static int get_k(lua_State *L, int status, lua_KContext ctx) {
  Queue *q = lua_touserdata(L, 1);
  int turn;
  (void)status; (void)ctx;
  if (!ring_wait_outcome(L, 2, &turn)) {
    if (turn && ring_len(&q->items) > 0) wring_wake(L, loop_get(L), &q->getters, q);
    return lua_error(L);
  }
  lua_settop(L, 1);
  return get_loop(L);
}

static int get_loop(lua_State *L) {
  Queue *q = lua_touserdata(L, 1);
  if (ring_len(&q->items) > 0) return queue_get_now(L, 1, q);
  if (q->shutdown) return raise_queue(L, "QueueShutDown", "the queue is shut down");
  wring_add(L, &q->getters, q);
  return task_suspend(L, 0, get_k);
}

static int get_impl(lua_State *L) {
  lua_settop(L, 1);
  return get_loop(L);
}

static int put_loop(lua_State *L);

static int put_k(lua_State *L, int status, lua_KContext ctx) {
  Queue *q = lua_touserdata(L, 1);
  int turn;
  (void)status; (void)ctx;
  if (!ring_wait_outcome(L, 3, &turn)) {
    if (turn && !q_full(q)) wring_wake(L, loop_get(L), &q->putters, q);
    return lua_error(L);
  }
  lua_settop(L, 2);
  return put_loop(L);
}

static int put_loop(lua_State *L) {
  Queue *q = lua_touserdata(L, 1);
  if (q->shutdown) return raise_queue(L, "QueueShutDown", "the queue is shut down");
  if (!q_full(q)) { queue_put_now(L, 1, q, 2); return 0; }
  wring_add(L, &q->putters, q);
  return task_suspend(L, 0, put_k);
}

static int put_impl(lua_State *L) {
  lua_settop(L, 2);
  return put_loop(L);
}

static int join_impl(lua_State *L);

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  int turn;
  (void)status; (void)ctx;
  if (!ring_wait_outcome(L, 2, &turn)) return lua_error(L);
  if (!turn) return join_impl(L);            /* not woken by task_done: look again */
  return 0;
}

static int join_impl(lua_State *L) {
  Queue *q = lua_touserdata(L, 1);
  lua_settop(L, 1);
  if (q->unfinished == 0) return 0;
  wring_add(L, &q->joiners, q);
  return task_suspend(L, 0, join_k);
}

static void wring_wake_all(lua_State *L, Waiters *r, const void *owner) {
  Loop *lp = loop_get(L);
  while (wring_wake(L, lp, r, owner)) {}
}

/* q:get(), q:put(x), q:join(): coroutine objects over the impls above */
static int q_method_coro(lua_State *L, int nargs) {
  lua_settop(L, nargs);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  coro_push(L, 1, nargs, 1);
  return 1;
}

static int q_get(lua_State *L) { queue_check(L, 1); return shared_awaitable(L, Q_GET); }
static int q_join(lua_State *L) { queue_check(L, 1); return q_method_coro(L, 1); }
static int q_put(lua_State *L) {
  Queue *q = queue_check(L, 1);
  if (lua_isnoneornil(L, 2)) return luaL_error(L, "bad argument #1 to 'put' (a queue item cannot be nil)");
  check_key(L, q, 2);
  return q_method_coro(L, 2);
}

static int q_task_done(lua_State *L) {
  Queue *q = queue_check(L, 1);
  if (q->unfinished <= 0) return luaL_error(L, "Queue.task_done() called too many times");
  if (--q->unfinished == 0) wring_wake_all(L, &q->joiners, q);
  return 0;
}

static int q_shutdown(lua_State *L) {
  Queue *q = queue_check(L, 1);
  q->shutdown = 1;
  if (lua_toboolean(L, 2)) {                  /* immediate: drop the items */
    while (ring_len(&q->items) > 0) {
      items_pop(L, 1, q);
      lua_pop(L, 1);
      if (q->unfinished > 0) q->unfinished--;
    }
    if (q->unfinished == 0) wring_wake_all(L, &q->joiners, q);
  }
  wring_wake_all(L, &q->getters, q);
  wring_wake_all(L, &q->putters, q);
  return 0;
}

static int q_gc(lua_State *L) {
  Queue *q = lua_touserdata(L, 1);
  wring_free(&q->getters); wring_free(&q->putters); wring_free(&q->joiners);
  return 0;
}

static int q_qsize(lua_State *L) { lua_pushinteger(L, ring_len(&queue_check(L, 1)->items)); return 1; }
static int q_empty(lua_State *L) { lua_pushboolean(L, ring_len(&queue_check(L, 1)->items) == 0); return 1; }
static int q_full_m(lua_State *L) { lua_pushboolean(L, q_full(queue_check(L, 1))); return 1; }
static int q_maxsize(lua_State *L) { lua_pushinteger(L, queue_check(L, 1)->maxsize); return 1; }

static int q_tostring(lua_State *L) {
  Queue *q = queue_check(L, 1);
  static const char *const kinds[] = {"Queue", "LifoQueue", "PriorityQueue"};
  lua_pushfstring(L, "<%s maxsize=%d qsize=%d%s>", kinds[q->order], q->maxsize, ring_len(&q->items),
                  q->shutdown ? " shut down" : "");
  return 1;
}

/* Queue(maxsize?), LifoQueue, PriorityQueue: upvalue 2 is the order */
static int l_queue(lua_State *L) {
  lua_Integer maxsize = 0;
  int order = (int)lua_tointeger(L, lua_upvalueindex(2));
  if (!lua_isnoneornil(L, 1)) {
    if (!lua_isinteger(L, 1))
      return luaL_error(L, "bad argument #1 to '%s' (integer expected, got %s)",
                        order == Q_PRIORITY ? "PriorityQueue" : order == Q_LIFO ? "LifoQueue" : "Queue",
                        luaL_typename(L, 1));
    maxsize = lua_tointeger(L, 1);
    if (maxsize < 0 || maxsize > 0x7fffffff) maxsize = 0;   /* asyncio: <= 0 is unbounded */
  }
  Queue *q = lua_newuserdatauv(L, sizeof *q, Q_NUV);
  q->tag = TAG_QUEUE; q->shutdown = 0; q->maxsize = (int)maxsize; q->unfinished = 0;
  q->order = (unsigned char)order; q->key_type = LUA_TNONE; q->seq = 0;
  loop_setmetatable(L, loop_get(L), MT_QUEUE);
  int qi = lua_gettop(L);
  ring_init(L, qi, Q_ITEMS, &q->items);
  if (order == Q_PRIORITY) { lua_newtable(L); lua_setiuservalue(L, qi, Q_SEQS); }
  memset(&q->getters, 0, sizeof q->getters);
  memset(&q->putters, 0, sizeof q->putters);
  memset(&q->joiners, 0, sizeof q->joiners);
  return 1;
}

/* ---- registration ------------------------------------------------------- */

/* methods whose upvalues are (loop, impl closure) */
static void set_coro_method(lua_State *L, Loop *lp, const char *name, lua_CFunction m, lua_CFunction impl) {
  lua_pushlightuserdata(L, lp);
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, impl, 1);
  lua_pushcclosure(L, m, 2);
  lua_setfield(L, -2, name);
}

/* pushes the metatable and its method table (every function gets the loop
 * as upvalue 1) */
static void new_class(lua_State *L, Loop *lp, const char *name, int which, const luaL_Reg *methods,
                      lua_CFunction tostring, lua_CFunction close, lua_CFunction gc) {
  luaL_newmetatable(L, name);
  loop_register_mt(L, lp, which);
  if (gc) { lua_pushcfunction(L, gc); lua_setfield(L, -2, "__gc"); }
  if (tostring) { lua_pushlightuserdata(L, lp); lua_pushcclosure(L, tostring, 1); lua_setfield(L, -2, "__tostring"); }
  if (close) { lua_pushlightuserdata(L, lp); lua_pushcclosure(L, close, 1); lua_setfield(L, -2, "__close"); }
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, methods, 1);
}

int sync_open(lua_State *L, Loop *lp) {
  static const luaL_Reg sem_methods[] = {
    {"release", sem_release}, {"locked", sem_locked}, {"value", sem_value}, {NULL, NULL}
  };
  static const luaL_Reg queue_methods[] = {
    {"put_nowait", q_put_nowait}, {"get_nowait", q_get_nowait}, {"task_done", q_task_done},
    {"shutdown", q_shutdown}, {"qsize", q_qsize}, {"empty", q_empty}, {"full", q_full_m},
    {"maxsize", q_maxsize}, {NULL, NULL}
  };
  static const luaL_Reg funcs[] = {
    {"Semaphore", l_semaphore}, {"BoundedSemaphore", l_bounded}, {"Lock", l_lock},
    {"islock", l_islock}, {NULL, NULL}
  };

  /* each class: metatable with __index (methods), __tostring, __close */
  new_class(L, lp, SEM_MT, MT_SEM, sem_methods, sem_tostring, NULL, sem_gc);
  set_coro_method(L, lp, "acquire", sem_acquire, acquire_impl);
  lua_pop(L, 2);

  static const luaL_Reg guard_methods[] = { {"release", guard_release}, {NULL, NULL} };
  new_class(L, lp, GUARD_MT, MT_GUARD, guard_methods, NULL, guard_release, NULL);
  lua_pop(L, 2);

  new_class(L, lp, QUEUE_MT, MT_QUEUE, queue_methods, q_tostring, NULL, q_gc);
  set_coro_method(L, lp, "get", q_get, get_impl);
  set_coro_method(L, lp, "put", q_put, put_impl);
  set_coro_method(L, lp, "join", q_join, join_impl);
  lua_pop(L, 2);

  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, funcs, 1);
  static const char *const queues[] = {"Queue", "LifoQueue", "PriorityQueue"};
  for (int order = Q_FIFO; order <= Q_PRIORITY; order++) {
    lua_pushlightuserdata(L, lp);
    lua_pushinteger(L, order);
    lua_pushcclosure(L, l_queue, 2);
    lua_setfield(L, -2, queues[order]);
  }
  return 0;
}
