/*
 * input.c - reading vdb's Lua arguments into plain C data.  Every check of
 * the contract happens here, before any work is queued or any request is
 * sent: a rejected call changes nothing.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "input.h"
#include "filter.h"

/* ---- errors: vdb.Error instances made by the prelude -------------------- */

void push_vdb_error(lua_State *L, const char *code, const char *msg) {
  lua_getfield(L, LUA_REGISTRYINDEX, ERRORS_KEY);
  lua_pushstring(L, code);
  lua_pushstring(L, msg);
  lua_call(L, 2, 1);
}

int raise_vdb(lua_State *L, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char msg[300];
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  push_vdb_error(L, code, msg);
  return lua_error(L);
}

static const char *not_finite(const void *v, int d, char *msg, size_t ml) {
  for (int j = 0; j < d; j++) {
    float f;
    memcpy(&f, (const char *)v + 4 * (size_t)j, 4);
    if (!isfinite(f)) { snprintf(msg, ml, "vector component %d is not finite", j + 1); return "invalid_argument"; }
  }
  return NULL;
}

/* The vector at idx into out[dim]: a list of finite numbers or a string of
 * packed little-endian float32.  *dim == 0: learn it.  Returns NULL, or an
 * error code with msg filled. */
const char *read_vector(lua_State *L, int idx, int *dim, float *out, char *msg, size_t ml) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (len == 0 || len % 4 != 0) { snprintf(msg, ml, "a packed vector must be a non-empty multiple of 4 bytes, got %zu", len); return "invalid_argument"; }
    if (len / 4 > STORE_MAX_DIM) { snprintf(msg, ml, "a vector has at most %d dimensions, got %zu", STORE_MAX_DIM, len / 4); return "invalid_argument"; }
    int d = (int)(len / 4);
    if (*dim && d != *dim) { snprintf(msg, ml, "vector has %d dimensions, expected %d", d, *dim); return "dimension_mismatch"; }
    *dim = d;
    if (out) {
      if (host_little_endian()) memcpy(out, s, len);
      else
        for (int j = 0; j < d; j++) {
          uint32_t u = (uint32_t)(unsigned char)s[4 * j] | (uint32_t)(unsigned char)s[4 * j + 1] << 8 |
                       (uint32_t)(unsigned char)s[4 * j + 2] << 16 | (uint32_t)(unsigned char)s[4 * j + 3] << 24;
          memcpy(&out[j], &u, 4);
        }
      if (!store_finite(out, d)) return not_finite(out, d, msg, ml);
    }
    return NULL;
  }
  if (lua_type(L, idx) != LUA_TTABLE) { snprintf(msg, ml, "a vector must be a list of numbers or a packed float32 string, got %s", luaL_typename(L, idx)); return "invalid_argument"; }
  lua_Unsigned len = lua_rawlen(L, idx);
  if (len > STORE_MAX_DIM) { snprintf(msg, ml, "a vector has at most %d dimensions, got %llu", STORE_MAX_DIM, (unsigned long long)len); return "invalid_argument"; }
  int d = (int)len;
  if (d == 0) { snprintf(msg, ml, "empty vector"); return "invalid_argument"; }
  if (*dim && d != *dim) { snprintf(msg, ml, "vector has %d dimensions, expected %d", d, *dim); return "dimension_mismatch"; }
  *dim = d;
  for (int j = 1; j <= d; j++) {
    int t = lua_rawgeti(L, idx, j);
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (t != LUA_TNUMBER) { snprintf(msg, ml, "vector component %d is not a number", j); return "invalid_argument"; }
    if (!isfinite(v) || !isfinite((float)v)) { snprintf(msg, ml, "vector component %d is not finite", j); return "invalid_argument"; }
    if (out) out[j - 1] = (float)v;
  }
  return NULL;
}

