/*
 * task.c - tasks: a coroutine object run in a thread of its own.
 *
 * A task's thread starts in task_main, which runs the body under lua_pcallk
 * *inside* the thread: Lua 5.4 unwinds to-be-closed variables only for an
 * error caught by a protected call in the same thread, and only then may a
 * __close yield (await).  So errors and cancellations are caught here and
 * become the task's result.  task_step resumes a task (its start, or a
 * wake-up with what it waited for); cancellation reaches it through what
 * it waits for (interrupt_wait).  A yield the scheduler did not ask for (a
 * bare coroutine.yield) is an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

/* ---- tasks -------------------------------------------------------------- */

/* Pending tasks sit in an array (LS_PENDING) at their own pending_id, so that
 * none is collected while it waits; freed slots are reused. */
void push_task(lua_State *L, Loop *lp, Task *t) {
  loop_push_ref(L, lp, LS_PENDING);
  lua_rawgeti(L, -1, t->pending_id);
  lua_remove(L, -2);
}


Task *task_test(lua_State *L, int idx) {
  Future *f = future_test(L, idx);
  return f && f->tag == TAG_TASK ? (Task *)f : NULL;
}

static Task *task_check(lua_State *L, int idx) {
  Task *t = task_test(L, idx);
  if (!t) luaL_typeerror(L, idx, "Task");
  return t;
}


/* a new Task, pending and not started, pushed */
Task *task_alloc(lua_State *L, Loop *lp) {
  Task *t = lua_newuserdatauv(L, sizeof *t, TASK_NUV);
  memset(t, 0, sizeof *t);
  t->f.tag = TAG_TASK; t->f.loop = lp; t->f.pin_ref = LUA_NOREF;
  t->timer_pos = TIMER_NONE;
  t->id = ++lp->next_task_id;
  loop_setmetatable(L, lp, MT_TASK);
  return t;
}

/* a pending task's place in LS_PENDING (the task at -1), mirrored in C */
void task_take_pending_id(lua_State *L, Loop *lp, Task *t) {
  t->pending_id = ids_take(&lp->pending_ids);
  if (t->pending_id >= lp->pending_cap) {
    int cap = lp->pending_cap ? lp->pending_cap * 2 : 1024;
    while (cap <= t->pending_id) cap *= 2;
    Task **p = realloc(lp->pending_task, (size_t)cap * sizeof *p);
    if (!p) { ids_give(&lp->pending_ids, t->pending_id); luaL_error(L, "async: out of memory"); }
    memset(p + lp->pending_cap, 0, (size_t)(cap - lp->pending_cap) * sizeof *p);
    lp->pending_task = p; lp->pending_cap = cap;
  }
  lp->pending_task[t->pending_id] = t;
  loop_push_ref(L, lp, LS_PENDING);
  lua_pushvalue(L, -2); lua_rawseti(L, -2, t->pending_id);
  lua_pop(L, 1);
  lp->npending++;
}


/* ---- task lifecycle ----------------------------------------------------- */

/* The body of the task at tidx ended: its results (or error) are the
 * values from first on; they become its outcome (and are popped). */
void task_settle(lua_State *L, Loop *lp, int tidx, int first, int status) {
  Task *t = lua_touserdata(L, tidx);
  if ((status == LUA_OK || status == LUA_YIELD) && t->must_cancel) {
    t->must_cancel = 0;                      /* cancelled, then returned: it ends cancelled */
    lua_getiuservalue(L, tidx, UVAL_CANCELMSG);
    future_cancel(L, tidx, lua_isnil(L, -1) ? 0 : lua_gettop(L));
    lua_pop(L, 1);
  } else if (status == LUA_OK || status == LUA_YIELD) {
    future_set_result(L, tidx, lua_gettop(L) - first + 1);
  } else if (loop_is_cancelled(L, lp, -1)) {
    lua_getfield(L, -1, "message");
    future_cancel(L, tidx, -1);
    lua_pop(L, 1);
  } else {
    future_set_exception(L, tidx);
  }
}

