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
 * With named snapshots only what they need moves: the packs holding a
 * chunk their disk indexes reference, their disk indexes, EBS records and
 * manifests. The source's index segments are not copied (they may list
 * packs that stay behind, and a segment naming a missing pack is an
 * error); instead one new segment lists, with all their entries, the
 * copied packs that no segment of the destination names yet. That set is
 * empty on a rerun that already wrote it, so the resumed copy of an
 * encrypted repository (whose segments are sealed with a random nonce, so
 * never byte-identical) does not write a second one.
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

/* The destination as a repository: the same keys and parameters, its own
 * store (borrowed). */
static struct dv_repo as_dest(const struct dv_repo *r, struct dv_store *dst)
{
	struct dv_repo d = *r;
	d.store = dst;
	return d;
}

/* Packs, by id, that the index segments of repository d name. */
static int indexed_packs(struct dv_repo *d, struct dv_chunk_index *packs, struct dv_err *err)
{
	struct dv_strlist names = {0};
	int rc = dv_repo_list_ids(d, "index", &names, err);
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		struct dv_index_segment s;
		rc = dv_index_segment_read(d, names.v[i], &s, err);
		if (rc < 0)
			break;
		for (size_t k = 0; k < s.npacks; k++)
			dv_chunk_index_insert(packs, &s.packs[k].id, &(struct dv_chunk_loc){0});
		dv_index_segment_release(&s);
	}
	dv_strlist_release(&names);
	return rc;
}

/* What the named snapshots need, in copy order. */
struct selection {
	struct dv_strlist packs;     /* object names */
	struct dv_chunk_index *need; /* pack ids in packs */
	struct dv_strlist diskixs, records, manifests;
	struct dv_index_segment seg; /* the new segment (packs the destination does not index) */
};

static void selection_release(struct selection *sel)
{
	dv_strlist_release(&sel->packs);
	dv_chunk_index_free(sel->need);
	dv_strlist_release(&sel->diskixs);
	dv_strlist_release(&sel->records);
	dv_strlist_release(&sel->manifests);
	dv_index_segment_release(&sel->seg);
}

/* Marks the packs of every chunk one disk of snapshot id references. */
static int select_disk(struct dv_repo *r, struct dv_chunk_index *ix, const char *id, const json_t *disk,
		       struct selection *sel, struct dv_err *err)
{
	struct dv_disk_index di = {0};
	int rc = dv_repo_load_disk(r, disk, &di, err);
	for (size_t j = 0; rc == 0 && j < di.n; j++) {
		struct dv_chunk_loc loc;
		if (di.v[j].type != DV_EXTENT_DATA)
			continue;
		if (!dv_chunk_index_lookup(ix, &di.v[j].id, &loc)) {
			char hex[DV_ID_HEX_LEN + 1];
			dv_id_hex(hex, &di.v[j].id);
			rc = dv_error(err, DV_E_CORRUPT, "snapshot %.16s: chunk %.16s is in no indexed pack (run check)", id,
				      hex);
			break;
		}
		const struct dv_pack_info *p = dv_chunk_index_pack(ix, loc.pack);
		if (dv_chunk_index_insert(sel->need, &p->id, &(struct dv_chunk_loc){0})) {
			char name[128];
			dv_pack_name(name, sizeof name, &p->id);
			dv_strlist_add(&sel->packs, name);
		}
	}
	dv_disk_index_release(&di);
	if (rc == 0) {
		char *name = dv_asprintf("diskindex/%s", json_string_value(json_object_get(disk, "index")));
		dv_strlist_add(&sel->diskixs, name);
		free(name);
	}
	return rc;
}

