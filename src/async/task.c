/*
 * task.c - coroutine objects, tasks and the await protocol.
 *
 * A coroutine object is a lazy call: a function and its arguments.  Awaiting
 * one calls the function inline on the awaiting task's thread (no new Lua
 * thread); wrapping one in a Task gives it a thread of its own.
 *
 * A task's thread starts in task_main, which runs the body under lua_pcallk
 * *inside* the thread: Lua 5.4 unwinds to-be-closed variables only for an
 * error caught by a protected call in the same thread, and only then may a
 * __close yield (await).  So errors and cancellations are caught here and
 * become the task's result.
 *
 * await(future) registers the task as the future's callback, records it as
 * the task's waiter, and yields nothing; the scheduler resumes the task with
 * (true, results...) or (false, error), and the continuation returns or
 * raises.  A yield the scheduler did not ask for (a bare coroutine.yield) is
 * an error.  An async generator's thread passes an await upward by yielding
 * AWAIT_MARK to the iterator, which suspends the task in turn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

enum { TAG_CORO = 0x60 };
enum { CORO_CREATED = 0, CORO_AWAITED, CORO_SCHEDULED };

typedef struct Coro {
  unsigned char tag, state;
  int nargs;
  int line;                 /* where it was created */
  lua_CFunction direct;     /* a library awaitable's C body (see l_await) */
  unsigned char reusable;   /* a shared library awaitable: may be awaited again */
} Coro;

static char AWAIT_MARK;     /* its address: a generator's await passing up */

/* ---- coroutine objects -------------------------------------------------- */

/* Push a coroutine object for fn(args...), fn at fidx followed by nargs
 * args.  A library awaitable (lib: fn is a C closure whose only upvalue is
 * the loop) is awaited without a frame of its own, and, outside debug
 * mode, carries no finalizer: the never-awaited warning is for the
 * coroutines of async functions, and a finalizer per sleep or get costs. */
/* A library awaitable that carries no state of its own (sleep(0),
 * sem:acquire(), q:get()) is made once and shared: each await runs its body
 * afresh, so it may be awaited any number of times. */
void coro_push_shared(lua_State *L, int fidx, int nargs) {
  coro_push(L, fidx, nargs, 1);
  Coro *c = lua_touserdata(L, -1);
  c->reusable = 1;
}

/* a coroutine object for the function at fidx (an upvalue may do) and the
 * nargs values from argidx on */
static void coro_push_at(lua_State *L, int fidx, int argidx, int nargs, int lib) {
  lua_Debug ar;
  Loop *lp = loop_get(L);
  argidx = lua_absindex(L, argidx);
  Coro *c = lua_newuserdatauv(L, sizeof *c, nargs + 2);
  c->tag = TAG_CORO; c->state = CORO_CREATED; c->nargs = nargs; c->line = -1;
  c->direct = lib ? lua_tocfunction(L, fidx) : NULL;
  c->reusable = 0;
  loop_setmetatable(L, lp, lib && !lp->debug ? MT_LIBCORO : MT_CORO);
  lua_pushvalue(L, fidx); lua_setiuservalue(L, -2, 1);
  for (int i = 0; i < nargs; i++) { lua_pushvalue(L, argidx + i); lua_setiuservalue(L, -2, i + 3); }
  if (lp->debug) {                          /* debug mode: the whole creation traceback */
    luaL_traceback(L, L, NULL, 1);
    lua_setiuservalue(L, -2, 2);
  } else if (!lib && lua_getstack(L, 1, &ar) && lua_getinfo(L, "fl", &ar)) {
    c->line = ar.currentline;               /* the creating function, for the warning */
    lua_setiuservalue(L, -2, 2);
  }
}

void coro_push(lua_State *L, int fidx, int nargs, int lib) {
  fidx = lua_absindex(L, fidx);
  coro_push_at(L, fidx, fidx + 1, nargs, lib);
}

static Coro *coro_test(lua_State *L, Loop *lp, int idx) {
  Coro *c = lua_touserdata(L, idx);
  if (!c || c->tag != TAG_CORO) return NULL;
  /* a library awaitable (the hot case) has MT_LIBCORO unless made in debug mode */
  int first = c->direct ? MT_LIBCORO : MT_CORO, second = c->direct ? MT_CORO : MT_LIBCORO;
  return loop_hasmetatable(L, lp, idx, first) || loop_hasmetatable(L, lp, idx, second) ? c : NULL;
}

int coro_is(lua_State *L, Loop *lp, int idx) { return coro_test(L, lp, idx) != NULL; }

/* async.fn(f)(...) */
static int async_call(lua_State *L) {
  coro_push_at(L, lua_upvalueindex(2), 1, lua_gettop(L), 0);
  return 1;
}

static int l_fn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_pushcclosure(L, async_call, 2);
  return 1;
}

/* core.coro(fn, ...): a coroutine object for a plain function */
static int l_coro(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  coro_push(L, 1, lua_gettop(L) - 1, 0);
  return 1;
}

