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
 *
 * What is written is an output: a whole disk, or a volume of the recorded
 * layout (partition, md data area, LV: a piece map over the snapshot's
 * disks, layoutvol.h), walked piece by piece; a use is the part of a chunk
 * that lands at one output offset. A seekable target is written with
 * pwrite in plan order. A stream (restore SNAPSHOT -) must be written in
 * order: the output is cut into windows of WIN_SIZE bytes, each planned
 * and read like a small restore into its own buffer, NWIN of them in
 * flight, and written out as soon as the oldest is complete (the work
 * queue hands jobs back in submission order, so windows complete in
 * order). Zero, unused and unreadable bytes are written as zeros.
 */
#include <stdio.h>
#include "repo_internal.h"
#include "disk/layoutvol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RANGE_MAX (8u << 20)
#define RANGE_GAP (256u << 10)  /* default; DISKVAULT_READ_GAP */
#define GAP_BUDGET_PCT 5
#define WIN_SIZE (16u << 20)    /* a stream's window */
#define NWIN 4                  /* windows in flight */

/* Bytes [from, from + len) of a chunk, written at out_off; its blob. */
struct use {
	uint64_t pack_off;   /* of the blob in its pack */
	uint64_t out_off;
	const struct dv_extent *e; /* in a disk index: the chunk id and length */
	uint32_t from, len;
	uint32_t pack;       /* in the chunk index's pack table */
	uint32_t stored_len, raw_len;
	bool join;           /* read together with the blob before it (same pack) */
};

/* Uses sorted by (pack, offset, output offset). */
struct plan {
	struct use *v;
	size_t n, cap;
	uint64_t gap_bytes;  /* planned bytes between blobs */
};

/* One ranged read: uses [u, u + n) of a plan. */
struct rjob {
	const struct use *u;
	size_t n;
	uint8_t *buf;         /* a stream's window, holding output bytes from buf_off; NULL: the target */
	uint64_t buf_off;
	uint64_t win;         /* the window's sequence number */
	uint64_t fetched;     /* bytes of the range */
	uint64_t bad_off;     /* output offset of the failure */
	int rc;
	struct dv_err err;
	struct rjob *next_free;
};

struct rctx {
	struct dv_repo *r;
	struct dv_chunk_index *ix;
	struct dv_target *target; /* NULL: verify only, or a stream */
};

/* A disk index with the start offset of every extent. */
struct dix {
	struct dv_disk_index d;
	uint64_t *start;  /* start[i] = disk offset of extent i; start[n] = size */
};

/* What is written: disk `disk`, or the pieces of vol over srcs[i] = disk i. */
struct output {
	struct dix *disks;
	size_t ndisks;
	unsigned disk;
	const struct dv_vol *vol;
	const struct dv_source *srcs;
	uint64_t size;
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
	const struct use *u = j->u;
	uint64_t start = u[0].pack_off, end = start;
	for (size_t i = 0; i < j->n; i++)
		end = DV_MAX(end, u[i].pack_off + u[i].stored_len);
	char name[128], hex[DV_ID_HEX_LEN + 1];
	dv_pack_name(name, sizeof name, &dv_chunk_index_pack(c->ix, u[0].pack)->id);
	struct dv_buf range = DV_BUF_INIT, plain = DV_BUF_INIT, out = DV_BUF_INIT;
	j->bad_off = u[0].out_off;
	j->fetched = end - start;
	j->rc = dv_store_get_range(c->r->store, name, start, (size_t)(end - start), &range, &j->err);
	if (j->rc == -DV_E_NOT_FOUND) {
		dv_id_hex(hex, &u[0].e->id);
		j->rc = dv_error(&j->err, DV_E_CORRUPT, "%s: pack is missing (needed for chunk %.16s)", name, hex);
	}
	for (size_t i = 0; j->rc == 0 && i < j->n; i++) {
		const struct dv_extent *e = u[i].e;
		j->bad_off = u[i].out_off;
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
		if (j->rc != 0)
			break;
		if (j->buf)
			memcpy(j->buf + (u[i].out_off - j->buf_off), out.data + u[i].from, u[i].len);
		else if (c->target)
			j->rc = dv_pwrite_all(c->target->fd, out.data + u[i].from, u[i].len, (off_t)u[i].out_off, &j->err,
					      c->target->path);
	}
	dv_buf_release(&range);
	dv_buf_release(&plain);
	dv_buf_release(&out);
}

