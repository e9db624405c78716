/* stream.h - one stream type over a libuv stream (a TCP socket, a Unix
 * socket or a pipe), with a read buffer that serves every read format and
 * a write queue with a high-water mark.  stream.c holds the type; tcp.c
 * makes TCP and Unix-socket streams (connect, accept); process.c gives a
 * child's pipes as streams. */
#ifndef ASYNC_IO_STREAM_H
#define ASYNC_IO_STREAM_H

#include <lua.h>
#include "lua_async.h"
#include "tls.h"

typedef struct Stream Stream;

#define STREAM_MT "async.stream"
#define STREAM_LIMIT 65536        /* the default read-ahead and line limit */
#define STREAM_HIGH_WATER 65536   /* queued bytes above which write waits */

/* a new TCP stream on the loop (not yet connected): its box is pushed */
Stream *stream_new_tcp(lua_State *L, const lua_async_api *api, size_t limit);
Stream *stream_new_pipe(lua_State *L, const lua_async_api *api, size_t limit);   /* Unix sockets, child pipes */
Stream *stream_new_fd(lua_State *L, const lua_async_api *api, int fd);   /* a tty or pipe; NULL (nil pushed) for a file */
uv_tcp_t *stream_tcp(Stream *s);
uv_pipe_t *stream_pipe(Stream *s);
uv_stream_t *stream_uv(Stream *s);
void stream_connected(Stream *s);      /* reading may start */
int  stream_start_tls(Stream *s, SSL_CTX *ctx, const char *servername);   /* servername NULL: a server's; 0 or -1 (no memory) */
void stream_open(lua_State *L);        /* the metatable (its methods into the module at -1) */

#endif
