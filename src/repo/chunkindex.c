/* chunkindex.c - in-memory chunk index and index segment objects. */
#include <stdio.h>
#include <unistd.h>

#include "chunkcache.h"
#include "repo_internal.h"

#include <stdlib.h>
#include <string.h>

struct entry {
	struct dv_id id;
	struct dv_chunk_loc loc;
};

struct dv_chunk_index {
	pthread_rwlock_t lock;
	struct entry *e;
	size_t n, cap;
	uint32_t *slots; /* entry number + 1; 0 = empty */
	size_t nslots;   /* power of two, kept >= 2 * n */
	struct dv_pack_info *packs;
	uint32_t npacks, packcap;
	struct dv_strlist segs; /* names of the segments loaded */
	/* The loaded segments, when they were too many for memory: a local
	 * sorted file (chunkcache.c). The hash table then holds only what was
	 * inserted since (a backup's new chunks). */
	struct dv_chunk_cache *base;
};

struct dv_chunk_index *dv_chunk_index_new(void)
{
	struct dv_chunk_index *ix = dv_calloc(1, sizeof *ix);
	pthread_rwlock_init(&ix->lock, NULL);
	ix->nslots = 1024;
	ix->slots = dv_calloc(ix->nslots, sizeof *ix->slots);
	return ix;
}

void dv_chunk_index_free(struct dv_chunk_index *ix)
{
	if (!ix)
		return;
	pthread_rwlock_destroy(&ix->lock);
	dv_strlist_release(&ix->segs);
	dv_chunk_cache_free(ix->base);
	free(ix->e);
	free(ix->slots);
	free(ix->packs);
	free(ix);
}

/* Ids are uniformly distributed (SHA-256 or HMAC), so their first bytes are
 * a perfect hash. */
static size_t slot_of(const struct dv_id *id, size_t nslots) { return (size_t)dv_le64(id->b) & (nslots - 1); }

static size_t find_slot(const struct dv_chunk_index *ix, const struct dv_id *id)
{
	size_t mask = ix->nslots - 1;
	for (size_t s = slot_of(id, ix->nslots);; s = (s + 1) & mask) {
		uint32_t v = ix->slots[s];
		if (!v || dv_id_eq(&ix->e[v - 1].id, id))
			return s;
	}
}

bool dv_chunk_index_lookup(struct dv_chunk_index *ix, const struct dv_id *id, struct dv_chunk_loc *loc)
{
	pthread_rwlock_rdlock(&ix->lock);
	uint32_t v = ix->slots[find_slot(ix, id)];
	if (v && loc)
		*loc = ix->e[v - 1].loc;
	pthread_rwlock_unlock(&ix->lock);
	/* base is immutable once loaded: no lock */
	return v != 0 || (ix->base && dv_chunk_cache_lookup(ix->base, id, loc));
}

static void grow(struct dv_chunk_index *ix)
{
	size_t n = ix->nslots * 2;
	uint32_t *slots = dv_calloc(n, sizeof *slots);
	for (size_t i = 0; i < ix->n; i++) {
		size_t s = slot_of(&ix->e[i].id, n);
		while (slots[s])
			s = (s + 1) & (n - 1);
		slots[s] = (uint32_t)(i + 1);
	}
	free(ix->slots);
	ix->slots = slots;
	ix->nslots = n;
}

bool dv_chunk_index_insert(struct dv_chunk_index *ix, const struct dv_id *id, const struct dv_chunk_loc *loc)
{
	if (ix->base && dv_chunk_cache_lookup(ix->base, id, NULL))
		return false;
	pthread_rwlock_wrlock(&ix->lock);
	size_t s = find_slot(ix, id);
	bool added = false;
	if (!ix->slots[s]) {
		if (ix->n >= UINT32_MAX - 1)
			DV_BUG("chunk index full");
		if (ix->n == ix->cap) {
			ix->cap = ix->cap ? ix->cap + ix->cap / 2 : 1024;
			ix->e = dv_realloc(ix->e, ix->cap * sizeof *ix->e);
		}
		ix->e[ix->n] = (struct entry){*id, *loc};
		ix->slots[s] = (uint32_t)(++ix->n);
		if (ix->n * 2 > ix->nslots)
			grow(ix);
		added = true;
	}
	pthread_rwlock_unlock(&ix->lock);
	return added;
}

