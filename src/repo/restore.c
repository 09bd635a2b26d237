/*
 * restore.c - restore and verify. The disk index is checked against the
 * digest in the manifest before anything is written; every chunk is
 * checked against its id after decompression. Together they prove that
 * the restored disk is, byte for byte, the disk that was imaged (with
 * zeros where the snapshot recorded zero, unused or unreadable extents).
 *
 * Chunks are fetched, decompressed, verified and written by a worker pool
 * (pwrite at their own offsets); the main thread walks the extents in
 * order, so the first failure collected is the first bad offset.
 *
 * From a remote store, a chunk the disk uses more than once is downloaded
 * once: later uses read it back from the target where its first use was
 * written (checked against its id like a fetched chunk; any mismatch or
 * read error falls back to fetching). Without this, duplicate content in a
 * disk costs its stored size again in downloads.
 */
#include <stdio.h>
#include "repo_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NO_COPY UINT64_MAX

struct rjob {
	uint64_t off;
	struct dv_id id;
	uint64_t len;
	uint64_t copy_from;   /* target offset holding this chunk, or NO_COPY */
	bool copied;          /* served from the target, not the repository */
	int rc;
	struct dv_err err;
	struct dv_buf scratch, out;
	struct rjob *next_free;
};

struct rctx {
	struct dv_repo *r;
	struct dv_chunk_index *ix;
	struct dv_target *target; /* NULL: verify only */
	int read_fd;              /* target opened for reading, or -1 */
};

