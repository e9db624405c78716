/*
 * waiters.c - the rings that tasks wait in for a Semaphore, a Lock or a
 * Queue, and the class plumbing those share (see sync.h).
 */
#include <stdlib.h>
#include <string.h>
#include "sync.h"


int wring_len(const Waiters *r) { return r->tail - r->head; }

void wring_free(Waiters *r) { free(r->w); r->w = NULL; r->head = r->tail = r->cap = 0; }

/* the current task waits in r (raises if it cannot wait) */
void wring_add(lua_State *L, Waiters *r, const void *owner) {
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
  r->w[r->tail++] = (Waiter){t, t->pending_id, t->wait_id};
}

void wring_drop_head(Waiters *r) {
  if (++r->head == r->tail) r->head = r->tail = 0;
}

/* the first task still waiting in the ring (stale entries dropped), or NULL */
Task *wring_head(Loop *lp, Waiters *r, const void *owner) {
  while (r->head < r->tail) {
    Waiter *e = &r->w[r->head];
    if (task_still_waits(lp, e->pending_id, e->t, e->wait_id, owner)) return e->t;
    wring_drop_head(r);
  }
  return NULL;
}

/* give the first waiting task its turn; 1 if there was one */
int wring_wake(lua_State *L, Loop *lp, Waiters *r, const void *owner) {
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
int ring_wait_outcome(lua_State *L, int okidx, int *turn) {
  Task *t = loop_get(L)->current;
  *turn = t->granted;
  t->granted = 0;
  if (lua_toboolean(L, okidx)) return 1;
  lua_pushvalue(L, okidx + 1);
  return 0;
}


/* our userdata, by metatable identity (callers have the loop as upvalue 1) */
void *test_ud(lua_State *L, int idx, int which) {
  void *p = lua_touserdata(L, idx);
  return p && loop_hasmetatable(L, loop_get(L), idx, which) ? p : NULL;
}

void *check_ud(lua_State *L, int idx, int which, const char *what) {
  void *p = test_ud(L, idx, which);
  if (!p) luaL_typeerror(L, idx, what);
  return p;
}

int shared_awaitable(lua_State *L, int uval) {
  int debug = loop_get(L)->debug;
  if (!debug && lua_getiuservalue(L, 1, uval) == LUA_TUSERDATA) return 1;
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));      /* the body */
  lua_pushvalue(L, 1);
  if (debug) { coro_push(L, 2, 1, 1); return 1; }   /* debug: warn if never awaited */
  coro_push_shared(L, 2, 1);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, uval);
  return 1;
}


/* methods whose upvalues are (loop, impl closure) */
void set_coro_method(lua_State *L, Loop *lp, const char *name, lua_CFunction m, lua_CFunction impl) {
  lua_pushlightuserdata(L, lp);
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, impl, 1);
  lua_pushcclosure(L, m, 2);
  lua_setfield(L, -2, name);
}

/* pushes the metatable and its method table (every function gets the loop
 * as upvalue 1) */
void new_class(lua_State *L, Loop *lp, const char *name, int which, const luaL_Reg *methods,
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

