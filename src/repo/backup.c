/*
 * backup.c - the imaging pipeline.
 *
 *   main thread: read (large sequential reads) -> zero-run detection ->
 *                content-defined chunking -> submit jobs in disk order
 *   workers:     chunk id (SHA-256) -> dedup lookup -> zstd if new
 *   main thread: collect jobs in order -> pack writer -> disk index
 *
 * Zero runs of at least DV_ZERO_RUN_MIN bytes (aligned 4 KiB blocks) end the
 * current chunk and become zero extents; shorter ones stay inside chunks,
 * where zstd makes them nearly free. Zero and unused extents travel through
 * the same ordered queue as data jobs, so the disk index is built strictly
 * in disk order without draining the pipeline.
 *
 * Commit order: packs are published as they fill; an index segment is
 * written every DV_SEGMENT_PACKS packs and at the end (so a killed backup
 * leaves indexed packs the next run deduplicates against); then the disk
 * indexes; the manifest last.
 */
#include <stdio.h>
#include "repo_internal.h"

#include "disk/probe.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DV_READ_SIZE (4u << 20)
#define DV_PREFETCH_AHEAD (16u << 20)
#define DV_ZERO_BLOCK_SIZE 4096u
#define DV_ZERO_RUN_MIN (64u * 1024)
#define DV_SEGMENT_PACKS 16
#define DV_PUBLISH_DEPTH 2

/*
 * The publisher: a thread that fsyncs sealed packs and publishes them
 * (a rename locally, an upload on S3) while the pipeline goes on filling
 * the next pack. At most DV_PUBLISH_DEPTH packs wait, which bounds the
 * spool space. The first failure is kept; later packs are discarded.
 */
struct publisher {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct dv_pack_writer *queue[DV_PUBLISH_DEPTH];
	unsigned head, count;
	bool busy, stop;
	int rc;
	struct dv_err err;
};

static void *publish_loop(void *arg)
{
	struct publisher *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->count && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->count)
			break;
		struct dv_pack_writer *w = p->queue[p->head];
		p->head = (p->head + 1) % DV_PUBLISH_DEPTH;
		p->count--;
		p->busy = true;
		bool failed = p->rc < 0;
		pthread_mutex_unlock(&p->mu);
		struct dv_err err;
		int rc = 0;
		if (failed)
			dv_pack_writer_abort(w);
		else
			rc = dv_pack_writer_publish(w, &err);
		pthread_mutex_lock(&p->mu);
		if (rc < 0 && p->rc == 0) {
			p->rc = rc;
			p->err = err;
		}
		p->busy = false;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void publisher_start(struct publisher *p)
{
	memset(p, 0, sizeof *p);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&p->thread, NULL, publish_loop, p) != 0)
		DV_BUG("cannot create publisher thread");
}

