/*
 * json.c - JSON <-> Lua values through cJSON.
 *
 * cJSON parses and prints; this file only maps its tree to Lua tables and
 * back.  Numbers are formatted here (cJSON_CreateRaw) so that integers stay
 * exact beyond 2^53 and floats use the shortest round-tripping text.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "json.h"

#define JSON_NULL ((void *)0)     /* json.null: the NULL light userdata */
#define MAX_DEPTH 200

void json_push(lua_State *L, const cJSON *v) {
  luaL_checkstack(L, 3, "JSON nested too deeply");
  if (cJSON_IsObject(v)) {
    lua_createtable(L, 0, 4);
    for (const cJSON *c = v->child; c; c = c->next) {
      json_push(L, c);
      lua_setfield(L, -2, c->string);
    }
  } else if (cJSON_IsArray(v)) {
    int n = cJSON_GetArraySize(v), i = 0;
    lua_createtable(L, n, 0);
    for (const cJSON *c = v->child; c; c = c->next) {
      json_push(L, c);
      lua_rawseti(L, -2, ++i);
    }
  } else if (cJSON_IsString(v)) {
    lua_pushstring(L, v->valuestring);
  } else if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    if (d == floor(d) && fabs(d) <= 9007199254740992.0) lua_pushinteger(L, (lua_Integer)d);
    else lua_pushnumber(L, d);
  } else if (cJSON_IsBool(v)) {
    lua_pushboolean(L, cJSON_IsTrue(v));
  } else {
    lua_pushlightuserdata(L, JSON_NULL);
  }
}

/* Nine significant digits always read back to the same float32.  printf's
 * %.9g gets them through arbitrary-precision arithmetic; for the usual range
 * of vector components one rounding in double precision is exact enough
 * (its error, ~1e-16 relative, is far below a float's half ulp, ~3e-8). */
static const double P10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14 };

/* the digits of m < 10^9 (n = 9 wide, zero-padded) into out */
static void nine_digits(uint32_t m, char *out) {
  static const char PAIRS[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";
  for (int i = 7; i >= 1; i -= 2) {
    uint32_t r = m % 100;
    m /= 100;
    out[i] = PAIRS[2 * r + 1];
    out[i - 1] = PAIRS[2 * r];
  }
  out[8] = out[7], out[7] = out[6], out[6] = out[5], out[5] = out[4], out[4] = out[3],
  out[3] = out[2], out[2] = out[1], out[1] = out[0];
  out[0] = (char)('0' + m);
}

int json_format_float32(float f, char *buf) {
  if (!isfinite(f)) return 0;
  double d = f;
  char *p = buf;
  if (signbit(d)) { *p++ = '-'; d = -d; }
  if (d == 0) { *p++ = '0'; *p = 0; return (int)(p - buf); }
  if (d < 1e-4 || d >= 1e9) return (int)(p - buf) + snprintf(p, 30, "%.9g", d);
  static const double DECADE[] = { 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8 };
  int e = -4;                                 /* floor(log10(d)), without log10 */
  while (e < 8 && d >= DECADE[e + 4]) e++;
  int s = 8 - e;                              /* decimals for 9 significant digits: 0..12 */
  uint64_t m = (uint64_t)(d * P10[s] + 0.5);
  if (m >= 1000000000u) { s--; m = s >= 0 ? (uint64_t)(d * P10[s] + 0.5) : (uint64_t)(d / 10 + 0.5); }
  else if (m < 100000000u) { s++; m = (uint64_t)(d * P10[s] + 0.5); }
  char dig[9];
  nine_digits((uint32_t)m, dig);
  int n = 9;                                  /* significant digits, trailing zeros dropped below */
  if (s <= 0) {                               /* an integer: digits, then -s zeros */
    memcpy(p, dig, 9); p += 9;
    for (; s < 0; s++) *p++ = '0';
  } else {
    while (n > 1 && s > 0 && dig[n - 1] == '0') { n--; s--; }   /* no trailing zeros after the point */
    int ip = n - s;                           /* digits before the point */
    if (ip <= 0) {                            /* 0.000ddd */
      *p++ = '0'; *p++ = '.';
      for (; ip < 0; ip++) *p++ = '0';
      memcpy(p, dig, (size_t)n); p += n;
    } else {                                  /* ddd.ddd (or ddd when s reached 0) */
      memcpy(p, dig, (size_t)ip); p += ip;
      if (s > 0) { *p++ = '.'; memcpy(p, dig + ip, (size_t)s); p += s; }
    }
  }
  *p = 0;
  return (int)(p - buf);
}

int json_format_double(double d, char *buf) {
  char text[32];
  if (!isfinite(d)) return 0;
  for (int prec = 15; prec <= 17; prec++) {    /* 17 digits always round-trip a double */
    snprintf(text, sizeof text, "%.*g", prec, d);
    if (strtod(text, NULL) == d) break;
  }
  memcpy(buf, text, sizeof text);
  return 1;
}

int json_format_number(lua_State *L, int idx, char *buf) {
  if (!lua_isinteger(L, idx)) return json_format_double(lua_tonumber(L, idx), buf);
  char text[32];
  snprintf(text, sizeof text, LUA_INTEGER_FMT, lua_tointeger(L, idx));
  memcpy(buf, text, sizeof text);
  return 1;
}

/* an array is a table whose keys are exactly 1..n with n > 0 */
static int array_length(lua_State *L, int idx) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
  if (n == 0) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
      lua_pop(L, 1);
      return -1;
    }
    count++;
  }
  return count == n ? (int)n : -1;
}