static int select_snapshots(struct dv_repo *r, struct dv_repo *dst, const char *const *specs, size_t nspecs,
			    struct selection *sel, struct dv_err *err)
{
	struct dv_chunk_index *ix = dv_chunk_index_new(), *have = dv_chunk_index_new(), *added = dv_chunk_index_new();
	struct dv_strlist ebs = {0}, segs = {0};
	sel->need = dv_chunk_index_new();
	int rc = dv_chunk_index_load(ix, r, err);
	if (rc == 0)
		rc = dv_store_list_names(r->store, "ebs/", &ebs, err);
	for (size_t i = 0; rc == 0 && i < nspecs; i++) {
		char id[DV_ID_HEX_LEN + 1];
		json_t *m = NULL;
		rc = dv_snapshot_resolve(r, specs[i], id, err);
		if (rc == 0)
			rc = dv_snapshot_load(r, id, &m, err);
		size_t k;
		json_t *d;
		json_array_foreach(json_object_get(m, "disks"), k, d) {
			if (rc == 0)
				rc = select_disk(r, ix, id, d, sel, err);
		}
		json_decref(m);
		if (rc < 0)
			break;
		/* EBS records are named <snapshot id>-<disk>[.sig] */
		for (size_t e = 0; e < ebs.n; e++)
			if (strlen(ebs.v[e]) > 4 + DV_ID_HEX_LEN && !strncmp(ebs.v[e] + 4, id, DV_ID_HEX_LEN) &&
			    ebs.v[e][4 + DV_ID_HEX_LEN] == '-')
				dv_strlist_add(&sel->records, ebs.v[e]);
		char *name = dv_asprintf("snapshots/%s", id);
		dv_strlist_add(&sel->manifests, name);
		free(name);
	}
	/* The new segment: every entry of each needed pack the destination
	 * does not index yet, from the first source segment naming it. */
	if (rc == 0)
		rc = indexed_packs(dst, have, err);
	if (rc == 0)
		rc = dv_repo_list_ids(r, "index", &segs, err);
	for (size_t i = 0; rc == 0 && i < segs.n; i++) {
		struct dv_index_segment s;
		rc = dv_index_segment_read(r, segs.v[i], &s, err);
		if (rc < 0)
			break;
		uint32_t *map = dv_calloc(s.npacks ? s.npacks : 1, sizeof *map);
		for (size_t k = 0; k < s.npacks; k++) {
			map[k] = UINT32_MAX;
			if (!dv_chunk_index_lookup(sel->need, &s.packs[k].id, NULL) ||
			    dv_chunk_index_lookup(have, &s.packs[k].id, NULL) ||
			    !dv_chunk_index_insert(added, &s.packs[k].id, &(struct dv_chunk_loc){0}))
				continue;
			map[k] = (uint32_t)sel->seg.npacks;
			sel->seg.packs = dv_realloc(sel->seg.packs, (sel->seg.npacks + 1) * sizeof *sel->seg.packs);
			sel->seg.packs[sel->seg.npacks++] = s.packs[k];
		}
		for (size_t k = 0; k < s.n; k++) {
			if (map[s.locs[k].pack] == UINT32_MAX)
				continue;
			if (sel->seg.n == sel->seg.cap) {
				sel->seg.cap = sel->seg.cap ? 2 * sel->seg.cap : 1024;
				sel->seg.ids = dv_realloc(sel->seg.ids, sel->seg.cap * sizeof *sel->seg.ids);
				sel->seg.locs = dv_realloc(sel->seg.locs, sel->seg.cap * sizeof *sel->seg.locs);
			}
			sel->seg.ids[sel->seg.n] = s.ids[k];
			sel->seg.locs[sel->seg.n] = s.locs[k];
			sel->seg.locs[sel->seg.n].pack = map[s.locs[k].pack];
			sel->seg.n++;
		}
		free(map);
		dv_index_segment_release(&s);
	}
	dv_strlist_sort(&sel->packs);
	dv_strlist_release(&ebs);
	dv_strlist_release(&segs);
	dv_chunk_index_free(ix);
	dv_chunk_index_free(have);
	dv_chunk_index_free(added);
	return rc;
}

/* Copies the objects of names (all under prefix) that the destination
 * does not list with the same size; sizes from the source's listing, or
 * asked when NULL. */