/* Queues a sealed pack; returns the publisher's first failure, if any. */
static int publisher_push(struct publisher *p, struct dv_pack_writer *w, struct dv_err *err)
{
	pthread_mutex_lock(&p->mu);
	while (p->count == DV_PUBLISH_DEPTH)
		pthread_cond_wait(&p->cv, &p->mu);
	p->queue[(p->head + p->count) % DV_PUBLISH_DEPTH] = w;
	p->count++;
	pthread_cond_broadcast(&p->cv);
	int rc = p->rc;
	if (rc < 0 && err)
		*err = p->err;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Waits until every queued pack is published; returns the first failure. */
static int publisher_wait(struct publisher *p, struct dv_err *err)
{
	pthread_mutex_lock(&p->mu);
	while (p->count || p->busy)
		pthread_cond_wait(&p->cv, &p->mu);
	int rc = p->rc;
	if (rc < 0 && err)
		*err = p->err;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static void publisher_stop(struct publisher *p)
{
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
}

struct job {
	uint32_t type; /* enum dv_extent_type */
	uint64_t len;
	uint8_t *data; /* capacity: chunker max */
	struct dv_id id;
	bool known;
	struct dv_buf comp;   /* the blob to store: zstd frame, sealed when encrypted */
	struct dv_buf tmp;
	struct job *next_free;
};

struct backup {
	struct dv_repo *r;
	const struct dv_backup_opts *o;
	struct dv_chunk_index *ix;
	struct dv_workq *q;
	struct dv_chunker *chunker;
	struct job *free_jobs;
	struct job *cur;      /* chunk being assembled */
	uint64_t zrun;        /* pending zero bytes not yet classified */
	struct dv_disk_index disk;
	struct dv_sha256_ctx *disk_sha; /* --sha256 */
	/* packs */
	struct dv_pack_writer *pw;
	uint32_t pw_no;
	struct publisher pub;
	struct dv_lock *lock;
	struct dv_index_segment seg;   /* pending segment: finished packs */
	struct dv_id *pw_ids;          /* entries of the open pack */
	struct dv_chunk_loc *pw_locs;
	size_t pw_n, pw_cap;
	struct dv_stats *st;
	double t0, last_progress;
	int failed;           /* first error code from the collect stage */
	struct dv_err *err;
};

static void work(void *arg, void *ctx)
{
	struct job *j = arg;
	struct backup *b = ctx;
	if (j->type != DV_EXTENT_DATA)
		return;
	dv_repo_chunk_id(b->r, j->data, j->len, &j->id);
	j->known = dv_chunk_index_lookup(b->ix, &j->id, NULL);
	if (j->known)
		return;
	if (!b->r->encrypted) {
		dv_compress(j->data, j->len, b->r->zstd_level, &j->comp);
		return;
	}
	/* Sealed with the chunk id as associated data: a blob swapped for
	 * another valid one fails to open. */
	size_t n;
	dv_compress(j->data, j->len, b->r->zstd_level, &j->tmp);
	dv_repo_seal(b->r, j->id.b, DV_ID_LEN, j->tmp.data, j->tmp.len, &j->comp, &n);
}

static struct job *job_get(struct backup *b)
{
	struct job *j = b->free_jobs;
	if (j)
		b->free_jobs = j->next_free;
	else {
		j = dv_calloc(1, sizeof *j);
		j->data = dv_malloc(b->r->chunker.max);
	}
	j->len = 0;
	j->type = DV_EXTENT_DATA;
	j->known = false;
	return j;
}

static void job_put(struct backup *b, struct job *j)
{
	j->next_free = b->free_jobs;
	b->free_jobs = j;
}

static void jobs_free(struct backup *b)
{
	while (b->free_jobs) {
		struct job *j = b->free_jobs;
		b->free_jobs = j->next_free;
		dv_buf_release(&j->comp);
		dv_buf_release(&j->tmp);
		free(j->data);
		free(j);
	}
}

/* ---- packs and index segments ------------------------------------------ */

static int write_segment(struct backup *b)
{
	if (!b->seg.npacks)
		return 0;
	/* A segment may only name packs that are durable. */
	int prc = publisher_wait(&b->pub, b->err);
	if (prc < 0)
		return prc;
	struct dv_buf buf = DV_BUF_INIT;
	dv_index_segment_encode(&b->seg, &buf);
	char id[DV_ID_HEX_LEN + 1];
	int rc = dv_repo_put_content(b->r, "index", buf.data, buf.len, id, b->err);
	dv_buf_release(&buf);
	dv_index_segment_release(&b->seg);
	return rc;
}

static int finish_pack(struct backup *b)
{
	if (!b->pw)
		return 0;
	struct dv_pack_info info;
	int rc = dv_pack_writer_seal(b->pw, &info, b->err);
	struct dv_pack_writer *sealed = b->pw;
	b->pw = NULL;
	if (rc < 0)
		return rc;
	rc = publisher_push(&b->pub, sealed, b->err);
	if (rc < 0)
		return rc;
	dv_chunk_index_set_pack(b->ix, b->pw_no, &info);
	b->st->packs++;
	struct dv_index_segment *s = &b->seg;
	uint32_t local = (uint32_t)s->npacks;
	s->packs = dv_realloc(s->packs, (s->npacks + 1) * sizeof *s->packs);
	s->packs[s->npacks++] = info;
	if (s->n + b->pw_n > s->cap) {
		s->cap = s->n + b->pw_n + 1024;
		s->ids = dv_realloc(s->ids, s->cap * sizeof *s->ids);
		s->locs = dv_realloc(s->locs, s->cap * sizeof *s->locs);
	}
	for (size_t i = 0; i < b->pw_n; i++) {
		s->ids[s->n] = b->pw_ids[i];
		s->locs[s->n] = b->pw_locs[i];
		s->locs[s->n].pack = local;
		s->n++;
	}
	b->pw_n = 0;
	if (s->npacks >= DV_SEGMENT_PACKS)
		return write_segment(b);
	return 0;
}

static int store_chunk(struct backup *b, struct job *j)
{
	int rc;
	if (!b->pw) {
		rc = dv_pack_writer_new(b->r, &b->pw, b->err);
		if (rc < 0)
			return rc;
		struct dv_pack_info pending = {0};
		b->pw_no = dv_chunk_index_add_pack(b->ix, &pending);
	}
	uint64_t off;
	rc = dv_pack_writer_add(b->pw, &j->id, j->comp.data, (uint32_t)j->comp.len, (uint32_t)j->len, &off, b->err);
	if (rc < 0)
		return rc;
	struct dv_chunk_loc loc = {b->pw_no, (uint32_t)j->comp.len, (uint32_t)j->len, off};
	dv_chunk_index_insert(b->ix, &j->id, &loc);
	if (b->pw_n == b->pw_cap) {
		b->pw_cap = b->pw_cap ? 2 * b->pw_cap : 256;
		b->pw_ids = dv_realloc(b->pw_ids, b->pw_cap * sizeof *b->pw_ids);
		b->pw_locs = dv_realloc(b->pw_locs, b->pw_cap * sizeof *b->pw_locs);
	}
	b->pw_ids[b->pw_n] = j->id;
	b->pw_locs[b->pw_n] = loc;
	b->pw_n++;
	b->st->chunks_new++;
	b->st->bytes_new_raw += j->len;
	b->st->bytes_new_stored += j->comp.len;
	if (dv_pack_writer_size(b->pw) >= b->r->pack_size)
		return finish_pack(b);
	return 0;
}

/* In disk order: account for a finished job. After the first failure jobs
 * are only drained. */
static void commit(struct backup *b, struct job *j)
{
	if (!b->failed) {
		int rc = 0;
		if (j->type == DV_EXTENT_DATA) {
			b->st->chunks++;
			b->st->bytes_data += j->len;
			if (!j->known && !dv_chunk_index_lookup(b->ix, &j->id, NULL))
				rc = store_chunk(b, j);
			else
				b->st->bytes_dedup += j->len;
			dv_disk_index_add(&b->disk, DV_EXTENT_DATA, j->len, &j->id);
		} else {
			dv_disk_index_add(&b->disk, j->type, j->len, NULL);
		}
		b->st->bytes_done += j->len;
		if (rc < 0)
			b->failed = rc;
	}
	job_put(b, j);
}

static void submit(struct backup *b, struct job *j)
{
	void *done;
	dv_workq_submit(b->q, j, &done);
	if (done)
		commit(b, done);
}

static void drain(struct backup *b)
{
	struct job *j;
	while ((j = dv_workq_collect(b->q)))
		commit(b, j);
}

static void progress(struct backup *b, bool final)
{
	if (!b->o->progress)
		return;
	double now = dv_now();
	if (!final && now - b->last_progress < 0.25)
		return;
	b->last_progress = now;
	b->st->seconds = now - b->t0;
	b->o->progress(b->st, final, b->o->progress_ctx);
}

/* ---- segmentation -------------------------------------------------------- */

static void cut_chunk(struct backup *b)
{
	if (b->cur && b->cur->len) {
		submit(b, b->cur);
		b->cur = NULL;
	}
	dv_chunker_reset(b->chunker);
}

static void feed(struct backup *b, const uint8_t *p, size_t n)
{
	while (n) {
		if (!b->cur)
			b->cur = job_get(b);
		size_t k = dv_chunker_scan(b->chunker, p, n);
		size_t take = k ? k : n;
		memcpy(b->cur->data + b->cur->len, p, take);
		b->cur->len += take;
		if (k) {
			submit(b, b->cur);
			b->cur = NULL;
		}
		p += take;
		n -= take;
	}
}

static void add_marker(struct backup *b, uint32_t type, uint64_t len)
{
	struct job *j = job_get(b);
	j->type = type;
	j->len = len;
	submit(b, j);
}

static void end_zero_run(struct backup *b)
{
	uint64_t z = b->zrun;
	if (!z)
		return;
	b->zrun = 0;
	if (z >= DV_ZERO_RUN_MIN) {
		cut_chunk(b);
		b->st->bytes_zero += z;
		add_marker(b, DV_EXTENT_ZERO, z);
		return;
	}
	while (z) {
		size_t n = (size_t)DV_MIN(z, (uint64_t)DV_ZERO_BLOCK);
		feed(b, dv_zero_block(), n);
		z -= n;
	}
}

static void scan_buffer(struct backup *b, const uint8_t *p, size_t n)
{
	size_t span = 0, span_len = 0;
	for (size_t i = 0; i < n; i += DV_ZERO_BLOCK_SIZE) {
		size_t blen = DV_MIN((size_t)DV_ZERO_BLOCK_SIZE, n - i);
		if (dv_is_zero(p + i, blen)) {
			if (span_len) {
				feed(b, p + span, span_len);
				span_len = 0;
			}
			b->zrun += blen;
		} else {
			end_zero_run(b);
			if (!span_len)
				span = i;
			span_len += blen;
		}
	}
	if (span_len)
		feed(b, p + span, span_len);
}

static void hash_zeros(struct dv_sha256_ctx *c, uint64_t n)
{
	while (n) {
		size_t k = (size_t)DV_MIN(n, (uint64_t)DV_ZERO_BLOCK);
		dv_sha256_update(c, dv_zero_block(), k);
		n -= k;
	}
}

/*
 * --skip-bad-sectors: [off, off+n) failed to read as a whole. Read it
 * sector by sector; good runs go through the pipeline as usual, bad runs
 * become unreadable extents (restored as zeros) and are listed in the
 * manifest, as ddrescue users expect.
 */
static int salvage(struct backup *b, const struct dv_source *src, uint64_t off, uint8_t *buf, size_t n,
		   json_t *unreadable)
{
	size_t ss = src->sector_size ? src->sector_size : 512;
	size_t i = 0;
	while (i < n) {
		struct dv_err e;
		size_t good = i, len = DV_MIN(ss, n - i);
		while (i < n && dv_source_read(src, off + i, buf + i, len, &e) == 0) {
			i += len;
			len = DV_MIN(ss, n - i);
		}
		if (i > good) {
			b->st->bytes_read += i - good;
			if (b->disk_sha)
				dv_sha256_update(b->disk_sha, buf + good, i - good);
			scan_buffer(b, buf + good, i - good);
		}
		size_t bad = i;
		while (i < n && dv_source_read(src, off + i, buf + i, DV_MIN(ss, n - i), &e) < 0)
			i += DV_MIN(ss, n - i);
		if (i > bad) {
			end_zero_run(b);
			cut_chunk(b);
			add_marker(b, DV_EXTENT_UNREADABLE, i - bad);
			b->st->bytes_unreadable += i - bad;
			if (b->disk_sha)
				hash_zeros(b->disk_sha, i - bad);
			/* Adjacent bad runs (across read buffers) merge in the list. */
			json_t *last = json_array_get(unreadable, json_array_size(unreadable) - 1);
			uint64_t lo = (uint64_t)json_integer_value(json_object_get(last, "offset"));
			uint64_t ll = (uint64_t)json_integer_value(json_object_get(last, "length"));
			if (last && lo + ll == off + bad)
				json_object_set_new(last, "length", json_integer((json_int_t)(ll + i - bad)));
			else
				json_array_append_new(unreadable, json_pack("{s:I, s:I}", "offset", (json_int_t)(off + bad),
									    "length", (json_int_t)(i - bad)));
		}
		if (dv_repo_interrupted())
			return dv_error(b->err, DV_E_INTERRUPTED, "backup of %s interrupted", src->path);
	}
	return 0;
}

/*
 * Reads within the plan: sources have no kernel readahead (disk.h), so a
 * cursor over the plan (READ regions, minus holes) runs DV_PREFETCH_AHEAD
 * bytes ahead of the reader and names those ranges, and only those, to the
 * kernel. ahead and want count planned bytes, not disk offsets, so a large
 * unused gap does not stall it.
 */
struct prefetch {
	size_t ri;      /* region of the map */
	uint64_t off;   /* next disk offset to consider */
	uint64_t ahead; /* planned bytes named so far */
};

static void prefetch_to(struct prefetch *pf, const struct dv_source *src, const struct dv_region_map *map,
			uint64_t want)
{
	while (pf->ahead < want && pf->ri < map->n) {
		const struct dv_region *r = &map->v[pf->ri];
		uint64_t end = r->off + r->len;
		if (r->kind != DV_REGION_READ || pf->off >= end) {
			pf->ri++;
			continue;
		}
		if (pf->off < r->off)
			pf->off = r->off;
		uint64_t n;
		bool hole;
		dv_source_run(src, pf->off, end - pf->off, &n, &hole);
		if (!n) {
			pf->ri = map->n;
			break;
		}
		if (!hole) {
			n = DV_MIN(n, want - pf->ahead);
			dv_source_prefetch(src, pf->off, n);
			pf->ahead += n;
		}
		pf->off += n;
	}
}

/* Images one source; fills disk (the manifest entry) on success. */
static int backup_source(struct backup *b, const struct dv_backup_source *bs, uint8_t *buf, json_t **disk)
{
	struct dv_source src;
	int rc = dv_source_open(bs->path, &src, b->err);
	if (rc < 0)
		return rc;
	/* The probe records the layout and, unless all_blocks, limits reading
	 * to what the filesystems use. */
	struct dv_region_map regions = {0};
	json_t *layout = NULL;
	rc = dv_disk_probe(&src, b->o->all_blocks, b->o->allow_mounted, &layout, &regions, b->err);
	if (rc < 0) {
		dv_source_close(&src);
		return rc;
	}
	const struct dv_region_map *map = &regions;
	json_t *unreadable = json_array();
	memset(&b->disk, 0, sizeof b->disk);
	b->disk.disk_size = src.size;
	b->disk_sha = b->o->sha256 ? dv_sha256_new() : NULL;
	uint64_t covered = 0, planned = 0; /* planned: bytes handed to dv_source_read */
	struct prefetch pf = {0};
	dv_chunker_reset(b->chunker);
	for (size_t ri = 0; rc == 0 && ri < map->n; ri++) {
		const struct dv_region *reg = &map->v[ri];
		if (reg->off != covered || reg->len > src.size - covered) {
			rc = dv_error(b->err, DV_E_FAIL, "source %s: region map does not match the disk size", src.path);
			break;
		}
		covered += reg->len;
		if (reg->kind == DV_REGION_UNUSED) {
			end_zero_run(b);
			cut_chunk(b);
			b->st->bytes_unused += reg->len;
			add_marker(b, DV_EXTENT_UNUSED, reg->len);
			if (b->disk_sha)
				hash_zeros(b->disk_sha, reg->len);
			continue;
		}
		uint64_t end = reg->off + reg->len;
		for (uint64_t off = reg->off; off < end;) {
			if (dv_repo_interrupted()) {
				rc = dv_error(b->err, DV_E_INTERRUPTED, "backup of %s interrupted", src.path);
				break;
			}
			if (b->failed) {
				rc = b->failed;
				break;
			}
			/* off stays on the zero-detection grid (whole
			 * DV_ZERO_BLOCK_SIZE blocks from the region start), so
			 * a hole joins the zero run exactly as reading its
			 * zeros would: the same disk index, byte for byte. */
			uint64_t run;
			bool hole;
			dv_source_run(&src, off, end - off, &run, &hole);
			if (hole) {
				uint64_t hend = off + run;
				if (hend < end)
					hend = reg->off + (hend - reg->off) / DV_ZERO_BLOCK_SIZE * DV_ZERO_BLOCK_SIZE;
				if (hend > off) {
					b->zrun += hend - off;
					b->st->bytes_sparse += hend - off;
					if (b->disk_sha)
						hash_zeros(b->disk_sha, hend - off);
					off = hend;
					progress(b, false);
					continue;
				}
				/* Less than a block of hole at off: read the block. */
				run = DV_MIN((uint64_t)DV_ZERO_BLOCK_SIZE, end - off);
			} else if (off + run < end) {
				uint64_t rel = off + run - reg->off;
				rel = (rel + DV_ZERO_BLOCK_SIZE - 1) / DV_ZERO_BLOCK_SIZE * DV_ZERO_BLOCK_SIZE;
				run = DV_MIN(reg->off + rel, end) - off;
			}
			size_t n = (size_t)DV_MIN((uint64_t)DV_READ_SIZE, run);
			prefetch_to(&pf, &src, map, planned + n + DV_PREFETCH_AHEAD);
			planned += n;
			rc = dv_source_read(&src, off, buf, n, b->err);
			if (rc == -DV_E_SOURCE && b->o->skip_bad_sectors) {
				rc = salvage(b, &src, off, buf, n, unreadable);
				if (rc < 0)
					break;
				off += n;
				continue;
			}
			if (rc < 0)
				break;
			b->st->bytes_read += n;
			if (b->disk_sha)
				dv_sha256_update(b->disk_sha, buf, n);
			scan_buffer(b, buf, n);
			off += n;
			progress(b, false);
			rc = dv_lock_refresh(b->lock, b->err);
			if (rc < 0)
				break;
		}
	}
	if (rc == 0 && covered != src.size)
		rc = dv_error(b->err, DV_E_FAIL, "source %s: region map covers %llu of %llu bytes", src.path,
			      (unsigned long long)covered, (unsigned long long)src.size);
	if (rc == 0) {
		end_zero_run(b);
		cut_chunk(b);
	}
	drain(b);
	if (b->cur) {
		job_put(b, b->cur);
		b->cur = NULL;
	}
	b->zrun = 0;
	if (rc == 0 && b->failed)
		rc = b->failed;
	struct dv_id sum;
	if (b->disk_sha) {
		dv_sha256_final(b->disk_sha, &sum);
		b->disk_sha = NULL;
	}
	char ixid[DV_ID_HEX_LEN + 1], digest[DV_ID_HEX_LEN + 1];
	if (rc == 0) {
		/* The disk index may be written now: it is garbage until the
		 * manifest names it, and writing it early bounds memory. */
		struct dv_buf enc = DV_BUF_INIT;
		dv_disk_index_encode(&b->disk, &enc);
		struct dv_id dg;
		dv_sha256(enc.data, enc.len, &dg);
		dv_id_hex(digest, &dg);
		rc = dv_repo_put_content(b->r, "diskindex", enc.data, enc.len, ixid, b->err);
		dv_buf_release(&enc);
	}
	if (rc == 0) {
		uint64_t counts[5] = {0}, bytes[5] = {0};
		for (size_t i = 0; i < b->disk.n; i++) {
			counts[b->disk.v[i].type]++;
			bytes[b->disk.v[i].type] += b->disk.v[i].length;
		}
		char sumhex[DV_ID_HEX_LEN + 1];
		if (b->o->sha256)
			dv_id_hex(sumhex, &sum);
		*disk = json_pack("{s:s, s:I, s:i, s:b, s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I},"
				  " s:O}",
				  "source", src.path, "size", (json_int_t)src.size, "sector_size", (int)src.sector_size,
				  "block_device", src.is_block, "index", ixid, "digest", digest, "sha256",
				  b->o->sha256 ? json_string(sumhex) : json_null(), "extents", "data",
				  (json_int_t)counts[DV_EXTENT_DATA], "zero", (json_int_t)counts[DV_EXTENT_ZERO], "unused",
				  (json_int_t)counts[DV_EXTENT_UNUSED], "unreadable",
				  (json_int_t)counts[DV_EXTENT_UNREADABLE], "bytes", "data",
				  (json_int_t)bytes[DV_EXTENT_DATA], "zero", (json_int_t)bytes[DV_EXTENT_ZERO], "unused",
				  (json_int_t)bytes[DV_EXTENT_UNUSED], "unreadable",
				  (json_int_t)bytes[DV_EXTENT_UNREADABLE], "layout", layout);
		json_object_set(*disk, "unreadable", unreadable);
		if (!*disk)
			DV_BUG("json_pack of disk failed");
	}
	dv_disk_index_release(&b->disk);
	dv_region_map_release(&regions);
	json_decref(layout);
	json_decref(unreadable);
	dv_source_close(&src);
	return rc;
}

json_t *dv_stats_json(const struct dv_stats *s)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "bytes_unreadable",
			 (json_int_t)s->bytes_unreadable, "bytes_sparse", (json_int_t)s->bytes_sparse, "bytes_total",
			 (json_int_t)s->bytes_total, "bytes_read", (json_int_t)s->bytes_read, "bytes_data",
			 (json_int_t)s->bytes_data, "bytes_zero", (json_int_t)s->bytes_zero, "bytes_unused",
			 (json_int_t)s->bytes_unused, "bytes_dedup", (json_int_t)s->bytes_dedup, "bytes_new_raw",
			 (json_int_t)s->bytes_new_raw, "bytes_new_stored", (json_int_t)s->bytes_new_stored, "chunks",
			 (json_int_t)s->chunks, "chunks_new", (json_int_t)s->chunks_new, "packs",
			 (json_int_t)s->packs, "seconds", s->seconds);
}