static int coro_gc(lua_State *L) {
  Coro *c = lua_touserdata(L, 1);
  lua_Debug ar;
  if (c->state != CORO_CREATED) return 0;
  const char *def = "?", *at = "?";
  lua_getiuservalue(L, 1, 1);
  if (lua_getinfo(L, ">S", &ar)) {
    if (ar.what[0] == 'C') lua_pushliteral(L, "a library awaitable");
    else lua_pushfstring(L, "function defined at %s:%d", ar.short_src, ar.linedefined);
    def = lua_tostring(L, -1);
  }
  int kind = lua_getiuservalue(L, 1, 2);
  if (kind == LUA_TSTRING) at = lua_tostring(L, -1);           /* debug mode's traceback */
  else if (kind == LUA_TFUNCTION && lua_getinfo(L, ">S", &ar)) {
    lua_pushfstring(L, "%s:%d", ar.short_src, c->line); at = lua_tostring(L, -1);
  }
  lua_pushfstring(L, "coroutine (%s) was never awaited; created at %s", def, at);
  lua_warning(L, lua_tostring(L, -1), 0);
  return 0;
}

static int coro_tostring(lua_State *L) {
  static const char *st[] = {"created", "awaited", "scheduled"};
  Coro *c = lua_touserdata(L, 1);
  lua_pushfstring(L, "<coroutine object %s: %p>", st[c->state], (void *)c);
  return 1;
}

/* ---- tasks -------------------------------------------------------------- */

/* Pending tasks sit in an array (LS_PENDING) at their own slot, so that
 * none is collected while it waits; freed slots are reused. */
void push_task(lua_State *L, Loop *lp, Task *t) {
  loop_push_slot(L, lp, LS_PENDING);
  lua_rawgeti(L, -1, t->slot);
  lua_remove(L, -2);
}


Task *task_test(lua_State *L, int idx) {
  Future *f = future_test(L, idx);
  return f && f->tag == TAG_TASK ? (Task *)f : NULL;
}

static Task *task_check(lua_State *L, int idx) {
  Task *t = task_test(L, idx);
  if (!t) luaL_typeerror(L, idx, "Task");
  return t;
}

static int is_gen_thread(lua_State *L, Loop *lp) {
  loop_push_slot(L, lp, LS_GENTHREADS);
  lua_pushthread(L);
  lua_rawget(L, -2);
  int r = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return r;
}

/* The task on whose behalf L may await.  *is_gen: L is an async generator's
 * thread driven by that task. */
static Task *task_materialize(lua_State *L, Loop *lp);

/* the running task: a gather child still without one gets it now */
static Task *current_task(lua_State *L, Loop *lp) {
  return !lp->current && lp->probe ? task_materialize(L, lp) : lp->current;
}

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

int task_still_waits(Loop *lp, int slot, Task *t, uint64_t wait_id, const void *owner) {
  return slot < lp->slot_task_cap && lp->slot_task[slot] == t &&
         t->wait_id == wait_id && t->ring_owner == owner && t->f.state == PENDING;
}

/* a new Task, pending and not started, pushed */
static Task *task_alloc(lua_State *L, Loop *lp) {
  Task *t = lua_newuserdatauv(L, sizeof *t, TASK_NUV);
  memset(t, 0, sizeof *t);
  t->f.tag = TAG_TASK; t->f.loop = lp; t->f.pin_ref = LUA_NOREF;
  t->timer_pos = TIMER_NONE;
  t->id = ++lp->next_task_id;
  loop_setmetatable(L, lp, MT_TASK);
  return t;
}

