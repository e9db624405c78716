/*
 * http.c - the `async.http` module (async/http.so, loaded on first use of
 * async.http): libcurl's multi-socket API on the loop's libuv loop.  It
 * reaches the runtime only through the C API that `async` publishes
 * (include/lua_async.h), as any third-party I/O module would; so a script
 * that never makes a request never loads libcurl.
 *
 * curl tells us which sockets to watch (socket_cb: one uv_poll_t each) and
 * when to call it back (timer_cb: one uv_timer_t); libuv tells curl when a
 * socket is ready.  A socket's uv_poll_t lives as long as the socket, not
 * just one transfer on it (found by fd; freed when curl closes the socket),
 * so a request on a kept-alive connection costs no set-up system calls.  Each request is an easy handle in the one multi handle
 * of the loop, so connections are kept alive and reused per host by curl's
 * connection cache.  A request's awaitable is a C API future: a finished
 * transfer resolves it with a response table, a failed one rejects it with
 * async.ConnectionError or async.TimeoutError, and a cancelled one is
 * removed from the multi handle at once, which closes its connection.
 */
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <lauxlib.h>
#include "lua_async.h"
#include "http_prelude.h"    /* generated from src/io/http.lua: const char http_prelude[] */

#define RESPONSE_MT "async.http.Response"
#define SPARE_MAX 16              /* idle easy handles kept for reuse */

typedef struct Buf { char *p; size_t n, cap; } Buf;

typedef struct Req {
  CURL *easy;
  struct Http *h;
  lua_async_future *fut;
  struct curl_slist *hdrs;
  int body_ref;                   /* the request body string, kept alive */
  Buf out, head;                  /* response body, raw header lines */
  curl_off_t max_body;            /* bytes of body taken at most (0: no limit) */
  int too_big;                    /* the body went past max_body */
  char err[CURL_ERROR_SIZE];
  struct Req *prev, *next;        /* requests in flight */
} Req;

typedef struct Http {
  CURLM *multi;
  struct Timer *timer;            /* malloc'd: its close ends after http_gc (the host may run the loop after lua_close) */
  uv_loop_t *uv;
  lua_State *L;                   /* the main thread: registry refs */
  const lua_async_api *api;
  Req *live;
  int nlive;
  CURL *spare[SPARE_MAX];
  int nspare;
  struct Sock **byfd;             /* the watcher of each open socket, by fd */
  int nfd;
} Http;

/* the one timer curl asks for, and a socket's watcher: libuv handles with
 * the C API's life cycle (one close path; freed in its close callback) */
typedef struct Timer {
  lua_async_handle lh;            /* first (the C API's handle memory); lh.ud: the Http */
  uv_timer_t uv;
} Timer;

typedef struct Sock {
  lua_async_handle lh;            /* first (the C API's handle memory) */
  uv_poll_t poll;
  curl_socket_t fd;
  Http *h;
  int events;                     /* what the poll watches now (0: stopped) */
  int wanted;                     /* curl is watching it (a transfer uses it) */
} Sock;

static void sock_close(Sock *s) {
  s->h->byfd[s->fd] = NULL;
  s->h->api->handle_close(&s->lh, NULL);     /* freed once closed */
}

static int buf_add(Buf *b, const char *p, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) return 0;
    b->p = q; b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
  return 1;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  Req *r = ud;
  if (r->max_body && (curl_off_t)(r->out.n + size * n) > r->max_body) { r->too_big = 1; return 0; }
  return buf_add(&r->out, p, size * n) ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  Req *r = ud;
  if (size * n >= 5 && memcmp(p, "HTTP/", 5) == 0) r->head.n = 0;   /* a new response (after 100, a redirect) */
  return buf_add(&r->head, p, size * n) ? size * n : 0;
}

/* ---- finishing a request ------------------------------------------------- */

static void req_unlink(Req *r) {
  Http *h = r->h;
  if (r->prev) r->prev->next = r->next; else h->live = r->next;
  if (r->next) r->next->prev = r->prev;
  if (--h->nlive == 0) uv_unref((uv_handle_t *)&h->timer->uv);
}

/* Remove r from the multi handle and free it; its easy handle is kept for
 * reuse only after a clean finish (a transfer cut short leaves state). */
static void req_free(Req *r, int reuse) {
  Http *h = r->h;
  curl_multi_remove_handle(h->multi, r->easy);
  if (reuse && h->nspare < SPARE_MAX) {
    curl_easy_reset(r->easy);
    h->spare[h->nspare++] = r->easy;
  } else {
    curl_easy_cleanup(r->easy);
  }
  curl_slist_free_all(r->hdrs);
  luaL_unref(h->L, LUA_REGISTRYINDEX, r->body_ref);
  free(r->out.p);
  free(r->head.p);
  free(r);
}

