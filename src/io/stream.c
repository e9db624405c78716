/*
 * stream.c - the stream type: a libuv stream, a read buffer, a write queue.
 *
 * Reading.  Bytes land in one buffer, [start, end).  A read names what it
 * wants (up to n bytes, a line, everything, exactly n, up to a separator);
 * it is answered from the buffer at once when it can be, else it waits as
 * the stream's one pending read and is answered by the read callback.
 * Nothing is taken from the buffer until a read is answered, so a read
 * that is cancelled loses nothing, and its wait is cleared at once (the C
 * API's on_cancel).  libuv reads only while the buffer holds less than the
 * stream's limit (or what a read needs): a fast peer is pushed back.
 *
 * Writing.  write copies its bytes once into a libuv write request and
 * completes when the queued bytes are under the high-water mark; else it
 * waits for them to drain.  A write error (the peer closed: EPIPE,
 * ECONNRESET) fails the waiting writers and every later write with
 * ConnectionError; SIGPIPE is ignored (io.c), so it never kills us.
 *
 * TLS.  A TLS stream (tls.c) puts OpenSSL between the socket and the
 * buffer: what the socket brings is fed to it and the plaintext it gives
 * lands in the same buffer, up to the same limit (the rest waits inside
 * OpenSSL, and the socket is not read, until a read takes some); a write
 * is encrypted and its ciphertext queued like plain bytes.  The handshake
 * runs as bytes come; `_handshake` waits for its end.
 *
 * Closing.  close flushes what is queued (uv_shutdown), then closes; abort
 * closes at once.  Either wakes a pending read (as at the end of the
 * stream) and fails waiting writers.  The uv handle is a C API handle:
 * one close path, freed after its close callback, no Lua after lua_close.
 */
#define _GNU_SOURCE          /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "stream.h"
#include "tls.h"
#include "io.h"

/* tasks waiting on the stream (writers, closers): each wait knows its list,
 * so that a cancelled one leaves it at once (on_cancel) */
typedef struct Wait Wait;
typedef struct Waiters { Wait **w; int n, cap; } Waiters;
struct Wait { Waiters *in; lua_async_future *f; };

struct Stream {
  lua_async_handle lh;           /* first: the C API's handle memory */
  union { uv_stream_t stream; uv_tcp_t tcp; uv_pipe_t pipe; uv_tty_t tty; } h;   /* one kind of libuv stream */
  int is_pipe;                   /* (a Unix socket or a child's pipe: no TCP options, names are paths) */
  const lua_async_api *api;
  char *buf; size_t start, end, cap;
  size_t limit;
  int eof, rerr, werr;           /* the peer ended; a read or write error (libuv codes) */
  int sock_eof;                  /* the socket ended (for TLS: the plaintext may not have yet) */
  int reading, closed, connected;
  lua_async_future *rfut;        /* the pending read, and what it wants */
  int rbusy;                     /* a read is being answered or waits (its kind counts in want) */
  int rkind; size_t rarg; char *sep; size_t seplen;
  size_t queued;                 /* bytes given to libuv, not yet written */
  Waiters writers, closers, shutters;
  uv_shutdown_t shut;
  int shutting, flush_then_close;
  struct Box *box;               /* the Lua side's hold, or NULL once collected */
  Tls *tls;                      /* NULL for a plain stream */
  int hs;                        /* the TLS handshake: HS_* */
  lua_async_future *hsfut;       /* who waits for its end */
};

enum { HS_NONE, HS_RUNNING, HS_DONE, HS_FAILED };

typedef struct Box { Stream *s; } Box;   /* s NULL once the stream is closed */

static lua_State *S(Stream *s, lua_async_future *f) { return s->api->state(f); }

/* ---- waiting futures ---------------------------------------------------- */

static void wait_cancelled(void *ud) {
  Wait *w = ud;
  Waiters *in = w->in;
  for (int i = 0; i < in->n; i++) if (in->w[i] == w) { in->w[i] = in->w[--in->n]; break; }
  free(w);
}

static int waiters_add(const lua_async_api *api, Waiters *in, lua_async_future *f) {
  if (in->n == in->cap) {
    int cap = in->cap ? in->cap * 2 : 4;
    Wait **p = realloc(in->w, (size_t)cap * sizeof *p);
    if (!p) return -1;
    in->w = p; in->cap = cap;
  }
  Wait *w = malloc(sizeof *w);
  if (!w) return -1;
  w->in = in; w->f = f;
  in->w[in->n++] = w;
  api->on_cancel(f, wait_cancelled, w);
  return 0;
}