/* a pending task's place in LS_PENDING (the task at -1), mirrored in C */
static void task_take_slot(lua_State *L, Loop *lp, Task *t) {
  t->slot = slots_take(&lp->task_slots);
  if (t->slot >= lp->slot_task_cap) {
    int cap = lp->slot_task_cap ? lp->slot_task_cap * 2 : 1024;
    while (cap <= t->slot) cap *= 2;
    Task **p = realloc(lp->slot_task, (size_t)cap * sizeof *p);
    if (!p) { slots_give(&lp->task_slots, t->slot); luaL_error(L, "async: out of memory"); }
    memset(p + lp->slot_task_cap, 0, (size_t)(cap - lp->slot_task_cap) * sizeof *p);
    lp->slot_task = p; lp->slot_task_cap = cap;
  }
  lp->slot_task[t->slot] = t;
  loop_push_slot(L, lp, LS_PENDING);
  lua_pushvalue(L, -2); lua_rawseti(L, -2, t->slot);
  lua_pop(L, 1);
  lp->npending++;
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
  lua_setiuservalue(L, -2, UV_WAITER);
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

/* ---- task lifecycle ----------------------------------------------------- */

/* The body of the task at tidx ended: its results (or error) are the
 * values from first on; they become its outcome (and are popped). */
static void task_settle(lua_State *L, Loop *lp, int tidx, int first, int status) {
  Task *t = lua_touserdata(L, tidx);
  if ((status == LUA_OK || status == LUA_YIELD) && t->must_cancel) {
    t->must_cancel = 0;                      /* cancelled, then returned: it ends cancelled */
    lua_getiuservalue(L, tidx, UV_CANCELMSG);
    future_cancel(L, tidx, lua_isnil(L, -1) ? 0 : lua_gettop(L));
    lua_pop(L, 1);
  } else if (status == LUA_OK || status == LUA_YIELD) {
    future_set_result(L, tidx, lua_gettop(L) - first + 1);
  } else if (loop_is_cancelled(L, lp, -1)) {
    lua_getfield(L, -1, "message");
    future_cancel(L, tidx, -1);
    lua_pop(L, 1);
  } else {
    future_set_exception(L, tidx);
  }
}

static int task_main_k(lua_State *L, int status, lua_KContext ctx) {
  Loop *lp = (Loop *)ctx;
  if (!lua_isuserdata(L, 1)) {               /* run eagerly, with no Task at the start */
    Task *t = lp->current;
    if (!t || t->T != L) {                   /* and still none: the outcome goes to gather */
      lua_pushboolean(L, status == LUA_OK || status == LUA_YIELD);
      lua_replace(L, 2);                     /* over the message handler */
      return lua_gettop(L) - 1;              /* true, results... or false, error */
    }
    push_task(L, lp, t);
    lua_replace(L, 1);
  }
  task_settle(L, lp, 1, 3, status);
  return 0;
}

/* the thread's body: stack = task, fn, args... */
static int task_main(lua_State *L) {
  Loop *lp = lua_touserdata(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));       /* loop_msgh */
  lua_insert(L, 2);
  lua_pcallk(L, lua_gettop(L) - 3, LUA_MULTRET, 2, (lua_KContext)lp, task_main_k);
  return task_main_k(L, LUA_OK, (lua_KContext)lp);
}

#define POOL_MAX 256

/* A thread whose body returned normally is clean (status OK, empty stack)
 * and can run another task: keep a few. */
static void pool_put(lua_State *L, Loop *lp, lua_State *T) {
  if (lp->npool >= POOL_MAX || lua_status(T) != LUA_OK || lua_gettop(T) != 0) return;
  loop_push_slot(L, lp, LS_POOL);
  lua_pushthread(T);
  lua_xmove(T, L, 1);
  lua_rawseti(L, -2, ++lp->npool);
  lua_pop(L, 1);
}

/* a thread for a task (pushed): a pooled one, or a new one */
static lua_State *pool_take(lua_State *L, Loop *lp) {
  if (lp->npool == 0) return lua_newthread(L);
  loop_push_slot(L, lp, LS_POOL);
  lua_rawgeti(L, -1, lp->npool);
  lua_pushnil(L); lua_rawseti(L, -3, lp->npool--);
  lua_remove(L, -2);
  return lua_tothread(L, -1);
}

/* give the task a thread holding task_main, the task, fn and args;
 * returns the count to resume with */
static int task_start_thread(lua_State *L, Loop *lp, int tidx, Task *t) {
  lua_State *T = pool_take(L, lp);
  t->T = T;
  lua_getiuservalue(L, tidx, UV_CORO);
  lua_insert(L, -2);
  lua_setiuservalue(L, tidx, UV_THREAD);     /* the thread takes the coroutine's slot */
  Coro *c = lua_touserdata(L, -1);
  int coro = lua_gettop(L);
  luaL_checkstack(L, c->nargs + 3, "too many arguments");
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->task_main_ref);
  lua_pushvalue(L, tidx);
  for (int i = 1; i <= c->nargs + 2; i++) if (i != 2) lua_getiuservalue(L, coro, i);
  lua_xmove(L, T, c->nargs + 3);
  lua_pop(L, 1);
  return c->nargs + 2;
}

static void task_finished(lua_State *L, Loop *lp, int tidx, Task *t, lua_State *reusable) {
  tidx = lua_absindex(L, tidx);
  if (reusable) pool_put(L, lp, reusable);
  t->T = NULL;
  if (t->f.state == CANCELLED) {             /* no results: let the thread (or coroutine) go */
    lua_pushnil(L); lua_setiuservalue(L, tidx, UV_THREAD);
  }
  lua_pushnil(L); lua_setiuservalue(L, tidx, UV_WAITER);
  loop_push_slot(L, lp, LS_PENDING);
  lua_pushnil(L); lua_rawseti(L, -2, t->slot);
  lua_pop(L, 1);
  lp->slot_task[t->slot] = NULL;
  slots_give(&lp->task_slots, t->slot);
  lp->npending--;
}

