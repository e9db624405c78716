/*
 * wire.c - the Chroma backend's wire format: request bodies built from
 * validated C data, and answers turned into the same Lua results the
 * embedded store gives.  JSON goes through cJSON (src/common/json.c); the Lua side
 * (src/vdb/chroma/client.lua) sends the bodies with async.http.
 *
 * Records are sent as Chroma's pre-flight check allows: embeddings as
 * base64 of little-endian float32 (far less work on both sides than JSON
 * numbers), batches split by record count and by bytes.  Queries must be
 * JSON numbers: each float32 is printed in 9 digits, which read back exactly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "json.h"
#include "../input.h"
#include "../filter.h"
#include "wire.h"

/* ---- building bodies ----------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64 of n bytes into out (4 * ceil(n / 3) + 1 bytes), NUL-terminated */
static void base64(const unsigned char *in, size_t n, char *out) {
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    *out++ = B64[v >> 18]; *out++ = B64[(v >> 12) & 63]; *out++ = B64[(v >> 6) & 63]; *out++ = B64[v & 63];
  }
  if (i < n) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);
    *out++ = B64[v >> 18]; *out++ = B64[(v >> 12) & 63];
    *out++ = i + 1 < n ? B64[(v >> 6) & 63] : '=';
    *out++ = '=';
  }
  *out = 0;
}

/* a float32 vector as little-endian bytes (the wire's order on any host) */
static void le_bytes(const float *v, int dim, unsigned char *out) {
  for (int j = 0; j < dim; j++) {
    uint32_t u;
    memcpy(&u, &v[j], 4);
    out[4 * j] = (unsigned char)u; out[4 * j + 1] = (unsigned char)(u >> 8);
    out[4 * j + 2] = (unsigned char)(u >> 16); out[4 * j + 3] = (unsigned char)(u >> 24);
  }
}

/* a JSON string of n bytes (every byte kept: NULs as \u0000) */
static void add_string(luaL_Buffer *b, const char *s, size_t n) {
  char *out = luaL_prepbuffsize(b, 6 * n + 3);
  luaL_addsize(b, json_quote(out, s, n));
}

static void add_bytes(luaL_Buffer *b, const char *s) { add_string(b, s, bytes_len(s)); }

static int has_key(const Meta *m, const char *key, size_t n) {
  for (int i = 0; i < m->n; i++) if (bytes_is(m->kv[i].key, key, n)) return 1;
  return 0;
}

/* key j of the list clear[i] (anchored there), or NULL; the stack as it was
 * (a luaL_Buffer is in use: every stack use must balance) */
