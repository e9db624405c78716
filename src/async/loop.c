/*
 * loop.c - one event loop per Lua state.
 *
 * Ready work is a FIFO ring of C entries (Ready): a task to step, with the
 * future it waited for, or the id of a callback whose function and
 * argument wait in a Lua table (LS_QUEUE).  A round runs the entries that
 * were queued before it started (asyncio's rule that a callback scheduled
 * during a round runs in the next one).  A uv_check handle drains the queue
 * after every poll; a uv_idle handle is active only while work is queued,
 * so that poll does not block then.  Sleeps and call_later wait in
 * timers.c under a single uv_timer.  Nothing spins.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

#define MAX_ROUNDS 64   /* ready rounds before letting libuv poll for I/O */

Loop *loop_get(lua_State *L) { return (Loop *)lua_touserdata(L, lua_upvalueindex(1)); }

/* the registry's key for the loop (a light userdata): a pointer key, so
 * that C API calls find it without hashing a string */
const char loop_registry_key = 0;

Loop *loop_of_registry(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &loop_registry_key);
  Loop *lp = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return lp;
}

void loop_push_ref(lua_State *L, Loop *lp, int which) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->refs[which]);
}

/* never nil in a registry ref: a nil there could let luaL_ref reuse it */
void loop_set_ref(lua_State *L, Loop *lp, int which) {
  if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 0); }
  lua_rawseti(L, LUA_REGISTRYINDEX, lp->refs[which]);
}


/* Metatables by registry reference and identity: luaL_setmetatable and
 * luaL_testudata look them up by name, which costs a string hash on the
 * hot path of every await. */
void loop_register_mt(lua_State *L, Loop *lp, int which) {
  lp->mt_ptr[which] = lua_topointer(L, -1);
  lua_pushvalue(L, -1);
  lp->mt_ref[which] = luaL_ref(L, LUA_REGISTRYINDEX);
}

void loop_setmetatable(lua_State *L, Loop *lp, int which) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->mt_ref[which]);
  lua_setmetatable(L, -2);
}

int loop_hasmetatable(lua_State *L, Loop *lp, int idx, int which) {
  if (!lua_getmetatable(L, idx)) return 0;
  int r = lua_topointer(L, -1) == lp->mt_ptr[which];
  lua_pop(L, 1);
  return r;
}

static void on_idle(uv_idle_t *h) { (void)h; }

/* The ready queue is a ring of entries in C.  Waking a task (the bulk of
 * the traffic) costs no Lua call: the entry names the task (alive in the
 * pending table at its pending_id) and the future it waited for (alive as the
 * task's waiter).  Any other callback is kept, with its argument, in a Lua
 * table (LS_QUEUE) at an id that the entry names, so FIFO order holds. */
typedef struct Ready {
  Task *t;                  /* a task to step, or NULL */
  Future *f;                /* the future it waited for, or NULL */
  int id;                   /* the task's pending_id, or the callback's id in LS_QUEUE */
} Ready;

int loop_has_ready(Loop *lp) { return lp->rq_tail != lp->rq_head; }

static void ready_push(lua_State *L, Loop *lp, Task *t, Future *f, int id) {
  if (!lp->rq || lp->rq_tail - lp->rq_head > lp->rq_mask) {   /* unallocated or full */
    unsigned cap = lp->rq ? (lp->rq_mask + 1) * 2 : 1024, n = lp->rq_tail - lp->rq_head;
    Ready *q = malloc(cap * sizeof *q);
    if (!q) { luaL_error(L, "async: out of memory (ready queue)"); return; }
    for (unsigned i = 0; i < n; i++) q[i] = lp->rq[(lp->rq_head + i) & lp->rq_mask];
    free(lp->rq);
    lp->rq = q; lp->rq_head = 0; lp->rq_tail = n; lp->rq_mask = cap - 1;
  }
  if (lp->rq_tail == lp->rq_head) uv_idle_start(lp->idle, on_idle);  /* don't block in poll */
  Ready *e = &lp->rq[lp->rq_tail++ & lp->rq_mask];
  e->t = t; e->f = f; e->id = id;
}

