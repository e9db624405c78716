/*
 * combinators.c - gather's C half: the per-child bookkeeping, and running
 * fresh children at once, with a Task only for those that need one.
 *
 * gather(100,000 coroutines) must not cost a Lua call per child, so the
 * children's done callback is a small userdata, a DoneHook (core.h), that
 * the future code calls directly.  The rest of gather (awaiting, cancelling the
 * children when the gather is cancelled) and the other combinators live in
 * src/async/prelude.lua.
 */
#include "core.h"

typedef struct Gather {
  DoneHook hook;            /* first: the futures call hook.done */
  int n, remaining;
  int return_exceptions;
} Gather;

/* user values: the outer future; the children (a future, or nil for a
 * child that finished in its first step with no Task); the results */
enum { G_OUTER = 1, G_CHILDREN, G_RESULTS, G_NUV = G_RESULTS };

/* push the child's outcome as a gather list entry: its first result, or
 * its error (marked as seen), or a CancelledError */
static void push_outcome(lua_State *L, Loop *lp, int fidx) {
  Future *f = lua_touserdata(L, fidx);
  if (f->state == CANCELLED) {
    lua_getiuservalue(L, fidx, UVAL_CANCELMSG);
    push_error(L, lp, "CancelledError", -1);
    lua_remove(L, -2);
    return;
  }
  if (f->failed) f->retrieved = 1;
  if (lua_getiuservalue(L, fidx, UVAL_RESULT) == LUA_TTABLE && f->nres > 1 && !f->failed) {
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
}

/* A results list answers `r.n` (its length: results may be nil) through
 * its metatable, not a field of its own, so that it stays a plain list to
 * pairs, deep comparisons (busted's assert.same) and JSON encoders.  The
 * metatables, {__index = {n = N}}, are shared per length, from a cache on
 * the loop; lengths past LISTMT_CACHED get one of their own. */
#define LISTMT_CACHED 4096

static void list_set_n(lua_State *L, Loop *lp, int listidx, int n) {
  listidx = lua_absindex(L, listidx);
  loop_push_ref(L, lp, LS_LISTMT);
  if (lua_rawgeti(L, -1, n) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, 1);
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    lua_setfield(L, -2, "__index");
    if (n <= LISTMT_CACHED) { lua_pushvalue(L, -1); lua_rawseti(L, -3, n); }
  }
  lua_setmetatable(L, listidx);
  lua_pop(L, 1);
}

