/* layoutvol.c - the volumes of a recorded layout (see layoutvol.h). */
#include "layoutvol.h"
#include "lvm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t jint(const json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));
	return v > 0 ? (uint64_t)v : 0;
}

static void copy_str(char *dst, size_t cap, const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	snprintf(dst, cap, "%s", s ? s : "");
}

static struct dv_layout_vol *add(struct dv_layout_vols *l, enum dv_layout_kind kind, unsigned disk,
				 const json_t *fs, const char *fmt, ...) DV_PRINTF(5, 6);

static struct dv_layout_vol *add(struct dv_layout_vols *l, enum dv_layout_kind kind, unsigned disk,
				 const json_t *fs, const char *fmt, ...)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 8;
		l->v = dv_realloc(l->v, l->cap * sizeof *l->v);
	}
	struct dv_layout_vol *v = &l->v[l->n++];
	memset(v, 0, sizeof *v);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->name, sizeof v->name, fmt, ap);
	va_end(ap);
	v->kind = kind;
	v->disk = disk;
	if (json_is_object(fs)) {
		v->fs = fs;
		copy_str(v->fstype, sizeof v->fstype, fs, "type");
		copy_str(v->label, sizeof v->label, fs, "label");
		v->has_os = json_is_object(json_object_get(fs, "os"));
	}
	return v;
}

static void skip(struct dv_layout_vols *l, const char *vg, const char *lv, const char *why)
{
	l->skipped = dv_realloc(l->skipped, (l->nskipped + 1) * sizeof *l->skipped);
	size_t n = strlen(vg) + strlen(lv) + strlen(why) + 4;
	l->skipped[l->nskipped] = dv_malloc(n);
	snprintf(l->skipped[l->nskipped++], n, "%s/%s: %s", vg, lv, why);
}

/* "" for disk 0, "disk1-" for the others: partition names of disk 0 are short. */
static const char *disk_prefix(unsigned d, char *buf, size_t n)
{
	if (d == 0)
		buf[0] = 0;
	else
		snprintf(buf, n, "disk%u-", d);
	return buf;
}

static void add_partitions(struct dv_layout_vols *l, const json_t *layout, const struct dv_source *src,
			   unsigned d)
{
	char pre[32];
	disk_prefix(d, pre, sizeof pre);
	size_t i;
	const json_t *p;
	json_array_foreach(json_object_get(layout, "partitions"), i, p)
	{
		uint64_t start = jint(p, "start"), size = jint(p, "size");
		if (json_is_true(json_object_get(p, "extended")) || start >= src->size || !size)
			continue;
		size = DV_MIN(size, src->size - start);
		unsigned num = (unsigned)jint(p, "number");
		struct dv_layout_vol *v = add(l, DV_LV_PARTITION, d, json_object_get(p, "fs"), "%sp%u", pre, num);
		dv_vol_range(&v->vol, src, start, size, "partition %u of disk %u", num, d);
		const json_t *md = json_object_get(p, "md");
		uint64_t doff = jint(md, "data_offset"), dsize = jint(md, "size");
		if (json_is_object(md) && jint(md, "level") == 1 && dsize && doff < size && dsize <= size - doff) {
			v = add(l, DV_LV_MD, d, json_object_get(md, "fs"), "%sp%u-md", pre, num);
			dv_vol_range(&v->vol, src, start + doff, dsize, "the md RAID1 data of partition %u of disk %u", num,
				     d);
		}
	}
}

/* The disk and byte offset of one stripe: the first disk whose layout
 * places it. */
static const struct dv_source *find_stripe(const json_t *const *layouts, const struct dv_source *const *srcs,
					   size_t ndisks, const char *vg_uuid, const char *lv, size_t seg,
					   size_t stripe, uint64_t *off)
{
	for (size_t d = 0; d < ndisks; d++) {
		size_t i, j;
		const json_t *vg, *lj;
		json_array_foreach(json_object_get(layouts[d], "volume_groups"), i, vg)
		{
			const char *u = json_string_value(json_object_get(vg, "uuid"));
			if (!u || strcmp(u, vg_uuid))
				continue;
			json_array_foreach(json_object_get(vg, "lvs"), j, lj)
			{
				const char *n = json_string_value(json_object_get(lj, "name"));
				if (!n || strcmp(n, lv))
					continue;
				const json_t *sj = json_array_get(json_object_get(lj, "segments"), seg);
				const json_t *x = json_array_get(json_object_get(sj, "stripes"), stripe);
				const json_t *o = json_object_get(x, "offset");
				if (json_is_integer(o) && json_integer_value(o) >= 0) {
					*off = (uint64_t)json_integer_value(o);
					return srcs[d];
				}
			}
		}
	}
	return NULL;
}

/* Whether the LV vg_uuid/name is already listed (a VG over several disks
 * appears in each disk's layout). */
