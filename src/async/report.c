/*
 * report.c - errors nobody caught: where they were raised, and saying so.
 *
 * Tasks and callbacks run under loop_msgh, which records the traceback of
 * an error where it is raised (async.traceback, reports); loop_report
 * writes "Task exception was never retrieved" or "Exception in callback"
 * with that traceback to stderr, or hands it to the exception handler.
 * A report survives an error value whose __tostring itself fails.
 */
#include <stdio.h>
#include "core.h"

/* The C functions on L's stack: about the C calls Lua counts against
 * LUAI_MAXCCALLS (a task's thread starts with its resumer's count). */
int loop_c_frames(lua_State *L) {
  lua_Debug ar;
  int n = 0;
  for (int level = 0; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "S", &ar);
    if (ar.what[0] == 'C') n++;
  }
  return n;
}

/* Where the traceback of the error value at idx is kept: a weak-keyed table
 * for values the collector can free; strings, numbers and booleans never
 * leave a weak table, so theirs go to a table that is started afresh past
 * a bound (loop_msgh). */
int loop_traceback_table(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TTABLE: case LUA_TUSERDATA: case LUA_TFUNCTION: case LUA_TTHREAD: return LS_TRACEBACKS;
    default: return LS_STRTB;
  }
}

int loop_is_cancelled(lua_State *L, Loop *lp, int idx) {
  idx = lua_absindex(L, idx);
  loop_push_ref(L, lp, LS_ERRORS);
  lua_getfield(L, -1, "is_cancelled");
  lua_remove(L, -2);
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  int r = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

/* message handler of tasks and callbacks: record where the error was
 * raised (async.traceback, reports), keep the value */
int loop_msgh(lua_State *L) {
  Loop *lp = loop_get(L);
  int reraising = lp->reraising;
  lp->reraising = 0;
  if (lua_isnil(L, 1) || loop_is_cancelled(L, lp, 1)) return 1;
  int table = loop_traceback_table(L, 1);
  loop_push_ref(L, lp, table);
  lua_pushvalue(L, 1);
  int known = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 1);
  /* an error passed on by await keeps where it was first raised; so does an
   * object (the same table raised again), but not a string, which may come
   * again from anywhere */
  if (known && (reraising || table == LS_TRACEBACKS)) { lua_settop(L, 1); return 1; }
  luaL_traceback(L, L, NULL, 1);
  lua_pushvalue(L, 1); lua_pushvalue(L, -2); lua_rawset(L, -4);
  if (table == LS_STRTB && ++lp->strtb_n > 1024) {   /* never collected: start afresh */
    lua_newtable(L);
    loop_set_ref(L, lp, LS_STRTB);
    lp->strtb_n = 0;
  }
  lua_settop(L, 1);
  return 1;
}

/* A registry ref to main as a closure over (the loop, loop_msgh): what a
 * task's thread starts in, its errors' tracebacks recorded */
int loop_ref_thread_main(lua_State *L, Loop *lp, lua_CFunction main) {
  lua_pushlightuserdata(L, lp);
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, loop_msgh, 1);
  lua_pushcclosure(L, main, 2);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* call the function under the nargs values on top, its traceback recorded
 * should it fail: 0, or the error on top */
int loop_call_reported(lua_State *L, Loop *lp, int nargs) {
  int base = lua_gettop(L) - nargs;              /* the function */
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, loop_msgh, 1);
  lua_insert(L, base);                           /* the handler below it */
  int rc = lua_pcall(L, nargs, 0, base);
  lua_remove(L, base);
  return rc;
}

static int tolstring_raw(lua_State *L) { luaL_tolstring(L, 1, NULL); return 1; }

/* Push a string for the value at idx, never raising: a report must survive
 * an error value whose __tostring fails. */
static void push_string_of(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, tolstring_raw);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushfstring(L, "(a %s whose __tostring failed)", luaL_typename(L, idx));
  }
}

/* The exception handler gets {message=, exception=, task=}; the default
 * writes to stderr with the recorded traceback. */
void loop_report(lua_State *L, Loop *lp, int errindex, const char *what, int ctxindex) {
  int top = lua_gettop(L);
  errindex = lua_absindex(L, errindex);
  if (ctxindex) ctxindex = lua_absindex(L, ctxindex);
  loop_push_ref(L, lp, LS_HANDLER);
  if (lua_toboolean(L, -1)) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, what); lua_setfield(L, -2, "message");
    lua_pushvalue(L, errindex); lua_setfield(L, -2, "exception");
    if (ctxindex) { lua_pushvalue(L, ctxindex); lua_setfield(L, -2, "task"); }
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      push_string_of(L, -1);
      fprintf(stderr, "lua-async: exception handler failed: %s\n", lua_tostring(L, -1));
    }
    lua_settop(L, top);
    return;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, what);
  if (ctxindex) { luaL_addstring(&b, "\ntask: "); push_string_of(L, ctxindex); luaL_addvalue(&b); }
  luaL_addstring(&b, "\n");
  push_string_of(L, errindex); luaL_addvalue(&b);
  /* the traceback recorded for this error, if any */
  loop_push_ref(L, lp, loop_traceback_table(L, errindex));
  lua_pushvalue(L, errindex); lua_rawget(L, -2);
  if (lua_isstring(L, -1)) { lua_remove(L, -2); luaL_addstring(&b, "\n"); luaL_addvalue(&b); }
  else lua_pop(L, 2);
  luaL_pushresult(&b);
  fprintf(stderr, "%s\n", lua_tostring(L, -1));
  fflush(stderr);
  lua_settop(L, top);
}