static int copy_missing(struct dv_repo *r, struct dv_store *dst, const char *prefix, const struct dv_strlist *names,
			const uint64_t *sizes, struct dv_lock *lock, struct dv_copy_result *res, struct dv_err *err)
{
	struct collected have = {0};
	int rc = names->n ? dv_store_list(dst, prefix, collect, &have, err) : 0;
	struct present *p = rc == 0 ? present_index(&have) : NULL;
	for (size_t i = 0; rc == 0 && i < names->n; i++) {
		uint64_t size = sizes ? sizes[i] : 0;
		if (!sizes)
			rc = dv_store_stat(r->store, names->v[i], &size, err);
		if (rc < 0)
			break;
		if (is_present(p, have.names.n, names->v[i], size)) {
			res->objects_skipped++;
			continue;
		}
		rc = copy_object(r->store, dst, names->v[i], size, res, err);
		if (rc == 0 && dv_repo_interrupted())
			rc = dv_error(err, DV_E_INTERRUPTED, "copy interrupted; run it again to continue");
		if (rc == 0)
			rc = dv_lock_refresh(lock, err);
	}
	free(p);
	dv_strlist_release(&have.names);
	free(have.sizes);
	return rc;
}

/* Snapshots copied on purpose are no replay: drops them from the
 * destination's forgotten-snapshot ledger (forgotten.c) before their
 * manifests land. names are "snapshots/<id>". */
static int unforget(const struct dv_repo *r, struct dv_store *dst, const struct dv_strlist *names, struct dv_err *err)
{
	struct dv_repo d = {.store = dst};
	memcpy(d.id, r->id, sizeof d.id);
	int rc = dv_forgotten_load(&d, err);
	for (size_t i = 0; rc == 0 && i < names->n; i++)
		rc = dv_forgotten_unrecord(&d, names->v[i] + strlen("snapshots/"), err);
	dv_strlist_release(&d.forgotten);
	free(d.ledger_path);
	return rc;
}

static int copy_selected(struct dv_repo *r, struct dv_store *dst, const char *const *snaps, size_t nsnaps,
			 struct dv_lock *lock, struct dv_copy_result *res, struct dv_err *err)
{
	struct dv_repo d = as_dest(r, dst);
	struct selection sel = {0};
	int rc = select_snapshots(r, &d, snaps, nsnaps, &sel, err);
	if (rc == 0)
		rc = copy_missing(r, dst, "packs/", &sel.packs, NULL, lock, res, err);
	if (rc == 0 && sel.seg.npacks) {
		struct dv_buf buf = DV_BUF_INIT;
		char id[DV_ID_HEX_LEN + 1];
		dv_index_segment_encode(&sel.seg, &buf);
		rc = dv_repo_put_content(&d, "index", buf.data, buf.len, id, err);
		if (rc == 0) {
			res->objects_copied++;
			res->bytes_copied += buf.len;
		}
		dv_buf_release(&buf);
	}
	if (rc == 0)
		rc = copy_missing(r, dst, "diskindex/", &sel.diskixs, NULL, lock, res, err);
	if (rc == 0)
		rc = copy_missing(r, dst, "ebs/", &sel.records, NULL, lock, res, err);
	if (rc == 0)
		rc = unforget(r, dst, &sel.manifests, err);
	if (rc == 0)
		rc = copy_missing(r, dst, "snapshots/", &sel.manifests, NULL, lock, res, err);
	selection_release(&sel);
	return rc;
}

int dv_copy(struct dv_repo *r, const char *to, const char *const *snaps, size_t nsnaps, struct dv_copy_result *res,
	    struct dv_err *err)
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
	struct collected c = {0};
	if (nsnaps && rc == 0)
		rc = copy_selected(r, dst, snaps, nsnaps, lock, res, err);
	for (size_t d = 0; !nsnaps && rc == 0 && d < DV_ARRAY_SIZE(copy_order); d++) {
		dv_strlist_clear(&c.names);
		rc = dv_store_list(r->store, copy_order[d], collect, &c, err);
		if (rc == 0 && !strcmp(copy_order[d], "snapshots/"))
			rc = unforget(r, dst, &c.names, err);
		if (rc == 0)
			rc = copy_missing(r, dst, copy_order[d], &c.names, c.sizes, lock, res, err);
	}
	uint64_t size, dsize;
	if (rc == 0 && dv_store_stat(r->store, "config", &size, err) == 0) {
		if (dv_store_stat(dst, "config", &dsize, &ignore) == 0 && dsize == size)
			res->objects_skipped++;
		else
			rc = copy_object(r->store, dst, "config", size, res, err);
	}
	dv_strlist_release(&c.names);
	free(c.sizes);
	dv_lock_release(lock);
	dv_store_free(dst);
	return rc;
}
