/*
 * thread.c - async.to_thread(fn, ...): fn runs in another Lua state, on
 * libuv's thread pool, while the loop goes on.
 *
 * fn travels as bytecode (lua_dump), so it may have no upvalue but _ENV;
 * its arguments and results are copied (copy.c), never shared.  Worker
 * states are made on first use, on the worker thread, and kept in a pool
 * for the next call; each gets the caller's package.path and cpath, so
 * `require` finds the same modules.  The awaitable is lazy (the C API's
 * awaitable_new): nothing is copied or queued until it is awaited.
 * Cancelling the awaiter does not stop the worker; its results are
 * dropped.  When the Lua state closes with calls in flight, their ends
 * free their C data and touch no Lua (the pool's closing flag).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lua_async.h"
#include "copy.h"
#include "io.h"

#define POOL_MAX 16              /* worker states kept for reuse */

struct Pool {
  uv_mutex_t m;
  lua_State *idle[POOL_MAX];
  int nidle;
  int refs;                      /* the module's, and one per call in flight (loop thread) */
  int closing;                   /* the Lua state is closing: touch no Lua */
};

typedef struct Job {
  uv_work_t req;
  const lua_async_api *api;
  lua_async_future *fut;
  Pool *pool;
  Bytes code, args, out;         /* out: the results, or the error's text */
  int failed;
  char *path, *cpath;
} Job;

Pool *pool_new(void) {
  Pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  uv_mutex_init(&p->m);
  p->refs = 1;
  return p;
}

void pool_unref(Pool *p) {
  if (--p->refs > 0) return;
  for (int i = 0; i < p->nidle; i++) lua_close(p->idle[i]);
  uv_mutex_destroy(&p->m);
  free(p);
}

void io_pool_close(Pool *p) {
  p->closing = 1;
  pool_unref(p);
}

/* ---- on the worker thread ----------------------------------------------- */

static lua_State *worker_take(Pool *p) {
  lua_State *W = NULL;
  uv_mutex_lock(&p->m);
  if (p->nidle > 0) W = p->idle[--p->nidle];
  uv_mutex_unlock(&p->m);
  if (W) return W;
  W = luaL_newstate();
  if (W) luaL_openlibs(W);
  return W;
}

static void worker_give(Pool *p, lua_State *W) {
  lua_settop(W, 0);
  uv_mutex_lock(&p->m);
  int kept = p->nidle < POOL_MAX;
  if (kept) p->idle[p->nidle++] = W;
  uv_mutex_unlock(&p->m);
  if (!kept) lua_close(W);
}

static void set_paths(lua_State *W, const Job *j) {
  lua_getglobal(W, "package");
  if (lua_istable(W, -1)) {
    if (j->path) { lua_pushstring(W, j->path); lua_setfield(W, -2, "path"); }
    if (j->cpath) { lua_pushstring(W, j->cpath); lua_setfield(W, -2, "cpath"); }
  }
  lua_pop(W, 1);
}

static void job_error(Job *j, const char *msg) {
  bytes_clear(&j->out);
  j->failed = 1;
  Bytes *b = &j->out;
  size_t n = strlen(msg);
  if ((b->p = malloc(n ? n : 1))) { memcpy(b->p, msg, n); b->n = b->cap = n; }
}

static void run_job(uv_work_t *req) {
  Job *j = req->data;
  lua_State *W = worker_take(j->pool);
  if (!W) { job_error(j, "async.to_thread: out of memory for a worker Lua state"); return; }
  set_paths(W, j);
  char err[300];
  if (luaL_loadbufferx(W, j->code.p, j->code.n, "=to_thread", "b") != LUA_OK) {
    job_error(j, lua_tostring(W, -1));
  } else {
    int nargs = copy_in(W, &j->args);
    if (nargs < 0) job_error(j, "async.to_thread: the arguments did not arrive whole");
    else if (lua_pcall(W, nargs, LUA_MULTRET, 0) != LUA_OK) {
      job_error(j, luaL_tolstring(W, -1, NULL));
    } else if (copy_out(W, 1, lua_gettop(W), "async.to_thread: result", 1, &j->out, err, sizeof err) != 0) {
      job_error(j, err);
    }
  }
  worker_give(j->pool, W);
}

