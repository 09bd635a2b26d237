/*
 * pack.c - pack files: a POSIX ustar archive (written with libarchive) of
 * one member per chunk, "<chunk id>.zst" holding a zstd frame, followed by
 * the member "index" (format.h: DVPACKIX). ustar gives every member a
 * 512-byte header and pads data to 512 bytes, so `tar x` and `zstd -d`
 * recover chunks without diskvault (formats/pack.md).
 */
#include <stdio.h>
#include "repo_internal.h"

#define DV_PACK_MTIME 1767225600 /* 2026-01-01T00:00:00Z */

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dv_pack_writer {
	struct dv_repo *repo;
	struct archive *ar;
	int fd;
	char *path;
	struct dv_sha256_ctx *sha;
	uint64_t pos;        /* bytes handed to the file so far */
	int write_errno;     /* first failure of the write callback */
	struct dv_pack_entry *e;
	size_t n, cap;
	int64_t mtime;
	struct dv_id id;     /* once sealed */
};

/*
 * A failed write is recorded and then reported by the caller, while
 * libarchive is told the bytes went out: a libarchive handle that saw a
 * write fail is left FATAL and leaks its client state when freed, and the
 * spool file is discarded anyway.
 */
static la_ssize_t pack_write_cb(struct archive *a, void *ctx, const void *buf, size_t n)
{
	(void)a;
	struct dv_pack_writer *w = ctx;
	struct dv_err err;
	if (w->write_errno)
		return (la_ssize_t)n;
	if (dv_write_all(w->fd, buf, n, &err, w->path) < 0) {
		w->write_errno = err.code == DV_E_NOSPACE ? ENOSPC : EIO;
		return (la_ssize_t)n;
	}
	dv_sha256_update(w->sha, buf, n);
	w->pos += n;
	return (la_ssize_t)n;
}

static int archive_fail(struct dv_pack_writer *w, const char *what, struct dv_err *err)
{
	if (w->write_errno)
		return dv_error_errno(err, w->write_errno, "writing pack %s (%s)", w->path, what);
	return dv_error(err, DV_E_IO, "writing pack %s (%s): %s", w->path, what, archive_error_string(w->ar));
}

int dv_pack_writer_new(struct dv_repo *r, struct dv_pack_writer **out, struct dv_err *err)
{
	struct dv_pack_writer *w = dv_calloc(1, sizeof *w);
	char rnd[33];
	dv_random_hex(rnd, 16);
	w->repo = r;
	w->path = dv_asprintf("%s/pack-%s.tmp", dv_store_spool_dir(r->store), rnd);
	w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		int rc = dv_error_errno(err, errno, "creating pack %s", w->path);
		free(w->path);
		free(w);
		return rc;
	}
	w->sha = dv_sha256_new();
	/* A fixed member time makes a pack a function of its chunks alone: a
	 * rerun after an interrupted upload builds the same pack, with the same
	 * name, and the S3 backend resumes its multipart upload. */
	w->mtime = DV_PACK_MTIME;
	w->ar = archive_write_new();
	if (!w->ar)
		DV_BUG("archive_write_new failed");
	/* No blocking: every header and data write reaches the callback at
	 * once, so pos is the exact file offset after each call. */
	if (archive_write_set_format_ustar(w->ar) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(w->ar, 0) != ARCHIVE_OK ||
	    archive_write_open2(w->ar, w, NULL, pack_write_cb, NULL, NULL) != ARCHIVE_OK) {
		int rc = archive_fail(w, "open", err);
		dv_pack_writer_abort(w);
		return rc;
	}
	*out = w;
	return 0;
}

