/*
 * volume.h - a volume: a partition, an md RAID member's data area, an LVM
 * logical volume, or a whole disk, read as one contiguous run of bytes.
 *
 * A volume is a piece map: an ordered list of segments, each covering
 * [vol_off, vol_off + len) of the volume and stored on one or more areas
 * of the snapshot's disks (one area: linear; several: striped, stripe_size
 * bytes per area in turn, as LVM's "striped" segment type). Filesystem
 * parsers read a volume through dv_vol_read() and report their free ranges
 * in volume offsets; dv_vol_to_disk() is the one place that maps them back
 * to offsets on a disk.
 *
 * A volume borrows the dv_source of each area: the sources must outlive it.
 * Not thread safe for writers; reads from several threads are fine (pread).
 */
#ifndef DV_DISK_VOLUME_H
#define DV_DISK_VOLUME_H

#include <stdint.h>

#include "disk/disk.h"

struct dv_ivl_list;

struct dv_vol_area {
	const struct dv_source *src; /* the disk it lies on (borrowed) */
	uint64_t off;                /* byte offset of the area's first byte on that disk */
};

struct dv_vol_seg {
	uint64_t vol_off, len;        /* the bytes of the volume it covers */
	uint64_t stripe_size;         /* bytes per stripe; 0 when linear (nareas == 1) */
	uint32_t nareas;              /* 1 linear, > 1 striped */
	struct dv_vol_area *areas;    /* owned */
};

struct dv_vol {
	char name[128];           /* for messages: "partition 2", "LV centos/root" */
	uint64_t size;            /* bytes: the sum of the segments' lengths */
	struct dv_vol_seg *segs;  /* owned; sorted by vol_off, contiguous from 0 */
	size_t nsegs, cap;
};

/* An empty volume named name (printf-style). */
void dv_vol_init(struct dv_vol *v, const char *fmt, ...) DV_PRINTF(2, 3);

/* Appends a linear segment of len bytes at byte off of src. */
void dv_vol_add_linear(struct dv_vol *v, const struct dv_source *src, uint64_t off, uint64_t len);

/*
 * Appends a striped segment of len bytes over nareas areas (copied), each
 * taking stripe_size bytes in turn. len must be a multiple of
 * stripe_size * nareas; returns -1 (nothing added) otherwise or when
 * stripe_size is 0.
 */
int dv_vol_add_striped(struct dv_vol *v, const struct dv_vol_area *areas, uint32_t nareas, uint64_t stripe_size,
		       uint64_t len);

/* A volume of one linear segment: [off, off + len) of src. */
void dv_vol_range(struct dv_vol *v, const struct dv_source *src, uint64_t off, uint64_t len, const char *fmt, ...)
	DV_PRINTF(5, 6);

void dv_vol_release(struct dv_vol *v);

/*
 * Where volume byte off (< v->size) lies: the disk (returned), the byte
 * offset on it, and in *run how many bytes from there stay contiguous on
 * that disk (to the end of the stripe or segment).
 */
const struct dv_source *dv_vol_locate(const struct dv_vol *v, uint64_t off, uint64_t *disk_off, uint64_t *run);

/*
 * Reads exactly n bytes at byte off of the volume. A read past the end is
 * -DV_E_CORRUPT ("... reads past the end of <name>"); a failing disk read
 * passes its error on.
 */
int dv_vol_read(const struct dv_vol *v, uint64_t off, void *buf, size_t n, struct dv_err *err) DV_WUR;

/*
 * Appends to out the parts, on disk src, of the volume ranges in (volume
 * offsets, borrowed, any order). Parts on other disks are left out; a
 * range is cut wherever the volume's layout is.
 */
void dv_vol_to_disk(const struct dv_vol *v, const struct dv_source *src, const struct dv_ivl_list *in,
		    struct dv_ivl_list *out);

#endif
