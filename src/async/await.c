/*
 * await.c - how a task waits: await, sleep, and the suspension they share.
 *
 * await(future) registers the task as the future's callback, records it as
 * the task's waiter, and yields nothing; the scheduler (task.c's
 * task_step) resumes the task with (true, results...) or (false, error),
 * and the continuation returns or raises.  await(coroutine object) calls
 * its body inline.  sleep puts the task in the timers (or, for 0, straight
 * in the ready queue).  An async generator's thread passes an await upward
 * by yielding AWAIT_MARK to the iterator, which suspends the task in turn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

char AWAIT_MARK;            /* its address: a generator's await passing up */

static int is_gen_thread(lua_State *L, Loop *lp) {
  loop_push_ref(L, lp, LS_GENTHREADS);
  lua_pushthread(L);
  lua_rawget(L, -2);
  int r = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return r;
}

/* the running task: a gather child still without one gets it now */
Task *current_task(lua_State *L, Loop *lp) {
  return !lp->current && lp->probe ? task_materialize(L, lp) : lp->current;
}

/* The task on whose behalf L may await.  *is_gen: L is an async generator's
 * thread driven by that task. */
static Task *await_context(lua_State *L, Loop *lp, const char *what, int *is_gen) {
  Task *t = current_task(L, lp);
  *is_gen = 0;
  if (t && t->T == L) return t;
  if (t && is_gen_thread(L, lp)) { *is_gen = 1; return t; }
  if (t) luaL_error(L, "%s: called inside a plain coroutine (coroutine.wrap/create) that a task "
                       "runs; it cannot suspend the task from there (use async.generator)", what);
  else luaL_error(L, "%s: await outside of a running task (use async.run or async.spawn)", what);
  return NULL;
}

static int suspend_yield(lua_State *L, Task *t, int is_gen, lua_KContext ctx, lua_KFunction k) {
  if (is_gen) {
    lua_pushlightuserdata(L, &AWAIT_MARK);
    return lua_yieldk(L, 1, ctx, k);
  }
  t->awaiting = 1;
  return lua_yieldk(L, 0, ctx, k);
}

static void check_yieldable(lua_State *L, const char *what) {
  if (!lua_isyieldable(L))
    luaL_error(L, "%s: cannot suspend here (inside a C function that does not allow yields, "
                  "such as a table.sort or string.gsub callback)", what);
}

Task *task_ring_wait(lua_State *L, const void *owner) {
  Loop *lp = loop_get(L);
  int is_gen;
  Task *t = await_context(L, lp, "await", &is_gen);
  check_yieldable(L, "await");
  t->ring_owner = owner;
  t->granted = 0;
  t->wait_id = ++lp->next_wait;
  return t;
}

int task_still_waits(Loop *lp, int pending_id, Task *t, uint64_t wait_id, const void *owner) {
  return pending_id < lp->pending_cap && lp->pending_task[pending_id] == t &&
         t->wait_id == wait_id && t->ring_owner == owner && t->f.state == PENDING;
}


int task_suspend(lua_State *L, lua_KContext ctx, lua_KFunction k) {
  int is_gen;
  Task *t = await_context(L, loop_get(L), "await", &is_gen);
  return suspend_yield(L, t, is_gen, ctx, k);
}

/* continuation after a suspension: (true, values...) or (false, err) on top */
static int resume_k(lua_State *L, int status, lua_KContext base) {
  (void)status;
  if (!lua_toboolean(L, (int)base + 1)) {
    lua_pushvalue(L, (int)base + 2);
    loop_get(L)->reraising = 1;              /* the awaited future's error, passed on */
    return lua_error(L);
  }
  return lua_gettop(L) - (int)base - 1;
}

/* Awaiting a coroutine object calls its body from C (lua_callk), and Lua
 * allows about 200 nested C calls (LUAI_MAXCCALLS) before "C stack
 * overflow".  A task keeps its inline depth and an upper bound of the C
 * frames on its thread: at checked_depth there were at most checked_frames,
 * and a level adds at least one and, we assume, at most four.  When the
 * bound nears INLINE_MAX, the frames are counted (a walk of the stack, so
 * not at every level), and at INLINE_MAX await runs the coroutine object as
 * a Task of its own, which starts on a fresh C stack: recursion through
 * await is then bounded by memory, as with Tasks.  (The depth may run high:
 * an error caught by a pcall skips the continuations that restore it.) */
