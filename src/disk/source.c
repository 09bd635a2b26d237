#include <stdio.h>
#include "disk.h"

#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

int dv_source_open(const char *path, struct dv_source *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	out->fd = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dv_error(err, DV_E_SOURCE, "source %s: cannot open: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return dv_error(err, DV_E_SOURCE, "source %s: %s", path, strerror(e));
	}
	if (S_ISBLK(st.st_mode)) {
		uint64_t size = 0;
		int ssz = 512;
		if (ioctl(fd, BLKGETSIZE64, &size) < 0 || ioctl(fd, BLKSSZGET, &ssz) < 0) {
			int e = errno;
			close(fd);
			return dv_error(err, DV_E_SOURCE, "source %s: cannot read device size: %s", path, strerror(e));
		}
		out->size = size;
		out->sector_size = (uint32_t)ssz;
		out->is_block = true;
		/* The disk's page cache is not kept coherent with the devices
		 * stacked on it: what an LV (dm-0) wrote after an earlier read of
		 * the disk is on the platters, but the disk's cached copy is the
		 * old one (seen in the test bed: an LV remounted read-only still
		 * showed the journal it had when mounted read-write). Drop the
		 * disk's clean cached pages so every read sees the medium. */
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	} else if (S_ISREG(st.st_mode)) {
		out->size = (uint64_t)st.st_size;
		out->sector_size = 512;
		/* EINVAL or EOPNOTSUPP: this filesystem cannot say where holes
		 * are, so the file is read as a whole; ENXIO is an empty file. */
		out->seek_holes = lseek(fd, 0, SEEK_HOLE) >= 0 || errno == ENXIO;
	} else {
		close(fd);
		return dv_error(err, DV_E_SOURCE, "source %s: not a block device or image file", path);
	}
	/* No kernel readahead: it reads past the ranges the plan asks for (on
	 * a 28%-used disk it read 32%); the backup names its next ranges with
	 * dv_source_prefetch instead. */
	posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	out->fd = fd;
	out->path = dv_strdup(path);
	return 0;
}

void dv_source_virtual(struct dv_source *out, const char *name, uint64_t size,
		       int (*read_fn)(void *ctx, uint64_t off, void *buf, size_t len, struct dv_err *err), void *ctx)
{
	memset(out, 0, sizeof *out);
	out->fd = -1;
	out->path = dv_strdup(name);
	out->size = size;
	out->sector_size = 512;
	out->read_fn = read_fn;
	out->ctx = ctx;
}

void dv_source_close(struct dv_source *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	s->fd = -1;
	s->path = NULL;
}

int dv_source_read(const struct dv_source *s, uint64_t off, void *buf, size_t len, struct dv_err *err)
{
	if (s->read_fn)
		return s->read_fn(s->ctx, off, buf, len, err);
	uint8_t *b = buf;
	uint64_t pos = off;
	size_t left = len;
	while (left) {
		ssize_t r = pread(s->fd, b, left, (off_t)pos);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			const char *why = r < 0 ? strerror(errno) : "unexpected end of file";
			uint64_t ss = s->sector_size ? s->sector_size : 512;
			return dv_error(err, DV_E_SOURCE,
					"source %s: read error in sectors %llu-%llu (bytes %llu-%llu): %s", s->path,
					(unsigned long long)(pos / ss), (unsigned long long)((off + len - 1) / ss),
					(unsigned long long)pos, (unsigned long long)(off + len - 1), why);
		}
		b += r;
		pos += (uint64_t)r;
		left -= (size_t)r;
	}
	return 0;
}

void dv_source_run(const struct dv_source *s, uint64_t off, uint64_t max, uint64_t *len, bool *hole)
{
	uint64_t left = off < s->size ? s->size - off : 0;
	*len = DV_MIN(max, left);
	*hole = false;
	if (!s->seek_holes || !*len || s->fd < 0)
		return;
	/* lseek moves the file offset, which nothing else uses (pread). */
	off_t d = lseek(s->fd, (off_t)off, SEEK_DATA);
	if (d < 0) {
		/* ENXIO: no data from off to the end of the file, unless the
		 * file shrank since it was opened; then the read reports it. */
		struct stat st;
		if (errno == ENXIO && fstat(s->fd, &st) == 0 && (uint64_t)st.st_size >= s->size)
			*hole = true;
		return;
	}
	if ((uint64_t)d > off) {
		*hole = true;
		*len = DV_MIN(*len, (uint64_t)d - off);
		return;
	}
	off_t h = lseek(s->fd, (off_t)off, SEEK_HOLE);
	if (h > (off_t)off)
		*len = DV_MIN(*len, (uint64_t)h - off);
}

void dv_source_prefetch(const struct dv_source *s, uint64_t off, uint64_t len)
{
	/* The kernel trims one WILLNEED to its readahead size (at least
	 * 128 KiB by default), so longer ranges go in pieces. */
	const uint64_t piece = 128 * 1024;
	if (off >= s->size || s->fd < 0)
		return;
	len = DV_MIN(len, s->size - off);
	while (len) {
		uint64_t n = DV_MIN(len, piece);
		posix_fadvise(s->fd, (off_t)off, (off_t)n, POSIX_FADV_WILLNEED);
		off += n;
		len -= n;
	}
}

