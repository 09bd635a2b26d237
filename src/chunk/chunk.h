/*
 * chunk.h - content-defined chunking, chunk ids and zero detection.
 *
 * The chunker is FastCDC-style: a 64-bit Gear rolling hash
 *     h = (h << 1) + gear[byte]
 * depends only on the last 64 bytes seen, so a boundary depends only on
 * local content and chunking re-synchronises a few bytes after an edit.
 * No boundary is tested before `min` bytes; between `min` and `avg` the
 * test uses a stricter mask (avg_bits + 2 high bits all zero), after `avg`
 * a looser one (avg_bits - 2 bits), which pulls sizes towards `avg`
 * ("normalized chunking"); at `max` a cut is forced. The gear table is
 * derived from a 32-byte seed (SHA-256 of seed || i), so an encrypted
 * repository can use a secret seed and hide chunk boundaries.
 *
 * Chunk ids are SHA-256 of the uncompressed chunk, or HMAC-SHA256 under the
 * repository's MAC key when it is encrypted. Thread safety: a chunker is
 * owned by one thread; the hashing functions are thread safe.
 */
#ifndef DV_CHUNK_H
#define DV_CHUNK_H

#include "util/util.h"

#define DV_ID_LEN 32
#define DV_ID_HEX_LEN (2 * DV_ID_LEN)

/* A chunk or object id: a SHA-256 or HMAC-SHA256 value. */
struct dv_id {
	uint8_t b[DV_ID_LEN];
};

/* Lowercase hex of id into out (DV_ID_HEX_LEN + 1 bytes). */
void dv_id_hex(char out[DV_ID_HEX_LEN + 1], const struct dv_id *id);
/* Parses 64 hex digits; 0 or -1. */
int dv_id_parse(struct dv_id *id, const char *hex);
static inline bool dv_id_eq(const struct dv_id *a, const struct dv_id *b)
{
	for (int i = 0; i < DV_ID_LEN; i++)
		if (a->b[i] != b->b[i])
			return false;
	return true;
}

/* ---- chunker --------------------------------------------------------- */

struct dv_chunker_params {
	uint32_t min, avg, max; /* avg a power of two; min < avg < max */
	uint8_t seed[32];       /* all zero for the public default table */
};

/* 64 KiB on average: a disk changes in scattered 4 KiB blocks, and every
 * changed block costs a whole chunk (docs/performance.md compares 64, 128
 * and 256 KiB). */
#define DV_CHUNK_MIN_DEFAULT (16u * 1024)
#define DV_CHUNK_AVG_DEFAULT (64u * 1024)
#define DV_CHUNK_MAX_DEFAULT (256u * 1024)
#define DV_CHUNK_SIZE_LIMIT (16u * 1024 * 1024) /* largest max a reader accepts */

/* Fills the defaults (zero seed). */
void dv_chunker_params_default(struct dv_chunker_params *p);
/* 0 if the parameters are usable, else -DV_E_USAGE with a message. */
int dv_chunker_params_check(const struct dv_chunker_params *p, struct dv_err *err) DV_WUR;

struct dv_chunker;
/* Caller frees with dv_chunker_free(). params must pass the check. */
struct dv_chunker *dv_chunker_new(const struct dv_chunker_params *p);
void dv_chunker_free(struct dv_chunker *c);
/* Forget the current chunk: the next byte starts a new one. */
void dv_chunker_reset(struct dv_chunker *c);
/*
 * Scans p[0..n) as the continuation of the current chunk. Returns the number
 * of bytes that complete the chunk (1..n) when a boundary lies in this
 * range, after which the chunker is reset; returns 0 when the whole range
 * belongs to the chunk and no boundary was found.
 */
size_t dv_chunker_scan(struct dv_chunker *c, const uint8_t *p, size_t n);

/* ---- hashing --------------------------------------------------------- */

void dv_sha256(const void *p, size_t n, struct dv_id *out);
/* Streaming SHA-256 (for whole-disk sums and digests). */
struct dv_sha256_ctx;
struct dv_sha256_ctx *dv_sha256_new(void);
void dv_sha256_update(struct dv_sha256_ctx *c, const void *p, size_t n);
void dv_sha256_final(struct dv_sha256_ctx *c, struct dv_id *out); /* also frees c */

/* Chunk-id function: SHA-256, or HMAC-SHA256 when key != NULL (32 bytes). */
void dv_chunk_id(const uint8_t *key, const void *p, size_t n, struct dv_id *out);

/* ---- zeros ----------------------------------------------------------- */

/* true when all n bytes are zero. Reads at memory speed. */
bool dv_is_zero(const void *p, size_t n);
/* A static, read-only block of DV_ZERO_BLOCK zero bytes. */
#define DV_ZERO_BLOCK (1024u * 1024)
const uint8_t *dv_zero_block(void);

#endif
