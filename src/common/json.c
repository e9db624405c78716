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
#define ARRAY_MT "async.json.array"  /* the mark of a table that is a JSON array (also empty) */

/* ---- NUL bytes ------------------------------------------------------------
 * cJSON keeps strings NUL-terminated, so a \u0000 would cut one short.
 * Before parsing, each \u0000 escape becomes the escape of a code point the
 * text does not hold (a Unicode noncharacter, U+FDD0 to U+FDEF: six bytes
 * for six, so offsets stay); pushing a string turns that code point's
 * UTF-8 back into NUL bytes.  Encoding quotes strings with NULs itself. */

static int has_codepoint(const char *s, size_t len, unsigned cp) {
  char utf8[3] = {(char)(0xE0 | cp >> 12), (char)(0x80 | ((cp >> 6) & 0x3F)), (char)(0x80 | (cp & 0x3F))};
  char lo[8], up[8];
  snprintf(lo, sizeof lo, "\\u%04x", cp);
  snprintf(up, sizeof up, "\\u%04X", cp);
  for (size_t i = 0; i + 3 <= len; i++) {
    if (memcmp(s + i, utf8, 3) == 0) return 1;
    if (i + 6 <= len && s[i] == '\\' && (memcmp(s + i, lo, 6) == 0 || memcmp(s + i, up, 6) == 0)) return 1;
  }
  return 0;
}

static int is_nul_escape(const char *p, size_t left) {
  return left >= 6 && p[1] == 'u' && memcmp(p + 2, "0000", 4) == 0;
}

cJSON *json_parse(const char *s, size_t len, const char **end, char nul[4]) {
  nul[0] = 0;
  const char *hit = NULL;
  for (size_t i = 0; i + 1 < len && !hit; i++) {
    if (s[i] != '\\') continue;
    if (is_nul_escape(s + i, len - i)) hit = s + i;
    i++;                                       /* an escape is two characters at least */
  }
  if (!hit) return cJSON_ParseWithLengthOpts(s, len, end, 0);
  unsigned cp = 0xFDD0;
  while (cp <= 0xFDEF && has_codepoint(s, len, cp)) cp++;
  if (cp > 0xFDEF) { if (end) *end = hit; return NULL; }
  char *copy = malloc(len ? len : 1), esc[8];
  if (!copy) { if (end) *end = s; return NULL; }
  memcpy(copy, s, len);
  snprintf(esc, sizeof esc, "\\u%04X", cp);
  for (size_t i = (size_t)(hit - s); i + 1 < len; i++) {
    if (copy[i] != '\\') continue;
    if (is_nul_escape(copy + i, len - i)) memcpy(copy + i, esc, 6);
    i++;
  }
  const char *cend = NULL;
  cJSON *t = cJSON_ParseWithLengthOpts(copy, len, &cend, 0);
  if (end) *end = s + (cend ? cend - copy : 0);
  free(copy);
  nul[0] = (char)(0xE0 | cp >> 12); nul[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); nul[2] = (char)(0x80 | (cp & 0x3F)); nul[3] = 0;
  return t;
}

void json_push_string(lua_State *L, const char *s, const char *nul) {
  const char *at = nul && nul[0] ? strstr(s, nul) : NULL;
  if (!at) { lua_pushstring(L, s); return; }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (; at; s = at + 3, at = strstr(s, nul)) {
    luaL_addlstring(&b, s, (size_t)(at - s));
    luaL_addchar(&b, '\0');
  }
  luaL_addstring(&b, s);
  luaL_pushresult(&b);
}

size_t json_quote(char *out, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  char *p = out;
  *p++ = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') { *p++ = '\\'; *p++ = (char)c; }
    else if (c < 0x20 || c == 0x7f) { memcpy(p, "\\u00", 4); p[4] = hex[c >> 4]; p[5] = hex[c & 15]; p += 6; }
    else *p++ = (char)c;
  }
  *p++ = '"';
  *p = 0;
  return (size_t)(p - out);
}

/* a cJSON node printed as the quoted bytes (cJSON's own strings stop at a NUL) */
static cJSON *raw_string(const char *s, size_t n) {
  if (n > (SIZE_MAX - 3) / 6) return NULL;
  char *q = malloc(6 * n + 3);
  if (!q) return NULL;
  json_quote(q, s, n);
  cJSON *r = cJSON_CreateRaw(q);
  free(q);
  return r;
}

/* an object whose keys hold NULs, printed here: {"k":v,...} as one raw node
 * (children are freed) */
