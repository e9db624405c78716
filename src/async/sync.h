/*
 * sync.h - what Semaphore/Lock (sync.c) and the queues (queue.c) share:
 * the rings their waiting tasks wait in (waiters.c), and how their
 * classes are set up.
 */
#ifndef ASYNC_SYNC_H
#define ASYNC_SYNC_H
#include "core.h"

/* Waiter rings: the waiting tasks themselves, in a C array, woken directly
 * with no future between.  An entry is stale once its task stopped waiting
 * there (cancelled, done: ring_owner cleared, its pending_id given up) or waits
 * again (a newer wait_id); stale entries are dropped when they reach the
 * head.  A pending task is kept alive by the loop, so an entry is
 * dereferenced only once the loop confirms it is still pending. */
typedef struct Waiter { Task *t; int pending_id; uint64_t wait_id; } Waiter;
typedef struct Waiters { Waiter *w; int head, tail, cap; } Waiters;   /* at [head, tail) */

int  wring_len(const Waiters *r);
void wring_free(Waiters *r);
void wring_add(lua_State *L, Waiters *r, const void *owner);      /* the current task waits in r */
void wring_drop_head(Waiters *r);
Task *wring_head(Loop *lp, Waiters *r, const void *owner);        /* the first still waiting, or NULL */
int  wring_wake(lua_State *L, Loop *lp, Waiters *r, const void *owner);   /* give it its turn: 1 if any */
int  ring_wait_outcome(lua_State *L, int okidx, int *turn);

void *test_ud(lua_State *L, int idx, int which);                   /* our userdata by metatable, or NULL */
void *check_ud(lua_State *L, int idx, int which, const char *what);
int  shared_awaitable(lua_State *L, int uval);                     /* acquire() and get()'s one awaitable */
void set_coro_method(lua_State *L, Loop *lp, const char *name, lua_CFunction m, lua_CFunction impl);
void new_class(lua_State *L, Loop *lp, const char *name, int which, const luaL_Reg *methods,
               lua_CFunction tostring, lua_CFunction close, lua_CFunction gc);

#define SEM_MT "async.Semaphore"
#define GUARD_MT "async.Guard"
#define QUEUE_MT "async.Queue"


#endif
