/*
 * future.c - Futures: a result placeholder with done callbacks (asyncio's
 * Future), the error classes' constructors as seen from C, and the C API
 * that other modules suspend tasks through.
 *
 * Results live in the user value UVAL_RESULT: nothing for none, the value
 * itself for one, a table for several.  Callbacks live in UVAL_CALLBACKS: the
 * value itself for one (the common case: the task that awaits), a list for
 * more.  A callback is a Task (wake it) or a function (call it with the
 * future); either way it runs from the ready queue, never inline.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

/* Callers are C functions whose first upvalue is the loop. */
Future *future_test(lua_State *L, int idx) {
  unsigned char *p = lua_touserdata(L, idx);
  if (!p || (*p != TAG_FUTURE && *p != TAG_TASK)) return NULL;
  return loop_hasmetatable(L, loop_get(L), idx, *p == TAG_TASK ? MT_TASK : MT_FUTURE)
         ? (Future *)p : NULL;
}

Future *future_check(lua_State *L, int idx) {
  Future *f = future_test(L, idx);
  if (!f) luaL_typeerror(L, idx, "Future or Task");
  return f;
}

Future *future_new(lua_State *L, Loop *lp) {
  Future *f = lua_newuserdatauv(L, sizeof *f, FUTURE_NUV);
  memset(f, 0, sizeof *f);
  f->tag = TAG_FUTURE; f->loop = lp; f->pin_ref = LUA_NOREF;
  loop_setmetatable(L, lp, MT_FUTURE);
  return f;
}

/* push errors.<cls>(message at msgidx, or nil) */
void push_error(lua_State *L, Loop *lp, const char *cls, int msgidx) {
  if (msgidx) msgidx = lua_absindex(L, msgidx);
  loop_push_ref(L, lp, LS_ERRORS);
  lua_getfield(L, -1, cls);
  lua_remove(L, -2);
  if (msgidx) lua_pushvalue(L, msgidx); else lua_pushnil(L);
  lua_call(L, 1, 1);
}

int raise_error(lua_State *L, Loop *lp, const char *cls, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  push_error(L, lp, cls, -1);
  return lua_error(L);
}

/* A C hook runs at once (see DoneHook); every other callback is queued. */
static void run_callback(lua_State *L, Loop *lp, int cb, int fidx) {
  DoneHook *h = lua_touserdata(L, cb);
  if (h && h->tag == TAG_DONE_HOOK) h->done(L, cb, fidx);
  else loop_enqueue(L, lp, cb, fidx);
}

/* Callbacks run (or are queued) in the order they were added; the awaiting
 * task, kept aside as a pointer, takes its place among them. */
static void schedule_callbacks(lua_State *L, Future *f, int fidx) {
  Loop *lp = f->loop;
  int n = f->ncb, wpos = f->wpos;
  Task *wt = f->wtask;
  f->wtask = NULL;
  if (n == 0) {
    if (wt) loop_enqueue_wake(L, lp, wt, f);
    return;
  }
  lua_getiuservalue(L, fidx, UVAL_CALLBACKS);
  lua_pushnil(L);
  lua_setiuservalue(L, fidx, UVAL_CALLBACKS);
  f->ncb = 0;
  int t = lua_gettop(L);
  for (int i = 0; i < n; i++) {
    if (wt && i == wpos) loop_enqueue_wake(L, lp, wt, f);
    if (n == 1) run_callback(L, lp, t, fidx);
    else {
      lua_rawgeti(L, t, i + 1);
      run_callback(L, lp, lua_gettop(L), fidx);
      lua_pop(L, 1);
    }
  }
  if (wt && wpos >= n) loop_enqueue_wake(L, lp, wt, f);
  lua_pop(L, 1);
}

void future_add_waiter(lua_State *L, int fidx, Task *t) {
  Future *f = lua_touserdata(L, fidx);
  if (f->wtask == NULL) {
    f->wtask = t;
    f->wpos = f->ncb;
    return;
  }
  push_task(L, f->loop, t);                 /* a second awaiter: an ordinary callback */
  future_add_callback(L, fidx, -1);
  lua_pop(L, 1);
}

