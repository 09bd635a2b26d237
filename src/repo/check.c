/*
 * check.c - repository structure check. Reads metadata only (segments,
 * pack indexes by ranged reads, manifests, disk indexes); reading chunk
 * data is verify's job. Errors: missing or truncated packs, pack indexes
 * that disagree with the index segments, corrupt manifests or disk
 * indexes, chunks a snapshot needs that no pack holds. Garbage (unindexed
 * packs, unreferenced chunks, leftover temporary files) is reported, not
 * an error: an interrupted backup leaves it, prune removes it.
 */
#include <stdio.h>
#include "repo_internal.h"

#include <stdlib.h>
#include <string.h>

struct packrec {
	struct dv_pack_info info;
	uint64_t entries;   /* per the index segments */
	bool listed;        /* exists in packs/ */
	uint64_t listed_size;
};

struct checker {
	struct dv_repo *r;
	dv_check_problem_fn problem;
	void *ctx;
	struct dv_check_report *rep;
	struct dv_chunk_index *chunks;  /* chunk id -> any location */
	struct dv_chunk_index *packmap; /* pack id -> packrec number (loc.pack) */
	struct dv_chunk_index *placed;  /* H(pack id, chunk id) -> location */
	struct packrec *packs;
	size_t npacks, cap;
	struct dv_chunk_index *referenced;
	struct dv_index_segment *segs;  /* every readable segment, in name order */
	size_t nsegs;
	struct dv_strlist names;
};

static void report(struct checker *c, bool is_error, const char *fmt, ...) DV_PRINTF(3, 4);
static void report(struct checker *c, bool is_error, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (is_error)
		c->rep->errors++;
	if (c->problem)
		c->problem(msg, is_error, c->ctx);
}

static void placement_key(const struct dv_id *pack, const struct dv_id *chunk, struct dv_id *key)
{
	uint8_t both[2 * DV_ID_LEN];
	memcpy(both, pack->b, DV_ID_LEN);
	memcpy(both + DV_ID_LEN, chunk->b, DV_ID_LEN);
	dv_sha256(both, sizeof both, key);
}

static size_t pack_rec(struct checker *c, const struct dv_pack_info *p)
{
	size_t no;
	c->packs = dv_pack_table_find(c->packmap, c->packs, sizeof *c->packs, &c->npacks, &c->cap, p, &no);
	return no;
}

static const char *base_of(const char *name)
{
	const char *s = strrchr(name, '/');
	return s ? s + 1 : name;
}

static int check_segments(struct checker *c, struct dv_err *err)
{
	int rc = dv_store_list_names(c->r->store, "index/", &c->names, err);
	if (rc < 0)
		return rc;
	dv_strlist_sort(&c->names); /* prune's order: the same copy of a chunk is the one kept */
	c->segs = dv_calloc(c->names.n ? c->names.n : 1, sizeof *c->segs);
	for (size_t i = 0; i < c->names.n; i++) {
		struct dv_id x;
		if (dv_id_parse(&x, base_of(c->names.v[i])) < 0) {
			report(c, false, "%s: unexpected object in index/", c->names.v[i]);
			c->rep->stray_objects++;
			continue;
		}
		struct dv_index_segment s;
		struct dv_err e;
		if (dv_index_segment_read(c->r, base_of(c->names.v[i]), &s, &e) < 0) {
			report(c, true, "%s", e.msg);
			continue;
		}
		c->rep->index_segments++;
		size_t *map = dv_calloc(s.npacks ? s.npacks : 1, sizeof *map);
		for (size_t k = 0; k < s.npacks; k++)
			map[k] = pack_rec(c, &s.packs[k]);
		for (size_t k = 0; k < s.n; k++) {
			struct packrec *p = &c->packs[map[s.locs[k].pack]];
			struct dv_chunk_loc loc = s.locs[k];
			loc.pack = (uint32_t)map[loc.pack];
			dv_chunk_index_insert(c->chunks, &s.ids[k], &loc);
			struct dv_id key;
			placement_key(&p->info.id, &s.ids[k], &key);
			if (dv_chunk_index_insert(c->placed, &key, &loc))
				p->entries++;
		}
		free(map);
		c->segs[c->nsegs++] = s;
	}
	return 0;
}