struct window {
	uint8_t *buf;
	uint64_t off, len;
	unsigned pending;  /* jobs not yet finished */
	bool open;         /* jobs are still being submitted */
	bool data;         /* holds chunk bytes (else all zeros) */
	struct plan plan;  /* its uses, alive while its jobs are */
};

struct walker {
	struct rctx ctx;
	struct output out;
	struct dv_workq *q;
	unsigned threads;
	struct rjob *free_jobs;
	struct dv_stats *st;
	const struct dv_restore_opts *o;
	double t0, last;
	int rc;
	struct dv_err *err;
	const char *disk_name;
	const char *off_name;  /* "disk offset", "offset" (of a volume) */
	struct dv_lock *lock;
	uint64_t range_gap;
	bool *pack_seen;      /* per pack of the chunk index: counted in stats->packs */
	/* a stream */
	int fd;               /* -1: not a stream */
	struct window win[NWIN];
	uint64_t planned, written;  /* windows */
	uint8_t *zeros;       /* WIN_SIZE zero bytes */
};

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

static int write_stream(struct walker *w, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(w->fd, p, n);
		if (k < 0 && errno == EINTR) {
			if (dv_repo_interrupted())
				return dv_error(w->err, DV_E_INTERRUPTED, "interrupted after %llu bytes of the stream",
						(unsigned long long)w->st->bytes_done);
			continue;
		}
		if (k < 0 && errno == EPIPE)
			return dv_error(w->err, DV_E_CLOSED,
					"stdout: the reader closed the stream after %llu of %llu bytes (%s)",
					(unsigned long long)w->st->bytes_done, (unsigned long long)w->out.size,
					w->disk_name);
		if (k < 0)
			return dv_error_errno(w->err, errno, "stdout: writing the stream after %llu bytes",
					      (unsigned long long)w->st->bytes_done);
		p += k;
		n -= (size_t)k;
		w->st->bytes_done += (uint64_t)k;
	}
	return 0;
}

/* Writes the oldest windows that are complete, in order. */
static void flush_windows(struct walker *w)
{
	while (w->rc == 0 && w->written < w->planned) {
		struct window *x = &w->win[w->written % NWIN];
		if (x->open || x->pending)
			return;
		int rc = write_stream(w, x->data ? x->buf : w->zeros, x->len);
		if (rc < 0) {
			w->rc = rc;
			return;
		}
		w->written++;
		progress(w, false);
	}
}