static void unpin(lua_State *L, Future *f) {
  if (f->pin_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, f->pin_ref);
    f->pin_ref = LUA_NOREF;
  }
}

void future_set_result(lua_State *L, int fidx, int n) {
  Future *f = lua_touserdata(L, fidx);
  fidx = lua_absindex(L, fidx);
  if (n == 0) {
    lua_pushnil(L);
  } else if (n > 1) {
    lua_createtable(L, n, 0);
    lua_insert(L, -n - 1);
    for (int i = n; i >= 1; i--) lua_rawseti(L, -i - 1, i);
  }
  lua_setiuservalue(L, fidx, UVAL_RESULT);
  f->nres = n;
  f->state = DONE;
  schedule_callbacks(L, f, fidx);
  unpin(L, f);
}

/* An error nobody looked at is reported when its future is collected.
 * Only a failed future gets a finalizer: a small reporter, reachable from
 * the future alone, that the collector finalises with it.  (A finalizer on
 * every future and task would cost every one of them a longer life.) */
#define REPORTER_MT "async.reporter"

static int reporter_gc(lua_State *L) {
  lua_getiuservalue(L, 1, 1);
  Future *f = lua_touserdata(L, -1);
  if (f && f->failed && !f->retrieved) {
    f->retrieved = 1;
    lua_getiuservalue(L, -1, UVAL_RESULT);
    loop_report(L, f->loop, -1, f->tag == TAG_TASK ? "Task exception was never retrieved"
                                                   : "Future exception was never retrieved", -2);
  }
  return 0;
}

static void attach_reporter(lua_State *L, int fidx) {
  lua_newuserdatauv(L, 1, 1);
  luaL_setmetatable(L, REPORTER_MT);
  lua_pushvalue(L, fidx);
  lua_setiuservalue(L, -2, 1);
  lua_setiuservalue(L, fidx, UVAL_CALLBACKS);   /* free once the future is done */
}

void future_set_exception(lua_State *L, int fidx) {
  Future *f = lua_touserdata(L, fidx);
  fidx = lua_absindex(L, fidx);
  lua_setiuservalue(L, fidx, UVAL_RESULT);
  f->nres = 1;
  f->failed = 1;
  f->state = DONE;
  loop_push_ref(L, f->loop, LS_UNRETRIEVED);
  lua_pushvalue(L, fidx); lua_pushboolean(L, 1); lua_rawset(L, -3);
  lua_pop(L, 1);
  schedule_callbacks(L, f, fidx);
  attach_reporter(L, fidx);
  unpin(L, f);
}

/* unlink f's cancel hook from its loop's list (the caller frees it) */
static CancelHook *take_hook(Future *f) {
  CancelHook *h = f->hook;
  if (!h) return NULL;
  if (h->prev) h->prev->next = h->next; else f->loop->hooks = h->next;
  if (h->next) h->next->prev = h->prev;
  f->hook = NULL;
  return h;
}

int future_cancel(lua_State *L, int fidx, int msgidx) {
  Future *f = lua_touserdata(L, fidx);
  if (f->state != PENDING) return 0;
  fidx = lua_absindex(L, fidx);
  if (msgidx) lua_pushvalue(L, msgidx); else lua_pushnil(L);
  lua_setiuservalue(L, fidx, UVAL_CANCELMSG);
  f->state = CANCELLED;
  schedule_callbacks(L, f, fidx);
  /* a pinned future stays pinned until its C side settles it, unless that
   * side asked to hear of a cancellation: then it is told, and let go */
  if (f->pin_ref != LUA_NOREF && f->loop->hooks) {
    CancelHook *h = take_hook(f);
    if (h) {
      h->cb(h->ud);
      free(h);
      unpin(L, f);
    }
  }
  return 1;
}

