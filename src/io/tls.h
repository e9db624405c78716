/* tls.h - TLS over memory: OpenSSL reads ciphertext we give it and leaves
 * the ciphertext it writes for us to send, so a TLS stream is the same
 * stream (stream.c) with this engine between its socket and its buffer.
 * No call here touches a socket, the loop or Lua, except the contexts'
 * constructor (a Lua userdata). */
#ifndef ASYNC_IO_TLS_H
#define ASYNC_IO_TLS_H

#include <stddef.h>
#include <lua.h>

typedef struct Tls Tls;
typedef struct ssl_ctx_st SSL_CTX;

#define TLS_CONTEXT_MT "async.tls_context"

enum { TLS_AGAIN = 0, TLS_DONE = 1, TLS_EOF = -1, TLS_FAILED = -2 };

/* tls_context{server=, cert_file=, key_file=, ca_file=, insecure=}: a
 * context userdata; raises OSError for a file that cannot be read, an
 * error saying why for one that is not a certificate or key */
int      io_tls_context(lua_State *L);
SSL_CTX *tls_check_context(lua_State *L, int idx);
void     io_tls_open(lua_State *L);

/* a session: a server's (servername NULL) or a client's, which checks the
 * peer's certificate for servername (a host name or an address) unless
 * the context is insecure; NULL when out of memory */
Tls  *tls_new(SSL_CTX *ctx, const char *servername);
void  tls_free(Tls *t);

int   tls_feed(Tls *t, const char *p, size_t n);   /* ciphertext received; 0, or TLS_FAILED */
int   tls_handshake(Tls *t);                        /* TLS_DONE, TLS_AGAIN or TLS_FAILED */
long  tls_read(Tls *t, char *out, size_t cap);      /* plaintext bytes, TLS_AGAIN, TLS_EOF or TLS_FAILED */
int   tls_write(Tls *t, const char *p, size_t n);   /* 0 or TLS_FAILED */
void  tls_close_notify(Tls *t);                     /* say goodbye (the peer reads the end) */
size_t tls_pending(Tls *t);                         /* ciphertext waiting to be sent */
size_t tls_take(Tls *t, char *out, size_t n);       /* ... taken */
const char *tls_why(Tls *t);                        /* the last failure, in words */
void  tls_set_why(Tls *t, const char *why);         /* ... or one the stream saw */

#endif
