/*
 * tcp.c - TCP: getaddrinfo on the thread pool, connect (each address in
 * turn), and servers (one uv_tcp_t listening; each accepted connection a
 * stream handed to the Lua side, which runs the handler as its own Task).
 */
#define _GNU_SOURCE          /* SO_REUSEPORT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <lauxlib.h>
#include <openssl/ssl.h>
#include "lua_async.h"
#include "stream.h"
#include "tls.h"
#include "io.h"

#define SERVER_MT "async.server"

/* ---- getaddrinfo -------------------------------------------------------- */

typedef struct Lookup {
  uv_getaddrinfo_t req;
  const lua_async_api *api;
  lua_async_future *fut;
  int cancelled;
  char host[256];
} Lookup;

static void lookup_cancelled(void *ud) {
  Lookup *lk = ud;
  lk->cancelled = 1;
  uv_cancel((uv_req_t *)&lk->req);           /* if it has not started yet */
}

static void on_lookup(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  Lookup *lk = req->data;
  if (!lk->cancelled) {
    lk->api->on_cancel(lk->fut, NULL, NULL);
    lua_State *L = lk->api->state(lk->fut);
    if (status < 0) {
      char what[300];
      snprintf(what, sizeof what, "getaddrinfo %s", lk->host);
      io_push_uverror(L, lk->api, "OSError", status, what);
      lk->api->reject(lk->fut);
    } else {
      lua_newtable(L);
      int n = 0;
      for (struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
        lua_createtable(L, 0, 3);
        lua_pushstring(L, a->ai_family == AF_INET ? "inet" : "inet6"); lua_setfield(L, -2, "family");
        struct sockaddr_storage ss;
        memcpy(&ss, a->ai_addr, a->ai_addrlen);
        io_push_sockaddr(L, &ss);
        lua_setfield(L, -3, "port");
        lua_setfield(L, -2, "address");
        lua_rawseti(L, -2, ++n);
      }
      lk->api->resolve(lk->fut, 1);
    }
  }
  uv_freeaddrinfo(res);
  free(lk);
}

/* stack = host, port (a number), family ("inet", "inet6" or nil) */
static int start_lookup(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  const char *host = luaL_checkstring(L, 1);
  char port[16];
  snprintf(port, sizeof port, "%lld", (long long)luaL_optinteger(L, 2, 0));
  const char *fam = luaL_optstring(L, 3, NULL);
  Lookup *lk = calloc(1, sizeof *lk);
  if (!lk) return luaL_error(L, "out of memory");
  snprintf(lk->host, sizeof lk->host, "%s", host);
  lk->api = api;
  lk->req.data = lk;
  struct addrinfo hints = {0};
  hints.ai_family = fam && strcmp(fam, "inet6") == 0 ? AF_INET6 : fam ? AF_INET : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  lk->fut = api->future_new(L);
  int rc = uv_getaddrinfo(api->loop(L), &lk->req, on_lookup, host, port, &hints);
  if (rc != 0) {
    free(lk);
    lua_pop(L, 1);
    return luaL_error(L, "getaddrinfo %s: %s", host, uv_strerror(rc));
  }
  api->on_cancel(lk->fut, lookup_cancelled, lk);
  return 1;
}

int io_getaddrinfo(lua_State *L) {
  return io_lazy(L, start_lookup, 3);
}

/* ---- connect: one address (the prelude tries each in turn) ---------------- */

typedef struct Connect {
  uv_connect_t req;
  const lua_async_api *api;
  lua_async_future *fut;
  Stream *s;
  int cancelled;
} Connect;

static void connect_cancelled(void *ud) { ((Connect *)ud)->cancelled = 1; }

static void on_connect(uv_connect_t *req, int status) {
  Connect *c = req->data;
  if (!c->cancelled) {
    c->api->on_cancel(c->fut, NULL, NULL);
    lua_State *L = c->api->state(c->fut);
    if (status < 0) {
      io_push_uverror(L, c->api, status == UV_ECONNREFUSED || status == UV_ECONNRESET || status == UV_ETIMEDOUT
                                 ? "ConnectionError" : "OSError", status, "connect");
      c->api->reject(c->fut);
    } else {
      stream_connected(c->s);
      c->api->resolve(c->fut, 0);
    }
  }
  free(c);
}

