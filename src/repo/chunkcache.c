/* chunkcache.c - the local sorted chunk index file (formats/index-cache.md). */
#include "chunkcache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk/chunk.h"

#define NBUCKETS 256
#define BUCKET_REC 56 /* entry (48) + u64 arrival number */

struct dv_chunk_cache {
	int fd;
	uint64_t n;        /* entries */
	uint64_t entries;  /* file offset of entry 0 */
	uint64_t *fences;  /* first 8 id bytes (big-endian value) of each block */
	uint64_t nblocks;
	uint32_t npacks;
};

static uint64_t prefix_of(const uint8_t *id)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | id[i];
	return v;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void dv_chunk_cache_key(const char *repo_id, const char *const *segs, size_t n, uint8_t key[32])
{
	struct dv_sha256_ctx *h = dv_sha256_new();
	static const char tag[] = "diskvault-index-cache-1\n";
	dv_sha256_update(h, tag, sizeof tag - 1);
	dv_sha256_update(h, repo_id, strlen(repo_id));
	dv_sha256_update(h, "\n", 1);
	for (size_t i = 0; i < n; i++) {
		dv_sha256_update(h, segs[i], strlen(segs[i]));
		dv_sha256_update(h, "\n", 1);
	}
	struct dv_id out;
	dv_sha256_final(h, &out);
	memcpy(key, out.b, 32);
}

char *dv_chunk_cache_path(const struct dv_repo *r)
{
	char *dir;
	const char *v = getenv("DISKVAULT_CACHE_DIR");
	if (v && *v)
		dir = dv_asprintf("%s/index", v);
	else if ((v = getenv("XDG_CACHE_HOME")) && *v)
		dir = dv_asprintf("%s/diskvault/index", v);
	else if ((v = getenv("HOME")) && *v)
		dir = dv_asprintf("%s/.cache/diskvault/index", v);
	else
		return NULL;
	/* The same repository id at two locations (a copy) gets two caches:
	 * their segment sets differ anyway. */
	const char *loc = dv_store_location(r->store);
	char *real = dv_store_is_local(r->store) ? realpath(loc, NULL) : NULL;
	char *key = dv_asprintf("%s\n%s", r->id, real ? real : loc);
	free(real);
	struct dv_id h;
	dv_sha256(key, strlen(key), &h);
	free(key);
	char hex[DV_ID_HEX_LEN + 1];
	dv_id_hex(hex, &h);
	char *path = dv_asprintf("%s/%.32s.dvixc", dir, hex);
	free(dir);
	return path;
}

/* ---- reading ------------------------------------------------------------ */

void dv_chunk_cache_free(struct dv_chunk_cache *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->fences);
	free(c);
}

uint64_t dv_chunk_cache_count(const struct dv_chunk_cache *c) { return c->n; }
size_t dv_chunk_cache_memory(const struct dv_chunk_cache *c) { return sizeof *c + c->nblocks * sizeof *c->fences; }

static void decode_entry(const uint8_t *q, struct dv_chunk_loc *l)
{
	l->pack = dv_le32(q + 32);
	l->offset = dv_le32(q + 36);
	l->stored_len = dv_le32(q + 40);
	l->raw_len = dv_le32(q + 44);
}

static int bad(struct dv_err *err, const char *path, const char *why)
{
	return dv_error(err, DV_E_CORRUPT, "index cache %s: %s (it is rebuilt from the repository)", path, why);
}

