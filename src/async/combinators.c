/*
 * combinators.c - the part of gather that runs per child, in C.
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
    lua_getiuservalue(L, fidx, UV_CANCELMSG);
    push_error(L, lp, "CancelledError", -1);
    lua_remove(L, -2);
    return;
  }
  if (f->failed) f->retrieved = 1;
  if (lua_getiuservalue(L, fidx, UV_RESULT) == LUA_TTABLE && f->nres > 1 && !f->failed) {
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
  loop_push_slot(L, lp, LS_LISTMT);
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
static int l_gather(lua_State *L) {
  Loop *lp = loop_get(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)luaL_checkinteger(L, 2);
  Gather *g = lua_newuserdatauv(L, sizeof *g, G_NUV);
  g->hook.tag = TAG_DONE_HOOK; g->hook.done = gather_child_done; g->n = n; g->remaining = n; g->return_exceptions = lua_toboolean(L, 3);
  int gidx = lua_gettop(L);
  future_new(L, lp);
  int oidx = lua_gettop(L);
  lua_pushvalue(L, oidx);
  lua_setiuservalue(L, gidx, G_OUTER);
  lua_createtable(L, n, 0);
  int cidx = lua_gettop(L);
  lua_pushvalue(L, cidx);
  lua_setiuservalue(L, gidx, G_CHILDREN);
  lua_createtable(L, n, 1);
  int ridx = lua_gettop(L);
  lua_pushvalue(L, ridx);
  lua_setiuservalue(L, gidx, G_RESULTS);
  if (n == 0) gather_finish(L, lp, gidx, oidx);   /* gather() of nothing: {} at once */
  /* Coroutine objects start at once, in argument order (Python 3.12's
   * eager tasks), and one that finishes without waiting gets no Task at
   * all (task_run_eager).  Nested gathers fall back to scheduling past a
   * small depth, to bound the C stack; debug mode gives every child a
   * Task, so that each is timed and named. */
  int eager = lp->eager_depth < 8;
  lua_pushnil(L);                            /* the thread children finishing at once share */
  int thidx = lua_gettop(L);
  task_push_mains(L, lp);                    /* at thidx + 1 and + 2 */
  /* Children that finish at once run a batch at a time, in one thread
   * (task_run_batch); while children keep suspending, each runs alone
   * (task_run_eager), which costs less to restart. */
  int batch = eager && !lp->debug;
  for (int i = 1; i <= n; i++) {
    if (batch) {
      int made, first = i;
      i = task_run_batch(L, lp, 1, gidx, oidx, ridx, i, n, thidx, &made);
      if (made) {                            /* child i needed its Task (pushed) */
        batch = i > first;
        lua_pushvalue(L, -1);
        lua_rawseti(L, cidx, i);
        future_add_callback(L, -1, gidx);
        lua_pop(L, 1);
        continue;
      }
      if (i > n) break;
    }
    lua_rawgeti(L, 1, i);
    Task *t = NULL;
    if (!future_test(L, -1)) {
      if (eager && !lp->debug && coro_is(L, lp, -1)) {
        lp->eager_depth++;
        int done = task_run_eager(L, lp, -1, thidx);
        lp->eager_depth--;
        if (done) {                           /* children[i] stays nil */
          gather_child_eager(L, lp, gidx, oidx, ridx, i);
          lua_pop(L, 1);
          batch = 1;
          continue;
        }
        lua_remove(L, -2);                    /* its Task, past its first step, took over */
      } else {
        if (!(t = task_new_ex(L, lp, -1, 0, !eager)))
          return luaL_error(L, "bad argument #%d to 'gather' (awaitable expected, got %s)",
                            i, luaL_typename(L, -1));
        lua_remove(L, -2);
      }
    }
    lua_pushvalue(L, -1);
    lua_rawseti(L, cidx, i);
    future_add_callback(L, -1, gidx);
    if (t && eager) {
      lua_pushnil(L);
      lp->eager_depth++;
      task_step(L, lp, lua_gettop(L) - 1, lua_gettop(L));
      lp->eager_depth--;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  task_pool_thread(L, lp, thidx);
  lua_pushvalue(L, oidx);
  lua_pushvalue(L, cidx);
  return 2;
}

static const luaL_Reg funcs[] = { {"gather", l_gather}, {NULL, NULL} };

int combinators_open(lua_State *L, Loop *lp) {
  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, funcs, 1);
  return 0;
}