static bool lv_listed(const struct dv_layout_vols *l, const char *vg, const char *lv)
{
	char name[160];
	snprintf(name, sizeof name, "%s/%s", vg, lv);
	if (dv_layout_vol_find(l, name))
		return true;
	for (size_t i = 0; i < l->nskipped; i++)
		if (!strncmp(l->skipped[i], name, strlen(name)) && l->skipped[i][strlen(name)] == ':')
			return true;
	return false;
}

static void add_lv(struct dv_layout_vols *l, const json_t *const *layouts, const struct dv_source *const *srcs,
		   size_t ndisks, unsigned d, const json_t *vg, const json_t *lj)
{
	const char *vgn = json_string_value(json_object_get(vg, "name"));
	const char *vgu = json_string_value(json_object_get(vg, "uuid"));
	const char *lvn = json_string_value(json_object_get(lj, "name"));
	uint64_t es = jint(vg, "extent_size");
	if (!vgn || !vgu || !lvn || !es || lv_listed(l, vgn, lvn))
		return;
	struct dv_vol vol;
	dv_vol_init(&vol, "LV %s/%s", vgn, lvn);
	const char *why = NULL;
	size_t i;
	const json_t *sj;
	json_array_foreach(json_object_get(lj, "segments"), i, sj)
	{
		const char *type = json_string_value(json_object_get(sj, "type"));
		uint64_t count = jint(sj, "stripe_count"), len = jint(sj, "extent_count") * es;
		if (!type || strcmp(type, "striped") || !count || count > DV_LVM_STRIPES_MAX) {
			why = "a segment type other than linear or striped";
			break;
		}
		if (jint(sj, "start_extent") * es != vol.size) {
			why = "its segments do not follow each other";
			break;
		}
		struct dv_vol_area a[DV_LVM_STRIPES_MAX];
		for (uint64_t k = 0; k < count && !why; k++) {
			a[k].src = find_stripe(layouts, srcs, ndisks, vgu, lvn, i, k, &a[k].off);
			if (!a[k].src)
				why = "a PV that is on no disk of this snapshot";
		}
		if (why)
			break;
		if (count == 1)
			dv_vol_add_linear(&vol, a[0].src, a[0].off, len);
		else if (dv_vol_add_striped(&vol, a, (uint32_t)count, jint(sj, "stripe_size"), len) < 0)
			why = "a striped segment that is not a whole number of stripes";
	}
	if (!why && !vol.size)
		why = "no segments";
	if (why) {
		dv_vol_release(&vol);
		skip(l, vgn, lvn, why);
		return;
	}
	struct dv_layout_vol *v = add(l, DV_LV_LVM, d, json_object_get(lj, "fs"), "%s/%s", vgn, lvn);
	v->vol = vol;
}

void dv_layout_volumes(const json_t *const *layouts, const struct dv_source *const *srcs, size_t ndisks,
		       struct dv_layout_vols *out)
{
	memset(out, 0, sizeof *out);
	for (size_t d = 0; d < ndisks; d++) {
		const json_t *lay = json_is_object(layouts[d]) ? layouts[d] : NULL;
		struct dv_layout_vol *v = add(out, DV_LV_DISK, (unsigned)d, json_object_get(lay, "filesystem"),
					      "disk%zu", d);
		dv_vol_range(&v->vol, srcs[d], 0, srcs[d]->size, "disk %zu", d);
		if (lay)
			add_partitions(out, lay, srcs[d], (unsigned)d);
	}
	for (size_t d = 0; d < ndisks; d++) {
		size_t i, j;
		const json_t *vg, *lj;
		json_array_foreach(json_object_get(layouts[d], "volume_groups"), i, vg)
			json_array_foreach(json_object_get(vg, "lvs"), j, lj)
				add_lv(out, layouts, srcs, ndisks, (unsigned)d, vg, lj);
	}
}

void dv_layout_vols_release(struct dv_layout_vols *l)
{
	for (size_t i = 0; i < l->n; i++)
		dv_vol_release(&l->v[i].vol);
	for (size_t i = 0; i < l->nskipped; i++)
		free(l->skipped[i]);
	free(l->v);
	free(l->skipped);
	memset(l, 0, sizeof *l);
}

const struct dv_layout_vol *dv_layout_vol_find(const struct dv_layout_vols *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, name))
			return &l->v[i];
	/* disk0-p2 is p2 */
	if (!strncmp(name, "disk0-", 6))
		return dv_layout_vol_find(l, name + 6);
	return NULL;
}

static bool is_container(const char *t)
{
	return !*t || !strcmp(t, "swap") || !strcmp(t, "LVM2_member") || !strcmp(t, "linux_raid_member");
}

const struct dv_layout_vol *dv_layout_vol_default(const struct dv_layout_vols *l)
{
	const struct dv_layout_vol *best = NULL;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].has_os)
			return &l->v[i];
	for (size_t i = 0; i < l->n; i++)
		if (!is_container(l->v[i].fstype) && (!best || l->v[i].vol.size > best->vol.size))
			best = &l->v[i];
	return best;
}
