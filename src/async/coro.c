/*
 * coro.c - coroutine objects: what calling an async function gives.
 *
 * A coroutine object is a lazy call, a function and its arguments (user
 * values 1 and 3...), that runs only when awaited (inline, on the awaiting
 * task's thread: await.c) or wrapped in a Task (a thread of its own:
 * task.c).  One that is collected without either warns, naming where it
 * was created.  Library awaitables (sleep, acquire, get) are coroutine
 * objects whose body is a C function run in await's own frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

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
static void coro_push_at(lua_State *L, Loop *lp, int fidx, int argidx, int nargs, int lib) {
  lua_Debug ar;
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
  coro_push_at(L, loop_get(L), fidx, fidx + 1, nargs, lib);
}

/* the same from anywhere (the C API): the loop given, not an upvalue */
void coro_push_on(lua_State *L, Loop *lp, int fidx, int nargs) {
  fidx = lua_absindex(L, fidx);
  coro_push_at(L, lp, fidx, fidx + 1, nargs, 1);
}

Coro *coro_test(lua_State *L, Loop *lp, int idx) {
  Coro *c = lua_touserdata(L, idx);
  if (!c || c->tag != TAG_CORO) return NULL;
  /* a library awaitable (the hot case) has MT_LIBCORO unless made in debug mode */
  int first = c->direct ? MT_LIBCORO : MT_CORO, second = c->direct ? MT_CORO : MT_LIBCORO;
  return loop_hasmetatable(L, lp, idx, first) || loop_hasmetatable(L, lp, idx, second) ? c : NULL;
}

int coro_is(lua_State *L, Loop *lp, int idx) { return coro_test(L, lp, idx) != NULL; }

/* async.fn(f)(...) */
static int async_call(lua_State *L) {
  coro_push_at(L, loop_get(L), lua_upvalueindex(2), 1, lua_gettop(L), 0);
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


/* a coroutine object becomes a task's body once (library awaitables: any
 * number of times) */
void coro_schedule(lua_State *L, Loop *lp, Coro *c) {
  if (c->reusable) return;
  if (c->state != CORO_CREATED)
    raise_error(L, lp, "InvalidStateError", "create_task: the coroutine object was already %s",
                c->state == CORO_AWAITED ? "awaited" : "scheduled");
  c->state = CORO_SCHEDULED;
}


static int l_iscoroutine(lua_State *L) {
  lua_pushboolean(L, coro_test(L, loop_get(L), 1) != NULL);
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


static const luaL_Reg coro_funcs[] = {
  {"fn", l_fn}, {"coro", l_coro}, {"iscoroutine", l_iscoroutine},
  {"first_non_awaitable", l_first_non_awaitable}, {NULL, NULL}
};

int coro_open(lua_State *L, Loop *lp) {
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
  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, coro_funcs, 1);
  return 0;
}
