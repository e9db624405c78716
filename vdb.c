/*
 * vdb.c - luaopen_vdb: the embedded vector store's Lua bindings.
 *
 * Arguments are read and checked here, on the loop thread, into an Op of
 * plain C data (src/vdb/input.c, src/vdb/ops.h); the work then runs on
 * libuv's thread pool (src/vdb/ops.c), a file: store's writes wait for
 * their fsync (src/vdb/commit.c), and the call's future (from the C API
 * that `async` publishes) is settled here from the Op.
 * src/vdb/prelude.lua builds the Lua-facing objects (databases,
 * collections, errors) on top.
 */
#define _GNU_SOURCE      /* dladdr, RTLD_NODELETE */
#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include "include/lua_async.h"
#include "src/vdb/store.h"
#include "src/vdb/filter.h"
#include "src/vdb/log.h"
#include "src/vdb/input.h"
#include "src/vdb/chroma/wire.h"
#include "src/vdb/index/index.h"
#include "src/vdb/ops.h"
#include "vdb_prelude.h"      /* generated: const char vdb_prelude[] */
#include "vdb_chroma.h"       /* generated: const char vdb_chroma[] */

#define COLL_MT "vdb.collection"
#define MODULE_MT "vdb.module"

static void module_unref(Module *m) { if (m && --m->refs == 0) free(m); }

typedef struct CollRef { Collection *c; } CollRef;

static Collection *check_coll(lua_State *L, int idx) {
  CollRef *h = luaL_checkudata(L, idx, COLL_MT);
  return h->c;
}

#define LOG_MT "vdb.log"
typedef struct LogRef { Log *lg; } LogRef;

static void coll_unref(Collection *c) {
  if (!c || --c->refs > 0) return;
  log_unref(c->log);
  index_free(c->index);
  store_free(c);
}

static Log *check_log(lua_State *L, int idx) {
  LogRef *h = luaL_checkudata(L, idx, LOG_MT);
  if (!h->lg) luaL_error(L, "vdb: the log is closed");
  return h->lg;
}

static int log_gc(lua_State *L) {
  LogRef *h = luaL_checkudata(L, 1, LOG_MT);
  log_unref(h->lg);
  h->lg = NULL;
  return 0;
}

static int coll_gc(lua_State *L) {
  CollRef *h = luaL_checkudata(L, 1, COLL_MT);
  if (h->c) { coll_unref(h->c); h->c = NULL; }
  return 0;
}

/* core.new_collection(name, dim, metric) */
static int l_new_collection(lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  lua_Integer dim = luaL_optinteger(L, 2, 0);
  int metric = (int)luaL_checkinteger(L, 3);
  if (dim < 0 || dim > STORE_MAX_DIM) return raise_vdb(L, "invalid_argument", "dim must be 1 to %d", STORE_MAX_DIM);
  CollRef *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->c = store_new(name, len, (int)dim, metric);
  if (h->c && !(h->c->index = index_exact.build(h->c))) { store_free(h->c); h->c = NULL; }
  if (!h->c) return luaL_error(L, "vdb: out of memory");
  h->c->refs = 1;
  luaL_setmetatable(L, COLL_MT);
  return 1;
}

static int l_dim(lua_State *L) {
  lua_pushinteger(L, check_coll(L, 1)->dim);
  return 1;
}


static void push_bytes(lua_State *L, const char *b) { lua_pushlstring(L, b, bytes_len(b)); }