static int check_packs(struct checker *c, struct dv_err *err)
{
	int rc = dv_store_list_names(c->r->store, "packs/", &c->names, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < c->names.n; i++) {
		struct dv_id id;
		struct dv_chunk_loc loc;
		uint64_t size;
		if (dv_id_parse(&id, base_of(c->names.v[i])) < 0) {
			report(c, false, "%s: unexpected object in packs/", c->names.v[i]);
			c->rep->stray_objects++;
			continue;
		}
		if (!dv_chunk_index_lookup(c->packmap, &id, &loc)) {
			report(c, false, "%s: pack is not in any index (left by an interrupted backup; prune removes it)",
			       c->names.v[i]);
			c->rep->unindexed_packs++;
			continue;
		}
		struct dv_err e;
		if (dv_store_stat(c->r->store, c->names.v[i], &size, &e) < 0) {
			report(c, true, "%s", e.msg);
			continue;
		}
		c->packs[loc.pack].listed = true;
		c->packs[loc.pack].listed_size = size;
	}
	for (size_t i = 0; i < c->npacks; i++) {
		struct packrec *p = &c->packs[i];
		char name[128];
		dv_pack_name(name, sizeof name, &p->info.id);
		c->rep->packs++;
		if (!p->listed) {
			report(c, true, "%s: pack is missing", name);
			continue;
		}
		if (p->listed_size != p->info.size) {
			report(c, true, "%s: pack has %llu bytes, the index says %llu (truncated or damaged)", name,
			       (unsigned long long)p->listed_size, (unsigned long long)p->info.size);
			continue;
		}
		struct dv_pack_entry *e = NULL;
		size_t n = 0;
		struct dv_err er;
		if (dv_pack_read_index(c->r, &p->info, &e, &n, &er) < 0) {
			report(c, true, "%s", er.msg);
			continue;
		}
		size_t bad = 0;
		for (size_t k = 0; k < n; k++) {
			struct dv_id key;
			struct dv_chunk_loc loc;
			placement_key(&p->info.id, &e[k].id, &key);
			if (!dv_chunk_index_lookup(c->placed, &key, &loc) || loc.offset != e[k].offset ||
			    loc.stored_len != e[k].stored_len || loc.raw_len != e[k].raw_len)
				bad++;
		}
		if (bad || n != p->entries)
			report(c, true, "%s: pack index (%zu entries) disagrees with the index segments (%llu entries, "
			       "%zu mismatches)", name, n, (unsigned long long)p->entries, bad);
		free(e);
	}
	return 0;
}

static int check_snapshots(struct checker *c, struct dv_err *err)
{
	int rc = dv_store_list_names(c->r->store, "snapshots/", &c->names, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < c->names.n; i++) {
		const char *id = base_of(c->names.v[i]);
		struct dv_id x;
		if (dv_id_parse(&x, id) < 0) {
			report(c, false, "%s: unexpected object in snapshots/", c->names.v[i]);
			c->rep->stray_objects++;
			continue;
		}
		json_t *m;
		struct dv_err e;
		if (dv_snapshot_load(c->r, id, &m, &e) < 0) {
			report(c, true, "%s", e.msg);
			continue;
		}
		c->rep->snapshots++;
		json_t *disks = json_object_get(m, "disks");
		for (size_t k = 0; k < json_array_size(disks); k++) {
			const char *ix = json_string_value(json_object_get(json_array_get(disks, k), "index"));
			struct dv_disk_index d;
			if (dv_disk_index_read(c->r, ix, &d, &e) < 0) {
				report(c, true, "snapshot %.16s disk %zu: %s", id, k, e.msg);
				continue;
			}
			c->rep->disk_indexes++;
			uint64_t off = 0, missing = 0, first = 0;
			for (size_t j = 0; j < d.n; j++) {
				const struct dv_extent *x2 = &d.v[j];
				if (x2->type == DV_EXTENT_DATA) {
					dv_chunk_index_insert(c->referenced, &x2->id, &(struct dv_chunk_loc){0});
					if (!dv_chunk_index_lookup(c->chunks, &x2->id, NULL) && !missing++)
						first = off;
				}
				off += x2->length;
			}
			if (missing)
				report(c, true, "snapshot %.16s disk %zu: %llu chunk(s) missing from every pack, the first "
				       "at disk offset %llu", id, k, (unsigned long long)missing, (unsigned long long)first);
			dv_disk_index_release(&d);
		}
		json_decref(m);
	}
	return 0;
}

static int count_garbage(const struct dv_id *id, const struct dv_chunk_loc *loc, void *ctx)
{
	struct checker *c = ctx;
	c->rep->chunks++;
	if (!dv_chunk_index_lookup(c->referenced, id, NULL)) {
		c->rep->unreferenced_chunks++;
		c->rep->unreferenced_bytes += loc->stored_len;
	}
	return 0;
}

static int check_tmp(struct checker *c, struct dv_err *err)
{
	int rc = dv_store_list_names(c->r->store, "tmp/", &c->names, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < c->names.n; i++) {
		report(c, false, "%s: temporary file (from a running or interrupted backup)", c->names.v[i]);
		c->rep->stray_objects++;
	}
	return 0;
}

static void bad_blob(const char *msg, void *ctx) { report(ctx, true, "%s", msg); }

/* Reads a whole pack: its SHA-256 must be its name, and every blob its pack
 * index lists must decompress to its chunk id. */