/* Reads a chunk back from where the target already holds it. */
static bool copy_from_target(struct rctx *c, struct rjob *j)
{
	dv_buf_reset(&j->out);
	dv_buf_reserve(&j->out, (size_t)j->len);
	size_t got = 0;
	while (got < j->len) {
		ssize_t n = pread(c->read_fd, j->out.data + got, (size_t)j->len - got, (off_t)(j->copy_from + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	j->out.len = got;
	struct dv_id id;
	dv_repo_chunk_id(c->r, j->out.data, j->out.len, &id);
	return dv_id_eq(&id, &j->id);
}

static void rwork(void *arg, void *ctx)
{
	struct rjob *j = arg;
	struct rctx *c = ctx;
	j->copied = j->copy_from != NO_COPY && copy_from_target(c, j);
	if (j->copied) {
		j->rc = 0;
		dv_buf_reset(&j->scratch);
	} else {
		j->rc = dv_chunk_read(c->r, c->ix, &j->id, &j->scratch, &j->out, &j->err);
	}
	if (j->rc == 0 && j->out.len != j->len)
		j->rc = dv_error(&j->err, DV_E_CORRUPT, "chunk length %zu differs from the extent length %llu",
				 j->out.len, (unsigned long long)j->len);
	if (j->rc == 0 && c->target)
		j->rc = dv_pwrite_all(c->target->fd, j->out.data, j->out.len, (off_t)j->off, &j->err, c->target->path);
}

struct walker {
	struct rctx ctx;
	struct dv_workq *q;
	struct rjob *free_jobs;
	struct dv_stats *st;
	const struct dv_restore_opts *o;
	double t0, last;
	int rc;
	struct dv_err *err;
	const char *disk_name;
	struct dv_lock *lock;
	struct dv_chunk_index *multi; /* chunks the disk uses more than once */
	struct dv_chunk_index *firsts; /* of those: written, at loc.offset */
};

static void finish_job(struct walker *w, struct rjob *j)
{
	if (j->rc < 0 && w->rc == 0) {
		w->rc = j->rc;
		dv_error(w->err, j->err.code, "%s: disk offset %llu: %s", w->disk_name, (unsigned long long)j->off,
			 j->err.msg);
	}
	if (j->rc == 0) {
		w->st->bytes_data += j->len;
		w->st->bytes_read += j->scratch.len;
		if (w->ctx.target)
			w->st->bytes_written += j->len;
		if (j->copied)
			w->st->bytes_dedup += j->len;
		/* in order: every job before this one is written too */
		if (w->multi && !j->copied && dv_chunk_index_lookup(w->multi, &j->id, NULL))
			dv_chunk_index_insert(w->firsts, &j->id, &(struct dv_chunk_loc){.offset = j->off});
	}
	w->st->bytes_done += j->len;
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

/* Walks one disk: data extents go to the pool, others to zero(). With
 * seen != NULL each distinct chunk is read once (verify). */
static int walk_disk(struct walker *w, const struct dv_disk_index *d, struct dv_chunk_index *seen)
{
	uint64_t off = 0;
	for (size_t i = 0; i < d->n && w->rc == 0; i++) {
		const struct dv_extent *e = &d->v[i];
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
		} else {
			struct rjob *j = w->free_jobs;
			if (j)
				w->free_jobs = j->next_free;
			else
				j = dv_calloc(1, sizeof *j);
			j->off = off;
			j->id = e->id;
			j->len = e->length;
			j->copy_from = NO_COPY;
			struct dv_chunk_loc first;
			if (w->firsts && dv_chunk_index_lookup(w->firsts, &e->id, &first))
				j->copy_from = first.offset;
			j->rc = 0;
			w->st->chunks++;
			void *done;
			dv_workq_submit(w->q, j, &done);
			if (done)
				finish_job(w, done);
		}
		off += e->length;
		progress(w, false);
		if (w->rc == 0) {
			int rc = dv_lock_refresh(w->lock, w->err);
			if (rc < 0)
				w->rc = rc;
		}
	}
	struct rjob *j;
	while ((j = dv_workq_collect(w->q)))
		finish_job(w, j);
	return w->rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The chunks d uses more than once: sorting 8-byte id prefixes finds them
 * without a map of every chunk (a prefix collision only adds an entry). */
static struct dv_chunk_index *repeated_chunks(const struct dv_disk_index *d)
{
	size_t n = 0;
	uint64_t *pre = dv_malloc((d->n ? d->n : 1) * sizeof *pre);
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].type == DV_EXTENT_DATA)
			memcpy(&pre[n++], d->v[i].id.b, sizeof *pre);
	qsort(pre, n, sizeof *pre, cmp_u64);
	struct dv_chunk_index *multi = NULL;
	for (size_t i = 0; i < d->n; i++) {
		if (d->v[i].type != DV_EXTENT_DATA)
			continue;
		uint64_t key;
		memcpy(&key, d->v[i].id.b, sizeof key);
		uint64_t *hit = bsearch(&key, pre, n, sizeof *pre, cmp_u64);
		if ((hit > pre && hit[-1] == key) || (hit + 1 < pre + n && hit[1] == key)) {
			if (!multi)
				multi = dv_chunk_index_new();
			dv_chunk_index_insert(multi, &d->v[i].id, &(struct dv_chunk_loc){0});
		}
	}
	free(pre);
	return multi;
}

static void walker_release(struct walker *w)
{
	dv_workq_free(w->q);
	dv_chunk_index_free(w->multi);
	dv_chunk_index_free(w->firsts);
	while (w->free_jobs) {
		struct rjob *j = w->free_jobs;
		w->free_jobs = j->next_free;
		dv_buf_release(&j->scratch);
		dv_buf_release(&j->out);
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
	unsigned threads = dv_repo_reader_threads(r, o->threads);
	w.ctx = (struct rctx){r, ix, &t, -1};
	if (!dv_store_is_local(r->store) && (w.multi = repeated_chunks(&d))) {
		w.ctx.read_fd = open(target, O_RDONLY | O_CLOEXEC);
		if (w.ctx.read_fd >= 0)
			w.firsts = dv_chunk_index_new();
	}
	w.q = dv_workq_new(threads, 2 * threads + 2, rwork, &w.ctx);
	w.disk_name = target;
	rc = walk_disk(&w, &d, NULL);
	walker_release(&w);
	if (w.ctx.read_fd >= 0)
		close(w.ctx.read_fd);
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
	unsigned threads = dv_repo_reader_threads(r, o ? o->threads : 0);
	w.ctx = (struct rctx){r, ix, NULL, -1};
	w.q = dv_workq_new(threads, 2 * threads + 2, rwork, &w.ctx);
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
	walker_release(&w);
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
