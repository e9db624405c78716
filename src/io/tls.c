/*
 * tls.c - TLS through OpenSSL over two memory BIOs: what the socket
 * brought is written into `in`, OpenSSL's records for the peer collect in
 * `out`, and the stream (stream.c) moves bytes between them and the
 * socket.  OpenSSL never sees a file descriptor, so a TLS stream waits,
 * buffers and closes exactly as a plain one does.
 *
 * OpenSSL's error queue belongs to the thread, which libcurl shares: it is
 * cleared before each call here, and what a failure says is read at once
 * into the session's `why`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "lua_async.h"
#include "io.h"
#include "tls.h"

struct Tls {
  SSL *ssl;
  BIO *in, *out;                 /* in: the peer's ciphertext; out: ours (both owned by ssl) */
  char why[512];
  char name[256];                /* the name the peer's certificate must carry (a client's) */
};

/* ---- contexts ------------------------------------------------------------ */

typedef struct Ctx { SSL_CTX *ctx; } Ctx;

SSL_CTX *tls_check_context(lua_State *L, int idx) {
  return ((Ctx *)luaL_checkudata(L, idx, TLS_CONTEXT_MT))->ctx;
}

static int ctx_gc(lua_State *L) {
  Ctx *c = lua_touserdata(L, 1);
  if (c->ctx) SSL_CTX_free(c->ctx);
  c->ctx = NULL;
  return 0;
}

/* the first reason in OpenSSL's queue, or dflt */
static const char *reason(const char *dflt) {
  const char *r = ERR_reason_error_string(ERR_peek_error());
  return r ? r : dflt;
}

/* an error with no position: the prelude names the user's call */
static int fail(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

/* opts.<field>: a file to load with load(), if given (1; 0 when not);
 * OSError when it cannot be opened, an error naming the field when it
 * holds no such thing */
static int load_file(lua_State *L, SSL_CTX *ctx, const char *field, const char *what,
                     int (*load)(SSL_CTX *, const char *)) {
  lua_getfield(L, 1, field);
  const char *path = lua_tostring(L, -1);
  if (!path) { lua_pop(L, 1); return 0; }
  FILE *f = fopen(path, "r");
  if (!f) {
    io_push_oserror(L, lua_async_get_api(L), errno, "tls: cannot open", path);
    lua_error(L);
  }
  fclose(f);
  ERR_clear_error();
  if (load(ctx, path) != 1) {
    if (ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH)
      fail(L, "tls: %s %s does not match cert_file", field, path);
    fail(L, "tls: %s %s holds no usable %s", field, path, what);
  }
  lua_pop(L, 1);
  return 1;
}

static int load_chain(SSL_CTX *c, const char *p) { return SSL_CTX_use_certificate_chain_file(c, p); }
static int load_key(SSL_CTX *c, const char *p) { return SSL_CTX_use_PrivateKey_file(c, p, SSL_FILETYPE_PEM); }
static int load_cas(SSL_CTX *c, const char *p) { return SSL_CTX_load_verify_locations(c, p, NULL); }

/* cert_file and key_file, when given: a server's certificate, or a
 * client's (mutual TLS) */
static void load_identity(lua_State *L, SSL_CTX *ctx) {
  int cert = load_file(L, ctx, "cert_file", "certificate", load_chain);
  load_file(L, ctx, "key_file", "private key", load_key);
  ERR_clear_error();
  if (cert && SSL_CTX_check_private_key(ctx) != 1)
    fail(L, "tls: key_file does not match cert_file (%s)", reason("no key"));
}

/* tls_context(opts): opts = {server=, cert_file=, key_file=, ca_file=, insecure=}
 * (checked by the prelude); a server with ca_file asks each client for a
 * certificate signed by one of them and refuses a client without one */
int io_tls_context(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "server");
  int server = lua_toboolean(L, -1);
  lua_getfield(L, 1, "insecure");
  int insecure = lua_toboolean(L, -1);
  lua_pop(L, 2);
  Ctx *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->ctx = NULL;
  luaL_setmetatable(L, TLS_CONTEXT_MT);
  ERR_clear_error();
  c->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!c->ctx) return fail(L, "tls: cannot make a context (%s)", reason("out of memory"));
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION);   /* (a renegotiation would make a write wait for a read) */
  SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS);     /* an idle stream keeps no record buffers */
  load_identity(L, c->ctx);
  if (server) {
    if (load_file(L, c->ctx, "ca_file", "CA certificate", load_cas)) SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return 1;
  }
  if (!insecure) {
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (!load_file(L, c->ctx, "ca_file", "CA certificate", load_cas) && SSL_CTX_set_default_verify_paths(c->ctx) != 1)
      return fail(L, "tls: cannot load the system's CA certificates (%s)", reason("unknown reason"));
  }
  return 1;
}