static const char *cleared_key(lua_State *L, int clear, int i, int j, size_t *len) {
  const char *key = NULL;
  if (lua_rawgeti(L, clear, i) == LUA_TTABLE) {
    if (lua_rawgeti(L, -1, j) == LUA_TSTRING) key = lua_tolstring(L, -1, len);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return key;
}

static int cleared_count(lua_State *L, int clear, int i) {
  int n = clear && lua_rawgeti(L, clear, i) == LUA_TTABLE ? (int)lua_rawlen(L, -1) : -1;
  if (clear) lua_pop(L, 1);
  return n;
}

/* A record's metadata as a JSON object.  On an upsert, clear[i] lists the
 * old keys the new map drops: they are sent as null, so that Chroma (which
 * merges metadata) ends with the new map only. */
static void add_meta(lua_State *L, luaL_Buffer *b, const Meta *m, int clear, int i) {
  char num[32];
  int n = 0, nclear = cleared_count(L, clear, i);
  luaL_addchar(b, '{');
  for (int k = 0; k < m->n; k++) {
    const MetaKV *kv = &m->kv[k];
    if (n++) luaL_addchar(b, ',');
    add_bytes(b, kv->key);
    luaL_addchar(b, ':');
    if (kv->type == MV_STR) add_bytes(b, kv->str);
    else if (kv->type == MV_BOOL) luaL_addstring(b, kv->num != 0 ? "true" : "false");
    else luaL_addstring(b, json_format_double(kv->num, num) ? num : "null");
  }
  for (int j = 1; j <= nclear; j++) {
    size_t klen;
    const char *key = cleared_key(L, clear, i, j, &klen);
    if (!key || has_key(m, key, klen)) continue;
    if (n++) luaL_addchar(b, ',');
    add_string(b, key, klen);
    luaL_addstring(b, ":null");
  }
  luaL_addchar(b, '}');
}

/* a JSON array of float32 numbers, added to b */
static void add_vector(luaL_Buffer *b, const float *v, int dim) {
  char *out = luaL_prepbuffsize(b, (size_t)dim * 33 + 2), *p = out;
  *p++ = '[';
  for (int j = 0; j < dim; j++) {
    if (j) *p++ = ',';
    p += json_format_float32(v[j], p);
  }
  *p++ = ']';
  luaL_addsize(b, (size_t)(p - out));
}

static size_t meta_bytes(const Meta *m) {
  size_t n = 2;
  for (int i = 0; i < m->n; i++)
    n += bytes_len(m->kv[i].key) * 6 + 8 + (m->kv[i].type == MV_STR ? bytes_len(m->kv[i].str) * 6 + 2 : 24);
  return n;
}

/* records [from, to) of b as an add/upsert body, written straight into a
 * buffer of about `size` bytes (a 5,461-record body is several MB: no tree) */
static void push_records_body(lua_State *L, int clear, Batch *b, int from, int to, size_t size,
                              unsigned char *bytes) {
  int has_meta = 0, has_doc = 0;
  for (int i = from; i < to; i++) {
    has_meta |= b->metas[i].n > 0;
    if (clear) { has_meta |= lua_rawgeti(L, clear, i + 1) == LUA_TTABLE; lua_pop(L, 1); }
    has_doc |= b->docs[i] != NULL;
  }
  size_t vlen = (size_t)b->dim * 4;
  luaL_Buffer buf;
  luaL_buffinitsize(L, &buf, size);
  luaL_addstring(&buf, "{\"ids\":[");
  for (int i = from; i < to; i++) {
    if (i > from) luaL_addchar(&buf, ',');
    add_bytes(&buf, b->ids[i]);
  }
  luaL_addstring(&buf, "],\"embeddings\":[");
  for (int i = from; i < to; i++) {
    le_bytes(b->vecs + (size_t)i * b->dim, b->dim, bytes);
    char *out = luaL_prepbuffsize(&buf, vlen / 3 * 4 + 8);
    out[0] = i > from ? ',' : ' ';
    out[1] = '"';                             /* base64 never needs escaping */
    base64(bytes, vlen, out + 2);
    size_t len = strlen(out + 2);
    out[2 + len] = '"';
    luaL_addsize(&buf, len + 3);
  }
  luaL_addchar(&buf, ']');
  if (has_meta) {
    luaL_addstring(&buf, ",\"metadatas\":[");
    for (int i = from; i < to; i++) {
      if (i > from) luaL_addchar(&buf, ',');
      if (b->metas[i].n || cleared_count(L, clear, i + 1) >= 0) add_meta(L, &buf, &b->metas[i], clear, i + 1);
      else luaL_addstring(&buf, "null");
    }
    luaL_addchar(&buf, ']');
  }
  if (has_doc) {
    luaL_addstring(&buf, ",\"documents\":[");
    for (int i = from; i < to; i++) {
      if (i > from) luaL_addchar(&buf, ',');
      if (b->docs[i]) add_bytes(&buf, b->docs[i]); else luaL_addstring(&buf, "null");
    }
    luaL_addchar(&buf, ']');
  }
  luaL_addchar(&buf, '}');
  luaL_pushresult(&buf);
}

/* A validated batch waiting to be sent: its parts' bodies are written one
 * at a time, just before each is sent, so a 100,000-record insert never
 * holds more than one part's JSON. */
#define PARTS_MT "vdb.wire.parts"
typedef struct Parts {
  Batch *b;
  int nparts;
  int *first;                     /* first record of each part, nparts + 1 entries */
  size_t *size;                   /* a body's expected size */
} Parts;

static int parts_gc(lua_State *L) {
  Parts *p = luaL_checkudata(L, 1, PARTS_MT);
  batch_free(p->b); p->b = NULL;
  free(p->first); p->first = NULL;
  free(p->size); p->size = NULL;
  return 0;
}

/* core.wire_put(dim, ids, vectors, metadatas?, documents?, n, max_count, max_bytes)
 * -> parts, counts (records per part), dim.  Validates exactly as the
 * embedded store does, and refuses an id given twice in the batch. */
static int l_wire_put(lua_State *L) {
  int dim = (int)luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  int n = (int)luaL_checkinteger(L, 6);
  int max_count = (int)luaL_checkinteger(L, 7);
  size_t max_bytes = (size_t)luaL_checkinteger(L, 8);
  if (max_count < 1) max_count = 1;
  Parts *p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  luaL_setmetatable(L, PARTS_MT);                /* from here on, __gc frees what p holds */
  p->b = read_batch(L, dim, 2, 3, lua_istable(L, 4) ? 4 : 0, lua_istable(L, 5) ? 5 : 0, n, 0);
  Batch *b = p->b;
  lua_createtable(L, 0, n);                    /* ids seen */
  for (int i = 0; i < n; i++) {
    lua_pushlstring(L, b->ids[i], bytes_len(b->ids[i]));
    if (lua_rawget(L, -2) != LUA_TNIL)
      return raise_vdb(L, "invalid_argument", "record %d: id '%.100s' is given twice in the batch (also record %d; nothing was inserted)",
                       i + 1, b->ids[i], (int)lua_tointeger(L, -1));
    lua_pop(L, 1);
    lua_pushlstring(L, b->ids[i], bytes_len(b->ids[i]));
    lua_pushinteger(L, i + 1);
    lua_rawset(L, -3);
  }
  lua_pop(L, 1);
  size_t vlen = (size_t)b->dim * 4;
  p->first = malloc(((size_t)n + 2) * sizeof *p->first);
  p->size = malloc(((size_t)n + 1) * sizeof *p->size);
  if (!p->first || !p->size) return luaL_error(L, "vdb: out of memory");
  lua_newtable(L);                             /* counts */
  for (int from = 0; from < n;) {
    size_t bytes_in = 64;
    int to = from;
    while (to < n && to - from < max_count) {  /* fill by count, then by bytes */
      size_t rec = bytes_len(b->ids[to]) * 6 + 8 + vlen / 3 * 4 + 8 + meta_bytes(&b->metas[to]) +
                   (b->docs[to] ? bytes_len(b->docs[to]) * 6 + 8 : 6);
      if (to > from && bytes_in + rec > max_bytes) break;
      bytes_in += rec;
      to++;
    }
    p->first[p->nparts] = from;
    p->size[p->nparts] = bytes_in;
    p->nparts++;
    lua_pushinteger(L, to - from);
    lua_rawseti(L, -2, p->nparts);
    from = to;
  }
  p->first[p->nparts] = n;
  lua_pushinteger(L, b->dim);
  return 3;
}

/* core.wire_part(parts, i, clear?) -> the body of part i.
 * clear[r]: metadata keys to set to null in record r (see with_cleared). */
static int l_wire_part(lua_State *L) {
  Parts *p = luaL_checkudata(L, 1, PARTS_MT);
  int i = (int)luaL_checkinteger(L, 2);
  int clear = lua_istable(L, 3) ? 3 : 0;
  luaL_argcheck(L, p->b && i >= 1 && i <= p->nparts, 2, "no such part");
  unsigned char *bytes = lua_newuserdatauv(L, (size_t)p->b->dim * 4 + 1, 0);   /* one vector, little-endian */
  push_records_body(L, clear, p->b, p->first[i - 1], p->first[i], p->size[i - 1], bytes);
  return 1;
}

/* core.wire_query(dim, queries, k, where_json?, meta, doc, vec, max_count, max_bytes)
 * -> bodies (at most max_count queries and about max_bytes each), dim.  where_json: the filter already
 * checked and put in Chroma's shape, as a Lua table. */
static int l_wire_query(lua_State *L) {
  int dim = (int)luaL_checkinteger(L, 1), nq;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer k = luaL_checkinteger(L, 3);
  int meta = lua_toboolean(L, 5), doc = lua_toboolean(L, 6), vec = lua_toboolean(L, 7);
  int max_count = (int)luaL_checkinteger(L, 8);
  lua_Integer max_bytes = luaL_optinteger(L, 9, 32 << 20);
  if (k < 0) return raise_vdb(L, "invalid_argument", "top_k must be >= 0, got %d", (int)k);
  const float *q = read_queries(L, 2, &dim, &nq);
  char err[160];
  if (dim > 0 && max_bytes / (16 * (lua_Integer)dim + 4) < max_count)   /* a float prints in <= 16 bytes */
    max_count = (int)(max_bytes / (16 * (lua_Integer)dim + 4));
  if (max_count < 1) max_count = 1;
  char *where = NULL;                          /* printed once, shared by every body */
  if (lua_istable(L, 4)) {
    cJSON *w = json_from_lua(L, 4, err, sizeof err);
    if (!w) return raise_vdb(L, "invalid_argument", "where: %s", err);
    where = cJSON_PrintUnformatted(w);
    cJSON_Delete(w);
    if (!where) return luaL_error(L, "vdb: out of memory");
  }
  char tail[128];
  if (k > INT32_MAX) k = INT32_MAX;            /* above the collection's size: every record */
  snprintf(tail, sizeof tail, "],\"n_results\":%lld,\"include\":[\"distances\"%s%s%s]",
           (long long)k, meta ? ",\"metadatas\"" : "", doc ? ",\"documents\"" : "", vec ? ",\"embeddings\"" : "");
  lua_newtable(L);
  int nbodies = 0;
  for (int from = 1; from <= nq; from += max_count) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "{\"query_embeddings\":[");
    for (int i = from; i <= nq && i < from + max_count; i++) {
      if (i > from) luaL_addchar(&b, ',');
      add_vector(&b, q + (size_t)(i - 1) * dim, dim);
    }
    luaL_addstring(&b, tail);
    if (where) { luaL_addstring(&b, ",\"where\":"); luaL_addstring(&b, where); }
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
    lua_rawseti(L, -2, ++nbodies);
  }
  cJSON_free(where);
  lua_pushinteger(L, dim);
  return 2;
}