/* debug mode: the tutorial's time.sleep mistake, named */
static void warn_slow(lua_State *L, int tidx, double secs) {
  char buf[300];
  Task *t = lua_touserdata(L, tidx);
  if (lua_getiuservalue(L, tidx, UV_NAME) == LUA_TSTRING)
    snprintf(buf, sizeof buf, "Executing <Task name='%.200s'> took %.3f seconds", lua_tostring(L, -1), secs);
  else
    snprintf(buf, sizeof buf, "Executing <Task name='Task-%d'> took %.3f seconds", t->id, secs);
  lua_pop(L, 1);
  lua_warning(L, buf, 0);
}

static void after_resume(lua_State *L, Loop *lp, int tidx, Task *t, lua_State *T, int status, int nres);
static void interrupt_wait(lua_State *L, Loop *lp, int tidx, Task *t);

/* Resume the task at tidx: first run, or wake after a wait.  argidx holds
 * the future it was waiting for, or nil (a sleep, a cancel, the start). */
void task_step(lua_State *L, Loop *lp, int tidx, int argidx) {
  Task *t = lua_touserdata(L, tidx);
  int nargs, nres;
  if (t->f.state != PENDING) return;
  if (!t->started) {
    t->started = 1;
    if (t->must_cancel) {                    /* cancelled before it ran */
      lua_getiuservalue(L, tidx, UV_CANCELMSG);
      future_cancel(L, tidx, -1);
      lua_pop(L, 1);
      task_finished(L, lp, tidx, t, NULL);
      return;
    }
    nargs = task_start_thread(L, lp, tidx, t);
  } else {
    Future *f = lua_isnil(L, argidx) ? NULL : lua_touserdata(L, argidx);
    if (f && f != t->waiter) return;         /* a stale wake-up */
    t->waiter = NULL;
    if (t->must_cancel) {
      t->must_cancel = 0;
      lua_pushboolean(L, 0);
      lua_getiuservalue(L, tidx, UV_CANCELMSG);
      push_error(L, lp, "CancelledError", -1);
      lua_remove(L, -2);
      nargs = 2;
    } else if (f && f->state == CANCELLED) {
      lua_pushboolean(L, 0);
      lua_getiuservalue(L, argidx, UV_CANCELMSG);
      push_error(L, lp, "CancelledError", -1);
      lua_remove(L, -2);
      nargs = 2;
    } else if (f && f->failed) {
      f->retrieved = 1;
      lua_pushboolean(L, 0);
      lua_getiuservalue(L, argidx, UV_RESULT);
      nargs = 2;
    } else if (f) {
      lua_pushboolean(L, 1);
      lua_getiuservalue(L, argidx, UV_RESULT);
      if (f->nres == 0) { lua_pop(L, 1); nargs = 1; }
      else if (f->nres == 1) nargs = 2;
      else {
        int r = lua_gettop(L);
        luaL_checkstack(L, f->nres, "too many results");
        for (int i = 1; i <= f->nres; i++) lua_rawgeti(L, r, i);
        lua_remove(L, r);
        nargs = f->nres + 1;
      }
    } else {
      lua_pushboolean(L, 1);
      nargs = 1;
    }
    lua_xmove(L, t->T, nargs);
  }
  lua_State *T = t->T;
  lua_getiuservalue(L, tidx, UV_THREAD);     /* keep T reachable while it runs */
  Task *prev = lp->current;
  lp->current = t;
  uint64_t t0 = lp->debug ? uv_hrtime() : 0;
  int status = lua_resume(T, L, nargs, &nres);
  lp->reraising = 0;                         /* (a pcall in the task took the error) */
  lp->current = prev;
  if (lp->debug) {
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    if (secs > lp->slow_threshold) warn_slow(L, tidx, secs);
  }
  after_resume(L, lp, tidx, t, T, status, nres);
  lua_pop(L, 1);
}

/* the task's thread T stopped (status, nres from lua_resume): suspended at
 * an await, or done */
static void after_resume(lua_State *L, Loop *lp, int tidx, Task *t, lua_State *T, int status, int nres) {
  if (status == LUA_YIELD) {
    lua_pop(T, nres);
    if (t->awaiting) {
      t->awaiting = 0;
      if (t->must_cancel) interrupt_wait(L, lp, tidx, t);   /* it cancelled itself, then waited */
      return;
    }
    lua_resetthread(T);                      /* not ours: a bare coroutine.yield */
    lua_pushliteral(L, "coroutine.yield() inside a task: tasks suspend only through await "
                       "(use async.generator for iterators that await)");
    future_set_exception(L, tidx);
    T = NULL;
  } else if (status != LUA_OK) {             /* escaped task_main's pcall */
    lua_xmove(T, L, 1);
    future_set_exception(L, tidx);
    T = NULL;
  }
  task_finished(L, lp, tidx, t, T);
}

/* a coroutine object becomes a task's body once (library awaitables: any
 * number of times) */
static void coro_schedule(lua_State *L, Loop *lp, Coro *c) {
  if (c->reusable) return;
  if (c->state != CORO_CREATED)
    raise_error(L, lp, "InvalidStateError", "create_task: the coroutine object was already %s",
                c->state == CORO_AWAITED ? "awaited" : "scheduled");
  c->state = CORO_SCHEDULED;
}