static int add_member(struct dv_pack_writer *w, const char *name, const void *data, size_t len, uint64_t *offset,
		      struct dv_err *err)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_mtime(e, w->mtime, 0);
	archive_entry_set_uname(e, "diskvault");
	archive_entry_set_gname(e, "diskvault");
	int rc = 0;
	if (archive_write_header(w->ar, e) != ARCHIVE_OK || w->write_errno)
		rc = archive_fail(w, name, err);
	archive_entry_free(e);
	if (rc < 0)
		return rc;
	*offset = w->pos;
	if ((len && archive_write_data(w->ar, data, len) != (la_ssize_t)len) || w->write_errno)
		return archive_fail(w, name, err);
	return 0;
}

int dv_pack_writer_add(struct dv_pack_writer *w, const struct dv_id *id, const void *blob, uint32_t stored_len,
		       uint32_t raw_len, uint64_t *offset, struct dv_err *err)
{
	char name[DV_ID_HEX_LEN + sizeof DV_PACK_SEALED_SUFFIX];
	_Static_assert(sizeof DV_PACK_SEALED_SUFFIX >= sizeof DV_PACK_BLOB_SUFFIX, "name buffer");
	dv_id_hex(name, id);
	strcat(name, w->repo->encrypted ? DV_PACK_SEALED_SUFFIX : DV_PACK_BLOB_SUFFIX);
	int rc = add_member(w, name, blob, stored_len, offset, err);
	if (rc < 0)
		return rc;
	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 256;
		w->e = dv_realloc(w->e, w->cap * sizeof *w->e);
	}
	w->e[w->n++] = (struct dv_pack_entry){*id, *offset, stored_len, raw_len};
	return 0;
}

uint64_t dv_pack_writer_size(const struct dv_pack_writer *w) { return w->pos; }
size_t dv_pack_writer_count(const struct dv_pack_writer *w) { return w->n; }

static void writer_free(struct dv_pack_writer *w)
{
	if (w->ar)
		archive_write_free(w->ar);
	if (w->fd >= 0)
		close(w->fd);
	if (w->sha) {
		struct dv_id junk;
		dv_sha256_final(w->sha, &junk);
	}
	free(w->e);
	free(w->path);
	free(w);
}

void dv_pack_writer_abort(struct dv_pack_writer *w)
{
	if (!w)
		return;
	/* Closing writes the end marker into a file about to be removed; it
	 * lets libarchive free everything (archive_write_fail would not). */
	if (w->ar && w->fd >= 0)
		archive_write_close(w->ar);
	unlink(w->path);
	writer_free(w);
}

#define PACK_INDEX_AAD "diskvault pack index"

int dv_pack_writer_seal(struct dv_pack_writer *w, struct dv_pack_info *info, struct dv_err *err)
{
	struct dv_buf ix = DV_BUF_INIT, sealed = DV_BUF_INIT;
	dv_pack_index_encode(w->e, w->n, &ix);
	size_t n;
	const uint8_t *p = dv_repo_seal(w->repo, PACK_INDEX_AAD, strlen(PACK_INDEX_AAD), ix.data, ix.len, &sealed, &n);
	uint64_t ix_off = 0;
	int rc = add_member(w, DV_PACK_INDEX_NAME, p, n, &ix_off, err);
	uint32_t ix_len = (uint32_t)n;
	dv_buf_release(&ix);
	dv_buf_release(&sealed);
	if (rc == 0 && (archive_write_close(w->ar) != ARCHIVE_OK || w->write_errno))
		rc = archive_fail(w, "end of archive", err);
	if (rc < 0) {
		dv_pack_writer_abort(w);
		return rc;
	}
	archive_write_free(w->ar);
	w->ar = NULL;
	memset(info, 0, sizeof *info);
	dv_sha256_final(w->sha, &info->id);
	w->sha = NULL;
	info->size = w->pos;
	info->index_offset = ix_off;
	info->index_len = ix_len;
	info->known = true;
	w->id = info->id;
	return 0;
}

