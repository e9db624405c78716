/* input.h - reading the Lua arguments of vdb's calls into plain C data,
 * with the contract's checks and error codes (shared by the embedded store
 * and the Chroma backend, so both reject the same calls the same way). */
#ifndef VDB_INPUT_H
#define VDB_INPUT_H
#include <stddef.h>
#include <lua.h>
#include "store.h"

#define ERRORS_KEY "vdb.errors"     /* registry: the prelude's error constructor */

void push_vdb_error(lua_State *L, const char *code, const char *msg);
int  raise_vdb(lua_State *L, const char *code, const char *fmt, ...);

/* Each returns NULL, or an error code with msg filled. */
/* the vector at idx into out[dim] (out may be NULL: check only); *dim 0: learn it */
const char *read_vector(lua_State *L, int idx, int *dim, float *out, char *msg, size_t ml);
const char *read_meta(lua_State *L, int idx, Meta *m, char *msg, size_t ml);
const char *check_id(lua_State *L, int idx, char *msg, size_t ml);

/* These raise a vdb.Error instead. */
/* anchor: 0, or the index of an empty table that keeps alive the Lua
 * strings the batch reads in place (b->src) */
Batch *read_batch(lua_State *L, int dim, int ids, int vecs, int metas, int docs, int n, int anchor);
char **read_ids(lua_State *L, int idx, int *n);   /* byte strings */
/* the query vectors of a list, in a userdata of nq x *dim floats pushed */
float *read_queries(lua_State *L, int idx, int *dim, int *nq);
Filter *read_filter(lua_State *L, int idx);    /* NULL: no filter */

void push_meta(lua_State *L, const Meta *m);

#endif
