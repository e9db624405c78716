/* replay.c - a `file:` store's bytes into collections, and what was damaged. */
#define _GNU_SOURCE              /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "codec.h"
#include "replay.h"

static uint32_t crc(const unsigned char *p, size_t n) { return (uint32_t)crc32_z(0L, p, n); }

void header_write(unsigned char h[VDB_HEADER_BYTES]) {
  memset(h, 0, VDB_HEADER_BYTES);
  memcpy(h, VDB_MAGIC, 8);
  set_le32(h + 8, VDB_FORMAT);
  set_le32(h + 12, 0);                      /* feature bits: none yet */
  set_le32(h + 16, VDB_HEADER_BYTES);
  set_le32(h + 28, crc(h, 28));
}

void frame_seal(unsigned char h[FRAME_BYTES], uint32_t len, uint32_t sum) {
  set_le32(h, FRAME_MARK);
  set_le32(h + 4, len);
  set_le32(h + 8, sum);
  set_le32(h + 12, crc(h, 12));
}

/* ---- applying payloads -------------------------------------------------- */

static Collection *find_col(Replay *rp, const char *name) {
  for (int i = 0; i < rp->ncols; i++) if (bytes_eq(rp->cols[i]->name, name)) return rp->cols[i];
  return NULL;
}

static Collection *add_col(Replay *rp, const char *name, int dim, int metric) {
  Collection **cs = realloc(rp->cols, (size_t)(rp->ncols + 1) * sizeof *cs);
  if (!cs) return NULL;
  rp->cols = cs;
  Collection *c = store_new(name, bytes_len(name), dim, metric);
  if (c) rp->cols[rp->ncols++] = c;
  return c;
}

static void remove_col(Replay *rp, const char *name) {
  for (int i = 0; i < rp->ncols; i++) {
    if (bytes_eq(rp->cols[i]->name, name)) {
      store_free(rp->cols[i]);
      rp->cols[i] = rp->cols[--rp->ncols];
      return;
    }
  }
}

/* a record's metadata and document, as put_records encodes them */
static void get_meta_doc(Rd *r, Meta *m, char **doc) {
  uint32_t nm = get_u32(r);
  if (nm > r->len - r->at) { r->bad = 1; return; }    /* each takes bytes: a bound before calloc */
  if (nm && !(m->kv = calloc(nm, sizeof *m->kv))) { r->bad = 1; return; }
  for (uint32_t k = 0; k < nm && !r->bad; k++) {
    MetaKV *kv = &m->kv[k];
    kv->key = get_str(r);
    m->n = (int)k + 1;
    kv->type = (int)get_u8(r);
    if (kv->type == MV_STR) kv->str = get_str(r);
    else if (kv->type == MV_NUM || kv->type == MV_BOOL) kv->num = get_f64(r);
    else r->bad = 1;
  }
  if (get_u8(r)) *doc = get_str(r);
}

enum { APPLIED = 0, UNDECODABLE = -1, NO_COLLECTION = -2, WRONG_DIM = -3 };

/* PUT (rows: id, vector, metadata, document) or PUT_COLUMNS (ids,
 * metadata and documents, then the vectors) */
