/*
 * process.c - child processes: uv_spawn, the child's pipes as streams
 * (stream.c), and its exit.
 *
 * Every child is reaped: libuv's exit callback runs whether or not anyone
 * awaits wait, and the process handle (C memory, the C API's life cycle)
 * stays open until then, even if the Lua object is collected.  wait is a
 * list of futures settled with (code) or (nil, signal name); cancelling a
 * wait leaves the child alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include "lua_async.h"
#include "stream.h"
#include "io.h"

#define PROCESS_MT "async.process"

typedef struct Waiting { lua_async_future *f; struct Waiting *next; struct Proc *p; } Waiting;

typedef struct Proc {
  lua_async_handle lh;           /* first: the C API's handle memory */
  uv_process_t uv;
  const lua_async_api *api;
  int exited;
  int64_t code;
  int signal;
  Waiting *waiting;
  struct PBox *box;
} Proc;

typedef struct PBox { Proc *p; int pid; int exited; int64_t code; int signal; } PBox;

static void push_exit(lua_State *L, int64_t code, int sig) {
  if (sig) { lua_pushnil(L); lua_pushstring(L, io_signal_name(sig) ? io_signal_name(sig) : "?"); }
  else { lua_pushinteger(L, (lua_Integer)code); lua_pushnil(L); }
}

static void wait_cancelled(void *ud) {
  Waiting *w = ud;
  Waiting **pp = &w->p->waiting;
  while (*pp && *pp != w) pp = &(*pp)->next;
  if (*pp) *pp = w->next;
  free(w);
}

static void on_exit_cb(uv_process_t *uv, int64_t code, int sig) {
  Proc *p = ((lua_async_handle *)uv->data)->ud;
  p->exited = 1; p->code = code; p->signal = sig;
  int lua = p->api->handle_lua(&p->lh);
  if (lua && p->box) { p->box->exited = 1; p->box->code = code; p->box->signal = sig; p->box->p = NULL; }
  while (p->waiting) {
    Waiting *w = p->waiting;
    p->waiting = w->next;
    if (lua) {
      p->api->on_cancel(w->f, NULL, NULL);
      push_exit(p->api->state(w->f), code, sig);
      p->api->resolve(w->f, 2);
    }
    free(w);
  }
  p->api->handle_close(&p->lh, NULL);        /* reaped: the handle goes */
}

static PBox *check_box(lua_State *L) { return luaL_checkudata(L, 1, PROCESS_MT); }

/* stack = box */
static int start_wait(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  PBox *b = check_box(L);
  lua_async_future *f = api->future_new(L);
  if (b->exited || !b->p) { push_exit(api->state(f), b->code, b->signal); api->resolve(f, 2); return 1; }
  Waiting *w = malloc(sizeof *w);
  if (!w) return luaL_error(L, "wait: out of memory");
  w->f = f; w->p = b->p; w->next = b->p->waiting;
  b->p->waiting = w;
  api->on_cancel(f, wait_cancelled, w);
  return 1;
}

static int p_wait(lua_State *L) {
  return io_lazy(L, start_wait, 1);
}

static int p_kill(lua_State *L) {
  PBox *b = check_box(L);
  const char *name = luaL_optstring(L, 2, "SIGTERM");
  int sig = io_signal_number(name);
  if (!sig) return luaL_error(L, "bad argument #1 to 'kill' (a signal name such as \"SIGTERM\" expected, got \"%s\")", name);
  if (b->exited || !b->p) { lua_pushboolean(L, 0); return 1; }
  lua_pushboolean(L, uv_process_kill(&b->p->uv, sig) == 0);
  return 1;
}

static int box_gc(lua_State *L) {
  PBox *b = lua_touserdata(L, 1);
  if (b->p) b->p->box = NULL;                /* the child runs on; it is still reaped */
  b->p = NULL;
  return 0;
}

static char **string_list(lua_State *L, int idx, int *n, const char *what, int env) {
  *n = 0;
  if (lua_isnoneornil(L, idx)) return NULL;
  luaL_checktype(L, idx, LUA_TTABLE);
  int cap = 8, k = 0;
  char **v = malloc((size_t)cap * sizeof *v);
  if (!v) luaL_error(L, "out of memory");
  if (env) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)) {
        free(v);
        luaL_error(L, "bad %s (names and values must be strings)", what);
      }
      if (k + 2 > cap) { cap *= 2; char **q = realloc(v, (size_t)cap * sizeof *q); if (!q) { free(v); luaL_error(L, "out of memory"); } v = q; }
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
      v[k++] = (char *)lua_tostring(L, -1);   /* kept alive: left on the stack below */
      lua_insert(L, -3);
      lua_pop(L, 1);
    }
  } else {
    int len = (int)lua_rawlen(L, idx);
    for (int i = 1; i <= len; i++) {
      lua_rawgeti(L, idx, i);
      if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) { free(v); luaL_error(L, "bad %s (element %d is a %s)", what, i, luaL_typename(L, -1)); }
      if (k + 2 > cap) { cap *= 2; char **q = realloc(v, (size_t)cap * sizeof *q); if (!q) { free(v); luaL_error(L, "out of memory"); } v = q; }
      v[k++] = (char *)lua_tostring(L, -1);   /* kept alive: left on the stack */
    }
  }
  v[k] = NULL;
  *n = k;
  return v;
}

