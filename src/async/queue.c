/*
 * queue.c - Queue, LifoQueue and PriorityQueue (asyncio's rules).
 *
 * Items wait in a FIFO kept in a Lua table (or, for PriorityQueue, a heap
 * in that table); getters, putters and joiners wait in rings of tasks
 * (waiters.c).  A getter or putter woken for an item or a place that is
 * then cancelled passes its turn on.  `q:get()`, `q:put(x)` and
 * `q:join()` return coroutine objects, lazy, and the common case returns
 * without suspending.
 */
#include <stdlib.h>
#include <string.h>
#include "sync.h"

/* ---- a FIFO of Lua values in a table kept as a user value --------------- */

typedef struct Ring { int head, tail; } Ring;   /* items at [head, tail) */

static void ring_init(lua_State *L, int ud, int uval, Ring *r) {
  r->head = r->tail = 1;
  lua_newtable(L);
  lua_setiuservalue(L, ud, uval);
}

static int ring_len(const Ring *r) { return r->tail - r->head; }

static void ring_push(lua_State *L, int ud, int uval, Ring *r, int v) {
  v = lua_absindex(L, v);
  lua_getiuservalue(L, ud, uval);
  lua_pushvalue(L, v);
  lua_rawseti(L, -2, r->tail++);
  lua_pop(L, 1);
}

/* push the head (nil if empty) and remove it */
static void ring_pop(lua_State *L, int ud, int uval, Ring *r) {
  if (r->head == r->tail) { lua_pushnil(L); return; }
  lua_getiuservalue(L, ud, uval);
  lua_rawgeti(L, -1, r->head);
  lua_pushnil(L);
  lua_rawseti(L, -3, r->head++);
  lua_remove(L, -2);
  if (r->head == r->tail) r->head = r->tail = 1;   /* keep indices small */
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


int queue_open(lua_State *L, Loop *lp) {
  static const luaL_Reg queue_methods[] = {
    {"put_nowait", q_put_nowait}, {"get_nowait", q_get_nowait}, {"task_done", q_task_done},
    {"shutdown", q_shutdown}, {"qsize", q_qsize}, {"empty", q_empty}, {"full", q_full_m},
    {"maxsize", q_maxsize}, {NULL, NULL}
  };
  new_class(L, lp, QUEUE_MT, MT_QUEUE, queue_methods, q_tostring, NULL, q_gc);
  set_coro_method(L, lp, "get", q_get, get_impl);
  set_coro_method(L, lp, "put", q_put, put_impl);
  set_coro_method(L, lp, "join", q_join, join_impl);
  lua_pop(L, 2);

  static const char *const queues[] = {"Queue", "LifoQueue", "PriorityQueue"};
  for (int order = Q_FIFO; order <= Q_PRIORITY; order++) {
    lua_pushlightuserdata(L, lp);
    lua_pushinteger(L, order);
    lua_pushcclosure(L, l_queue, 2);
    lua_setfield(L, -2, queues[order]);
  }
  return 0;
}
