/*
 * probe_internal.h - pieces of dv_disk_probe() shared between probe.c and
 * usedmap.c and exposed to tests/unit/test_disk.c. Not for other modules.
 */
#ifndef DV_DISK_PROBE_INTERNAL_H
#define DV_DISK_PROBE_INTERNAL_H

#include "disk/probe.h"

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

/* What libext2fs told about one ext2/3/4 filesystem. */
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

#endif