/* settle them all: an error of class cls (or, cls NULL, success) */
static void waiters_settle(Stream *s, Waiters *in, const char *cls, const char *msg) {
  while (in->n > 0) {
    Wait *w = in->w[--in->n];
    lua_async_future *f = w->f;
    free(w);
    if (!s->api->handle_lua(&s->lh)) continue;   /* the state closed: its futures went with it */
    s->api->on_cancel(f, NULL, NULL);
    if (cls) { s->api->error_new(S(s, f), cls, msg); s->api->reject(f); }
    else s->api->resolve(f, 0);
  }
}

/* ---- reading ------------------------------------------------------------ */

enum { R_SOME = 'n', R_LINE = 'l', R_LINE_NL = 'L', R_ALL = 'a', R_EXACTLY = 'x', R_UNTIL = 'u' };

static size_t avail(const Stream *s) { return s->end - s->start; }

static void take(lua_State *L, Stream *s, size_t n) {
  lua_pushlstring(L, s->buf + s->start, n);
  s->start += n;
  if (s->start == s->end) s->start = s->end = 0;
}

static void incomplete(lua_State *L, Stream *s, lua_Integer expected) {
  size_t n = avail(s);
  char msg[120];
  if (expected >= 0) snprintf(msg, sizeof msg, "%zu bytes read on a total of %lld expected", n, (long long)expected);
  else snprintf(msg, sizeof msg, "the stream ended after %zu bytes, before the separator", n);
  s->api->error_new(L, "IncompleteReadError", msg);
  take(L, s, n);
  lua_setfield(L, -2, "partial");
  if (expected >= 0) { lua_pushinteger(L, expected); lua_setfield(L, -2, "expected"); }
}

static const char *find(const Stream *s, const char *sep, size_t n) {
  if (n == 0 || avail(s) < n) return NULL;
  return memmem(s->buf + s->start, avail(s), sep, n);
}

/* Answer the pending read from the buffer if it can be: 0 not yet; 1 with
 * the values pushed (count in *n); 2 with an error pushed. */
static int answer(Stream *s, lua_State *L, int *n) {
  int ended = s->eof || s->closed || s->rerr;
  *n = 1;
  if (s->rerr && avail(s) == 0 && s->rkind != R_ALL) {
    char msg[200];
    if (s->tls && s->rerr == UV_EPROTO) snprintf(msg, sizeof msg, "the connection was lost: TLS: %s", tls_why(s->tls));
    else snprintf(msg, sizeof msg, "the connection was lost: %s", uv_strerror(s->rerr));
    s->api->error_new(L, "ConnectionError", msg);
    return 2;
  }
  switch (s->rkind) {
    case R_SOME:
      if (avail(s) > 0) { take(L, s, avail(s) < s->rarg ? avail(s) : s->rarg); return 1; }
      if (ended) { lua_pushnil(L); return 1; }
      return 0;
    case R_ALL:
      if (!ended) return 0;
      take(L, s, avail(s));
      return 1;
    case R_EXACTLY:
      if (avail(s) >= s->rarg) { take(L, s, s->rarg); return 1; }
      if (ended) { incomplete(L, s, (lua_Integer)s->rarg); return 2; }
      return 0;
    case R_LINE: case R_LINE_NL: case R_UNTIL: {
      const char *sep = s->rkind == R_UNTIL ? s->sep : "\n";
      size_t seplen = s->rkind == R_UNTIL ? s->seplen : 1;
      const char *at = find(s, sep, seplen);
      if (at) {
        size_t len = (size_t)(at - (s->buf + s->start)) + seplen;
        if (s->rkind == R_LINE) {              /* the line without its "\n" */
          lua_pushlstring(L, s->buf + s->start, len - 1);
          s->start += len;
          if (s->start == s->end) s->start = s->end = 0;
        } else {
          take(L, s, len);
        }
        return 1;
      }
      if (avail(s) >= s->limit) {              /* the data stays for another kind of read */
        char msg[160];
        snprintf(msg, sizeof msg, "the separator is not within the first %zu bytes (the stream's limit)", s->limit);
        s->api->error_new(L, "LimitOverrunError", msg);
        return 2;
      }
      if (!ended) return 0;
      if (s->rkind == R_UNTIL) { incomplete(L, s, -1); return 2; }
      if (avail(s) == 0) { lua_pushnil(L); return 1; }
      take(L, s, avail(s));                    /* a last line without "\n" */
      return 1;
    }
  }
  return 0;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);

/* room at the buffer's end for at least 16 KiB more (less if memory is
 * short): its size in *n */
