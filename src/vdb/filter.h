/* filter.h - Chroma-style `where` filters: compiled from a Lua table on the
 * loop thread, evaluated on the thread pool against C metadata. */
#ifndef VDB_FILTER_H
#define VDB_FILTER_H
#include <lua.h>
#include "store.h"

/* NULL with err[0] == 0: no filter (nil or {}); NULL with err set: invalid */
Filter *filter_compile(lua_State *L, int idx, char *err, size_t errlen);

#endif