/* ---- eager gather children: a Task only when one is needed -------------- */

/* A child of gather runs at once in a thread of its own (lp->probe).  Most
 * finish in that first step (W1: 100,000 trivial coroutines), so their
 * Task, with its bookkeeping, is made only if the child suspends or asks
 * for it (await, sleep, current_task...): here, from inside the child. */
static Task *task_materialize(lua_State *L, Loop *lp) {
  lua_State *T = lp->probe;
  Task *t = task_alloc(L, lp);
  t->started = 1;
  t->T = T;
  if (T != L && !lua_checkstack(T, 1)) luaL_error(L, "async: stack overflow");
  lua_pushthread(T);                         /* (L may be a generator's thread that T drives) */
  if (T != L) lua_xmove(T, L, 1);
  lua_setiuservalue(L, -2, UV_THREAD);
  task_take_slot(L, lp, t);
  lua_pop(L, 1);
  lp->probe = NULL;
  lp->probe_task = lp->current = t;
  return t;
}

/* What task_run_eager and task_run_batch save around running gather
 * children in a probe thread (they may nest: a child may gather). */
typedef struct ProbeSave { Task *current, *probe_task; lua_State *probe; } ProbeSave;

static void probe_save(Loop *lp, ProbeSave *s) {
  s->current = lp->current; s->probe_task = lp->probe_task; s->probe = lp->probe;
}

static void probe_restore(Loop *lp, const ProbeSave *s) {
  lp->current = s->current; lp->probe_task = s->probe_task; lp->probe = s->probe;
}

/* the probe thread kept at thidx, or a pooled one put there */
static lua_State *probe_thread(lua_State *L, Loop *lp, int thidx) {
  lua_State *T = lua_tothread(L, thidx);     /* kept reachable there while it runs */
  if (!T) { T = pool_take(L, lp); lua_replace(L, thidx); }
  return T;
}

/* a child's Task took the probe thread T over in a resume that ended with
 * status: thidx goes nil, the Task is pushed and its step finished */
static void probe_handover(lua_State *L, Loop *lp, int thidx, Task *t, lua_State *T, int status, int nres) {
  lua_pushnil(L);
  lua_replace(L, thidx);
  push_task(L, lp, t);
  after_resume(L, lp, lua_gettop(L), t, T, status, nres);
}

/* Run the coroutine object at cidx at once, in the thread at stack index
 * thidx (nil: one is taken from the pool and put there; task_main is at
 * thidx + 1: task_push_mains).  Returns 1 if it
 * finished without needing a Task, with (true, first result) or (false,
 * error) pushed, its clean thread left at thidx for the next child; else 0
 * with its Task pushed (pending, or done in this step), thidx then nil. */
int task_run_eager(lua_State *L, Loop *lp, int cidx, int thidx) {
  Coro *c = lua_touserdata(L, cidx);
  cidx = lua_absindex(L, cidx);
  coro_schedule(L, lp, c);
  thidx = lua_absindex(L, thidx);
  lua_State *T = probe_thread(L, lp, thidx);
  luaL_checkstack(L, c->nargs + 3, "too many arguments");
  lua_pushvalue(L, thidx + 1);                /* task_main, kept there by the caller */
  lua_pushboolean(L, 0);                      /* where task_main expects its task */
  for (int i = 1; i <= c->nargs + 2; i++) if (i != 2) lua_getiuservalue(L, cidx, i);
  lua_xmove(L, T, c->nargs + 3);
  ProbeSave saved;
  probe_save(lp, &saved);
  lp->current = NULL; lp->probe = T; lp->probe_task = NULL;
  int nres, status = lua_resume(T, L, c->nargs + 2, &nres);
  Task *t = lp->probe_task;
  if (!t && status != LUA_OK) t = task_materialize(L, lp);   /* a bare yield, an error past pcall */
  probe_restore(lp, &saved);
  if (!t) {                                  /* T holds ok, results...: keep two */
    if (nres < 2) lua_pushnil(T);
    lua_settop(T, 2);
    lua_xmove(T, L, 2);                      /* T is clean again: ready for the next child */
    return 1;
  }
  probe_handover(L, lp, thidx, t, T, status, nres);
  return 0;
}

/* Gather's fresh coroutine-object children, a run at a time: one thread
 * runs child after child under a pcall each (no resume per child), until a
 * child is not a fresh coroutine object (the caller takes it), or one
 * needs a Task (it suspended, or asked for its Task).  A child that
 * suspends keeps the thread (its Task's now); the loop's frame stays below
 * it, and the pcall's continuation settles that Task alone.  In a
 * coroutine, a pcall's error also ends in the continuation: lp->batch
 * tells the two apart.
 * Thread stack: 1 list, 2 gather, 3 outer future, 4 results, 5 msgh. */
struct Batch { int i, n; lua_State *T; };

static int batch_k(lua_State *L, int status, lua_KContext base);

