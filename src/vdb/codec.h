/* codec.h - the `file:` format's building blocks: little-endian numbers and
 * length-prefixed byte strings into a growing buffer (Buf), and out of a
 * bounded slice (Rd) that marks itself bad instead of reading past its end. */
#ifndef VDB_CODEC_H
#define VDB_CODEC_H

#include <stddef.h>
#include <stdint.h>

typedef struct Buf { char *p; size_t len, cap; int oom; } Buf;

void put_bytes(Buf *b, const void *src, size_t n);
void put_u8(Buf *b, unsigned v);
void put_u32(Buf *b, uint32_t v);
void put_f32(Buf *b, float f);
void put_f64(Buf *b, double d);
void put_str(Buf *b, const char *s);       /* a byte string (store.h): u32 length, bytes */

typedef struct Rd { const unsigned char *p; size_t len, at; int bad; } Rd;

uint32_t get_u32(Rd *r);
unsigned get_u8(Rd *r);
float    get_f32(Rd *r);
double   get_f64(Rd *r);
char    *get_str(Rd *r);                   /* a new byte string, or NULL (r->bad) */
void     get_f32s(Rd *r, float *dst, size_t n);

static inline uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void set_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

#endif