static char *room(Stream *s, size_t *n) {
  if (s->start > 0 && s->start == s->end) s->start = s->end = 0;
  if (s->cap - s->end < 16384) {
    if (s->start > 0) {                        /* slide the unread bytes down first */
      memmove(s->buf, s->buf + s->start, avail(s));
      s->end -= s->start; s->start = 0;
    }
    if (s->cap - s->end < 16384) {
      size_t cap = s->cap ? s->cap * 2 : 65536;
      char *p = realloc(s->buf, cap);
      if (p) { s->buf = p; s->cap = cap; }
    }
  }
  *n = s->cap - s->end;
  return *n ? s->buf + s->end : NULL;
}

/* a TLS stream's ciphertext lands here, for the moment between libuv's
 * alloc and read callbacks (which follow each other on this thread) */
static _Thread_local char cipher_in[65536];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  Stream *s = ((lua_async_handle *)h->data)->ud;
  (void)suggested;
  if (s->tls) { *b = uv_buf_init(cipher_in, sizeof cipher_in); return; }
  size_t n;
  char *p = room(s, &n);
  *b = uv_buf_init(p, (unsigned)n);
}

/* how many bytes the buffer may hold before the socket is not read */
static size_t want(const Stream *s) {
  if (s->rbusy && s->rkind == R_ALL) return SIZE_MAX;
  if (s->rbusy && s->rkind == R_EXACTLY && s->rarg > s->limit) return s->rarg;
  return s->limit;
}

/* read from the socket only while a read wants more or the buffer holds
 * less than the limit */
static void update_reading(Stream *s) {
  int more = s->connected && !s->sock_eof && !s->eof && !s->rerr && !s->closed && avail(s) < want(s);
  if (more && !s->reading) s->reading = uv_read_start(&s->h.stream, on_alloc, on_read) == 0;
  else if (!more && s->reading) { uv_read_stop(&s->h.stream); s->reading = 0; }
}

/* answer the pending read if the buffer (or the end) now allows it */
static void serve_reader(Stream *s) {
  if (!s->rfut) return;
  lua_async_future *f = s->rfut;
  int n, r = answer(s, S(s, f), &n);
  if (r == 0) return;
  s->rfut = NULL;
  s->rbusy = 0;
  s->api->on_cancel(f, NULL, NULL);
  if (r == 1) s->api->resolve(f, n); else s->api->reject(f);
}

static void tls_pump(Stream *s);

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  Stream *s = ((lua_async_handle *)st->data)->ud;
  if (nread > 0 && s->tls) { if (tls_feed(s->tls, b->base, (size_t)nread) != 0) s->rerr = UV_EPROTO; }
  else if (nread > 0) s->end += (size_t)nread;
  else if (nread == UV_EOF) { s->sock_eof = 1; if (!s->tls) s->eof = 1; }
  else if (nread < 0) s->rerr = (int)nread;
  if (!s->api->handle_lua(&s->lh)) return;
  if (s->tls) tls_pump(s);
  serve_reader(s);
  update_reading(s);
}

static void read_cancelled(void *ud) {
  Stream *s = ud;
  s->rfut = NULL;                              /* nothing was taken: the bytes stay */
  s->rbusy = 0;
  update_reading(s);
}

/* the metatable, also under a pointer key: a hot call checks its stream
 * without hashing the name */
static const char stream_mt_key = 0;

static Stream *check_stream(lua_State *L, int idx) {
  Box *b = lua_touserdata(L, idx);
  if (b && lua_getmetatable(L, idx)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &stream_mt_key);
    int ok = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (ok) return b->s;
  }
  luaL_checkudata(L, idx, STREAM_MT);          /* (raises the usual error) */
  return NULL;
}

/* the awaitable's start: stack = box, kind, arg */
static int start_read(lua_State *L) {
  Stream *s = check_stream(L, 1);
  const lua_async_api *api = io_api;
  if (!s || s->closed) { api->error_new(L, "InvalidStateError", "read: the stream is closed"); return lua_error(L); }
  if (s->rfut) { api->error_new(L, "InvalidStateError", "read: another task is reading this stream"); return lua_error(L); }
  const char *kind = luaL_checkstring(L, 2);
  s->rkind = kind[0];
  s->rarg = 0;
  if (s->rkind == R_SOME || s->rkind == R_EXACTLY) s->rarg = (size_t)luaL_checkinteger(L, 3);
  if (s->rkind == R_UNTIL) {
    size_t n;
    const char *sep = luaL_checklstring(L, 3, &n);
    char *copy = malloc(n ? n : 1);
    if (!copy) return luaL_error(L, "out of memory");
    memcpy(copy, sep, n);
    free(s->sep);
    s->sep = copy; s->seplen = n;
  }
  s->rbusy = 1;
  if (s->tls) tls_pump(s);                       /* plaintext OpenSSL kept while the buffer was full */
  int n, r = answer(s, L, &n);
  if (r) {                                      /* answered from the buffer: no future, no wait */
    s->rbusy = 0;
    update_reading(s);
    return r == 1 ? n : lua_error(L);
  }
  s->rfut = api->future_new(L);
  api->on_cancel(s->rfut, read_cancelled, s);
  update_reading(s);
  return 1;
}

