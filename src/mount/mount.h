/*
 * mount.h - a snapshot as a read-only FUSE filesystem of image files, one
 * per disk, partition, md RAID1 data area and LVM logical volume
 * (docs/mount.md). The only module that includes libfuse's headers.
 *
 * File names come from the volumes of the recorded layout
 * (disk/layoutvol.h), always with the disk in front so that every name
 * says where it lies:
 *   disk0 -> disk0.img           a whole disk
 *   p2, disk1-p2 -> disk0-p2.img, disk1-p2.img       partitions
 *   p1-md -> disk0-p1-md.img     the data area of an md RAID1 member
 *   vg/lv -> lvm/vg/lv.img       an LVM logical volume
 *
 * Reads are lazy: a read of an image reads only the chunks under it,
 * verified as restore verifies them, through each disk's block reader and
 * its bounded chunk cache (dv_block_reader_set_cache); zero and unused
 * extents read as zeros; a read touching an unreadable extent (backup
 * --skip-bad-sectors) fails with EIO. Several FUSE threads serve reads at
 * once, so at most `threads` chunk fetches run in parallel.
 */
#ifndef DV_MOUNT_MOUNT_H
#define DV_MOUNT_MOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

struct dv_repo;

#define DV_MOUNT_THREADS_DEFAULT 8
#define DV_MOUNT_CACHE_DEFAULT (64u << 20)

/* One image file of the mount, as passed to the ready callback. */
struct dv_mount_image {
	const char *path;     /* relative to the mount point: "disk0-p2.img", "lvm/vg/lv.img" */
	const char *volume;   /* its volume name (disk/layoutvol.h): "p2", "vg/lv" */
	const char *fstype;   /* what the probe found in it; "" when nothing */
	uint64_t size;        /* bytes */
};

struct dv_mount_opts {
	unsigned threads;      /* FUSE threads, i.e. reads served at once (0: DV_MOUNT_THREADS_DEFAULT) */
	uint64_t cache_bytes;  /* chunk cache of all disks together, split evenly (0: DV_MOUNT_CACHE_DEFAULT) */
	bool allow_other;      /* FUSE allow_other: users other than the mounting one may read */
	bool debug;            /* libfuse's debug output on stderr (-d) */
	/* Called once, when the filesystem is mounted and about to serve
	 * (images borrowed for the call). May be NULL. */
	void (*ready)(void *ctx, const struct dv_mount_image *images, size_t n);
	/* A read that failed (the reader got EIO) or a lock refresh that
	 * failed: one line, from any thread. May be NULL. */
	void (*problem)(void *ctx, const char *msg);
	void *ctx;
};

struct dv_mount_stats {
	uint64_t reads, bytes_read, read_errors;  /* FUSE reads, bytes returned, reads failed with EIO */
	uint64_t cache_hits, cache_misses;        /* of the block readers' chunk caches */
};

/*
 * Mounts snapshot_id (a full id) of r read-only at dir and serves it until
 * it is unmounted (umount, fusermount3 -u) or the process gets SIGINT,
 * SIGTERM or SIGHUP: libfuse's handlers for these replace the caller's for
 * the duration and the caller's are put back before returning. Returns 0
 * after a clean unmount (nothing is left mounted), whatever ended it.
 *
 * Holds a shared repository lock while mounted (refreshed, so prune cannot
 * delete what the mount reads). A stale diskvault mount on dir (its process
 * was killed: ENOTCONN) is detached first; any other stale mount is
 * DV_E_BUSY with the command that clears it. The mount asks libfuse for
 * auto_unmount, so even a SIGKILLed mount is normally unmounted by
 * fusermount3 at once. st (may be NULL) gets the counters at the end.
 */
int dv_mount_run(struct dv_repo *r, const char *snapshot_id, const char *dir, const struct dv_mount_opts *o,
		 struct dv_mount_stats *st, struct dv_err *err) DV_WUR;

#endif