/* stack = stream box (made by new_tcp), address, port */
static int start_connect(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  Stream *s = *(Stream **)luaL_checkudata(L, 1, STREAM_MT);
  const char *addr = luaL_checkstring(L, 2);
  int port = (int)luaL_checkinteger(L, 3);
  struct sockaddr_storage ss;
  if (io_parse_addr(addr, port, &ss) != 0)
    return luaL_error(L, "connect: %s is not an address", addr);
  Connect *c = calloc(1, sizeof *c);
  if (!c || !s) { free(c); return luaL_error(L, "connect: out of memory"); }
  c->api = api; c->s = s; c->req.data = c;
  c->fut = api->future_new(L);
  int rc = uv_tcp_connect(&c->req, stream_tcp(s), (struct sockaddr *)&ss, on_connect);
  if (rc != 0) {
    free(c);
    io_push_uverror(L, api, "OSError", rc, "connect");
    return lua_error(L);
  }
  api->on_cancel(c->fut, connect_cancelled, c);
  return 1;
}

int io_connect_addr(lua_State *L) {
  return io_lazy(L, start_connect, 3);
}

/* new_tcp(limit): a stream box, not connected */
int io_new_tcp(lua_State *L) {
  stream_new_tcp(L, lua_async_get_api(L), (size_t)luaL_optinteger(L, 1, 0));
  return 1;
}

/* ---- servers ------------------------------------------------------------ */

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
 * on_conn, limit at the indices given; opts: reuse_port, a TLS context. */
typedef struct ListenOpts { int reuse_port; SSL_CTX *tls; } ListenOpts;

static int listen_on(lua_State *L, int pipe, const char *where, const struct sockaddr *sa,
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

/* listen_tcp(address, port, backlog, on_conn, limit, reuse_port, tls context or nil);
 * upvalue 1: the thread on_conn runs on */
int io_listen_tcp(lua_State *L) {
  const char *addr = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  struct sockaddr_storage ss;
  if (io_parse_addr(addr, port, &ss) != 0)
    return luaL_error(L, "serve: %s is not an address", addr);
  char where[300];
  snprintf(where, sizeof where, "%s:%d", addr, port);
  ListenOpts o = { lua_toboolean(L, 6), lua_isnoneornil(L, 7) ? NULL : tls_check_context(L, 7) };
  return listen_on(L, 0, where, (struct sockaddr *)&ss, (int)luaL_optinteger(L, 3, 511), 4, (size_t)luaL_optinteger(L, 5, 0), o);
}

/* listen_unix(path, backlog, on_conn, limit); upvalue 1 as above */
int io_listen_unix(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  ListenOpts o = { 0, lua_isnoneornil(L, 5) ? NULL : tls_check_context(L, 5) };
  return listen_on(L, 1, path, NULL, (int)luaL_optinteger(L, 2, 511), 3, (size_t)luaL_optinteger(L, 4, 0), o);
}

/* ---- Unix sockets: connect ------------------------------------------------ */

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
  const lua_async_api *api = lua_async_get_api(L);
  Stream *s = *(Stream **)luaL_checkudata(L, 1, STREAM_MT);
  const char *path = luaL_checkstring(L, 2);
  Connect *c = calloc(1, sizeof *c);
  if (!c || !s) { free(c); return luaL_error(L, "connect_unix: out of memory"); }
  c->api = api; c->s = s; c->req.data = c;
  c->fut = api->future_new(L);
  uv_pipe_connect(&c->req, stream_pipe(s), path, on_connect);
  api->on_cancel(c->fut, connect_cancelled, c);
  return 1;
}

int io_connect_unix(lua_State *L) {
  return io_lazy(L, start_connect_unix, 2);
}

/* the metatables; their method tables go into the module (at -1) as
 * server_methods and stream_methods, for the prelude's Lua methods */
void io_tcp_open(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"_close", sv_close}, {"sockname", sv_sockname}, {"_closed", sv_closed}, {NULL, NULL}
  };
  io_class(L, SERVER_MT, methods, sv_gc, "server_methods");
  stream_open(L);
}
