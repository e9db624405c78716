/* wire.h - the Chroma backend's request bodies and answers (wire.c) */
#ifndef VDB_WIRE_H
#define VDB_WIRE_H
#include <lua.h>

/* add core.wire_* to the table on top of the stack */
void wire_open(lua_State *L);

#endif
