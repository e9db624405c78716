/* core.h - the runtime's internal types, shared by the files in src/ only. */
#ifndef LUA_ASYNC_CORE_H
#define LUA_ASYNC_CORE_H

#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include <uv.h>
#include "../include/lua_async.h"

/* First byte of every userdata the loop queues, so a queue entry can be
 * dispatched without a metatable lookup. */
enum { TAG_FUTURE = 0x5a, TAG_TASK, TAG_HANDLE, TAG_DONE_HOOK, TAG_SEM, TAG_QUEUE, TAG_GUARD };
enum { PENDING = 0, DONE, CANCELLED };

/* Future user values */
enum { UVAL_RESULT = 1, UVAL_CALLBACKS, UVAL_CANCELMSG, FUTURE_NUV = UVAL_CANCELMSG };
/* Task user values (after the future's).  A task's first user value holds,
 * in turn, its coroutine object (until it starts), its thread (while it
 * runs) and its results (once done): three phases, one user value. */
enum { UVAL_WAITER = FUTURE_NUV + 1, UVAL_NAME, TASK_NUV = UVAL_NAME };
#define UVAL_CORO UVAL_RESULT
#define UVAL_THREAD UVAL_RESULT

typedef struct Loop Loop;
typedef struct ChildRun ChildRun;

/* Indices of a Lua array handed out and taken back (freed ones first). */
typedef struct IdPool { int *free; int nfree, cap, max; } IdPool;
int  ids_take(IdPool *s);
void ids_give(IdPool *s, int id);

typedef struct Future {
  unsigned char tag;
  unsigned char state;
  unsigned char failed;     /* DONE with an exception */
  unsigned char retrieved;  /* its exception was looked at */
  int nres;                 /* number of results when DONE */
  int ncb;                  /* callbacks registered (0, 1: inline, >1: table) */
  int pin_ref;              /* C API: registry ref while pending, else LUA_NOREF */
  Loop *loop;
  struct Task *wtask;       /* the task awaiting it, kept as a pointer (it is pending) */
  int wpos;                 /* how many callbacks came before that task */
  struct CancelHook *hook;  /* C API: its on_cancel hook, or NULL */
} Future;

typedef struct Task Task;
struct Task {
  Future f;
  lua_State *T;             /* the task's own thread (kept by UVAL_THREAD) */
  Future *waiter;           /* the future it awaits, or NULL */
  int timer_pos;            /* where its sleep is in the timers (timers.c), or TIMER_NONE */
  int must_cancel;          /* deliver CancelledError at the next step */
  int ncancel;              /* cancellation requests not yet uncancelled */
  int id;
  int pending_id;           /* its index in the loop's table of pending tasks (LS_PENDING) */
  unsigned char started, awaiting;
  const void *ring_owner;   /* the Semaphore/Queue whose ring it waits in, or NULL */
  uint64_t wait_id;         /* its current wait in a ring (unique on the loop) */
  unsigned char granted;    /* woken by the ring (a slot or item is its turn) */
  int inline_depth;         /* coroutine objects it awaits inline, nested (see l_await) */
  int checked_depth;        /* an inline depth where its C frames were counted, */
  int checked_frames;       /* and at most that many then (see too_deep_inline) */
};

typedef struct Handle {     /* call_soon / call_later */
  unsigned char tag;
  unsigned char cancelled;
  int timer_pos;            /* as a Task's */
  int nargs;
  int keep;                 /* in the loop's keep-alive table */
} Handle;

typedef struct TimerEntry {
  uint64_t due, seq;
  unsigned char is_task;    /* else a Handle */
  void *obj;
} TimerEntry;

#define TIMER_NONE (-1)
typedef struct Timers {     /* see timers.c */
  TimerEntry *heap;
  int heap_n, heap_cap;
  TimerEntry *ring;         /* a FIFO of entries in the order they fall due */
  unsigned head, n, cap, dead;
  uint64_t seq;
} Timers;

