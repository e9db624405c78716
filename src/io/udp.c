/*
 * udp.c - UDP sockets: bind (any address, a free port by default), an
 * optional peer, send (awaitable: the datagram is handed to the kernel),
 * and recv (awaitable: the next datagram, with who sent it).  Datagrams
 * that arrive with no recv pending wait in a small queue (the oldest are
 * dropped past 256, as a socket buffer would).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "lua_async.h"
#include "io.h"

#define UDP_MT "async.udp"
#define QUEUE_MAX 256

typedef struct Dgram { struct Dgram *next; struct sockaddr_storage from; size_t n; char data[]; } Dgram;

typedef struct Udp {
  lua_async_handle lh;           /* first: the C API's handle memory */
  uv_udp_t uv;
  const lua_async_api *api;
  Dgram *head, *tail; int queued;
  lua_async_future *rfut;        /* the pending recv */
  int receiving, closed;
  char buf[65536];
  struct UBox *box;
} Udp;

typedef struct UBox { Udp *u; } UBox;

static void push_dgram(lua_State *L, const char *data, size_t n, const struct sockaddr_storage *from) {
  lua_pushlstring(L, data, n);
  io_push_sockaddr(L, from);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  Udp *u = ((lua_async_handle *)h->data)->ud;
  (void)suggested;
  *b = uv_buf_init(u->buf, sizeof u->buf);
}

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *addr, unsigned flags) {
  Udp *u = ((lua_async_handle *)h->data)->ud;
  (void)b; (void)flags;
  if (n < 0 || !addr || !u->api->handle_lua(&u->lh)) return;
  struct sockaddr_storage from;
  memset(&from, 0, sizeof from);
  memcpy(&from, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  if (u->rfut) {
    lua_async_future *f = u->rfut;
    u->rfut = NULL;
    uv_unref((uv_handle_t *)&u->uv);
    u->api->on_cancel(f, NULL, NULL);
    push_dgram(u->api->state(f), u->buf, (size_t)n, &from);
    u->api->resolve(f, 3);
    return;
  }
  Dgram *d = malloc(sizeof *d + (size_t)n);
  if (!d) return;
  d->next = NULL; d->from = from; d->n = (size_t)n;
  memcpy(d->data, u->buf, (size_t)n);
  if (u->tail) u->tail->next = d; else u->head = d;
  u->tail = d;
  if (++u->queued > QUEUE_MAX) { Dgram *old = u->head; u->head = old->next; free(old); u->queued--; }
}

static Udp *check_udp(lua_State *L) {
  UBox *b = luaL_checkudata(L, 1, UDP_MT);
  if (!b->u || b->u->closed) {
    lua_async_get_api(L)->error_new(L, "InvalidStateError", "the UDP socket is closed");
    lua_error(L);
  }
  return b->u;
}

/* a pending recv keeps the loop alive (run does not call it a deadlock) */
static void recv_cancelled(void *ud) {
  Udp *u = ud;
  u->rfut = NULL;
  uv_unref((uv_handle_t *)&u->uv);
}

static int start_recv(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  Udp *u = check_udp(L);
  if (u->rfut) { api->error_new(L, "InvalidStateError", "recv: another task is receiving on this socket"); return lua_error(L); }
  lua_async_future *f = api->future_new(L);
  if (u->head) {
    Dgram *d = u->head;
    u->head = d->next;
    if (!u->head) u->tail = NULL;
    u->queued--;
    push_dgram(api->state(f), d->data, d->n, &d->from);
    free(d);
    api->resolve(f, 3);
    return 1;
  }
  u->rfut = f;
  uv_ref((uv_handle_t *)&u->uv);
  api->on_cancel(f, recv_cancelled, u);
  return 1;
}

static int u_recv(lua_State *L) {
  return io_lazy(L, start_recv, 1);
}

typedef struct Send { uv_udp_send_t req; const lua_async_api *api; lua_async_future *fut; int cancelled; char data[]; } Send;

static void send_cancelled(void *ud) { ((Send *)ud)->cancelled = 1; }

static void on_sent(uv_udp_send_t *req, int status) {
  Send *s = (Send *)req;
  Udp *u = ((lua_async_handle *)req->handle->data)->ud;
  if (!s->cancelled && u->api->handle_lua(&u->lh)) {
    s->api->on_cancel(s->fut, NULL, NULL);
    if (status < 0) {
      io_push_uverror(s->api->state(s->fut), s->api, "OSError", status, "send");
      s->api->reject(s->fut);
    } else {
      s->api->resolve(s->fut, 0);
    }
  }
  free(s);
}

/* stack = box, data, address?, port? */
static int start_send(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  Udp *u = check_udp(L);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  struct sockaddr_storage ss;
  const struct sockaddr *to = NULL;
  if (!lua_isnoneornil(L, 3)) {
    const char *addr = luaL_checkstring(L, 3);
    int port = (int)luaL_checkinteger(L, 4);
    if (io_parse_addr(addr, port, &ss) != 0)
      return luaL_error(L, "send: %s is not an address", addr);
    to = (struct sockaddr *)&ss;
  }
  Send *s = malloc(sizeof *s + n);
  if (!s) return luaL_error(L, "send: out of memory");
  memcpy(s->data, data, n);
  s->api = api; s->cancelled = 0;
  uv_buf_t b = uv_buf_init(s->data, (unsigned)n);
  s->fut = api->future_new(L);
  int rc = uv_udp_send(&s->req, &u->uv, &b, 1, to, on_sent);
  if (rc != 0) {
    free(s);
    lua_pop(L, 1);
    io_push_uverror(L, api, "OSError", rc, "send");
    return lua_error(L);
  }
  api->on_cancel(s->fut, send_cancelled, s);
  return 1;
}

static int u_send(lua_State *L) {
  return io_lazy(L, start_send, 4);
}

static int u_sockname(lua_State *L) {
  Udp *u = check_udp(L);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_udp_getsockname(&u->uv, (struct sockaddr *)&ss, &len) != 0) return 0;
  return io_push_sockaddr(L, &ss);
}

