/* diskindex.c - the extents of one disk (format.h: DVDISKIX). */
#include <stdio.h>
#include "repo_internal.h"

#include <stdlib.h>
#include <string.h>

void dv_disk_index_release(struct dv_disk_index *d)
{
	free(d->v);
	memset(d, 0, sizeof *d);
}

void dv_disk_index_add(struct dv_disk_index *d, uint32_t type, uint64_t length, const struct dv_id *id)
{
	if (!length)
		return;
	if (type != DV_EXTENT_DATA && d->n && d->v[d->n - 1].type == type) {
		d->v[d->n - 1].length += length;
		return;
	}
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 256;
		d->v = dv_realloc(d->v, d->cap * sizeof *d->v);
	}
	struct dv_extent *e = &d->v[d->n++];
	memset(e, 0, sizeof *e);
	e->length = length;
	e->type = type;
	if (id)
		e->id = *id;
}

void dv_disk_index_encode(const struct dv_disk_index *d, struct dv_buf *out)
{
	dv_buf_reset(out);
	dv_buf_reserve(out, DV_DISKIX_HEADER_SIZE + d->n * DV_DISKIX_EXTENT_SIZE);
	dv_buf_add(out, DV_DISKIX_MAGIC, 8);
	dv_buf_add_le32(out, DV_DISKIX_VERSION);
	dv_buf_add_le32(out, 0);
	dv_buf_add_le64(out, d->disk_size);
	dv_buf_add_le64(out, d->n);
	for (size_t i = 0; i < d->n; i++) {
		dv_buf_add_le64(out, d->v[i].length);
		dv_buf_add_le32(out, d->v[i].type);
		dv_buf_add_le32(out, 0);
		dv_buf_add(out, d->v[i].id.b, DV_ID_LEN);
	}
}

int dv_disk_index_decode(const uint8_t *p, size_t n, struct dv_disk_index *d, const char *what, struct dv_err *err)
{
	memset(d, 0, sizeof *d);
	if (n < DV_DISKIX_HEADER_SIZE || memcmp(p, DV_DISKIX_MAGIC, 8))
		return dv_error(err, DV_E_CORRUPT, "%s: not a disk index (bad magic)", what);
	uint32_t version = dv_le32(p + 8);
	if (version != DV_DISKIX_VERSION)
		return dv_error(err, DV_E_VERSION, "%s: disk index version %u is not supported", what, version);
	if (dv_le32(p + 12) != 0)
		return dv_error(err, DV_E_CORRUPT, "%s: reserved header field is not zero", what);
	uint64_t size = dv_le64(p + 16), count = dv_le64(p + 24);
	if (count > (n - DV_DISKIX_HEADER_SIZE) / DV_DISKIX_EXTENT_SIZE ||
	    n != DV_DISKIX_HEADER_SIZE + count * DV_DISKIX_EXTENT_SIZE)
		return dv_error(err, DV_E_CORRUPT, "%s: size %zu does not match %llu extents", what, n,
				(unsigned long long)count);
	d->disk_size = size;
	d->n = d->cap = (size_t)count;
	d->v = dv_calloc(d->n ? d->n : 1, sizeof *d->v);
	const uint8_t *q = p + DV_DISKIX_HEADER_SIZE;
	uint64_t sum = 0;
	for (size_t i = 0; i < d->n; i++, q += DV_DISKIX_EXTENT_SIZE) {
		struct dv_extent *e = &d->v[i];
		e->length = dv_le64(q);
		e->type = dv_le32(q + 8);
		memcpy(e->id.b, q + 16, DV_ID_LEN);
		bool bad = e->length == 0 || e->length > size - sum || dv_le32(q + 12) != 0;
		if (e->type == DV_EXTENT_DATA)
			bad = bad || e->length > DV_CHUNK_SIZE_LIMIT;
		else if (e->type < DV_EXTENT_ZERO || e->type > DV_EXTENT_UNREADABLE || !dv_is_zero(e->id.b, DV_ID_LEN))
			bad = true;
		if (bad) {
			dv_disk_index_release(d);
			return dv_error(err, DV_E_CORRUPT, "%s: extent %zu (at disk offset %llu) is malformed", what, i,
					(unsigned long long)sum);
		}
		sum += e->length;
	}
	if (sum != size) {
		dv_disk_index_release(d);
		return dv_error(err, DV_E_CORRUPT, "%s: extents cover %llu bytes, disk has %llu", what,
				(unsigned long long)sum, (unsigned long long)size);
	}
	return 0;
}

int dv_disk_index_read(struct dv_repo *r, const char *name, struct dv_disk_index *d, struct dv_err *err)
{
	memset(d, 0, sizeof *d);
	struct dv_buf b = DV_BUF_INIT;
	int rc = dv_repo_get_content(r, "diskindex", name, DV_MAX_DISKIX_OBJECT, &b, err);
	if (rc == 0) {
		char what[128];
		snprintf(what, sizeof what, "diskindex/%.16s", name);
		rc = dv_disk_index_decode(b.data, b.len, d, what, err);
	}
	dv_buf_release(&b);
	return rc;
}

size_t dv_extent_find(const uint64_t *start, size_t n, uint64_t off)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (start[mid + 1] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint64_t *dv_extent_starts(const struct dv_disk_index *d)
{
	uint64_t *start = dv_malloc((d->n + 1) * sizeof *start);
	uint64_t off = 0;
	for (size_t i = 0; i < d->n; i++) {
		start[i] = off;
		off += d->v[i].length;
	}
	start[d->n] = off;
	return start;
}