static void push_outrec(lua_State *L, Op *op, OutRec *o, int hit) {
  lua_createtable(L, 0, 5);
  push_bytes(L, o->id); lua_setfield(L, -2, "id");
  if (hit) {
    lua_pushnumber(L, o->distance); lua_setfield(L, -2, "distance");
    lua_pushnumber(L, op->c->metric == METRIC_L2 ? -(double)o->distance : 1.0 - (double)o->distance);
    lua_setfield(L, -2, "score");
  }
  if (op->inc_meta) { push_meta(L, &o->meta); lua_setfield(L, -2, "metadata"); }
  if (o->doc) { push_bytes(L, o->doc); lua_setfield(L, -2, "document"); }
  if (o->vec) {
    lua_createtable(L, op->c->dim, 0);
    for (int j = 0; j < op->c->dim; j++) { lua_pushnumber(L, o->vec[j]); lua_rawseti(L, -2, j + 1); }
    lua_setfield(L, -2, "vector");
  }
}

/* L NULL: the state is closing, only C data is freed */
static void op_free(lua_State *L, Op *op) {
  if (L) luaL_unref(L, LUA_REGISTRYINDEX, op->anchor);   /* the worker is done with the batch */
  if (op->out) {
    size_t n = op->kind == OP_SEARCH ? (size_t)op->nq * op->k : op->nout;
    for (size_t i = 0; i < n; i++) {
      bytes_free(op->out[i].id); free(op->out[i].vec); bytes_free(op->out[i].doc); meta_free(&op->out[i].meta);
    }
  }
  bytes_list_free(op->ids, op->nids);
  free(op->out); free(op->nhits); free(op->queries);
  batch_free(op->batch);
  filter_free(op->filter);
  coll_unref(op->c);
  for (int i = 0; i < op->ncols; i++) coll_unref(op->cols[i]);
  free(op->cols);
  opened_free(&op->opened);
  if (op->kind == OP_OPEN) log_close(op->log);   /* opened, never handed to Lua (the state closed) */
  else log_unref(op->log);
  free(op->path);
  bytes_free(op->name);
  module_unref(op->mod);
  free(op);
}

/* what opening reported: nil if the file was clean, else a table */
static void push_report(lua_State *L, const Opened *o) {
  const Replay *rp = &o->replay;
  if (!o->report[0]) { lua_pushnil(L); return; }
  lua_createtable(L, 0, 8);
  lua_pushstring(L, o->report); lua_setfield(L, -2, "message");
  lua_pushinteger(L, (lua_Integer)rp->torn); lua_setfield(L, -2, "torn_bytes");
  lua_pushinteger(L, (lua_Integer)rp->damaged); lua_setfield(L, -2, "skipped_records");
  lua_pushinteger(L, (lua_Integer)rp->damaged_bytes); lua_setfield(L, -2, "skipped_bytes");
  if (o->kept) { lua_pushstring(L, o->kept); lua_setfield(L, -2, "original"); }
  lua_createtable(L, rp->nids, 0);
  for (int i = 0; i < rp->nids; i++) { push_bytes(L, rp->ids[i]); lua_rawseti(L, -2, i + 1); }
  lua_setfield(L, -2, "skipped_ids");
  lua_pushinteger(L, (lua_Integer)rp->more_ids); lua_setfield(L, -2, "more_skipped_ids");
}

/* OP_OPEN done: the log handle, the collections found, the report */
static void push_opened(lua_State *L, Op *op) {
  Replay *rp = &op->opened.replay;
  LogRef *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->lg = op->log;
  op->log->refs = 1;
  op->log = NULL;                             /* the handle owns it now */
  luaL_setmetatable(L, LOG_MT);
  lua_createtable(L, rp->ncols, 0);
  for (int i = 0; i < rp->ncols; i++) {
    Collection *c = rp->cols[i];
    lua_createtable(L, 0, 4);
    push_bytes(L, c->name); lua_setfield(L, -2, "name");
    lua_pushinteger(L, c->dim); lua_setfield(L, -2, "dim");
    lua_pushinteger(L, c->metric); lua_setfield(L, -2, "metric");
    CollRef *ch = lua_newuserdatauv(L, sizeof *ch, 0);
    ch->c = c;
    c->refs = 1;
    c->log = h->lg;
    h->lg->refs++;
    luaL_setmetatable(L, COLL_MT);
    lua_setfield(L, -2, "h");
    lua_rawseti(L, -2, i + 1);
  }
  rp->ncols = 0;                              /* handed over */
  push_report(L, &op->opened);
}

