/* copy.c - Lua values to bytes and back (see copy.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "copy.h"

enum { T_NIL = 'n', T_FALSE = 'f', T_TRUE = 't', T_INT = 'i', T_NUM = 'd', T_STR = 's',
       T_TABLE = '{', T_END = '}' };

#define MAX_DEPTH 200           /* nesting a copy follows (also bounds the C stack) */

void bytes_clear(Bytes *b) { free(b->p); b->p = NULL; b->n = b->cap = 0; }

static int put(Bytes *b, const void *p, size_t n) {
  if (n > SIZE_MAX - b->n) return -1;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n) { if (cap > SIZE_MAX / 2) return -1; cap *= 2; }
    char *q = realloc(b->p, cap);
    if (!q) return -1;
    b->p = q; b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
  return 0;
}

static int put_tag(Bytes *b, char t) { return put(b, &t, 1); }

typedef struct Out {
  lua_State *L;
  Bytes *b;
  int seen;                     /* a table of the tables on the current path (cycles) */
  char *err; size_t errlen;
} Out;

static int fail(Out *o, const char *where, const char *what) {
  snprintf(o->err, o->errlen, "%s is %s, which cannot be copied to another Lua state", where, what);
  return -1;
}

/* a path's next step, for messages: "where.key" or "where[3]" */
static void step_name(lua_State *L, int key, const char *where, char *out, size_t n) {
  if (lua_type(L, key) == LUA_TSTRING) snprintf(out, n, "%s.%.60s", where, lua_tostring(L, key));
  else if (lua_isinteger(L, key)) snprintf(out, n, "%s[%lld]", where, (long long)lua_tointeger(L, key));
  else if (lua_type(L, key) == LUA_TNUMBER) snprintf(out, n, "%s[%g]", where, lua_tonumber(L, key));
  else snprintf(out, n, "%s[a %s key]", where, luaL_typename(L, key));
}

static int put_value(Out *o, int idx, const char *where, int depth);

static int put_table(Out *o, int idx, const char *where, int depth) {
  lua_State *L = o->L;
  if (depth >= MAX_DEPTH) return fail(o, where, "nested too deep (200 levels)");
  if (lua_getmetatable(L, idx)) { lua_pop(L, 1); return fail(o, where, "a table with a metatable"); }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, o->seen) != LUA_TNIL) { lua_pop(L, 1); return fail(o, where, "a table inside itself (a cycle)"); }
  lua_pop(L, 1);
  lua_pushvalue(L, idx); lua_pushboolean(L, 1); lua_rawset(L, o->seen);
  if (put_tag(o->b, T_TABLE) != 0) return fail(o, where, "too large (out of memory)");
  if (!lua_checkstack(L, 4)) return fail(o, where, "nested too deep");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    char sub[200];
    step_name(L, -2, where, sub, sizeof sub);
    int t = lua_type(L, -2);
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN) { lua_pop(L, 2); return fail(o, sub, "keyed by a non-copyable value"); }
    if (put_value(o, lua_gettop(L) - 1, sub, depth + 1) != 0 || put_value(o, lua_gettop(L), sub, depth + 1) != 0) {
      lua_pop(L, 2);
      return -1;
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, idx); lua_pushnil(L); lua_rawset(L, o->seen);   /* off the path: may appear again */
  return put_tag(o->b, T_END) == 0 ? 0 : fail(o, where, "too large (out of memory)");
}

static int put_value(Out *o, int idx, const char *where, int depth) {
  lua_State *L = o->L;
  Bytes *b = o->b;
  idx = lua_absindex(L, idx);
  int rc = 0;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: rc = put_tag(b, T_NIL); break;
    case LUA_TBOOLEAN: rc = put_tag(b, lua_toboolean(L, idx) ? T_TRUE : T_FALSE); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) { lua_Integer i = lua_tointeger(L, idx); rc = put_tag(b, T_INT) || put(b, &i, sizeof i); }
      else { lua_Number d = lua_tonumber(L, idx); rc = put_tag(b, T_NUM) || put(b, &d, sizeof d); }
      break;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      uint64_t len = n;
      rc = put_tag(b, T_STR) || put(b, &len, sizeof len) || put(b, s, n);
      break;
    }
    case LUA_TTABLE: return put_table(o, idx, where, depth);
    default: {
      char what[64];
      snprintf(what, sizeof what, "a %s", luaL_typename(L, idx));
      return fail(o, where, what);
    }
  }
  return rc ? fail(o, where, "too large (out of memory)") : 0;
}

int copy_out(lua_State *L, int idx, int n, const char *what, int first, Bytes *out, char *err, size_t errlen) {
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  Out o = { L, out, lua_gettop(L), err, errlen };
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    char where[64];
    snprintf(where, sizeof where, "%s #%d", what, first + i);
    rc = put_value(&o, idx + i, where, 0);
  }
  lua_pop(L, 1);
  return rc;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct In { const char *p, *end; lua_State *L; } In;

static int get_value(In *in, int depth);

static int get(In *in, void *dst, size_t n) {
  if ((size_t)(in->end - in->p) < n) return -1;
  memcpy(dst, in->p, n);
  in->p += n;
  return 0;
}

static int get_table(In *in, int depth) {
  lua_State *L = in->L;
  if (depth >= MAX_DEPTH || !lua_checkstack(L, 4)) return -1;
  lua_newtable(L);
  while (in->p < in->end && *in->p != T_END) {
    if (get_value(in, depth + 1) != 0) return -1;
    if (get_value(in, depth + 1) != 0) return -1;
    if (lua_isnil(L, -2)) return -1;
    lua_rawset(L, -3);
  }
  if (in->p >= in->end) return -1;
  in->p++;
  return 0;
}

static int get_value(In *in, int depth) {
  lua_State *L = in->L;
  char t;
  if (get(in, &t, 1) != 0) return -1;
  switch (t) {
    case T_NIL: lua_pushnil(L); return 0;
    case T_FALSE: lua_pushboolean(L, 0); return 0;
    case T_TRUE: lua_pushboolean(L, 1); return 0;
    case T_INT: { lua_Integer i; if (get(in, &i, sizeof i)) return -1; lua_pushinteger(L, i); return 0; }
    case T_NUM: { lua_Number d; if (get(in, &d, sizeof d)) return -1; lua_pushnumber(L, d); return 0; }
    case T_STR: {
      uint64_t len;
      if (get(in, &len, sizeof len) || (uint64_t)(in->end - in->p) < len) return -1;
      lua_pushlstring(L, in->p, (size_t)len);
      in->p += len;
      return 0;
    }
    case T_TABLE: return get_table(in, depth);
    default: return -1;
  }
}

int copy_in(lua_State *L, const Bytes *b) {
  In in = { b->p, b->p + b->n, L };
  int n = 0, top = lua_gettop(L);
  while (in.p < in.end) {
    if (!lua_checkstack(L, 2) || get_value(&in, 0) != 0) { lua_settop(L, top); return -1; }
    n++;
  }
  return n;
}
