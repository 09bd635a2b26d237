/*
 * restore.c - restore and verify. The disk index is checked against the
 * digest in the manifest before anything is written; every chunk is
 * checked against its id after decompression. Together they prove that
 * the restored disk is, byte for byte, the disk that was imaged (with
 * zeros where the snapshot recorded zero, unused or unreadable extents).
 *
 * The reads are planned (docs/s3.md, "Reads"): the disk index
 * names every chunk the disk uses and the chunk index where its blob lies
 * (pack, offset, stored length). The uses are sorted by pack and offset, so
 * a chunk used at several disk offsets is one blob, fetched once and
 * written at each of them. Blobs of one pack that are close together are
 * fetched as one ranged read: the gaps between them (tar headers, blobs
 * other snapshots use) are read too, at most RANGE_GAP each and in total at
 * most GAP_BUDGET_PCT percent of the blob bytes, smallest gaps first; a
 * range stops growing at RANGE_MAX. A pool of workers fetches ranges (one
 * request, one connection each), decompresses, verifies and writes the
 * chunks of a range as soon as it has arrived; memory is the ranges in
 * flight, whatever the disk size. The read-ahead of the S3 store is off
 * meanwhile: the ranges are exactly what is needed.
 *
 * Errors name the disk offset of the first use of the failing chunk; the
 * first failure collected is the first in pack order.
 */
#include <stdio.h>
#include "repo_internal.h"

#include <stdlib.h>
#include <string.h>

#define RANGE_MAX (8u << 20)
#define RANGE_GAP (256u << 10)  /* default; DISKVAULT_READ_GAP */
#define GAP_BUDGET_PCT 5

/* One use of a chunk on the disk, where its blob is stored. */
struct use {
	uint64_t pack_off;   /* of the blob in its pack */
	uint64_t disk_off;
	size_t ext;          /* in the disk index: the chunk id and length */
	uint32_t pack;       /* in the chunk index's pack table */
	uint32_t stored_len, raw_len;
	bool join;           /* read together with the blob before it (same pack) */
};

/* A disk's data extents as uses, sorted by (pack, offset, disk offset). */
struct plan {
	struct use *v;
	size_t n;
	uint64_t gap_bytes;  /* planned bytes between blobs */
};

/* One ranged read: uses [first, first + n) of the plan. */
struct rjob {
	size_t first, n;
	uint64_t fetched;     /* bytes of the range */
	uint64_t bad_off;     /* disk offset of the failure */
	int rc;
	struct dv_err err;
	struct rjob *next_free;
};

struct rctx {
	struct dv_repo *r;
	struct dv_chunk_index *ix;
	struct dv_target *target; /* NULL: verify only */
	const struct dv_disk_index *d;
	const struct use *uses;
};

static bool same_blob(const struct use *a, const struct use *b)
{
	return a->pack == b->pack && a->pack_off == b->pack_off;
}

/* Fetches a range and handles the chunks in it. Buffers are released at
 * the end: a finished job waiting in the queue holds no memory. */