/* core.check_where(where): the embedded store's checks, nothing kept */
static int l_check_where(lua_State *L) {
  filter_free(read_filter(L, 1));
  return 0;
}

/* core.check_ids(ids): each a non-empty string */
static int l_check_ids(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n;
  char **ids = read_ids(L, 1, &n);
  bytes_list_free(ids, n);
  return 0;
}

/* ---- reading answers ----------------------------------------------------- */

static cJSON *parse_answer(lua_State *L, const char *s, size_t len, char nul[4]) {
  cJSON *root = json_parse(s, len, NULL, nul);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    raise_vdb(L, "server_error", "the server's answer is not the JSON object expected (%d bytes)", (int)len);
  }
  return root;
}

static const cJSON *first(const cJSON *a) { return cJSON_IsArray(a) ? a->child : NULL; }
static const cJSON *next(const cJSON *x) { return x ? x->next : NULL; }

/* a record's fields from the current items of the answer's parallel arrays */
static void push_fields(lua_State *L, const cJSON *m, const cJSON *d, const cJSON *e, int want_meta, const char *nul) {
  if (want_meta) {
    if (cJSON_IsObject(m)) json_push(L, m, nul); else lua_newtable(L);
    lua_setfield(L, -2, "metadata");
  }
  if (cJSON_IsString(d)) { json_push_string(L, d->valuestring, nul); lua_setfield(L, -2, "document"); }
  if (cJSON_IsArray(e)) {
    int n = cJSON_GetArraySize(e), j = 0;
    lua_createtable(L, n, 0);
    for (const cJSON *x = e->child; x; x = x->next) {
      lua_pushnumber(L, (float)x->valuedouble);
      lua_rawseti(L, -2, ++j);
    }
    lua_setfield(L, -2, "vector");
  }
}

