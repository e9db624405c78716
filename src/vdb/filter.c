/* filter.c - where filters: {k = v}, {k = {["$gte"] = 2020}}, $eq $ne $gt
 * $gte $lt $lte $in $nin, $and, $or; several keys in one table mean $and.
 * A record without the key never matches a comparison on it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "filter.h"

enum { F_AND, F_OR, F_EQ, F_NE, F_GT, F_GTE, F_LT, F_LTE, F_IN, F_NIN };

struct Filter {
  int op;
  int n;                     /* children (AND/OR) or values (comparisons) */
  Filter **kids;
  char *key;
  MetaKV *vals;
};

static const char *const op_names[] = {"$and", "$or", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"};

void filter_free(Filter *f) {
  if (!f) return;
  if (f->kids) for (int i = 0; i < f->n; i++) filter_free(f->kids[i]);
  if (f->vals) for (int i = 0; i < f->n; i++) bytes_free(f->vals[i].str);
  free(f->kids); free(f->vals); bytes_free(f->key);
  free(f);
}

static int value_eq(const MetaKV *a, const MetaKV *b) {
  if (a->type != b->type) return 0;
  return a->type == MV_STR ? bytes_eq(a->str, b->str) : a->num == b->num;
}

int filter_match(const Filter *f, const Meta *m) {
  if (f->op == F_AND) { for (int i = 0; i < f->n; i++) if (!filter_match(f->kids[i], m)) return 0; return 1; }
  if (f->op == F_OR) { for (int i = 0; i < f->n; i++) if (filter_match(f->kids[i], m)) return 1; return 0; }
  const MetaKV *v = NULL;
  for (int i = 0; i < m->n; i++) if (bytes_eq(m->kv[i].key, f->key)) { v = &m->kv[i]; break; }
  if (!v) return 0;
  switch (f->op) {
    case F_EQ: return value_eq(v, &f->vals[0]);
    case F_NE: return !value_eq(v, &f->vals[0]);
    case F_GT: return v->type == MV_NUM && v->num > f->vals[0].num;
    case F_GTE: return v->type == MV_NUM && v->num >= f->vals[0].num;
    case F_LT: return v->type == MV_NUM && v->num < f->vals[0].num;
    case F_LTE: return v->type == MV_NUM && v->num <= f->vals[0].num;
    case F_IN: case F_NIN: {
      int found = 0;
      for (int i = 0; i < f->n && !found; i++) found = value_eq(v, &f->vals[i]);
      return f->op == F_IN ? found : !found;
    }
  }
  return 0;
}

/* ---- compiling ---------------------------------------------------------- */

typedef struct Ctx { lua_State *L; char *err; size_t errlen; } Ctx;

static Filter *fail(Ctx *c, Filter *f, const char *fmt, const char *a) {
  if (!c->err[0]) snprintf(c->err, c->errlen, fmt, a);
  filter_free(f);
  return NULL;
}

static Filter *node(int op, int n) {
  Filter *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->op = op;
  f->n = n;
  return f;
}

/* the value at the top of the stack into v; 0 if it is not a scalar */
static int scalar(lua_State *L, MetaKV *v) {
  switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, -1, &n);
      v->type = MV_STR;
      return (v->str = bytes_new(s, n)) != NULL;
    }
    case LUA_TNUMBER: v->type = MV_NUM; v->num = lua_tonumber(L, -1); return 1;
    case LUA_TBOOLEAN: v->type = MV_BOOL; v->num = lua_toboolean(L, -1); return 1;
  }
  return 0;
}

static int op_code(const char *s) {
  for (int i = F_EQ; i <= F_NIN; i++) if (strcmp(s, op_names[i]) == 0) return i;
  return -1;
}

static Filter *compile_table(Ctx *c, int idx, int depth);

/* a comparison node on key with n values */
static Filter *field_node(int op, int n, const char *key, size_t klen) {
  Filter *f = node(op, n);
  if (!f) return NULL;
  f->key = bytes_new(key, klen);
  f->vals = calloc((size_t)n, sizeof *f->vals);
  if (!f->key || !f->vals) { filter_free(f); return NULL; }
  return f;
}

