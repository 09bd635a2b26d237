/*
 * initramfs.c - dv_initramfs_scan(): does an initramfs carry the nvme and
 * ena kernel modules? The only file of src/disk that includes archive.h.
 *
 * An initramfs is one or more cpio ("newc") archives laid end to end, each
 * optionally compressed (gzip, zstd, xz, lzma, lz4, bzip2: libarchive's
 * filters take care of that). Debian and dracut put an uncompressed
 * archive with CPU microcode first, then the compressed main archive. The
 * kernel skips zero padding between archives, so after an uncompressed
 * archive ends (its TRAILER!!! entry) we skip zero bytes and start a new
 * reader there. After a compressed archive we stop: what its decompressor
 * consumed is not known exactly, and no common tool appends anything after
 * the compressed main archive.
 */
#include "probe_internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <string.h>

/* Bounds on hostile input: archives laid end to end, entries per scan, and
 * uncompressed bytes per archive (a decompression bomb stops here). */
#define MAX_SEGMENTS 16
#define MAX_ENTRIES 500000
#define MAX_UNPACKED (8ULL << 30)
#define READ_CHUNK (64 * 1024)

struct seg {
	dv_initramfs_read_fn rd;
	void *ctx;
	uint64_t pos, end;
	uint8_t buf[READ_CHUNK];
};

static la_ssize_t seg_read(struct archive *a, void *p, const void **out)
{
	(void)a;
	struct seg *s = p;
	*out = s->buf;
	if (s->pos >= s->end)
		return 0;
	size_t n = (size_t)DV_MIN((uint64_t)READ_CHUNK, s->end - s->pos);
	ssize_t r = s->rd(s->ctx, s->pos, s->buf, n);
	if (r <= 0)
		return r < 0 ? -1 : 0;
	s->pos += (uint64_t)r;
	return r;
}

/* true when path's last component is mod.ko, plain or compressed. */
static bool is_module(const char *path, const char *mod)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t ml = strlen(mod);
	if (strncmp(base, mod, ml) || strncmp(base + ml, ".ko", 3))
		return false;
	const char *sfx = base + ml + 3;
	return !*sfx || !strcmp(sfx, ".xz") || !strcmp(sfx, ".zst") || !strcmp(sfx, ".gz");
}

/* Reads one archive starting at s->pos. Returns 1 when it was uncompressed
 * and ended cleanly (*consumed = its length), 0 when it was compressed and
 * ended cleanly, -1 when it could not be read. */
static int scan_one(struct seg *s, struct dv_initramfs_result *res, uint64_t *consumed, size_t *entries)
{
	struct archive *a = archive_read_new();
	if (!a)
		return -1;
	archive_read_support_filter_all(a);
	archive_read_support_format_cpio(a);
	int ret = -1;
	if (archive_read_open(a, s, NULL, seg_read, NULL) != ARCHIVE_OK)
		goto out;
	for (;;) {
		struct archive_entry *e;
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			goto out;
		if (++*entries > MAX_ENTRIES || (uint64_t)archive_filter_bytes(a, 0) > MAX_UNPACKED)
			goto out;
		const char *name = archive_entry_pathname(e);
		if (name && archive_entry_filetype(e) == AE_IFREG) {
			if (is_module(name, "nvme"))
				res->nvme = 1;
			if (is_module(name, "ena"))
				res->ena = 1;
		}
		if (archive_read_data_skip(a) != ARCHIVE_OK)
			goto out;
	}
	res->archives++;
	if (archive_filter_count(a) == 1 && archive_filter_code(a, 0) == ARCHIVE_FILTER_NONE) {
		/* the format reader's position is the end of the trailer entry */
		*consumed = (uint64_t)archive_filter_bytes(a, 0);
		ret = *consumed > 0 ? 1 : -1;
	} else {
		ret = 0;
	}
out:
	archive_read_free(a);
	return ret;
}

int dv_initramfs_scan(dv_initramfs_read_fn rd, void *ctx, uint64_t size, struct dv_initramfs_result *res)
{
	memset(res, 0, sizeof *res);
	struct seg *s = dv_calloc(1, sizeof *s);
	s->rd = rd;
	s->ctx = ctx;
	s->end = size;
	uint64_t pos = 0;
	size_t entries = 0;
	int ret = -1;
	for (unsigned k = 0; k < MAX_SEGMENTS; k++) {
		/* The kernel skips zero padding between archives. */
		uint8_t z[512];
		while (pos < size) {
			size_t n = (size_t)DV_MIN((uint64_t)sizeof z, size - pos);
			ssize_t r = rd(ctx, pos, z, n);
			if (r <= 0)
				goto out;
			size_t i = 0;
			while (i < (size_t)r && !z[i])
				i++;
			pos += i;
			if (i < (size_t)r)
				break;
		}
		if (pos >= size) {
			ret = 0;
			break;
		}
		s->pos = pos;
		uint64_t consumed = 0;
		int r = scan_one(s, res, &consumed, &entries);
		if (r < 0)
			goto out;
		if (r == 0) {
			ret = 0;
			break;
		}
		pos += consumed;
	}
out: /* also reached after MAX_SEGMENTS archives, with ret < 0 */
	free(s);
	if (ret < 0) {
		/* What was found stays found; what was not is unknown. */
		if (!res->nvme)
			res->nvme = -1;
		if (!res->ena)
			res->ena = -1;
		res->complete = false;
		return -1;
	}
	res->complete = true;
	return 0;
}
