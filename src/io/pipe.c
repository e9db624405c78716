/*
 * pipe.c - Unix domain sockets (connect_unix, serve_unix) and this
 * process's stdin, stdout and stderr as streams: the uv_pipe_t and
 * uv_tty_t kinds of stream.  (A child's pipes are process.c's.)
 */
#include <lauxlib.h>
#include "lua_async.h"
#include "stream.h"
#include "tls.h"
#include "io.h"

/* stdio_stream(fd): a stream over this process's fd 0, 1 or 2, or nil when
 * it is a file (the prelude reads and writes those with async.fs) */
int io_stdio_stream(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  if (fd < 0 || fd > 2) return luaL_error(L, "stdio_stream: 0, 1 or 2");
  stream_new_fd(L, lua_async_get_api(L), fd);
  return 1;
}

/* new_pipe(limit): a stream box over a pipe, not connected */
int io_new_pipe(lua_State *L) {
  stream_new_pipe(L, lua_async_get_api(L), (size_t)luaL_optinteger(L, 1, 0));
  return 1;
}

/* stack = stream box (new_pipe), path */
static int start_connect_unix(lua_State *L) {
  const char *path = luaL_checkstring(L, 2);
  Stream *s = *(Stream **)luaL_checkudata(L, 1, STREAM_MT);
  uv_connect_t *req = io_connect_request(L, 1);
  uv_pipe_connect(req, stream_pipe(s), path, io_on_connect);   /* (its failures come to the callback) */
  return io_connect_started(L, req, 0);
}

int io_connect_unix(lua_State *L) {
  return io_lazy(L, start_connect_unix, 2);
}

/* listen_unix(path, backlog, on_conn, limit); upvalue 1 as above */
int io_listen_unix(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  ListenOpts o = { 0, lua_isnoneornil(L, 5) ? NULL : tls_check_context(L, 5) };
  return io_listen(L, 1, path, NULL, (int)luaL_optinteger(L, 2, 511), 3, (size_t)luaL_optinteger(L, 4, 0), o);
}