static void finish_op(Op *op);

static void after_work(uv_work_t *req, int status) {
  Op *op = req->data;
  if (op->mod->closing) { op_free(NULL, op); return; }
  if (status != 0 && !op->err_code[0]) op_fail(op, "invalid_argument", "cancelled");
  Log *lg = op->kind == OP_META ? op->log : op->c ? op->c->log : NULL;
  if (!op->err_code[0] && op->seq && lg) {
    int d = log_durable(lg, op->seq);
    if (d < 0) op_fail(op, "unavailable", "writing the log failed (disk full or I/O error): the store now refuses writes");
    else if (d == 0) { commit_wait(op, lg); return; }
  }
  finish_op(op);
}

/* ---- group commit: one flush job at a time, for every waiting op -------- */


/* A collection's dimension is fixed by the first insert that succeeds.
 * Until then the dimension of the first insert accepted is held for it and
 * for every insert accepted after it; it is undone only when all of them
 * have failed. */
static void settle_dim(Op *op) {
  Collection *c = op->c;
  if (op->kind != OP_PUT || !op->learnt_dim) return;
  c->dim_learning--;
  if (!op->err_code[0]) c->dim_settled = 1;
  else if (c->dim_learning == 0 && !c->dim_settled) {
    pthread_rwlock_wrlock(&c->lock);         /* no insert is in flight: readers only, and briefly */
    c->dim = 0;
    pthread_rwlock_unlock(&c->lock);
  }
}

static void finish_op(Op *op) {
  if (op->mod->closing) { op_free(NULL, op); return; }
  lua_State *L = op->api->state(op->fut);
  settle_dim(op);
  if (op->err_code[0]) {
    push_vdb_error(L, op->err_code, op->err_msg);
    op->api->reject(op->fut);
  } else if (op->kind == OP_OPEN) {
    push_opened(L, op);
    op->api->resolve(op->fut, 3);
  } else if (op->kind == OP_GET) {
    lua_createtable(L, (int)op->nout, 0);
    for (size_t i = 0; i < op->nout; i++) { push_outrec(L, op, &op->out[i], 0); lua_rawseti(L, -2, (lua_Integer)i + 1); }
    op->api->resolve(op->fut, 1);
  } else if (op->kind == OP_SEARCH) {
    lua_createtable(L, op->nq, 0);
    for (int q = 0; q < op->nq; q++) {
      lua_createtable(L, (int)op->nhits[q], 0);
      for (size_t j = 0; j < op->nhits[q]; j++) {
        push_outrec(L, op, &op->out[(size_t)q * op->k + j], 1);
        lua_rawseti(L, -2, (lua_Integer)j + 1);
      }
      lua_rawseti(L, -2, q + 1);
    }
    op->api->resolve(op->fut, 1);
  } else {
    lua_pushinteger(L, op->result);
    op->api->resolve(op->fut, 1);
  }
  op_free(L, op);
}

static Op *op_new(lua_State *L, int kind, Collection *c) {
  const lua_async_api *api = lua_async_get_api(L);
  if (!api) luaL_error(L, "vdb: require \"async\" first");
  Op *op = calloc(1, sizeof *op);
  if (!op) luaL_error(L, "vdb: out of memory");
  op->mod = *(Module **)lua_touserdata(L, lua_upvalueindex(1));
  op->mod->refs++;
  op->loop = api->loop(L);
  op->kind = kind; op->c = c; op->api = api; op->limit = -1; op->anchor = LUA_NOREF;
  op->inc_meta = op->inc_doc = 1;
  op->finish = finish_op;
  if (c) c->refs++;
  op->req.data = op;
  return op;
}