/* the child whose function was at base + 1 ended, with task t: its
 * outcome (the values from base + 1 on) goes to t, left at base + 1 */
static void batch_settle(lua_State *L, Loop *lp, Task *t, int base, int status) {
  push_task(L, lp, t);
  lua_insert(L, base + 1);
  task_settle(L, lp, base + 1, base + 2, status);
}

/* the child whose function was at base + 1 ended in its first step:
 * 1 if it had made its Task (settled and pushed), else 0, its outcome
 * given to gather */
static int batch_child_end(lua_State *L, Loop *lp, Batch *b, int base, int status) {
  if (lp->probe_task) {                      /* it asked for its Task */
    batch_settle(L, lp, lp->probe_task, base, status);
    lua_pushvalue(L, base + 1);
    return 1;
  }
  lua_pushboolean(L, status == LUA_OK);
  if (lua_gettop(L) > base + 1) lua_pushvalue(L, base + 1); else lua_pushnil(L);
  gather_child_eager(L, lp, 2, 3, 4, b->i);
  lua_settop(L, 5);
  return 0;
}

static int batch_run(lua_State *L, Loop *lp, Batch *b) {
  for (; b->i <= b->n; b->i++) {
    lua_rawgeti(L, 1, b->i);
    Coro *c = coro_test(L, lp, -1);
    if (!c || (!c->reusable && c->state != CORO_CREATED)) { lua_pop(L, 1); return 0; }
    if (!c->reusable) c->state = CORO_SCHEDULED;
    int base = lua_gettop(L);
    luaL_checkstack(L, c->nargs + 3, "too many arguments");
    for (int i = 1; i <= c->nargs + 2; i++) if (i != 2) lua_getiuservalue(L, base, i);
    lp->current = NULL; lp->probe = L; lp->probe_task = NULL;
    int status = lua_pcallk(L, c->nargs, LUA_MULTRET, 5, (lua_KContext)base, batch_k);
    if (batch_child_end(L, lp, b, base, status)) return 1;   /* the Task, done */
  }
  return 0;
}

static int batch_k(lua_State *L, int status, lua_KContext base) {
  Loop *lp = lua_touserdata(L, lua_upvalueindex(1));
  Batch *b = lp->batch;
  if (b && b->T == L) {                      /* an error in the child's first step */
    if (batch_child_end(L, lp, b, (int)base, status)) return 1;
    b->i++;
    return batch_run(L, lp, b);
  }
  batch_settle(L, lp, lp->current, (int)base, status);   /* it had suspended: the thread is its Task's */
  return 0;
}

static int batch_main(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(2));     /* loop_msgh, at 5 */
  Loop *lp = lua_touserdata(L, lua_upvalueindex(1));
  return batch_run(L, lp, lp->batch);
}

/* Run gather's children from `first` (of n, in the list at listidx) as
 * above, in the thread at thidx (nil: a pooled one is put there); outcomes
 * go to the gather (gidx, its outer future oidx, its results ridx).
 * Returns the index of the child it stopped at (n + 1: all done).  If that
 * child needed a Task, the Task is pushed (pending, or done) and *made is
 * 1: the caller registers it and goes on after it; thidx is then nil if
 * the Task kept the thread. */
int task_run_batch(lua_State *L, Loop *lp, int listidx, int gidx, int oidx, int ridx,
                   int first, int n, int thidx, int *made) {
  lua_State *T = probe_thread(L, lp, thidx);
  Batch b = { first, n, T }, *prev_batch = lp->batch;
  luaL_checkstack(L, 5, "gather");
  lua_pushvalue(L, thidx + 2);               /* batch_main, kept there by the caller */
  lua_pushvalue(L, listidx); lua_pushvalue(L, gidx); lua_pushvalue(L, oidx); lua_pushvalue(L, ridx);
  lua_xmove(L, T, 5);
  ProbeSave saved;
  probe_save(lp, &saved);
  lp->eager_depth++;
  lp->batch = &b;
  int nres, status = lua_resume(T, L, 4, &nres);
  lp->batch = prev_batch;
  lp->eager_depth--;
  Task *t = lp->probe_task;
  *made = 0;
  if (status == LUA_YIELD && !t) t = task_materialize(L, lp);   /* a bare yield */
  probe_restore(lp, &saved);
  if (status == LUA_OK) {
    if (nres == 1) {                         /* a Task made and done in its first step */
      lua_xmove(T, L, 1);
      task_finished(L, lp, -1, t, NULL);
      *made = 1;
    }
    lua_settop(T, 0);                        /* T is clean again: ready for the next run */
    return b.i;
  }
  if (status != LUA_YIELD) {                 /* not a child's error (each has its pcall): ours */
    lua_pushnil(L);
    lua_replace(L, thidx);                   /* T is broken */
    lua_xmove(T, L, 1);
    return lua_error(L);
  }
  probe_handover(L, lp, thidx, t, T, status, nres);
  *made = 1;
  return b.i;
}