/*
 * The safety net behind the locks: prune replaces every index segment it
 * rewrites. If a segment this backup loaded at its start is gone, a prune
 * ran meanwhile (a lock judged stale, or removed by hand), and chunks this
 * backup deduplicated against may be gone too. Then every chunk the new
 * disk indexes use is looked up in the current index, and the manifest is
 * written only if all are there: a snapshot never references lost data.
 */
static int verify_after_concurrent_prune(struct backup *b, json_t *disks)
{
	size_t n;
	const char *const *segs = dv_chunk_index_segments(b->ix, &n);
	struct dv_strlist now = {0};
	int rc = dv_repo_list_ids(b->r, "index", &now, b->err);
	/* Both lists are sorted: one merge pass finds a vanished segment. */
	bool replaced = false;
	for (size_t i = 0, k = 0; rc == 0 && i < n && !replaced; i++) {
		while (k < now.n && strcmp(now.v[k], segs[i]) < 0)
			k++;
		replaced = k == now.n || strcmp(now.v[k], segs[i]) != 0;
	}
	dv_strlist_release(&now);
	if (rc < 0 || !replaced)
		return rc;
	struct dv_chunk_index *fresh = dv_chunk_index_new();
	rc = dv_chunk_index_load(fresh, b->r, b->err);
	bool lost = false;
	for (size_t i = 0; rc == 0 && !lost && i < json_array_size(disks); i++) {
		struct dv_disk_index d = {0};
		/* The prune may have taken this backup's disk index too. */
		if (dv_repo_load_disk(b->r, json_array_get(disks, i), &d, b->err) < 0)
			lost = true;
		for (size_t k = 0; !lost && k < d.n; k++)
			lost = d.v[k].type == DV_EXTENT_DATA && !dv_chunk_index_lookup(fresh, &d.v[k].id, NULL);
		dv_disk_index_release(&d);
	}
	dv_chunk_index_free(fresh);
	if (rc == 0 && lost)
		rc = dv_error(b->err, DV_E_LOCKED,
			      "a prune ran during this backup and removed data it relies on; no snapshot was written: "
			      "run the backup again");
	return rc;
}