int dv_chunk_cache_open(const char *path, const uint8_t key[32], struct dv_chunk_cache **out,
			struct dv_pack_info **packs_out, uint32_t *npacks_out, struct dv_err *err)
{
	*out = NULL;
	*packs_out = NULL;
	*npacks_out = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -DV_E_NOT_FOUND : dv_error_errno(err, errno, "opening %s", path);
	struct dv_chunk_cache *c = dv_calloc(1, sizeof *c);
	c->fd = fd;
	struct dv_pack_info *packs = NULL;
	struct dv_sha256_ctx *h = NULL;
	uint8_t *buf = NULL;
	int rc = 0;
	struct stat st;
	uint8_t hdr[DV_IXC_HEADER_SIZE];
	if (fstat(fd, &st) < 0) {
		rc = dv_error_errno(err, errno, "stat of %s", path);
		goto fail;
	}
	if ((uint64_t)st.st_size < DV_IXC_HEADER_SIZE + DV_IXC_TRAILER_SIZE) {
		rc = bad(err, path, "too short");
		goto fail;
	}
	if ((rc = dv_pread_all(fd, hdr, sizeof hdr, 0, err, path)) < 0)
		goto fail;
	if (memcmp(hdr, DV_IXC_MAGIC, 8) || dv_le32(hdr + 8) != DV_IXC_VERSION ||
	    dv_le32(hdr + 12) != DV_IXC_ENTRY_SIZE || dv_le32(hdr + 60) != DV_IXC_BLOCK_ENTRIES) {
		/* another version's cache: not ours to read, rebuilt */
		rc = -DV_E_NOT_FOUND;
		goto fail;
	}
	if (memcmp(hdr + 16, key, 32)) {
		rc = -DV_E_NOT_FOUND;
		goto fail;
	}
	uint64_t n = dv_le64(hdr + 48);
	uint32_t np = dv_le32(hdr + 56);
	uint64_t want = DV_IXC_HEADER_SIZE + (uint64_t)np * DV_IXC_PACK_SIZE;
	if (n > ((uint64_t)st.st_size) / DV_IXC_ENTRY_SIZE ||
	    (uint64_t)st.st_size != want + n * DV_IXC_ENTRY_SIZE + DV_IXC_TRAILER_SIZE) {
		rc = bad(err, path, "size does not match its counts");
		goto fail;
	}
	c->n = n;
	c->npacks = np;
	c->entries = want;
	c->nblocks = (n + DV_IXC_BLOCK_ENTRIES - 1) / DV_IXC_BLOCK_ENTRIES;
	c->fences = dv_calloc(c->nblocks ? c->nblocks : 1, sizeof *c->fences);
	packs = dv_calloc(np ? np : 1, sizeof *packs);

	/* One sequential pass: checksum, pack records, entries (bounds, strictly
	 * ascending ids), fences. */
	h = dv_sha256_new();
	size_t bufsz = 1 << 20;
	bufsz -= bufsz % (DV_IXC_ENTRY_SIZE * DV_IXC_BLOCK_ENTRIES);
	buf = dv_malloc(bufsz);
	uint64_t off = DV_IXC_HEADER_SIZE;
	for (uint32_t i = 0; i < np; i++) {
		uint8_t q[DV_IXC_PACK_SIZE];
		if ((rc = dv_pread_all(fd, q, sizeof q, (off_t)off, err, path)) < 0)
			goto fail;
		off += sizeof q;
		dv_sha256_update(h, q, sizeof q);
		struct dv_pack_info *p = &packs[i];
		memcpy(p->id.b, q, DV_ID_LEN);
		p->size = dv_le64(q + 32);
		p->index_offset = dv_le64(q + 40);
		p->index_len = dv_le32(q + 48);
		p->known = true;
		if (p->size > DV_MAX_PACK_SIZE || p->index_offset > p->size || p->index_len > p->size - p->index_offset ||
		    dv_le32(q + 52)) {
			rc = bad(err, path, "a pack record is impossible");
			goto fail;
		}
	}
	uint8_t prev[DV_ID_LEN];
	for (uint64_t i = 0; i < n;) {
		size_t take = (size_t)((n - i) * DV_IXC_ENTRY_SIZE < bufsz ? (n - i) * DV_IXC_ENTRY_SIZE : bufsz);
		if ((rc = dv_pread_all(fd, buf, take, (off_t)off, err, path)) < 0)
			goto fail;
		dv_sha256_update(h, buf, take);
		off += take;
		for (size_t k = 0; k < take; k += DV_IXC_ENTRY_SIZE, i++) {
			const uint8_t *q = buf + k;
			struct dv_chunk_loc l;
			decode_entry(q, &l);
			if ((i && memcmp(prev, q, DV_ID_LEN) >= 0) || l.pack >= np || l.raw_len == 0 ||
			    l.raw_len > DV_CHUNK_SIZE_LIMIT || l.stored_len > DV_MAX_BLOB_SIZE ||
			    l.offset > packs[l.pack].size || l.stored_len > packs[l.pack].size - l.offset) {
				rc = bad(err, path, "an entry is out of order or points outside its pack");
				goto fail;
			}
			memcpy(prev, q, DV_ID_LEN);
			if (i % DV_IXC_BLOCK_ENTRIES == 0)
				c->fences[i / DV_IXC_BLOCK_ENTRIES] = prefix_of(q);
		}
	}
	struct dv_id sum;
	dv_sha256_final(h, &sum);
	h = NULL;
	uint8_t trailer[DV_IXC_TRAILER_SIZE];
	if ((rc = dv_pread_all(fd, trailer, sizeof trailer, (off_t)off, err, path)) < 0)
		goto fail;
	if (memcmp(trailer, sum.b, 32)) {
		rc = bad(err, path, "checksum mismatch");
		goto fail;
	}
	free(buf);
	*out = c;
	*packs_out = packs;
	*npacks_out = np;
	return 0;
fail:
	if (h) {
		struct dv_id x;
		dv_sha256_final(h, &x);
	}
	free(buf);
	free(packs);
	dv_chunk_cache_free(c);
	return rc;
}