static void rwork(void *arg, void *ctx)
{
	struct rjob *j = arg;
	struct rctx *c = ctx;
	const struct use *u = c->uses + j->first;
	uint64_t start = u[0].pack_off, end = start;
	for (size_t i = 0; i < j->n; i++)
		end = DV_MAX(end, u[i].pack_off + u[i].stored_len);
	char name[128], hex[DV_ID_HEX_LEN + 1];
	dv_pack_name(name, sizeof name, &dv_chunk_index_pack(c->ix, u[0].pack)->id);
	struct dv_buf range = DV_BUF_INIT, plain = DV_BUF_INIT, out = DV_BUF_INIT;
	j->bad_off = u[0].disk_off;
	j->fetched = end - start;
	j->rc = dv_store_get_range(c->r->store, name, start, (size_t)(end - start), &range, &j->err);
	if (j->rc == -DV_E_NOT_FOUND) {
		dv_id_hex(hex, &c->d->v[u[0].ext].id);
		j->rc = dv_error(&j->err, DV_E_CORRUPT, "%s: pack is missing (needed for chunk %.16s)", name, hex);
	}
	for (size_t i = 0; j->rc == 0 && i < j->n; i++) {
		const struct dv_extent *e = &c->d->v[u[i].ext];
		j->bad_off = u[i].disk_off;
		if (i == 0 || !same_blob(&u[i - 1], &u[i])) {
			char what[256];
			dv_id_hex(hex, &e->id);
			snprintf(what, sizeof what, "chunk %.16s in %s at offset %llu", hex, name,
				 (unsigned long long)u[i].pack_off);
			j->rc = dv_repo_blob_to_chunk(c->r, &e->id, range.data + (u[i].pack_off - start), u[i].stored_len,
						      u[i].raw_len, &plain, &out, what, &j->err);
		}
		if (j->rc == 0 && out.len != e->length)
			j->rc = dv_error(&j->err, DV_E_CORRUPT, "chunk length %zu differs from the extent length %llu",
					 out.len, (unsigned long long)e->length);
		if (j->rc == 0 && c->target)
			j->rc = dv_pwrite_all(c->target->fd, out.data, out.len, (off_t)u[i].disk_off, &j->err,
					      c->target->path);
	}
	dv_buf_release(&range);
	dv_buf_release(&plain);
	dv_buf_release(&out);
}

struct walker {
	struct rctx ctx;
	struct dv_workq *q;
	unsigned threads;
	struct rjob *free_jobs;
	struct dv_stats *st;
	const struct dv_restore_opts *o;
	double t0, last;
	int rc;
	struct dv_err *err;
	const char *disk_name;
	struct dv_lock *lock;
	uint64_t range_gap;
	bool *pack_seen;      /* per pack of the chunk index: counted in stats->packs */
};

static void finish_job(struct walker *w, struct rjob *j)
{
	if (j->rc < 0 && w->rc == 0) {
		w->rc = j->rc;
		dv_error(w->err, j->err.code, "%s: disk offset %llu: %s", w->disk_name, (unsigned long long)j->bad_off,
			 j->err.msg);
	}
	const struct use *u = w->ctx.uses + j->first;
	for (size_t i = 0; i < j->n; i++) {
		uint64_t len = w->ctx.d->v[u[i].ext].length;
		if (j->rc == 0) {
			w->st->bytes_data += len;
			if (w->ctx.target)
				w->st->bytes_written += len;
			if (i > 0 && same_blob(&u[i - 1], &u[i]))
				w->st->bytes_dedup += len;
		}
		w->st->bytes_done += len;
	}
	if (j->rc == 0)
		w->st->bytes_read += j->fetched;
	j->next_free = w->free_jobs;
	w->free_jobs = j;
}

static void progress(struct walker *w, bool final)
{
	if (!w->o || !w->o->progress)
		return;
	double now = dv_now();
	if (!final && now - w->last < 0.25)
		return;
	w->last = now;
	w->st->seconds = now - w->t0;
	w->o->progress(w->st, final, w->o->progress_ctx);
}

int dv_repo_load_disk(struct dv_repo *r, const json_t *disk, struct dv_disk_index *d, struct dv_err *err)
{
	const char *ix = json_string_value(json_object_get(disk, "index"));
	const char *digest = json_string_value(json_object_get(disk, "digest"));
	int rc = dv_disk_index_read(r, ix, d, err);
	if (rc < 0)
		return rc;
	struct dv_buf enc = DV_BUF_INIT;
	dv_disk_index_encode(d, &enc);
	struct dv_id got, want;
	dv_sha256(enc.data, enc.len, &got);
	dv_buf_release(&enc);
	if (dv_id_parse(&want, digest) < 0 || !dv_id_eq(&got, &want))
		return dv_error(err, DV_E_CORRUPT, "diskindex/%.16s: does not match the digest in the manifest", ix);
	if (d->disk_size != (uint64_t)json_integer_value(json_object_get(disk, "size")))
		return dv_error(err, DV_E_CORRUPT, "diskindex/%.16s: disk size differs from the manifest", ix);
	return 0;
}

static int cmp_use(const void *a, const void *b)
{
	const struct use *x = a, *y = b;
	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	if (x->pack_off != y->pack_off)
		return x->pack_off < y->pack_off ? -1 : 1;
	return (x->disk_off > y->disk_off) - (x->disk_off < y->disk_off);
}