int future_push_results(lua_State *L, int idx) {
  Future *f = lua_touserdata(L, idx);
  idx = lua_absindex(L, idx);
  if (f->state == PENDING) return raise_error(L, f->loop, "InvalidStateError", "Result is not set.");
  if (f->state == CANCELLED) {
    lua_getiuservalue(L, idx, UVAL_CANCELMSG);
    push_error(L, f->loop, "CancelledError", -1);
    return lua_error(L);
  }
  lua_getiuservalue(L, idx, UVAL_RESULT);
  if (f->failed) { f->retrieved = 1; f->loop->reraising = 1; return lua_error(L); }
  if (f->nres == 0) { lua_pop(L, 1); return 0; }
  if (f->nres == 1) return 1;
  luaL_checkstack(L, f->nres, "too many results");
  int t = lua_gettop(L);
  for (int i = 1; i <= f->nres; i++) lua_rawgeti(L, t, i);
  lua_remove(L, t);
  return f->nres;
}

void future_add_callback(lua_State *L, int fidx, int cbidx) {
  Future *f = lua_touserdata(L, fidx);
  fidx = lua_absindex(L, fidx); cbidx = lua_absindex(L, cbidx);
  if (f->state != PENDING) { run_callback(L, f->loop, cbidx, fidx); return; }
  if (f->ncb == 0) {
    lua_pushvalue(L, cbidx);
    lua_setiuservalue(L, fidx, UVAL_CALLBACKS);
  } else if (f->ncb == 1) {
    lua_createtable(L, 4, 0);
    lua_getiuservalue(L, fidx, UVAL_CALLBACKS); lua_rawseti(L, -2, 1);
    lua_pushvalue(L, cbidx); lua_rawseti(L, -2, 2);
    lua_setiuservalue(L, fidx, UVAL_CALLBACKS);
  } else {
    lua_getiuservalue(L, fidx, UVAL_CALLBACKS);
    lua_pushvalue(L, cbidx); lua_rawseti(L, -2, f->ncb + 1);
    lua_pop(L, 1);
  }
  f->ncb++;
}

/* removes every registration of the callback; returns how many */
static int remove_callback(lua_State *L, int fidx, int cbidx) {
  Future *f = lua_touserdata(L, fidx);
  int removed = 0;
  fidx = lua_absindex(L, fidx); cbidx = lua_absindex(L, cbidx);
  if (f->ncb == 0) return 0;
  lua_getiuservalue(L, fidx, UVAL_CALLBACKS);
  if (f->ncb == 1) {
    if (lua_rawequal(L, -1, cbidx)) {
      lua_pushnil(L); lua_setiuservalue(L, fidx, UVAL_CALLBACKS);
      f->ncb = 0; removed = 1;
    }
  } else {
    int j = 1;
    for (int i = 1; i <= f->ncb; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_rawequal(L, -1, cbidx)) { lua_pop(L, 1); removed++; continue; }
      lua_rawseti(L, -2, j++);
    }
    for (int i = j; i <= f->ncb; i++) { lua_pushnil(L); lua_rawseti(L, -2, i); }
    f->ncb = j - 1;
  }
  lua_pop(L, 1);
  return removed;
}


/* ---- Lua methods -------------------------------------------------------- */

static Future *check_plain_future(lua_State *L) {
  Future *f = future_test(L, 1);
  if (!f || f->tag != TAG_FUTURE) luaL_typeerror(L, 1, "Future");
  return f;
}

static int l_future_new(lua_State *L) {
  future_new(L, loop_get(L));
  return 1;
}

static int f_set_result(lua_State *L) {
  Future *f = check_plain_future(L);
  if (f->state != PENDING) return raise_error(L, f->loop, "InvalidStateError", "invalid state: the future is already done");
  future_set_result(L, 1, lua_gettop(L) - 1);
  return 0;
}

static int f_set_exception(lua_State *L) {
  Future *f = check_plain_future(L);
  luaL_checkany(L, 2);
  if (f->state != PENDING) return raise_error(L, f->loop, "InvalidStateError", "invalid state: the future is already done");
  lua_settop(L, 2);
  future_set_exception(L, 1);
  return 0;
}