bool dv_chunk_cache_lookup(const struct dv_chunk_cache *c, const struct dv_id *id, struct dv_chunk_loc *loc)
{
	if (!c->n)
		return false;
	uint64_t p = prefix_of(id->b);
	/* The first block whose first prefix is >= p, minus one: the block
	 * that may hold id; ids sharing 8 bytes may continue into the next. */
	uint64_t lo = 0, hi = c->nblocks;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (c->fences[mid] < p)
			lo = mid + 1;
		else
			hi = mid;
	}
	uint64_t b = lo ? lo - 1 : 0;
	uint8_t blk[DV_IXC_BLOCK_ENTRIES * DV_IXC_ENTRY_SIZE];
	for (; b < c->nblocks && (b < lo || c->fences[b] <= p); b++) {
		uint64_t first = b * DV_IXC_BLOCK_ENTRIES;
		size_t cnt = (size_t)(c->n - first < DV_IXC_BLOCK_ENTRIES ? c->n - first : DV_IXC_BLOCK_ENTRIES);
		size_t len = cnt * DV_IXC_ENTRY_SIZE;
		ssize_t got;
		do
			got = pread(c->fd, blk, len, (off_t)(c->entries + first * DV_IXC_ENTRY_SIZE));
		while (got < 0 && errno == EINTR);
		if (got != (ssize_t)len)
			DV_BUG("index cache read failed: %s", got < 0 ? strerror(errno) : "short read");
		size_t l = 0, h = cnt;
		while (l < h) {
			size_t m = l + (h - l) / 2;
			int cmp = memcmp(blk + m * DV_IXC_ENTRY_SIZE, id->b, DV_ID_LEN);
			if (cmp == 0) {
				if (loc)
					decode_entry(blk + m * DV_IXC_ENTRY_SIZE, loc);
				return true;
			}
			if (cmp < 0)
				l = m + 1;
			else
				h = m;
		}
		if (l < cnt)
			return false; /* a larger id follows in this block */
	}
	return false;
}

int dv_chunk_cache_each(const struct dv_chunk_cache *c, dv_chunk_index_fn fn, void *ctx)
{
	size_t bufsz = DV_IXC_ENTRY_SIZE * 4096;
	uint8_t *buf = dv_malloc(bufsz);
	int rc = 0;
	for (uint64_t i = 0; rc == 0 && i < c->n;) {
		size_t take = (size_t)((c->n - i) * DV_IXC_ENTRY_SIZE < bufsz ? (c->n - i) * DV_IXC_ENTRY_SIZE : bufsz);
		ssize_t got = pread(c->fd, buf, take, (off_t)(c->entries + i * DV_IXC_ENTRY_SIZE));
		if (got != (ssize_t)take)
			DV_BUG("index cache read failed");
		for (size_t k = 0; rc == 0 && k < take; k += DV_IXC_ENTRY_SIZE, i++) {
			struct dv_id id;
			struct dv_chunk_loc l;
			memcpy(id.b, buf + k, DV_ID_LEN);
			decode_entry(buf + k, &l);
			rc = fn(&id, &l, ctx);
		}
	}
	free(buf);
	return rc;
}

/* ---- building ----------------------------------------------------------- */

struct dv_chunk_cache_builder {
	char *path;
	FILE *bucket[NBUCKETS];
	uint64_t count[NBUCKETS];
	uint64_t seq;
};