/* an awaitable giving "" at once (a read of 0 bytes) */
static int start_empty(lua_State *L) { lua_pushliteral(L, ""); return 1; }

/* the awaitable of a read of kind, its argument at index 2 (or none) */
static int read_awaitable(lua_State *L, const char *kind, int has_arg) {
  lua_settop(L, has_arg ? 2 : 1);
  if (!has_arg) lua_pushnil(L);
  lua_pushstring(L, kind);
  lua_insert(L, 2);                             /* box, kind, arg */
  return io_lazy(L, start_read, 3);
}

/* The read methods give the read's awaitable itself (a bad argument is
 * raised at the call): s:read(n or fmt), s:read_exactly(n), s:read_until(sep) */
static int s_read(lua_State *L) {
  check_stream(L, 1);
  if (lua_isnoneornil(L, 2)) { lua_settop(L, 1); lua_pushinteger(L, 65536); return read_awaitable(L, "n", 1); }
  if (lua_isinteger(L, 2)) {
    lua_Integer n = lua_tointeger(L, 2);
    if (n < 0) return luaL_error(L, "bad argument #1 to 'read' (a byte count must not be negative)");
    if (n == 0) return io_lazy(L, start_empty, 0);
    return read_awaitable(L, "n", 1);
  }
  const char *fmt = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
  if (fmt[0] == '*') fmt++;
  if ((fmt[0] == 'l' || fmt[0] == 'L' || fmt[0] == 'a') && fmt[1] == '\0') {
    char kind[2] = { fmt[0], 0 };
    return read_awaitable(L, kind, 0);
  }
  return luaL_error(L, "bad argument #1 to 'read' (a byte count, \"l\", \"L\" or \"a\" expected, got %s)",
                    luaL_tolstring(L, 2, NULL));
}

static int s_read_exactly(lua_State *L) {
  check_stream(L, 1);
  if (!lua_isinteger(L, 2) || lua_tointeger(L, 2) < 0)
    return luaL_error(L, "bad argument #1 to 'read_exactly' (a byte count expected, got %s)", luaL_tolstring(L, 2, NULL));
  if (lua_tointeger(L, 2) == 0) return io_lazy(L, start_empty, 0);
  return read_awaitable(L, "x", 1);
}

static int s_read_until(lua_State *L) {
  check_stream(L, 1);
  size_t n;
  if (lua_type(L, 2) != LUA_TSTRING || (lua_tolstring(L, 2, &n), n == 0))
    return luaL_error(L, "bad argument #1 to 'read_until' (a non-empty separator expected)");
  return read_awaitable(L, "u", 1);
}

/* ---- writing ------------------------------------------------------------ */

typedef struct WriteReq { uv_write_t req; Stream *s; size_t n; char data[]; } WriteReq;

static void settle_writers(Stream *s) {
  if (s->werr) {
    char msg[200];
    snprintf(msg, sizeof msg, "write: the connection was lost: %s", uv_strerror(s->werr));
    waiters_settle(s, &s->writers, "ConnectionError", msg);
  } else if (s->queued <= STREAM_HIGH_WATER) {
    waiters_settle(s, &s->writers, NULL, NULL);
  }
}

static void do_close(Stream *s);

static void on_written(uv_write_t *req, int status) {
  WriteReq *w = (WriteReq *)req;
  Stream *s = w->s;
  s->queued -= w->n;
  free(w);
  if (status < 0 && status != UV_ECANCELED && !s->werr) s->werr = status;
  if (!s->api->handle_lua(&s->lh)) return;
  settle_writers(s);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  Stream *s = req->data;
  (void)status;
  s->shutting = 0;
  if (s->api->handle_lua(&s->lh)) waiters_settle(s, &s->shutters, NULL, NULL);
  if (s->flush_then_close) do_close(s);
}