static int task_main_k(lua_State *L, int status, lua_KContext ctx) {
  Loop *lp = (Loop *)ctx;
  if (!lua_isuserdata(L, 1)) {               /* run eagerly, with no Task at the start */
    Task *t = lp->current;
    if (!t || t->T != L) {                   /* and still none: the outcome goes to gather */
      lua_pushboolean(L, status == LUA_OK || status == LUA_YIELD);
      lua_replace(L, 2);                     /* over the message handler */
      return lua_gettop(L) - 1;              /* true, results... or false, error */
    }
    push_task(L, lp, t);
    lua_replace(L, 1);
  }
  task_settle(L, lp, 1, 3, status);
  return 0;
}

/* the thread's body: stack = task, fn, args... */
static int task_main(lua_State *L) {
  Loop *lp = lua_touserdata(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));       /* loop_msgh */
  lua_insert(L, 2);
  lua_pcallk(L, lua_gettop(L) - 3, LUA_MULTRET, 2, (lua_KContext)lp, task_main_k);
  return task_main_k(L, LUA_OK, (lua_KContext)lp);
}

#define POOL_MAX 256

/* A thread whose body returned normally is clean (status OK, empty stack)
 * and can run another task: keep a few. */
void task_pool_put(lua_State *L, Loop *lp, lua_State *T) {
  if (lp->npool >= POOL_MAX || lua_status(T) != LUA_OK || lua_gettop(T) != 0) return;
  loop_push_ref(L, lp, LS_POOL);
  lua_pushthread(T);
  lua_xmove(T, L, 1);
  lua_rawseti(L, -2, ++lp->npool);
  lua_pop(L, 1);
}

/* a thread for a task (pushed): a pooled one, or a new one */
lua_State *task_pool_take(lua_State *L, Loop *lp) {
  if (lp->npool == 0) return lua_newthread(L);
  loop_push_ref(L, lp, LS_POOL);
  lua_rawgeti(L, -1, lp->npool);
  lua_pushnil(L); lua_rawseti(L, -3, lp->npool--);
  lua_remove(L, -2);
  return lua_tothread(L, -1);
}

/* give the task a thread holding task_main, the task, fn and args;
 * returns the count to resume with */
static int task_start_thread(lua_State *L, Loop *lp, int tidx, Task *t) {
  lua_State *T = task_pool_take(L, lp);
  t->T = T;
  lua_getiuservalue(L, tidx, UVAL_CORO);
  lua_insert(L, -2);
  lua_setiuservalue(L, tidx, UVAL_THREAD);     /* the thread takes the coroutine's user value */
  Coro *c = lua_touserdata(L, -1);
  int coro = lua_gettop(L);
  luaL_checkstack(L, c->nargs + 3, "too many arguments");
  lua_rawgeti(L, LUA_REGISTRYINDEX, lp->task_main_ref);
  lua_pushvalue(L, tidx);
  for (int i = 1; i <= c->nargs + 2; i++) if (i != 2) lua_getiuservalue(L, coro, i);
  lua_xmove(L, T, c->nargs + 3);
  lua_pop(L, 1);
  return c->nargs + 2;
}

void task_finished(lua_State *L, Loop *lp, int tidx, Task *t, lua_State *reusable) {
  tidx = lua_absindex(L, tidx);
  if (reusable) task_pool_put(L, lp, reusable);
  t->T = NULL;
  if (t->f.state == CANCELLED) {             /* no results: let the thread (or coroutine) go */
    lua_pushnil(L); lua_setiuservalue(L, tidx, UVAL_THREAD);
  }
  lua_pushnil(L); lua_setiuservalue(L, tidx, UVAL_WAITER);
  loop_push_ref(L, lp, LS_PENDING);
  lua_pushnil(L); lua_rawseti(L, -2, t->pending_id);
  lua_pop(L, 1);
  lp->pending_task[t->pending_id] = NULL;
  ids_give(&lp->pending_ids, t->pending_id);
  lp->npending--;
}

/* debug mode: the tutorial's time.sleep mistake, named */
static void warn_slow(lua_State *L, int tidx, double secs) {
  char buf[300];
  Task *t = lua_touserdata(L, tidx);
  if (lua_getiuservalue(L, tidx, UVAL_NAME) == LUA_TSTRING)
    snprintf(buf, sizeof buf, "Executing <Task name='%.200s'> took %.3f seconds", lua_tostring(L, -1), secs);
  else
    snprintf(buf, sizeof buf, "Executing <Task name='Task-%d'> took %.3f seconds", t->id, secs);
  lua_pop(L, 1);
  lua_warning(L, buf, 0);
}