/* queue the op and push its future */
static int op_start(lua_State *L, Op *op) {
  op->fut = op->api->future_new(L);
  int rc = uv_queue_work(op->loop, &op->req, op_work, after_work);
  if (rc != 0) {
    lua_pop(L, 1);
    op_free(L, op);
    return luaL_error(L, "vdb: cannot queue work: %s", uv_strerror(rc));
  }
  return 1;
}

/* core.put(coll, ids, vectors, metadatas?, documents?, n, upsert) */
static int l_put(lua_State *L) {
  Collection *c = check_coll(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer count = luaL_checkinteger(L, 6);
  if (count < 0 || count > INT_MAX) return raise_vdb(L, "invalid_argument", "a batch holds at most %d records", INT_MAX);
  int n = (int)count;
  lua_settop(L, 7);
  lua_createtable(L, n, 0);                  /* keeps alive the packed vectors read in place */
  Batch *b = read_batch(L, c->dim, 2, 3, lua_istable(L, 4) ? 4 : 0, lua_istable(L, 5) ? 5 : 0, n, 8);
  int learnt = c->dim == 0 || c->dim_learning > 0;
  if (c->dim == 0 && b->dim > STORE_MAX_DIM) {
    batch_free(b);
    return raise_vdb(L, "invalid_argument", "record 1: a vector has at most %d dimensions", STORE_MAX_DIM);
  }
  if (c->dim == 0) {                         /* held for it until an insert succeeds (settle_dim) */
    pthread_rwlock_wrlock(&c->lock);         /* the collection is empty: readers are brief */
    c->dim = b->dim;
    pthread_rwlock_unlock(&c->lock);
  }
  if (learnt) c->dim_learning++;
  Op *op = op_new(L, OP_PUT, c);
  op->batch = b;
  op->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  op->learnt_dim = learnt;
  op->upsert = lua_toboolean(L, 7);
  return op_start(L, op);
}

/* core.get(coll, ids?, where?, limit?, offset?, include_vectors?) */
static int l_get(lua_State *L) {
  Collection *c = check_coll(L, 1);
  lua_Integer limit = luaL_optinteger(L, 4, -1), offset = luaL_optinteger(L, 5, 0);
  if (!lua_isnoneornil(L, 4) && limit < 0) return raise_vdb(L, "invalid_argument", "limit must be >= 0");
  if (offset < 0) return raise_vdb(L, "invalid_argument", "offset must be >= 0");
  Filter *f = read_filter(L, 3);
  int nids = 0;
  char **ids = NULL;
  if (lua_istable(L, 2)) ids = read_ids(L, 2, &nids);
  Op *op = op_new(L, OP_GET, c);
  op->ids = ids; op->nids = nids; op->filter = f;
  op->limit = limit; op->offset = offset;
  op->inc_vec = lua_toboolean(L, 6);
  return op_start(L, op);
}

/* core.delete(coll, ids?, where?) */
static int l_delete(lua_State *L) {
  Collection *c = check_coll(L, 1);
  Filter *f = read_filter(L, 3);
  int nids = 0;
  char **ids = NULL;
  if (lua_istable(L, 2)) ids = read_ids(L, 2, &nids);
  else if (!f) return raise_vdb(L, "invalid_argument", "delete needs ids or a where filter");
  Op *op = op_new(L, OP_DELETE, c);
  op->ids = ids; op->nids = nids; op->filter = f;
  return op_start(L, op);
}

static int l_count(lua_State *L) {
  Collection *c = check_coll(L, 1);
  return op_start(L, op_new(L, OP_COUNT, c));
}

/* core.search(coll, queries, k, where?, inc_meta, inc_doc, inc_vec) */
static int l_search(lua_State *L) {
  Collection *c = check_coll(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer k = luaL_checkinteger(L, 3);
  if (k < 0) return raise_vdb(L, "invalid_argument", "top_k must be >= 0, got %lld", (long long)k);
  int nq, dim = c->dim;
  const float *qs = read_queries(L, 2, &dim, &nq);
  Filter *f = read_filter(L, 4);
  Op *op = op_new(L, OP_SEARCH, c);
  op->filter = f; op->k = (size_t)k; op->nq = nq;
  op->inc_meta = lua_toboolean(L, 5); op->inc_doc = lua_toboolean(L, 6); op->inc_vec = lua_toboolean(L, 7);
  size_t bytes = (size_t)nq * (size_t)dim * sizeof(float);
  op->queries = malloc(bytes + 1);
  if (!op->queries) { op_free(L, op); return luaL_error(L, "vdb: out of memory"); }
  memcpy(op->queries, qs, bytes);
  op->qdim = dim;
  return op_start(L, op);
}

/* core.open(path, recover): a future giving log handle, collections, report */
static int l_open(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  if (strlen(path) != len) return raise_vdb(L, "invalid_argument", "a file: path cannot hold a NUL byte");
  Op *op = op_new(L, OP_OPEN, NULL);
  op->recover = lua_toboolean(L, 2);
  op->path = strdup(path);
  return op_start(L, op);
}

/* core.attach(log, coll): a new collection of a file: database */
static int l_attach(lua_State *L) {
  Log *lg = check_log(L, 1);
  Collection *c = check_coll(L, 2);
  if (!c->log) { c->log = lg; lg->refs++; }
  return 0;
}

/* core.log_meta(log, "create"|"drop", name, dim, metric): a future */
static int l_log_meta(lua_State *L) {
  Log *lg = check_log(L, 1);
  const char *kind = luaL_checkstring(L, 2);
  Op *op = op_new(L, OP_META, NULL);
  op->log = lg; lg->refs++;
  op->meta_kind = strcmp(kind, "create") == 0 ? LOG_CREATE : LOG_DROP;
  size_t len;
  const char *name = luaL_checklstring(L, 3, &len);
  op->name = bytes_new(name, len);
  op->meta_dim = (int)luaL_optinteger(L, 4, 0);
  op->meta_metric = (int)luaL_optinteger(L, 5, 0);
  return op_start(L, op);
}

/* core.compact(log, {collection handles}, closing): a future giving 1 if rewritten */
static int l_compact(lua_State *L) {
  Log *lg = check_log(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = (int)lua_rawlen(L, 2);
  Op *op = op_new(L, OP_COMPACT, NULL);
  op->log = lg; lg->refs++;
  pthread_mutex_lock(&lg->m);
  op->epoch = lg->epoch;
  pthread_mutex_unlock(&lg->m);
  op->skip = lg->meta_busy > 0;              /* cols may lack a collection whose creation is logged */
  op->closing = lua_toboolean(L, 3);
  op->cols = calloc((size_t)(n ? n : 1), sizeof *op->cols);
  for (int i = 1; i <= n && op->cols; i++) {
    lua_rawgeti(L, 2, i);
    Collection *c = check_coll(L, -1);
    lua_pop(L, 1);
    c->refs++;
    op->cols[op->ncols++] = c;
  }
  return op_start(L, op);
}

/* core.compact_due(log): is the dead space worth a compaction */
static int l_compact_due(lua_State *L) {
  lua_pushboolean(L, log_compact_due(check_log(L, 1), COMPACT_MIN_DEAD));
  return 1;
}

/* core.meta_mark(log, begins): a creation or drop begins, or has ended
 * (the database's list of collections is up to date): compactions taken
 * across it give up */
static int l_meta_mark(lua_State *L) {
  Log *lg = check_log(L, 1);
  lg->meta_busy += lua_toboolean(L, 2) ? 1 : -1;
  pthread_mutex_lock(&lg->m);
  lg->epoch++;
  pthread_mutex_unlock(&lg->m);
  return 0;
}

/* core.close_log(log, {collection handles}): detach and release the file */
static int l_close_log(lua_State *L) {
  LogRef *h = luaL_checkudata(L, 1, LOG_MT);
  if (!h->lg) return 0;
  if (lua_istable(L, 2)) {
    for (int i = 1; i <= (int)lua_rawlen(L, 2); i++) {
      lua_rawgeti(L, 2, i);
      Collection *c = check_coll(L, -1);
      lua_pop(L, 1);
      if (c->log == h->lg) { c->log = NULL; log_unref(h->lg); }
    }
  }
  log_shutdown(h->lg);                        /* dropped collections may still point here */
  log_unref(h->lg);
  h->lg = NULL;
  return 0;
}

static int l_log_stats(lua_State *L) {
  Log *lg = check_log(L, 1);
  pthread_mutex_lock(&lg->m);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)lg->fsyncs); lua_setfield(L, -2, "fsyncs");
  lua_pushinteger(L, (lua_Integer)lg->records); lua_setfield(L, -2, "replayed");
  lua_pushinteger(L, (lua_Integer)lg->bytes); lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, (lua_Integer)lg->live); lua_setfield(L, -2, "live_bytes");
  lua_pushinteger(L, (lua_Integer)lg->compactions); lua_setfield(L, -2, "compactions");
  pthread_mutex_unlock(&lg->m);
  return 1;
}