int ids_take(IdPool *s) {
  return s->nfree > 0 ? s->free[--s->nfree] : ++s->max;
}

void ids_give(IdPool *s, int id) {
  if (s->nfree == s->cap) {
    int cap = s->cap ? s->cap * 2 : 256;
    int *p = realloc(s->free, cap * sizeof *p);
    if (!p) return;                                    /* the id is lost, nothing else */
    s->free = p; s->cap = cap;
  }
  s->free[s->nfree++] = id;
}

void loop_enqueue(lua_State *L, Loop *lp, int cb, int arg) {
  unsigned char *p = lua_touserdata(L, cb);
  if (p && *p == TAG_TASK) {                           /* a task waiting on the future arg */
    Task *t = (Task *)p;
    ready_push(L, lp, t, lua_touserdata(L, arg), t->pending_id);
    return;
  }
  cb = lua_absindex(L, cb); arg = lua_absindex(L, arg);
  int id = ids_take(&lp->cb_ids);
  loop_push_ref(L, lp, LS_QUEUE);
  lua_pushvalue(L, cb);  lua_rawseti(L, -2, 2 * id - 1);
  lua_pushvalue(L, arg); lua_rawseti(L, -2, 2 * id);
  lua_pop(L, 1);
  ready_push(L, lp, NULL, NULL, id);
}

void loop_enqueue_task(lua_State *L, Loop *lp, Task *t) {
  ready_push(L, lp, t, NULL, t->pending_id);
}

void loop_enqueue_wake(lua_State *L, Loop *lp, Task *t, Future *f) {
  ready_push(L, lp, t, f, t->pending_id);
}

/* ---- timers (timers.c) under one uv_timer -------------------------------- */

/* Dues are whole milliseconds of uv_hrtime, the clock async.time() reads,
 * read afresh: uv_now is the time the loop last looked, which a long step
 * or a new run leaves behind, and a due counted from it would fall early. */
static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static void on_timer(uv_timer_t *h);

static void rearm_timer(Loop *lp) {
  uint64_t due;
  if (!timer_next_due(&lp->timers, &due)) { uv_timer_stop(lp->timer); return; }
  uv_update_time(lp->uv);   /* the uv timer counts from the loop's time: make it now */
  uint64_t now = uv_now(lp->uv);
  uv_timer_start(lp->timer, on_timer, due > now ? due - now : 0, 0);
}

int loop_add_timer(Loop *lp, uint64_t due, int is_task, void *obj) {
  int r = timer_add(&lp->timers, due, is_task, obj);
  if (r == 1) rearm_timer(lp);
  return r < 0 ? -1 : 0;
}

void loop_remove_timer(Loop *lp, int pos) {
  if (timer_remove(&lp->timers, pos)) rearm_timer(lp);
}

static void handle_unkeep(lua_State *L, Loop *lp, int hidx) {
  Handle *h = lua_touserdata(L, hidx);
  if (!h->keep) return;
  h->keep = 0;
  hidx = lua_absindex(L, hidx);
  loop_push_ref(L, lp, LS_KEEP);
  lua_pushnil(L); lua_rawsetp(L, -2, h);
  lua_pop(L, 1);
}

static void on_timer(uv_timer_t *th) {
  Loop *lp = th->data;
  lua_State *L = lp->LL;
  uint64_t now = now_ms();   /* the uv timer may fire a little before our due */
  TimerEntry e;
  while (timer_pop_due(&lp->timers, now, &e)) {   /* the uv timer is rearmed once, below */
    if (e.is_task) {
      loop_enqueue_task(L, lp, (Task *)e.obj);
    } else {                       /* a call_later handle: from keep to queue */
      loop_push_ref(L, lp, LS_KEEP);
      lua_rawgetp(L, -1, e.obj);
      lua_pushnil(L);
      loop_enqueue(L, lp, -2, -1);
      lua_settop(L, 0);
    }
  }
  rearm_timer(lp);
}

/* ---- draining the ready queue ------------------------------------------- */