static void interrupt_wait(lua_State *L, Loop *lp, int tidx, Task *t);

/* Resume the task at tidx: first run, or wake after a wait.  argidx holds
 * the future it was waiting for, or nil (a sleep, a cancel, the start). */
static int push_wake(lua_State *L, Loop *lp, int tidx, int argidx, Future *f);
static void resume(lua_State *L, Loop *lp, int tidx, Task *t, int nargs);

void task_step(lua_State *L, Loop *lp, int tidx, int argidx) {
  Task *t = lua_touserdata(L, tidx);
  int nargs;
  if (t->f.state != PENDING) return;
  if (!t->started) {
    t->started = 1;
    if (t->must_cancel) {                    /* cancelled before it ran */
      lua_getiuservalue(L, tidx, UVAL_CANCELMSG);
      future_cancel(L, tidx, -1);
      lua_pop(L, 1);
      task_finished(L, lp, tidx, t, NULL);
      return;
    }
    nargs = task_start_thread(L, lp, tidx, t);
  } else {
    Future *f = lua_isnil(L, argidx) ? NULL : lua_touserdata(L, argidx);
    if (f && f != t->waiter) return;         /* a stale wake-up */
    t->waiter = NULL;
    nargs = push_wake(L, lp, tidx, argidx, f);
    lua_xmove(L, t->T, nargs);
  }
  resume(L, lp, tidx, t, nargs);
}

/* What a woken task's await returns to it, pushed: (false, CancelledError)
 * if a cancellation is pending or what it waited for was cancelled,
 * (false, err) if that failed, (true, results...) otherwise; the count. */
static int push_wake(lua_State *L, Loop *lp, int tidx, int argidx, Future *f) {
  Task *t = lua_touserdata(L, tidx);
  int cancelled_by = t->must_cancel ? tidx : f && f->state == CANCELLED ? argidx : 0;
  if (cancelled_by) {
    t->must_cancel = 0;
    lua_pushboolean(L, 0);
    lua_getiuservalue(L, cancelled_by, UVAL_CANCELMSG);
    push_error(L, lp, "CancelledError", -1);
    lua_remove(L, -2);
    return 2;
  }
  if (!f) { lua_pushboolean(L, 1); return 1; }  /* a sleep, a ring's turn, the start */
  lua_pushboolean(L, !f->failed);
  lua_getiuservalue(L, argidx, UVAL_RESULT);
  if (f->failed) { f->retrieved = 1; return 2; }
  if (f->nres == 0) { lua_pop(L, 1); return 1; }
  if (f->nres == 1) return 2;
  int r = lua_gettop(L);
  luaL_checkstack(L, f->nres, "too many results");
  for (int i = 1; i <= f->nres; i++) lua_rawgeti(L, r, i);
  lua_remove(L, r);
  return f->nres + 1;
}

/* run the task's thread from where it stopped, nargs values given */
static void resume(lua_State *L, Loop *lp, int tidx, Task *t, int nargs) {
  int nres;
  lua_State *T = t->T;
  lua_getiuservalue(L, tidx, UVAL_THREAD);     /* keep T reachable while it runs */
  Task *prev = lp->current;
  lp->current = t;
  uint64_t t0 = lp->debug ? uv_hrtime() : 0;
  int status = lua_resume(T, L, nargs, &nres);
  lp->reraising = 0;                         /* (a pcall in the task took the error) */
  lp->current = prev;
  if (lp->debug) {
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    if (secs > lp->slow_threshold) warn_slow(L, tidx, secs);
  }
  task_after_resume(L, lp, tidx, t, T, status, nres);
  lua_pop(L, 1);
}

/* the task's thread T stopped (status, nres from lua_resume): suspended at
 * an await, or done */