static int write_manifest(struct backup *b, json_t *disks, char id[DV_ID_HEX_LEN + 1])
{
	const struct dv_backup_opts *o = b->o;
	char host[256], now[32];
	if (o->host)
		snprintf(host, sizeof host, "%s", o->host);
	else if (gethostname(host, sizeof host) < 0)
		snprintf(host, sizeof host, "unknown");
	host[sizeof host - 1] = 0;
	int64_t t = o->time ? o->time : dv_unix_now();
	dv_format_time(now, sizeof now, t);
	json_t *tags = json_array();
	for (size_t i = 0; i < o->ntags; i++)
		json_array_append_new(tags, json_string(o->tags[i]));
	json_t *m = json_pack("{s:s, s:i, s:s, s:I, s:s, s:o, s:o, s:s, s:s, s:o, s:o, s:O}", "format",
			      "diskvault-snapshot", "version", DV_SNAPSHOT_VERSION, "time", now, "time_unix_us",
			      (json_int_t)(o->time ? o->time * 1000000 : dv_unix_now_us()),
			      "host", host, "name", o->name ? json_string(o->name) : json_null(), "tags", tags, "mode",
			      o->all_blocks ? "all-blocks" : "used-blocks", "repository", b->r->id, "disks", disks, "stats",
			      dv_stats_json(b->st), "inventory", o->inventory ? o->inventory : json_null());
	if (!m)
		DV_BUG("json_pack of manifest failed");
	char *text = json_dumps(m, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(m);
	int rc = dv_repo_put_content(b->r, "snapshots", text, strlen(text), id, b->err);
	free(text);
	return rc;
}

#ifdef DV_TEST_HOOKS
/*
 * Test hook, compiled in only with the CMake option DV_TEST_HOOKS (ON in
 * BUILD_TESTING builds, OFF in releases). With DISKVAULT_TEST_COMMIT_GATE=
 * PATH a backup whose data is stored, just before it checks for a
 * concurrent prune and commits, creates PATH.reached and waits until PATH
 * exists (at most 120 s): tests/integration/t_ops_locks.sh runs a prune in
 * exactly that window, with no timing guesswork.
 */
static void test_commit_gate(void)
{
	const char *gate = getenv("DISKVAULT_TEST_COMMIT_GATE");
	if (!gate)
		return;
	char *reached = dv_asprintf("%s.reached", gate);
	int fd = open(reached, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	free(reached);
	for (int i = 0; i < 12000 && access(gate, F_OK) != 0; i++)
		usleep(10000);
}
#endif

int dv_backup(struct dv_repo *r, const struct dv_backup_source *src, size_t nsrc, const struct dv_backup_opts *o,
	      char id[DV_ID_HEX_LEN + 1], struct dv_stats *stats, struct dv_err *err)
{
	if (nsrc == 0)
		return dv_error(err, DV_E_USAGE, "backup: no source given");
	struct dv_lock *lock = NULL;
	int rc = dv_lock_acquire(r, false, &lock, err);
	if (rc < 0)
		return rc;
	struct backup b = {.r = r, .o = o, .st = stats, .err = err, .lock = lock};
	memset(stats, 0, sizeof *stats);
	b.t0 = dv_now();
	/* Total for progress: sizes of all sources (opened again below). */
	for (size_t i = 0; i < nsrc; i++) {
		struct dv_source s;
		rc = dv_source_open(src[i].path, &s, err);
		if (rc < 0)
			goto out;
		stats->bytes_total += s.size;
		dv_source_close(&s);
	}
	b.ix = dv_chunk_index_new();
	rc = dv_chunk_index_load(b.ix, r, err);
	if (rc < 0)
		goto out;
	unsigned threads = o->threads ? o->threads : dv_cpu_count();
	b.q = dv_workq_new(threads, 2 * threads + 2, work, &b);
	b.chunker = dv_chunker_new(&r->chunker);
	publisher_start(&b.pub);
	uint8_t *buf = dv_malloc(DV_READ_SIZE);
	json_t *disks = json_array();
	for (size_t i = 0; rc == 0 && i < nsrc; i++) {
		json_t *disk = NULL;
		rc = backup_source(&b, &src[i], buf, &disk);
		if (rc == 0)
			json_array_append_new(disks, disk);
	}
	free(buf);
	if (rc == 0)
		rc = finish_pack(&b);
	if (rc == 0)
		rc = write_segment(&b);
	if (rc == 0)
		rc = publisher_wait(&b.pub, err);
	stats->seconds = dv_now() - b.t0;
#ifdef DV_TEST_HOOKS
	if (rc == 0)
		test_commit_gate();
#endif
	if (rc == 0)
		rc = verify_after_concurrent_prune(&b, disks);
	if (rc == 0)
		rc = write_manifest(&b, disks, id);
	else
		json_decref(disks);
	if (rc == 0)
		progress(&b, true);
	dv_pack_writer_abort(b.pw);
	publisher_stop(&b.pub);
	dv_index_segment_release(&b.seg);
	dv_workq_free(b.q);
	jobs_free(&b);
	dv_chunker_free(b.chunker);
	free(b.pw_ids);
	free(b.pw_locs);
out:
	dv_chunk_index_free(b.ix);
	dv_lock_release(lock);
	return rc;
}