const char *read_meta(lua_State *L, int idx, Meta *m, char *msg, size_t ml) {
  m->n = 0; m->kv = NULL;
  if (lua_isnil(L, idx)) return NULL;
  if (lua_type(L, idx) != LUA_TTABLE) { snprintf(msg, ml, "metadata must be a table, got %s", luaL_typename(L, idx)); return "invalid_argument"; }
  idx = lua_absindex(L, idx);
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) { n++; lua_pop(L, 1); }
  if (n == 0) return NULL;
  m->kv = calloc((size_t)n, sizeof *m->kv);
  if (!m->kv) { snprintf(msg, ml, "out of memory"); return "invalid_argument"; }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    MetaKV *kv = &m->kv[m->n];
    if (lua_type(L, -2) != LUA_TSTRING) { lua_pop(L, 2); snprintf(msg, ml, "metadata keys must be strings"); return "invalid_argument"; }
    size_t len;
    const char *s = lua_tolstring(L, -2, &len);
    kv->key = bytes_new(s, len);
    m->n++;
    if (!kv->key) { lua_pop(L, 2); snprintf(msg, ml, "out of memory"); return "invalid_argument"; }
    switch (lua_type(L, -1)) {
      case LUA_TSTRING:
        kv->type = MV_STR;
        s = lua_tolstring(L, -1, &len);
        if (!(kv->str = bytes_new(s, len))) { lua_pop(L, 2); snprintf(msg, ml, "out of memory"); return "invalid_argument"; }
        break;
      case LUA_TNUMBER:
        kv->type = MV_NUM; kv->num = lua_tonumber(L, -1);
        if (!isfinite(kv->num)) { lua_pop(L, 2); snprintf(msg, ml, "metadata '%s' is not a finite number", kv->key); return "invalid_argument"; }
        break;
      case LUA_TBOOLEAN: kv->type = MV_BOOL; kv->num = lua_toboolean(L, -1); break;
      default:
        snprintf(msg, ml, "metadata '%s' must be a string, number or boolean (flat), got %s", kv->key, luaL_typename(L, -1));
        lua_pop(L, 2);
        return "invalid_argument";
    }
    lua_pop(L, 1);
  }
  return NULL;
}

const char *check_id(lua_State *L, int idx, char *msg, size_t ml) {
  size_t len;
  if (lua_type(L, idx) != LUA_TSTRING) { snprintf(msg, ml, "an id must be a non-empty string, got %s", luaL_typename(L, idx)); return "invalid_argument"; }
  lua_tolstring(L, idx, &len);
  if (len == 0) { snprintf(msg, ml, "an id must be a non-empty string"); return "invalid_argument"; }
  return NULL;
}


/* The query vectors of the list at idx, each checked and copied once,
 * into a new userdata of nq x *dim floats left on the stack (so nothing
 * leaks if a later check raises).  *dim 0: learnt from the first query. */
float *read_queries(lua_State *L, int idx, int *dim, int *nq) {
  char msg[256];
  const char *code = NULL;
  *nq = (int)lua_rawlen(L, idx);
  if (*dim == 0 && *nq > 0) {               /* the dimension, from the first query */
    lua_rawgeti(L, idx, 1);
    code = read_vector(L, -1, dim, NULL, msg, sizeof msg);
    lua_pop(L, 1);
    if (code) raise_vdb(L, code, "query 1: %s", msg);
  }
  float *q = lua_newuserdatauv(L, (size_t)*nq * (size_t)*dim * sizeof(float) + 1, 0);
  for (int i = 1; i <= *nq; i++) {
    lua_rawgeti(L, idx, i);
    int d = *dim;
    code = read_vector(L, -1, &d, q + (size_t)(i - 1) * *dim, msg, sizeof msg);
    lua_pop(L, 1);
    if (code) raise_vdb(L, code, "query %d: %s", i, msg);
  }
  return q;
}

/* Build a batch from columns: ids, vectors, metadatas?, documents? (lists of
 * n).  dim 0: learn the dimension from the first vector.  anchor: 0, or the
 * stack index of an empty table: packed vectors are then not copied but
 * read where they are (b->src), and each is kept alive in anchor[i], which
 * the caller must hold until the batch is freed. */