uint32_t dv_chunk_index_add_pack(struct dv_chunk_index *ix, const struct dv_pack_info *p)
{
	pthread_rwlock_wrlock(&ix->lock);
	if (ix->npacks == ix->packcap) {
		ix->packcap = ix->packcap ? 2 * ix->packcap : 64;
		ix->packs = dv_realloc(ix->packs, ix->packcap * sizeof *ix->packs);
	}
	uint32_t n = ix->npacks++;
	ix->packs[n] = *p;
	pthread_rwlock_unlock(&ix->lock);
	return n;
}

void *dv_pack_table_find(struct dv_chunk_index *map, void *v, size_t elem, size_t *n, size_t *cap,
			 const struct dv_pack_info *info, size_t *no)
{
	struct dv_chunk_loc loc;
	if (dv_chunk_index_lookup(map, &info->id, &loc)) {
		*no = loc.pack;
		return v;
	}
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 64;
		v = dv_realloc(v, *cap * elem);
	}
	char *rec = (char *)v + *n * elem;
	memset(rec, 0, elem);
	memcpy(rec, info, sizeof *info);
	loc = (struct dv_chunk_loc){.pack = (uint32_t)*n};
	dv_chunk_index_insert(map, &info->id, &loc);
	*no = (*n)++;
	return v;
}

void dv_chunk_index_set_pack(struct dv_chunk_index *ix, uint32_t n, const struct dv_pack_info *p)
{
	pthread_rwlock_wrlock(&ix->lock);
	if (n >= ix->npacks)
		DV_BUG("pack %u out of range", n);
	ix->packs[n] = *p;
	pthread_rwlock_unlock(&ix->lock);
}

const struct dv_pack_info *dv_chunk_index_pack(struct dv_chunk_index *ix, uint32_t n)
{
	/* The pack table only grows while a single thread writes; readers
	 * (restore workers) run when it is complete. */
	if (n >= ix->npacks)
		DV_BUG("pack %u out of range", n);
	return &ix->packs[n];
}

uint32_t dv_chunk_index_pack_count(struct dv_chunk_index *ix) { return ix->npacks; }
size_t dv_chunk_index_count(struct dv_chunk_index *ix)
{
	return ix->n + (ix->base ? (size_t)dv_chunk_cache_count(ix->base) : 0);
}

bool dv_chunk_index_on_disk(const struct dv_chunk_index *ix) { return ix->base != NULL; }

int dv_chunk_index_each(struct dv_chunk_index *ix, dv_chunk_index_fn fn, void *ctx)
{
	if (ix->base) {
		int r = dv_chunk_cache_each(ix->base, fn, ctx);
		if (r)
			return r;
	}
	for (size_t i = 0; i < ix->n; i++) {
		int r = fn(&ix->e[i].id, &ix->e[i].loc, ctx);
		if (r)
			return r;
	}
	return 0;
}

void dv_pack_name(char *out, size_t n, const struct dv_id *pack)
{
	char hex[DV_ID_HEX_LEN + 1];
	dv_id_hex(hex, pack);
	snprintf(out, n, "packs/%.2s/%s", hex, hex);
}

/* ---- index segments ------------------------------------------------------ */

void dv_index_segment_release(struct dv_index_segment *s)
{
	free(s->packs);
	free(s->ids);
	free(s->locs);
	memset(s, 0, sizeof *s);
}

void dv_index_segment_encode(const struct dv_index_segment *s, struct dv_buf *out)
{
	dv_buf_reset(out);
	dv_buf_reserve(out, DV_INDEX_HEADER_SIZE + s->npacks * DV_INDEX_PACK_SIZE + s->n * DV_INDEX_ENTRY_SIZE);
	dv_buf_add(out, DV_INDEX_MAGIC, 8);
	dv_buf_add_le32(out, DV_INDEX_VERSION);
	dv_buf_add_le32(out, (uint32_t)s->npacks);
	dv_buf_add_le64(out, s->n);
	for (size_t i = 0; i < s->npacks; i++) {
		const struct dv_pack_info *p = &s->packs[i];
		dv_buf_add(out, p->id.b, DV_ID_LEN);
		dv_buf_add_le64(out, p->size);
		dv_buf_add_le64(out, p->index_offset);
		dv_buf_add_le32(out, p->index_len);
		dv_buf_add_le32(out, 0);
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct dv_chunk_loc *l = &s->locs[i];
		dv_buf_add(out, s->ids[i].b, DV_ID_LEN);
		dv_buf_add_le32(out, l->pack);
		dv_buf_add_le32(out, l->stored_len);
		dv_buf_add_le32(out, l->raw_len);
		dv_buf_add_le32(out, 0);
		dv_buf_add_le64(out, l->offset);
	}
}

