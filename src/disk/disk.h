/*
 * disk.h - source disks: opening block devices and image files, probing
 * their layout (libblkid), and deciding which byte ranges must be read
 * (used-block maps via libext2fs; see issue 3).
 *
 * Thread safety: a struct dv_source may be read from several threads with
 * dv_source_read (pread underneath); open/close from one thread.
 */
#ifndef DV_DISK_H
#define DV_DISK_H

#include "util/util.h"

struct dv_source {
	int fd;
	char *path;           /* as given; owned */
	uint64_t size;        /* bytes */
	uint32_t sector_size; /* logical sector size (512 for image files) */
	bool is_block;        /* a block device (else a regular file) */
	bool seek_holes;      /* a regular file whose filesystem answers SEEK_DATA/SEEK_HOLE */
	/* A virtual source (fd -1): reads go to read_fn(ctx, ...), which must
	 * be safe to call from several threads. A snapshot's disk read back
	 * out of a repository is one (dv_source_virtual). */
	int (*read_fn)(void *ctx, uint64_t off, void *buf, size_t len, struct dv_err *err);
	void *ctx;
};

/* Opens path read-only: a block device (size via BLKGETSIZE64, sector size
 * via BLKSSZGET) or a regular image file. Anything else is DV_E_SOURCE. */
int dv_source_open(const char *path, struct dv_source *out, struct dv_err *err) DV_WUR;
void dv_source_close(struct dv_source *s);
/* A virtual source named name (copied) of size bytes whose reads are
 * read_fn(ctx, off, buf, len, err); its runs are data, prefetch does
 * nothing. dv_source_close frees the name, not ctx. */
void dv_source_virtual(struct dv_source *out, const char *name, uint64_t size,
		       int (*read_fn)(void *ctx, uint64_t off, void *buf, size_t len, struct dv_err *err), void *ctx);
/* Reads exactly len bytes at off. An I/O error is DV_E_SOURCE naming the
 * sector range that could not be read. */
int dv_source_read(const struct dv_source *s, uint64_t off, void *buf, size_t len, struct dv_err *err) DV_WUR;

/*
 * Sparse image files: classifies the bytes from off on. Sets *len (1..max,
 * never past the end of the source) to the length of the run at off that
 * is either all hole (*hole = true: reads as zeros, nothing on the medium)
 * or data (*hole = false: must be read). Asks the filesystem with
 * lseek(SEEK_DATA/SEEK_HOLE), so a hole costs no read; block devices and
 * files whose filesystem cannot answer (EINVAL, EOPNOTSUPP: seek_holes
 * false) are one data run, so they are read as before. A filesystem
 * without real hole tracking reports all data: also just read. Holes end
 * on the filesystem's block boundaries. Never fails.
 */
void dv_source_run(const struct dv_source *s, uint64_t off, uint64_t max, uint64_t *len, bool *hole);

/*
 * Reads within the plan. Sources are opened with POSIX_FADV_RANDOM: the
 * kernel's own readahead, which runs past the end of a range into the free
 * space diskvault skips, is off, and a read fetches exactly the pages it
 * asks for. The reader instead names what it will read next: this starts
 * asynchronous reads of [off, off+len) (POSIX_FADV_WILLNEED, in pieces the
 * kernel does not trim) and returns at once. Best effort: ignored errors.
 */
void dv_source_prefetch(const struct dv_source *s, uint64_t off, uint64_t len);

/* ---- regions: what to read ------------------------------------------- */

enum dv_region_kind {
	DV_REGION_READ = 0, /* read and store (zero runs inside become zero extents) */
	DV_REGION_UNUSED,   /* free space of a known filesystem: not read, restored as zeros */
};

struct dv_region {
	uint64_t off, len;
	enum dv_region_kind kind;
};

/* Ordered, non-overlapping, covering [0, disk size) exactly. */
struct dv_region_map {
	struct dv_region *v;
	size_t n, cap;
};

void dv_region_map_release(struct dv_region_map *m);
/* Appends a region, merging with the previous one when contiguous and of
 * the same kind. Regions must be appended in order. */
void dv_region_map_add(struct dv_region_map *m, uint64_t off, uint64_t len, enum dv_region_kind kind);
/* One READ region over the whole disk. */
void dv_region_map_whole(struct dv_region_map *m, uint64_t size);

/* ---- restore targets ------------------------------------------------- */

struct dv_target {
	int fd;
	char *path;
	uint64_t size;     /* current size (device size, or file size) */
	bool is_block;
	bool created;      /* a new regular file */
};

/*
 * Opens a restore target for writing a disk of `need` bytes. A regular
 * file is created (or, when it exists and is non-empty, refused with
 * DV_E_EXISTS unless force, then truncated) and sized to need, so skipped
 * ranges are holes. A block device is opened O_EXCL (fails with
 * DV_E_BUSY when mounted or in use), must be at least need bytes
 * (DV_E_TOO_SMALL), and is refused (DV_E_BUSY) when it carries a partition
 * table or filesystem signature, unless force.
 */
int dv_target_open(const char *path, uint64_t need, bool force, struct dv_target *out, struct dv_err *err) DV_WUR;
/* Makes [off, off+len) read as zeros: nothing for a fresh sparse file,
 * BLKZEROOUT (or written zeros) on a device. */
int dv_target_zero(struct dv_target *t, uint64_t off, uint64_t len, struct dv_err *err) DV_WUR;
/* fsync and close. */
int dv_target_close(struct dv_target *t, struct dv_err *err) DV_WUR;

#endif