struct gap {
	uint64_t len;
	size_t at;  /* the use that starts the blob after the gap */
};

static int cmp_gap(const void *a, const void *b)
{
	const struct gap *x = a, *y = b;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return (x->at > y->at) - (x->at < y->at);
}

/* Marks which blobs are read together with the one before them: gaps of at
 * most w->range_gap, smallest first, while their sum stays within
 * GAP_BUDGET_PCT percent of the blob bytes. */
static void plan_gaps(struct walker *w, struct plan *p)
{
	struct gap *g = dv_malloc((p->n ? p->n : 1) * sizeof *g);
	size_t ng = 0, prev = 0;
	uint64_t blobs = p->n ? p->v[0].stored_len : 0;
	for (size_t k = 1; k < p->n; k++) {
		if (same_blob(&p->v[k - 1], &p->v[k]))
			continue;
		blobs += p->v[k].stored_len;
		if (p->v[k].pack == p->v[prev].pack) {
			uint64_t prev_end = p->v[prev].pack_off + p->v[prev].stored_len;
			uint64_t len = p->v[k].pack_off > prev_end ? p->v[k].pack_off - prev_end : 0;
			if (len <= w->range_gap)
				g[ng++] = (struct gap){len, k};
		}
		prev = k;
	}
	qsort(g, ng, sizeof *g, cmp_gap);
	uint64_t budget = blobs / 100 * GAP_BUDGET_PCT;
	for (size_t i = 0; i < ng && p->gap_bytes + g[i].len <= budget; i++) {
		p->v[g[i].at].join = true;
		p->gap_bytes += g[i].len;
	}
	free(g);
}

/* Walks one disk's extents: zero and unused ones are written (or counted)
 * here, data extents become the plan's uses. With seen != NULL each
 * distinct chunk is planned once (verify). */
static int plan_disk(struct walker *w, const struct dv_disk_index *d, struct dv_chunk_index *seen, struct plan *p)
{
	memset(p, 0, sizeof *p);
	p->v = dv_malloc((d->n ? d->n : 1) * sizeof *p->v);
	uint64_t off = 0;
	for (size_t i = 0; i < d->n && w->rc == 0; i++) {
		const struct dv_extent *e = &d->v[i];
		struct dv_chunk_loc loc;
		if (dv_repo_interrupted()) {
			w->rc = dv_error(w->err, DV_E_INTERRUPTED, "interrupted at disk offset %llu",
					 (unsigned long long)off);
			break;
		}
		if (e->type != DV_EXTENT_DATA) {
			if (w->ctx.target) {
				int rc = dv_target_zero(w->ctx.target, off, e->length, w->err);
				if (rc < 0)
					w->rc = rc;
			}
			w->st->bytes_done += e->length;
			if (e->type == DV_EXTENT_ZERO)
				w->st->bytes_zero += e->length;
			else
				w->st->bytes_unused += e->length;
		} else if (seen && !dv_chunk_index_insert(seen, &e->id, &(struct dv_chunk_loc){0})) {
			w->st->bytes_done += e->length;
			w->st->bytes_dedup += e->length;
		} else if (!dv_chunk_index_lookup(w->ctx.ix, &e->id, &loc)) {
			char hex[DV_ID_HEX_LEN + 1];
			dv_id_hex(hex, &e->id);
			w->rc = dv_error(w->err, DV_E_CORRUPT,
					 "%s: disk offset %llu: chunk %.16s: not in any pack index (missing data)",
					 w->disk_name, (unsigned long long)off, hex);
		} else {
			p->v[p->n++] = (struct use){.pack_off = loc.offset, .disk_off = off, .ext = i, .pack = loc.pack,
						    .stored_len = loc.stored_len, .raw_len = loc.raw_len};
			w->st->chunks++;
		}
		off += e->length;
		progress(w, false);
	}
	if (w->rc < 0)
		return w->rc;
	qsort(p->v, p->n, sizeof *p->v, cmp_use);
	plan_gaps(w, p);
	return 0;
}