void dv_region_map_release(struct dv_region_map *m)
{
	free(m->v);
	m->v = NULL;
	m->n = m->cap = 0;
}

void dv_region_map_add(struct dv_region_map *m, uint64_t off, uint64_t len, enum dv_region_kind kind)
{
	if (!len)
		return;
	if (m->n) {
		struct dv_region *last = &m->v[m->n - 1];
		if (last->off + last->len != off)
			DV_BUG("region map not contiguous at %llu", (unsigned long long)off);
		if (last->kind == kind) {
			last->len += len;
			return;
		}
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 16;
		m->v = dv_realloc(m->v, m->cap * sizeof *m->v);
	}
	m->v[m->n++] = (struct dv_region){off, len, kind};
}

void dv_region_map_whole(struct dv_region_map *m, uint64_t size)
{
	m->n = 0;
	dv_region_map_add(m, 0, size, DV_REGION_READ);
}

/* ---- restore targets ------------------------------------------------- */

/* true when libblkid finds a partition table or filesystem on fd. */
static bool has_signature(int fd)
{
	blkid_probe pr = blkid_new_probe();
	if (!pr)
		return false;
	bool found = false;
	if (blkid_probe_set_device(pr, fd, 0, 0) == 0) {
		blkid_probe_enable_partitions(pr, 1);
		blkid_probe_enable_superblocks(pr, 1);
		found = blkid_do_probe(pr) == 0;
	}
	blkid_free_probe(pr);
	return found;
}

int dv_target_open(const char *path, uint64_t need, bool force, struct dv_target *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	out->fd = -1;
	struct stat st;
	bool exists = stat(path, &st) == 0;
	if (exists && S_ISBLK(st.st_mode)) {
		int fd = open(path, O_WRONLY | O_EXCL | O_CLOEXEC);
		if (fd < 0)
			return errno == EBUSY ? dv_error(err, DV_E_BUSY, "target %s: device is mounted or in use", path)
					      : dv_error_errno(err, errno, "target %s", path);
		uint64_t size = 0;
		if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
			int e = errno;
			close(fd);
			return dv_error_errno(err, e, "target %s: device size", path);
		}
		if (size < need) {
			close(fd);
			return dv_error(err, DV_E_TOO_SMALL, "target %s: %llu bytes, smaller than the disk (%llu bytes)",
					path, (unsigned long long)size, (unsigned long long)need);
		}
		if (!force) {
			int rfd = open(path, O_RDONLY | O_CLOEXEC);
			bool sig = rfd >= 0 && has_signature(rfd);
			if (rfd >= 0)
				close(rfd);
			if (sig) {
				close(fd);
				return dv_error(err, DV_E_BUSY,
						"target %s: carries a partition table or filesystem; use --force to overwrite",
						path);
			}
		}
		out->fd = fd;
		out->size = size;
		out->is_block = true;
	} else if (!exists || S_ISREG(st.st_mode)) {
		if (exists && st.st_size > 0 && !force)
			return dv_error(err, DV_E_EXISTS, "target %s: file exists and is not empty; use --force to overwrite",
					path);
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return dv_error_errno(err, errno, "target %s", path);
		/* Truncating to 0 first makes every range we skip a hole of zeros. */
		if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)need) < 0) {
			int e = errno;
			close(fd);
			return dv_error_errno(err, e, "target %s: sizing to %llu bytes", path, (unsigned long long)need);
		}
		out->fd = fd;
		out->size = need;
		out->created = true;
	} else {
		return dv_error(err, DV_E_USAGE, "target %s: not a block device or regular file", path);
	}
	out->path = dv_strdup(path);
	return 0;
}

int dv_target_zero(struct dv_target *t, uint64_t off, uint64_t len, struct dv_err *err)
{
	if (!t->is_block || !len)
		return 0;
	uint64_t range[2] = {off, len};
	if (ioctl(t->fd, BLKZEROOUT, range) == 0)
		return 0;
	const uint8_t *z = NULL;
	static const uint8_t zeros[64 * 1024];
	z = zeros;
	while (len) {
		size_t n = (size_t)DV_MIN(len, (uint64_t)sizeof zeros);
		int r = dv_pwrite_all(t->fd, z, n, (off_t)off, err, t->path);
		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

int dv_target_close(struct dv_target *t, struct dv_err *err)
{
	int r = 0;
	if (t->fd >= 0) {
		if (fsync(t->fd) < 0)
			r = dv_error_errno(err, errno, "target %s: fsync", t->path);
		if (close(t->fd) < 0 && r == 0)
			r = dv_error_errno(err, errno, "target %s: close", t->path);
	}
	t->fd = -1;
	free(t->path);
	t->path = NULL;
	return r;
}