static void finish_job(struct walker *w, struct rjob *j)
{
	if (j->rc < 0 && w->rc == 0) {
		w->rc = j->rc;
		dv_error(w->err, j->err.code, "%s: %s %llu: %s", w->disk_name, w->off_name,
			 (unsigned long long)j->bad_off, j->err.msg);
	}
	const struct use *u = j->u;
	for (size_t i = 0; i < j->n; i++) {
		uint64_t len = u[i].len;
		if (j->rc == 0) {
			w->st->bytes_data += len;
			if (w->ctx.target || w->fd >= 0)
				w->st->bytes_written += len;
			if (i > 0 && same_blob(&u[i - 1], &u[i]))
				w->st->bytes_dedup += len;
		}
		if (w->fd < 0)
			w->st->bytes_done += len;
	}
	if (j->rc == 0)
		w->st->bytes_read += j->fetched;
	j->next_free = w->free_jobs;
	w->free_jobs = j;
	if (w->fd >= 0) {
		w->win[j->win % NWIN].pending--;
		flush_windows(w);
	}
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

static int load_dix(struct dv_repo *r, const json_t *disk, struct dix *x, struct dv_err *err)
{
	int rc = dv_repo_load_disk(r, disk, &x->d, err);
	if (rc < 0)
		return rc;
	x->start = dv_extent_starts(&x->d);
	return 0;
}

static void release_dix(struct dix *x)
{
	dv_disk_index_release(&x->d);
	free(x->start);
	x->start = NULL;
}

static size_t find_extent(const struct dix *x, uint64_t off)
{
	return dv_extent_find(x->start, x->d.n, off);
}

/* Where output offset off lies: disk *disk at *disk_off, for *len bytes
 * (to the end of the piece: a stripe, a linear segment, the disk). */
static void locate(const struct output *o, uint64_t off, unsigned *disk, uint64_t *disk_off, uint64_t *len)
{
	if (!o->vol) {
		*disk = o->disk;
		*disk_off = off;
		*len = o->size - off;
		return;
	}
	const struct dv_source *src = dv_vol_locate(o->vol, off, disk_off, len);
	*disk = 0;
	for (size_t i = 0; i < o->ndisks; i++)
		if (src == &o->srcs[i])
			*disk = (unsigned)i;
}

static int cmp_use(const void *a, const void *b)
{
	const struct use *x = a, *y = b;
	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	if (x->pack_off != y->pack_off)
		return x->pack_off < y->pack_off ? -1 : 1;
	return (x->out_off > y->out_off) - (x->out_off < y->out_off);
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
	p->gap_bytes = 0;
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
	if (ng)
		qsort(g, ng, sizeof *g, cmp_gap);
	uint64_t budget = blobs / 100 * GAP_BUDGET_PCT;
	for (size_t i = 0; i < ng && p->gap_bytes + g[i].len <= budget; i++) {
		p->v[g[i].at].join = true;
		p->gap_bytes += g[i].len;
	}
	free(g);
}

static void plan_add(struct plan *p, const struct use *u)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 1024;
		p->v = dv_realloc(p->v, p->cap * sizeof *p->v);
	}
	p->v[p->n++] = *u;
}

/* Walks output bytes [a, b): zero, unused and unreadable extents are
 * written (zeroed in buf, which holds the output from buf_off, or on the
 * target) or counted here, data becomes the plan's uses. With seen != NULL
 * each distinct chunk is planned once (verify). */
static int plan_range(struct walker *w, uint64_t a, uint64_t b, struct dv_chunk_index *seen, struct plan *p,
		      uint8_t *buf, uint64_t buf_off)
{
	p->n = 0;
	bool count_done = w->fd < 0;
	for (uint64_t off = a; off < b && w->rc == 0;) {
		unsigned disk;
		uint64_t doff, plen;
		locate(&w->out, off, &disk, &doff, &plen);
		plen = DV_MIN(plen, b - off);
		const struct dix *x = &w->out.disks[disk];
		if (doff > x->d.disk_size || plen > x->d.disk_size - doff)
			return w->rc = dv_error(w->err, DV_E_CORRUPT,
						"%s: bytes %llu-%llu of disk %u are past its end (%llu bytes)", w->disk_name,
						(unsigned long long)doff, (unsigned long long)(doff + plen - 1), disk,
						(unsigned long long)x->d.disk_size);
		uint64_t dend = doff + plen;
		for (size_t i = find_extent(x, doff); i < x->d.n && x->start[i] < dend && w->rc == 0; i++) {
			const struct dv_extent *e = &x->d.v[i];
			uint64_t ea = DV_MAX(doff, x->start[i]), ez = DV_MIN(dend, x->start[i + 1]);
			uint64_t o = off + (ea - doff), len = ez - ea;
			struct dv_chunk_loc loc;
			if (dv_repo_interrupted()) {
				w->rc = dv_error(w->err, DV_E_INTERRUPTED, "interrupted at %s %llu", w->off_name,
						 (unsigned long long)o);
				break;
			}
			if (e->type != DV_EXTENT_DATA) {
				if (buf)
					memset(buf + (o - buf_off), 0, len);
				else if (w->ctx.target) {
					int rc = dv_target_zero(w->ctx.target, o, len, w->err);
					if (rc < 0)
						w->rc = rc;
				}
				if (count_done)
					w->st->bytes_done += len;
				if (e->type == DV_EXTENT_ZERO)
					w->st->bytes_zero += len;
				else
					w->st->bytes_unused += len;
			} else if (seen && !dv_chunk_index_insert(seen, &e->id, &(struct dv_chunk_loc){0})) {
				w->st->bytes_done += len;
				w->st->bytes_dedup += len;
			} else if (!dv_chunk_index_lookup(w->ctx.ix, &e->id, &loc)) {
				char hex[DV_ID_HEX_LEN + 1];
				dv_id_hex(hex, &e->id);
				w->rc = dv_error(w->err, DV_E_CORRUPT,
						 "%s: %s %llu: chunk %.16s: not in any pack index (missing data)",
						 w->disk_name, w->off_name, (unsigned long long)o, hex);
			} else {
				plan_add(p, &(struct use){.pack_off = loc.offset, .out_off = o, .e = e,
							  .from = (uint32_t)(ea - x->start[i]), .len = (uint32_t)len,
							  .pack = loc.pack, .stored_len = loc.stored_len,
							  .raw_len = loc.raw_len});
				w->st->chunks++;
			}
			if (!buf)
				progress(w, false);
		}
		off += plen;
	}
	if (w->rc < 0)
		return w->rc;
	if (p->n) /* a window of zeros plans nothing; qsort wants a real array */
		qsort(p->v, p->n, sizeof *p->v, cmp_use);
	plan_gaps(w, p);
	return 0;
}

