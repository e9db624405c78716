/* replay.h - reading a `file:` store: its header, its frames, and the
 * collections they rebuild.  Pure: bytes in, collections and a report of
 * any damage out; no file is touched here (log.c decides what to do), so
 * the loader can be fuzzed on its own (fuzz/replay_fuzz.c).
 *
 * The format (version 1), all numbers little-endian:
 *   header, 32 bytes: magic "\x89VDB\r\n\x1a\n", u32 format version, u32
 *     feature bits (a reader refuses a bit it does not know), u32 header
 *     size, 8 reserved bytes, u32 crc32 of the 28 bytes before it;
 *   then frames: u32 FRAME_MARK, u32 payload length, u32 crc32(payload),
 *     u32 crc32 of those 12 bytes; then the payload.  The mark and the
 *     header's own checksum let a reader find the next intact frame after
 *     a damaged one, so damage stays local.
 * Files from before the header (format 0) are frames of u32 length, u32
 * crc32, payload; they are read, and rewritten as format 1 once read whole.
 * Payloads: CREATE(name, dim, metric), PUT_COLUMNS(collection; per record
 * id, metadata, document; then all vectors in one block), DELETE(collection,
 * ids), DROP(name); PUT (records row by row) is read from older files. */
#ifndef VDB_REPLAY_H
#define VDB_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include "store.h"

#define VDB_MAGIC "\x89VDB\r\n\x1a\n"
#define VDB_FORMAT 1
#define VDB_HEADER_BYTES 32
#define FRAME_BYTES 16
#define FRAME_MARK 0x4d524656u            /* "VFRM" */

enum { LOG_CREATE = 1, LOG_PUT, LOG_DELETE, LOG_DROP, LOG_PUT_COLUMNS };

/* what a file is */
enum { REPLAY_STORE, REPLAY_NEW, REPLAY_FOREIGN, REPLAY_NEWER, REPLAY_NOMEM };

#define REPLAY_MAX_IDS 1000                /* ids listed of what was skipped */

typedef struct Replay {
  Collection **cols;
  int ncols;
  int format;                /* 0: written before the header existed; 1 */
  uint32_t found_version;    /* REPLAY_NEWER: the file's version and feature bits */
  uint32_t found_features;
  uint64_t records;          /* records applied */
  uint64_t end;              /* the end of the last whole record: where the next goes */
  uint64_t torn;             /* bytes of an incomplete last record, after end */
  uint64_t damaged;          /* records (or stretches of bytes) skipped */
  uint64_t damaged_bytes;
  uint64_t first_offset, first_record;      /* where the first damage is */
  char first_why[80];
  char **ids;                /* byte strings readable in what was skipped */
  int nids;
  uint64_t more_ids;         /* ids skipped beyond those listed */
  char notes[160];           /* recover: collections rebuilt without their creation */
} Replay;

/* Read the image of a file.  recover: a record whose collection is
 * unknown (its creation was damaged) recreates it instead of being
 * skipped.  Returns REPLAY_*; out is filled for REPLAY_STORE. */
int  replay_image(const unsigned char *data, size_t len, int recover, Replay *out);
void replay_free(Replay *r);

void header_write(unsigned char h[VDB_HEADER_BYTES]);
void frame_seal(unsigned char h[FRAME_BYTES], uint32_t len, uint32_t crc);

#endif