/* core.wire_hits(answer, metric, want_meta) -> a list of hit lists */
static int l_wire_hits(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int metric = (int)luaL_checkinteger(L, 2), want_meta = lua_toboolean(L, 3);
  char nul[4];
  cJSON *root = parse_answer(L, s, len, nul);
  const cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "ids");
  const cJSON *dists = cJSON_GetObjectItemCaseSensitive(root, "distances");
  const cJSON *metas = cJSON_GetObjectItemCaseSensitive(root, "metadatas");
  const cJSON *docs = cJSON_GetObjectItemCaseSensitive(root, "documents");
  const cJSON *embs = cJSON_GetObjectItemCaseSensitive(root, "embeddings");
  if (!cJSON_IsArray(ids) || !cJSON_IsArray(dists)) {
    cJSON_Delete(root);
    return raise_vdb(L, "server_error", "the server's query answer has no ids or distances");
  }
  int nq = cJSON_GetArraySize(ids), q = 0;
  lua_createtable(L, nq, 0);
  /* walk the parallel arrays together (cJSON's arrays are lists) */
  const cJSON *qd = first(dists), *qm = first(metas), *qdoc = first(docs), *qe = first(embs);
  for (const cJSON *qi = ids->child; qi; qi = qi->next, qd = next(qd), qm = next(qm), qdoc = next(qdoc), qe = next(qe)) {
    lua_createtable(L, cJSON_GetArraySize(qi), 0);
    const cJSON *d = first(qd), *m = first(qm), *doc = first(qdoc), *e = first(qe);
    int j = 0;
    for (const cJSON *id = first(qi); id; id = id->next, d = next(d), m = next(m), doc = next(doc), e = next(e)) {
      if (!cJSON_IsString(id) || !cJSON_IsNumber(d)) continue;
      float dist = (float)d->valuedouble;      /* Chroma computes in float32 too */
      lua_createtable(L, 0, 5);
      json_push_string(L, id->valuestring, nul); lua_setfield(L, -2, "id");
      lua_pushnumber(L, dist); lua_setfield(L, -2, "distance");
      lua_pushnumber(L, metric == METRIC_L2 ? -(double)dist : 1.0 - (double)dist);
      lua_setfield(L, -2, "score");
      push_fields(L, m, doc, e, want_meta, nul);
      lua_rawseti(L, -2, ++j);
    }
    lua_rawseti(L, -2, ++q);
  }
  cJSON_Delete(root);
  return 1;
}

