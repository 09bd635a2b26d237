/*
 * layout_print.c - dv_cli_print_layout(): the disk layout as a tree.
 * The layout comes from a snapshot manifest, i.e. from disk, so every
 * member is treated as optional and of unknown type.
 */
#include <stdio.h>
#include "cli/layout_print.h"

#include <string.h>
#include <strings.h>

#include "util/util.h"

#define ROW_FMT "%s%-4s %-10s %-10s %-22s %-12s %-16s %-38s %-10s %s\n"

static const struct {
	const char *type;
	const char *name;
} known_types[] = {
	{"c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "EFI System"},
	{"21686148-6449-6e6f-744e-656564454649", "BIOS boot"},
	{"0fc63daf-8483-4772-8e79-3d69d8477de4", "Linux filesystem"},
	{"0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "Linux swap"},
	{"e6d6d379-f507-44c2-a23c-238f2a3df928", "Linux LVM"},
	{"a19d880f-05fc-4d3b-a006-743f0f84911e", "Linux RAID"},
	{"4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "Linux root (x86-64)"},
	{"b921b045-1df0-41c3-af44-4c6f280d3fae", "Linux root (ARM-64)"},
	{"bc13c2ff-59e6-4262-a352-b275fd6f7172", "Linux extended boot"},
	{"ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", "Microsoft basic data"},
	{"e3c9e316-0b5c-4db8-817d-f92df00215ae", "Microsoft reserved"},
	{"0x83", "Linux"},
	{"0x82", "Linux swap"},
	{"0x8e", "Linux LVM"},
	{"0xfd", "Linux RAID"},
	{"0xef", "EFI System"},
	{"0xee", "GPT protective"},
	{"0x5", "Extended"},
	{"0xf", "Extended (LBA)"},
	{"0x85", "Linux extended"},
	{"0x7", "NTFS/exFAT"},
	{"0xb", "FAT32"},
	{"0xc", "FAT32 (LBA)"},
	{"0xe", "FAT16 (LBA)"},
	{"0x6", "FAT16"},
};

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s && *s ? s : "-";
}

static void size_of(char *out, size_t n, const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		dv_format_size(out, n, (uint64_t)json_integer_value(v));
	else
		snprintf(out, n, "-");
}

static const char *type_name(const char *type)
{
	for (size_t i = 0; i < DV_ARRAY_SIZE(known_types); i++)
		if (!strcasecmp(type, known_types[i].type))
			return known_types[i].name;
	return type;
}

static const char *yes_no(const json_t *v)
{
	return json_is_true(v) ? "yes" : json_is_false(v) ? "NO" : "unknown";
}

/* The installed OS the probe found (layout["os"]), two lines. */
static void print_os(FILE *out, const json_t *os)
{
	if (!json_is_object(os))
		return;
	const char *name = json_string_value(json_object_get(os, "pretty_name"));
	if (!name)
		name = json_string_value(json_object_get(os, "id"));
	const char *from = json_string_value(json_object_get(os, "from"));
	fprintf(out, "os    %s  architecture %s%s%s%s\n", name ? name : "(no os-release)", str(os, "architecture"),
		from ? " (from " : "", from ? from : "", from ? ")" : "");
	const json_t *n = json_object_get(os, "nitro_drivers");
	if (json_is_object(n)) {
		const char *ir = json_string_value(json_object_get(n, "initramfs"));
		fprintf(out, "nitro kernel %s: nvme %s, ena %s%s%s\n", str(n, "kernel"), yes_no(json_object_get(n, "nvme")),
			yes_no(json_object_get(n, "ena")), ir ? ", initramfs " : ", no initramfs found", ir ? ir : "");
	}
}

static void print_fs_line(FILE *out, const char *lead, const json_t *fs, const char *imaged)
{
	char used[32];
	if (!json_is_object(fs)) {
		fprintf(out, "%sfilesystem: none recognised, imaged %s\n", lead, imaged);
		return;
	}
	size_of(used, sizeof used, fs, "used_bytes");
	fprintf(out, "%s%s  label %s  uuid %s  used %s  imaged %s\n", lead, str(fs, "type"), str(fs, "label"),
		str(fs, "uuid"), used, imaged);
}

/* An md RAID member's array and what is inside its data area. */
static void print_md(FILE *out, const json_t *md, const char *lead)
{
	if (!json_is_object(md))
		return;
	char off[32], size[32], l2[64];
	size_of(off, sizeof off, md, "data_offset");
	size_of(size, sizeof size, md, "size");
	fprintf(out, "%s   md RAID%lld (metadata %s) %s uuid %s: data at %s, %s\n", lead,
		(long long)json_integer_value(json_object_get(md, "level")), str(md, "metadata"), str(md, "name"),
		str(md, "uuid"), off, size);
	snprintf(l2, sizeof l2, "%s   └─ ", lead);
	print_fs_line(out, l2, json_object_get(md, "fs"), str(md, "imaged"));
}

/* PV -> VG -> LV -> filesystem. */
static void print_vgs(FILE *out, const json_t *vgs)
{
	for (size_t v = 0; json_is_array(vgs) && v < json_array_size(vgs); v++) {
		const json_t *vg = json_array_get(vgs, v);
		char es[32];
		size_of(es, sizeof es, vg, "extent_size");
		fprintf(out, "volume group %s  uuid %s  seqno %lld  extents of %s\n", str(vg, "name"), str(vg, "uuid"),
			(long long)json_integer_value(json_object_get(vg, "seqno")), es);
		const json_t *pvs = json_object_get(vg, "pvs");
		for (size_t i = 0; json_is_array(pvs) && i < json_array_size(pvs); i++) {
			const json_t *pv = json_array_get(pvs, i);
			char ps[32];
			size_of(ps, sizeof ps, pv, "pe_start");
			fprintf(out, "├─ PV %s  uuid %s  on %s  extents from %s, %lld of them\n", str(pv, "name"),
				str(pv, "uuid"), json_is_string(json_object_get(pv, "on")) ? str(pv, "on") : "(not on this disk)",
				ps, (long long)json_integer_value(json_object_get(pv, "pe_count")));
		}
		const json_t *lvs = json_object_get(vg, "lvs");
		size_t n = json_is_array(lvs) ? json_array_size(lvs) : 0;
		for (size_t i = 0; i < n; i++) {
			const json_t *lv = json_array_get(lvs, i);
			const char *b = i + 1 == n ? "   " : "│  ";
			char sz[32];
			size_of(sz, sizeof sz, lv, "size");
			const json_t *segs = json_object_get(lv, "segments");
			size_t ns = json_is_array(segs) ? json_array_size(segs) : 0;
			fprintf(out, "%s LV %s  %s  %zu segment%s\n", i + 1 == n ? "└─" : "├─", str(lv, "name"), sz, ns,
				ns == 1 ? "" : "s");
			for (size_t k = 0; k < ns; k++) {
				const json_t *g = json_array_get(segs, k);
				fprintf(out, "%s   extents %lld+%lld %s", b,
					(long long)json_integer_value(json_object_get(g, "start_extent")),
					(long long)json_integer_value(json_object_get(g, "extent_count")), str(g, "type"));
				const json_t *st = json_object_get(g, "stripes");
				for (size_t q = 0; json_is_array(st) && q < json_array_size(st); q++) {
					const json_t *x = json_array_get(st, q);
					fprintf(out, "%s %s:%lld", q ? "," : " on", str(x, "pv"),
						(long long)json_integer_value(json_object_get(x, "start_extent")));
				}
				fputc('\n', out);
			}
			char lead[64];
			snprintf(lead, sizeof lead, "%s   └─ ", b);
			print_fs_line(out, lead, json_object_get(lv, "fs"), str(lv, "imaged"));
		}
	}
}

void dv_cli_print_layout(FILE *out, const json_t *layout)
{
	if (!json_is_object(layout)) {
		fprintf(out, "disk: (no layout recorded)\n");
		return;
	}
	char size[32], unused[32];
	size_of(size, sizeof size, layout, "size");
	size_of(unused, sizeof unused, layout, "bytes_unused");
	fprintf(out, "disk  %s  table %s  id %s  boot %s  %s (%s not read)\n", size, str(layout, "table"),
		str(layout, "id"), str(layout, "boot_mode"), str(layout, "mode"), unused);

	print_os(out, json_object_get(layout, "os"));
	fprintf(out, ROW_FMT, "", "NAME  ", "START", "SIZE", "TYPE", "FSTYPE", "LABEL", "UUID", "FSUSED", "IMAGED");

	const json_t *wfs = json_object_get(layout, "filesystem");
	if (json_is_object(wfs)) {
		char used[32];
		size_of(used, sizeof used, wfs, "used_bytes");
		fprintf(out, ROW_FMT, "└─", "disk", "0 B", size, "(whole disk)", str(wfs, "type"), str(wfs, "label"),
			str(wfs, "uuid"), used, str(wfs, "imaged"));
	}
	const json_t *parts = json_object_get(layout, "partitions");
	size_t n = json_is_array(parts) ? json_array_size(parts) : 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *p = json_array_get(parts, i);
		const json_t *fs = json_object_get(p, "fs");
		char name[32], start[32], psize[32], used[32];
		json_int_t num = json_integer_value(json_object_get(p, "number"));
		snprintf(name, sizeof name, "%lld", (long long)num);
		size_of(start, sizeof start, p, "start");
		size_of(psize, sizeof psize, p, "size");
		if (json_is_object(fs))
			size_of(used, sizeof used, fs, "used_bytes");
		else
			snprintf(used, sizeof used, "-");
		const char *t = str(p, "type");
		const char *fst = json_is_object(fs) ? str(fs, "type") : "-";
		const char *label = json_is_object(fs) ? str(fs, "label") : "-";
		const char *uuid = json_is_object(fs) ? str(fs, "uuid") : "-";
		fprintf(out, ROW_FMT, i + 1 == n ? "└─" : "├─", name, start, psize, type_name(t), fst, label, uuid, used, str(p, "imaged"));
		print_md(out, json_object_get(p, "md"), i + 1 == n ? "   " : "│  ");
		const json_t *l = json_object_get(p, "lvm");
		if (json_is_object(l))
			fprintf(out, "%s   PV %s (%s) of VG %s\n", i + 1 == n ? "  " : "│ ", str(l, "pv"), str(l, "pv_uuid"),
				str(l, "vg"));
	}
	if (json_is_object(wfs))
		print_md(out, json_object_get(wfs, "md"), "   ");
	print_vgs(out, json_object_get(layout, "volume_groups"));
	const json_t *w = json_object_get(layout, "warnings");
	for (size_t i = 0; json_is_array(w) && i < json_array_size(w); i++) {
		const char *s = json_string_value(json_array_get(w, i));
		if (s)
			fprintf(out, "warning: %s\n", s);
	}
}
