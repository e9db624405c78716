/* A third-party C module that suspends Lua tasks through the API `async`
 * publishes (include/lua_async.h), as vdb does: capi_test.after(ms, ...)
 * returns a future that a libuv timer resolves (or, with fail = true,
 * rejects) on the loop thread.  Version 3's pieces: lazy(ms, fail, ...)
 * is the same as a lazy awaitable (the timer starts only when awaited),
 * error(name, msg) an error of async's class by name, and ticker(ms) a
 * userdata owning a repeating timer through the handle life cycle.  Used
 * by spec/async/capi_spec.lua. */
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

static int starts, ticker_closes;

static int l_counts(lua_State *L) {
  lua_pushinteger(L, settled);
  lua_pushinteger(L, cancelled_seen);
  lua_pushinteger(L, starts);
  lua_pushinteger(L, ticker_closes);
  return 4;
}

/* version 3: the start function of lazy(ms, fail, values...) */
static int start_after(lua_State *L) {
  starts++;
  return l_after(L);
}

static int l_lazy(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  api->awaitable_new(L, start_after, lua_gettop(L));
  return 1;
}

/* version 4: now(values...): a lazy awaitable whose start gives the values
 * at once, with no future */
static int start_now(lua_State *L) {
  starts++;
  return lua_gettop(L);
}

static int l_now(lua_State *L) {
  lua_async_get_api(L)->awaitable_new(L, start_now, lua_gettop(L));
  return 1;
}

static int l_error(lua_State *L) {
  lua_async_get_api(L)->error_new(L, luaL_checkstring(L, 1), luaL_checkstring(L, 2));
  return 1;
}

/* ticker(ms): a userdata over a repeating timer (handle memory from the C
 * API), pinned while it runs, so it ticks on however the script drops
 * it; :stop() closes it (twice: the second close does nothing); a ticker
 * collected while stopped is closed by its __gc */
typedef struct Tick {
  lua_async_handle lh;       /* first: the C API's handle memory */
  uv_timer_t timer;
  int ticks;
} Tick;

typedef struct Ticker { Tick *t; const lua_async_api *api; } Ticker;

static void ticker_tick(uv_timer_t *t) {
  Tick *k = t->data;
  if (k->lh.ud) k->ticks++;
}

static void ticker_closed(lua_async_handle *lh) { (void)lh; ticker_closes++; }

static void ticker_close(Ticker *k) {
  if (!k->t) return;
  uv_timer_stop(&k->t->timer);
  k->api->handle_close(&k->t->lh, ticker_closed);
  k->api->handle_close(&k->t->lh, ticker_closed);   /* does nothing */
  k->t = NULL;
}

static int ticker_stop(lua_State *L) {
  ticker_close(luaL_checkudata(L, 1, "capi_test.ticker"));
  return 0;
}

static int ticker_gc(lua_State *L) {
  ticker_close(lua_touserdata(L, 1));
  return 0;
}

static int ticker_ticks(lua_State *L) {
  Ticker *k = luaL_checkudata(L, 1, "capi_test.ticker");
  lua_pushinteger(L, k->t ? k->t->ticks : -1);
  return 1;
}

static int l_ticker(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  lua_Integer ms = luaL_checkinteger(L, 1);
  Ticker *k = lua_newuserdatauv(L, sizeof *k, 0);
  k->api = api;
  k->t = (Tick *)api->handle_new(L, sizeof *k->t);
  if (!k->t) return luaL_error(L, "out of memory");
  luaL_setmetatable(L, "capi_test.ticker");
  uv_timer_init(api->loop(L), &k->t->timer);
  api->handle_init(&k->t->lh, (uv_handle_t *)&k->t->timer);
  k->t->lh.ud = k;
  api->handle_pin(L, &k->t->lh, -1);           /* while it runs */
  uv_timer_start(&k->t->timer, ticker_tick, (uint64_t)ms, (uint64_t)ms);
  return 1;
}

int luaopen_capi_test(lua_State *L) {
  static const luaL_Reg f[] = {
    {"after", l_after}, {"counts", l_counts}, {"lazy", l_lazy}, {"now", l_now}, {"error", l_error}, {"ticker", l_ticker},
    {NULL, NULL}
  };
  static const luaL_Reg ticker_methods[] = { {"stop", ticker_stop}, {"ticks", ticker_ticks}, {NULL, NULL} };
  luaL_newmetatable(L, "capi_test.ticker");
  lua_pushcfunction(L, ticker_gc);
  lua_setfield(L, -2, "__gc");
  luaL_newlib(L, ticker_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, f);
  return 1;
}
