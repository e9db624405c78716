/*
 * sync.c - Semaphore, BoundedSemaphore and Lock (asyncio's rules).
 *
 * Each waiter is the waiting task itself, in a FIFO ring (waiters.c);
 * whoever frees a slot wakes the first task still waiting there, handing
 * the slot over.  A waiter that was cancelled leaves a stale entry,
 * skipped when it reaches the head; one cancelled after its turn came
 * passes the turn on.  `sem:acquire()` returns a coroutine object over
 * the C functions below, so it stays lazy, and the common case (a free
 * slot) returns without suspending.
 */
#include <stdlib.h>
#include <string.h>
#include "sync.h"

/* ---- Semaphore, BoundedSemaphore, Lock ---------------------------------- */

enum { K_SEM, K_BOUNDED, K_LOCK };
static const char *const kind_names[] = {"Semaphore", "BoundedSemaphore", "Lock"};

typedef struct Sem {
  unsigned char tag, kind;
  int value, bound;
  Waiters waiters;
} Sem;

typedef struct Guard { unsigned char tag, released; } Guard;   /* user value 1: its owner */



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


/* ---- registration ------------------------------------------------------- */

int sync_open(lua_State *L, Loop *lp) {
  static const luaL_Reg sem_methods[] = {
    {"release", sem_release}, {"locked", sem_locked}, {"value", sem_value}, {NULL, NULL}
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

  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, funcs, 1);
  return 0;
}