/* key = value or key = {["$op"] = value}; the value is at the top */
static Filter *compile_field(Ctx *c, const char *key, size_t klen) {
  lua_State *L = c->L;
  if (lua_type(L, -1) != LUA_TTABLE) {
    Filter *f = field_node(F_EQ, 1, key, klen);
    if (!f) return fail(c, f, "out of memory%s", "");
    if (!f->vals || !scalar(L, &f->vals[0]))
      return fail(c, f, "where: the value for '%s' must be a string, number or boolean", key);
    return f;
  }
  /* {["$op"] = value}: exactly one operator */
  int t = lua_gettop(L), nops = 0;
  Filter *f = NULL;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) != LUA_TSTRING || op_code(lua_tostring(L, -2)) < 0) {
      lua_pop(L, 2);
      return fail(c, f, "where: unknown operator for '%s' (expected $eq $ne $gt $gte $lt $lte $in $nin)", key);
    }
    if (++nops > 1) { lua_pop(L, 2); return fail(c, f, "where: one operator per field ('%s')", key); }
    int op = op_code(lua_tostring(L, -2));
    if (op == F_IN || op == F_NIN) {
      if (lua_type(L, -1) != LUA_TTABLE) { lua_pop(L, 2); return fail(c, f, "where: $in/$nin for '%s' take a list", key); }
      int n = (int)lua_rawlen(L, -1);
      if (n == 0) { lua_pop(L, 2); return fail(c, f, "where: $in/$nin for '%s' take a non-empty list", key); }
      if (!(f = field_node(op, n, key, klen))) { lua_pop(L, 2); return fail(c, f, "out of memory%s", ""); }
      for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        int ok = scalar(L, &f->vals[i - 1]);
        lua_pop(L, 1);
        if (!ok) { lua_pop(L, 2); return fail(c, f, "where: $in/$nin values for '%s' must be strings, numbers or booleans", key); }
      }
    } else {
      if (!(f = field_node(op, 1, key, klen))) { lua_pop(L, 2); return fail(c, f, "out of memory%s", ""); }
      if (!scalar(L, &f->vals[0])) { lua_pop(L, 2); return fail(c, f, "where: the value for '%s' must be a string, number or boolean", key); }
      if (op >= F_GT && op <= F_LTE && f->vals[0].type != MV_NUM) { lua_pop(L, 2); return fail(c, f, "where: $gt/$gte/$lt/$lte for '%s' compare numbers", key); }
    }
    lua_pop(L, 1);
  }
  if (nops == 0) return fail(c, f, "where: empty operator table for '%s'", key);
  return f;
}

/* $and / $or: a non-empty list of where tables, value at the top */
static Filter *compile_logical(Ctx *c, int op, int depth) {
  lua_State *L = c->L;
  if (lua_type(L, -1) != LUA_TTABLE || lua_rawlen(L, -1) == 0)
    return fail(c, NULL, "where: %s takes a non-empty list of filters", op_names[op]);
  int n = (int)lua_rawlen(L, -1);
  Filter *f = node(op, n);
  if (!f || !(f->kids = calloc((size_t)n, sizeof *f->kids))) return fail(c, f, "out of memory%s", "");
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    f->kids[i - 1] = lua_type(L, -1) == LUA_TTABLE ? compile_table(c, lua_gettop(L), depth + 1) : NULL;
    lua_pop(L, 1);
    if (!f->kids[i - 1]) return fail(c, f, "where: each item of %s must be a filter table", op_names[op]);
  }
  return f;
}

static Filter *compile_table(Ctx *c, int idx, int depth) {
  lua_State *L = c->L;
  if (depth > 32) return fail(c, NULL, "where: nested too deeply%s", "");
  luaL_checkstack(L, 8, "where");
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) { n++; lua_pop(L, 1); }
  if (n == 0) return fail(c, NULL, "where: an empty filter table%s", "");
  Filter *all = node(F_AND, n);
  if (!all || !(all->kids = calloc((size_t)n, sizeof *all->kids))) return fail(c, all, "out of memory%s", "");
  int i = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    Filter *k = NULL;
    if (lua_type(L, -2) != LUA_TSTRING) { lua_pop(L, 2); return fail(c, all, "where: keys must be strings%s", ""); }
    size_t klen;
    const char *key = lua_tolstring(L, -2, &klen);
    if (strcmp(key, "$and") == 0) k = compile_logical(c, F_AND, depth);
    else if (strcmp(key, "$or") == 0) k = compile_logical(c, F_OR, depth);
    else if (key[0] == '$') { lua_pop(L, 2); return fail(c, all, "where: unknown operator '%s' at the top level", key); }
    else k = compile_field(c, key, klen);
    lua_pop(L, 1);
    if (!k) { lua_pop(L, 1); return fail(c, all, "invalid where%s", ""); }
    all->kids[i++] = k;
  }
  if (n == 1) { Filter *only = all->kids[0]; all->kids[0] = NULL; all->n = 0; filter_free(all); return only; }
  return all;
}

Filter *filter_compile(lua_State *L, int idx, char *err, size_t errlen) {
  Ctx c = {L, err, errlen};
  err[0] = 0;
  if (lua_isnoneornil(L, idx)) return NULL;
  if (lua_type(L, idx) != LUA_TTABLE) { snprintf(err, errlen, "where: a table expected, got %s", luaL_typename(L, idx)); return NULL; }
  lua_pushnil(L);
  if (!lua_next(L, lua_absindex(L, idx))) return NULL;   /* {}: everything */
  lua_pop(L, 2);
  return compile_table(&c, lua_absindex(L, idx), 0);
}