void task_after_resume(lua_State *L, Loop *lp, int tidx, Task *t, lua_State *T, int status, int nres) {
  if (status == LUA_YIELD) {
    lua_pop(T, nres);
    if (t->awaiting) {
      t->awaiting = 0;
      if (t->must_cancel) interrupt_wait(L, lp, tidx, t);   /* it cancelled itself, then waited */
      return;
    }
    lua_resetthread(T);                      /* not ours: a bare coroutine.yield */
    lua_pushliteral(L, "coroutine.yield() inside a task: tasks suspend only through await "
                       "(use async.generator for iterators that await)");
    future_set_exception(L, tidx);
    T = NULL;
  } else if (status != LUA_OK) {             /* escaped task_main's pcall */
    lua_xmove(T, L, 1);
    future_set_exception(L, tidx);
    T = NULL;
  }
  task_finished(L, lp, tidx, t, T);
}


/* Wrap the coroutine object at cidx in a new Task (pushed), name at nameidx
 * (0: none).  Returns NULL, pushing nothing, if cidx is no coroutine object. */
Task *task_new(lua_State *L, Loop *lp, int cidx, int nameidx) {
  return task_new_ex(L, lp, cidx, nameidx, 1);
}

/* as task_new; scheduled = 0: the caller runs the first step itself */
Task *task_new_ex(lua_State *L, Loop *lp, int cidx, int nameidx, int scheduled) {
  Coro *c = coro_test(L, lp, cidx);
  if (!c) return NULL;
  cidx = lua_absindex(L, cidx);
  coro_schedule(L, lp, c);
  Task *t = task_alloc(L, lp);
  int tidx = lua_gettop(L);
  if (nameidx) { lua_pushvalue(L, nameidx); lua_setiuservalue(L, tidx, UVAL_NAME); }
  /* the thread comes at the first step: a task that has not started costs
   * no stack, and a finished task's thread serves the next one */
  lua_pushvalue(L, cidx);
  lua_setiuservalue(L, tidx, UVAL_CORO);
  task_take_pending_id(L, lp, t);
  if (scheduled) loop_enqueue_task(L, lp, t);
  return t;
}

static int l_create_task(lua_State *L) {
  Loop *lp = loop_get(L);
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TSTRING);
  if (!task_new(L, lp, 1, lua_isnil(L, 2) ? 0 : 2)) return luaL_typeerror(L, 1, "coroutine object");
  return 1;
}

static int task_cancel_at(lua_State *L, Loop *lp, int tidx, int msgidx);

/* Make the task's await raise CancelledError (its message in UVAL_CANCELMSG):
 * at once if it sleeps or waits in a ring; through the cancellation of the
 * future or task it awaits; or, when it runs (it cancelled itself) or a
 * wake-up is already queued, at its next step (must_cancel).  A task that
 * suspends with must_cancel set comes back here (after_resume): asyncio's
 * _must_cancel, delivered at the first suspension. */
static void interrupt_wait(lua_State *L, Loop *lp, int tidx, Task *t) {
  if (t->timer_pos != TIMER_NONE || t->ring_owner) {
    if (t->timer_pos != TIMER_NONE) loop_remove_timer(lp, t->timer_pos);
    t->ring_owner = NULL;                    /* its ring entry is stale from now on */
    t->must_cancel = 1;
    loop_enqueue_task(L, lp, t);
    return;
  }
  if (t->waiter) {
    int done;
    lua_getiuservalue(L, tidx, UVAL_WAITER);
    int msgidx = lua_getiuservalue(L, tidx, UVAL_CANCELMSG) == LUA_TNIL ? 0 : lua_gettop(L);
    if (t->waiter->tag == TAG_TASK) done = task_cancel_at(L, lp, -2, msgidx);
    else done = future_cancel(L, -2, msgidx);
    lua_pop(L, 2);
    if (done) { t->must_cancel = 0; return; }   /* the waiter's callback wakes us */
  }
  t->must_cancel = 1;
}

static int task_cancel_at(lua_State *L, Loop *lp, int tidx, int msgidx) {
  Task *t = lua_touserdata(L, tidx);
  if (t->f.state != PENDING) return 0;
  tidx = lua_absindex(L, tidx);
  t->ncancel++;
  if (msgidx) lua_pushvalue(L, msgidx); else lua_pushnil(L);
  lua_setiuservalue(L, tidx, UVAL_CANCELMSG);
  interrupt_wait(L, lp, tidx, t);
  return 1;
}

