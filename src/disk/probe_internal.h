/*
 * probe_internal.h - pieces of dv_disk_probe() shared between probe.c and
 * usedmap.c and exposed to tests/unit/test_disk.c. Not for other modules.
 */
#ifndef DV_DISK_PROBE_INTERNAL_H
#define DV_DISK_PROBE_INTERNAL_H

#include "disk/probe.h"
#include "disk/volume.h"

/* A list of byte ranges [off, off+len) on the disk. */
struct dv_ivl {
	uint64_t off, len;
};
struct dv_ivl_list {
	struct dv_ivl *v;
	size_t n, cap;
};

void dv_ivl_add(struct dv_ivl_list *l, uint64_t off, uint64_t len);
void dv_ivl_release(struct dv_ivl_list *l);

/*
 * Builds the region map of a disk of disk_size bytes: the ranges in unused
 * (any order; overlaps are merged) become UNUSED except where they meet a
 * range of protect or lie past disk_size; everything else is READ. Only
 * UNUSED runs of at least min_run bytes are kept (smaller ones are READ).
 * out is reset first. Both lists are borrowed.
 */
void dv_usedmap_compose(uint64_t disk_size, const struct dv_ivl_list *unused, const struct dv_ivl_list *protect,
			uint64_t min_run, struct dv_region_map *out);

/* What libext2fs told about one ext2/3/4 filesystem (or fat.c about a FAT). */
struct dv_ext_info {
	bool opened;          /* ext2fs_open succeeded */
	bool needs_recovery;  /* journal needs recovery (incompat flag) */
	bool has_used;        /* used_bytes is known */
	uint64_t used_bytes;  /* allocated blocks x block size */
	uint64_t fs_bytes;    /* blocks count x block size */
};

/*
 * Reads the block bitmaps of the ext2/3/4 filesystem that starts at byte
 * part_off of the file or device at path and is at most part_len bytes
 * long, and appends to unused (absolute disk offsets) every run of free
 * blocks. Returns 0 when the map can be trusted; otherwise returns -1,
 * appends nothing to unused, and sets *why (caller frees) to a sentence
 * saying why the partition must be read whole. info is filled as far as
 * known in both cases.
 */
int dv_usedmap_ext(const char *path, uint64_t part_off, uint64_t part_len, struct dv_ext_info *info,
		   struct dv_ivl_list *unused, char **why);

/* The same for the ext2/3/4 filesystem that fills volume v, read through
 * dv_ext_vol_io_manager (ext_io.c); unused gets volume offsets. A
 * dv_usedmap_fn. */
int dv_usedmap_ext_vol(const struct dv_vol *v, struct dv_ext_info *info, struct dv_ivl_list *unused, char **why);

/* ext_io.c: a read-only libext2fs io_manager over a volume (ext_io.h);
 * dv_ext2_errors_init too. */
#include "disk/ext_io.h"

/*
 * A used-block parser of one filesystem type: reads the filesystem that
 * fills volume v (volume.h) and appends to unused every run of free space,
 * in volume offsets. Returns 0 when the map can be trusted; otherwise -1
 * with *why (caller frees) a sentence saying why the volume must be read
 * whole, and nothing appended. info is filled as far as known in both
 * cases (opened, has_used / used_bytes, fs_bytes; needs_recovery where the
 * filesystem has a journal or log that must be replayed first).
 * Every read goes through dv_vol_read and is bounds-checked first.
 */
typedef int (*dv_usedmap_fn)(const struct dv_vol *v, struct dv_ext_info *info, struct dv_ivl_list *unused,
			     char **why);

/* FAT12/16/32 (fat.c says what is checked): used = reserved sectors, FATs,
 * root directory and allocated clusters. */
int dv_usedmap_fat(const struct dv_vol *v, struct dv_ext_info *info, struct dv_ivl_list *unused, char **why);

/* XFS v4/v5 (xfs.c says what is checked): free = the records of each
 * allocation group's by-block-number free-space btree; a log that is not
 * clean sets needs_recovery. */
int dv_usedmap_xfs(const struct dv_vol *v, struct dv_ext_info *info, struct dv_ivl_list *unused, char **why);

/* NTFS through libntfs-3g (ntfs.c says what is checked): used = the
 * clusters $Bitmap marks allocated. */
int dv_usedmap_ntfs(const struct dv_vol *v, struct dv_ext_info *info, struct dv_ivl_list *unused, char **why);

/* A single-device btrfs (btrfs.c says what is checked): used = the device
 * extents of its chunks, the first MiB and the superblock mirrors. */
int dv_usedmap_btrfs(const struct dv_vol *v, struct dv_ext_info *info, struct dv_ivl_list *unused, char **why);

/* ---- devices stacked on a disk (probe.c) ---------------------------------- */

#include <sys/types.h>

/* How deep holders are followed (LVM on LUKS on RAID is 3). */
#define DV_HOLDER_DEPTH 8