/* ---- on the loop thread ------------------------------------------------- */

static void job_free(Job *j) {
  bytes_clear(&j->code); bytes_clear(&j->args); bytes_clear(&j->out);
  free(j->path); free(j->cpath);
  pool_unref(j->pool);
  free(j);
}

static void job_done(uv_work_t *req, int status) {
  Job *j = req->data;
  if (j->pool->closing) { job_free(j); return; }
  lua_State *L = j->api->state(j->fut);
  if (status != 0) job_error(j, "async.to_thread: the call was cancelled before it ran");
  if (j->failed) {
    lua_pushlstring(L, j->out.p ? j->out.p : "", j->out.n);
    j->api->reject(j->fut);
  } else {
    int n = copy_in(L, &j->out);
    if (n < 0) {
      lua_pushliteral(L, "async.to_thread: the results did not arrive whole");
      j->api->reject(j->fut);
    } else {
      j->api->resolve(j->fut, n);
    }
  }
  job_free(j);
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  Bytes *b = ud;
  if (n > b->cap - b->n) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->n < n) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) return 1;
    b->p = q; b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
  return 0;
}

static char *package_string(lua_State *L, const char *field) {
  int top = lua_gettop(L);
  char *s = NULL;
  if (lua_getglobal(L, "package") == LUA_TTABLE && lua_getfield(L, -1, field) == LUA_TSTRING) {
    const char *v = lua_tostring(L, -1);
    if ((s = malloc(strlen(v) + 1))) strcpy(s, v);
  }
  lua_settop(L, top);
  return s;
}

/* fn must travel as bytecode: a Lua function whose only upvalue is _ENV */
static void check_fn(lua_State *L) {
  if (lua_type(L, 1) != LUA_TFUNCTION || lua_iscfunction(L, 1))
    luaL_error(L, "bad argument #1 to 'to_thread' (a Lua function expected, got %s)",
               lua_iscfunction(L, 1) ? "a C function (it cannot travel to another state)" : luaL_typename(L, 1));
  const char *name;
  for (int i = 1; (name = lua_getupvalue(L, 1, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0)
      luaL_error(L, "bad argument #1 to 'to_thread' (the function uses the upvalue '%s', a local of an "
                    "enclosing function; only its arguments and globals travel: pass %s as an argument)",
                 *name ? name : "?", *name ? name : "it");
  }
}

/* the awaitable's start (C API awaitable_new): stack = pool box, fn, args... */
static int start_job(lua_State *L) {
  Pool *p = *(Pool **)lua_touserdata(L, 1);
  const lua_async_api *api = lua_async_get_api(L);
  lua_remove(L, 1);
  check_fn(L);
  Job *j = calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "async.to_thread: out of memory");
  char err[300];
  lua_pushvalue(L, 1);                       /* lua_dump takes the function on top */
  int dump_rc = lua_dump(L, dump_writer, &j->code, 0);
  lua_pop(L, 1);
  if (dump_rc != 0 || copy_out(L, 2, lua_gettop(L) - 1, "argument", 2, &j->args, err, sizeof err) != 0) {
    int dumped = j->code.n > 0;
    bytes_clear(&j->code); bytes_clear(&j->args); free(j);
    if (!dumped) return luaL_error(L, "async.to_thread: cannot dump the function");
    return luaL_error(L, "bad argument to 'to_thread' (%s)", err);
  }
  j->path = package_string(L, "path");
  j->cpath = package_string(L, "cpath");
  j->api = api; j->pool = p;
  j->req.data = j;
  p->refs++;
  j->fut = api->future_new(L);
  int rc = uv_queue_work(api->loop(L), &j->req, run_job, job_done);
  if (rc != 0) {
    lua_pop(L, 1);
    job_free(j);
    return luaL_error(L, "async.to_thread: cannot queue work: %s", uv_strerror(rc));
  }
  return 1;
}

/* to_thread(fn, ...): upvalue 1 is the pool's box */
int io_to_thread(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  api->awaitable_new(L, start_job, lua_gettop(L));
  return 1;
}