/* headers as a table of lower-case names; repeated ones joined by ", " */
static void push_headers(lua_State *L, Req *r) {
  lua_newtable(L);
  char *p = r->head.p, *end = r->head.p + r->head.n;
  if (!p) return;
  while (p < end) {
    char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && !(eol - p >= 5 && memcmp(p, "HTTP/", 5) == 0)) {
      for (char *c = p; c < colon; c++) *c = (char)tolower((unsigned char)*c);
      char *v = colon + 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      lua_pushlstring(L, p, (size_t)(colon - p));
      lua_pushvalue(L, -1);
      if (lua_rawget(L, -3) == LUA_TSTRING) {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
      }
      lua_rawset(L, -3);
    }
    p = eol + 1;
  }
}

static void req_done(Req *r, CURLcode rc) {
  Http *h = r->h;
  const lua_async_api *api = h->api;
  lua_State *L = api->state(r->fut);
  req_unlink(r);
  if (rc == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    push_headers(L, r);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, r->out.p ? r->out.p : "", r->out.n);
    lua_setfield(L, -2, "body");
    luaL_setmetatable(L, RESPONSE_MT);
    api->resolve(r->fut, 1);
  } else {
    const char *url = NULL;
    curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
    if (r->too_big || rc == CURLE_FILESIZE_EXCEEDED)
      lua_pushfstring(L, "the response body is larger than max_body (%I bytes) (%s)", (lua_Integer)r->max_body, url ? url : "?");
    else if (rc == CURLE_TOO_MANY_REDIRECTS)
      lua_pushfstring(L, "more redirects than follow_redirects allows (%s)", url ? url : "?");
    else if (rc == CURLE_UNSUPPORTED_PROTOCOL)
      lua_pushfstring(L, "only http:// and https:// URLs are followed (%s)", url ? url : "?");
    else
      lua_pushfstring(L, "%s (%s)", r->err[0] ? r->err : curl_easy_strerror(rc), url ? url : "?");
    api->error_new(L, rc == CURLE_OPERATION_TIMEDOUT ? "TimeoutError" : "ConnectionError", lua_tostring(L, -1));
    lua_remove(L, -2);              /* the message: the error object holds it */
    api->reject(r->fut);
  }
  req_free(r, rc == CURLE_OK);
}

static void check_done(Http *h) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(h->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    Req *r = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    if (r) req_done(r, m->data.result);
  }
}

/* the awaiting task was cancelled: drop the transfer (curl closes its
 * connection, so nothing half-read is ever reused) */
static void req_cancelled(void *ud) {
  Req *r = ud;
  req_unlink(r);
  req_free(r, 0);
}

/* ---- curl <-> libuv ------------------------------------------------------ */

static void on_poll(uv_poll_t *p, int status, int events) {
  Sock *s = p->data;                /* (its lua_async_handle, the Sock's first member) */
  int flags = 0, running;
  if (!s->wanted) {               /* an idle kept-alive connection woke (closed by the peer) */
    uv_poll_stop(&s->poll);
    s->events = 0;
    return;
  }
  /* an error on the socket (a reset): curl reads or writes and says which */
  if (status < 0) flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
  else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  Http *h = s->h;                 /* s may be closed by the call below */
  curl_multi_socket_action(h->multi, s->fd, flags, &running);
  check_done(h);
}

static void on_timer(uv_timer_t *t) {
  Http *h = ((lua_async_handle *)t->data)->ud;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(h);
}