static int apply_put(Replay *rp, Rd *r, int columns, int recover) {
  char *name = get_str(r);
  (void)get_u8(r);                          /* upsert: replay always upserts */
  uint32_t n = get_u32(r), dim = get_u32(r);
  /* every record takes at least 4 bytes of id length and dim floats */
  if (r->bad || dim == 0 || dim > STORE_MAX_DIM || n > (r->len - r->at) / 4 ||
      (uint64_t)n * dim > (r->len - r->at) / 4) { bytes_free(name); return UNDECODABLE; }
  Collection *c = find_col(rp, name);
  if (!c && recover) {
    c = add_col(rp, name, (int)dim, METRIC_L2);
    if (c) {
      size_t used = strlen(rp->notes);
      snprintf(rp->notes + used, sizeof rp->notes - used, "%scollection '%.40s' rebuilt as l2 (its creation was damaged)",
               used ? "; " : "", name);
    }
  }
  bytes_free(name);
  if (!c) return NO_COLLECTION;
  if (c->dim && c->dim != (int)dim) return WRONG_DIM;
  Batch *b = calloc(1, sizeof *b);
  if (!b) return UNDECODABLE;
  b->n = (int)n; b->dim = (int)dim;
  b->ids = calloc(n ? n : 1, sizeof *b->ids);
  b->docs = calloc(n ? n : 1, sizeof *b->docs);
  b->metas = calloc(n ? n : 1, sizeof *b->metas);
  b->vecs = malloc((n ? n : 1) * (size_t)dim * sizeof(float));
  if (!b->ids || !b->docs || !b->metas || !b->vecs) { batch_free(b); return UNDECODABLE; }
  for (uint32_t i = 0; i < n && !r->bad; i++) {
    b->ids[i] = get_str(r);
    if (b->ids[i] && bytes_len(b->ids[i]) == 0) r->bad = 1;
    if (!columns) get_f32s(r, b->vecs + (size_t)i * dim, dim);
    get_meta_doc(r, &b->metas[i], &b->docs[i]);
  }
  if (columns) get_f32s(r, b->vecs, (size_t)n * dim);
  for (uint32_t i = 0; i < n && !r->bad; i++)
    if (!store_finite(b->vecs + (size_t)i * dim, (int)dim)) r->bad = 1;
  int err, at, rc = UNDECODABLE;
  if (!r->bad && r->at == r->len) {
    int was = c->dim;
    c->dim = (int)dim;
    c->dim_settled = 1;
    rc = store_put(c, b, 1, NULL, &err, &at) < 0 ? UNDECODABLE : APPLIED;
    if (rc != APPLIED) c->dim = was;
  }
  batch_free(b);
  return rc;
}

/* apply one payload: APPLIED or why not */
static int apply(Replay *rp, const unsigned char *p, size_t len, int recover) {
  Rd r = {p, len, 0, 0};
  unsigned type = get_u8(&r);
  if (type == LOG_PUT || type == LOG_PUT_COLUMNS) return apply_put(rp, &r, type == LOG_PUT_COLUMNS, recover);
  char *name = get_str(&r);
  int rc = UNDECODABLE;
  if (type == LOG_CREATE) {
    uint32_t dim = get_u32(&r);
    unsigned metric = get_u8(&r);
    if (!r.bad && r.at == len && dim <= STORE_MAX_DIM && metric <= METRIC_IP)
      rc = find_col(rp, name) || add_col(rp, name, (int)dim, (int)metric) ? APPLIED : UNDECODABLE;
  } else if (type == LOG_DROP) {
    if (!r.bad && r.at == len) { remove_col(rp, name); rc = APPLIED; }
  } else if (type == LOG_DELETE) {
    uint32_t n = get_u32(&r);
    Collection *c = name ? find_col(rp, name) : NULL;
    /* check the whole record before deleting anything */
    Rd scan = r;
    for (uint32_t i = 0; i < n && !scan.bad; i++) { uint32_t k = get_u32(&scan); if (!scan.bad && scan.len - scan.at >= k) scan.at += k; else scan.bad = 1; }
    if (!scan.bad && scan.at == len) {
      rc = c ? APPLIED : NO_COLLECTION;
      for (uint32_t i = 0; i < n && c; i++) {
        uint32_t k = get_u32(&r);
        long at = store_find(c, (const char *)p + r.at, k);
        r.at += k;
        if (at >= 0) store_delete_index(c, (size_t)at);
      }
    }
  }
  bytes_free(name);
  return rc;
}

void replay_free(Replay *r) {
  for (int i = 0; i < r->ncols; i++) store_free(r->cols[i]);
  free(r->cols);
  bytes_list_free(r->ids, r->nids);
  r->cols = NULL; r->ncols = 0; r->ids = NULL; r->nids = 0;
}

/* ---- damage --------------------------------------------------------------- */