static int f_cancel(lua_State *L) {
  check_plain_future(L);
  lua_pushboolean(L, future_cancel(L, 1, lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

/* shared by Future and Task */
static int f_done(lua_State *L) {
  lua_pushboolean(L, future_check(L, 1)->state != PENDING);
  return 1;
}

static int f_cancelled(lua_State *L) {
  lua_pushboolean(L, future_check(L, 1)->state == CANCELLED);
  return 1;
}

static int f_result(lua_State *L) {
  future_check(L, 1);
  return future_push_results(L, 1);
}

static int f_exception(lua_State *L) {
  Future *f = future_check(L, 1);
  if (f->state == PENDING) return raise_error(L, f->loop, "InvalidStateError", "Exception is not set.");
  if (f->state == CANCELLED) {
    lua_getiuservalue(L, 1, UVAL_CANCELMSG);
    push_error(L, f->loop, "CancelledError", -1);
    return lua_error(L);
  }
  f->retrieved = 1;
  if (!f->failed) return 0;
  lua_getiuservalue(L, 1, UVAL_RESULT);
  return 1;
}

static int f_add_done_callback(lua_State *L) {
  future_check(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  future_add_callback(L, 1, 2);
  return 0;
}

static int f_remove_done_callback(lua_State *L) {
  future_check(L, 1);
  luaL_checkany(L, 2);
  lua_pushinteger(L, remove_callback(L, 1, 2));
  return 1;
}

static int f_tostring(lua_State *L) {
  Future *f = future_check(L, 1);
  static const char *states[] = {"pending", "finished", "cancelled"};
  lua_pushfstring(L, "<Future %s%s: %p>", states[f->state], f->failed ? " (error)" : "", (void *)f);
  return 1;
}

const luaL_Reg future_shared_methods[] = {
  {"done", f_done}, {"cancelled", f_cancelled}, {"result", f_result},
  {"exception", f_exception}, {"add_done_callback", f_add_done_callback},
  {"remove_done_callback", f_remove_done_callback}, {NULL, NULL}
};

static const luaL_Reg future_methods[] = {
  {"set_result", f_set_result}, {"set_exception", f_set_exception}, {"cancel", f_cancel},
  {NULL, NULL}
};

/* ---- the C API's futures (its table is in capi.c) ------------------------ */

uv_loop_t *capi_loop(lua_State *L) {
  Loop *lp = loop_of_registry(L);
  return lp ? lp->uv : NULL;
}

lua_async_future *capi_future_new(lua_State *L) {
  Loop *lp = loop_of_registry(L);
  Future *f = future_new(L, lp);
  lua_pushvalue(L, -1);
  f->pin_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return (lua_async_future *)f;
}

lua_State *capi_state(lua_async_future *af) { return ((Future *)af)->loop->LL; }

static void api_settle(lua_async_future *af, int n, int failed) {
  Future *f = (Future *)af;
  lua_State *L = f->loop->LL;
  if (f->pin_ref == LUA_NOREF) { lua_pop(L, n); return; }   /* settled twice */
  if (f->loop->hooks) free(take_hook(f));
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->pin_ref);
  lua_insert(L, -n - 1);
  if (f->state != PENDING) { lua_pop(L, n); unpin(L, f); }
  else if (failed) future_set_exception(L, -2);
  else future_set_result(L, -n - 1, n);
  lua_pop(L, 1);
}

void capi_resolve(lua_async_future *af, int n) { api_settle(af, n, 0); }
void capi_reject(lua_async_future *af) { api_settle(af, 1, 1); }
int capi_cancelled(lua_async_future *af) { return ((Future *)af)->state == CANCELLED; }

void capi_on_cancel(lua_async_future *af, void (*cb)(void *ud), void *ud) {
  Future *f = (Future *)af;
  free(take_hook(f));
  if (!cb || f->pin_ref == LUA_NOREF) return;
  CancelHook *h = malloc(sizeof *h);
  if (!h) return;                  /* then it is only polled (cancelled()) */
  h->f = f; h->cb = cb; h->ud = ud;
  h->next = f->loop->hooks;
  h->prev = NULL;
  if (h->next) h->next->prev = h;
  f->loop->hooks = h;
  f->hook = h;
}


int future_open(lua_State *L, Loop *lp) {
  luaL_newmetatable(L, REPORTER_MT);
  lua_pushcfunction(L, reporter_gc); lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, FUTURE_MT);
  loop_register_mt(L, lp, MT_FUTURE);
  lua_newtable(L);
  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, future_shared_methods, 1);
  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, future_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, f_tostring, 1); lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, l_future_new, 1);
  lua_setfield(L, -2, "Future");
  return 0;
}
