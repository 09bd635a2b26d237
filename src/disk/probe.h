/*
 * probe.h - what is on a source disk, and which of its bytes must be read.
 *
 * dv_disk_probe() looks at a disk (block device or image file) with
 * libblkid: partition table, partitions, the filesystem in each, and the
 * boot mode those imply. It then decides, per partition, how much must be
 * read to restore it faithfully:
 *
 *   ext2/3/4    only the blocks the block bitmaps mark allocated (metadata
 *               included, read with libext2fs); the rest is UNUSED
 *   swap        only the header up to and including the signature page
 *   LVM2 PV     the label and metadata areas, and each LV (linear or
 *               striped, any order, over the PVs of this disk) as its own
 *               filesystem allows; unallocated extents are UNUSED; other
 *               segment types (thin, cache, raid, mirror, snapshot) whole
 *   md RAID1    the superblock, and the data area as its content allows
 *   anything    the whole partition (unknown filesystems, other RAID
 *   else        levels, swsuspend images, ...)
 *
 * Partition-table areas, gaps between partitions, extended-partition
 * containers and the space after the last partition are always READ (boot
 * loaders live there). The result is a JSON description of the layout
 * (schema in docs/internals/disk.md; the snapshot manifest stores it
 * verbatim) and a dv_region_map.
 *
 * Never drop data: whenever the probe is unsure (partitions past the end of
 * the disk, overlapping partitions, an ext4 whose bitmaps fail their
 * checksums or disagree with the group descriptors, a filesystem flagged
 * with errors, a filesystem larger than its partition, a journal needing
 * recovery under allow_mounted), the affected partition is read whole and a
 * sentence saying so is appended to layout["warnings"].
 *
 * Library code: nothing is printed. Not thread safe with respect to the
 * same dv_source (it reads through src->fd and opens src->path again for
 * libext2fs); different sources may be probed from different threads.
 */
#ifndef DV_DISK_PROBE_H
#define DV_DISK_PROBE_H

#include <jansson.h>
#include <stdbool.h>

#include "disk/disk.h"

/* UNUSED runs inside an ext filesystem shorter than this are read anyway:
 * reading a few KiB more is cheaper than a region per tiny free run. */
#define DV_DISK_MIN_UNUSED_RUN (64 * 1024)

/*
 * Probes src (borrowed; must be open) with libblkid (partition table,
 * partitions, filesystems) and computes which regions must be read.
 *
 * all_blocks: every byte is READ (regions = one READ region over the disk),
 * but the layout is still probed and recorded.
 *
 * allow_mounted: a filesystem on src that is mounted read-write (found in
 * /proc/self/mounts by device number, for block devices and for loop
 * devices backed by an image file) or whose ext3/4 journal needs recovery
 * is normally refused with -DV_E_BUSY and a message that says how to get a
 * consistent image (unmount, remount read-only, or back up an LVM/dm
 * snapshot). With allow_mounted the probe goes on, reads such a
 * filesystem whole, and records a warning.
 *
 * On success returns 0, *layout is a new json_t (caller json_decref's it)
 * and regions (caller-initialised, e.g. {0}; its previous content is
 * discarded) covers [0, src->size) exactly. On failure returns -DV_E_xxx
 * with err filled, *layout is NULL and regions is empty.
 */
int dv_disk_probe(const struct dv_source *src, bool all_blocks, bool allow_mounted, json_t **layout,
		  struct dv_region_map *regions, struct dv_err *err) DV_WUR;

/* Sum of the lengths of the regions of the given kind. */
uint64_t dv_region_map_bytes(const struct dv_region_map *m, enum dv_region_kind kind);

#endif