/* Submits the plan's ranges to the worker pool, in pack order; jobs fill
 * buf (a stream's window seq) or write the target. Returns the number of
 * jobs submitted. */
static size_t submit_plan(struct walker *w, const struct plan *p, uint8_t *buf, uint64_t buf_off, uint64_t seq)
{
	size_t jobs = 0;
	for (size_t i = 0; i < p->n && w->rc == 0;) {
		const struct use *v = p->v;
		if (dv_repo_interrupted()) {
			w->rc = dv_error(w->err, DV_E_INTERRUPTED, "interrupted at %s %llu", w->off_name,
					 (unsigned long long)v[i].out_off);
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
		j->u = v + i;
		j->n = k - i;
		j->buf = buf;
		j->buf_off = buf_off;
		j->win = seq;
		j->rc = 0;
		jobs++;
		if (buf)
			w->win[seq % NWIN].pending++;
		void *done;
		dv_workq_submit(w->q, j, &done);
		if (done)
			finish_job(w, done);
		if (!buf)
			progress(w, false);
		if (w->rc == 0) {
			int rc = dv_lock_refresh(w->lock, w->err);
			if (rc < 0)
				w->rc = rc;
		}
		i = k;
	}
	return jobs;
}

static void drain(struct walker *w)
{
	struct rjob *j;
	while ((j = dv_workq_collect(w->q)))
		finish_job(w, j);
}

/* The whole output at once, to a seekable target or verify only. */
static int walk_output(struct walker *w, struct dv_chunk_index *seen)
{
	struct plan p = {0};
	int rc = plan_range(w, 0, w->out.size, seen, &p, NULL, 0);
	if (rc == 0) {
		size_t jobs = submit_plan(w, &p, NULL, 0, 0);
		drain(w);
		rc = w->rc;
		dv_debug("%s: %zu chunk uses read as %zu ranges (%llu bytes between blobs), %u readers", w->disk_name,
			 p.n, jobs, (unsigned long long)p.gap_bytes, w->threads);
	}
	free(p.v);
	return rc;
}

/* The output in order to w->fd, window by window. */
static int stream_output(struct walker *w)
{
	w->zeros = dv_calloc(1, WIN_SIZE);
	for (uint64_t off = 0; off < w->out.size && w->rc == 0;) {
		while (w->rc == 0 && w->planned - w->written >= NWIN) {
			struct rjob *j = dv_workq_collect(w->q);
			if (!j)
				DV_BUG("stream window %llu waits for no job", (unsigned long long)w->written);
			finish_job(w, j);
		}
		if (w->rc)
			break;
		uint64_t seq = w->planned;
		struct window *x = &w->win[seq % NWIN];
		if (!x->buf)
			x->buf = dv_malloc(WIN_SIZE);
		x->off = off;
		x->len = DV_MIN((uint64_t)WIN_SIZE, w->out.size - off);
		x->pending = 0;
		x->open = true;
		w->planned++;
		if (plan_range(w, off, off + x->len, NULL, &x->plan, x->buf, off) == 0) {
			x->data = x->plan.n > 0;
			submit_plan(w, &x->plan, x->buf, off, seq);
		}
		x->open = false;
		flush_windows(w);
		off += x->len;
	}
	drain(w);
	if (w->rc == 0 && w->written != w->planned)
		DV_BUG("stream: %llu of %llu windows written", (unsigned long long)w->written,
		       (unsigned long long)w->planned);
	for (int i = 0; i < NWIN; i++) {
		free(w->win[i].buf);
		free(w->win[i].plan.v);
	}
	free(w->zeros);
	return w->rc;
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

static int no_read(void *ctx, uint64_t off, void *buf, size_t len, struct dv_err *err)
{
	(void)ctx, (void)off, (void)buf, (void)len;
	return dv_error(err, DV_E_FAIL, "restore reads disks through the plan, not through a source");
}

/* The names of the volumes, for a message: "disk0, p1, p2, vg/root". */
static void vol_names(const struct dv_layout_vols *l, char *out, size_t n)
{
	struct dv_buf b = DV_BUF_INIT;
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			dv_buf_add(&b, ", ", 2);
		dv_buf_add(&b, l->v[i].name, strlen(l->v[i].name));
	}
	if (b.len >= n && n > 4) {
		b.len = n - 4;
		dv_buf_add(&b, "...", 3);
	}
	snprintf(out, n, "%.*s", (int)DV_MIN(b.len, n - 1), b.len ? (const char *)b.data : "");
	dv_buf_release(&b);
}

/* Loads the disks the output needs and sets w->out (volume: every disk;
 * else disk o->disk). */
static int setup_output(struct dv_repo *r, const char *id, const json_t *m, const struct dv_restore_opts *o,
			struct walker *w, struct dv_layout_vols *vols, char *what, size_t what_len, struct dv_err *err)
{
	json_t *disks = json_object_get(m, "disks");
	size_t nd = json_array_size(disks);
	if (!o->volume) {
		if (o->disk >= nd)
			return dv_error(err, DV_E_USAGE, "snapshot %.16s has %zu disk(s); there is no disk %u", id, nd,
					o->disk);
		if (o->stream_fd >= 0 && nd > 1 && !o->disk_set)
			return dv_error(err, DV_E_USAGE,
					"snapshot %.16s has %zu disks and a stream holds one: give --disk N (0-%zu) "
					"or --volume",
					id, nd, nd - 1);
		w->out.ndisks = nd;
		w->out.disks = dv_calloc(nd, sizeof *w->out.disks);
		w->out.disk = o->disk;
		int rc = load_dix(r, json_array_get(disks, o->disk), &w->out.disks[o->disk], err);
		if (rc < 0)
			return rc;
		w->out.size = w->out.disks[o->disk].d.disk_size;
		snprintf(what, what_len, "disk %u", o->disk);
		return 0;
	}
	w->out.ndisks = nd;
	w->out.disks = dv_calloc(nd ? nd : 1, sizeof *w->out.disks);
	struct dv_source *srcs = dv_calloc(nd ? nd : 1, sizeof *srcs);
	const json_t **layouts = dv_calloc(nd ? nd : 1, sizeof *layouts);
	const struct dv_source **sp = dv_calloc(nd ? nd : 1, sizeof *sp);
	w->out.srcs = srcs;
	int rc = 0;
	for (size_t i = 0; i < nd; i++) {
		const json_t *disk = json_array_get(disks, i);
		char name[32];
		snprintf(name, sizeof name, "disk%zu", i);
		dv_source_virtual(&srcs[i], name, (uint64_t)json_integer_value(json_object_get(disk, "size")), no_read,
				  NULL);
		layouts[i] = json_object_get(disk, "layout");
		sp[i] = &srcs[i];
	}
	dv_layout_volumes(layouts, sp, nd, vols);
	free(layouts);
	free(sp);
	const struct dv_layout_vol *v = dv_layout_vol_find(vols, o->volume);
	if (!v) {
		size_t len = strlen(o->volume);
		for (size_t i = 0; i < vols->nskipped; i++)
			if (!strncmp(vols->skipped[i], o->volume, len) && vols->skipped[i][len] == ':')
				return dv_error(err, DV_E_USAGE, "snapshot %.16s: volume %s cannot be assembled: %s", id,
						o->volume, vols->skipped[i] + len + 2);
		char names[512];
		vol_names(vols, names, sizeof names);
		return dv_error(err, DV_E_USAGE, "snapshot %.16s has no volume %s (it has: %s)", id, o->volume, names);
	}
	/* load the disks it lies on */
	for (size_t s = 0; rc == 0 && s < v->vol.nsegs; s++)
		for (uint32_t a = 0; rc == 0 && a < v->vol.segs[s].nareas; a++) {
			size_t i = (size_t)(v->vol.segs[s].areas[a].src - srcs);
			if (i >= nd)
				DV_BUG("volume %s lies on no disk of the snapshot", v->name);
			if (!w->out.disks[i].start)
				rc = load_dix(r, json_array_get(disks, i), &w->out.disks[i], err);
		}
	if (rc < 0)
		return rc;
	w->out.vol = &v->vol;
	w->out.size = v->vol.size;
	snprintf(what, what_len, "volume %s", v->name);
	return 0;
}

static void release_output(struct walker *w)
{
	for (size_t i = 0; w->out.disks && i < w->out.ndisks; i++)
		release_dix(&w->out.disks[i]);
	free(w->out.disks);
	if (w->out.srcs) {
		struct dv_source *s = (struct dv_source *)w->out.srcs;
		for (size_t i = 0; i < w->out.ndisks; i++)
			dv_source_close(&s[i]);
		free(s);
	}
	memset(&w->out, 0, sizeof w->out);
}

int dv_restore(struct dv_repo *r, const char *id, const char *target, const struct dv_restore_opts *o,
	       struct dv_stats *stats, struct dv_err *err)
{
	memset(stats, 0, sizeof *stats);
	json_t *m = NULL;
	struct dv_chunk_index *ix = NULL;
	struct dv_lock *lock = NULL;
	struct dv_target t = {.fd = -1};
	struct dv_layout_vols vols = {0};
	struct walker w = {.st = stats, .o = o, .err = err, .t0 = dv_now(), .fd = -1};
	char what[200], name[400];
	int rc = open_snapshot(r, id, &m, &ix, &lock, err);
	w.lock = lock;
	if (rc < 0)
		goto out;
	rc = setup_output(r, id, m, o, &w, &vols, what, sizeof what, err);
	if (rc < 0)
		goto out;
	stats->bytes_total = w.out.size;
	if (o->stream_fd >= 0) {
		w.fd = o->stream_fd;
		snprintf(name, sizeof name, "%s of snapshot %.16s", what, id);
	} else {
		rc = dv_target_open(target, w.out.size, o->force, &t, err);
		if (rc < 0)
			goto out;
		snprintf(name, sizeof name, o->volume ? "%s (%s)" : "%s", target, what);
	}
	w.ctx = (struct rctx){.r = r, .ix = ix, .target = w.fd >= 0 ? NULL : &t};
	w.disk_name = name;
	w.off_name = o->volume ? "offset" : "disk offset";
	walker_start(&w, r, o->threads);
	rc = w.fd >= 0 ? stream_output(&w) : walk_output(&w, NULL);
	walker_release(&w, r);
	if (w.fd < 0) {
		int crc = dv_target_close(&t, rc < 0 ? NULL : err);
		if (rc == 0)
			rc = crc;
	}
	if (rc == 0)
		progress(&w, true);
out:
	if (t.fd >= 0) {
		struct dv_err ignore;
		if (dv_target_close(&t, &ignore) < 0)
			dv_debug("closing target after failure: %s", ignore.msg);
	}
	release_output(&w);
	dv_layout_vols_release(&vols);
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
	struct walker w = {.st = stats, .o = o, .err = err, .t0 = dv_now(), .fd = -1, .off_name = "disk offset"};
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
	struct dix x = {0};
	w.out = (struct output){.disks = &x, .ndisks = 1};
	for (size_t i = 0; rc == 0 && i < json_array_size(disks); i++) {
		rc = load_dix(r, json_array_get(disks, i), &x, err);
		snprintf(name, sizeof name, "snapshot %.16s disk %zu", id, i);
		w.disk_name = name;
		w.out.size = x.d.disk_size;
		if (rc == 0)
			rc = walk_output(&w, seen);
		release_dix(&x);
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