/* every child is done: the results list (answering n) is the outer result */
static void gather_finish(lua_State *L, Loop *lp, int gidx, int oidx) {
  Gather *g = lua_touserdata(L, gidx);
  lua_getiuservalue(L, gidx, G_RESULTS);
  lua_getiuservalue(L, gidx, G_CHILDREN);
  for (int i = 1; i <= g->n; i++) {
    if (lua_rawgeti(L, -1, i) == LUA_TNIL) { lua_pop(L, 1); continue; }   /* finished at once: result in */
    push_outcome(L, lp, lua_gettop(L));
    lua_rawseti(L, -4, i);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  list_set_n(L, lp, -1, g->n);
  future_set_result(L, oidx, 1);
}

static void gather_child_done(lua_State *L, int gidx, int fidx) {
  Gather *g = lua_touserdata(L, gidx);
  Future *child = lua_touserdata(L, fidx);
  int top = lua_gettop(L);
  gidx = lua_absindex(L, gidx); fidx = lua_absindex(L, fidx);
  g->remaining--;
  lua_getiuservalue(L, gidx, G_OUTER);
  Future *outer = lua_touserdata(L, -1);
  int oidx = lua_gettop(L);
  Loop *lp = outer->loop;
  if (outer->state != PENDING) {             /* already failed: just mark seen */
    if (child->failed) child->retrieved = 1;
  } else if (!g->return_exceptions && (child->failed || child->state == CANCELLED)) {
    push_outcome(L, lp, fidx);
    future_set_exception(L, oidx);
  } else if (g->remaining == 0) {
    gather_finish(L, lp, gidx, oidx);
  }
  lua_settop(L, top);
}

/* a child that finished in its first step: (ok, result or error) on top, popped */
void gather_child_eager(lua_State *L, Loop *lp, int gidx, int oidx, int ridx, int i) {
  Gather *g = lua_touserdata(L, gidx);
  Future *outer = lua_touserdata(L, oidx);
  int ok = lua_toboolean(L, -2);
  g->remaining--;
  if (outer->state != PENDING) lua_pop(L, 1);
  else if (!ok && !g->return_exceptions) future_set_exception(L, oidx);
  else lua_rawseti(L, ridx, i);
  lua_pop(L, 1);
  if (g->remaining == 0 && outer->state == PENDING) gather_finish(L, lp, gidx, oidx);
}

/* core.gather(list, n, return_exceptions) -> outer future, children list */
/* the stack places of one gather's call (see l_gather) */
typedef struct Places { int gidx, oidx, cidx, ridx, thidx, eager; } Places;

/* push the Gather, its outer future, its children's and results' lists */
static void gather_new(lua_State *L, Loop *lp, int n, int return_exceptions, Places *at) {
  Gather *g = lua_newuserdatauv(L, sizeof *g, G_NUV);
  g->hook.tag = TAG_DONE_HOOK; g->hook.done = gather_child_done;
  g->n = n; g->remaining = n; g->return_exceptions = return_exceptions;
  at->gidx = lua_gettop(L);
  future_new(L, lp);
  at->oidx = lua_gettop(L);
  lua_pushvalue(L, at->oidx);
  lua_setiuservalue(L, at->gidx, G_OUTER);
  lua_createtable(L, n, 0);
  at->cidx = lua_gettop(L);
  lua_pushvalue(L, at->cidx);
  lua_setiuservalue(L, at->gidx, G_CHILDREN);
  lua_createtable(L, n, 1);
  at->ridx = lua_gettop(L);
  lua_pushvalue(L, at->ridx);
  lua_setiuservalue(L, at->gidx, G_RESULTS);
}

/* the child future (or Task) on top is child i: keep it, hear of its end */
static void keep_child(lua_State *L, const Places *at, int i) {
  lua_pushvalue(L, -1);
  lua_rawseti(L, at->cidx, i);
  future_add_callback(L, -1, at->gidx);
}

/* Start child i, not a fresh coroutine object run in a batch: a future is
 * kept as it is; a coroutine object runs at once (eager), or becomes a
 * Task.  Returns 1 if it finished at once with no Task (a batch may
 * follow), else 0. */
static int start_child(lua_State *L, Loop *lp, const Places *at, int i) {
  lua_rawgeti(L, 1, i);
  Task *t = NULL;
  if (!future_test(L, -1)) {
    if (at->eager && !lp->debug && coro_is(L, lp, -1)) {
      lp->eager_depth++;
      int done = task_run_eager(L, lp, -1, at->thidx);
      lp->eager_depth--;
      if (done) {                             /* children[i] stays nil */
        gather_child_eager(L, lp, at->gidx, at->oidx, at->ridx, i);
        lua_pop(L, 1);
        return 1;
      }
      lua_remove(L, -2);                      /* its Task, past its first step, took over */
    } else {
      if (!(t = task_new_ex(L, lp, -1, 0, !at->eager)))
        return luaL_error(L, "bad argument #%d to 'gather' (awaitable expected, got %s)",
                          i, luaL_typename(L, -1));
      lua_remove(L, -2);
    }
  }
  keep_child(L, at, i);
  if (t && at->eager) {
    lua_pushnil(L);
    lp->eager_depth++;
    task_step(L, lp, lua_gettop(L) - 1, lua_gettop(L));
    lp->eager_depth--;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* core.gather(list, n, return_exceptions): the outer future and the children */
static int l_gather(lua_State *L) {
  Loop *lp = loop_get(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)luaL_checkinteger(L, 2);
  Places at;
  gather_new(L, lp, n, lua_toboolean(L, 3), &at);
  if (n == 0) gather_finish(L, lp, at.gidx, at.oidx);   /* gather() of nothing: {} at once */
  /* Coroutine objects start at once, in argument order (Python 3.12's
   * eager tasks), and one that finishes without waiting gets no Task at
   * all (task_run_eager).  Nested gathers fall back to scheduling past a
   * small depth, to bound the C stack; debug mode gives every child a
   * Task, so that each is timed and named. */
  at.eager = lp->eager_depth < 8;
  lua_pushnil(L);                            /* the thread children finishing at once share */
  at.thidx = lua_gettop(L);
  task_push_mains(L, lp);                    /* at thidx + 1 and + 2 */
  /* Children that finish at once run a batch at a time, in one thread
   * (task_run_batch); while children keep suspending, each runs alone
   * (task_run_eager), which costs less to restart. */
  int batch = at.eager && !lp->debug;
  for (int i = 1; i <= n; i++) {
    if (batch) {
      int made, first = i;
      i = task_run_batch(L, lp, 1, at.gidx, at.oidx, at.ridx, i, n, at.thidx, &made);
      if (made) {                            /* child i needed its Task (pushed) */
        batch = i > first;
        keep_child(L, &at, i);
        lua_pop(L, 1);
        continue;
      }
      if (i > n) break;
    }
    if (start_child(L, lp, &at, i)) batch = 1;
  }
  task_pool_thread(L, lp, at.thidx);
  lua_pushvalue(L, at.oidx);
  lua_pushvalue(L, at.cidx);
  return 2;
}

/* ---- eager gather children: a Task only when one is needed -------------- */

/* A child of gather runs at once in a thread of its own (lp->probe).  Most
 * finish in that first step (W1: 100,000 trivial coroutines), so their
 * Task, with its bookkeeping, is made only if the child suspends or asks
 * for it (await, sleep, current_task...): here, from inside the child. */
Task *task_materialize(lua_State *L, Loop *lp) {
  lua_State *T = lp->probe;
  Task *t = task_alloc(L, lp);
  t->started = 1;
  t->T = T;
  if (T != L && !lua_checkstack(T, 1)) luaL_error(L, "async: stack overflow");
  lua_pushthread(T);                         /* (L may be a generator's thread that T drives) */
  if (T != L) lua_xmove(T, L, 1);
  lua_setiuservalue(L, -2, UVAL_THREAD);
  task_take_pending_id(L, lp, t);
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
  if (!T) { T = task_pool_take(L, lp); lua_replace(L, thidx); }
  return T;
}

/* a child's Task took the probe thread T over in a resume that ended with
 * status: thidx goes nil, the Task is pushed and its step finished */
static void probe_handover(lua_State *L, Loop *lp, int thidx, Task *t, lua_State *T, int status, int nres) {
  lua_pushnil(L);
  lua_replace(L, thidx);
  push_task(L, lp, t);
  task_after_resume(L, lp, lua_gettop(L), t, T, status, nres);
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
 * coroutine, a pcall's error also ends in the continuation: lp->child_run
 * tells the two apart.
 * Thread stack: 1 list, 2 gather, 3 outer future, 4 results, 5 msgh. */
struct ChildRun { int i, n; lua_State *T; };

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
static int batch_child_end(lua_State *L, Loop *lp, ChildRun *b, int base, int status) {
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

static int batch_run(lua_State *L, Loop *lp, ChildRun *b) {
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
  ChildRun *b = lp->child_run;
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
  return batch_run(L, lp, lp->child_run);
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
  ChildRun b = { first, n, T }, *prev_run = lp->child_run;
  luaL_checkstack(L, 5, "gather");
  lua_pushvalue(L, thidx + 2);               /* batch_main, kept there by the caller */
  lua_pushvalue(L, listidx); lua_pushvalue(L, gidx); lua_pushvalue(L, oidx); lua_pushvalue(L, ridx);
  lua_xmove(L, T, 5);
  ProbeSave saved;
  probe_save(lp, &saved);
  lp->eager_depth++;
  lp->child_run = &b;
  int nres, status = lua_resume(T, L, 4, &nres);
  lp->child_run = prev_run;
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
  if (T) task_pool_put(L, lp, T);
}


static const luaL_Reg funcs[] = { {"gather", l_gather}, {NULL, NULL} };

int combinators_open(lua_State *L, Loop *lp) {
  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, funcs, 1);
  lp->batch_main_ref = loop_ref_thread_main(L, lp, batch_main);
  return 0;
}