static void read_pack(struct checker *c, const struct packrec *p)
{
	char name[128];
	dv_pack_name(name, sizeof name, &p->info.id);
	struct dv_buf b = DV_BUF_INIT;
	struct dv_err e;
	if (dv_store_get(c->r->store, name, DV_MAX_PACK_SIZE, &b, &e) < 0) {
		report(c, true, "%s", e.msg);
		goto out;
	}
	c->rep->packs_read++;
	c->rep->bytes_read += b.len;
	struct dv_id got;
	dv_sha256(b.data, b.len, &got);
	if (!dv_id_eq(&got, &p->info.id)) {
		report(c, true, "%s: content does not match its name (corrupt)", name);
		goto out;
	}
	struct dv_pack_entry *ents = NULL;
	size_t n = 0;
	if (dv_pack_verify(c->r, b.data, b.len, &p->info, name, &ents, &n, bad_blob, c, &e) < 0)
		report(c, true, "%s", e.msg);
	free(ents);
out:
	dv_buf_release(&b);
}

static void read_data(struct checker *c, double fraction)
{
	size_t n = 0;
	for (size_t i = 0; i < c->npacks; i++)
		if (c->packs[i].listed && c->packs[i].listed_size == c->packs[i].info.size)
			n++;
	size_t want = fraction >= 1 ? n : (size_t)((double)n * fraction + 0.999999);
	/* Choose `want` of the n readable packs uniformly (selection sampling):
	 * a nightly 5% reads everything in about 20 nights on average. */
	size_t seen = 0, picked = 0;
	for (size_t i = 0; i < c->npacks && picked < want; i++) {
		struct packrec *p = &c->packs[i];
		if (!p->listed || p->listed_size != p->info.size)
			continue;
		uint32_t rnd;
		dv_random_bytes(&rnd, sizeof rnd);
		if ((double)rnd / 4294967296.0 * (double)(n - seen) < (double)(want - picked)) {
			read_pack(c, p);
			picked++;
		}
		seen++;
		if (dv_repo_interrupted())
			break;
	}
}

int dv_check(struct dv_repo *r, const struct dv_check_opts *o, dv_check_problem_fn problem, void *ctx,
	     struct dv_check_report *rep, struct dv_err *err)
{
	memset(rep, 0, sizeof *rep);
	struct dv_lock *lock = NULL;
	int rc = dv_lock_acquire(r, false, &lock, err);
	if (rc < 0)
		return rc;
	struct checker c = {.r = r, .problem = problem, .ctx = ctx, .rep = rep};
	c.chunks = dv_chunk_index_new();
	c.packmap = dv_chunk_index_new();
	c.placed = dv_chunk_index_new();
	c.referenced = dv_chunk_index_new();
	rc = check_segments(&c, err);
	if (rc == 0)
		rc = check_packs(&c, err);
	if (rc == 0)
		rc = check_snapshots(&c, err);
	if (rc == 0 && dv_store_is_local(r->store))
		rc = check_tmp(&c, err);
	if (rc == 0 && o && o->read_data > 0)
		read_data(&c, o->read_data);
	if (rc == 0) {
		dv_chunk_index_each(c.chunks, count_garbage, &c);
		if (rep->unreferenced_chunks)
			report(&c, false, "%llu chunk(s), %llu stored bytes, are not used by any snapshot (prune removes them)",
			       (unsigned long long)rep->unreferenced_chunks, (unsigned long long)rep->unreferenced_bytes);
		struct dv_usage u;
		dv_usage_count(&u, c.segs, c.nsegs, c.referenced);
		rep->used_bytes = u.used_bytes;
		rep->unused_bytes = u.unused_bytes;
		rep->duplicate_chunks = u.duplicates;
		rep->duplicate_bytes = u.duplicate_bytes;
		dv_usage_release(&u);
		if (rep->duplicate_chunks)
			report(&c, false, "%llu further copies of used chunks, %llu stored bytes, are in more than one pack "
			       "(unused: prune keeps one copy)", (unsigned long long)rep->duplicate_chunks,
			       (unsigned long long)rep->duplicate_bytes);
	}
	if (rc == 0 && rep->errors)
		rc = dv_error(err, DV_E_CORRUPT, "repository %s: check found %llu error(s)", dv_store_location(r->store),
			      (unsigned long long)rep->errors);
	dv_strlist_release(&c.names);
	for (size_t i = 0; i < c.nsegs; i++)
		dv_index_segment_release(&c.segs[i]);
	free(c.segs);
	free(c.packs);
	dv_chunk_index_free(c.chunks);
	dv_chunk_index_free(c.packmap);
	dv_chunk_index_free(c.placed);
	dv_chunk_index_free(c.referenced);
	dv_lock_release(lock);
	return rc;
}