/* core.wire_records(answer) -> records {id, vector, metadata, document}, in
 * the answer's order */
static int l_wire_records(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char nul[4];
  cJSON *root = parse_answer(L, s, len, nul);
  const cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "ids");
  if (!cJSON_IsArray(ids)) {
    cJSON_Delete(root);
    return raise_vdb(L, "server_error", "the server's get answer has no ids");
  }
  const cJSON *metas = cJSON_GetObjectItemCaseSensitive(root, "metadatas");
  const cJSON *docs = cJSON_GetObjectItemCaseSensitive(root, "documents");
  const cJSON *embs = cJSON_GetObjectItemCaseSensitive(root, "embeddings");
  int want_meta = cJSON_IsArray(metas), n = 0;
  lua_createtable(L, cJSON_GetArraySize(ids), 0);
  const cJSON *m = first(metas), *d = first(docs), *e = first(embs);
  for (const cJSON *id = ids->child; id; id = id->next, m = next(m), d = next(d), e = next(e)) {
    if (!cJSON_IsString(id)) continue;
    lua_createtable(L, 0, 4);
    json_push_string(L, id->valuestring, nul); lua_setfield(L, -2, "id");
    push_fields(L, m, d, e, want_meta, nul);
    lua_rawseti(L, -2, ++n);
  }
  cJSON_Delete(root);
  return 1;
}

void wire_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"wire_put", l_wire_put}, {"wire_part", l_wire_part}, {"wire_query", l_wire_query}, {"check_where", l_check_where},
    {"check_ids", l_check_ids},
    {"wire_hits", l_wire_hits}, {"wire_records", l_wire_records}, {NULL, NULL}
  };
  luaL_setfuncs(L, fns, 0);
  luaL_newmetatable(L, PARTS_MT);
  lua_pushcfunction(L, parts_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}