static Sock *sock_for(Http *h, curl_socket_t fd) {
  if (fd < 0) return NULL;
  if (fd >= h->nfd) {
    int n = h->nfd ? h->nfd : 64;
    while (n <= fd) n *= 2;
    Sock **t = realloc(h->byfd, (size_t)n * sizeof *t);
    if (!t) return NULL;
    memset(t + h->nfd, 0, (size_t)(n - h->nfd) * sizeof *t);
    h->byfd = t; h->nfd = n;
  }
  Sock *s = h->byfd[fd];
  if (s) return s;
  s = (Sock *)h->api->handle_new(h->L, sizeof *s);
  if (!s) return NULL;
  if (uv_poll_init_socket(h->uv, &s->poll, fd) != 0) { h->api->handle_close(&s->lh, NULL); return NULL; }
  h->api->handle_init(&s->lh, (uv_handle_t *)&s->poll);
  s->fd = fd; s->h = h; s->events = 0; s->wanted = 0;
  return h->byfd[fd] = s;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *ud, void *sockp) {
  (void)easy; (void)sockp;
  Http *h = ud;
  if (what == CURL_POLL_REMOVE) {
    /* The transfer is done with the socket.  A readable watch is left on
     * (unreferenced, so it keeps no loop alive): the next request on this
     * connection usually wants just that, and then costs no epoll_ctl.  A
     * wake-up while idle stops it (on_poll). */
    Sock *s = fd >= 0 && fd < h->nfd ? h->byfd[fd] : NULL;
    if (s) {
      s->wanted = 0;
      if (s->events & UV_WRITABLE) { uv_poll_stop(&s->poll); s->events = 0; }
      uv_unref((uv_handle_t *)&s->poll);
    }
    return 0;
  }
  Sock *s = sock_for(h, fd);
  if (!s) return -1;
  int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
  s->wanted = 1;
  uv_ref((uv_handle_t *)&s->poll);
  if (events != s->events) {
    uv_poll_start(&s->poll, events, on_poll);
    s->events = events;
  }
  return 0;
}

/* curl closes a socket: its watcher goes first */
static int close_socket(void *ud, curl_socket_t fd) {
  Http *h = ud;
  if (fd >= 0 && fd < h->nfd && h->byfd[fd]) sock_close(h->byfd[fd]);
  return close(fd);
}

static int timer_cb(CURLM *multi, long ms, void *ud) {
  (void)multi;
  Http *h = ud;
  if (ms < 0) uv_timer_stop(&h->timer->uv);
  else uv_timer_start(&h->timer->uv, on_timer, (uint64_t)ms, 0);
  return 0;
}

/* at lua_close: transfers still in flight are dropped, then curl's state;
 * async's loop is closed after this (its userdata was made first) */
static int http_gc(lua_State *L) {
  Http *h = *(Http **)lua_touserdata(L, 1);
  if (!h) return 0;
  while (h->live) {
    Req *r = h->live;
    req_unlink(r);
    req_free(r, 0);
  }
  for (int i = 0; i < h->nspare; i++) curl_easy_cleanup(h->spare[i]);
  curl_multi_cleanup(h->multi);       /* closes the cached connections (close_socket) */
  for (int fd = 0; fd < h->nfd; fd++)
    if (h->byfd[fd]) sock_close(h->byfd[fd]);
  free(h->byfd);
  h->api->handle_close(&h->timer->lh, NULL);
  free(h);
  *(Http **)lua_touserdata(L, 1) = NULL;
  return 0;
}

/* the engine, owned by a userdata (left on the stack) whose __gc closes it */
static Http *http_new(lua_State *L, const lua_async_api *api) {
  Http **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  lua_newtable(L);
  lua_pushcfunction(L, http_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  Http *h = calloc(1, sizeof *h);
  Timer *t = (Timer *)api->handle_new(L, sizeof *t);
  CURLM *m = curl_multi_init();
  if (!h || !t || !m) {
    free(h);
    if (t) api->handle_close(&t->lh, NULL);
    if (m) curl_multi_cleanup(m);
    luaL_error(L, "async.http: out of memory");
  }
  h->uv = api->loop(L);
  uv_timer_init(h->uv, &t->uv);
  uv_unref((uv_handle_t *)&t->uv);   /* only transfers in flight keep the loop alive */
  h->timer = t; h->multi = m; h->api = api;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  h->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  api->handle_init(&t->lh, (uv_handle_t *)&t->uv);
  t->lh.ud = h;
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(m, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(m, CURLMOPT_TIMERDATA, h);
  *box = h;
  return h;
}

/* ---- raw_request(method, url, headers, body, timeout, insecure, redirects, max_body) ----
 * Arguments come checked from http.lua: timeout nil (none) or a positive
 * finite number of seconds, redirects a count (0: none), max_body bytes
 * (0: no limit). */

/* "Name: value" lines from the headers table at idx (may be nil) */
static struct curl_slist *read_headers(lua_State *L, int idx) {
  struct curl_slist *l = curl_slist_append(NULL, "Expect:");   /* no 100-continue round trip */
  if (!l) luaL_error(L, "async.http: out of memory");
  if (lua_isnil(L, idx)) return l;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1)) {
      curl_slist_free_all(l);
      luaL_error(L, "bad argument 'headers' to 'request' (a table of strings expected, got a %s key and a %s value)",
                 luaL_typename(L, -2), luaL_typename(L, -1));
    }
    lua_pushvalue(L, -2);
    lua_pushliteral(L, ": ");
    lua_pushvalue(L, -3);
    lua_concat(L, 3);
    struct curl_slist *n = curl_slist_append(l, lua_tostring(L, -1));
    lua_pop(L, 2);
    if (!n) { curl_slist_free_all(l); luaL_error(L, "async.http: out of memory"); }
    l = n;
  }
  return l;
}