/* the functions probe threads start in, pushed once per gather: task_main
 * (task_run_eager) then batch_main (task_run_batch), at thidx + 1 and + 2 */
void task_push_mains(lua_State *L, Loop *lp) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->task_main_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->batch_main_ref);
}

/* a thread left by task_run_eager goes back to the pool */
void task_pool_thread(lua_State *L, Loop *lp, int thidx) {
  lua_State *T = lua_tothread(L, thidx);
  if (T) pool_put(L, lp, T);
}

/* Wrap the coroutine object at cidx in a new Task (pushed), name at nameidx
 * (0: none).  Returns NULL, pushing nothing, if cidx is no coroutine object. */
Task *task_new(lua_State *L, Loop *lp, int cidx, int nameidx) {
  return task_new_ex(L, lp, cidx, nameidx, 1);
}

/* as task_new; scheduled = 0: the caller runs the first step itself */
Task *task_new_ex(lua_State *L, Loop *lp, int cidx, int nameidx, int scheduled) {
  Coro *c = coro_test(L, lp, cidx);
  if (!c) return NULL;
  cidx = lua_absindex(L, cidx);
  coro_schedule(L, lp, c);
  Task *t = task_alloc(L, lp);
  int tidx = lua_gettop(L);
  if (nameidx) { lua_pushvalue(L, nameidx); lua_setiuservalue(L, tidx, UV_NAME); }
  /* the thread comes at the first step: a task that has not started costs
   * no stack, and a finished task's thread serves the next one */
  lua_pushvalue(L, cidx);
  lua_setiuservalue(L, tidx, UV_CORO);
  task_take_slot(L, lp, t);
  if (scheduled) loop_enqueue_task(L, lp, t);
  return t;
}

static int l_create_task(lua_State *L) {
  Loop *lp = loop_get(L);
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TSTRING);
  if (!task_new(L, lp, 1, lua_isnil(L, 2) ? 0 : 2)) return luaL_typeerror(L, 1, "coroutine object");
  return 1;
}

static int task_cancel_at(lua_State *L, Loop *lp, int tidx, int msgidx);

/* Make the task's await raise CancelledError (its message in UV_CANCELMSG):
 * at once if it sleeps or waits in a ring; through the cancellation of the
 * future or task it awaits; or, when it runs (it cancelled itself) or a
 * wake-up is already queued, at its next step (must_cancel).  A task that
 * suspends with must_cancel set comes back here (after_resume): asyncio's
 * _must_cancel, delivered at the first suspension. */
static void interrupt_wait(lua_State *L, Loop *lp, int tidx, Task *t) {
  if (t->timer_pos != TIMER_NONE || t->ring_owner) {
    if (t->timer_pos != TIMER_NONE) loop_remove_timer(lp, t->timer_pos);
    t->ring_owner = NULL;                    /* its ring entry is stale from now on */
    t->must_cancel = 1;
    loop_enqueue_task(L, lp, t);
    return;
  }
  if (t->waiter) {
    int done;
    lua_getiuservalue(L, tidx, UV_WAITER);
    int msgidx = lua_getiuservalue(L, tidx, UV_CANCELMSG) == LUA_TNIL ? 0 : lua_gettop(L);
    if (t->waiter->tag == TAG_TASK) done = task_cancel_at(L, lp, -2, msgidx);
    else done = future_cancel(L, -2, msgidx);
    lua_pop(L, 2);
    if (done) { t->must_cancel = 0; return; }   /* the waiter's callback wakes us */
  }
  t->must_cancel = 1;
}

static int task_cancel_at(lua_State *L, Loop *lp, int tidx, int msgidx) {
  Task *t = lua_touserdata(L, tidx);
  if (t->f.state != PENDING) return 0;
  tidx = lua_absindex(L, tidx);
  t->ncancel++;
  if (msgidx) lua_pushvalue(L, msgidx); else lua_pushnil(L);
  lua_setiuservalue(L, tidx, UV_CANCELMSG);
  interrupt_wait(L, lp, tidx, t);
  return 1;
}

int task_cancel(lua_State *L, Loop *lp, int tidx, int msgidx) {
  return task_cancel_at(L, lp, tidx, msgidx);
}

