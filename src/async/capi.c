/*
 * capi.c - the C API that `async` publishes (include/lua_async.h): its
 * table, and what version 3 adds for I/O modules: lazy awaitables made in
 * C, the error classes by name, and the handle life cycle.
 *
 * The futures' part (future_new, resolve, reject, on_cancel) is future.c's.
 * C code calling in here may be any module's C function, so the loop comes
 * from the registry, never from an upvalue.
 */
#include <stdlib.h>
#include "core.h"


/* ---- lazy awaitables ---------------------------------------------------- */

/* after the future pushed by start: stack = start's values..., the future
 * at ctx, then (true, results...) or (false, err) */
static int lazy_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  int ok = (int)ctx + 1;
  if (!lua_toboolean(L, ok)) {
    lua_pushvalue(L, ok + 1);
    return lua_error(L);
  }
  return lua_gettop(L) - ok;
}

/* The body of an awaitable_new awaitable, run when it is awaited (inline,
 * with no frame of its own) or by a Task: stack = start, args...  start
 * is called directly, in this frame (a lua_call's frame was a good part of
 * a stream read's cost); it gives one future to wait for, or (version 4)
 * its results at once. */
static int lazy_body(lua_State *L) {
  lua_CFunction start = lua_tocfunction(L, 1);
  lua_remove(L, 1);
  luaL_checkstack(L, LUA_MINSTACK, "too many arguments");
  int n = start(L);
  Future *f = n == 1 ? future_test(L, -1) : NULL;
  if (!f) return n;                          /* done at once: these are its results */
  int fidx = lua_gettop(L);
  if (f->state != PENDING) return future_push_results(L, fidx);
  return await_future_k(L, fidx, fidx, lazy_k);
}

static void capi_awaitable_new(lua_State *L, lua_CFunction start, int nargs) {
  Loop *lp = loop_of_registry(L);
  int base = lua_gettop(L) - nargs;          /* the args are base + 1 ... */
  loop_push_ref(L, lp, LS_LAZY);             /* a library awaitable's body (the loop its upvalue): made once */
  if (!lua_iscfunction(L, -1)) {
    lua_pop(L, 1);
    lua_pushlightuserdata(L, lp);
    lua_pushcclosure(L, lazy_body, 1);
    lua_pushvalue(L, -1);
    loop_set_ref(L, lp, LS_LAZY);
  }
  lua_pushcfunction(L, start);
  for (int i = 1; i <= nargs; i++) lua_pushvalue(L, base + i);
  coro_push_on(L, lp, base + nargs + 1, nargs + 1);
  lua_replace(L, base + 1);
  lua_settop(L, base + 1);
}

/* ---- errors by name ----------------------------------------------------- */

static void capi_error_new(lua_State *L, const char *name, const char *msg) {
  Loop *lp = loop_of_registry(L);
  lua_pushstring(L, msg);
  loop_push_ref(L, lp, LS_ERRORS);
  if (lua_getfield(L, -1, name) != LUA_TTABLE) {   /* not a class (async.sleep is no error) */
    lua_pop(L, 1);
    lua_getfield(L, -1, "Error");
  }
  lua_remove(L, -2);
  lua_insert(L, -2);
  lua_call(L, 1, 1);
}

/* ---- handles: one owner, one close path ---------------------------------- */
/* (the memory is malloc'd, linked in the loop's list while open, freed
 * after libuv's close callback: it may outlive the Lua state) */

static void handle_link(Loop *lp, lua_async_handle *h) {
  h->prev = NULL;
  h->next = lp->handles;
  if (lp->handles) lp->handles->prev = h;
  lp->handles = h;
}

static void handle_unlink(lua_async_handle *h) {
  Loop *lp = h->rt;
  if (!lp) return;                           /* orphaned: the state (and its list) is gone */
  if (h->prev) h->prev->next = h->next; else lp->handles = h->next;
  if (h->next) h->next->prev = h->prev;
  h->prev = h->next = NULL;
}

static lua_async_handle *capi_handle_new(lua_State *L, size_t size) {
  if (size < sizeof(lua_async_handle)) size = sizeof(lua_async_handle);
  lua_async_handle *h = calloc(1, size);
  if (!h) return NULL;
  h->pin = LUA_NOREF;
  h->rt = loop_of_registry(L);
  handle_link(h->rt, h);
  return h;
}

static void capi_handle_init(lua_async_handle *h, uv_handle_t *uv) {
  h->uv = uv;
  uv->data = h;
}

static int capi_handle_lua(lua_async_handle *h) { return h->rt != NULL; }

static void capi_handle_unpin(lua_async_handle *h) {
  Loop *lp = h->rt;
  if (lp && h->pin != LUA_NOREF) luaL_unref(lp->LL, LUA_REGISTRYINDEX, h->pin);
  h->pin = LUA_NOREF;
}

static void capi_handle_pin(lua_State *L, lua_async_handle *h, int idx) {
  idx = lua_absindex(L, idx);
  capi_handle_unpin(h);
  if (!h->rt) return;
  lua_pushvalue(L, idx);
  h->pin = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void handle_free(lua_async_handle *h) {
  handle_unlink(h);
  capi_handle_unpin(h);
  if (h->on_closed) h->on_closed(h);
  free(h);
}

static void handle_closed(uv_handle_t *uv) { handle_free(uv->data); }

static void capi_handle_close(lua_async_handle *h, void (*on_closed)(lua_async_handle *h)) {
  if (h->closing) return;
  h->closing = 1;
  h->on_closed = on_closed;
  if (h->uv) uv_close(h->uv, handle_closed);
  else handle_free(h);                       /* its uv handle never came to be */
}

/* At lua_close: the handles still open are closed, and orphaned first, so
 * that their close callbacks (which a host's loop may run later) touch
 * neither Lua nor the loop's memory. */
void capi_close_handles(Loop *lp) {
  lua_async_handle *h = lp->handles;
  lp->handles = NULL;
  while (h) {
    lua_async_handle *next = h->next;
    h->rt = NULL;
    h->pin = LUA_NOREF;                      /* the registry goes with the state */
    h->prev = h->next = NULL;
    if (!h->closing) {
      h->closing = 1;
      if (h->uv) uv_close(h->uv, handle_closed);
      else free(h);
    }
    h = next;
  }
}

const lua_async_api async_api = {
  LUA_ASYNC_API_VERSION, capi_loop, capi_future_new, capi_state, capi_resolve, capi_reject, capi_cancelled,
  capi_on_cancel,
  capi_awaitable_new, capi_error_new,
  capi_handle_new, capi_handle_init, capi_handle_pin, capi_handle_unpin, capi_handle_close, capi_handle_lua,
};