/* a request's transfer: where to, its callbacks, its limits */
static void set_transfer(Req *r, const char *url, long redirects, curl_off_t max_body, int insecure, double timeout) {
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->err);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, r->h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, redirects > 0 ? 1L : 0L);
  if (redirects > 0) curl_easy_setopt(e, CURLOPT_MAXREDIRS, redirects);
  if (max_body) curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, max_body);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L);
  if (timeout > 0) {                         /* at least 1 ms (0 would mean none); at most ~24 days */
    double ms = ceil(timeout * 1000);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms >= 2147483647.0 ? 2147483647L : ms < 1 ? 1L : (long)ms);
  }
}

/* the method, and the body (kept alive by a registry ref until the end) */
static void set_method(lua_State *L, Req *r, const char *method, const char *body, size_t blen) {
  CURL *e = r->easy;
  if (strcmp(method, "GET") == 0 && !body) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body || strcmp(method, "POST") == 0) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
      if (body) { lua_pushvalue(L, 4); r->body_ref = luaL_ref(L, LUA_REGISTRYINDEX); }
    }
  }
}

static int l_http_request(lua_State *L) {
  Http *h = *(Http **)lua_touserdata(L, lua_upvalueindex(1));
  if (!h) return luaL_error(L, "async.http: closed");
  const lua_async_api *api = h->api;
  const char *method = luaL_checkstring(L, 1);
  const char *url = luaL_checkstring(L, 2);
  if (!lua_isnil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  size_t blen = 0;
  const char *body = luaL_optlstring(L, 4, NULL, &blen);
  double timeout = luaL_optnumber(L, 5, 0);
  int insecure = lua_toboolean(L, 6);
  long redirects = (long)luaL_optinteger(L, 7, 0);
  curl_off_t max_body = (curl_off_t)luaL_optinteger(L, 8, 0);
  struct curl_slist *hdrs = read_headers(L, 3);

  Req *r = calloc(1, sizeof *r);
  CURL *e = h->nspare ? h->spare[--h->nspare] : curl_easy_init();
  if (!r || !e) {
    free(r);
    if (e) curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    return luaL_error(L, "async.http: out of memory");
  }
  r->body_ref = LUA_NOREF;
  r->max_body = max_body;
  r->easy = e;
  r->h = h;
  r->hdrs = hdrs;
  set_transfer(r, url, redirects, max_body, insecure, timeout);
  set_method(L, r, method, body, blen);

  r->fut = api->future_new(L);      /* pushed: the awaitable */
  r->next = h->live;
  if (h->live) h->live->prev = r;
  h->live = r;
  if (h->nlive++ == 0) uv_ref((uv_handle_t *)&h->timer->uv);
  api->on_cancel(r->fut, req_cancelled, r);
  CURLMcode mc = curl_multi_add_handle(h->multi, e);
  if (mc != CURLM_OK) {
    lua_State *S = api->state(r->fut);
    api->error_new(S, "ConnectionError", curl_multi_strerror(mc));
    api->reject(r->fut);
    req_unlink(r);
    req_free(r, 0);
  }
  return 1;
}

int luaopen_async_http(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "async");
  lua_call(L, 1, 1);
  int async_idx = lua_gettop(L);
  const lua_async_api *api = lua_async_get_api(L);
  if (!api) return luaL_error(L, "async.http: needs the async module's C API version %d", LUA_ASYNC_API_VERSION);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (luaL_loadbuffer(L, http_prelude, sizeof http_prelude - 1, "@async/http.lua") != LUA_OK)
    return lua_error(L);
  http_new(L, api);                 /* the engine's owner: an upvalue of raw_request */
  lua_pushcclosure(L, l_http_request, 1);
  lua_pushvalue(L, async_idx);
  luaL_newmetatable(L, RESPONSE_MT);           /* responses' metatable, filled by http.lua */
  lua_call(L, 3, 1);                           /* http.lua(raw_request, async, mt) -> the module */
  return 1;
}