int dv_pack_writer_publish(struct dv_pack_writer *w, struct dv_err *err)
{
	int rc = 0;
	if (fsync(w->fd) < 0)
		rc = dv_error_errno(err, errno, "fsync of pack %s", w->path);
	if (close(w->fd) < 0 && rc == 0)
		rc = dv_error_errno(err, errno, "closing pack %s", w->path);
	w->fd = -1;
	if (rc < 0) {
		dv_pack_writer_abort(w);
		return rc;
	}
	char name[128];
	dv_pack_name(name, sizeof name, &w->id);
	rc = dv_store_put_file(w->repo->store, name, w->path, err);
	writer_free(w);
	return rc;
}

int dv_pack_writer_finish(struct dv_pack_writer *w, struct dv_pack_info *info, struct dv_err *err)
{
	int rc = dv_pack_writer_seal(w, info, err);
	return rc < 0 ? rc : dv_pack_writer_publish(w, err);
}

void dv_pack_index_encode(const struct dv_pack_entry *e, size_t n, struct dv_buf *out)
{
	dv_buf_reset(out);
	dv_buf_reserve(out, DV_PACKIX_HEADER_SIZE + n * DV_PACKIX_ENTRY_SIZE);
	dv_buf_add(out, DV_PACKIX_MAGIC, 8);
	dv_buf_add_le32(out, DV_PACKIX_VERSION);
	dv_buf_add_le32(out, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		dv_buf_add(out, e[i].id.b, DV_ID_LEN);
		dv_buf_add_le64(out, e[i].offset);
		dv_buf_add_le32(out, e[i].stored_len);
		dv_buf_add_le32(out, e[i].raw_len);
	}
}

int dv_pack_index_decode(const uint8_t *p, size_t len, struct dv_pack_entry **out, size_t *n, const char *what,
			 struct dv_err *err)
{
	*out = NULL;
	*n = 0;
	if (len < DV_PACKIX_HEADER_SIZE || memcmp(p, DV_PACKIX_MAGIC, 8))
		return dv_error(err, DV_E_CORRUPT, "%s: pack index has a bad magic", what);
	uint32_t version = dv_le32(p + 8), count = dv_le32(p + 12);
	if (version != DV_PACKIX_VERSION)
		return dv_error(err, DV_E_VERSION, "%s: pack index version %u is not supported", what, version);
	if (count > DV_MAX_PACK_ENTRIES || len != DV_PACKIX_HEADER_SIZE + (size_t)count * DV_PACKIX_ENTRY_SIZE)
		return dv_error(err, DV_E_CORRUPT, "%s: pack index size %zu does not match %u entries", what, len, count);
	struct dv_pack_entry *e = dv_calloc(count ? count : 1, sizeof *e);
	const uint8_t *q = p + DV_PACKIX_HEADER_SIZE;
	for (uint32_t i = 0; i < count; i++, q += DV_PACKIX_ENTRY_SIZE) {
		memcpy(e[i].id.b, q, DV_ID_LEN);
		e[i].offset = dv_le64(q + 32);
		e[i].stored_len = dv_le32(q + 40);
		e[i].raw_len = dv_le32(q + 44);
	}
	*out = e;
	*n = count;
	return 0;
}

int dv_pack_index_parse(const struct dv_repo *r, const uint8_t *p, size_t n, struct dv_pack_entry **out,
			size_t *count, const char *what, struct dv_err *err)
{
	struct dv_buf plain = DV_BUF_INIT;
	const uint8_t *q;
	size_t qn;
	int rc = dv_repo_unseal(r, PACK_INDEX_AAD, strlen(PACK_INDEX_AAD), p, n, &plain, &q, &qn, what, err);
	if (rc == 0)
		rc = dv_pack_index_decode(q, qn, out, count, what, err);
	dv_buf_release(&plain);
	return rc;
}