static void run_handle(lua_State *L, Loop *lp, int hidx) {
  Handle *h = lua_touserdata(L, hidx);
  if (h->cancelled) return;
  handle_unkeep(L, lp, hidx);
  for (int i = 1; i <= h->nargs + 1; i++) lua_getiuservalue(L, hidx, i);
  if (loop_call_reported(L, lp, h->nargs) != LUA_OK) {
    loop_report(L, lp, -1, "Exception in callback", 0);
    lua_pop(L, 1);
  }
}

static void run_function(lua_State *L, Loop *lp, int fidx, int aidx) {
  lua_pushvalue(L, fidx); lua_pushvalue(L, aidx);
  if (loop_call_reported(L, lp, 1) != LUA_OK) {
    loop_report(L, lp, -1, "Exception in callback", 0);
    lua_pop(L, 1);
  }
}

/* one entry: stack 1 = pending table, 2 = LS_QUEUE table */
static void run_entry(lua_State *L, Loop *lp, Ready e) {
  if (e.t) {
    lua_rawgeti(L, 1, e.id);                         /* is it still that task? */
    if (lua_touserdata(L, -1) != e.t) return;
    if (e.f) {
      if (e.f != e.t->waiter) return;                  /* a stale wake-up */
      lua_getiuservalue(L, -1, UVAL_WAITER);
    } else {
      lua_pushnil(L);
    }
    task_step(L, lp, 3, 4);
    return;
  }
  lua_rawgeti(L, 2, 2 * e.id - 1); lua_rawgeti(L, 2, 2 * e.id);
  lua_pushnil(L); lua_rawseti(L, 2, 2 * e.id - 1);
  lua_pushnil(L); lua_rawseti(L, 2, 2 * e.id);
  ids_give(&lp->cb_ids, e.id);
  if (lua_type(L, 3) == LUA_TUSERDATA) {
    unsigned char tag = *(unsigned char *)lua_touserdata(L, 3);
    if (tag == TAG_HANDLE) run_handle(L, lp, 3);
    else if (tag == TAG_DONE_HOOK) ((DoneHook *)lua_touserdata(L, 3))->done(L, 3, 4);
  } else {
    run_function(L, lp, 3, 4);
  }
}

/* Each round runs the entries queued before it started (asyncio's rule);
 * a few rounds run before libuv polls for I/O again. */
static void process_ready(Loop *lp) {
  lua_State *L = lp->LL;
  loop_push_ref(L, lp, LS_PENDING);
  loop_push_ref(L, lp, LS_QUEUE);
  for (int round = 0; round < MAX_ROUNDS && loop_has_ready(lp); round++) {
    unsigned n = lp->rq_tail - lp->rq_head;
    while (n-- > 0) {
      Ready e = lp->rq[lp->rq_head++ & lp->rq_mask];
      run_entry(L, lp, e);
      lua_settop(L, 2);
    }
  }
  lua_settop(L, 0);
  if (!loop_has_ready(lp)) {
    uv_idle_stop(lp->idle);
    lp->rq_head = lp->rq_tail = 0;
  }
}

static void on_check(uv_check_t *h) {
  Loop *lp = h->data;
  int was = lp->in_loop;
  lp->in_loop = 1;
  process_ready(lp);
  lp->in_loop = was;
}

/* ---- Lua functions ------------------------------------------------------ */

static int l_time(lua_State *L) {
  (void)L;
  lua_pushnumber(L, (double)uv_hrtime() / 1e9);
  return 1;
}

static Handle *handle_new(lua_State *L, Loop *lp, int fidx, int nargs) {
  Handle *h = lua_newuserdatauv(L, sizeof *h, nargs + 1);
  h->tag = TAG_HANDLE; h->cancelled = 0; h->timer_pos = TIMER_NONE; h->nargs = nargs; h->keep = 0;
  luaL_setmetatable(L, HANDLE_MT);
  for (int i = 0; i <= nargs; i++) {
    lua_pushvalue(L, fidx + i);
    lua_setiuservalue(L, -2, i + 1);
  }
  (void)lp;
  return h;
}