static int l_set_errors(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, ERRORS_KEY);
  return 0;
}

/* The state is closing: operations still in flight finish without it, and
 * their code must stay loaded until they do. */
static int module_gc(lua_State *L) {
  Module **box = luaL_checkudata(L, 1, MODULE_MT);
  Module *m = *box;
  if (!m) return 0;
  m->closing = 1;
  if (m->refs > 1) {
    Dl_info self;
    if (dladdr((void *)module_gc, &self) && self.dli_fname) dlopen(self.dli_fname, RTLD_NOW | RTLD_NODELETE | RTLD_NOLOAD);
  }
  module_unref(m);
  *box = NULL;
  return 0;
}

int luaopen_vdb(lua_State *L) {
  static const luaL_Reg core[] = {
    {"new_collection", l_new_collection}, {"dim", l_dim}, {"put", l_put}, {"get", l_get},
    {"delete", l_delete}, {"count", l_count}, {"search", l_search}, {"set_errors", l_set_errors},
    {"open", l_open}, {"attach", l_attach}, {"log_meta", l_log_meta}, {"compact", l_compact},
    {"close_log", l_close_log}, {"log_stats", l_log_stats}, {"compact_due", l_compact_due},
    {"meta_mark", l_meta_mark},
    {NULL, NULL}
  };
  /* async first: its loop, made before the module's state, is then
   * finalised after it (finalisers run newest first) */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "async");
  lua_call(L, 1, 0);
  luaL_newmetatable(L, COLL_MT);
  lua_pushcfunction(L, coll_gc); lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, LOG_MT);
  lua_pushcfunction(L, log_gc); lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, vdb_prelude, sizeof vdb_prelude - 1, "@vdb/prelude.lua") != LUA_OK)
    return lua_error(L);
  luaL_newlibtable(L, core);
  Module **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = calloc(1, sizeof **box);
  if (!*box) return luaL_error(L, "vdb: out of memory");
  (*box)->refs = 1;
  luaL_newmetatable(L, MODULE_MT);
  lua_pushcfunction(L, module_gc); lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "vdb.module.state");   /* lives as long as the state */
  luaL_setfuncs(L, core, 1);                       /* each with the module's state as upvalue 1 */
  wire_open(L);
  if (luaL_loadbuffer(L, vdb_chroma, sizeof vdb_chroma - 1, "@vdb/chroma.lua") != LUA_OK)
    return lua_error(L);
  lua_setfield(L, -2, "chroma");             /* the server backend, loaded by the prelude */
  lua_call(L, 1, 1);
  return 1;
}