static WriteReq *write_req(Stream *s, size_t n) {
  WriteReq *w = malloc(sizeof *w + n);
  if (w) { w->s = s; w->n = n; }
  return w;
}

/* hand w's bytes to libuv (w is freed by on_written, or here) */
static void send_req(Stream *s, WriteReq *w) {
  uv_buf_t b = uv_buf_init(w->data, (unsigned)w->n);
  int rc = s->lh.closing ? UV_EPIPE : uv_write(&w->req, &s->h.stream, &b, 1, on_written);
  if (rc < 0) { free(w); if (!s->werr) s->werr = rc; }
  else s->queued += w->n;
}

/* send n bytes: at once when nothing is queued and the socket takes them
 * (no request, no copy, no callback: the common case), else what is left
 * is copied into a request; 0, or -1 out of memory */
#define WRITE_CHUNK ((size_t)1 << 30)   /* (libuv counts a buffer in an unsigned int) */
static int send_bytes(Stream *s, const char *p, size_t n) {
  while (n > WRITE_CHUNK) {
    if (send_bytes(s, p, WRITE_CHUNK) != 0) return -1;
    p += WRITE_CHUNK; n -= WRITE_CHUNK;
  }
  if (s->queued == 0 && !s->lh.closing) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int done = uv_try_write(&s->h.stream, &b, 1);
    if (done == (int)n) return 0;
    if (done > 0) { p += done; n -= (size_t)done; }
    else if (done != UV_EAGAIN && done != UV_ENOSYS) { if (!s->werr) s->werr = done; return 0; }
  }
  WriteReq *w = write_req(s, n);
  if (!w) return -1;
  memcpy(w->data, p, n);
  send_req(s, w);
  return 0;
}

/* send what OpenSSL wrote for the peer: 0, or -1 out of memory */
static int send_ciphertext(Stream *s) {
  size_t n;
  while ((n = tls_pending(s->tls)) > 0 && !s->lh.closing) {
    if (n > WRITE_CHUNK) n = WRITE_CHUNK;
    WriteReq *w = write_req(s, n);
    if (!w) return -1;
    w->n = tls_take(s->tls, w->data, n);
    send_req(s, w);
  }
  return 0;
}

/* ---- TLS ------------------------------------------------------------------ */

static void settle_handshake(Stream *s) {
  lua_async_future *f = s->hsfut;
  if (!f) return;
  s->hsfut = NULL;
  s->api->on_cancel(f, NULL, NULL);
  if (s->hs == HS_DONE) { s->api->resolve(f, 0); return; }
  char msg[600];
  snprintf(msg, sizeof msg, "the TLS handshake failed: %s", tls_why(s->tls));
  s->api->error_new(S(s, f), "ConnectionError", msg);
  s->api->reject(f);
}

/* move the handshake on; then plaintext from OpenSSL into the buffer (up
 * to what the stream may hold); then send what OpenSSL wrote */
static void tls_pump(Stream *s) {
  if (s->hs == HS_RUNNING) {
    int r = tls_handshake(s->tls);
    if (r == TLS_DONE) s->hs = HS_DONE;
    else if (r == TLS_FAILED) s->hs = HS_FAILED;
    else if (s->sock_eof || s->rerr || s->closed) {
      s->hs = HS_FAILED;
      tls_set_why(s->tls, s->rerr && s->rerr != UV_EPROTO ? uv_strerror(s->rerr)
                  : s->closed ? "the stream was closed" : "the peer closed the connection");
    }
  }
  while (s->hs == HS_DONE && !s->eof && !s->rerr && avail(s) < want(s)) {
    size_t n;
    char *p = room(s, &n);
    if (!p) break;
    long r = tls_read(s->tls, p, n);
    if (r > 0) { s->end += (size_t)r; continue; }
    if (r == TLS_EOF || (r == TLS_AGAIN && s->sock_eof)) s->eof = 1;   /* (an end without close_notify ends it too) */
    else if (r == TLS_FAILED) s->rerr = UV_EPROTO;
    break;
  }
  if (send_ciphertext(s) != 0 && !s->werr) s->werr = UV_ENOMEM;
  if (s->hs != HS_RUNNING) settle_handshake(s);
}

static void handshake_cancelled(void *ud) { ((Stream *)ud)->hsfut = NULL; }

