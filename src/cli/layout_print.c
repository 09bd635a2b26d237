/*
 * layout_print.c - dv_cli_print_layout(): the disk layout as a tree.
 * The layout comes from a snapshot manifest, i.e. from disk, so every
 * member is treated as optional and of unknown type.
 */
#include <stdio.h>
#include "cli/layout_print.h"

#include <string.h>
#include <stdarg.h>

#include "cli/parttype.h"
#include "cli/table.h"

#include "util/util.h"

/* show fits 100 columns: long values (UUIDs, labels) go on lines of their
 * own under the row they belong to. */
#define LINE_MAX_COLS 100

/* Where a line goes: into the partition table as a note, or straight out. */
struct sink {
	FILE *out;
	struct dv_table *table;
	int err;
};

static void emit(struct sink *k, const char *fmt, ...) DV_PRINTF(2, 3);
static void emit(struct sink *k, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (!k->table)
		fprintf(k->out, "%s\n", line);
	else if (!k->err)
		k->err = dv_table_note(k->table, line);
}

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

/* A filesystem inside an md data area or an LV: what it is and how it was
 * imaged, then its label and UUID on a line of their own. */
static void print_fs_line(struct sink *k, const char *lead, const char *cont, const json_t *fs, const char *imaged)
{
	char used[32];
	if (!json_is_object(fs)) {
		emit(k, "%sfilesystem: none recognised, imaged %s", lead, imaged);
		return;
	}
	size_of(used, sizeof used, fs, "used_bytes");
	emit(k, "%s%s  used %s  imaged %s", lead, str(fs, "type"), used, imaged);
	if (json_is_string(json_object_get(fs, "label")) || json_is_string(json_object_get(fs, "uuid")))
		emit(k, "%slabel %s  uuid %s", cont, str(fs, "label"), str(fs, "uuid"));
}

/* An md RAID member's array and what is inside its data area. */
static void print_md(struct sink *k, const json_t *md, const char *lead)
{
	if (!json_is_object(md))
		return;
	char off[32], size[32], l1[64], l2[64];
	size_of(off, sizeof off, md, "data_offset");
	size_of(size, sizeof size, md, "size");
	emit(k, "%s   md RAID%lld (metadata %s) %s: data at %s, %s", lead,
	     (long long)json_integer_value(json_object_get(md, "level")), str(md, "metadata"), str(md, "name"), off,
	     size);
	emit(k, "%s     uuid %s", lead, str(md, "uuid"));
	snprintf(l1, sizeof l1, "%s   └─ ", lead);
	snprintf(l2, sizeof l2, "%s      ", lead);
	print_fs_line(k, l1, l2, json_object_get(md, "fs"), str(md, "imaged"));
}

/* PV -> VG -> LV -> filesystem. */
static void print_vgs(struct sink *k, const json_t *vgs)
{
	for (size_t v = 0; json_is_array(vgs) && v < json_array_size(vgs); v++) {
		const json_t *vg = json_array_get(vgs, v);
		char es[32];
		size_of(es, sizeof es, vg, "extent_size");
		emit(k, "volume group %s  seqno %lld  extents of %s", str(vg, "name"),
		     (long long)json_integer_value(json_object_get(vg, "seqno")), es);
		emit(k, "│  uuid %s", str(vg, "uuid"));
		const json_t *pvs = json_object_get(vg, "pvs");
		const json_t *lvs = json_object_get(vg, "lvs");
		size_t n = json_is_array(lvs) ? json_array_size(lvs) : 0;
		for (size_t i = 0; json_is_array(pvs) && i < json_array_size(pvs); i++) {
			const json_t *pv = json_array_get(pvs, i);
			bool last = !n && i + 1 == json_array_size(pvs);
			char ps[32];
			size_of(ps, sizeof ps, pv, "pe_start");
			emit(k, "%s PV %s  on %s  extents from %s, %lld of them", last ? "└─" : "├─", str(pv, "name"),
			     json_is_string(json_object_get(pv, "on")) ? str(pv, "on") : "(not on this disk)", ps,
			     (long long)json_integer_value(json_object_get(pv, "pe_count")));
			emit(k, "%s    uuid %s", last ? "  " : "│ ", str(pv, "uuid"));
		}
		for (size_t i = 0; i < n; i++) {
			const json_t *lv = json_array_get(lvs, i);
			const char *b = i + 1 == n ? "   " : "│  ";
			char sz[32];
			size_of(sz, sizeof sz, lv, "size");
			const json_t *segs = json_object_get(lv, "segments");
			size_t ns = json_is_array(segs) ? json_array_size(segs) : 0;
			emit(k, "%s LV %s  %s  %zu segment%s", i + 1 == n ? "└─" : "├─", str(lv, "name"), sz, ns,
			     ns == 1 ? "" : "s");
			for (size_t q = 0; q < ns; q++) {
				const json_t *g = json_array_get(segs, q);
				char line[512];
				int len = snprintf(line, sizeof line, "%s   extents %lld+%lld %s", b,
						   (long long)json_integer_value(json_object_get(g, "start_extent")),
						   (long long)json_integer_value(json_object_get(g, "extent_count")),
						   str(g, "type"));
				const json_t *st = json_object_get(g, "stripes");
				for (size_t x = 0; json_is_array(st) && x < json_array_size(st); x++) {
					const json_t *sj = json_array_get(st, x);
					char one[96];
					snprintf(one, sizeof one, "%s %s:%lld", x ? "," : " on", str(sj, "pv"),
						 (long long)json_integer_value(json_object_get(sj, "start_extent")));
					/* many stripes: go on on the next line */
					if (len + strlen(one) > LINE_MAX_COLS - 2 && len > 0) {
						emit(k, "%s", line);
						len = snprintf(line, sizeof line, "%s     ", b);
					}
					if ((size_t)len + strlen(one) < sizeof line)
						len += snprintf(line + len, sizeof line - (size_t)len, "%s", one);
				}
				emit(k, "%s", line);
			}
			char lead[64], cont[64];
			snprintf(lead, sizeof lead, "%s   └─ ", b);
			snprintf(cont, sizeof cont, "%s      ", b);
			print_fs_line(k, lead, cont, json_object_get(lv, "fs"), str(lv, "imaged"));
		}
	}
}