int dv_pack_read_index(struct dv_repo *r, const struct dv_pack_info *p, struct dv_pack_entry **out, size_t *n,
		       struct dv_err *err)
{
	char name[128];
	dv_pack_name(name, sizeof name, &p->id);
	struct dv_buf b = DV_BUF_INIT;
	int rc = dv_store_get_range(r->store, name, p->index_offset, p->index_len, &b, err);
	if (rc == -DV_E_NOT_FOUND)
		rc = dv_error(err, DV_E_CORRUPT, "%s: pack is missing", name);
	if (rc == 0)
		rc = dv_pack_index_parse(r, b.data, b.len, out, n, name, err);
	for (size_t i = 0; rc == 0 && i < *n; i++) {
		const struct dv_pack_entry *e = &(*out)[i];
		if (e->offset > p->index_offset || e->stored_len > p->index_offset - e->offset ||
		    e->stored_len > DV_MAX_BLOB_SIZE || e->raw_len == 0 || e->raw_len > DV_CHUNK_SIZE_LIMIT) {
			rc = dv_error(err, DV_E_CORRUPT, "%s: pack index entry %zu points outside the pack's data", name, i);
			free(*out);
			*out = NULL;
			*n = 0;
		}
	}
	dv_buf_release(&b);
	return rc;
}

int dv_pack_verify(const struct dv_repo *r, const uint8_t *pack, size_t len, const struct dv_pack_info *info,
		   const char *name, struct dv_pack_entry **ents, size_t *n, void (*bad)(const char *msg, void *ctx),
		   void *ctx, struct dv_err *err)
{
	*ents = NULL;
	*n = 0;
	if (info->index_offset > len || info->index_len > len - info->index_offset)
		return dv_error(err, DV_E_CORRUPT, "%s: index member outside the pack", name);
	int rc = dv_pack_index_parse(r, pack + info->index_offset, info->index_len, ents, n, name, err);
	if (rc < 0)
		return rc;
	struct dv_buf scratch = DV_BUF_INIT, raw = DV_BUF_INIT;
	int damaged = 0;
	for (size_t i = 0; i < *n; i++) {
		const struct dv_pack_entry *e = &(*ents)[i];
		char hex[DV_ID_HEX_LEN + 1], what[256];
		struct dv_err be;
		dv_id_hex(hex, &e->id);
		snprintf(what, sizeof what, "%s: chunk %.16s at offset %llu", name, hex, (unsigned long long)e->offset);
		if (e->offset > info->index_offset || e->stored_len > info->index_offset - e->offset)
			dv_error(&be, DV_E_CORRUPT, "%s: outside the pack's data", what);
		else if (dv_repo_blob_to_chunk(r, &e->id, pack + e->offset, e->stored_len, e->raw_len, &scratch, &raw, what,
					       &be) == 0)
			continue;
		damaged++;
		if (bad)
			bad(be.msg, ctx);
	}
	dv_buf_release(&scratch);
	dv_buf_release(&raw);
	return damaged;
}

int dv_chunk_read(struct dv_repo *r, struct dv_chunk_index *ix, const struct dv_id *id, struct dv_buf *scratch,
		  struct dv_buf *out, struct dv_err *err)
{
	struct dv_chunk_loc loc;
	char hex[DV_ID_HEX_LEN + 1];
	dv_id_hex(hex, id);
	if (!dv_chunk_index_lookup(ix, id, &loc))
		return dv_error(err, DV_E_CORRUPT, "chunk %.16s: not in any pack index (missing data)", hex);
	char name[128];
	dv_pack_name(name, sizeof name, &dv_chunk_index_pack(ix, loc.pack)->id);
	int rc = dv_store_get_range(r->store, name, loc.offset, loc.stored_len, scratch, err);
	if (rc == -DV_E_NOT_FOUND)
		return dv_error(err, DV_E_CORRUPT, "%s: pack is missing (needed for chunk %.16s)", name, hex);
	if (rc < 0)
		return rc;
	char what[256];
	snprintf(what, sizeof what, "chunk %.16s in %s at offset %llu", hex, name, (unsigned long long)loc.offset);
	struct dv_buf plain = DV_BUF_INIT;
	rc = dv_repo_blob_to_chunk(r, id, scratch->data, scratch->len, loc.raw_len, &plain, out, what, err);
	dv_buf_release(&plain);
	return rc;
}