static cJSON *raw_object(const char **keys, const size_t *lens, cJSON **vals, int n) {
  size_t cap = 3, len = 0;
  char **texts = calloc((size_t)(n ? n : 1), sizeof *texts);
  for (int i = 0; texts && i < n; i++) {
    texts[i] = cJSON_PrintUnformatted(vals[i]);
    cap += 6 * lens[i] + 4 + (texts[i] ? strlen(texts[i]) : 4);
  }
  char *out = texts ? malloc(cap) : NULL;
  if (out) {
    out[len++] = '{';
    for (int i = 0; i < n; i++) {
      if (i) out[len++] = ',';
      len += json_quote(out + len, keys[i], lens[i]);
      out[len++] = ':';
      const char *t = texts[i] ? texts[i] : "null";
      memcpy(out + len, t, strlen(t)); len += strlen(t);
    }
    out[len++] = '}';
    out[len] = 0;
  }
  for (int i = 0; i < n; i++) { if (texts) cJSON_free(texts[i]); cJSON_Delete(vals[i]); }
  free(texts);
  cJSON *r = out ? cJSON_CreateRaw(out) : NULL;
  free(out);
  return r;
}

void json_push(lua_State *L, const cJSON *v, const char *nul) {
  luaL_checkstack(L, 3, "JSON nested too deeply");
  if (cJSON_IsObject(v)) {
    lua_createtable(L, 0, 4);
    for (const cJSON *c = v->child; c; c = c->next) {
      json_push_string(L, c->string, nul);
      json_push(L, c, nul);
      lua_rawset(L, -3);
    }
  } else if (cJSON_IsArray(v)) {
    int n = cJSON_GetArraySize(v), i = 0;
    lua_createtable(L, n, 0);
    for (const cJSON *c = v->child; c; c = c->next) {
      json_push(L, c, nul);
      lua_rawseti(L, -2, ++i);
    }
    luaL_getmetatable(L, ARRAY_MT);            /* [] and {} round-trip */
    lua_setmetatable(L, -2);
  } else if (cJSON_IsString(v)) {
    json_push_string(L, v->valuestring, nul);
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

/* the offset of the first byte of s that is not well-formed UTF-8
 * (overlong forms, surrogates and code points past U+10FFFF included), or
 * SIZE_MAX */
static size_t utf8_invalid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    unsigned c = p[i];
    size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (k == 0 || i + k > n) return i;
    unsigned cp = k == 1 ? c : k == 2 ? (c & 0x1F) : k == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t j = 1; j < k; j++) {
      if ((p[i + j] & 0xC0) != 0x80) return i;
      cp = cp << 6 | (p[i + j] & 0x3F);
    }
    static const unsigned least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += k;
  }
  return SIZE_MAX;
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

/* out, an object built from the table at idx in lua_next order, printed
 * again with its keys' every byte (the same order: the table is unchanged) */
static cJSON *with_nul_keys(lua_State *L, int idx, cJSON *out) {
  int n = cJSON_GetArraySize(out), i = 0;
  const char **keys = calloc((size_t)n, sizeof *keys);
  size_t *lens = calloc((size_t)n, sizeof *lens);
  cJSON **vals = calloc((size_t)n, sizeof *vals);
  cJSON *r = NULL;
  if (keys && lens && vals) {
    lua_pushnil(L);
    while (lua_next(L, idx) && i < n) {
      keys[i] = lua_tolstring(L, -2, &lens[i]);     /* (anchored in the table) */
      vals[i] = cJSON_DetachItemFromArray(out, 0);
      i++;
      lua_pop(L, 1);
    }
    r = raw_object(keys, lens, vals, i);
  }
  free(keys); free(lens); free(vals);
  cJSON_Delete(out);
  return r;
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
    case LUA_TSTRING: {
      size_t n, bad;
      const char *str = lua_tolstring(L, idx, &n);
      if ((bad = utf8_invalid(str, n)) != SIZE_MAX) {
        snprintf(err, errlen, "cannot encode a string that is not UTF-8 (byte %zu)", bad + 1);
        return NULL;
      }
      return memchr(str, 0, n) ? raw_string(str, n) : cJSON_CreateString(str);
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == JSON_NULL) return cJSON_CreateNull();
      break;
    case LUA_TTABLE: {
      if (depth > MAX_DEPTH) { snprintf(err, errlen, "cannot encode a table nested deeper than %d (a cycle?)", MAX_DEPTH); return NULL; }
      luaL_checkstack(L, 4, "JSON nested too deeply");
      int marked = 0;
      if (lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, ARRAY_MT);
        marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
      }
      int n = array_length(L, idx);
      if (marked && n < 0) { snprintf(err, errlen, "cannot encode a json.array whose keys are not 1..n"); return NULL; }
      cJSON *out = n > 0 || marked ? cJSON_CreateArray() : cJSON_CreateObject();
      if (!out) { snprintf(err, errlen, "out of memory"); return NULL; }
      if (n > 0 || marked) {
        for (int i = 1; i <= n; i++) {
          lua_rawgeti(L, idx, i);
          cJSON *c = from_lua(L, -1, depth + 1, err, errlen);
          lua_pop(L, 1);
          if (!c) { cJSON_Delete(out); return NULL; }
          cJSON_AddItemToArray(out, c);
        }
        return out;
      }
      int nul_keys = 0;
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
          snprintf(err, errlen, "cannot encode a table with %s keys (object keys must be strings; arrays are 1..n)",
                   luaL_typename(L, -2));
          lua_pop(L, 2); cJSON_Delete(out); return NULL;
        }
        size_t klen;
        const char *key = lua_tolstring(L, -2, &klen);
        nul_keys |= memchr(key, 0, klen) != NULL;
        cJSON *c = from_lua(L, -1, depth + 1, err, errlen);
        if (!c) { lua_pop(L, 2); cJSON_Delete(out); return NULL; }
        cJSON_AddItemToObject(out, key, c);
        lua_pop(L, 1);
      }
      return nul_keys ? with_nul_keys(L, idx, out) : out;
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

