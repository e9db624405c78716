/* copy.h - Lua values from one state to another, through plain bytes.
 *
 * What travels: nil, booleans, integers, floats, strings (every byte), and
 * tables of these, nested, with no cycle.  Anything else is refused with a
 * message that says what it is and where it sits ("argument #2.names[3]
 * is a function").  The bytes are made in one state and read in another,
 * possibly on another thread: no Lua object is shared. */
#ifndef ASYNC_IO_COPY_H
#define ASYNC_IO_COPY_H

#include <stddef.h>
#include <lua.h>

typedef struct Bytes { char *p; size_t n, cap; } Bytes;

/* append the n values from idx on, named "what #first", "what #first+1"...
 * in messages; 0, or -1 with a message in err */
int  copy_out(lua_State *L, int idx, int n, const char *what, int first, Bytes *out, char *err, size_t errlen);
/* push the values in b; their count, or -1 (damaged bytes, or no stack) */
int  copy_in(lua_State *L, const Bytes *b);
void bytes_clear(Bytes *b);

#endif