/* stack = box: waits for the handshake's end (ConnectionError if it failed) */
static int start_handshake(lua_State *L) {
  Stream *s = check_stream(L, 1);
  const lua_async_api *api = io_api;
  if (!s || !s->tls || s->closed) { api->error_new(L, "ConnectionError", "the TLS handshake failed: the stream is closed"); return lua_error(L); }
  if (s->hsfut) { api->error_new(L, "InvalidStateError", "another task waits for this handshake"); return lua_error(L); }
  s->hsfut = api->future_new(L);
  if (s->hs != HS_RUNNING) settle_handshake(s);
  else api->on_cancel(s->hsfut, handshake_cancelled, s);
  return 1;
}

static int s_handshake_op(lua_State *L) {      /* _handshake() */
  return io_lazy(L, start_handshake, 1);
}

int stream_start_tls(Stream *s, SSL_CTX *ctx, const char *servername) {
  if (s->tls) return -1;
  if (!(s->tls = tls_new(ctx, servername))) return -1;
  s->hs = HS_RUNNING;
  if (s->connected) tls_pump(s);                /* a client speaks first */
  return 0;
}

/* _tls(context, servername): a connected client stream starts its handshake */
static int s_tls(lua_State *L) {
  Stream *s = check_stream(L, 1);
  SSL_CTX *ctx = tls_check_context(L, 2);
  const char *name = luaL_checkstring(L, 3);
  if (!s || s->closed) return luaL_error(L, "the stream is closed");
  if (stream_start_tls(s, ctx, name) != 0) return luaL_error(L, "tls: out of memory");
  return 0;
}

/* stack = box, data (a string; "" for drain) */
static int start_write(lua_State *L) {
  Stream *s = check_stream(L, 1);
  const lua_async_api *api = io_api;
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  if (!s || s->closed || s->werr) {
    api->error_new(L, "ConnectionError", s && s->werr ? "write: the connection was lost" : "write: the stream is closed");
    return lua_error(L);
  }
  if (s->tls && s->hs != HS_DONE) {
    api->error_new(L, "InvalidStateError", "write: the TLS handshake has not finished");
    return lua_error(L);
  }
  if (n > 0 && s->tls) {
    if (tls_write(s->tls, data, n) != 0) s->werr = UV_EPROTO;
    else if (send_ciphertext(s) != 0) return luaL_error(L, "write: out of memory");
  } else if (n > 0 && send_bytes(s, data, n) != 0) {
    return luaL_error(L, "write: out of memory");
  }
  if (!s->werr && s->queued <= STREAM_HIGH_WATER) return 0;   /* done at once: nothing to wait for */
  lua_async_future *f = api->future_new(L);
  if (waiters_add(api, &s->writers, f) != 0) return luaL_error(L, "write: out of memory");
  settle_writers(s);
  return 1;
}

/* s:write(data, ...): the write's awaitable (the parts joined; a bad one
 * raised at the call); s:drain(): a write of nothing */
static int s_write(lua_State *L) {
  check_stream(L, 1);
  int top = lua_gettop(L);
  if (top == 2 && lua_type(L, 2) == LUA_TSTRING) return io_lazy(L, start_write, 2);
  if (top < 2) return luaL_error(L, "bad argument #1 to 'write' (string expected, got no value)");
  for (int i = 2; i <= top; i++)
    if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER)
      return luaL_error(L, "bad argument #%d to 'write' (string expected, got %s)", i - 1, luaL_typename(L, i));
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 2; i <= top; i++) { lua_pushvalue(L, i); luaL_addvalue(&b); }
  luaL_pushresult(&b);
  lua_replace(L, 2);
  return io_lazy(L, start_write, 2);
}

static int s_drain(lua_State *L) {
  check_stream(L, 1);
  lua_settop(L, 1);
  lua_pushliteral(L, "");
  return io_lazy(L, start_write, 2);
}

/* ---- closing ------------------------------------------------------------ */

static void on_closed(lua_async_handle *lh) {
  Stream *s = lh->ud;
  if (s->box) s->box->s = NULL;                /* (only while the state is open: else no box) */
  waiters_settle(s, &s->closers, NULL, NULL);
  waiters_settle(s, &s->shutters, NULL, NULL);
  free(s->writers.w); free(s->closers.w); free(s->shutters.w);
  free(s->buf); free(s->sep);
  tls_free(s->tls);
}

static void do_close(Stream *s) {
  if (s->lh.closing) return;
  s->api->handle_close(&s->lh, on_closed);
}

/* stop reading and wake whoever waits: the read as at the end, writers fail */
static void end_waits(Stream *s) {
  s->closed = 1;
  if (s->reading) { uv_read_stop(&s->h.stream); s->reading = 0; }
  if (!s->api->handle_lua(&s->lh)) return;
  if (s->hs == HS_RUNNING) tls_pump(s);         /* (fails it: the handshake waiter learns) */
  serve_reader(s);
  waiters_settle(s, &s->writers, "ConnectionError", "write: the stream was closed");
}

