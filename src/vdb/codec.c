/* codec.c - little-endian numbers and byte strings in and out of buffers. */
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "store.h"

void put_bytes(Buf *b, const void *src, size_t n) {
  if (b->oom) return;
  if (n > SIZE_MAX / 2 - b->len) { b->oom = 1; return; }
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return; }
    b->p = p; b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, src, n);
  b->len += n;
}

void put_u8(Buf *b, unsigned v) { unsigned char c = (unsigned char)v; put_bytes(b, &c, 1); }
void put_u32(Buf *b, uint32_t v) { unsigned char c[4]; set_le32(c, v); put_bytes(b, c, 4); }
void put_f32(Buf *b, float f) { uint32_t u; memcpy(&u, &f, 4); put_u32(b, u); }
void put_f64(Buf *b, double d) { uint64_t u; memcpy(&u, &d, 8); put_u32(b, (uint32_t)u); put_u32(b, (uint32_t)(u >> 32)); }

void put_str(Buf *b, const char *s) {
  size_t n = bytes_len(s);
  if (n > UINT32_MAX) { b->oom = 1; return; }
  put_u32(b, (uint32_t)n);
  put_bytes(b, s, n);
}

uint32_t get_u32(Rd *r) {
  if (r->bad || r->len - r->at < 4) { r->bad = 1; return 0; }
  uint32_t v = le32(r->p + r->at);
  r->at += 4;
  return v;
}

unsigned get_u8(Rd *r) {
  if (r->bad || r->at >= r->len) { r->bad = 1; return 0; }
  return r->p[r->at++];
}

float get_f32(Rd *r) { uint32_t u = get_u32(r); float f; memcpy(&f, &u, 4); return f; }

double get_f64(Rd *r) {
  uint64_t lo = get_u32(r), hi = get_u32(r), u = lo | hi << 32;
  double d;
  memcpy(&d, &u, 8);
  return d;
}

char *get_str(Rd *r) {
  uint32_t n = get_u32(r);
  if (r->bad || r->len - r->at < n) { r->bad = 1; return NULL; }
  char *s = bytes_new((const char *)r->p + r->at, n);
  if (!s) { r->bad = 1; return NULL; }
  r->at += n;
  return s;
}

void get_f32s(Rd *r, float *dst, size_t n) {
  if (r->bad || (r->len - r->at) / 4 < n) { r->bad = 1; return; }
  if (host_little_endian()) { memcpy(dst, r->p + r->at, n * 4); r->at += n * 4; }
  else for (size_t j = 0; j < n; j++) dst[j] = get_f32(r);
}