/* Reads the plan's ranges through the worker pool, in pack order. */
static int run_plan(struct walker *w, const struct dv_disk_index *d, const struct plan *p)
{
	w->ctx.d = d;
	w->ctx.uses = p->v;
	uint64_t ranges = 0;
	for (size_t i = 0; i < p->n && w->rc == 0;) {
		const struct use *v = p->v;
		if (dv_repo_interrupted()) {
			w->rc = dv_error(w->err, DV_E_INTERRUPTED, "interrupted at disk offset %llu",
					 (unsigned long long)v[i].disk_off);
			break;
		}
		/* a blob's uses always go together: it is fetched once */
		uint64_t start = v[i].pack_off, end = start + v[i].stored_len;
		size_t k = i + 1;
		while (k < p->n) {
			if (!same_blob(&v[k - 1], &v[k])) {
				uint64_t e2 = DV_MAX(end, v[k].pack_off + v[k].stored_len);
				if (!v[k].join || e2 - start > RANGE_MAX)
					break;
				end = e2;
			}
			k++;
		}
		if (!w->pack_seen[v[i].pack]) { /* once per command, not per disk */
			w->pack_seen[v[i].pack] = true;
			w->st->packs++;
		}
		struct rjob *j = w->free_jobs;
		if (j)
			w->free_jobs = j->next_free;
		else
			j = dv_calloc(1, sizeof *j);
		j->first = i;
		j->n = k - i;
		j->rc = 0;
		ranges++;
		void *done;
		dv_workq_submit(w->q, j, &done);
		if (done)
			finish_job(w, done);
		progress(w, false);
		if (w->rc == 0) {
			int rc = dv_lock_refresh(w->lock, w->err);
			if (rc < 0)
				w->rc = rc;
		}
		i = k;
	}
	struct rjob *j;
	while ((j = dv_workq_collect(w->q)))
		finish_job(w, j);
	dv_debug("%s: %zu chunk uses read as %llu ranges (%llu bytes between blobs), %u readers", w->disk_name, p->n,
		 (unsigned long long)ranges, (unsigned long long)p->gap_bytes, w->threads);
	return w->rc;
}

static int walk_disk(struct walker *w, const struct dv_disk_index *d, struct dv_chunk_index *seen)
{
	struct plan p;
	int rc = plan_disk(w, d, seen, &p);
	if (rc == 0)
		rc = run_plan(w, d, &p);
	free(p.v);
	return rc;
}

/* Readers for a planned read: one request in flight each. Waiting for the
 * network takes no CPU, so a remote store gets at least REMOTE_READERS.
 * (The 2-reader cap of dv_repo_reader_threads protected the store's
 * read-ahead, which planned reads turn off.) */
#define REMOTE_READERS 4
static unsigned plan_threads(struct dv_repo *r, unsigned asked)
{
	if (asked)
		return asked;
	unsigned n = dv_cpu_count();
	return dv_store_is_local(r->store) ? n : DV_MAX(n, (unsigned)REMOTE_READERS);
}

/* w->ctx.ix is set: the chunk index is loaded. */
static void walker_start(struct walker *w, struct dv_repo *r, unsigned asked)
{
	w->threads = plan_threads(r, asked);
	w->range_gap = dv_env_size("DISKVAULT_READ_GAP", RANGE_GAP);
	w->q = dv_workq_new(w->threads, 2 * w->threads + 2, rwork, &w->ctx);
	w->pack_seen = dv_calloc(dv_chunk_index_pack_count(w->ctx.ix) + 1, sizeof *w->pack_seen);
	dv_store_set_readahead(r->store, false);
}

static void walker_release(struct walker *w, struct dv_repo *r)
{
	dv_store_set_readahead(r->store, true);
	dv_workq_free(w->q);
	free(w->pack_seen);
	while (w->free_jobs) {
		struct rjob *j = w->free_jobs;
		w->free_jobs = j->next_free;
		free(j);
	}
}