enum { INLINE_MAX = 160, TASK_C_BASE = 10, LEVEL_FRAMES_MAX = 4 };

static int too_deep_inline(lua_State *L, Task *t) {
  int bound = t->checked_frames + LEVEL_FRAMES_MAX * (t->inline_depth - t->checked_depth);
  if (TASK_C_BASE + bound < INLINE_MAX) return 0;
  int n = loop_c_frames(L);
  if (TASK_C_BASE + n >= INLINE_MAX) return 1;
  t->checked_depth = t->inline_depth;
  t->checked_frames = n;
  return 0;
}

/* the continuation of an inline await: ctx is the task's inline depth
 * before it, the coroutine object stays at 1 */
static int await_coro_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  Task *t = current_task(L, loop_get(L));
  if (t) {
    int depth = (int)ctx;
    if (depth < t->checked_depth) {          /* back below the count: each level had a frame */
      t->checked_frames -= t->checked_depth - depth;
      t->checked_depth = depth;
    }
    t->inline_depth = depth;
  }
  return lua_gettop(L) - 1;
}

/* Suspend the running task until the pending future at fidx completes; k
 * then finds (true, results...) or (false, err) on top of the stack.  For C
 * code that waits: the synchronisation primitives, the C API. */

int await_future_k(lua_State *L, int fidx, lua_KContext ctx, lua_KFunction k) {
  Loop *lp = loop_get(L);
  int is_gen;
  Future *f = lua_touserdata(L, fidx);
  Task *t = await_context(L, lp, "await", &is_gen);
  if (f == &t->f) return luaL_error(L, "await: a task cannot await itself");
  if (f->loop != lp) return luaL_error(L, "await: the future belongs to another loop");
  check_yieldable(L, "await");
  fidx = lua_absindex(L, fidx);
  future_add_waiter(L, fidx, t);
  push_task(L, lp, t);
  lua_pushvalue(L, fidx);
  lua_setiuservalue(L, -2, UVAL_WAITER);
  lua_pop(L, 1);
  t->waiter = f;
  return suspend_yield(L, t, is_gen, ctx, k);
}

static int l_await(lua_State *L) {
  Loop *lp = loop_get(L);
  int is_gen;
  Coro *c;
  Future *f;
  lua_settop(L, 1);
  if ((f = future_test(L, 1)) != NULL) {
    if (f->state != PENDING) {
      await_context(L, lp, "await", &is_gen);
      return future_push_results(L, 1);
    }
    return await_future_k(L, 1, 1, resume_k);
  }
  if ((c = coro_test(L, lp, 1)) != NULL) {
    Task *t = await_context(L, lp, "await", &is_gen);
    if (!c->direct && !is_gen && too_deep_inline(L, t)) {
      if (!task_new(L, lp, 1, 0)) return luaL_error(L, "await: cannot make a Task of the coroutine object");
      lua_replace(L, 1);
      return await_future_k(L, 1, 1, resume_k);
    }
    if (!c->reusable) {
      if (c->state != CORO_CREATED)
        return raise_error(L, lp, "InvalidStateError", "cannot reuse an already %s coroutine object",
                           c->state == CORO_AWAITED ? "awaited" : "scheduled");
      c->state = CORO_AWAITED;
    }
    luaL_checkstack(L, c->nargs + 2, "too many arguments");
    if (c->direct) {          /* a library awaitable: its C body runs in this frame */
      lua_CFunction body = c->direct;
      for (int i = 1; i <= c->nargs; i++) lua_getiuservalue(L, 1, i + 2);
      lua_remove(L, 1);
      return body(L);
    }
    lua_getiuservalue(L, 1, 1);
    for (int i = 1; i <= c->nargs; i++) lua_getiuservalue(L, 1, i + 2);
    int depth = t->inline_depth++;
    lua_callk(L, c->nargs, LUA_MULTRET, depth, await_coro_k);
    return await_coro_k(L, LUA_OK, depth);
  }
  return luaL_error(L, "bad argument #1 to 'await' (awaitable expected: coroutine object, "
                       "Task or Future; got %s)", luaL_typename(L, 1));
}