/* spawn(argv, stdio modes {in, out, err}, env?, cwd?, limit?): box, stdin, stdout, stderr (streams or nil) */
int io_spawn(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t limit = (size_t)luaL_optinteger(L, 5, 0);
  const char *cwd = luaL_optstring(L, 4, NULL);
  int top = lua_gettop(L);
  int nargs, nenv;
  char **args = string_list(L, 1, &nargs, "argv", 0);
  if (nargs == 0) { free(args); return luaL_error(L, "bad argument #1 to 'exec' (argv must name a program)"); }
  char **env = string_list(L, 3, &nenv, "env", 1);
  uv_stdio_container_t stdio[3];
  Stream *pipes[3] = {NULL, NULL, NULL};
  lua_rawgeti(L, 2, 3);
  int merged = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "stdout") == 0;
  lua_pop(L, 1);
  uv_file shared[2] = {-1, -1};
  int streams_at = lua_gettop(L);
  for (int i = 0; i < 3; i++) {
    lua_rawgeti(L, 2, i + 1);
    const char *mode = luaL_optstring(L, -1, "inherit");
    lua_pop(L, 1);
    if (strcmp(mode, "pipe") == 0 && i == 1 && merged) {
      /* stdout and stderr into one pipe: made here, so that the child can
       * have its write end as both fd 1 and fd 2 */
      if (uv_pipe(shared, 0, 0) != 0) { free(args); free(env); return luaL_error(L, "exec: cannot make a pipe"); }
      pipes[i] = stream_new_pipe(L, api, limit);
      if (uv_pipe_open(stream_pipe(pipes[i]), shared[0]) != 0) {
        close(shared[0]); close(shared[1]); free(args); free(env);
        return luaL_error(L, "exec: cannot use the pipe");
      }
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = shared[1];
    } else if (strcmp(mode, "pipe") == 0) {
      pipes[i] = stream_new_pipe(L, api, limit);
      stdio[i].flags = UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
      stdio[i].data.stream = stream_uv(pipes[i]);
    } else if (strcmp(mode, "null") == 0) {
      lua_pushnil(L);
      stdio[i].flags = UV_IGNORE;
    } else if (i == 2 && strcmp(mode, "stdout") == 0) {
      lua_pushnil(L);                        /* merged: whatever fd 1 is (a shared pipe: below) */
      stdio[2] = stdio[1];
    } else {
      lua_pushnil(L);
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = i;
    }
  }
  PBox *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, PROCESS_MT);
  Proc *p = (Proc *)api->handle_new(L, sizeof *p);
  if (!p) { free(args); free(env); return luaL_error(L, "exec: out of memory"); }
  p->api = api;
  uv_process_options_t o;
  memset(&o, 0, sizeof o);
  o.file = args[0]; o.args = args; o.env = env; o.cwd = cwd;
  o.exit_cb = on_exit_cb;
  o.stdio = stdio; o.stdio_count = 3;
  int rc = uv_spawn(api->loop(L), &p->uv, &o);
  free(args); free(env);
  if (shared[1] >= 0) close(shared[1]);      /* the child's end: ours goes, its copies stay */
  api->handle_init(&p->lh, (uv_handle_t *)&p->uv);   /* (a failed spawn's handle is initialized too) */
  p->lh.ud = p;
  if (rc != 0) {
    api->handle_close(&p->lh, NULL);
    lua_rawgeti(L, 1, 1);
    char what[600];
    snprintf(what, sizeof what, "exec %s", lua_tostring(L, -1));
    io_push_uverror(L, api, "OSError", rc, what);
    return lua_error(L);
  }
  p->box = b; b->p = p; b->pid = p->uv.pid;
  for (int i = 0; i < 3; i++) if (pipes[i]) stream_connected(pipes[i]);
  /* results: box, then the three stream slots */
  lua_insert(L, streams_at + 1);
  int nres = lua_gettop(L) - streams_at;
  (void)top;
  return nres;
}

static int p_pid(lua_State *L) { lua_pushinteger(L, check_box(L)->pid); return 1; }

void io_process_open(lua_State *L) {
  static const luaL_Reg methods[] = { {"_wait", p_wait}, {"kill", p_kill}, {"_pid", p_pid}, {NULL, NULL} };
  io_class(L, PROCESS_MT, methods, box_gc, NULL);
}
