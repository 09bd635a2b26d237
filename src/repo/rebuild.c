/*
 * rebuild.c - rebuild the chunk index from the packs themselves. Every pack
 * carries its own index as its last tar member, so a lost or damaged
 * index/ segment loses nothing: this reads each pack, checks it against
 * its name, finds the "index" member with libarchive, checks every blob it
 * lists, and writes one new segment for all good packs before deleting the
 * old segments (the same order as prune, so a crash is harmless).
 */
#include "repo_internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rebuild {
	struct dv_repo *r;
	dv_check_problem_fn problem;
	void *ctx;
	struct dv_rebuild_result *res;
	struct dv_strlist names;
};

static void problem(struct rebuild *rb, const char *fmt, ...) DV_PRINTF(2, 3);
static void problem(struct rebuild *rb, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	rb->res->packs_skipped++;
	if (rb->problem)
		rb->problem(msg, true, rb->ctx);
}

/* Locates the "index" member of a pack held in memory. */
static int find_index(const struct dv_buf *b, uint64_t *off, uint32_t *len)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	int rc = -1;
	if (archive_read_open_memory(a, b->data, b->len) == ARCHIVE_OK) {
		struct archive_entry *e;
		while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
			if (strcmp(archive_entry_pathname(e), DV_PACK_INDEX_NAME))
				continue;
			/* ustar: the data follows the 512-byte header. */
			la_int64_t pos = archive_read_header_position(a) + 512;
			la_int64_t size = archive_entry_size(e);
			if (pos > 0 && size > 0 && (uint64_t)(pos + size) <= b->len && size < UINT32_MAX) {
				*off = (uint64_t)pos;
				*len = (uint32_t)size;
				rc = 0;
			}
			break;
		}
	}
	archive_read_free(a);
	return rc;
}

/* Reads one pack; on success adds it and its entries to seg. */
static void add_pack(struct rebuild *rb, const char *name, struct dv_index_segment *seg)
{
	struct dv_id id;
	const char *base = strrchr(name, '/');
	if (dv_id_parse(&id, base ? base + 1 : name) < 0)
		return;
	struct dv_buf b = DV_BUF_INIT;
	struct dv_err e;
	struct dv_pack_entry *ents = NULL;
	size_t n = 0;
	if (dv_store_get(rb->r->store, name, DV_MAX_PACK_SIZE, &b, &e) < 0) {
		problem(rb, "%s", e.msg);
		goto out;
	}
	struct dv_id got;
	dv_sha256(b.data, b.len, &got);
	if (!dv_id_eq(&got, &id)) {
		problem(rb, "%s: content does not match its name; its chunks are not indexed", name);
		goto out;
	}
	struct dv_pack_info info = {.id = id, .size = b.len, .known = true};
	if (find_index(&b, &info.index_offset, &info.index_len) < 0) {
		problem(rb, "%s: no readable index member; its chunks are not indexed", name);
		goto out;
	}
	int bad = dv_pack_verify(rb->r, b.data, b.len, &info, name, &ents, &n, NULL, NULL, &e);
	if (bad < 0) {
		problem(rb, "%s", e.msg);
		goto out;
	}
	if (bad > 0) {
		problem(rb, "%s: %d damaged blob(s); the pack is not indexed", name, bad);
		goto out;
	}
	seg->packs = dv_realloc(seg->packs, (seg->npacks + 1) * sizeof *seg->packs);
	uint32_t pno = (uint32_t)seg->npacks;
	seg->packs[seg->npacks++] = info;
	if (seg->n + n > seg->cap) {
		seg->cap = seg->n + n + 1024;
		seg->ids = dv_realloc(seg->ids, seg->cap * sizeof *seg->ids);
		seg->locs = dv_realloc(seg->locs, seg->cap * sizeof *seg->locs);
	}
	for (size_t i = 0; i < n; i++) {
		seg->ids[seg->n] = ents[i].id;
		seg->locs[seg->n] = (struct dv_chunk_loc){pno, ents[i].stored_len, ents[i].raw_len, ents[i].offset};
		seg->n++;
	}
	rb->res->packs++;
	rb->res->chunks += n;
out:
	free(ents);
	dv_buf_release(&b);
}

int dv_rebuild_index(struct dv_repo *r, dv_check_problem_fn fn, void *ctx, struct dv_rebuild_result *res,
		     struct dv_err *err)
{
	memset(res, 0, sizeof *res);
	struct dv_lock *lock = NULL;
	int rc = dv_lock_acquire(r, true, &lock, err);
	if (rc < 0)
		return rc;
	struct rebuild rb = {.r = r, .problem = fn, .ctx = ctx, .res = res};
	struct dv_index_segment seg = {0};
	rc = dv_store_list_names(r->store, "packs/", &rb.names, err);
	for (size_t i = 0; rc == 0 && i < rb.names.n; i++) {
		add_pack(&rb, rb.names.v[i], &seg);
		if (dv_repo_interrupted())
			rc = dv_error(err, DV_E_INTERRUPTED, "rebuild-index interrupted; the old index is untouched");
		if (rc == 0)
			rc = dv_lock_refresh(lock, err);
	}
	char id[DV_ID_HEX_LEN + 1] = "";
	if (rc == 0 && seg.npacks) {
		struct dv_buf enc = DV_BUF_INIT;
		dv_index_segment_encode(&seg, &enc);
		rc = dv_repo_put_content(r, "index", enc.data, enc.len, id, err);
		dv_buf_release(&enc);
	}
	if (rc == 0) {
		rc = dv_store_list_names(r->store, "index/", &rb.names, err);
		struct dv_strlist old = {0};
		for (size_t i = 0; rc == 0 && i < rb.names.n; i++) {
			const char *base = strrchr(rb.names.v[i], '/');
			if (strcmp(base ? base + 1 : rb.names.v[i], id))
				dv_strlist_add(&old, rb.names.v[i]);
		}
		if (rc == 0)
			rc = dv_store_delete_many(r->store, old.v, old.n, err);
		if (rc == 0)
			res->segments_replaced += old.n;
		dv_strlist_release(&old);
	}
	dv_strlist_release(&rb.names);
	dv_index_segment_release(&seg);
	dv_lock_release(lock);
	return rc;
}