static int l_call_soon(lua_State *L) {
  Loop *lp = loop_get(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  handle_new(L, lp, 1, lua_gettop(L) - 1);
  lua_pushnil(L);
  loop_enqueue(L, lp, -2, -1);
  lua_pop(L, 1);
  return 1;
}

static double check_delay(lua_State *L, int idx, const char *fname) {
  double d = luaL_checknumber(L, idx);
  if (d != d) luaL_error(L, "bad argument #%d to '%s' (delay is NaN)", idx, fname);
  return d < 0 ? 0 : d;
}

/* The first whole millisecond at or after now + d: a timer never wakes
 * before its delay has passed on async.time()'s clock. */
uint64_t delay_to_due(double d) {
  double dns = d * 1e9;
  uint64_t ns = dns >= 1e18 ? (uint64_t)1e18 : (uint64_t)dns + 1;   /* + 1: the dropped fraction */
  return (uv_hrtime() + ns + 999999u) / 1000000u;
}

static int l_call_later(lua_State *L) {
  Loop *lp = loop_get(L);
  double d = check_delay(L, 1, "call_later");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  Handle *h = handle_new(L, lp, 2, lua_gettop(L) - 2);
  h->keep = 1;
  loop_push_ref(L, lp, LS_KEEP);
  lua_pushvalue(L, -2); lua_rawsetp(L, -2, h);
  lua_pop(L, 1);
  if (loop_add_timer(lp, delay_to_due(d), 0, h) != 0) return luaL_error(L, "call_later: out of memory");
  return 1;
}

static int handle_cancel(lua_State *L) {
  Handle *h = luaL_checkudata(L, 1, HANDLE_MT);
  Loop *lp = loop_get(L);
  h->cancelled = 1;
  if (h->timer_pos != TIMER_NONE) loop_remove_timer(lp, h->timer_pos);
  handle_unkeep(L, lp, 1);
  return 0;
}

static int handle_cancelled(lua_State *L) {
  Handle *h = luaL_checkudata(L, 1, HANDLE_MT);
  lua_pushboolean(L, h->cancelled);
  return 1;
}

/* Run libuv until `done` says so.  Raises (after tidying) on a deadlock:
 * nothing queued, no timer, no active handle or request, yet not done. */
typedef int (*done_fn)(lua_State *L, Loop *lp, void *ud);

static int run_until(lua_State *L, Loop *lp, done_fn done, void *ud) {
  while (!done(L, lp, ud)) {
    if (!loop_has_ready(lp) && timer_count(&lp->timers) == 0 && !uv_loop_alive(lp->uv))
      return 0;
    uv_run(lp->uv, UV_RUN_ONCE);
  }
  return 1;
}

static int main_done(lua_State *L, Loop *lp, void *ud) {
  (void)L; (void)lp;
  return ((Future *)ud)->state != PENDING;
}

static int all_done(lua_State *L, Loop *lp, void *ud) {
  (void)L; (void)ud;
  return lp->npending == 0;
}

/* Requests in flight (work on the thread pool above all) finish before
 * run returns: the modules they belong to, and the state their
 * completions touch, must outlive them. */
static int no_requests(lua_State *L, Loop *lp, void *ud) {
  (void)L; (void)ud;
  return lp->uv->active_reqs.count == 0;
}

/* cancel every pending task (async.run's shutdown) */
static void cancel_all(lua_State *L, Loop *lp) {
  int top = lua_gettop(L);
  loop_push_ref(L, lp, LS_PENDING);
  lua_pushnil(L);
  while (lua_next(L, top + 1)) {
    task_cancel(L, lp, -1, 0);
    lua_pop(L, 1);
  }
  lua_settop(L, top);
}

static void report_unretrieved(lua_State *L, Loop *lp) {
  int top = lua_gettop(L);
  loop_push_ref(L, lp, LS_UNRETRIEVED);
  lua_pushnil(L);
  while (lua_next(L, top + 1)) {
    Future *f = lua_touserdata(L, -2);
    lua_pop(L, 1);
    if (f && f->failed && !f->retrieved) {
      f->retrieved = 1;
      lua_getiuservalue(L, -1, UVAL_RESULT);
      loop_report(L, lp, -1, f->tag == TAG_TASK ? "Task exception was never retrieved"
                                               : "Future exception was never retrieved", -2);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
  lua_newtable(L); lua_newtable(L);
  lua_pushliteral(L, "k"); lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  loop_set_ref(L, lp, LS_UNRETRIEVED);
  lua_settop(L, top);
}

/* start(main, ...) is in Lua terms: make main a coroutine object, wrap it in
 * a task.  The prelude passes us that task. */
static int l_run_task(lua_State *L) {
  Loop *lp = loop_get(L);
  Future *f = future_check(L, 1);
  if (!lp->own_uv) {
    return luaL_error(L, "async.run: the loop belongs to the host program; "
                         "use async.start and async.step");
  }
  lp->running = 1;
  interrupt_start(lp, (Task *)f);
  int ok = run_until(L, lp, main_done, f);
  f->retrieved = 1;              /* its error goes to the caller */
  cancel_all(L, lp);
  int ok2 = run_until(L, lp, all_done, NULL);
  run_until(L, lp, no_requests, NULL);
  report_unretrieved(L, lp);
  interrupt_stop(lp);
  lp->running = 0;
  if (lp->interrupted) {         /* Ctrl-C: the cleanup has run; say so whatever main did */
    lua_pushliteral(L, "interrupted by SIGINT (Ctrl-C); the tasks' cleanup ran");
    push_error(L, lp, "Interrupted", -1);
    return lua_error(L);
  }
  if (!ok) {
    lua_pushliteral(L, "async.run: the main task is waiting for something that can never "
                       "happen (nothing queued, no timer, no I/O): deadlock");
    return lua_error(L);
  }
  if (!ok2) {
    lua_pushliteral(L, "async.run: tasks could not finish cancelling (deadlock)");
    return lua_error(L);
  }
  f->retrieved = 1;
  return future_push_results(L, 1);
}

/* core.sigint_taken(on): the script has (or no longer has) its own SIGINT handler */
static int l_sigint_taken(lua_State *L) {
  loop_get(L)->sigint_taken = lua_toboolean(L, 1);
  return 0;
}

/* does async run this loop (or does the host: async.start and step only) */
static int l_owns_loop(lua_State *L) {
  lua_pushboolean(L, loop_get(L)->own_uv);
  return 1;
}

static int l_running(lua_State *L) {
  Loop *lp = loop_get(L);
  lua_pushboolean(L, lp->running || lp->in_loop);
  return 1;
}

static void on_step_timer(uv_timer_t *h) { (void)h; }

static int l_step(lua_State *L) {
  Loop *lp = loop_get(L);
  double timeout = luaL_optnumber(L, 1, 0);
  if (lp->running) return luaL_error(L, "async.step cannot be called from a running event loop");
  lp->running = 1;
  if (!lp->own_uv) {
    lp->in_loop = 1;
    process_ready(lp);
    lp->in_loop = 0;
  } else if (timeout <= 0 || loop_has_ready(lp)) {
    uv_run(lp->uv, UV_RUN_NOWAIT);
  } else {
    uv_timer_t st;
    uv_timer_init(lp->uv, &st);
    uv_timer_start(&st, on_step_timer, (uint64_t)(timeout * 1000.0 + 0.5), 0);
    uv_run(lp->uv, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&st, NULL);
    uv_run(lp->uv, UV_RUN_NOWAIT);   /* let the close complete */
  }
  lp->running = 0;
  lua_pushboolean(L, lp->npending > 0 || loop_has_ready(lp));
  return 1;
}

static int l_set_debug(lua_State *L) {
  Loop *lp = loop_get(L);
  lp->debug = lua_toboolean(L, 1);
  if (lp->debug) lua_warning(L, "@on", 0);
  return 0;
}

static int l_get_debug(lua_State *L) {
  lua_pushboolean(L, loop_get(L)->debug);
  return 1;
}

static int l_set_exception_handler(lua_State *L) {
  Loop *lp = loop_get(L);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  loop_set_ref(L, lp, LS_HANDLER);
  return 0;
}

/* the prelude hands over its error classes: C raises them by name */
static int l_set_errors(lua_State *L) {
  Loop *lp = loop_get(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  loop_set_ref(L, lp, LS_ERRORS);
  return 0;
}

/* When the host owns the loop, our handles finish closing in the host's
 * next uv_run, after lua_close has unloaded this library: so each handle is
 * its own malloc'd block and libc's free is its close callback. */
static void close_with_free(uv_handle_t *h) {
  uv_close(h, (uv_close_cb)(void (*)(void))free);
}

static int loop_gc(lua_State *L) {
  Loop *lp = *(Loop **)lua_touserdata(L, 1);
  capi_close_handles(lp);
  while (lp->hooks) {
    CancelHook *h = lp->hooks;
    lp->hooks = h->next;
    free(h);
  }
  close_with_free((uv_handle_t *)lp->timer);
  close_with_free((uv_handle_t *)lp->check);
  close_with_free((uv_handle_t *)lp->idle);
  if (lp->own_uv) {
    uv_run(lp->uv, UV_RUN_NOWAIT);
    /* work still on the thread pool (lua_close without async.run) posts its
     * completion to this loop: it cannot be freed before */
    while (lp->uv->active_reqs.count > 0) uv_run(lp->uv, UV_RUN_ONCE);
    uv_loop_close(lp->uv);
    free(lp->uv);
  }
  timers_free(&lp->timers);
  free(lp->pending_ids.free);
  free(lp->pending_task);
  free(lp->rq);
  free(lp->cb_ids.free);
  free(lp);
  return 0;
}

static const luaL_Reg loop_funcs[] = {
  {"time", l_time}, {"call_soon", l_call_soon}, {"call_later", l_call_later},
  {"run_task", l_run_task}, {"step", l_step}, {"running", l_running}, {"owns_loop", l_owns_loop},
  {"sigint_taken", l_sigint_taken},
  {"set_debug", l_set_debug}, {"get_debug", l_get_debug},
  {"set_exception_handler", l_set_exception_handler},
  {"set_errors", l_set_errors},
  {NULL, NULL}
};

static const luaL_Reg handle_methods[] = {
  {"cancel", handle_cancel}, {"cancelled", handle_cancelled}, {NULL, NULL}
};

static void new_weak_table(lua_State *L, const char *mode) {
  lua_newtable(L);
  lua_newtable(L);
  lua_pushstring(L, mode); lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
}

/* Creates the loop (a userdata anchored in the registry, so that lua_close
 * tears it down) and registers the loop functions into the table at -1. */
int loop_open(lua_State *L, Loop *lp) {
  int t = lua_gettop(L);
  memset(lp, 0, sizeof *lp);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_ASYNC_LOOP_KEY);
  lp->uv = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!lp->uv) {
    lp->uv = malloc(sizeof *lp->uv);
    if (!lp->uv || uv_loop_init(lp->uv) != 0) return luaL_error(L, "async: cannot create a libuv loop");
    lp->own_uv = 1;
  }
  lp->LL = lua_newthread(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "lua_async.loopthread");
  for (int which = 1; which <= LS_N; which++) {
    if (which == LS_UNRETRIEVED || which == LS_GENTHREADS || which == LS_TRACEBACKS) new_weak_table(L, "k");
    else if (which == LS_HANDLER) lua_pushboolean(L, 0);
    else lua_newtable(L);
    lp->refs[which] = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lp->timer = malloc(sizeof *lp->timer);
  lp->check = malloc(sizeof *lp->check);
  lp->idle = malloc(sizeof *lp->idle);
  if (!lp->timer || !lp->check || !lp->idle) return luaL_error(L, "async: out of memory");
  uv_timer_init(lp->uv, lp->timer); lp->timer->data = lp;
  uv_check_init(lp->uv, lp->check); lp->check->data = lp;
  uv_idle_init(lp->uv, lp->idle); lp->idle->data = lp;
  uv_check_start(lp->check, on_check);
  uv_unref((uv_handle_t *)lp->check);  /* draining alone keeps nothing alive */
  lp->slow_threshold = 0.1;
  const char *dbg = getenv("LUA_ASYNC_DEBUG");
  lp->debug = dbg && dbg[0] && strcmp(dbg, "0") != 0;
  if (lp->debug) lua_warning(L, "@on", 0);

  luaL_newmetatable(L, HANDLE_MT);
  lua_newtable(L);
  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, handle_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  lua_settop(L, t);
  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, loop_funcs, 1);
  return 0;
}

int loop_close(lua_State *L) { return loop_gc(L); }