/* why a parsed tree cannot be pushed as it is, or NULL: a number that
 * overflowed to infinity, a string or key that is not UTF-8 */
static const char *unreadable(const cJSON *v, int depth) {
  for (; v; v = v->next) {
    if (v->string && utf8_invalid(v->string, strlen(v->string)) != SIZE_MAX) return "an object key is not UTF-8";
    if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) return "a number is out of range (it overflows to infinity)";
    if (cJSON_IsString(v) && utf8_invalid(v->valuestring, strlen(v->valuestring)) != SIZE_MAX) return "a string is not UTF-8";
    const char *why = v->child ? unreadable(v->child, depth + 1) : NULL;
    if (why) return why;
  }
  return NULL;
}

/* cJSON stops at this depth without saying why: the text's nesting, up to
 * byte `upto`, outside strings */
static int nesting_at(const char *s, size_t upto) {
  int depth = 0, deepest = 0, in_string = 0;
  for (size_t i = 0; i < upto; i++) {
    char c = s[i];
    if (in_string) { if (c == '\\') i++; else if (c == '"') in_string = 0; }
    else if (c == '"') in_string = 1;
    else if (c == '[' || c == '{') { if (++depth > deepest) deepest = depth; }
    else if (c == ']' || c == '}') depth--;
  }
  return deepest;
}

/* json.decode(string) -> value; raises on text that is not JSON */
static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *end = NULL;
  char nul[4];
  cJSON *t = json_parse(s, len, &end, nul);
  if (t) {                                     /* nothing but spaces may follow */
    while (end < s + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
    if (end != s + len) { cJSON_Delete(t); t = NULL; }
  }
  if (!t) {
    size_t at = end && end >= s ? (size_t)(end - s) : 0;
    if (nesting_at(s, at < len ? at + 1 : len) >= CJSON_NESTING_LIMIT)
      return luaL_error(L, "json.decode: nested deeper than %d levels (at byte %d)", CJSON_NESTING_LIMIT, (int)at + 1);
    return luaL_error(L, "json.decode: invalid JSON at byte %d of %d", (int)at + 1, (int)len);
  }
  const char *why = unreadable(t, 0);
  if (why) { cJSON_Delete(t); return luaL_error(L, "json.decode: %s", why); }
  json_push(L, t, nul);
  cJSON_Delete(t);
  return 1;
}

/* json.array(t?): t (or a new table) marked to encode as an array, also empty */
static int l_array(lua_State *L) {
  if (lua_isnoneornil(L, 1)) { lua_settop(L, 0); lua_newtable(L); }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, ARRAY_MT);
    if (!lua_rawequal(L, -1, -2)) return luaL_error(L, "json.array: the table already has a metatable");
    lua_pop(L, 2);
  }
  luaL_setmetatable(L, ARRAY_MT);
  return 1;
}

void json_open(lua_State *L) {
  if (luaL_newmetatable(L, ARRAY_MT)) { lua_pushliteral(L, "json.array"); lua_setfield(L, -2, "__name"); }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_array); lua_setfield(L, -2, "array");
  lua_pushcfunction(L, l_encode); lua_setfield(L, -2, "encode");
  lua_pushcfunction(L, l_decode); lua_setfield(L, -2, "decode");
  lua_pushlightuserdata(L, JSON_NULL); lua_setfield(L, -2, "null");
}