/* stack = box, how ("close" flushes first, "abort" does not, "write" is a half-close) */
static int start_close(lua_State *L) {
  Box *b = luaL_checkudata(L, 1, STREAM_MT);
  const lua_async_api *api = io_api;
  const char *how = luaL_checkstring(L, 2);
  Stream *s = b->s;
  lua_async_future *f = api->future_new(L);
  if (!s) { api->resolve(f, 0); return 1; }    /* closed long ago */
  if (how[0] == 'w') {                          /* close_write */
    if (s->closed || s->shutting || !s->connected) { api->resolve(f, 0); return 1; }
    if (s->hs == HS_DONE) { tls_close_notify(s->tls); send_ciphertext(s); }
    s->shut.data = s;
    if (uv_shutdown(&s->shut, &s->h.stream, on_shutdown) != 0) { api->resolve(f, 0); return 1; }
    s->shutting = 1;
    if (waiters_add(api, &s->shutters, f) != 0) api->resolve(f, 0);
    return 1;
  }
  if (waiters_add(api, &s->closers, f) != 0) api->resolve(f, 0);
  if (s->lh.closing) return 1;
  int first = !s->closed;
  if (first && how[0] == 'c' && s->hs == HS_DONE && !s->werr) { tls_close_notify(s->tls); send_ciphertext(s); }
  end_waits(s);
  if (first && how[0] == 'c' && s->queued > 0 && s->connected && !s->werr && !s->shutting) {
    s->flush_then_close = 1;
    s->shut.data = s;
    if (uv_shutdown(&s->shut, &s->h.stream, on_shutdown) == 0) { s->shutting = 1; return 1; }
  }
  if (!s->shutting) do_close(s);
  else s->flush_then_close = 1;
  return 1;
}

static int s_close_op(lua_State *L) {         /* _close(how) */
  return io_lazy(L, start_close, 2);
}

/* abort(): close at once, dropping what is queued; no one waits */
static int s_abort(lua_State *L) {
  Stream *s = check_stream(L, 1);
  if (!s || s->lh.closing) return 0;
  end_waits(s);
  do_close(s);                                  /* (a shutdown in flight is cancelled: its callback comes first) */
  return 0;
}

/* the box collected with the stream open: close at once, no one to tell */
static int box_gc(lua_State *L) {
  Box *b = lua_touserdata(L, 1);
  Stream *s = b->s;
  if (!s) return 0;
  b->s = NULL;
  s->box = NULL;
  s->closed = 1;
  if (s->reading) uv_read_stop(&s->h.stream);
  do_close(s);
  return 0;
}

/* ---- names and options -------------------------------------------------- */

int io_push_sockaddr(lua_State *L, const struct sockaddr_storage *ss) {
  char host[64] = "";
  int port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, host, sizeof host); port = ntohs(a->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, host, sizeof host); port = ntohs(a->sin6_port);
  }
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

static int s_name(lua_State *L, int peer) {
  Stream *s = check_stream(L, 1);
  if (!s) return luaL_error(L, "the stream is closed");
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (s->is_pipe) {
    char path[1024];
    size_t n = sizeof path;
    int rc = peer ? uv_pipe_getpeername(&s->h.pipe, path, &n) : uv_pipe_getsockname(&s->h.pipe, path, &n);
    if (rc != 0) { lua_pushnil(L); lua_pushstring(L, uv_strerror(rc)); return 2; }
    lua_pushlstring(L, path, n);
    return 1;
  }
  int rc = peer ? uv_tcp_getpeername(&s->h.tcp, (struct sockaddr *)&ss, &len)
                : uv_tcp_getsockname(&s->h.tcp, (struct sockaddr *)&ss, &len);
  if (rc != 0) { lua_pushnil(L); lua_pushstring(L, uv_strerror(rc)); return 2; }
  return io_push_sockaddr(L, &ss);
}

static int s_peername(lua_State *L) { return s_name(L, 1); }
static int s_sockname(lua_State *L) { return s_name(L, 0); }

static int s_set_nodelay(lua_State *L) {
  Stream *s = check_stream(L, 1);
  if (s && !s->is_pipe) uv_tcp_nodelay(&s->h.tcp, lua_toboolean(L, 2));
  return 0;
}

