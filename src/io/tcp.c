/*
 * tcp.c - TCP: getaddrinfo on the thread pool, connect (one address: the
 * prelude tries each in turn; the request is shared with pipe.c), and
 * listen_tcp (server.c listens).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "lua_async.h"
#include "stream.h"
#include "tls.h"
#include "io.h"

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

/* a connection being made, TCP or Unix (pipe.c makes them too) */
typedef struct Connect {
  uv_connect_t req;
  const lua_async_api *api;
  lua_async_future *fut;
  Stream *s;
  int cancelled;
} Connect;

static void connect_cancelled(void *ud) { ((Connect *)ud)->cancelled = 1; }

void io_on_connect(uv_connect_t *req, int status) {
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

/* a request to connect the stream box at idx, its future pushed; then
 * io_connect_started with what uv_*_connect said */
uv_connect_t *io_connect_request(lua_State *L, int idx) {
  Stream *s = *(Stream **)luaL_checkudata(L, idx, STREAM_MT);
  Connect *c = calloc(1, sizeof *c);
  if (!c || !s) { free(c); luaL_error(L, "connect: out of memory"); return NULL; }
  c->api = lua_async_get_api(L); c->s = s; c->req.data = c;
  c->fut = c->api->future_new(L);
  return &c->req;
}

/* 1 (the future stays pushed), or raises OSError when libuv refused at once */
int io_connect_started(lua_State *L, uv_connect_t *req, int rc) {
  Connect *c = req->data;
  if (rc != 0) {
    const lua_async_api *api = c->api;
    free(c);
    io_push_uverror(L, api, "OSError", rc, "connect");
    return lua_error(L);
  }
  c->api->on_cancel(c->fut, connect_cancelled, c);
  return 1;
}

/* stack = stream box (made by new_tcp), address, port */
static int start_connect(lua_State *L) {
  const char *addr = luaL_checkstring(L, 2);
  int port = (int)luaL_checkinteger(L, 3);
  struct sockaddr_storage ss;
  if (io_parse_addr(addr, port, &ss) != 0)
    return luaL_error(L, "connect: %s is not an address", addr);
  uv_connect_t *req = io_connect_request(L, 1);
  Stream *s = ((Connect *)req->data)->s;
  return io_connect_started(L, req, uv_tcp_connect(req, stream_tcp(s), (struct sockaddr *)&ss, io_on_connect));
}

int io_connect_addr(lua_State *L) {
  return io_lazy(L, start_connect, 3);
}

/* new_tcp(limit): a stream box, not connected */
int io_new_tcp(lua_State *L) {
  stream_new_tcp(L, lua_async_get_api(L), (size_t)luaL_optinteger(L, 1, 0));
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
  return io_listen(L, 0, where, (struct sockaddr *)&ss, (int)luaL_optinteger(L, 3, 511), 4, (size_t)luaL_optinteger(L, 5, 0), o);
}

void io_tcp_open(lua_State *L) {
  io_server_open(L);
  stream_open(L);
}