struct dv_holder {
	dev_t dev;     /* device number, from <sysroot>/sys/class/block/<name>/dev */
	char name[64]; /* sysfs name, e.g. dm-0 */
};

/*
 * Appends to out[n..max) every block device stacked on block device `name`
 * (its sysfs holders, and theirs, up to DV_HOLDER_DEPTH levels from depth;
 * each device once) and returns the new count. sysroot (borrowed) prefixes
 * /sys ("" for the real one; tests pass a fake tree). Unreadable entries
 * are skipped.
 */
size_t dv_disk_holders(const char *sysroot, const char *name, struct dv_holder *out, size_t n, size_t max,
		       unsigned depth);

/* A device stacked on a disk, and whether it is mounted. */
struct dv_stacked {
	uint64_t off;     /* byte offset, on the disk, of the partition (or 0: the disk) it sits on */
	char via[64];     /* its sysfs name (dm-0) */
	bool mounted, rw; /* in mountinfo; rw: some mount of it has a read-write superblock */
	char where[4096]; /* a mount point (the read-write one when there is one) */
};

/*
 * The devices stacked (dv_disk_holders) on block device `name` and on each
 * of its partitions (<sysroot>/sys/class/block/<name>/<part>/start), each
 * with whether the mountinfo file (e.g. /proc/self/mountinfo) mounts it.
 * Fills out[0..max) and returns the count.
 */
size_t dv_disk_stacked_mounts(const char *sysroot, const char *mountinfo, const char *name,
			      struct dv_stacked *out, size_t max);

/* ---- what is installed (osinfo.c, initramfs.c) ------------------------- */

/*
 * Looks inside the ext2/3/4 filesystem at byte part_off of path (read-only,
 * libext2fs) and adds to fs (its layout object) what is installed there:
 *   "os":        {"id","version_id","pretty_name","architecture","from"}
 *                when a probed program (/usr/bin/env, /bin/sh, ...) or an
 *                os-release file exists; architecture "unknown" when no ELF
 *                header could be read
 *   "kernels":   [{"version","nvme","ena"}] from /lib/modules, newest first;
 *                drivers "builtin", "module", "missing" or null
 *   "initramfs": [{"path","version","nvme","ena","complete"}] for
 *                /boot/initrd.img-V, /boot/initramfs-V.img (and the same in
 *                the root directory, for a separate /boot filesystem)
 * Members that would be empty are left out. Never fails: what cannot be
 * read is unknown.
 */
void dv_osinfo_ext(const char *path, uint64_t part_off, uint64_t part_len, json_t *fs);
/* true when the ext superblock at part_off is safe to hand to libext2fs
 * (usedmap.c: the checks libext2fs itself lacks). */
bool dv_ext_super_safe(const char *path, uint64_t part_off, uint64_t part_len);

/* Sets layout["os"] from the filesystems' "os" members: the root's OS (the
 * first filesystem with a known architecture, else the first with an OS)
 * plus "nitro_drivers" {"kernel","nvme","ena","initramfs"} for its newest
 * kernel, or null. */
void dv_osinfo_disk(json_t *layout);

/* The architecture (x86_64, arm64, i386, ...) an ELF header of n bytes
 * names, or NULL when b is not a complete ELF header of a known machine. */
const char *dv_elf_arch(const uint8_t *b, size_t n);

/* {"id","version_id","pretty_name"} from os-release text (null members
 * where absent). Caller json_decref's it. */
json_t *dv_os_release_parse(const char *text);
/*
 * Lines of a boot or mount configuration (text of file, as fstab or
 * grub.cfg) that name a disk by a kernel device name that depends on the
 * controller (/dev/sda1, /dev/hdb, /dev/xvda1, /dev/vda2): on a Nitro
 * instance disks are /dev/nvme*, so such a line breaks the boot. Appends
 * {"file", "line" (1-based), "device", "text" (trimmed, at most 160
 * bytes)} to out, skipping comments, until out holds max entries.
 */
void dv_device_name_lines(const char *file, const char *text, json_t *out, size_t max);

/* Reads up to n bytes at off of an initramfs; returns the count, 0 at the
 * end, < 0 on error. */
typedef ssize_t (*dv_initramfs_read_fn)(void *ctx, uint64_t off, void *buf, size_t n);

struct dv_initramfs_result {
	int nvme, ena;     /* 1 the module file is in it, 0 not (complete scan), -1 unknown */
	unsigned archives; /* cpio archives read */
	bool complete;     /* every archive read to its end */
};

/*
 * Lists the cpio archives (any compression libarchive knows; several laid
 * end to end, zero padding between) of an initramfs of size bytes read
 * through rd, and records whether nvme.ko / ena.ko (plain, .xz, .zst, .gz)
 * are in them. Returns 0 when every archive was read, -1 otherwise (then
 * modules not found are -1, unknown).
 */
int dv_initramfs_scan(dv_initramfs_read_fn rd, void *ctx, uint64_t size, struct dv_initramfs_result *res);

#endif
