/* chunkcache.h - the local on-disk chunk index cache (formats/index-cache.md).
 *
 * A repository's index segments, merged into one file on this machine:
 * a pack table and the chunk entries sorted by id, 48 bytes each, with a
 * SHA-256 trailer. Only a small fence table (the first 8 bytes of the
 * first id of every block of DV_IXC_BLOCK_ENTRIES entries) stays in
 * memory; a lookup is a binary search of the fences and one pread(2) of
 * one block, served from the kernel's page cache. So the resident memory
 * is ~0.1 byte per chunk instead of ~100.
 *
 * The file is named by the repository (id and location) and carries a key
 * that names the exact set of segments it was built from: a cache whose
 * key differs is stale and rebuilt, so it never has to be trusted beyond
 * "built by diskvault from these segments". Internal to src/repo.
 */
#ifndef DV_CHUNKCACHE_H
#define DV_CHUNKCACHE_H

#include "repo_internal.h"

#define DV_IXC_MAGIC "DVIXCAC1"
#define DV_IXC_VERSION 1
#define DV_IXC_HEADER_SIZE 64
#define DV_IXC_PACK_SIZE 56
#define DV_IXC_ENTRY_SIZE 48
#define DV_IXC_TRAILER_SIZE 32
#define DV_IXC_BLOCK_ENTRIES 85 /* 85 * 48 = 4080 bytes: one page per lookup */

struct dv_chunk_cache;

/* SHA-256 of "diskvault-index-cache-1\n" <repo id> "\n" then each segment
 * name and "\n", in the given (sorted) order. */
void dv_chunk_cache_key(const char *repo_id, const char *const *segs, size_t n, uint8_t key[32]);

/* The cache file of repository r: <cache dir>/index/<32 hex>.dvixc, the
 * hex naming the repository id and its location. Caller frees. NULL when
 * no cache directory can be determined. */
char *dv_chunk_cache_path(const struct dv_repo *r);

/* Opens and fully validates (size, magic, version, key, checksum, every
 * record) the cache at path. -DV_E_NOT_FOUND when it is missing or was
 * built from other segments (key differs); -DV_E_CORRUPT when damaged.
 * *packs (caller frees) and *npacks receive the pack table. */
int dv_chunk_cache_open(const char *path, const uint8_t key[32], struct dv_chunk_cache **out,
			struct dv_pack_info **packs, uint32_t *npacks, struct dv_err *err) DV_WUR;
void dv_chunk_cache_free(struct dv_chunk_cache *c);
/* Thread safe (pread on a shared descriptor, stack buffer). */
bool dv_chunk_cache_lookup(const struct dv_chunk_cache *c, const struct dv_id *id, struct dv_chunk_loc *loc);
uint64_t dv_chunk_cache_count(const struct dv_chunk_cache *c);
/* Calls fn for every entry in id order; stops at the first non-zero. */
int dv_chunk_cache_each(const struct dv_chunk_cache *c, dv_chunk_index_fn fn, void *ctx);
/* Bytes of memory the open cache holds (fences), for tests. */
size_t dv_chunk_cache_memory(const struct dv_chunk_cache *c);

/*
 * Building a cache in bounded memory: entries are appended, in the order
 * of the segments, to 256 unlinked bucket files (by the first id byte);
 * finish sorts one bucket at a time (~1/256 of the entries in memory),
 * keeps the first entry of each id (the segment whose name sorts first,
 * the rule of formats/repository.md §6), writes <path>.<random>.tmp,
 * fsyncs it and renames it over path.
 */
struct dv_chunk_cache_builder;
int dv_chunk_cache_builder_new(const char *path, struct dv_chunk_cache_builder **out, struct dv_err *err) DV_WUR;
/* loc->pack numbers the pack table given to finish. */
int dv_chunk_cache_builder_add(struct dv_chunk_cache_builder *b, const struct dv_id *id, const struct dv_chunk_loc *loc,
			       struct dv_err *err) DV_WUR;
/* Writes the file, then opens it (into *out). b is freed in every case. */
int dv_chunk_cache_builder_finish(struct dv_chunk_cache_builder *b, const uint8_t key[32],
				  const struct dv_pack_info *packs, uint32_t npacks, struct dv_chunk_cache **out,
				  struct dv_err *err) DV_WUR;
void dv_chunk_cache_builder_abort(struct dv_chunk_cache_builder *b);

#endif
