/* io.h - the async.io module's parts (async/io.so): threads now; streams,
 * processes, files and signals to come, each in a file of its own. */
#ifndef ASYNC_IO_H
#define ASYNC_IO_H

#include <lua.h>

#include <lauxlib.h>
#include <uv.h>
#include "tls.h"

/* io.c: what the files share */
struct lua_async_api;
extern const struct lua_async_api *io_api;   /* async's C API (one table for every state), set at luaopen */
int   io_lazy(lua_State *L, lua_CFunction start, int nargs);
int   io_parse_addr(const char *addr, int port, struct sockaddr_storage *ss);
void  io_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc, const char *exported);

typedef struct Pool Pool;       /* thread.c: worker Lua states */
Pool *pool_new(void);
void  pool_unref(Pool *p);
void  io_pool_close(Pool *p);      /* the Lua state closes: calls in flight touch no Lua, then go */
int   io_to_thread(lua_State *L);   /* upvalue 1: a box holding the Pool */

/* fs.c */
int   io_fs_op(lua_State *L);
int   io_fs_seek(lua_State *L);
int   io_fs_close_now(lua_State *L);
struct lua_async_api;
void  io_push_oserror(lua_State *L, const struct lua_async_api *api, int err, const char *op, const char *what);
void  io_push_uverror(lua_State *L, const struct lua_async_api *api, const char *cls, int rc, const char *what);

/* tcp.c, pipe.c, server.c, stream.c */
typedef struct ListenOpts { int reuse_port; SSL_CTX *tls; } ListenOpts;
int   io_listen(lua_State *L, int pipe, const char *where, const struct sockaddr *sa,
                int backlog, int fnidx, size_t limit, ListenOpts o);
void  io_server_open(lua_State *L);
uv_connect_t *io_connect_request(lua_State *L, int idx);
int   io_connect_started(lua_State *L, uv_connect_t *req, int rc);
void  io_on_connect(uv_connect_t *req, int status);
struct sockaddr_storage;
int   io_push_sockaddr(lua_State *L, const struct sockaddr_storage *ss);   /* host, port */
int   io_getaddrinfo(lua_State *L);
int   io_connect_addr(lua_State *L);
int   io_new_tcp(lua_State *L);
int   io_listen_tcp(lua_State *L);      /* upvalue 1: the thread on_conn runs on */
int   io_listen_unix(lua_State *L);     /* the same */
int   io_new_pipe(lua_State *L);
int   io_connect_unix(lua_State *L);
int   io_stdio_stream(lua_State *L);
void  io_tcp_open(lua_State *L);

/* udp.c */
int   io_udp_open(lua_State *L);
void  io_udp_open_mt(lua_State *L);         /* (puts udp_methods in the module at -1) */

/* process.c */
int   io_spawn(lua_State *L);
void  io_process_open(lua_State *L);

/* signal.c */
int   io_signal_number(const char *name);   /* 0 if unknown */
const char *io_signal_name(int num);
int   io_watch_signal(lua_State *L);        /* upvalue 1: the thread callbacks run on */
void  io_signal_open(lua_State *L);
int   io_signal_known(lua_State *L);

#endif
