/*
 * layoutvol.h - the volumes of a recorded layout: the disks, partitions,
 * md RAID1 data areas and LVM logical volumes a snapshot's manifest
 * describes, each as a struct dv_vol over the disks' sources.
 *
 * This is how file-level readers (ls, cat, extract), the read-only mount
 * and partial restore find a volume without probing again: the layout
 * JSON the probe wrote at backup time (docs/internals/disk.md, "Layout
 * JSON"; formats/snapshot.md §4.1) holds every offset needed. The sources
 * are typically virtual ones reading the snapshot (dv_block_reader_source),
 * but any dv_source of the same disks works.
 *
 * Volume names, as the CLI takes them (VOLUME in SNAPSHOT:VOLUME):
 *   disk0, disk1, ...       a whole disk (0-based, in manifest order)
 *   p2, disk1-p2            partition 2 of disk 0, of disk 1
 *   p1-md, disk1-p1-md      the data area of the md RAID1 member in p1
 *   centos/root             LVM logical volume root of VG centos
 * Every name is also a valid relative path for an image file (mount).
 */
#ifndef DV_DISK_LAYOUTVOL_H
#define DV_DISK_LAYOUTVOL_H

#include <jansson.h>
#include <stdbool.h>

#include "disk/volume.h"

enum dv_layout_kind { DV_LV_DISK, DV_LV_PARTITION, DV_LV_MD, DV_LV_LVM };

struct dv_layout_vol {
	char name[160];            /* as above */
	enum dv_layout_kind kind;
	unsigned disk;             /* the disk it starts on */
	char fstype[32];           /* libblkid TYPE ("ext4", "xfs", "LVM2_member"); "" when none */
	char label[64];            /* filesystem label; "" when none */
	bool has_os;               /* the probe found an installed OS in it */
	const json_t *fs;          /* its layout "fs" object (borrowed from the layouts), or NULL */
	struct dv_vol vol;         /* the bytes; owned */
};

struct dv_layout_vols {
	struct dv_layout_vol *v;
	size_t n, cap;
	/* LVs that cannot be assembled (a segment type other than striped, a
	 * PV on no disk of the snapshot), each "vg/lv: why"; not in v. */
	char **skipped;
	size_t nskipped;
};

/*
 * Lists the volumes of ndisks disks: layouts[i] is disk i's layout object
 * (the manifest's disks[i].layout, may be NULL or json null: then only
 * the whole disk), srcs[i] its source (borrowed; must outlive out).
 * Never fails on a layout it does not understand: what it cannot place is
 * left out (LVs then named in skipped).
 */
void dv_layout_volumes(const json_t *const *layouts, const struct dv_source *const *srcs, size_t ndisks,
		       struct dv_layout_vols *out);
void dv_layout_vols_release(struct dv_layout_vols *l);

/* The volume named name ("p2", "disk0-p2", "vg/lv", "disk1"), or NULL. */
const struct dv_layout_vol *dv_layout_vol_find(const struct dv_layout_vols *l, const char *name);

/*
 * The volume file readers open when none is named: the one holding an
 * installed OS; else the largest with a filesystem other than swap, LVM2
 * or md metadata; else NULL.
 */
const struct dv_layout_vol *dv_layout_vol_default(const struct dv_layout_vols *l);

#endif