int dv_index_segment_decode(const uint8_t *p, size_t n, struct dv_index_segment *s, const char *what,
			    struct dv_err *err)
{
	memset(s, 0, sizeof *s);
	if (n < DV_INDEX_HEADER_SIZE || memcmp(p, DV_INDEX_MAGIC, 8))
		return dv_error(err, DV_E_CORRUPT, "%s: not an index segment (bad magic)", what);
	uint32_t version = dv_le32(p + 8);
	if (version != DV_INDEX_VERSION)
		return dv_error(err, DV_E_VERSION, "%s: index segment version %u is not supported", what, version);
	uint64_t npacks = dv_le32(p + 12), nent = dv_le64(p + 16);
	if (npacks > (n - DV_INDEX_HEADER_SIZE) / DV_INDEX_PACK_SIZE ||
	    nent > (n - DV_INDEX_HEADER_SIZE - npacks * DV_INDEX_PACK_SIZE) / DV_INDEX_ENTRY_SIZE ||
	    n != DV_INDEX_HEADER_SIZE + npacks * DV_INDEX_PACK_SIZE + nent * DV_INDEX_ENTRY_SIZE)
		return dv_error(err, DV_E_CORRUPT, "%s: size %zu does not match %llu packs and %llu entries", what, n,
				(unsigned long long)npacks, (unsigned long long)nent);
	s->npacks = (size_t)npacks;
	s->n = s->cap = (size_t)nent;
	s->packs = dv_calloc(s->npacks, sizeof *s->packs);
	s->ids = dv_calloc(s->n, sizeof *s->ids);
	s->locs = dv_calloc(s->n, sizeof *s->locs);
	const uint8_t *q = p + DV_INDEX_HEADER_SIZE;
	for (size_t i = 0; i < s->npacks; i++, q += DV_INDEX_PACK_SIZE) {
		struct dv_pack_info *pi = &s->packs[i];
		memcpy(pi->id.b, q, DV_ID_LEN);
		pi->size = dv_le64(q + 32);
		pi->index_offset = dv_le64(q + 40);
		pi->index_len = dv_le32(q + 48);
		pi->known = true;
		if (pi->size > DV_MAX_PACK_SIZE || pi->index_offset > pi->size ||
		    pi->index_len > pi->size - pi->index_offset || dv_le32(q + 52) != 0) {
			dv_index_segment_release(s);
			return dv_error(err, DV_E_CORRUPT, "%s: pack %zu has an impossible size or index position", what, i);
		}
	}
	for (size_t i = 0; i < s->n; i++, q += DV_INDEX_ENTRY_SIZE) {
		struct dv_chunk_loc *l = &s->locs[i];
		memcpy(s->ids[i].b, q, DV_ID_LEN);
		l->pack = dv_le32(q + 32);
		l->stored_len = dv_le32(q + 36);
		l->raw_len = dv_le32(q + 40);
		l->offset = dv_le64(q + 48);
		if (l->pack >= s->npacks || l->raw_len == 0 || l->raw_len > DV_CHUNK_SIZE_LIMIT ||
		    l->stored_len > DV_MAX_BLOB_SIZE || dv_le32(q + 44) != 0 || l->offset > s->packs[l->pack].size ||
		    l->stored_len > s->packs[l->pack].size - l->offset) {
			dv_index_segment_release(s);
			return dv_error(err, DV_E_CORRUPT, "%s: entry %zu points outside its pack", what, i);
		}
	}
	return 0;
}

int dv_index_segment_read(struct dv_repo *r, const char *name, struct dv_index_segment *s, struct dv_err *err)
{
	struct dv_buf b = DV_BUF_INIT;
	int rc = dv_repo_get_content(r, "index", name, DV_MAX_INDEX_OBJECT, &b, err);
	if (rc == 0) {
		char what[128];
		snprintf(what, sizeof what, "index/%.16s", name);
		rc = dv_index_segment_decode(b.data, b.len, s, what, err);
	}
	dv_buf_release(&b);
	return rc;
}

/* Below this many entries the index stays in memory (~100 bytes each) and
 * no cache file is written; above, loading switches to building the cache
 * (formats/index-cache.md). */
#define DV_CHUNK_CACHE_MIN 200000

static size_t cache_min(void)
{
#ifdef DV_TEST_HOOKS
	const char *v = getenv("DISKVAULT_TEST_INDEX_CACHE_MIN");
	if (v && *v)
		return (size_t)strtoull(v, NULL, 10);
#endif
	return DV_CHUNK_CACHE_MIN;
}

