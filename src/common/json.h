/*
 * json.h - JSON <-> Lua values through cJSON (Debian's libcjson).
 * Shared by async (async.json, http responses) and vdb (the Chroma backend).
 */
#ifndef LUA_ASYNC_JSON_H
#define LUA_ASYNC_JSON_H

#include <stddef.h>
#include <lua.h>
#include <cjson/cJSON.h>

/* Parse JSON text that may hold \u0000 escapes: nul receives what
 * json_push needs to give those NULs back (end as cJSON_ParseWithLengthOpts). */
cJSON *json_parse(const char *s, size_t len, const char **end, char nul[4]);

/* Push v as a Lua value: objects and arrays as tables, JSON null as
 * json.null (a light userdata), integral numbers within 2^53 as integers.
 * nul: from json_parse, or NULL. */
void json_push(lua_State *L, const cJSON *v, const char *nul);
void json_push_string(lua_State *L, const char *s, const char *nul);

/* n bytes as a quoted JSON string into out (room for 6 * n + 3 bytes):
 * its length.  Control characters and NULs are escaped, other bytes kept. */
size_t json_quote(char *out, const char *s, size_t n);

/* A number's JSON text: integers exactly, floats in the shortest form that
 * reads back to the same double (float32 values therefore round-trip).
 * buf needs 32 bytes; returns 0 for NaN or infinity. */
int json_format_number(lua_State *L, int idx, char *buf);
int json_format_double(double d, char *buf);   /* the same for a double */

/* A float32 as text that reads back to the same float (9 digits, trailing
 * zeros dropped) into buf (32 bytes): its length, 0 for NaN or infinity. */
int json_format_float32(float f, char *buf);

/* Build a cJSON tree from the Lua value at idx; NULL with err filled when
 * the value cannot be JSON (a function, NaN, a cycle, mixed keys...). */
cJSON *json_from_lua(lua_State *L, int idx, char *err, size_t errlen);

/* Set encode, decode and null in the table on top of the stack. */
void json_open(lua_State *L);

#endif
