/* A third-party C module that suspends Lua tasks through the API `async`
 * publishes (include/lua_async.h), as vdb will: capi_test.after(ms, ...)
 * returns a future that a libuv timer resolves (or, with fail = true,
 * rejects) on the loop thread.  Used by spec/capi_spec.lua. */
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include "lua_async.h"

typedef struct Pending {
  uv_timer_t timer;
  const lua_async_api *api;
  lua_async_future *fut;
  int values_ref;            /* the values to resolve with (a table) */
  int fail;
  lua_State *L;
} Pending;

static int settled, cancelled_seen;

static void on_closed(uv_handle_t *h) { free(h); }

static void on_timer(uv_timer_t *h) {
  Pending *p = h->data;
  lua_State *M = p->api->state(p->fut);
  if (p->api->cancelled(p->fut)) cancelled_seen++;
  lua_rawgeti(M, LUA_REGISTRYINDEX, p->values_ref);
  luaL_unref(M, LUA_REGISTRYINDEX, p->values_ref);
  int n = (int)lua_rawlen(M, -1);
  if (p->fail) {
    lua_rawgeti(M, -1, 1);
    lua_remove(M, -2);
    p->api->reject(p->fut);
  } else {
    for (int i = 1; i <= n; i++) lua_rawgeti(M, -i, i);
    lua_remove(M, -n - 1);
    p->api->resolve(p->fut, n);
  }
  settled++;
  uv_close((uv_handle_t *)h, on_closed);
}

/* after(ms, fail, values...) */
static int l_after(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  if (!api) return luaL_error(L, "capi_test: require \"async\" first");
  lua_Integer ms = luaL_checkinteger(L, 1);
  int fail = lua_toboolean(L, 2);
  int n = lua_gettop(L) - 2;
  Pending *p = malloc(sizeof *p);
  if (!p) return luaL_error(L, "out of memory");
  p->api = api; p->fail = fail; p->L = L;
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) { lua_pushvalue(L, i + 2); lua_rawseti(L, -2, i); }
  p->values_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_timer_init(api->loop(L), &p->timer);
  p->timer.data = p;
  uv_timer_start(&p->timer, on_timer, (uint64_t)ms, 0);
  p->fut = api->future_new(L);             /* pushed: the awaitable */
  return 1;
}

static int l_counts(lua_State *L) {
  lua_pushinteger(L, settled);
  lua_pushinteger(L, cancelled_seen);
  return 2;
}

int luaopen_capi_test(lua_State *L) {
  static const luaL_Reg f[] = { {"after", l_after}, {"counts", l_counts}, {NULL, NULL} };
  luaL_newlib(L, f);
  return 1;
}