static int t_cancel(lua_State *L) {
  task_check(L, 1);
  lua_pushboolean(L, task_cancel_at(L, loop_get(L), 1, lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

static int t_uncancel(lua_State *L) {
  Task *t = task_check(L, 1);
  if (t->ncancel > 0) t->ncancel--;
  if (t->ncancel == 0) t->must_cancel = 0;
  lua_pushinteger(L, t->ncancel);
  return 1;
}

static int t_cancelling(lua_State *L) {
  lua_pushinteger(L, task_check(L, 1)->ncancel);
  return 1;
}

static int t_get_name(lua_State *L) {
  Task *t = task_check(L, 1);
  if (lua_getiuservalue(L, 1, UV_NAME) == LUA_TNIL) lua_pushfstring(L, "Task-%d", t->id);
  return 1;
}

static int t_set_name(lua_State *L) {
  task_check(L, 1);
  luaL_checkany(L, 2);
  luaL_tolstring(L, 2, NULL);
  lua_setiuservalue(L, 1, UV_NAME);
  return 0;
}

static int t_tostring(lua_State *L) {
  Task *t = task_check(L, 1);
  static const char *states[] = {"pending", "finished", "cancelled"};
  t_get_name(L);
  lua_pushfstring(L, "<Task %s name='%s'>", t->f.failed ? "finished (error)" : states[t->f.state],
                  lua_tostring(L, -1));
  return 1;
}

static int l_current_task(lua_State *L) {
  Loop *lp = loop_get(L);
  Task *t = current_task(L, lp);
  if (!t) return 0;
  push_task(L, lp, t);
  return 1;
}

static int l_all_tasks(lua_State *L) {
  Loop *lp = loop_get(L);
  current_task(L, lp);                       /* the caller is one of them */
  lua_createtable(L, lp->npending, 0);
  loop_push_slot(L, lp, LS_PENDING);
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) { lua_rawseti(L, -4, ++n); }
  lua_pop(L, 1);
  return 1;
}

static int l_iscoroutine(lua_State *L) {
  lua_pushboolean(L, coro_test(L, loop_get(L), 1) != NULL);
  return 1;
}

static int l_isfuture(lua_State *L) {
  lua_pushboolean(L, future_test(L, 1) != NULL);
  return 1;
}

/* core.first_non_awaitable(list, n): the index of the first entry that is
 * neither a coroutine object nor a future, or nothing (one C loop: gather's
 * check at the call, over 100,000 children) */
static int l_first_non_awaitable(lua_State *L) {
  Loop *lp = loop_get(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    int ok = coro_test(L, lp, -1) || future_test(L, -1);
    lua_pop(L, 1);
    if (!ok) { lua_pushinteger(L, i); return 1; }
  }
  return 0;
}

static int l_istask(lua_State *L) {
  lua_pushboolean(L, task_test(L, 1) != NULL);
  return 1;
}

/* core.gen_thread(fn): a thread for an async generator, allowed to await */
static int l_gen_thread(lua_State *L) {
  Loop *lp = loop_get(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *G = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, G, 1);
  loop_push_slot(L, lp, LS_GENTHREADS);
  lua_pushvalue(L, -2); lua_pushboolean(L, 1); lua_rawset(L, -3);
  lua_pop(L, 1);
  return 1;
}

/* async.traceback(e) */
static int l_traceback(lua_State *L) {
  Loop *lp = loop_get(L);
  luaL_checkany(L, 1);
  if (lua_isnil(L, 1)) return 0;
  loop_push_slot(L, lp, loop_traceback_slot(L, 1));
  lua_pushvalue(L, 1);
  lua_rawget(L, -2);
  return 1;
}

extern const luaL_Reg future_shared_methods[];

static const luaL_Reg task_methods[] = {
  {"cancel", t_cancel}, {"uncancel", t_uncancel}, {"cancelling", t_cancelling},
  {"get_name", t_get_name}, {"set_name", t_set_name}, {NULL, NULL}
};

static const luaL_Reg task_funcs[] = {
  {"fn", l_fn}, {"coro", l_coro}, {"await", l_await}, {"suspend", l_suspend},
  {"current_task", l_current_task}, {"all_tasks", l_all_tasks},
  {"iscoroutine", l_iscoroutine}, {"isfuture", l_isfuture}, {"istask", l_istask},
  {"first_non_awaitable", l_first_non_awaitable},
  {"gen_thread", l_gen_thread}, {"traceback", l_traceback},
  {NULL, NULL}
};

int task_open(lua_State *L, Loop *lp) {
  int mod = lua_gettop(L);
  luaL_newmetatable(L, CORO_MT);
  loop_register_mt(L, lp, MT_CORO);
  lua_pushcfunction(L, coro_gc); lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, coro_tostring); lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "coroutine"); lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_newmetatable(L, CORO_MT ".lib");
  loop_register_mt(L, lp, MT_LIBCORO);
  lua_pushcfunction(L, coro_tostring); lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "coroutine"); lua_setfield(L, -2, "__name");
  lua_pop(L, 1);

  luaL_newmetatable(L, TASK_MT);
  loop_register_mt(L, lp, MT_TASK);
  lua_newtable(L);
  lua_pushlightuserdata(L, lp); luaL_setfuncs(L, future_shared_methods, 1);
  lua_pushlightuserdata(L, lp); luaL_setfuncs(L, task_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, t_tostring, 1); lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, task_funcs, 1);

  lua_pushlightuserdata(L, lp);
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, loop_msgh, 1);
  lua_pushcclosure(L, task_main, 2);
  lp->task_main_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, lp);
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, loop_msgh, 1);
  lua_pushcclosure(L, batch_main, 2);
  lp->batch_main_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, l_create_task, 1);
  lua_setfield(L, mod, "create_task");

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