int task_cancel(lua_State *L, Loop *lp, int tidx, int msgidx) {
  return task_cancel_at(L, lp, tidx, msgidx);
}

static int t_cancel(lua_State *L) {
  task_check(L, 1);
  lua_pushboolean(L, task_cancel_at(L, loop_get(L), 1, lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

static int t_uncancel(lua_State *L) {
  Task *t = task_check(L, 1);
  if (t->ncancel > 0) t->ncancel--;
  if (t->ncancel == 0) t->must_cancel = 0;
  lua_pushinteger(L, t->ncancel);
  return 1;
}

static int t_cancelling(lua_State *L) {
  lua_pushinteger(L, task_check(L, 1)->ncancel);
  return 1;
}

static int t_get_name(lua_State *L) {
  Task *t = task_check(L, 1);
  if (lua_getiuservalue(L, 1, UVAL_NAME) == LUA_TNIL) lua_pushfstring(L, "Task-%d", t->id);
  return 1;
}

static int t_set_name(lua_State *L) {
  task_check(L, 1);
  luaL_checkany(L, 2);
  luaL_tolstring(L, 2, NULL);
  lua_setiuservalue(L, 1, UVAL_NAME);
  return 0;
}

static int t_tostring(lua_State *L) {
  Task *t = task_check(L, 1);
  static const char *states[] = {"pending", "finished", "cancelled"};
  t_get_name(L);
  lua_pushfstring(L, "<Task %s name='%s'>", t->f.failed ? "finished (error)" : states[t->f.state],
                  lua_tostring(L, -1));
  return 1;
}

static int l_current_task(lua_State *L) {
  Loop *lp = loop_get(L);
  Task *t = current_task(L, lp);
  if (!t) return 0;
  push_task(L, lp, t);
  return 1;
}

static int l_all_tasks(lua_State *L) {
  Loop *lp = loop_get(L);
  current_task(L, lp);                       /* the caller is one of them */
  lua_createtable(L, lp->npending, 0);
  loop_push_ref(L, lp, LS_PENDING);
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) { lua_rawseti(L, -4, ++n); }
  lua_pop(L, 1);
  return 1;
}


static int l_isfuture(lua_State *L) {
  lua_pushboolean(L, future_test(L, 1) != NULL);
  return 1;
}


static int l_istask(lua_State *L) {
  lua_pushboolean(L, task_test(L, 1) != NULL);
  return 1;
}


/* async.traceback(e) */
static int l_traceback(lua_State *L) {
  Loop *lp = loop_get(L);
  luaL_checkany(L, 1);
  if (lua_isnil(L, 1)) return 0;
  loop_push_ref(L, lp, loop_traceback_table(L, 1));
  lua_pushvalue(L, 1);
  lua_rawget(L, -2);
  return 1;
}


extern const luaL_Reg future_shared_methods[];

static const luaL_Reg task_methods[] = {
  {"cancel", t_cancel}, {"uncancel", t_uncancel}, {"cancelling", t_cancelling},
  {"get_name", t_get_name}, {"set_name", t_set_name}, {NULL, NULL}
};

static const luaL_Reg task_funcs[] = {
  {"current_task", l_current_task}, {"all_tasks", l_all_tasks},
  {"isfuture", l_isfuture}, {"istask", l_istask}, {"traceback", l_traceback},
  {NULL, NULL}
};

int task_open(lua_State *L, Loop *lp) {
  int mod = lua_gettop(L);
  luaL_newmetatable(L, TASK_MT);
  loop_register_mt(L, lp, MT_TASK);
  lua_newtable(L);
  lua_pushlightuserdata(L, lp); luaL_setfuncs(L, future_shared_methods, 1);
  lua_pushlightuserdata(L, lp); luaL_setfuncs(L, task_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, t_tostring, 1); lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  lua_pushlightuserdata(L, lp);
  luaL_setfuncs(L, task_funcs, 1);

  lp->task_main_ref = loop_ref_thread_main(L, lp, task_main);
  lua_pushlightuserdata(L, lp);
  lua_pushcclosure(L, l_create_task, 1);
  lua_setfield(L, mod, "create_task");
  return 0;
}