/* Text wrapped at word boundaries to LINE_MAX_COLS, the first line after
 * first, the others after cont. */
static void print_wrapped(FILE *out, const char *first, const char *cont, const char *text)
{
	const char *lead = first;
	while (*text) {
		size_t room = LINE_MAX_COLS - dv_table_width(lead), n = strlen(text);
		if (n > room) {
			size_t cut = room;
			while (cut > 0 && text[cut] != ' ')
				cut--;
			n = cut ? cut : room;
		}
		fprintf(out, "%s%.*s\n", lead, (int)n, text);
		text += n;
		while (*text == ' ')
			text++;
		lead = cont;
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
	const char *table = json_string_value(json_object_get(layout, "table"));
	fprintf(out, "disk  %s  table %s  boot %s  %s (%s not read)\n", size, str(layout, "table"),
		str(layout, "boot_mode"), str(layout, "mode"), unused);
	if (json_is_string(json_object_get(layout, "id")))
		fprintf(out, "      id %s\n", str(layout, "id"));

	print_os(out, json_object_get(layout, "os"));
	static const char *const heads[] = {"NAME", "START", "SIZE", "TYPE", "FSTYPE", "FSUSED", "IMAGED"};
	struct dv_table t;
	dv_table_init(&t, DV_ARRAY_SIZE(heads), heads, "lrrllrl");
	struct sink tk = {out, &t, 0};

	const json_t *wfs = json_object_get(layout, "filesystem");
	if (json_is_object(wfs)) {
		char used[32];
		size_of(used, sizeof used, wfs, "used_bytes");
		const char *row[] = {"└─disk", "0 B", size, "(whole disk)", str(wfs, "type"), used, str(wfs, "imaged")};
		tk.err = tk.err ? tk.err : dv_table_add(&t, row);
		if (json_is_string(json_object_get(wfs, "label")) || json_is_string(json_object_get(wfs, "uuid")))
			emit(&tk, "      label %s  uuid %s", str(wfs, "label"), str(wfs, "uuid"));
		print_md(&tk, json_object_get(wfs, "md"), "   ");
	}
	const json_t *parts = json_object_get(layout, "partitions");
	size_t n = json_is_array(parts) ? json_array_size(parts) : 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *p = json_array_get(parts, i);
		const json_t *fs = json_object_get(p, "fs");
		bool last = i + 1 == n;
		const char *b = last ? "   " : "│  ";
		char name[32], start[32], psize[32], used[32];
		snprintf(name, sizeof name, "%s%lld", last ? "└─" : "├─",
			 (long long)json_integer_value(json_object_get(p, "number")));
		size_of(start, sizeof start, p, "start");
		size_of(psize, sizeof psize, p, "size");
		if (json_is_object(fs))
			size_of(used, sizeof used, fs, "used_bytes");
		else
			snprintf(used, sizeof used, "-");
		const char *row[] = {name,
				     start,
				     psize,
				     dv_cli_parttype_name(table, str(p, "type")),
				     json_is_object(fs) ? str(fs, "type") : "-",
				     used,
				     str(p, "imaged")};
		tk.err = tk.err ? tk.err : dv_table_add(&t, row);
		/* a PV's UUID is on its PV line below */
		if (json_is_object(fs) && !json_is_object(json_object_get(p, "lvm")) &&
		    (json_is_string(json_object_get(fs, "label")) || json_is_string(json_object_get(fs, "uuid"))))
			emit(&tk, "%s   label %s  uuid %s", b, str(fs, "label"), str(fs, "uuid"));
		print_md(&tk, json_object_get(p, "md"), b);
		const json_t *l = json_object_get(p, "lvm");
		if (json_is_object(l)) {
			emit(&tk, "%s   PV %s of VG %s", b, str(l, "pv"), str(l, "vg"));
			emit(&tk, "%s     uuid %s", b, str(l, "pv_uuid"));
		}
	}
	if (t.nrows)
		dv_table_print(out, &t, NULL);
	if (tk.err)
		fprintf(out, "(out of memory: the partition table is not complete)\n");
	dv_table_release(&t);
	struct sink direct = {out, NULL, 0};
	print_vgs(&direct, json_object_get(layout, "volume_groups"));
	const json_t *w = json_object_get(layout, "warnings");
	for (size_t i = 0; json_is_array(w) && i < json_array_size(w); i++) {
		const char *s = json_string_value(json_array_get(w, i));
		if (s)
			print_wrapped(out, "warning: ", "         ", s);
	}
}