void io_tls_open(lua_State *L) {
  luaL_newmetatable(L, TLS_CONTEXT_MT);
  lua_pushcfunction(L, ctx_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}

/* ---- sessions ------------------------------------------------------------ */

Tls *tls_new(SSL_CTX *ctx, const char *servername) {
  Tls *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  ERR_clear_error();
  t->ssl = SSL_new(ctx);
  t->in = BIO_new(BIO_s_mem());
  t->out = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->in || !t->out) {
    if (t->ssl) SSL_free(t->ssl);
    BIO_free(t->in); BIO_free(t->out);
    free(t);
    return NULL;
  }
  SSL_set_bio(t->ssl, t->in, t->out);
  if (!servername) { SSL_set_accept_state(t->ssl); return t; }
  SSL_set_connect_state(t->ssl);
  snprintf(t->name, sizeof t->name, "%s", servername);
  unsigned char ip[16];
  int is_ip = inet_pton(AF_INET, servername, ip) == 1 || inet_pton(AF_INET6, servername, ip) == 1;
  if (!is_ip) SSL_set_tlsext_host_name(t->ssl, servername);   /* SNI names hosts, never addresses */
  if (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) {
    if (is_ip) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), servername);
    else SSL_set1_host(t->ssl, servername);
  }
  return t;
}

void tls_free(Tls *t) {
  if (!t) return;
  SSL_free(t->ssl);                             /* (frees the BIOs) */
  free(t);
}

const char *tls_why(Tls *t) { return t->why; }
void tls_set_why(Tls *t, const char *why) { snprintf(t->why, sizeof t->why, "%s", why); }

/* a failed call: say why in t->why, in the words users search for */
static int failed(Tls *t, int rc) {
  int e = SSL_get_error(t->ssl, rc);
  long v = SSL_get_verify_result(t->ssl);
  if (v != X509_V_OK && ERR_GET_REASON(ERR_peek_error()) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    int mismatch = v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH;
    snprintf(t->why, sizeof t->why, "certificate verify failed: %.100s%s%.255s%s", X509_verify_cert_error_string(v),
             mismatch ? " (the certificate is not for " : "", mismatch ? t->name : "", mismatch ? ")" : "");
  }
  else if (e == SSL_ERROR_SSL)
    snprintf(t->why, sizeof t->why, "%s", reason("protocol error"));
  else
    snprintf(t->why, sizeof t->why, "TLS error %d", e);
  ERR_clear_error();
  return TLS_FAILED;
}

int tls_feed(Tls *t, const char *p, size_t n) {
  if (n > 0 && BIO_write(t->in, p, (int)n) != (int)n) {
    snprintf(t->why, sizeof t->why, "out of memory");
    return TLS_FAILED;
  }
  return 0;
}

int tls_handshake(Tls *t) {
  ERR_clear_error();
  int rc = SSL_do_handshake(t->ssl);
  if (rc == 1) return TLS_DONE;
  int e = SSL_get_error(t->ssl, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return TLS_AGAIN;
  return failed(t, rc);
}

long tls_read(Tls *t, char *out, size_t cap) {
  ERR_clear_error();
  int rc = SSL_read(t->ssl, out, cap > 1 << 30 ? 1 << 30 : (int)cap);
  if (rc > 0) return rc;
  int e = SSL_get_error(t->ssl, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return TLS_AGAIN;
  if (e == SSL_ERROR_ZERO_RETURN) return TLS_EOF;   /* the peer's close_notify */
  return failed(t, rc);
}

int tls_write(Tls *t, const char *p, size_t n) {
  while (n > 0) {                               /* (a memory BIO takes all: no partial writes) */
    int chunk = n > 1 << 30 ? 1 << 30 : (int)n;
    ERR_clear_error();
    int rc = SSL_write(t->ssl, p, chunk);
    if (rc <= 0) return failed(t, rc);
    p += rc; n -= (size_t)rc;
  }
  return 0;
}

void tls_close_notify(Tls *t) {
  ERR_clear_error();
  if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
  ERR_clear_error();
}

size_t tls_pending(Tls *t) { return BIO_ctrl_pending(t->out); }

size_t tls_take(Tls *t, char *out, size_t n) {
  int rc = BIO_read(t->out, out, n > 1 << 30 ? 1 << 30 : (int)n);
  return rc > 0 ? (size_t)rc : 0;
}