static int s_set_keepalive(lua_State *L) {
  Stream *s = check_stream(L, 1);
  if (s && !s->is_pipe) uv_tcp_keepalive(&s->h.tcp, lua_toboolean(L, 2), (unsigned)luaL_optinteger(L, 3, 60));
  return 0;
}

static int s_limit(lua_State *L) {
  Stream *s = check_stream(L, 1);
  lua_pushinteger(L, s ? (lua_Integer)s->limit : 0);
  return 1;
}

/* ---- making one ----------------------------------------------------------- */

/* the box (pushed, empty until its stream is ready) and the stream's C
 * memory, its uv handle not yet made */
static Stream *stream_alloc(lua_State *L, const lua_async_api *api, size_t limit, int pipe, Box **box) {
  Box *b = *box = lua_newuserdatauv(L, sizeof *b, 0);
  b->s = NULL;
  luaL_setmetatable(L, STREAM_MT);
  Stream *s = (Stream *)api->handle_new(L, sizeof *s);
  if (!s) { luaL_error(L, "out of memory"); return NULL; }
  s->api = api;
  s->limit = limit ? limit : STREAM_LIMIT;
  s->is_pipe = pipe;
  return s;
}

/* a new stream of the kind asked, its box pushed */
static Stream *stream_new(lua_State *L, const lua_async_api *api, size_t limit, int pipe) {
  Box *b;
  Stream *s = stream_alloc(L, api, limit, pipe, &b);
  int rc = pipe ? uv_pipe_init(api->loop(L), &s->h.pipe, 0) : uv_tcp_init(api->loop(L), &s->h.tcp);
  if (rc != 0) { api->handle_close(&s->lh, NULL); luaL_error(L, "cannot make a stream: %s", uv_strerror(rc)); }
  api->handle_init(&s->lh, (uv_handle_t *)&s->h.stream);
  s->lh.ud = s;
  b->s = s;                                     /* (the uv handle is made: the box holds it) */
  s->box = b;
  return s;
}

Stream *stream_new_tcp(lua_State *L, const lua_async_api *api, size_t limit) { return stream_new(L, api, limit, 0); }

/* A stream over an open descriptor of this process (0, 1, 2): a terminal
 * or a pipe/socket; its box pushed, or nil and returns NULL when the fd is
 * neither (a file: the caller reads it another way). */
Stream *stream_new_fd(lua_State *L, const lua_async_api *api, int fd) {
  uv_handle_type t = uv_guess_handle(fd);
  if (t != UV_TTY && t != UV_NAMED_PIPE && t != UV_TCP) { lua_pushnil(L); return NULL; }
  Box *b;
  Stream *s = stream_alloc(L, api, 0, 1, &b);
  int rc = t == UV_TTY ? uv_tty_init(api->loop(L), &s->h.tty, fd, fd == 0) : uv_pipe_init(api->loop(L), &s->h.pipe, 0);
  if (rc == 0) {                              /* from here the one close path is uv_close */
    api->handle_init(&s->lh, (uv_handle_t *)&s->h.stream);
    s->lh.ud = s;
    if (t != UV_TTY) rc = uv_pipe_open(&s->h.pipe, fd);
  }
  if (rc != 0) {
    api->handle_close(&s->lh, NULL);
    luaL_error(L, "cannot use descriptor %d as a stream: %s", fd, uv_strerror(rc));
    return NULL;
  }
  b->s = s;                                     /* (the uv handle is made: the box holds it) */
  s->box = b;
  s->connected = 1;
  return s;
}
Stream *stream_new_pipe(lua_State *L, const lua_async_api *api, size_t limit) { return stream_new(L, api, limit, 1); }

uv_tcp_t *stream_tcp(Stream *s) { return &s->h.tcp; }
uv_pipe_t *stream_pipe(Stream *s) { return &s->h.pipe; }
uv_stream_t *stream_uv(Stream *s) { return &s->h.stream; }

void stream_connected(Stream *s) {
  s->connected = 1;
  update_reading(s);
}

void stream_open(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"read", s_read}, {"read_exactly", s_read_exactly}, {"read_until", s_read_until},
    {"write", s_write}, {"drain", s_drain}, {"_close", s_close_op},
    {"peername", s_peername}, {"sockname", s_sockname}, {"set_nodelay", s_set_nodelay},
    {"set_keepalive", s_set_keepalive}, {"_limit", s_limit},
    {"abort", s_abort}, {"_tls", s_tls}, {"_handshake", s_handshake_op}, {NULL, NULL}
  };
  io_class(L, STREAM_MT, methods, box_gc, "stream_methods");
  luaL_getmetatable(L, STREAM_MT);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &stream_mt_key);
}
