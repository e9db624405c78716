/*
 * signal.c - a watcher of one signal (uv_signal_t), for async.on_signal and
 * async.signal (src/async/prelude.lua keeps the handlers; this file only
 * watches).  watch_signal(name, fn) gives a watcher that calls fn(name) on
 * the loop each time the process gets the signal; :ref(on) says whether it
 * keeps the loop alive (only while someone awaits async.signal);
 * :close() ends it.  The watcher is a handle of the C API's life cycle:
 * after lua_close its callback touches no Lua.
 */
#include <signal.h>
#include <string.h>
#include <lauxlib.h>
#include "lua_async.h"
#include "io.h"

#define WATCHER_MT "async.io.signal"

static const struct { const char *name; int num; } SIGNALS[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT}, {"SIGTERM", SIGTERM},
  {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGWINCH", SIGWINCH}, {"SIGALRM", SIGALRM},
  {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGTSTP", SIGTSTP}, {"SIGPIPE", SIGPIPE},
  {"SIGKILL", SIGKILL}, {"SIGSTOP", SIGSTOP}, {"SIGABRT", SIGABRT}, {"SIGSEGV", SIGSEGV},
  {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE}, {"SIGILL", SIGILL}, {"SIGTRAP", SIGTRAP},
  {NULL, 0}
};

int io_signal_number(const char *name) {
  for (int i = 0; SIGNALS[i].name; i++) if (strcmp(SIGNALS[i].name, name) == 0) return SIGNALS[i].num;
  return 0;
}

const char *io_signal_name(int num) {
  for (int i = 0; SIGNALS[i].name; i++) if (SIGNALS[i].num == num) return SIGNALS[i].name;
  return NULL;
}

typedef struct Watch {
  lua_async_handle lh;       /* first: the C API's handle memory */
  uv_signal_t sig;
  lua_State *T;              /* the thread its callback runs on (kept by the module) */
  int fn;                    /* registry ref: fn(name) */
  const lua_async_api *api;
} Watch;

typedef struct Box { Watch *w; } Box;        /* the Lua side's hold on a watcher */

static void on_signal(uv_signal_t *s, int signum) {
  Watch *w = s->data;
  if (!w->api->handle_lua(&w->lh)) return;   /* the state closed */
  lua_State *T = w->T;
  lua_rawgeti(T, LUA_REGISTRYINDEX, w->fn);
  lua_pushstring(T, io_signal_name(signum));
  if (lua_pcall(T, 1, 0, 0) != LUA_OK) lua_pop(T, 1);   /* (fn only queues the handlers: async.call_soon) */
}

static void watch_closed(lua_async_handle *lh) {
  Watch *w = (Watch *)lh;
  if (w->api->handle_lua(lh)) luaL_unref(w->T, LUA_REGISTRYINDEX, w->fn);
}

static Box *check_box(lua_State *L) {
  Box *b = luaL_checkudata(L, 1, WATCHER_MT);
  if (!b->w) luaL_error(L, "the signal watcher is closed");
  return b;
}

static int w_ref(lua_State *L) {
  Box *b = check_box(L);
  if (lua_toboolean(L, 2)) uv_ref((uv_handle_t *)&b->w->sig); else uv_unref((uv_handle_t *)&b->w->sig);
  return 0;
}

static int w_close(lua_State *L) {
  Box *b = luaL_testudata(L, 1, WATCHER_MT);
  if (!b || !b->w) return 0;
  uv_signal_stop(&b->w->sig);
  b->w->api->handle_close(&b->w->lh, watch_closed);
  b->w = NULL;
  return 0;
}

/* watch_signal(name, fn); upvalue 1: the module's thread for callbacks */
int io_watch_signal(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  const char *name = luaL_checkstring(L, 1);
  int num = io_signal_number(name);
  if (!num) return luaL_error(L, "bad argument #1 (a signal name such as \"SIGHUP\" or \"SIGUSR1\" expected, got \"%s\")", name);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  Box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->w = NULL;
  luaL_setmetatable(L, WATCHER_MT);
  Watch *w = (Watch *)api->handle_new(L, sizeof *w);
  if (!w) return luaL_error(L, "out of memory");
  w->api = api;
  w->T = lua_tothread(L, lua_upvalueindex(1));
  int rc = uv_signal_init(api->loop(L), &w->sig);
  if (rc == 0) {
    api->handle_init(&w->lh, (uv_handle_t *)&w->sig);
    rc = uv_signal_start(&w->sig, on_signal, num);
  }
  if (rc != 0) {
    api->handle_close(&w->lh, NULL);
    return luaL_error(L, "cannot watch %s: %s", name, uv_strerror(rc));
  }
  uv_unref((uv_handle_t *)&w->sig);          /* it keeps the loop alive only when asked (ref) */
  lua_pushvalue(L, 2);
  w->fn = luaL_ref(L, LUA_REGISTRYINDEX);
  b->w = w;
  return 1;
}

/* signal_known(name): is it a signal this module watches? */
int io_signal_known(lua_State *L) {
  lua_pushboolean(L, io_signal_number(luaL_checkstring(L, 1)) != 0);
  return 1;
}

void io_signal_open(lua_State *L) {
  static const luaL_Reg methods[] = { {"ref", w_ref}, {"close", w_close}, {NULL, NULL} };
  io_class(L, WATCHER_MT, methods, w_close, NULL);
}
