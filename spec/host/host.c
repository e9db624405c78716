/* A C host that owns its libuv loop: it hands the loop to `async` before
 * the first require, runs a script that schedules tasks with async.start,
 * then drives everything with its own uv_run.  Used by spec/run_spec.lua. */
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>
#include "lua_async.h"

int main(int argc, char **argv) {
  uv_loop_t loop;
  if (argc < 2) { fprintf(stderr, "usage: host SCRIPT\n"); return 2; }
  uv_loop_init(&loop);
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_async_use_loop(L, &loop);
  if (luaL_dofile(L, argv[1]) != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    return 1;
  }
  printf("host loop adopted: %s\n", lua_async_get_api(L)->loop(L) == &loop ? "true" : "false");
  uv_run(&loop, UV_RUN_DEFAULT);          /* the host's own loop */
  lua_getglobal(L, "finish");
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
  lua_close(L);                            /* async closes its handles... */
  uv_run(&loop, UV_RUN_DEFAULT);           /* ...which finish closing here */
  int rc = uv_loop_close(&loop);
  printf("host: loop %s\n", rc == 0 ? "closed cleanly" : "still busy");
  return rc == 0 ? 0 : 1;
}