struct Loop {
  lua_State *LL;            /* the loop's own thread: runs callbacks */
  uv_loop_t *uv;
  int own_uv;               /* we created it (and must close it) */
  uv_timer_t *timer;        /* each malloc'd: see loop_gc */
  uv_check_t *check;
  uv_idle_t *idle;
  int eager_depth;          /* gathers starting children inside children */
  int refs[16];         /* registry refs of the loop's tables (LS_*, below) */
  struct Ready *rq;         /* ready queue: a ring, see loop.c */
  unsigned rq_head, rq_tail, rq_mask;
  IdPool cb_ids;           /* for Lua callbacks in LS_QUEUE */
  Timers timers;
  Task *current;            /* the task being resumed */
  lua_State *probe;         /* a gather child running eagerly with no Task yet (task_run_eager) */
  Task *probe_task;         /* the Task it was given once it needed one */
  int running;              /* run() or step() is on the C stack */
  int in_loop;              /* the loop is draining callbacks (perhaps a host's uv_run) */
  int debug;
  int next_task_id;
  int npending;             /* tasks not yet done */
  IdPool pending_ids;         /* indices of the pending table (LS_PENDING) */
  Task **pending_task;         /* the pending task at each such index, or NULL */
  int pending_cap;
  uint64_t next_wait;       /* wait ids handed out (sync.c's rings) */
  double slow_threshold;    /* seconds, debug mode */
  int npool;                /* finished threads kept for reuse (LS_POOL) */
  int task_main_ref;        /* the C function every task thread starts in */
  int batch_main_ref;       /* gather's runs of children in one thread (task_run_batch) */
  struct ChildRun *child_run;  /* gather's run of fresh children going on now, if any */
  int strtb_n;              /* entries in LS_STRTB (see loop_msgh) */
  int reraising;            /* an awaited error is raised again: keep its first traceback */
  int mt_ref[8];            /* metatables of our userdata, by MT_* */
  const void *mt_ptr[8];
  struct CancelHook *hooks; /* C API: what to run when a pinned future is cancelled */
  lua_async_handle *handles;   /* C API: the libuv handles open (capi.c) */
  uv_signal_t *sigint;      /* SIGINT while run runs (interrupt.c) */
  Task *main_task;          /* run's main task, while it runs */
  int interrupted;          /* SIGINTs seen during this run */
  int sigint_taken;         /* the script handles SIGINT itself (async.on_signal) */
};

/* C API futures whose C side wants to hear of a cancellation (few: the
 * requests in flight), kept in a list on the loop */
typedef struct CancelHook {
  Future *f;
  void (*cb)(void *ud);
  void *ud;
  struct CancelHook *next, *prev;   /* the loop's list (f->hook finds its own) */
} CancelHook;

enum { MT_FUTURE = 0, MT_TASK, MT_CORO, MT_LIBCORO, MT_SEM, MT_GUARD, MT_QUEUE };
/* push the metatable quickly / test an object's metatable */
void loop_setmetatable(lua_State *L, Loop *lp, int which);
int  loop_hasmetatable(lua_State *L, Loop *lp, int idx, int which);
void loop_register_mt(lua_State *L, Loop *lp, int which);  /* the table at -1 */

/* the loop's tables, each held by a registry ref (lp->refs) */
enum { LS_PENDING = 1, LS_QUEUE, LS_KEEP, LS_UNRETRIEVED, LS_GENTHREADS,
       LS_TRACEBACKS, LS_STRTB, LS_ERRORS, LS_HANDLER, LS_POOL, LS_LISTMT, LS_LAZY, LS_N = LS_LAZY };