Batch *read_batch(lua_State *L, int dim, int ids, int vecs, int metas, int docs, int n, int anchor) {
  char msg[256];
  const char *code = NULL;
  int bad = 0;
  if (dim == 0 && n > 0) {                  /* learn the dimension from the first vector */
    lua_rawgeti(L, vecs, 1);
    code = read_vector(L, -1, &dim, NULL, msg, sizeof msg);
    lua_pop(L, 1);
    if (code) raise_vdb(L, code, "record 1: %s", msg);
  }
  size_t rows = (size_t)(n ? n : 1);
  Batch *b = calloc(1, sizeof *b);
  if (!b) luaL_error(L, "vdb: out of memory");
  b->n = n; b->dim = dim;
  b->ids = calloc(rows, sizeof *b->ids);
  b->docs = calloc(rows, sizeof *b->docs);
  b->metas = calloc(rows, sizeof *b->metas);
  if (anchor) b->src = calloc(rows, sizeof *b->src);
  else b->vecs = malloc(rows * (size_t)dim * sizeof(float));
  if (!b->ids || !b->docs || !b->metas || !(b->src || b->vecs)) { batch_free(b); luaL_error(L, "vdb: out of memory"); }
  /* one pass: check and copy each record; a bad one frees everything */
  for (int i = 1; i <= n && !code; i++) {
    bad = i;
    size_t len;
    const char *s;
    if (lua_rawgeti(L, ids, i) == LUA_TSTRING && (s = lua_tolstring(L, -1, &len), len > 0)) {
      b->ids[i - 1] = bytes_new(s, len);
    } else {
      code = check_id(L, -1, msg, sizeof msg);     /* names what is wrong */
    }
    lua_pop(L, 1);
    if (code) break;
    if (!b->ids[i - 1]) { batch_free(b); luaL_error(L, "vdb: out of memory"); }
    int packed = lua_rawgeti(L, vecs, i) == LUA_TSTRING;
    if (anchor && packed && host_little_endian() && (s = lua_tolstring(L, -1, &len), len == (size_t)dim * 4)
        && store_finite(s, dim)) {                  /* a good packed vector: read in place */
      b->src[i - 1] = s;
      lua_rawseti(L, anchor, i);
    } else {                                        /* a list (or a bad vector: read_vector says why) */
      if (!b->vecs) b->vecs = malloc(rows * (size_t)dim * sizeof(float));
      if (!b->vecs) { lua_pop(L, 1); batch_free(b); luaL_error(L, "vdb: out of memory"); }
      float *row = b->vecs + (size_t)(i - 1) * dim;
      code = read_vector(L, -1, &dim, row, msg, sizeof msg);
      if (b->src) b->src[i - 1] = (const char *)row;
      lua_pop(L, 1);
    }
    if (!code && metas) {
      lua_rawgeti(L, metas, i);
      code = read_meta(L, -1, &b->metas[i - 1], msg, sizeof msg);
      lua_pop(L, 1);
    }
    if (!code && docs) {
      lua_rawgeti(L, docs, i);
      if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &len);
        if (!(b->docs[i - 1] = bytes_new(s, len))) { snprintf(msg, sizeof msg, "out of memory"); code = "invalid_argument"; }
      }
      else if (!lua_isnil(L, -1)) { snprintf(msg, sizeof msg, "a document must be a string, got %s", luaL_typename(L, -1)); code = "invalid_argument"; }
      lua_pop(L, 1);
    }
  }
  if (code) { batch_free(b); raise_vdb(L, code, "record %d: %s", bad, msg); }
  return b;
}

void push_meta(lua_State *L, const Meta *m) {
  lua_createtable(L, 0, m->n);
  for (int i = 0; i < m->n; i++) {
    const MetaKV *kv = &m->kv[i];
    lua_pushlstring(L, kv->key, bytes_len(kv->key));
    if (kv->type == MV_STR) lua_pushlstring(L, kv->str, bytes_len(kv->str));
    else if (kv->type == MV_BOOL) lua_pushboolean(L, kv->num != 0);
    else if (kv->num == (double)(lua_Integer)kv->num && fabs(kv->num) < 9e15) lua_pushinteger(L, (lua_Integer)kv->num);
    else lua_pushnumber(L, kv->num);
    lua_rawset(L, -3);
  }
}

Filter *read_filter(lua_State *L, int idx) {
  char err[256];
  Filter *f = filter_compile(L, idx, err, sizeof err);
  if (!f && err[0]) raise_vdb(L, "invalid_argument", "%s", err);
  return f;
}

char **read_ids(lua_State *L, int idx, int *n) {
  *n = (int)lua_rawlen(L, idx);
  char **ids = calloc((size_t)(*n ? *n : 1), sizeof *ids);
  if (!ids) luaL_error(L, "vdb: out of memory");
  char msg[128];
  for (int i = 1; i <= *n; i++) {
    lua_rawgeti(L, idx, i);
    const char *code = check_id(L, -1, msg, sizeof msg);
    if (code) {
      lua_pop(L, 1);
      bytes_list_free(ids, i - 1);
      raise_vdb(L, code, "ids[%d]: %s", i, msg);
    }
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (!(ids[i - 1] = bytes_new(s, len))) { lua_pop(L, 1); bytes_list_free(ids, i - 1); luaL_error(L, "vdb: out of memory"); }
    lua_pop(L, 1);
  }
  return ids;
}