static void keep_id(Replay *rp, const unsigned char *p, size_t n) {
  if (rp->nids >= REPLAY_MAX_IDS) { rp->more_ids++; return; }
  if (!rp->ids && !(rp->ids = calloc(REPLAY_MAX_IDS, sizeof *rp->ids))) return;
  char *id = bytes_new((const char *)p, n);
  if (id) rp->ids[rp->nids++] = id;
}

/* the ids that can still be read in a damaged payload (its damage may be
 * anywhere: everything read is bounds-checked, and reading stops at the
 * first thing that does not decode) */
static void readable_ids(Replay *rp, const unsigned char *p, size_t len) {
  Rd r = {p, len, 0, 0};
  unsigned type = get_u8(&r);
  uint32_t k = get_u32(&r);                 /* the collection's name */
  if (r.bad || r.len - r.at < k) return;
  r.at += k;
  if (type == LOG_DELETE) {
    uint32_t n = get_u32(&r);
    for (uint32_t i = 0; i < n && !r.bad; i++) {
      k = get_u32(&r);
      if (r.bad || r.len - r.at < k) return;
      keep_id(rp, p + r.at, k);
      r.at += k;
    }
    return;
  }
  if (type != LOG_PUT && type != LOG_PUT_COLUMNS) return;
  (void)get_u8(&r);
  uint32_t n = get_u32(&r), dim = get_u32(&r);
  for (uint32_t i = 0; i < n && !r.bad; i++) {
    k = get_u32(&r);
    if (r.bad || r.len - r.at < k || k == 0) return;
    keep_id(rp, p + r.at, k);
    r.at += k;
    if (type == LOG_PUT) { if ((r.len - r.at) / 4 < dim) return; r.at += (size_t)dim * 4; }
    Meta m = {0, NULL};
    char *doc = NULL;
    get_meta_doc(&r, &m, &doc);
    meta_free(&m);
    bytes_free(doc);
  }
}

static void damage(Replay *rp, size_t at, size_t bytes, uint64_t record, const char *why,
                   const unsigned char *payload, size_t plen) {
  if (rp->damaged++ == 0) {
    rp->first_offset = at;
    rp->first_record = record;
    snprintf(rp->first_why, sizeof rp->first_why, "%s", why);
  }
  rp->damaged_bytes += bytes;
  if (payload) readable_ids(rp, payload, plen);
}

static const char *refusal(int rc) {
  return rc == NO_COLLECTION ? "names a collection that does not exist"
       : rc == WRONG_DIM ? "has vectors of the wrong dimension" : "does not decode";
}

/* a payload whose checksum holds */
static void take(Replay *rp, const unsigned char *p, size_t len, int recover, size_t at, size_t bytes, uint64_t record) {
  int rc = apply(rp, p, len, recover);
  if (rc == APPLIED) rp->records++;
  else damage(rp, at, bytes, record, refusal(rc), p, len);
}

/* ---- frames -------------------------------------------------------------- */

/* an intact frame header at `at` (its payload may still run past the end) */
static int frame_at(const unsigned char *d, size_t len, size_t at, uint32_t *plen) {
  if (len - at < FRAME_BYTES || le32(d + at) != FRAME_MARK || crc(d + at, 12) != le32(d + at + 12)) return 0;
  *plen = le32(d + at + 4);
  return 1;
}

/* the next intact frame header at or after `from`, or len */
static size_t next_frame(const unsigned char *d, size_t len, size_t from) {
  static const unsigned char mark[4] = {FRAME_MARK & 0xff, (FRAME_MARK >> 8) & 0xff, (FRAME_MARK >> 16) & 0xff, FRAME_MARK >> 24};
  uint32_t plen;
  while (from + FRAME_BYTES <= len) {
    const unsigned char *hit = memmem(d + from, len - from, mark, 4);
    if (!hit) break;
    size_t at = (size_t)(hit - d);
    if (frame_at(d, len, at, &plen)) return at;
    from = at + 1;
  }
  return len;
}

