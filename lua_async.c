/*
 * lua_async.c - luaopen_async: builds the `async` module.
 *
 * One loop per Lua state: the first require creates it (or adopts the
 * host's, see include/lua_async.h) and later requires return the same
 * module.  The C core registers its functions in a `core` table; the Lua
 * prelude (src/async/prelude.lua, compiled in) composes them into the module.
 */
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include "src/async/core.h"
#include "src/common/json.h"
#include "prelude.h"      /* generated: const char async_prelude[] */

#define MODULE_KEY "lua_async.module"

int luaopen_async(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, MODULE_KEY) != LUA_TNIL) return 1;
  lua_pop(L, 1);

  /* the loop is owned by a userdata created before any of its objects, so
   * lua_close finalises it after them */
  Loop **box = lua_newuserdatauv(L, sizeof *box, 0);
  Loop *lp = *box = malloc(sizeof *lp);
  if (!lp) return luaL_error(L, "async: out of memory");
  lua_newtable(L);
  lua_pushcfunction(L, loop_close);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "lua_async.loopud");
  lua_pushlightuserdata(L, lp);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &loop_registry_key);

  lua_newtable(L);                             /* core */
  loop_open(L, lp);
  future_open(L, lp);
  coro_open(L, lp);
  await_open(L, lp);
  task_open(L, lp);
  combinators_open(L, lp);
  sync_open(L, lp);
  queue_open(L, lp);
  lua_newtable(L);                             /* core.json */
  json_open(L);
  lua_setfield(L, -2, "json");

  lua_pushlightuserdata(L, (void *)&async_api);
  lua_setfield(L, LUA_REGISTRYINDEX, LUA_ASYNC_API_KEY);

  if (luaL_loadbuffer(L, async_prelude, sizeof async_prelude - 1, "@async/prelude.lua") != LUA_OK)
    return lua_error(L);
  lua_insert(L, -2);
  lua_call(L, 1, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
  return 1;
}