/* loop.c */
Loop *loop_get(lua_State *L);              /* upvalue 1 of every core function */
int loop_is_cancelled(lua_State *L, Loop *lp, int idx);   /* a CancelledError */
int loop_msgh(lua_State *L);               /* message handler recording tracebacks (upvalue 1: the loop) */
int loop_c_frames(lua_State *L);
int loop_ref_thread_main(lua_State *L, Loop *lp, lua_CFunction main);   /* (report.c) */             /* C functions on the stack (report.c) */
int loop_call_reported(lua_State *L, Loop *lp, int nargs);  /* pcall under loop_msgh: 0 or the error on top */
extern const char loop_registry_key;
Loop *loop_of_registry(lua_State *L);      /* the loop, from any C function (the C API's callers) */
void loop_push_ref(lua_State *L, Loop *lp, int which);   /* one of the loop's tables (LS_*) */
void loop_set_ref(lua_State *L, Loop *lp, int which);    /* pops the new value (nil: false) */
void loop_enqueue(lua_State *L, Loop *lp, int cb, int arg);   /* stack indices */
void loop_enqueue_task(lua_State *L, Loop *lp, Task *t);
void loop_enqueue_wake(lua_State *L, Loop *lp, Task *t, Future *f);
int  loop_has_ready(Loop *lp);
int  loop_add_timer(Loop *lp, uint64_t due, int is_task, void *obj);   /* -1: out of memory */
void loop_remove_timer(Loop *lp, int pos);
uint64_t delay_to_due(double seconds);
int  loop_close(lua_State *L);             /* __gc of the loop userdata */
void loop_report(lua_State *L, Loop *lp, int errindex, const char *what, int ctxindex);
int  loop_traceback_table(lua_State *L, int idx);   /* LS_TRACEBACKS or LS_STRTB */
int  loop_open(lua_State *L, Loop *lp);    /* registers loop functions in table at -1 */

/* future.c */
Future *future_check(lua_State *L, int idx);  /* Future or Task */
Future *future_test(lua_State *L, int idx);
Future *future_new(lua_State *L, Loop *lp);
int  future_push_results(lua_State *L, int idx);  /* raises if failed/cancelled */
void future_set_result(lua_State *L, int fidx, int n);   /* pops n values */
void future_set_exception(lua_State *L, int fidx);        /* pops 1 value */
int  future_cancel(lua_State *L, int fidx, int msgidx);   /* 1 if it was cancelled now */
void future_add_callback(lua_State *L, int fidx, int cbidx);
void future_add_waiter(lua_State *L, int fidx, Task *t);   /* wake t when done */
void push_error(lua_State *L, Loop *lp, const char *cls, int msgidx);
int  raise_error(lua_State *L, Loop *lp, const char *cls, const char *fmt, ...);
int  future_open(lua_State *L, Loop *lp);
extern const lua_async_api async_api;   /* capi.c */
/* the C API's futures (future.c) and the rest of it (capi.c) */
uv_loop_t *capi_loop(lua_State *L);
lua_async_future *capi_future_new(lua_State *L);
lua_State *capi_state(lua_async_future *af);
void capi_resolve(lua_async_future *af, int n);
void capi_reject(lua_async_future *af);
int  capi_cancelled(lua_async_future *af);
void capi_on_cancel(lua_async_future *af, void (*cb)(void *ud), void *ud);
void capi_close_handles(Loop *lp);             /* at lua_close: close what is open, touch no Lua after */

/* ---- inside the task machinery: coro.c, await.c, task.c, combinators.c -- */

enum { TAG_CORO = 0x60 };
enum { CORO_CREATED = 0, CORO_AWAITED, CORO_SCHEDULED };

typedef struct Coro {
  unsigned char tag, state;
  int nargs;
  int line;                 /* where it was created */
  lua_CFunction direct;     /* a library awaitable's C body (see l_await) */
  unsigned char reusable;   /* a shared library awaitable: may be awaited again */
} Coro;

extern char AWAIT_MARK;     /* await.c: its address, a generator's await passing up */

/* coro.c */
Coro *coro_test(lua_State *L, Loop *lp, int idx);        /* the coroutine object at idx, or NULL */
void coro_schedule(lua_State *L, Loop *lp, Coro *c);     /* it becomes a task's body (once) */
void coro_push_on(lua_State *L, Loop *lp, int fidx, int nargs);   /* a library awaitable, from anywhere */
int  coro_open(lua_State *L, Loop *lp);

/* await.c */
Task *current_task(lua_State *L, Loop *lp);              /* a gather child gets its Task here */
int  await_open(lua_State *L, Loop *lp);