static cJSON *from_lua(lua_State *L, int idx, int depth, char *err, size_t errlen) {
  char num[32];
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return cJSON_CreateNull();
    case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER:
      if (!json_format_number(L, idx, num)) { snprintf(err, errlen, "cannot encode NaN or infinity"); return NULL; }
      return cJSON_CreateRaw(num);
    case LUA_TSTRING: return cJSON_CreateString(lua_tostring(L, idx));
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == JSON_NULL) return cJSON_CreateNull();
      break;
    case LUA_TTABLE: {
      if (depth > MAX_DEPTH) { snprintf(err, errlen, "cannot encode a table nested deeper than %d (a cycle?)", MAX_DEPTH); return NULL; }
      luaL_checkstack(L, 4, "JSON nested too deeply");
      int n = array_length(L, idx);
      cJSON *out = n > 0 ? cJSON_CreateArray() : cJSON_CreateObject();
      if (!out) { snprintf(err, errlen, "out of memory"); return NULL; }
      if (n > 0) {
        for (int i = 1; i <= n; i++) {
          lua_rawgeti(L, idx, i);
          cJSON *c = from_lua(L, -1, depth + 1, err, errlen);
          lua_pop(L, 1);
          if (!c) { cJSON_Delete(out); return NULL; }
          cJSON_AddItemToArray(out, c);
        }
        return out;
      }
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
          snprintf(err, errlen, "cannot encode a table with %s keys (object keys must be strings; arrays are 1..n)",
                   luaL_typename(L, -2));
          lua_pop(L, 2); cJSON_Delete(out); return NULL;
        }
        cJSON *c = from_lua(L, -1, depth + 1, err, errlen);
        if (!c) { lua_pop(L, 2); cJSON_Delete(out); return NULL; }
        cJSON_AddItemToObject(out, lua_tostring(L, -2), c);
        lua_pop(L, 1);
      }
      return out;
    }
    default: break;
  }
  snprintf(err, errlen, "cannot encode a %s as JSON", luaL_typename(L, idx));
  return NULL;
}

cJSON *json_from_lua(lua_State *L, int idx, char *err, size_t errlen) {
  return from_lua(L, idx, 0, err, errlen);
}

/* json.encode(value) -> string */
static int l_encode(lua_State *L) {
  char err[160];
  luaL_checkany(L, 1);
  cJSON *t = json_from_lua(L, 1, err, sizeof err);
  if (!t) return luaL_error(L, "json.encode: %s", err);
  char *s = cJSON_PrintUnformatted(t);
  cJSON_Delete(t);
  if (!s) return luaL_error(L, "json.encode: out of memory");
  lua_pushstring(L, s);
  cJSON_free(s);
  return 1;
}

/* json.decode(string) -> value; raises on text that is not JSON */
static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *end = NULL;
  cJSON *t = cJSON_ParseWithLengthOpts(s, len, &end, 0);
  if (t) {                                     /* nothing but spaces may follow */
    while (end < s + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
    if (end != s + len) { cJSON_Delete(t); t = NULL; }
  }
  if (!t) {
    size_t at = end && end >= s ? (size_t)(end - s) : 0;
    return luaL_error(L, "json.decode: invalid JSON at byte %d of %d", (int)at + 1, (int)len);
  }
  json_push(L, t);
  cJSON_Delete(t);
  return 1;
}

void json_open(lua_State *L) {
  lua_pushcfunction(L, l_encode); lua_setfield(L, -2, "encode");
  lua_pushcfunction(L, l_decode); lua_setfield(L, -2, "decode");
  lua_pushlightuserdata(L, JSON_NULL); lua_setfield(L, -2, "null");
}
