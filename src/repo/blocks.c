/* blocks.c - a snapshot disk as fixed-size blocks (see repo.h). */
#include "repo_internal.h"

#include <stdlib.h>
#include <string.h>

/* The default bound of the chunk cache (decompressed bytes held). */
#define CACHE_DEFAULT (8u << 20)

/* One decompressed chunk, or a placeholder while a thread fetches it
 * (loading: others wanting the same chunk wait for it instead of fetching
 * it again, so parallel readers of one region cost one request). */
struct cached {
	struct dv_id id;
	struct dv_buf data;
	uint64_t stamp;
	bool loading;
};

struct dv_block_reader {
	struct dv_repo *r;
	struct dv_chunk_index *ix;
	struct dv_disk_index d;
	uint64_t *start;  /* start[i] = disk offset of extent i; start[n] = size */
	uint32_t bs;
	pthread_mutex_t mu;
	pthread_cond_t loaded;
	struct cached *cache;  /* unordered; looked up by id */
	size_t ncache, capcache;
	size_t cache_bytes, cache_limit;  /* bytes allocated by cached chunks; the bound */
	uint64_t clock;
	struct dv_block_reader_stats st;
};

int dv_block_reader_open(struct dv_repo *r, const char *snapshot_id, unsigned disk, uint32_t block_size,
			 struct dv_block_reader **out, struct dv_err *err)
{
	if (block_size == 0 || block_size > (64u << 20))
		return dv_error(err, DV_E_USAGE, "block size %u is not supported", block_size);
	json_t *m = NULL;
	int rc = dv_snapshot_load(r, snapshot_id, &m, err);
	if (rc < 0)
		return rc;
	json_t *disks = json_object_get(m, "disks");
	if (disk >= json_array_size(disks)) {
		rc = dv_error(err, DV_E_USAGE, "snapshot %.16s has %zu disk(s); there is no disk %u", snapshot_id,
			      json_array_size(disks), disk);
		json_decref(m);
		return rc;
	}
	struct dv_block_reader *br = dv_calloc(1, sizeof *br);
	br->r = r;
	br->bs = block_size;
	br->cache_limit = CACHE_DEFAULT;
	pthread_mutex_init(&br->mu, NULL);
	pthread_cond_init(&br->loaded, NULL);
	rc = dv_repo_load_disk(r, json_array_get(disks, disk), &br->d, err);
	json_decref(m);
	if (rc == 0) {
		br->ix = dv_chunk_index_new();
		rc = dv_chunk_index_load(br->ix, r, err);
	}
	if (rc < 0) {
		dv_block_reader_free(br);
		return rc;
	}
	br->start = dv_extent_starts(&br->d);
	*out = br;
	return 0;
}

void dv_block_reader_free(struct dv_block_reader *br)
{
	if (!br)
		return;
	for (size_t i = 0; i < br->ncache; i++)
		dv_buf_release(&br->cache[i].data);
	free(br->cache);
	pthread_cond_destroy(&br->loaded);
	pthread_mutex_destroy(&br->mu);
	dv_chunk_index_free(br->ix);
	dv_disk_index_release(&br->d);
	free(br->start);
	free(br);
}

uint64_t dv_block_reader_count(const struct dv_block_reader *br)
{
	return (br->d.disk_size + br->bs - 1) / br->bs;
}

uint64_t dv_block_reader_disk_size(const struct dv_block_reader *br) { return br->d.disk_size; }

static size_t find_extent(const struct dv_block_reader *br, uint64_t off)
{
	return dv_extent_find(br->start, br->d.n, off);
}

