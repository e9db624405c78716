/*
 * lua_async.h - the C API that the `async` module publishes.
 *
 * Other C modules (vdb, third-party I/O bindings) suspend Lua tasks through
 * this table of function pointers instead of linking against `async`:
 *
 *     const lua_async_api *api = lua_async_get_api(L);  // after require "async"
 *     lua_async_future *f = api->future_new(L);         // pushes an awaitable
 *     ... start libuv work on api->loop(L) ...
 *     // later, in a libuv callback on the loop thread:
 *     lua_State *M = api->state(f);
 *     lua_pushinteger(M, 42); api->resolve(f, 1);       // or: push err; api->reject(f)
 *
 * Version 3 adds what an I/O module needs besides: a lazy awaitable whose
 * work starts only when it is awaited (awaitable_new), async's error
 * classes by name (error_new), and one life cycle for libuv handles
 * (handle_*).  Version 4: a lazy awaitable's start may give its results
 * at once.  A module built against an older header still works: the
 * table only grows at its end, and what a version allows stays allowed.
 *
 * A pending future is pinned (it cannot be collected) until it is resolved,
 * rejected or cancelled (see on_cancel to hear of a cancellation at once).  A future that the awaiting task cancels stays
 * pinned until the C side settles it: resolve/reject on a cancelled future
 * only drop the values and unpin it, so a callback never has to care.
 */
#ifndef LUA_ASYNC_H
#define LUA_ASYNC_H

#include <lua.h>
#include <uv.h>

#define LUA_ASYNC_API_VERSION 4
#define LUA_ASYNC_API_KEY "lua_async.api"   /* registry field: light userdata */
#define LUA_ASYNC_LOOP_KEY "lua_async.loop" /* registry field set by use_loop */

typedef struct lua_async_future lua_async_future;

/* A libuv handle's life cycle (version 3), as luv keeps one for every
 * handle.  handle_new gives zeroed memory for your struct, whose first
 * member is a lua_async_handle and which holds the uv handle; after
 * uv_*_init succeeds, handle_init(h, uv) ties them (uv->data = h: keep your
 * own context in `ud`).  Pin the Lua value that owns the handle while the
 * handle is active, so that it is not collected while callbacks may come;
 * close only with handle_close, once (later calls do nothing): the pin is
 * dropped and on_closed runs in libuv's close callback, and the memory is
 * freed after it.  The memory is C's, not a userdata's, so a close may
 * finish after lua_close: the runtime closes every handle still open when
 * the state closes, and from then on handle_lua(h) is 0, and callbacks
 * must not touch Lua. */
typedef struct lua_async_handle lua_async_handle;
struct lua_async_handle {
  void *ud;                       /* yours */
  /* the runtime's own: */
  uv_handle_t *uv;
  int pin;
  unsigned char closing;
  void (*on_closed)(lua_async_handle *h);
  lua_async_handle *prev, *next;
  void *rt;
};

typedef struct lua_async_api {
  int version;
  /* the libuv loop of this Lua state */
  uv_loop_t *(*loop)(lua_State *L);
  /* push a new pending Future on L (an awaitable) and return it, pinned */
  lua_async_future *(*future_new)(lua_State *L);
  /* the Lua state to push results on, from a libuv callback */
  lua_State *(*state)(lua_async_future *f);
  /* pop n values from state(f) and complete f with them; unpins f */
  void (*resolve)(lua_async_future *f, int n);
  /* pop one error value from state(f) and fail f with it; unpins f */
  void (*reject)(lua_async_future *f);
  /* non-zero once the awaiting side cancelled f */
  int (*cancelled)(lua_async_future *f);
  /* version 2: call cb(ud) at once if the awaiting side cancels f (to abort
   * the work behind it); f is then released, and the C side must not
   * resolve or reject it.  Calling on_cancel again replaces the hook;
   * cb NULL removes it. */
  void (*on_cancel)(lua_async_future *f, void (*cb)(void *ud), void *ud);
  /* version 3: push a lazy awaitable made of start and the nargs values on
   * top of L (popped).  Nothing runs until it is awaited (or a Task runs
   * it); then start(L) is called with those values (as the only ones on
   * its stack) and pushes a future from future_new and returns 1, or
   * raises: the awaitable gives that future's outcome.  Version 4: start
   * may instead return its results at once (return n with n values pushed,
   * none of them a lone future), and no future is made: the fast path
   * for work already done (data already buffered, a write the socket
   * took). */
  void (*awaitable_new)(lua_State *L, lua_CFunction start, int nargs);
  /* version 3: push an instance of async's error class `name`
   * ("ConnectionError", "TimeoutError", "InvalidStateError", ...; an
   * unknown name gives async.Error) with message msg */
  void (*error_new)(lua_State *L, const char *name, const char *msg);
  /* version 3: the handle life cycle (see lua_async_handle) */
  lua_async_handle *(*handle_new)(lua_State *L, size_t size);      /* NULL: no memory */
  void (*handle_init)(lua_async_handle *h, uv_handle_t *uv);
  void (*handle_pin)(lua_State *L, lua_async_handle *h, int idx);   /* replaces an earlier pin */
  void (*handle_unpin)(lua_async_handle *h);
  void (*handle_close)(lua_async_handle *h, void (*on_closed)(lua_async_handle *h));
  int (*handle_lua)(lua_async_handle *h);     /* may its callbacks still call into Lua? */
} lua_async_api;

/* Fetch the API published by `async` (NULL if async is not loaded, or
 * older than this header). */
static inline const lua_async_api *lua_async_get_api(lua_State *L) {
  const lua_async_api *api;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_ASYNC_API_KEY);
  api = (const lua_async_api *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return (api && api->version >= LUA_ASYNC_API_VERSION) ? api : NULL;
}

/* A host that runs its own libuv loop hands it over before the first
 * require "async"; async then never runs or closes it (use async.step). */
static inline void lua_async_use_loop(lua_State *L, uv_loop_t *loop) {
  lua_pushlightuserdata(L, loop);
  lua_setfield(L, LUA_REGISTRYINDEX, LUA_ASYNC_LOOP_KEY);
}

#endif