/* core.suspend(): used by async generators' iterators.  The generator has
 * already registered the task as a waiter; suspend the task (or, from a
 * nested generator, pass the mark further up) and hand back the raw resume
 * values (ok, values...). */
static int suspend_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return lua_gettop(L);
}

static int l_suspend(lua_State *L) {
  int is_gen;
  Task *t = await_context(L, loop_get(L), "await", &is_gen);
  lua_settop(L, 0);
  check_yieldable(L, "await");
  return suspend_yield(L, t, is_gen, 0, suspend_k);
}

/* ---- sleep -------------------------------------------------------------- */

/* A sleep's stack: delay, values...; the continuation finds ok, err? above
 * the values, and gives the values back. */
static int sleep_k(lua_State *L, int status, lua_KContext nv) {
  (void)status;
  if (!lua_toboolean(L, (int)nv + 2)) {
    lua_pushvalue(L, (int)nv + 3);
    return lua_error(L);
  }
  lua_settop(L, (int)nv + 1);
  return (int)nv;
}

static int sleep_impl(lua_State *L) {
  Loop *lp = loop_get(L);
  int is_gen;
  double d = luaL_checknumber(L, 1);
  if (d != d) return luaL_error(L, "bad argument #1 to 'sleep' (delay is NaN)");
  Task *t = await_context(L, lp, "sleep", &is_gen);
  int nv = lua_gettop(L) - 1;
  check_yieldable(L, "sleep");
  if (d <= 0) loop_enqueue_task(L, lp, t);
  else if (loop_add_timer(lp, delay_to_due(d), 1, t) != 0) return luaL_error(L, "sleep: out of memory");
  return suspend_yield(L, t, is_gen, nv, sleep_k);
}

/* async.sleep(delay, ...): a coroutine object running sleep_impl */
/* sleep(d) with no values: one shared awaitable for the latest delay (a
 * loop sleeping a constant delay allocates nothing) */
static int l_sleep(lua_State *L) {
  int n = lua_gettop(L);
  double d = luaL_checknumber(L, 1);
  if (n == 1 && !loop_get(L)->debug) {
    double *last = lua_touserdata(L, lua_upvalueindex(3));
    if (*last == d && lua_getiuservalue(L, lua_upvalueindex(3), 1) == LUA_TUSERDATA) return 1;
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    coro_push_shared(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, lua_upvalueindex(3), 1);
    *last = d;
    return 1;
  }
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  coro_push(L, 1, n, 1);
  return 1;
}


/* core.gen_thread(fn): a thread for an async generator, allowed to await */
static int l_gen_thread(lua_State *L) {
  Loop *lp = loop_get(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *G = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, G, 1);
  loop_push_ref(L, lp, LS_GENTHREADS);
  lua_pushvalue(L, -2); lua_pushboolean(L, 1); lua_rawset(L, -3);
  lua_pop(L, 1);
  return 1;
}


static const luaL_Reg await_funcs[] = {
  {"await", l_await}, {"suspend", l_suspend}, {"gen_thread", l_gen_thread}, {NULL, NULL}
};

int await_open(lua_State *L, Loop *lp) {
  int mod = lua_gettop(L);
  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, await_funcs, 1);
  lua_pushlightuserdata(L, lp);
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, sleep_impl, 1);
  *(double *)lua_newuserdatauv(L, sizeof(double), 1) = -1;   /* the latest shared sleep */
  lua_pushcclosure(L, l_sleep, 3);
  lua_setfield(L, mod, "sleep");
  lua_pushlightuserdata(L, &AWAIT_MARK);
  lua_setfield(L, mod, "AWAIT_MARK");
  return 0;
}