static int all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) if (p[i]) return 0;
  return 1;
}

static void read_frames(Replay *rp, const unsigned char *d, size_t len, size_t at, int recover) {
  uint64_t record = 0;
  rp->end = at;
  while (at < len) {
    uint32_t plen;
    if (frame_at(d, len, at, &plen)) {
      if (plen > len - at - FRAME_BYTES) { rp->torn = len - at; return; }   /* the last record, cut short */
      const unsigned char *p = d + at + FRAME_BYTES;
      record++;
      if (crc(p, plen) == le32(d + at + 8)) take(rp, p, plen, recover, at, FRAME_BYTES + plen, record);
      else damage(rp, at, FRAME_BYTES + plen, record, "fails its checksum", p, plen);
      at += FRAME_BYTES + (size_t)plen;
      rp->end = at;
      continue;
    }
    size_t next = next_frame(d, len, at + 1);
    /* A record's header is written after its payload: a write cut by a
     * crash leaves zeros where the header goes, and nothing after it. */
    if (next == len && all_zero(d + at, len - at < FRAME_BYTES ? len - at : FRAME_BYTES)) { rp->torn = len - at; return; }
    damage(rp, at, next - at, ++record, "is not a record (its header is damaged)", NULL, 0);
    at = next;
    rp->end = at;
  }
}

/* files from before the header: u32 length, u32 crc32, payload */
static void read_frames_v0(Replay *rp, const unsigned char *d, size_t len, int recover) {
  size_t at = 0;
  uint64_t record = 0;
  while (at < len) {
    if (len - at < 8) { rp->torn = len - at; return; }
    uint32_t plen = le32(d + at), sum = le32(d + at + 4);
    /* (this layout cannot tell a damaged length from a cut last record) */
    if ((plen == 0 && sum == 0) || plen > len - at - 8) { rp->torn = len - at; return; }
    const unsigned char *p = d + at + 8;
    record++;
    if (crc(p, plen) == sum) take(rp, p, plen, recover, at, 8 + plen, record);
    else damage(rp, at, 8 + plen, record, "fails its checksum", p, plen);
    at += 8 + (size_t)plen;
    rp->end = at;
  }
}

/* a format-0 file starts with a whole, intact CREATE record */
static int looks_v0(const unsigned char *d, size_t len) {
  if (len < 9) return 0;
  uint32_t plen = le32(d);
  return plen >= 1 && plen <= len - 8 && d[8] == LOG_CREATE && crc(d + 8, plen) == le32(d + 4);
}

int replay_image(const unsigned char *d, size_t len, int recover, Replay *rp) {
  memset(rp, 0, sizeof *rp);
  if (len == 0) return REPLAY_NEW;
  size_t m = len < 8 ? len : 8;
  if (memcmp(d, VDB_MAGIC, m) == 0) {
    if (len < VDB_HEADER_BYTES) return REPLAY_NEW;       /* a header cut while the file was made: no data */
    rp->format = VDB_FORMAT;
    size_t start = VDB_HEADER_BYTES;
    if (crc(d, 28) != le32(d + 28)) {
      damage(rp, 0, VDB_HEADER_BYTES, 0, "is a damaged file header", NULL, 0);
    } else {
      rp->found_version = le32(d + 8);
      rp->found_features = le32(d + 12);
      if (rp->found_version > VDB_FORMAT || rp->found_features != 0) return REPLAY_NEWER;
      uint32_t hsize = le32(d + 16);
      if (rp->found_version == 0 || hsize < VDB_HEADER_BYTES || hsize > len)
        damage(rp, 0, VDB_HEADER_BYTES, 0, "is a file header that does not decode", NULL, 0);
      else start = hsize;
    }
    read_frames(rp, d, len, start, recover);
  } else if (looks_v0(d, len)) {
    rp->format = 0;
    read_frames_v0(rp, d, len, recover);
  } else {
    return REPLAY_FOREIGN;
  }
  return REPLAY_STORE;
}