/* task.c: what the eager gather children (combinators.c) share */
Task *task_alloc(lua_State *L, Loop *lp);                /* pushed, pending, not started */
void task_take_pending_id(lua_State *L, Loop *lp, Task *t);    /* its place among the pending */
void task_settle(lua_State *L, Loop *lp, int tidx, int first, int status);
void task_finished(lua_State *L, Loop *lp, int tidx, Task *t, lua_State *reusable);
void task_after_resume(lua_State *L, Loop *lp, int tidx, Task *t, lua_State *T, int status, int nres);
void task_pool_put(lua_State *L, Loop *lp, lua_State *T);
lua_State *task_pool_take(lua_State *L, Loop *lp);       /* pushed */

/* combinators.c: a gather child's Task, made from inside the child */
Task *task_materialize(lua_State *L, Loop *lp);

/* task.c */
Task *task_new(lua_State *L, Loop *lp, int cidx, int nameidx);
Task *task_new_ex(lua_State *L, Loop *lp, int cidx, int nameidx, int scheduled);
int   task_cancel(lua_State *L, Loop *lp, int tidx, int msgidx);   /* 0 if already done; msgidx 0: none */
void coro_push(lua_State *L, int fidx, int nargs, int lib);   /* a coroutine object for fn(args) */
void coro_push_shared(lua_State *L, int fidx, int nargs);     /* a shared library awaitable */
int  await_future_k(lua_State *L, int fidx, lua_KContext ctx, lua_KFunction k);
int  task_run_eager(lua_State *L, Loop *lp, int cidx, int thidx);
int  task_run_batch(lua_State *L, Loop *lp, int listidx, int gidx, int oidx, int ridx,
                    int first, int n, int thidx, int *made);
void task_pool_thread(lua_State *L, Loop *lp, int thidx);
void task_push_mains(lua_State *L, Loop *lp);   /* task_main, batch_main */
int  coro_is(lua_State *L, Loop *lp, int idx);      /* a coroutine object? */
/* wait in a ring of sync.c: the current task, given a new wait_id for the
 * ring entry; then return task_suspend(...) */
Task *task_ring_wait(lua_State *L, const void *owner);
/* is the task of a ring entry (pending_id, t, wait_id) still waiting there? (t is
 * dereferenced only if it is still a pending task) */
int  task_still_waits(Loop *lp, int pending_id, Task *t, uint64_t wait_id, const void *owner);
int  task_suspend(lua_State *L, lua_KContext ctx, lua_KFunction k);

Task *task_test(lua_State *L, int idx);
void task_step(lua_State *L, Loop *lp, int tidx, int argidx);
void push_task(lua_State *L, Loop *lp, Task *t);
int  task_open(lua_State *L, Loop *lp);

/* interrupt.c: Ctrl-C during async.run */
void interrupt_start(Loop *lp, Task *main);
void interrupt_stop(Loop *lp);

/* sync.c */
int  sync_open(lua_State *L, Loop *lp);
int  queue_open(lua_State *L, Loop *lp);    /* queue.c */

/* timers.c: add returns 1 if the new timer is the next due, -1 on no
 * memory; remove returns 1 if the removed one was the next due */
int  timer_add(Timers *tm, uint64_t due, int is_task, void *obj);
int  timer_remove(Timers *tm, int pos);
int  timer_next_due(Timers *tm, uint64_t *due);
int  timer_pop_due(Timers *tm, uint64_t now, TimerEntry *out);
int  timer_count(const Timers *tm);
void timers_free(Timers *tm);

/* A done callback written in C: a userdata that starts with this header.
 * The future code calls done(L, hookidx, fidx) at once when the future
 * completes, where a Lua callback would be queued: for bookkeeping that
 * nothing user-visible depends on before it ends (gather's children). */
typedef struct DoneHook {
  unsigned char tag;        /* TAG_DONE_HOOK */
  void (*done)(lua_State *L, int hookidx, int fidx);
} DoneHook;

/* combinators.c */
void gather_child_eager(lua_State *L, Loop *lp, int gidx, int oidx, int ridx, int i);
int  combinators_open(lua_State *L, Loop *lp);

#define CORO_MT "async.coroutine"
#define FUTURE_MT "async.Future"
#define TASK_MT "async.Task"
#define HANDLE_MT "async.Handle"

#endif
