/*
 * server.c - listening sockets, TCP or Unix: each accepted connection is a
 * stream (TLS if the server has a context) handed to the Lua side, which
 * runs the handler as its own Task.  A server is a C API handle: one close
 * path, its on_conn reference dropped in the close callback.
 */
#define _GNU_SOURCE          /* SO_REUSEPORT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <lauxlib.h>
#include <openssl/ssl.h>
#include "lua_async.h"
#include "stream.h"
#include "io.h"

#define SERVER_MT "async.server"

typedef struct Server {
  lua_async_handle lh;           /* first: the C API's handle memory */
  union { uv_stream_t stream; uv_tcp_t tcp; uv_pipe_t pipe; } h;
  int is_pipe;                   /* a Unix socket */
  const lua_async_api *api;
  lua_State *T;                  /* where on_conn is called */
  int on_conn;                   /* registry ref: on_conn(stream box) */
  size_t limit;
  SSL_CTX *tls;                  /* a TLS server's context (its own reference), or NULL */
  struct SBox *box;
} Server;

typedef struct SBox { Server *sv; } SBox;

static void on_connection(uv_stream_t *st, int status) {
  Server *sv = ((lua_async_handle *)st->data)->ud;
  if (status < 0 || !sv->api->handle_lua(&sv->lh)) return;   /* (EMFILE: libuv's reserve fd takes it; go on) */
  lua_State *T = sv->T;
  int top = lua_gettop(T);
  lua_rawgeti(T, LUA_REGISTRYINDEX, sv->on_conn);
  Stream *s = sv->is_pipe ? stream_new_pipe(T, sv->api, sv->limit) : stream_new_tcp(T, sv->api, sv->limit);
  if (uv_accept(st, stream_uv(s)) != 0 || (sv->tls && stream_start_tls(s, sv->tls, NULL) != 0)) {
    lua_settop(T, top);                        /* its box's __gc closes it */
    return;
  }
  if (!sv->is_pipe) uv_tcp_nodelay(stream_tcp(s), 1);   /* as a client's (and asyncio's): no Nagle delay on replies */
  stream_connected(s);
  if (lua_pcall(T, 1, 0, 0) != LUA_OK) lua_pop(T, 1);          /* (on_conn only spawns the handler's Task) */
  lua_settop(T, top);
}

static void server_closed(lua_async_handle *lh) {
  Server *sv = lh->ud;
  if (sv->box) sv->box->sv = NULL;
  if (sv->tls) SSL_CTX_free(sv->tls);
  if (lh->rt) luaL_unref(sv->T, LUA_REGISTRYINDEX, sv->on_conn);
}

static int sv_close(lua_State *L) {
  SBox *b = luaL_checkudata(L, 1, SERVER_MT);
  Server *sv = b->sv;
  if (!sv || sv->lh.closing) return 0;
  sv->api->handle_close(&sv->lh, server_closed);
  return 0;
}

static int sv_gc(lua_State *L) {
  SBox *b = lua_touserdata(L, 1);
  if (b->sv) { b->sv->box = NULL; if (!b->sv->lh.closing) b->sv->api->handle_close(&b->sv->lh, server_closed); }
  b->sv = NULL;
  return 0;
}

static int sv_sockname(lua_State *L) {
  SBox *b = luaL_checkudata(L, 1, SERVER_MT);
  if (!b->sv) return luaL_error(L, "the server is closed");
  if (b->sv->is_pipe) {
    char path[1024];
    size_t n = sizeof path;
    if (uv_pipe_getsockname(&b->sv->h.pipe, path, &n) != 0) return 0;
    lua_pushlstring(L, path, n);
    return 1;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(&b->sv->h.tcp, (struct sockaddr *)&ss, &len) != 0) return 0;
  return io_push_sockaddr(L, &ss);
}

static int sv_closed(lua_State *L) {
  SBox *b = luaL_checkudata(L, 1, SERVER_MT);
  lua_pushboolean(L, b->sv == NULL || b->sv->lh.closing);
  return 1;
}

/* SO_REUSEPORT on a TCP handle made with its socket, not yet bound
 * (libuv 1.44 has no flag for it) */
static int reuse_port(uv_tcp_t *tcp) {
  uv_os_fd_t fd;
  int on = 1, rc = uv_fileno((uv_handle_t *)tcp, &fd);
  if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) rc = uv_translate_sys_error(errno);
  return rc;
}

/* A server box, listening: TCP on address:port, or (pipe) a Unix socket
 * at path; raises OSError (EADDRINUSE ...).  Stack: where..., backlog,
 * on_conn, limit at the indices given; opts: reuse_port, a TLS context.
 * Upvalue 1 of the calling function: the thread on_conn runs on. */
int io_listen(lua_State *L, int pipe, const char *where, const struct sockaddr *sa,
              int backlog, int fnidx, size_t limit, ListenOpts o) {
  const lua_async_api *api = lua_async_get_api(L);
  luaL_checktype(L, fnidx, LUA_TFUNCTION);
  SBox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->sv = NULL;
  luaL_setmetatable(L, SERVER_MT);
  Server *sv = (Server *)api->handle_new(L, sizeof *sv);
  if (!sv) return luaL_error(L, "serve: out of memory");
  sv->api = api;
  sv->T = lua_tothread(L, lua_upvalueindex(1));
  sv->limit = limit;
  sv->on_conn = LUA_NOREF;
  sv->is_pipe = pipe;
  int rc = pipe ? uv_pipe_init(api->loop(L), &sv->h.pipe, 0)
         : o.reuse_port ? uv_tcp_init_ex(api->loop(L), &sv->h.tcp, sa->sa_family)   /* (its socket now, for the option) */
         : uv_tcp_init(api->loop(L), &sv->h.tcp);
  if (rc != 0) { api->handle_close(&sv->lh, NULL); return luaL_error(L, "serve: %s", uv_strerror(rc)); }
  api->handle_init(&sv->lh, (uv_handle_t *)&sv->h.stream);
  sv->lh.ud = sv;
  b->sv = sv; sv->box = b;
  if (o.tls && SSL_CTX_up_ref(o.tls)) sv->tls = o.tls;
  if (o.reuse_port) rc = reuse_port(&sv->h.tcp);
  if (rc == 0) rc = pipe ? uv_pipe_bind(&sv->h.pipe, where) : uv_tcp_bind(&sv->h.tcp, sa, 0);
  if (rc == 0) rc = uv_listen(&sv->h.stream, backlog, on_connection);
  if (rc != 0) {
    sv->box = NULL; b->sv = NULL;
    api->handle_close(&sv->lh, NULL);
    char what[1100];
    snprintf(what, sizeof what, "serve %s", where);
    io_push_uverror(L, api, "OSError", rc, what);
    return lua_error(L);
  }
  lua_pushvalue(L, fnidx);
  sv->on_conn = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* the metatable; its method table goes into the module (at -1) as
 * server_methods, for the prelude's Lua methods */
void io_server_open(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"_close", sv_close}, {"sockname", sv_sockname}, {"_closed", sv_closed}, {NULL, NULL}
  };
  io_class(L, SERVER_MT, methods, sv_gc, "server_methods");
}