/* Empties the hash table (entries and slots), keeping the pack table. */
static void drop_entries(struct dv_chunk_index *ix)
{
	free(ix->e);
	ix->e = NULL;
	ix->n = ix->cap = 0;
	free(ix->slots);
	ix->nslots = 1024;
	ix->slots = dv_calloc(ix->nslots, sizeof *ix->slots);
}

/* Moves the entries loaded so far into a new builder: from now on the
 * segments stream into its scratch files. */
static int start_build(struct dv_chunk_index *ix, const char *path, struct dv_chunk_cache_builder **b,
		       struct dv_err *err)
{
	int rc = dv_chunk_cache_builder_new(path, b, err);
	for (size_t i = 0; rc == 0 && i < ix->n; i++)
		rc = dv_chunk_cache_builder_add(*b, &ix->e[i].id, &ix->e[i].loc, err);
	if (rc < 0) {
		dv_chunk_cache_builder_abort(*b);
		*b = NULL;
		return rc;
	}
	drop_entries(ix);
	return 0;
}

int dv_chunk_index_load(struct dv_chunk_index *ix, struct dv_repo *r, struct dv_err *err)
{
	/* Sorted, so every run resolves duplicates the same way. */
	struct dv_strlist names = {0};
	struct dv_chunk_cache_builder *build = NULL;
	char *path = NULL;
	int rc = dv_repo_list_ids(r, "index", &names, err);
	if (rc < 0)
		goto out;
	if (ix->n || ix->npacks || ix->base)
		DV_BUG("dv_chunk_index_load into a non-empty index");
	uint8_t key[32];
	dv_chunk_cache_key(r->id, (const char *const *)names.v, names.n, key);
	path = dv_chunk_cache_path(r);
	if (path) {
		struct dv_pack_info *packs;
		uint32_t np;
		struct dv_err e2 = {0};
		int c = dv_chunk_cache_open(path, key, &ix->base, &packs, &np, &e2);
		if (c == 0) {
			free(ix->packs);
			ix->packs = packs;
			ix->npacks = ix->packcap = np;
			dv_debug("chunk index: %llu entries from %s", (unsigned long long)dv_chunk_cache_count(ix->base),
				 path);
			goto out;
		}
		if (c != -DV_E_NOT_FOUND)
			dv_debug("%s", e2.msg); /* damaged: rebuilt below */
	}
	size_t min = cache_min();
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		struct dv_index_segment s;
		rc = dv_index_segment_read(r, names.v[i], &s, err);
		if (rc < 0) {
			if (rc == -DV_E_CORRUPT) {
				size_t l = strlen(err->msg);
				snprintf(err->msg + l, sizeof err->msg - l,
					 " (the packs are intact: 'diskvault rebuild-index' rebuilds the index from them)");
			}
			break;
		}
		uint32_t *map = dv_calloc(s.npacks ? s.npacks : 1, sizeof *map);
		for (size_t k = 0; k < s.npacks; k++)
			map[k] = dv_chunk_index_add_pack(ix, &s.packs[k]);
		for (size_t k = 0; rc == 0 && k < s.n; k++) {
			struct dv_chunk_loc l = s.locs[k];
			l.pack = map[l.pack];
			if (build)
				rc = dv_chunk_cache_builder_add(build, &s.ids[k], &l, err);
			else
				dv_chunk_index_insert(ix, &s.ids[k], &l);
		}
		free(map);
		dv_index_segment_release(&s);
		if (rc == 0 && !build && path && ix->n > min) {
			/* Too many for memory: a cache directory that cannot be
			 * written leaves the index in memory, as before. */
			struct dv_err e2 = {0};
			if (start_build(ix, path, &build, &e2) < 0) {
				dv_debug("chunk index stays in memory: %s", e2.msg);
				free(path);
				path = NULL;
			}
		}
	}
	if (rc == 0 && build) {
		rc = dv_chunk_cache_builder_finish(build, key, ix->packs, ix->npacks, &ix->base, err);
		build = NULL;
		if (rc == 0)
			dv_debug("chunk index: %llu entries, cached in %s",
				 (unsigned long long)dv_chunk_cache_count(ix->base), path);
	} else if (rc == 0 && path) {
		unlink(path); /* small again (after a prune): a stale cache goes */
	}
	dv_chunk_cache_builder_abort(build);
out:
	free(path);
	dv_strlist_release(&ix->segs);
	ix->segs = names;
	return rc;
}

const char *const *dv_chunk_index_segments(const struct dv_chunk_index *ix, size_t *n)
{
	*n = ix->segs.n;
	return (const char *const *)ix->segs.v;
}
