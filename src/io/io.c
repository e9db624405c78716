/*
 * io.c - luaopen_async_io: the async.io module (async/io.so), the I/O layer
 * beside async.http, on the published C API (include/lua_async.h) alone.
 * The async module loads it the first time a script reaches for one of
 * its calls (async.to_thread now).
 */
#include <signal.h>
#include <lauxlib.h>
#include "lua_async.h"
#include "io.h"
#include "tls.h"

/* ---- what the files of this module share -------------------------------- */

/* a lazy awaitable (the C API's awaitable_new) over start and the first
 * nargs arguments of the calling function */
const lua_async_api *io_api;

int io_lazy(lua_State *L, lua_CFunction start, int nargs) {
  lua_settop(L, nargs);
  io_api->awaitable_new(L, start, nargs);
  return 1;
}

/* addr:port (IPv4 or IPv6, numeric) into ss: 0, or -1 if it is no address */
int io_parse_addr(const char *addr, int port, struct sockaddr_storage *ss) {
  if (uv_ip4_addr(addr, port, (struct sockaddr_in *)ss) == 0) return 0;
  return uv_ip6_addr(addr, port, (struct sockaddr_in6 *)ss) == 0 ? 0 : -1;
}

/* a metatable name with methods (its __index) and __gc; the method table
 * also goes into the module at -1 as `exported` (NULL: not), where the
 * prelude adds its Lua methods */
void io_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc, const char *exported) {
  int mod = lua_gettop(L);
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  if (exported) { lua_pushvalue(L, -1); lua_setfield(L, mod, exported); }
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}

/* the pool's owner: at lua_close, calls still in flight must touch no Lua */
static int pool_box_gc(lua_State *L) {
  Pool **box = lua_touserdata(L, 1);
  if (*box) { io_pool_close(*box); *box = NULL; }
  return 0;
}

int luaopen_async_io(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "async");
  lua_call(L, 1, 1);
  lua_pop(L, 1);
  if (!(io_api = lua_async_get_api(L)))
    return luaL_error(L, "async.io: needs the async module's C API version %d", LUA_ASYNC_API_VERSION);
  lua_newtable(L);
  Pool **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  lua_newtable(L);
  lua_pushcfunction(L, pool_box_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  if (!(*box = pool_new())) return luaL_error(L, "async.io: out of memory");
  lua_pushcclosure(L, io_to_thread, 1);
  lua_setfield(L, -2, "to_thread");
  io_signal_open(L);
  lua_newthread(L);                           /* signal callbacks run here; kept as the upvalue */
  lua_pushcclosure(L, io_watch_signal, 1);
  lua_setfield(L, -2, "watch_signal");
  lua_pushcfunction(L, io_signal_known);
  lua_setfield(L, -2, "signal_known");
  lua_pushcfunction(L, io_fs_op); lua_setfield(L, -2, "fs_op");
  io_tcp_open(L);
  lua_pushcfunction(L, io_getaddrinfo); lua_setfield(L, -2, "getaddrinfo");
  lua_pushcfunction(L, io_connect_addr); lua_setfield(L, -2, "connect_addr");
  lua_pushcfunction(L, io_new_tcp); lua_setfield(L, -2, "new_tcp");
  lua_newthread(L);                           /* servers' on_conn runs here */
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, io_listen_tcp, 1); lua_setfield(L, -3, "listen_tcp");
  lua_pushcclosure(L, io_listen_unix, 1); lua_setfield(L, -2, "listen_unix");
  lua_pushcfunction(L, io_new_pipe); lua_setfield(L, -2, "new_pipe");
  lua_pushcfunction(L, io_connect_unix); lua_setfield(L, -2, "connect_unix");
  lua_pushcfunction(L, io_stdio_stream); lua_setfield(L, -2, "stdio_stream");
  io_tls_open(L);
  lua_pushcfunction(L, io_tls_context); lua_setfield(L, -2, "tls_context");
  io_process_open(L);
  io_udp_open_mt(L);
  lua_pushcfunction(L, io_udp_open); lua_setfield(L, -2, "udp_open");
  lua_pushcfunction(L, io_spawn); lua_setfield(L, -2, "spawn");
  /* a write to a peer that closed must be a ConnectionError, not a SIGPIPE death */
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  lua_pushcfunction(L, io_fs_seek); lua_setfield(L, -2, "fs_seek");
  lua_pushcfunction(L, io_fs_close_now); lua_setfield(L, -2, "fs_close_now");
  return 1;
}