void dv_block_reader_info(struct dv_block_reader *br, uint64_t block, bool *has_data, struct dv_id *signature)
{
	uint64_t off = block * br->bs, end = DV_MIN(off + br->bs, br->d.disk_size);
	struct dv_sha256_ctx *c = dv_sha256_new();
	bool data = false;
	for (size_t i = find_extent(br, off); i < br->d.n && br->start[i] < end; i++) {
		const struct dv_extent *e = &br->d.v[i];
		uint64_t a = DV_MAX(off, br->start[i]), z = DV_MIN(end, br->start[i + 1]);
		struct dv_buf piece = DV_BUF_INIT;
		/* All non-data types read as zeros: one piece type for them. */
		uint32_t type = e->type == DV_EXTENT_DATA ? DV_EXTENT_DATA : DV_EXTENT_ZERO;
		dv_buf_add_le32(&piece, type);
		dv_buf_add_le64(&piece, type == DV_EXTENT_DATA ? a - br->start[i] : 0);
		dv_buf_add_le64(&piece, z - a);
		if (type == DV_EXTENT_DATA) {
			dv_buf_add(&piece, e->id.b, DV_ID_LEN);
			data = true;
		}
		dv_sha256_update(c, piece.data, piece.len);
		dv_buf_release(&piece);
	}
	dv_sha256_final(c, signature);
	*has_data = data;
}

void dv_block_reader_set_cache(struct dv_block_reader *br, size_t bytes)
{
	pthread_mutex_lock(&br->mu);
	br->cache_limit = bytes;
	pthread_mutex_unlock(&br->mu);
}

void dv_block_reader_get_stats(struct dv_block_reader *br, struct dv_block_reader_stats *out)
{
	pthread_mutex_lock(&br->mu);
	*out = br->st;
	pthread_mutex_unlock(&br->mu);
}

/* The entry for id, or NULL (mu held). */
static struct cached *cache_find(struct dv_block_reader *br, const struct dv_id *id)
{
	for (size_t i = 0; i < br->ncache; i++)
		if (dv_id_eq(&br->cache[i].id, id))
			return &br->cache[i];
	return NULL;
}

/* Removes entry c (mu held); the array stays unordered. */
static void cache_drop(struct dv_block_reader *br, struct cached *c)
{
	br->cache_bytes -= c->data.cap;
	dv_buf_release(&c->data);
	*c = br->cache[--br->ncache];
}

/* Evicts least recently used chunks until the cache fits its bound
 * (mu held); placeholders stay. */
static void cache_trim(struct dv_block_reader *br)
{
	while (br->cache_bytes > br->cache_limit) {
		struct cached *victim = NULL;
		for (size_t i = 0; i < br->ncache; i++)
			if (!br->cache[i].loading && (!victim || br->cache[i].stamp < victim->stamp))
				victim = &br->cache[i];
		if (!victim)
			break;
		cache_drop(br, victim);
		br->st.evictions++;
	}
}

/* Copies [from, from+len) of chunk id into dst, through the cache. */
static int copy_chunk(struct dv_block_reader *br, const struct dv_id *id, uint64_t from, uint64_t len, uint8_t *dst,
		      struct dv_err *err)
{
	pthread_mutex_lock(&br->mu);
	struct cached *c;
	while ((c = cache_find(br, id)) && c->loading) {
		br->st.waits++;
		pthread_cond_wait(&br->loaded, &br->mu);
	}
	if (c && c->data.len >= from + len) {
		memcpy(dst, c->data.data + from, len);
		c->stamp = ++br->clock;
		br->st.hits++;
		pthread_mutex_unlock(&br->mu);
		return 0;
	}
	br->st.misses++;
	bool cache = br->cache_limit > 0 && !c;
	if (cache) {
		if (br->ncache == br->capcache) {
			br->capcache = br->capcache ? br->capcache * 2 : 16;
			br->cache = dv_realloc(br->cache, br->capcache * sizeof *br->cache);
		}
		br->cache[br->ncache++] = (struct cached){.id = *id, .loading = true};
	}
	pthread_mutex_unlock(&br->mu);
	struct dv_buf scratch = DV_BUF_INIT, out = DV_BUF_INIT;
	int rc = dv_chunk_read(br->r, br->ix, id, &scratch, &out, err);
	if (rc == 0 && out.len < from + len)
		rc = dv_error(err, DV_E_CORRUPT, "chunk shorter than its extent");
	if (rc == 0)
		memcpy(dst, out.data + from, len);
	if (cache) {
		pthread_mutex_lock(&br->mu);
		c = cache_find(br, id);
		if (rc < 0) {
			cache_drop(br, c);  /* waiters fetch it themselves */
		} else {
			c->data = out;
			out = (struct dv_buf)DV_BUF_INIT;
			c->loading = false;
			c->stamp = ++br->clock;
			br->cache_bytes += c->data.cap;
			cache_trim(br);
		}
		pthread_cond_broadcast(&br->loaded);
		pthread_mutex_unlock(&br->mu);
	}
	dv_buf_release(&scratch);
	dv_buf_release(&out);
	return rc;
}

