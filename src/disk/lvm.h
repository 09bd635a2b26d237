/*
 * lvm.h - LVM2 physical volumes read from the disk itself, without lvm
 * tools or device-mapper (lvm.c), and md RAID superblocks (md.c).
 * Internal to src/disk (probe.c and the unit tests).
 *
 * A PV starts with a label in one of its first 4 sectors ("LABELONE",
 * CRC-checked), followed by the PV header: the PV's UUID, its size, its
 * data area and up to two metadata areas. Each metadata area starts with a
 * 512-byte header (magic, CRC) whose first raw location points at the
 * committed metadata text (CRC-checked; it may wrap to just after the
 * header). dv_lvm_pv_read reads all of that and keeps the text with the
 * newest seqno among the copies that pass their checks.
 *
 * The text is the LVM2 "Text Format Volume Group": nested sections,
 * key = value, strings, integers and lists. dv_lvm_parse turns it into a
 * struct dv_lvm_vg. Everything is bounded (LVM_TEXT_MAX bytes, depth,
 * counts); whatever fails a check is a sentence in *why, never a guess.
 */
#ifndef DV_DISK_LVM_H
#define DV_DISK_LVM_H

#include <stdbool.h>
#include <stdint.h>

#include "disk/volume.h"

#define DV_LVM_TEXT_MAX (4u << 20) /* bytes of metadata text read at most */
#define DV_LVM_DEPTH_MAX 16        /* section nesting */
#define DV_LVM_NODES_MAX 200000    /* values, sections and list items */
#define DV_LVM_PVS_MAX 1024
#define DV_LVM_LVS_MAX 4096
#define DV_LVM_SEGS_MAX 4096       /* per LV */
#define DV_LVM_STRIPES_MAX 128     /* per segment */

/* What the label and metadata areas of one PV say. */
struct dv_lvm_pv_label {
	char uuid[33];          /* 32 characters, no dashes */
	uint64_t dev_size;      /* bytes, as the PV header says (0: unknown) */
	uint64_t data_off;      /* first data area: offset from the PV start (bytes) */
	unsigned nmda;          /* metadata areas found in the header */
	unsigned mda_ok;        /* of those, how many gave metadata passing its checks */
	uint64_t seqno;         /* seqno of text */
	char *text;             /* owned: newest valid metadata text (NUL-terminated), NULL if none */
	size_t text_len;
};

/*
 * Reads the label, PV header and metadata areas of the PV that fills
 * volume pv. Returns 0 with out filled (out->text may be NULL when the PV
 * has no metadata area, e.g. pvcreate --metadatacopies 0), or -1 with *why
 * (caller frees) saying what is wrong. Release with dv_lvm_pv_label_release.
 * When a metadata area fails its checks and another passes, the failure is
 * appended to *note (caller frees; may stay NULL).
 */
int dv_lvm_pv_read(const struct dv_vol *pv, struct dv_lvm_pv_label *out, char **why, char **note);
void dv_lvm_pv_label_release(struct dv_lvm_pv_label *l);

/* LVM's CRC (CRC-32 reflected, initial value 0xf597a6cf, no final xor). */
uint32_t dv_lvm_crc(const void *buf, size_t n);

struct dv_lvm_stripe {
	uint32_t pv;       /* index into vg->pvs */
	uint64_t extent;   /* first physical extent on that PV */
};

struct dv_lvm_seg {
	uint64_t start_extent, extent_count;
	char type[32];             /* "striped", "thin-pool", "raid1", ... */
	uint32_t stripe_count;     /* striped: number of stripes; else 0 */
	uint64_t stripe_size;      /* striped, > 1 stripe: sectors; else 0 */
	struct dv_lvm_stripe *stripes; /* owned, stripe_count of them */
	char origin[128];          /* "snapshot" segments: the origin LV's name */
};

struct dv_lvm_lv {
	char name[128];
	char uuid[40];
	bool visible;             /* status has VISIBLE */
	struct dv_lvm_seg *segs;  /* owned, sorted by start_extent, contiguous from 0 */
	size_t nsegs;
	uint64_t extents;         /* sum of extent_count */
	char *whole_why;          /* owned: why it cannot be mapped (read whole), NULL when it can */
};

struct dv_lvm_pv {
	char name[64];            /* the section name: pv0 */
	char uuid[40];            /* as in the text, with dashes */
	uint64_t pe_start;        /* sectors */
	uint64_t pe_count;
	uint64_t dev_size;        /* sectors (0 when absent) */
};

struct dv_lvm_vg {
	char name[128];
	char uuid[40];
	uint64_t seqno;
	uint64_t extent_size;     /* sectors */
	struct dv_lvm_pv *pvs;    /* owned */
	size_t npvs;
	struct dv_lvm_lv *lvs;    /* owned */
	size_t nlvs;
};

/*
 * Parses metadata text of n bytes (need not be NUL-terminated). Returns a
 * new VG (free with dv_lvm_vg_free) or NULL with *why (caller frees).
 * Segments whose type is not "striped" are kept with their type and no
 * stripes, and their LV gets a whole_why; so does every LV that is not
 * visible (thin pool data, raid images, snapshot stores...).
 */
struct dv_lvm_vg *dv_lvm_parse(const char *text, size_t n, char **why);
void dv_lvm_vg_free(struct dv_lvm_vg *vg);

/* One run of PV extents an LV segment stripe uses. */
struct dv_lvm_use {
	uint32_t pv;          /* index into vg->pvs */
	uint64_t start, len;  /* extents */
	size_t lv;            /* index into vg->lvs */
};

/* Every run of PV extents the VG's LV segments use, sorted by PV, then
 * start; *out is new (caller frees, also when the count is 0). */
size_t dv_lvm_uses(const struct dv_lvm_vg *vg, struct dv_lvm_use **out);

/* The dashes of an LVM UUID dropped into out (33 bytes). */
void dv_lvm_uuid_plain(const char *uuid, char out[33]);

/* ---- md RAID (md.c) --------------------------------------------------- */

struct dv_md_info {
	char metadata[8];      /* "0.90", "1.0", "1.1", "1.2" */
	int level;             /* 0, 1, 4, 5, 6, 10, -1 linear ... */
	char uuid[40];         /* xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx like mdadm */
	char name[40];         /* 1.x set_name ("" for 0.90) */
	uint64_t sb_off;       /* superblock offset in the member (bytes) */
	uint64_t data_off;     /* data offset in the member (bytes) */
	uint64_t size;         /* bytes of the array's data held by this member (RAID1: the array size) */
	uint32_t raid_disks;
};

/*
 * Looks for an md superblock on the member that fills volume m (1.1 at 0,
 * 1.2 at 4 KiB, 1.0 near the end, 0.90 in the last 64 KiB-aligned 64 KiB).
 * Returns 0 with out filled, 1 when there is none, -1 with *why (caller
 * frees) when one is there but fails its checks.
 */
int dv_md_read(const struct dv_vol *m, struct dv_md_info *out, char **why);

#endif