static int open_snapshot(struct dv_repo *r, const char *id, json_t **m, struct dv_chunk_index **ix,
			 struct dv_lock **lock, struct dv_err *err)
{
	int rc = dv_lock_acquire(r, false, lock, err);
	if (rc < 0)
		return rc;
	rc = dv_snapshot_load(r, id, m, err);
	if (rc < 0)
		return rc;
	*ix = dv_chunk_index_new();
	return dv_chunk_index_load(*ix, r, err);
}

int dv_restore(struct dv_repo *r, const char *id, const char *target, const struct dv_restore_opts *o,
	       struct dv_stats *stats, struct dv_err *err)
{
	memset(stats, 0, sizeof *stats);
	json_t *m = NULL;
	struct dv_chunk_index *ix = NULL;
	struct dv_lock *lock = NULL;
	struct dv_disk_index d = {0};
	struct dv_target t = {.fd = -1};
	struct walker w = {.st = stats, .o = o, .err = err, .t0 = dv_now()};
	int rc = open_snapshot(r, id, &m, &ix, &lock, err);
	w.lock = lock;
	if (rc < 0)
		goto out;
	json_t *disks = json_object_get(m, "disks");
	if (o->disk >= json_array_size(disks)) {
		rc = dv_error(err, DV_E_USAGE, "snapshot %.16s has %zu disk(s); there is no disk %u", id,
			      json_array_size(disks), o->disk);
		goto out;
	}
	json_t *disk = json_array_get(disks, o->disk);
	rc = dv_repo_load_disk(r, disk, &d, err);
	if (rc < 0)
		goto out;
	stats->bytes_total = d.disk_size;
	rc = dv_target_open(target, d.disk_size, o->force, &t, err);
	if (rc < 0)
		goto out;
	w.ctx = (struct rctx){.r = r, .ix = ix, .target = &t};
	w.disk_name = target;
	walker_start(&w, r, o->threads);
	rc = walk_disk(&w, &d, NULL);
	walker_release(&w, r);
	int crc = dv_target_close(&t, rc < 0 ? NULL : err);
	if (rc == 0)
		rc = crc;
	if (rc == 0)
		progress(&w, true);
out:
	if (t.fd >= 0) {
		struct dv_err ignore;
		if (dv_target_close(&t, &ignore) < 0)
			dv_debug("closing target after failure: %s", ignore.msg);
	}
	dv_disk_index_release(&d);
	dv_chunk_index_free(ix);
	json_decref(m);
	dv_lock_release(lock);
	stats->seconds = dv_now() - w.t0;
	return rc;
}

int dv_verify(struct dv_repo *r, const char *id, const struct dv_restore_opts *o, struct dv_stats *stats,
	      struct dv_err *err)
{
	memset(stats, 0, sizeof *stats);
	json_t *m = NULL;
	struct dv_chunk_index *ix = NULL, *seen = NULL;
	struct dv_lock *lock = NULL;
	struct walker w = {.st = stats, .o = o, .err = err, .t0 = dv_now()};
	int rc = open_snapshot(r, id, &m, &ix, &lock, err);
	w.lock = lock;
	if (rc < 0)
		goto out;
	json_t *disks = json_object_get(m, "disks");
	for (size_t i = 0; i < json_array_size(disks); i++)
		stats->bytes_total += (uint64_t)json_integer_value(json_object_get(json_array_get(disks, i), "size"));
	w.ctx = (struct rctx){.r = r, .ix = ix};
	walker_start(&w, r, o ? o->threads : 0);
	seen = dv_chunk_index_new();
	char name[64];
	for (size_t i = 0; rc == 0 && i < json_array_size(disks); i++) {
		struct dv_disk_index d = {0};
		rc = dv_repo_load_disk(r, json_array_get(disks, i), &d, err);
		snprintf(name, sizeof name, "snapshot %.16s disk %zu", id, i);
		w.disk_name = name;
		if (rc == 0)
			rc = walk_disk(&w, &d, seen);
		dv_disk_index_release(&d);
	}
	walker_release(&w, r);
	if (rc == 0)
		progress(&w, true);
out:
	dv_chunk_index_free(seen);
	dv_chunk_index_free(ix);
	json_decref(m);
	dv_lock_release(lock);
	stats->seconds = dv_now() - w.t0;
	return rc;
}