int dv_block_reader_read(struct dv_block_reader *br, uint64_t block, uint8_t *buf, struct dv_err *err)
{
	uint64_t off = block * br->bs, end = DV_MIN(off + br->bs, br->d.disk_size);
	if (off >= br->d.disk_size)
		return dv_error(err, DV_E_USAGE, "block %llu is past the end of the disk", (unsigned long long)block);
	memset(buf, 0, br->bs);
	for (size_t i = find_extent(br, off); i < br->d.n && br->start[i] < end; i++) {
		const struct dv_extent *e = &br->d.v[i];
		if (e->type != DV_EXTENT_DATA)
			continue;
		uint64_t a = DV_MAX(off, br->start[i]), z = DV_MIN(end, br->start[i + 1]);
		int rc = copy_chunk(br, &e->id, a - br->start[i], z - a, buf + (a - off), err);
		if (rc < 0)
			return dv_error_prefix(err, "block %llu (disk offset %llu): ", (unsigned long long)block,
					       (unsigned long long)a);
	}
	return 0;
}

void dv_block_reader_extent(struct dv_block_reader *br, uint64_t off, int *type, uint64_t *len)
{
	if (off >= br->d.disk_size) {
		*type = DV_EXTENT_ZERO;
		*len = 0;
		return;
	}
	size_t i = find_extent(br, off);
	*type = (int)br->d.v[i].type;
	*len = br->start[i + 1] - off;
	/* Neighbours of one kind are one run for the caller. */
	while (++i < br->d.n && (int)br->d.v[i].type == *type && *type != DV_EXTENT_DATA)
		*len += br->d.v[i].length;
}

int dv_block_reader_pread(struct dv_block_reader *br, uint64_t off, void *buf, size_t len, struct dv_err *err)
{
	if (off > br->d.disk_size || len > br->d.disk_size - off)
		return dv_error(err, DV_E_USAGE, "bytes %llu-%llu are past the end of the disk (%llu bytes)",
				(unsigned long long)off, (unsigned long long)(off + len - 1),
				(unsigned long long)br->d.disk_size);
	uint8_t *dst = buf;
	uint64_t end = off + len;
	for (size_t i = find_extent(br, off); i < br->d.n && br->start[i] < end; i++) {
		const struct dv_extent *e = &br->d.v[i];
		uint64_t a = DV_MAX(off, br->start[i]), z = DV_MIN(end, br->start[i + 1]);
		if (e->type == DV_EXTENT_UNREADABLE)
			return dv_error(err, DV_E_SOURCE,
					"bytes %llu-%llu of the disk could not be read when it was backed up",
					(unsigned long long)br->start[i], (unsigned long long)(br->start[i + 1] - 1));
		if (e->type != DV_EXTENT_DATA) {
			memset(dst + (a - off), 0, z - a);
			continue;
		}
		int rc = copy_chunk(br, &e->id, a - br->start[i], z - a, dst + (a - off), err);
		if (rc < 0)
			return dv_error_prefix(err, "disk offset %llu: ", (unsigned long long)a);
	}
	return 0;
}

static int source_read(void *ctx, uint64_t off, void *buf, size_t len, struct dv_err *err)
{
	return dv_block_reader_pread(ctx, off, buf, len, err);
}

void dv_block_reader_source(struct dv_block_reader *br, const char *name, struct dv_source *out)
{
	dv_source_virtual(out, name, br->d.disk_size, source_read, br);
}