static void udp_closed(lua_async_handle *lh) {
  Udp *u = lh->ud;
  while (u->head) { Dgram *d = u->head; u->head = d->next; free(d); }
  if (u->box) u->box->u = NULL;
}

static void udp_close(Udp *u) {
  if (u->closed) return;
  u->closed = 1;
  uv_udp_recv_stop(&u->uv);
  if (u->rfut && u->api->handle_lua(&u->lh)) {        /* a pending recv ends: nil */
    lua_async_future *f = u->rfut;
    u->rfut = NULL;
    u->api->on_cancel(f, NULL, NULL);
    lua_pushnil(u->api->state(f));
    u->api->resolve(f, 1);
  }
  u->api->handle_close(&u->lh, udp_closed);
}

static int u_close(lua_State *L) {
  UBox *b = luaL_checkudata(L, 1, UDP_MT);
  if (b->u) udp_close(b->u);
  return 0;
}

static int u_gc(lua_State *L) {
  UBox *b = lua_touserdata(L, 1);
  if (b->u) { b->u->box = NULL; udp_close(b->u); }
  b->u = NULL;
  return 0;
}

/* udp_open(bind address, port, peer address?, peer port?): a socket box */
int io_udp_open(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  const char *addr = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  struct sockaddr_storage ss;
  if (io_parse_addr(addr, port, &ss) != 0)
    return luaL_error(L, "udp: %s is not an address", addr);
  UBox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->u = NULL;
  luaL_setmetatable(L, UDP_MT);
  Udp *u = (Udp *)api->handle_new(L, sizeof *u);
  if (!u) return luaL_error(L, "udp: out of memory");
  u->api = api;
  int rc = uv_udp_init(api->loop(L), &u->uv);
  if (rc == 0) {
    api->handle_init(&u->lh, (uv_handle_t *)&u->uv);
    u->lh.ud = u;
    b->u = u; u->box = b;
    rc = uv_udp_bind(&u->uv, (struct sockaddr *)&ss, 0);
  }
  if (rc == 0 && !lua_isnoneornil(L, 3)) {
    struct sockaddr_storage peer;
    const char *pa = luaL_checkstring(L, 3);
    int pp = (int)luaL_checkinteger(L, 4);
    if (io_parse_addr(pa, pp, &peer) != 0)
      rc = UV_EINVAL;
    else rc = uv_udp_connect(&u->uv, (struct sockaddr *)&peer);
  }
  if (rc == 0) rc = uv_udp_recv_start(&u->uv, on_alloc, on_recv);
  if (rc != 0) {
    if (b->u) { b->u = NULL; u->box = NULL; }
    api->handle_close(&u->lh, NULL);
    char what[300];
    snprintf(what, sizeof what, "udp %s:%d", addr, port);
    io_push_uverror(L, api, "OSError", rc, what);
    return lua_error(L);
  }
  uv_unref((uv_handle_t *)&u->uv);            /* a socket alone does not keep run going */
  return 1;
}

void io_udp_open_mt(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"recv", u_recv}, {"_send", u_send}, {"sockname", u_sockname}, {"_close", u_close}, {NULL, NULL}
  };
  io_class(L, UDP_MT, methods, u_gc, "udp_methods");
}
