/*
 * copy.c - copy a repository to another location (local -> S3, S3 ->
 * local, ...) object by object. Objects are immutable and named by their
 * content, so an object the destination already has with the same size is
 * the same object: a rerun copies only what is missing, which makes copy
 * resumable. Order: packs, index segments, disk indexes and other records,
 * snapshot manifests, and config last - until config arrives the
 * destination is not a repository, and every snapshot visible there has
 * all its data.
 *
 * What the destination has is listed once per directory, not asked object
 * by object: on S3 every HEAD waits for the uploads queued before it (the
 * store's ordering barrier), which would upload one pack at a time.
 */
#include "repo_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const copy_order[] = {"packs/", "index/", "diskindex/", "ebs/", "snapshots/"};

/* Copies one object; large ones through a spool file (multipart on S3). */
static int copy_object(struct dv_store *from, struct dv_store *to, const char *name, uint64_t size,
		       struct dv_copy_result *res, struct dv_err *err)
{
	struct dv_buf b = DV_BUF_INIT;
	int rc = dv_store_get(from, name, DV_MAX_PACK_SIZE, &b, err);
	if (rc == 0 && b.len != size)
		rc = dv_error(err, DV_E_CORRUPT, "%s: changed size while being copied", name);
	/* Content-addressed objects are checked on the way: copy must not
	 * carry damage to the other place (config and records are not). */
	const char *base = strrchr(name, '/');
	struct dv_id want, got;
	if (rc == 0 && base && strncmp(name, "ebs/", 4) && dv_id_parse(&want, base + 1) == 0) {
		dv_sha256(b.data, b.len, &got);
		if (!dv_id_eq(&want, &got))
			rc = dv_error(err, DV_E_CORRUPT, "%s: content does not match its name; not copied (run check)", name);
	}
	if (rc == 0 && size >= (16u << 20)) {
		char rnd[33];
		dv_random_hex(rnd, 16);
		char *spool = dv_asprintf("%s/copy-%s.tmp", dv_store_spool_dir(to), rnd);
		int fd = open(spool, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			rc = dv_error_errno(err, errno, "creating %s", spool);
		if (rc == 0)
			rc = dv_write_all(fd, b.data, b.len, err, spool);
		/* a local store publishes the spool file by renaming it, so it
		 * must be durable first; an upload reads it and removes it (a
		 * crash before the upload finished copies it again) */
		if (rc == 0 && dv_store_is_local(to) && fsync(fd) < 0)
			rc = dv_error_errno(err, errno, "fsync of %s", spool);
		if (fd >= 0)
			close(fd);
		if (rc == 0)
			rc = dv_store_put_file(to, name, spool, err);
		else
			unlink(spool);
		free(spool);
	} else if (rc == 0) {
		rc = dv_store_put(to, name, b.data, b.len, err);
	}
	if (rc == 0) {
		res->objects_copied++;
		res->bytes_copied += size;
	}
	dv_buf_release(&b);
	return rc;
}

struct collected {
	struct dv_strlist names;
	uint64_t *sizes;
	size_t cap;
};

struct present {
	const char *name;
	uint64_t size;
};

static int present_cmp(const void *a, const void *b)
{
	return strcmp(((const struct present *)a)->name, ((const struct present *)b)->name);
}

/* Sorted (name, size) view of a listing, for lookups by name. */
static struct present *present_index(const struct collected *c)
{
	struct present *p = dv_calloc(c->names.n ? c->names.n : 1, sizeof *p);
	for (size_t i = 0; i < c->names.n; i++) {
		p[i].name = c->names.v[i];
		p[i].size = c->sizes[i];
	}
	qsort(p, c->names.n, sizeof *p, present_cmp);
	return p;
}

/* True when the destination listed name with exactly this size. */
static bool is_present(const struct present *p, size_t n, const char *name, uint64_t size)
{
	struct present key = {name, 0};
	const struct present *hit = bsearch(&key, p, n, sizeof *p, present_cmp);
	return hit && hit->size == size;
}

static int collect(const char *name, uint64_t size, void *ctx)
{
	struct collected *c = ctx;
	if (c->names.n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->sizes = dv_realloc(c->sizes, c->cap * sizeof *c->sizes);
	}
	c->sizes[c->names.n] = size;
	dv_strlist_add(&c->names, name);
	return 0;
}

int dv_copy(struct dv_repo *r, const char *to, struct dv_copy_result *res, struct dv_err *err)
{
	memset(res, 0, sizeof *res);
	struct dv_store *dst = NULL;
	struct dv_lock *lock = NULL;
	int rc = dv_store_open(to, true, &dst, err);
	if (rc < 0)
		return rc;
	/* Small objects are written through the spool directory too. */
	rc = dv_mkdir_p(dv_store_spool_dir(dst), 0700, err);
	/* A destination that is a repository must be this repository. */
	struct dv_buf cfg = DV_BUF_INIT;
	struct dv_err ignore;
	if (rc == 0 && dv_store_get(dst, "config", DV_MAX_CONFIG, &cfg, &ignore) == 0) {
		json_t *j = json_loadb((const char *)cfg.data, cfg.len, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "id"));
		if (!id || strcmp(id, r->id))
			rc = dv_error(err, DV_E_EXISTS, "%s: holds another repository (id %s, copying %s)", to, id ? id : "?",
				      r->id);
		json_decref(j);
	}
	dv_buf_release(&cfg);
	/* The source must not be pruned while it is copied. */
	if (rc == 0)
		rc = dv_lock_acquire(r, false, &lock, err);
	struct collected c = {0}, have = {0};
	for (size_t d = 0; rc == 0 && d < DV_ARRAY_SIZE(copy_order); d++) {
		dv_strlist_clear(&c.names);
		dv_strlist_clear(&have.names);
		rc = dv_store_list(r->store, copy_order[d], collect, &c, err);
		if (rc == 0)
			rc = dv_store_list(dst, copy_order[d], collect, &have, err);
		struct present *p = rc == 0 ? present_index(&have) : NULL;
		for (size_t i = 0; rc == 0 && i < c.names.n; i++) {
			if (is_present(p, have.names.n, c.names.v[i], c.sizes[i])) {
				res->objects_skipped++;
				continue;
			}
			rc = copy_object(r->store, dst, c.names.v[i], c.sizes[i], res, err);
			if (rc == 0 && dv_repo_interrupted())
				rc = dv_error(err, DV_E_INTERRUPTED, "copy interrupted; run it again to continue");
			if (rc == 0)
				rc = dv_lock_refresh(lock, err);
		}
		free(p);
	}
	uint64_t size, dsize;
	if (rc == 0 && dv_store_stat(r->store, "config", &size, err) == 0) {
		if (dv_store_stat(dst, "config", &dsize, &ignore) == 0 && dsize == size)
			res->objects_skipped++;
		else
			rc = copy_object(r->store, dst, "config", size, res, err);
	}
	dv_strlist_release(&c.names);
	dv_strlist_release(&have.names);
	free(c.sizes);
	free(have.sizes);
	dv_lock_release(lock);
	dv_store_free(dst);
	return rc;
}