void dv_chunk_cache_builder_abort(struct dv_chunk_cache_builder *b)
{
	if (!b)
		return;
	for (int i = 0; i < NBUCKETS; i++)
		if (b->bucket[i])
			fclose(b->bucket[i]);
	free(b->path);
	free(b);
}

static char *dir_of(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? dv_asprintf("%.*s", (int)(s - path), path) : dv_strdup(".");
}

/* An unlinked scratch file in dir (O_TMPFILE where the filesystem has it). */
static int scratch_file(const char *dir, struct dv_err *err)
{
	int fd = -1;
#ifdef O_TMPFILE
	fd = open(dir, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
#endif
	char rnd[33];
	dv_random_hex(rnd, 16);
	char *p = dv_asprintf("%s/build-%s.tmp", dir, rnd);
	fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		fd = dv_error_errno(err, errno, "creating %s", p);
	else
		unlink(p);
	free(p);
	return fd;
}

int dv_chunk_cache_builder_new(const char *path, struct dv_chunk_cache_builder **out, struct dv_err *err)
{
	*out = NULL;
	char *dir = dir_of(path);
	int rc = dv_mkdir_p(dir, 0700, err);
	struct dv_chunk_cache_builder *b = dv_calloc(1, sizeof *b);
	b->path = dv_strdup(path);
	for (int i = 0; rc == 0 && i < NBUCKETS; i++) {
		int fd = scratch_file(dir, err);
		if (fd < 0) {
			rc = fd;
			break;
		}
		b->bucket[i] = fdopen(fd, "w+b");
		if (!b->bucket[i]) {
			rc = dv_error_errno(err, errno, "opening a scratch file in %s", dir);
			close(fd);
		}
	}
	free(dir);
	if (rc < 0) {
		dv_chunk_cache_builder_abort(b);
		return rc;
	}
	*out = b;
	return 0;
}

int dv_chunk_cache_builder_add(struct dv_chunk_cache_builder *b, const struct dv_id *id, const struct dv_chunk_loc *loc,
			       struct dv_err *err)
{
	if (loc->offset > UINT32_MAX)
		return dv_error(err, DV_E_CORRUPT, "chunk offset %llu does not fit the index cache",
				(unsigned long long)loc->offset);
	uint8_t rec[BUCKET_REC];
	memcpy(rec, id->b, DV_ID_LEN);
	put_le32(rec + 32, loc->pack);
	put_le32(rec + 36, (uint32_t)loc->offset);
	put_le32(rec + 40, loc->stored_len);
	put_le32(rec + 44, loc->raw_len);
	put_le64(rec + 48, b->seq++);
	FILE *f = b->bucket[id->b[0]];
	if (fwrite(rec, sizeof rec, 1, f) != 1)
		return dv_error_errno(err, errno, "writing the index cache scratch files for %s", b->path);
	b->count[id->b[0]]++;
	return 0;
}

static int cmp_rec(const void *a, const void *b)
{
	int c = memcmp(a, b, DV_ID_LEN);
	if (c)
		return c;
	uint64_t x = dv_le64((const uint8_t *)a + 48), y = dv_le64((const uint8_t *)b + 48);
	return x < y ? -1 : x > y;
}

/* Buffered output with the running checksum. */
struct out {
	int fd;
	uint8_t *buf;
	size_t len, cap;
	uint64_t off;
	struct dv_sha256_ctx *h;
	const char *what;
};

static int out_flush(struct out *o, struct dv_err *err)
{
	int rc = dv_pwrite_all(o->fd, o->buf, o->len, (off_t)o->off, err, o->what);
	o->off += o->len;
	o->len = 0;
	return rc;
}

static int out_add(struct out *o, const void *p, size_t n, struct dv_err *err)
{
	if (o->len + n > o->cap) {
		int rc = out_flush(o, err);
		if (rc < 0)
			return rc;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	if (o->h)
		dv_sha256_update(o->h, p, n);
	return 0;
}

int dv_chunk_cache_builder_finish(struct dv_chunk_cache_builder *b, const uint8_t key[32],
				  const struct dv_pack_info *packs, uint32_t npacks, struct dv_chunk_cache **out,
				  struct dv_err *err)
{
	*out = NULL;
	char rnd[33];
	dv_random_hex(rnd, 16);
	char *tmp = dv_asprintf("%s.%s.tmp", b->path, rnd);
	struct out o = {.fd = -1, .cap = 1 << 20, .off = DV_IXC_HEADER_SIZE, .what = tmp};
	uint8_t *recs = NULL;
	int rc = 0;
	o.fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (o.fd < 0) {
		rc = dv_error_errno(err, errno, "creating %s", tmp);
		goto done;
	}
	o.buf = dv_malloc(o.cap);
	o.h = dv_sha256_new();
	for (uint32_t i = 0; rc == 0 && i < npacks; i++) {
		uint8_t q[DV_IXC_PACK_SIZE] = {0};
		memcpy(q, packs[i].id.b, DV_ID_LEN);
		put_le64(q + 32, packs[i].size);
		put_le64(q + 40, packs[i].index_offset);
		put_le32(q + 48, packs[i].index_len);
		rc = out_add(&o, q, sizeof q, err);
	}
	uint64_t n = 0;
	for (int k = 0; rc == 0 && k < NBUCKETS; k++) {
		FILE *f = b->bucket[k];
		size_t cnt = (size_t)b->count[k];
		if (!cnt)
			continue;
		recs = dv_realloc(recs, cnt * BUCKET_REC);
		if (fflush(f) || fseeko(f, 0, SEEK_SET) || fread(recs, BUCKET_REC, cnt, f) != cnt) {
			rc = dv_error_errno(err, errno ? errno : EIO, "reading back the index cache scratch files");
			break;
		}
		fclose(f);
		b->bucket[k] = NULL;
		qsort(recs, cnt, BUCKET_REC, cmp_rec);
		for (size_t i = 0; rc == 0 && i < cnt; i++) {
			const uint8_t *r = recs + i * BUCKET_REC;
			if (i && !memcmp(r, r - BUCKET_REC, DV_ID_LEN))
				continue; /* a later copy of the same chunk */
			if (dv_le32(r + 32) >= npacks)
				DV_BUG("index cache entry names pack %u of %u", dv_le32(r + 32), npacks);
			rc = out_add(&o, r, DV_IXC_ENTRY_SIZE, err);
			n++;
		}
	}
	free(recs);
	recs = NULL;
	if (rc == 0)
		rc = out_flush(&o, err);
	struct dv_id sum;
	dv_sha256_final(o.h, &sum);
	o.h = NULL;
	if (rc == 0)
		rc = dv_pwrite_all(o.fd, sum.b, sizeof sum.b, (off_t)o.off, err, tmp);
	if (rc == 0) {
		uint8_t hdr[DV_IXC_HEADER_SIZE] = {0};
		memcpy(hdr, DV_IXC_MAGIC, 8);
		put_le32(hdr + 8, DV_IXC_VERSION);
		put_le32(hdr + 12, DV_IXC_ENTRY_SIZE);
		memcpy(hdr + 16, key, 32);
		put_le64(hdr + 48, n);
		put_le32(hdr + 56, npacks);
		put_le32(hdr + 60, DV_IXC_BLOCK_ENTRIES);
		rc = dv_pwrite_all(o.fd, hdr, sizeof hdr, 0, err, tmp);
	}
	if (rc == 0 && fsync(o.fd) < 0)
		rc = dv_error_errno(err, errno, "fsync of %s", tmp);
	/* Opened (and checked) under its temporary name: the descriptor stays
	 * ours whatever other processes rename over the path later. */
	if (rc == 0) {
		struct dv_pack_info *p;
		uint32_t np;
		rc = dv_chunk_cache_open(tmp, key, out, &p, &np, err);
		free(p);
		if (rc == -DV_E_NOT_FOUND)
			DV_BUG("index cache %s written with another key", tmp);
	}
	if (rc == 0 && rename(tmp, b->path) < 0)
		rc = dv_error_errno(err, errno, "renaming %s", tmp);
	if (rc == 0) {
		char *dir = dir_of(b->path);
		rc = dv_fsync_dir(dir, err);
		free(dir);
	}
	if (rc < 0) {
		dv_chunk_cache_free(*out);
		*out = NULL;
	}
done:
	if (o.h) {
		struct dv_id x;
		dv_sha256_final(o.h, &x);
	}
	if (o.fd >= 0)
		close(o.fd);
	if (rc < 0)
		unlink(tmp);
	free(o.buf);
	free(tmp);
	dv_chunk_cache_builder_abort(b);
	return rc;
}
