/*
 * test_disk.c - dv_disk_probe() on generated disk images: every probed fact
 * is checked against what sfdisk --json and blkid -p report for the same
 * image, every block dumpe2fs says is allocated must lie in a READ region,
 * and hostile images (partitions past the end, overlapping partitions,
 * corrupt bitmaps, a journal needing recovery) must fall back to READ with
 * a warning. The images are made by tests/integration/lib_disk.sh in a
 * mkdtemp directory (sfdisk, mkfs.ext4, mkfs.vfat, mkswap, dumpe2fs, debugfs;
 * no root needed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "disk/inventory.h"
#include "disk/probe.h"
#include "disk/probe_internal.h"
#include "testutil.h"

#define NVME "drivers/nvme/host/nvme.ko"
#define ENA "drivers/net/ethernet/amazon/ena/ena.ko"

/* ---- helpers -------------------------------------------------------------- */

static char *img_path(const char *name)
{
	return dv_asprintf("%s/%s", dv_test_dir, name);
}

/* Probes an image; returns the dv_disk_probe result. */
static int probe(const char *name, bool all, bool allow, json_t **layout, struct dv_region_map *m,
		 struct dv_err *err)
{
	struct dv_source src;
	char *p = img_path(name);
	assert_int_equal(dv_source_open(p, &src, err), 0);
	free(p);
	int r = dv_disk_probe(&src, all, allow, layout, m, err);
	if (r == 0) {
		/* The contract: ordered, contiguous, covering [0, size). */
		uint64_t pos = 0;
		for (size_t i = 0; i < m->n; i++) {
			assert_int_equal(m->v[i].off, pos);
			assert_true(m->v[i].len > 0);
			if (i)
				assert_int_not_equal(m->v[i].kind, m->v[i - 1].kind);
			pos += m->v[i].len;
		}
		assert_int_equal(pos, src.size);
		assert_int_equal(json_integer_value(json_object_get(*layout, "bytes_unused")),
				 dv_region_map_bytes(m, DV_REGION_UNUSED));
	} else {
		assert_null(*layout);
	}
	dv_source_close(&src);
	return r;
}

/* Bytes of [off, off+len) that lie in READ regions. */
static uint64_t read_bytes_in(const struct dv_region_map *m, uint64_t off, uint64_t len)
{
	uint64_t n = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].kind != DV_REGION_READ)
			continue;
		uint64_t a = DV_MAX(off, m->v[i].off), b = DV_MIN(off + len, m->v[i].off + m->v[i].len);
		if (a < b)
			n += b - a;
	}
	return n;
}

static size_t nwarnings(const json_t *layout)
{
	return json_array_size(json_object_get(layout, "warnings"));
}

static bool warning_mentions(const json_t *layout, const char *what)
{
	const json_t *w = json_object_get(layout, "warnings");
	for (size_t i = 0; i < json_array_size(w); i++)
		if (strstr(json_string_value(json_array_get(w, i)), what))
			return true;
	return false;
}

static const json_t *part_by_number(const json_t *layout, int number)
{
	const json_t *ps = json_object_get(layout, "partitions");
	for (size_t i = 0; i < json_array_size(ps); i++) {
		const json_t *p = json_array_get(ps, i);
		if (json_integer_value(json_object_get(p, "number")) == number)
			return p;
	}
	return NULL;
}

static uint64_t jint(const json_t *o, const char *k)
{
	return (uint64_t)json_integer_value(json_object_get(o, k));
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Value of KEY in `blkid -o export` output, or NULL; caller frees. */
static char *export_value(const char *out, const char *key)
{
	size_t kl = strlen(key);
	for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!strncmp(l, key, kl) && l[kl] == '=') {
			size_t n = strcspn(l + kl + 1, "\n");
			char *v = dv_malloc(n + 1);
			memcpy(v, l + kl + 1, n);
			v[n] = 0;
			return v;
		}
	}
	return NULL;
}

static void assert_str_eq_or_null(const char *got, const char *want)
{
	if (!want)
		assert_null(got);
	else
		assert_string_equal(got, want);
}

/*
 * Checks the layout of an image against sfdisk --json and blkid -p:
 * table type, identifier, and per partition start, size, type, UUID, name,
 * bootable flag, filesystem type, UUID and label.
 */
static void check_against_tools(const char *name, const json_t *layout)
{
	char *js = dv_test_capture("sfdisk --json '%s'", name);
	json_error_t je;
	json_t *sf = json_loads(js, 0, &je);
	assert_non_null(sf);
	const json_t *pt = json_object_get(sf, "partitiontable");
	assert_string_equal(jstr(layout, "table"), jstr(pt, "label"));
	const char *sid = jstr(pt, "id"), *lid = jstr(layout, "id");
	if (!strncmp(sid, "0x", 2))
		sid += 2;
	assert_non_null(lid);
	assert_int_equal(strcasecmp(sid, lid), 0);

	const json_t *sps = json_object_get(pt, "partitions");
	assert_int_equal(json_array_size(sps), json_array_size(json_object_get(layout, "partitions")));
	for (size_t i = 0; i < json_array_size(sps); i++) {
		const json_t *sp = json_array_get(sps, i);
		const char *node = jstr(sp, "node");
		int num = atoi(node + strlen(name));
		const json_t *p = part_by_number(layout, num);
		assert_non_null(p);
		assert_int_equal(jint(p, "start"), jint(sp, "start") * 512);
		assert_int_equal(jint(p, "size"), jint(sp, "size") * 512);
		const char *st = jstr(sp, "type"), *lt = jstr(p, "type");
		if (!strcmp(jstr(layout, "table"), "dos"))
			assert_int_equal(strtoul(st, NULL, 16), strtoul(lt, NULL, 16));
		else
			assert_int_equal(strcasecmp(st, lt), 0);
		if (jstr(sp, "uuid"))
			assert_int_equal(strcasecmp(jstr(sp, "uuid"), jstr(p, "uuid")), 0);
		assert_str_eq_or_null(jstr(p, "name"), jstr(sp, "name"));
		if (!strcmp(jstr(layout, "table"), "dos"))
			assert_int_equal(json_is_true(json_object_get(p, "bootable")),
					 json_is_true(json_object_get(sp, "bootable")));

		/* Filesystem as blkid sees it at that offset. */
		if (json_is_true(json_object_get(p, "extended")))
			continue;
		char *out = dv_test_capture("blkid -p -o export -O %llu -S %llu '%s' || true",
				    (unsigned long long)jint(p, "start"), (unsigned long long)jint(p, "size"), name);
		char *type = export_value(out, "TYPE"), *uuid = export_value(out, "UUID"),
		     *label = export_value(out, "LABEL");
		const json_t *fs = json_object_get(p, "fs");
		if (!type) {
			assert_true(json_is_null(fs));
		} else {
			assert_true(json_is_object(fs));
			assert_string_equal(jstr(fs, "type"), type);
			assert_str_eq_or_null(jstr(fs, "uuid"), uuid);
			assert_str_eq_or_null(jstr(fs, "label"), label);
		}
		free(type);
		free(uuid);
		free(label);
		free(out);
	}
	json_decref(sf);
	free(js);
}

/*
 * Every block dumpe2fs reports as not free (allocated, metadata included)
 * in the ext filesystem at byte off must lie in a READ region.
 */
static void check_allocated_blocks_read(const char *name, uint64_t off, const struct dv_region_map *m)
{
	char *out = dv_test_capture("dumpe2fs '%s?offset=%llu' 2>/dev/null", name, (unsigned long long)off);
	uint64_t bs = 0, count = 0, first = 0;
	const char *l;
	assert_non_null(l = strstr(out, "\nBlock size:"));
	bs = strtoull(l + 12, NULL, 10);
	assert_non_null(l = strstr(out, "\nBlock count:"));
	count = strtoull(l + 13, NULL, 10);
	assert_non_null(l = strstr(out, "\nFirst block:"));
	first = strtoull(l + 13, NULL, 10);
	assert_true(bs >= 1024 && count > 0);

	uint8_t *is_free = dv_calloc(count, 1);
	for (l = strstr(out, "\n  Free blocks: "); l; l = strstr(l + 1, "\n  Free blocks: ")) {
		const char *p = l + 16;
		while (*p && *p != '\n') {
			char *e;
			uint64_t a = strtoull(p, &e, 10), b = a;
			if (e == p)
				break;
			if (*e == '-')
				b = strtoull(e + 1, &e, 10);
			for (uint64_t k = a; k <= b && k < count; k++)
				is_free[k] = 1;
			p = e;
			while (*p == ',' || *p == ' ')
				p++;
		}
	}
	uint64_t allocated = 0;
	for (uint64_t k = 0; k < count; k++) {
		if (is_free[k] && k >= first)
			continue;
		allocated++;
		if (read_bytes_in(m, off + k * bs, bs) != bs)
			fail_msg("allocated block %llu (byte %llu) is not in a READ region", (unsigned long long)k,
				 (unsigned long long)(off + k * bs));
	}
	assert_true(allocated > 0);
	free(is_free);
	free(out);
}

/* ---- region composition --------------------------------------------------- */

static void test_compose(void **state)
{
	(void)state;
	struct dv_region_map m = {0};
	struct dv_ivl_list u = {0}, p = {0};

	dv_usedmap_compose(1000, &u, NULL, 1, &m);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.v[0].len, 1000);

	/* out of order, overlapping, touching, past the end */
	dv_ivl_add(&u, 500, 100);
	dv_ivl_add(&u, 100, 100);
	dv_ivl_add(&u, 150, 100);
	dv_ivl_add(&u, 250, 50);
	dv_ivl_add(&u, 900, 500);
	dv_usedmap_compose(1000, &u, NULL, 1, &m);
	assert_int_equal(m.n, 6);
	assert_int_equal(m.v[0].kind, DV_REGION_READ);
	assert_int_equal(m.v[1].off, 100);
	assert_int_equal(m.v[1].len, 200);
	assert_int_equal(m.v[1].kind, DV_REGION_UNUSED);
	assert_int_equal(m.v[3].off, 500);
	assert_int_equal(m.v[5].off, 900);
	assert_int_equal(m.v[5].len, 100);
	assert_int_equal(dv_region_map_bytes(&m, DV_REGION_UNUSED), 400);

	/* protection cuts holes; short runs are read */
	dv_ivl_add(&p, 120, 10);
	dv_ivl_add(&p, 0, 20);
	dv_ivl_add(&p, 540, 100);
	dv_usedmap_compose(1000, &u, &p, 30, &m);
	/* unused left: [130,300) (170), [500,540) (40), [900,1000) (100); [100,120) is < 30 */
	assert_int_equal(dv_region_map_bytes(&m, DV_REGION_UNUSED), 310);
	assert_int_equal(read_bytes_in(&m, 120, 10), 10);
	assert_int_equal(read_bytes_in(&m, 100, 20), 20);
	assert_int_equal(read_bytes_in(&m, 540, 100), 100);

	dv_ivl_release(&u);
	dv_ivl_release(&p);
	dv_region_map_release(&m);
}

/* ---- generated images ----------------------------------------------------- */

static void test_gpt(void **state)
{
	(void)state;
	assert_int_equal(dv_test_sh("dv_mk_gpt gpt.img"), 0);
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(probe("gpt.img", false, false, &layout, &m, &err), 0);

	check_against_tools("gpt.img", layout);
	assert_string_equal(jstr(layout, "boot_mode"), "uefi+bios");
	assert_string_equal(jstr(layout, "mode"), "used-blocks");
	assert_true(json_is_null(json_object_get(layout, "filesystem")));
	assert_int_equal(nwarnings(layout), 0);

	/* ext4 root: few bytes read, all allocated blocks read */
	const json_t *root = part_by_number(layout, 3);
	assert_string_equal(jstr(root, "imaged"), "used-blocks");
	uint64_t used = jint(json_object_get(root, "fs"), "used_bytes");
	assert_true(used > 5 * MiB && used < 40 * MiB);
	uint64_t rd = read_bytes_in(&m, 34 * MiB, 96 * MiB);
	assert_true(rd < 96 * MiB / 2);
	assert_true(rd >= used);
	check_allocated_blocks_read("gpt.img", 34 * MiB, &m);

	/* swap: the header page only */
	assert_string_equal(jstr(part_by_number(layout, 4), "imaged"), "header-only");
	assert_int_equal(read_bytes_in(&m, 130 * MiB, 32 * MiB), 4096);
	/* the empty ESP: its boot sector, FATs and root directory only */
	assert_string_equal(jstr(part_by_number(layout, 2), "imaged"), "used-blocks");
	assert_true(read_bytes_in(&m, 2 * MiB, 32 * MiB) < MiB);
	/* BIOS boot, unknown, tables and the tail: whole */
	assert_int_equal(read_bytes_in(&m, 0, 2 * MiB), 2 * MiB);
	assert_int_equal(read_bytes_in(&m, 162 * MiB, 256 * MiB - 162 * MiB), 256 * MiB - 162 * MiB);
	assert_true(json_is_null(json_object_get(part_by_number(layout, 5), "fs")));
	assert_string_equal(jstr(part_by_number(layout, 5), "imaged"), "whole");
	json_decref(layout);

	/* --all-blocks: one READ region, layout still probed */
	assert_int_equal(probe("gpt.img", true, false, &layout, &m, &err), 0);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.v[0].kind, DV_REGION_READ);
	assert_string_equal(jstr(layout, "mode"), "all-blocks");
	assert_string_equal(jstr(part_by_number(layout, 3), "imaged"), "whole");
	assert_true(jint(json_object_get(part_by_number(layout, 3), "fs"), "used_bytes") > 0);
	check_against_tools("gpt.img", layout);
	json_decref(layout);
	dv_region_map_release(&m);
}

static void test_mbr(void **state)
{
	(void)state;
	assert_int_equal(dv_test_sh("dv_mk_mbr mbr.img"), 0);
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(probe("mbr.img", false, false, &layout, &m, &err), 0);
	check_against_tools("mbr.img", layout);
	assert_string_equal(jstr(layout, "table"), "dos");
	assert_string_equal(jstr(layout, "boot_mode"), "uefi+bios");
	assert_int_equal(nwarnings(layout), 0);
	assert_string_equal(jstr(part_by_number(layout, 2), "imaged"), "used-blocks");
	assert_string_equal(jstr(part_by_number(layout, 3), "imaged"), "whole");
	assert_string_equal(jstr(part_by_number(layout, 5), "imaged"), "header-only");
	assert_string_equal(jstr(part_by_number(layout, 6), "imaged"), "used-blocks");
	assert_true(read_bytes_in(&m, 33 * MiB, 96 * MiB) < 48 * MiB);
	check_allocated_blocks_read("mbr.img", 33 * MiB, &m);
	check_allocated_blocks_read("mbr.img", 163 * MiB, &m); /* 1 KiB blocks */
	/* the EBR area of the extended partition stays READ */
	assert_int_equal(read_bytes_in(&m, 129 * MiB, MiB), MiB);
	json_decref(layout);

	/* no boot code: not BIOS-bootable any more */
	assert_int_equal(dv_test_sh("dd if=/dev/zero of=mbr.img bs=440 count=1 conv=notrunc status=none"), 0);
	assert_int_equal(probe("mbr.img", false, false, &layout, &m, &err), 0);
	assert_string_equal(jstr(layout, "boot_mode"), "uefi");
	json_decref(layout);
	dv_region_map_release(&m);
}

static void test_whole_disk_fs(void **state)
{
	(void)state;
	assert_int_equal(dv_test_sh("dv_mk_wholefs whole.img"), 0);
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(probe("whole.img", false, false, &layout, &m, &err), 0);
	assert_string_equal(jstr(layout, "table"), "none");
	assert_true(json_is_null(json_object_get(layout, "id")));
	assert_string_equal(jstr(layout, "boot_mode"), "unknown");
	const json_t *fs = json_object_get(layout, "filesystem");
	assert_true(json_is_object(fs));
	char *out = dv_test_capture("blkid -p -o export whole.img");
	char *uuid = export_value(out, "UUID"), *label = export_value(out, "LABEL");
	assert_string_equal(jstr(fs, "type"), "ext4");
	assert_string_equal(jstr(fs, "uuid"), uuid);
	assert_string_equal(jstr(fs, "label"), label);
	assert_int_equal(json_array_size(json_object_get(layout, "partitions")), 0);
	assert_true(dv_region_map_bytes(&m, DV_REGION_UNUSED) > 32 * MiB);
	check_allocated_blocks_read("whole.img", 0, &m);
	free(uuid);
	free(label);
	free(out);
	json_decref(layout);

	/* an LVM PV or other non-fs signature on the whole disk is recorded, read whole */
	assert_int_equal(dv_test_sh("rm -f pv.img && truncate -s 16M pv.img && mkswap -q pv.img >/dev/null"), 0);
	assert_int_equal(probe("pv.img", false, false, &layout, &m, &err), 0);
	assert_string_equal(jstr(json_object_get(layout, "filesystem"), "type"), "swap");
	assert_int_equal(dv_region_map_bytes(&m, DV_REGION_READ), 4096);
	json_decref(layout);
	dv_region_map_release(&m);
}


/* ---- the installed OS --------------------------------------------------------- */


static const json_t *find_initramfs(const json_t *fs, const char *path)
{
	const json_t *a = json_object_get(fs, "initramfs");
	for (size_t i = 0; i < json_array_size(a); i++)
		if (!strcmp(jstr(json_array_get(a, i), "path"), path))
			return json_array_get(a, i);
	return NULL;
}

static const json_t *find_kernel(const json_t *fs, const char *version)
{
	const json_t *a = json_object_get(fs, "kernels");
	for (size_t i = 0; i < json_array_size(a); i++)
		if (!strcmp(jstr(json_array_get(a, i), "version"), version))
			return json_array_get(a, i);
	return NULL;
}

static void test_elf_arch(void **state)
{
	(void)state;
	uint8_t h[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
	h[18] = 62;
	assert_string_equal(dv_elf_arch(h, 64), "x86_64");
	assert_null(dv_elf_arch(h, 63)); /* a cut header */
	h[18] = 183;
	assert_string_equal(dv_elf_arch(h, 64), "arm64");
	h[18] = 21; /* ppc64, little-endian */
	assert_string_equal(dv_elf_arch(h, 64), "ppc64le");
	h[18] = 0x99; /* a machine we do not name */
	assert_null(dv_elf_arch(h, 64));
	h[5] = 2; /* big-endian: e_machine 0x0016 is s390 */
	h[18] = 0;
	h[19] = 22;
	assert_string_equal(dv_elf_arch(h, 64), "s390x");
	uint8_t h32[52] = {0x7f, 'E', 'L', 'F', 1, 1, 1};
	h32[18] = 3;
	assert_string_equal(dv_elf_arch(h32, 52), "i386");
	h32[18] = 40;
	assert_string_equal(dv_elf_arch(h32, 52), "arm");
	h32[6] = 2; /* EI_VERSION must be 1 */
	assert_null(dv_elf_arch(h32, 52));
	h32[6] = 1;
	h32[4] = 3; /* no such class */
	assert_null(dv_elf_arch(h32, 52));
	h32[4] = 1;
	h32[0] = 0x7e;
	assert_null(dv_elf_arch(h32, 52));
}

/*
 * A GPT disk with an ESP and an ext4 root holding an arm64 Debian 12 with two
 * kernels: 6.1.0-10 (newest: nvme built in, ena a module, initramfs with the
 * microcode archive and a zstd archive holding ena.ko.zst) and 6.1.0-9 (nvme
 * a module, a gzip initramfs without it).
 */
static void test_osinfo(void **state)
{
	(void)state;
	assert_int_equal(dv_test_sh("t=ostree && rm -rf $t os.img && dv_mk_os_tree $t 183 && "
			    "dv_mk_kernel $t 6.1.0-10-arm64 " NVME " " ENA ".xz && "
			    "dv_mk_kernel $t 6.1.0-9-arm64 '' " NVME " " ENA " && "
			    "dv_mk_initramfs $t/boot/initrd.img-6.1.0-10-arm64 zstd 6.1.0-10-arm64 " ENA ".zst && "
			    "dv_mk_initramfs $t/boot/initrd.img-6.1.0-9-arm64 gzip 6.1.0-9-arm64 " ENA " && "
			    "printf '# /dev/sdz1 was the old disk\\nUUID=0a1b / ext4 defaults 0 1\\n"
			    "  /dev/sda2\\t/home ext4 defaults 0 2\\n/dev/mapper/vg-srv /srv xfs defaults 0 0\\n' "
			    ">$t/etc/fstab && mkdir -p $t/boot/grub && "
			    "printf 'menuentry x {\\n  linux /vmlinuz root=/dev/xvda1 ro\\n}\\n' >$t/boot/grub/grub.cfg && "
			    "truncate -s 128M os.img && printf 'label: gpt\\nstart=1MiB, size=16MiB, "
			    "type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\\nstart=17MiB, "
			    "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n' | sfdisk -q os.img && "
			    "mkfs.vfat --offset 2048 os.img 16384 >/dev/null 2>&1 && "
			    "dv_mk_ext4 os.img $((17 * MiB)) $((110 * MiB)) root $t"),
			 0);
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(probe("os.img", false, false, &layout, &m, &err), 0);
	const json_t *root = json_object_get(part_by_number(layout, 2), "fs");
	const json_t *os = json_object_get(root, "os");
	assert_string_equal(jstr(os, "architecture"), "arm64");
	assert_string_equal(jstr(os, "from"), "/bin/sh"); /* /usr/bin/env is absent; /bin/sh -> /usr/bin/dash */
	assert_string_equal(jstr(os, "id"), "debian");
	assert_string_equal(jstr(os, "version_id"), "12");
	assert_string_equal(jstr(os, "pretty_name"), "Debian GNU/Linux 12 (bookworm)");
	assert_null(json_object_get(json_object_get(part_by_number(layout, 1), "fs"), "os")); /* vfat */

	/* kernels, newest first, through the /lib -> usr/lib symlink */
	const json_t *ks = json_object_get(root, "kernels");
	assert_int_equal(json_array_size(ks), 2);
	assert_string_equal(jstr(json_array_get(ks, 0), "version"), "6.1.0-10-arm64");
	const json_t *k10 = find_kernel(root, "6.1.0-10-arm64"), *k9 = find_kernel(root, "6.1.0-9-arm64");
	assert_string_equal(jstr(k10, "nvme"), "builtin");
	assert_string_equal(jstr(k10, "ena"), "module");
	assert_string_equal(jstr(k9, "nvme"), "module");
	assert_string_equal(jstr(k9, "ena"), "module");
	const json_t *i10 = find_initramfs(root, "/boot/initrd.img-6.1.0-10-arm64");
	const json_t *i9 = find_initramfs(root, "/boot/initrd.img-6.1.0-9-arm64");
	assert_non_null(i10);
	assert_non_null(i9);
	assert_int_equal(json_array_size(json_object_get(root, "initramfs")), 2);
	assert_string_equal(jstr(i10, "version"), "6.1.0-10-arm64");
	assert_true(json_is_false(json_object_get(i10, "nvme")));
	assert_true(json_is_true(json_object_get(i10, "ena"))); /* in the zstd archive after the microcode */
	assert_true(json_is_true(json_object_get(i10, "complete")));
	assert_true(json_is_false(json_object_get(i9, "nvme")));
	assert_true(json_is_true(json_object_get(i9, "ena")));

	/* the disk: the root's OS and its newest kernel's readiness */
	const json_t *dos = json_object_get(layout, "os");
	assert_string_equal(jstr(dos, "architecture"), "arm64");
	assert_string_equal(jstr(dos, "id"), "debian");
	const json_t *n = json_object_get(dos, "nitro_drivers");
	assert_string_equal(jstr(n, "kernel"), "6.1.0-10-arm64");
	assert_true(json_is_true(json_object_get(n, "nvme")));
	assert_true(json_is_true(json_object_get(n, "ena")));
	assert_string_equal(jstr(n, "initramfs"), "/boot/initrd.img-6.1.0-10-arm64");
	/* fstab and grub.cfg lines naming controller-dependent devices */
	const json_t *dn = json_object_get(dos, "device_names");
	assert_int_equal(json_array_size(dn), 2);
	assert_string_equal(jstr(json_array_get(dn, 0), "file"), "/etc/fstab");
	assert_int_equal(jint(json_array_get(dn, 0), "line"), 3);
	assert_string_equal(jstr(json_array_get(dn, 0), "device"), "/dev/sda2");
	assert_string_equal(jstr(json_array_get(dn, 0), "text"), "/dev/sda2\t/home ext4 defaults 0 2");
	assert_string_equal(jstr(json_array_get(dn, 1), "file"), "/boot/grub/grub.cfg");
	assert_int_equal(jint(json_array_get(dn, 1), "line"), 2);
	assert_string_equal(jstr(json_array_get(dn, 1), "device"), "/dev/xvda1");
	assert_int_equal(json_array_size(json_object_get(root, "device_names")), 2);
	assert_int_equal(nwarnings(layout), 0);
	json_decref(layout);

	/* the newest kernel with nvme only as a module, and an initramfs (plain
	 * cpio archives, the second after the first's padding) without it: not
	 * ready; then with it: ready */
	assert_int_equal(dv_test_sh("t=ostree && dv_mk_kernel $t 6.1.0-11-arm64 '' " NVME ".xz " ENA ".xz && "
			    "dv_mk_initramfs $t/boot/initrd.img-6.1.0-11-arm64 none 6.1.0-11-arm64 " ENA ".xz && "
			    "dv_mk_ext4 os.img $((17 * MiB)) $((110 * MiB)) root $t"),
			 0);
	assert_int_equal(probe("os.img", false, false, &layout, &m, &err), 0);
	n = json_object_get(json_object_get(layout, "os"), "nitro_drivers");
	assert_string_equal(jstr(n, "kernel"), "6.1.0-11-arm64");
	assert_true(json_is_false(json_object_get(n, "nvme")));
	assert_true(json_is_true(json_object_get(n, "ena")));
	json_decref(layout);
	assert_int_equal(dv_test_sh("t=ostree && dv_mk_initramfs $t/boot/initrd.img-6.1.0-11-arm64 none 6.1.0-11-arm64 " NVME
			    ".xz && dv_mk_ext4 os.img $((17 * MiB)) $((110 * MiB)) root $t"),
			 0);
	assert_int_equal(probe("os.img", false, false, &layout, &m, &err), 0);
	n = json_object_get(json_object_get(layout, "os"), "nitro_drivers");
	assert_true(json_is_true(json_object_get(n, "nvme")));
	assert_true(json_is_true(json_object_get(n, "ena"))); /* a module on the root filesystem */
	json_decref(layout);

	/* the host's own binary: the host's architecture; x86_64 by e_machine 62 */
	char *uname = dv_test_capture("uname -m");
	uname[strcspn(uname, "\n")] = 0;
	const char *host = !strcmp(uname, "aarch64") ? "arm64" : uname;
	assert_int_equal(dv_test_sh("rm -rf h && mkdir -p h/usr/bin && dv_elf h/usr/bin/env && "
			    "rm -f h.img && truncate -s 16M h.img && dv_mk_ext4 h.img 0 $((16 * MiB)) h h"),
			 0);
	assert_int_equal(probe("h.img", false, false, &layout, &m, &err), 0);
	os = json_object_get(layout, "os");
	assert_string_equal(jstr(os, "architecture"), host);
	assert_string_equal(jstr(os, "from"), "/usr/bin/env");
	assert_true(json_is_null(json_object_get(os, "id"))); /* no os-release */
	assert_true(json_is_null(json_object_get(os, "nitro_drivers"))); /* no kernel */
	json_decref(layout);
	free(uname);
	assert_int_equal(dv_test_sh("dv_elf h/usr/bin/env 62 && dv_mk_ext4 h.img 0 $((16 * MiB)) h h"), 0);
	assert_int_equal(probe("h.img", false, false, &layout, &m, &err), 0);
	assert_string_equal(jstr(json_object_get(layout, "os"), "architecture"), "x86_64");
	json_decref(layout);

	/* a data filesystem: no OS at all */
	assert_int_equal(dv_test_sh("dv_mk_wholefs whole.img"), 0);
	assert_int_equal(probe("whole.img", false, false, &layout, &m, &err), 0);
	assert_null(json_object_get(json_object_get(layout, "filesystem"), "os"));
	assert_true(json_is_null(json_object_get(layout, "os")));
	json_decref(layout);
	dv_region_map_release(&m);
}

/* Hostile installed systems: a cut ELF header, a symlink loop, a directory,
 * random bytes where programs should be; random bytes and a cut zstd
 * archive as initramfs. Nothing crashes; what cannot be read is unknown. */
static void test_device_names(void **state)
{
	(void)state;
	json_t *out = json_array();
	dv_device_name_lines("f", "/dev/sda1 / ext4 0 1\n#/dev/sdb1 /x\n /dev/disk/by-uuid/x /y\n"
				  "root=/dev/hdb3 quiet\n/dev/sdcard/x /z\nGRUB_CMDLINE=\"root=/dev/vda2\"\n"
				  "x/dev/sdb1 y\n/dev/nvme0n1p1 /boot\n/dev/xvdf\r\n/dev/sd /q",
			     out, 10);
	const char *want[] = {"/dev/sda1", "/dev/hdb3", "/dev/vda2", "/dev/xvdf"};
	const int lines[] = {1, 4, 6, 9};
	assert_int_equal(json_array_size(out), 4);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(jstr(json_array_get(out, i), "device"), want[i]);
		assert_int_equal(jint(json_array_get(out, i), "line"), lines[i]);
	}
	assert_string_equal(jstr(json_array_get(out, 3), "text"), "/dev/xvdf");
	/* at most max entries; a long line is cut to 160 bytes */
	json_array_clear(out);
	char big[400];
	memset(big, 'x', sizeof big);
	memcpy(big, "/dev/sda ", 9);
	big[sizeof big - 1] = 0;
	dv_device_name_lines("g", big, out, 1);
	dv_device_name_lines("g", "/dev/sdb", out, 1);
	assert_int_equal(json_array_size(out), 1);
	assert_int_equal(strlen(jstr(json_array_get(out, 0), "text")), 160);
	json_decref(out);
}

static void test_osinfo_hostile(void **state)
{
	(void)state;
	assert_int_equal(dv_test_sh("t=bad && rm -rf $t bad.img && mkdir -p $t/usr/bin $t/bin $t/sbin $t/boot && "
			    "dv_elf $t/x 183 && head -c 40 $t/x >$t/usr/bin/env && rm $t/x && "
			    "ln -s /bin/sh2 $t/bin/sh && ln -s /bin/sh $t/bin/sh2 && mkdir $t/sbin/init && "
			    "head -c 100 /dev/urandom >$t/bin/ls && "
			    "printf 'ID=\\xff\\xfe\\nVERSION_ID\\n=x\\nPRETTY_NAME=\"unterminated\\n' >$t/bin/osr && "
			    "mkdir -p $t/usr/lib && mv $t/bin/osr $t/usr/lib/os-release && "
			    "dv_mk_kernel $t 5.10.0-1 '' " NVME " && dv_mk_kernel $t 5.10.0-2 '' " NVME " && "
			    "printf '\\1%%.0s' $(seq 70000) >$t/boot/initrd.img-5.10.0-2 && "
			    "dv_mk_initramfs $t/cut zstd 5.10.0-1 " NVME ".zst && "
			    "head -c $(($(stat -c %%s $t/cut) - 200)) $t/cut >$t/boot/initramfs-5.10.0-1.img && rm $t/cut && "
			    "truncate -s 32M bad.img && dv_mk_ext4 bad.img 0 $((32 * MiB)) bad $t"),
			 0);
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(probe("bad.img", false, false, &layout, &m, &err), 0);
	const json_t *fs = json_object_get(layout, "filesystem");
	const json_t *os = json_object_get(fs, "os");
	assert_string_equal(jstr(os, "architecture"), "unknown");
	assert_true(json_is_null(json_object_get(os, "from")));
	assert_true(json_is_null(json_object_get(os, "id"))); /* not UTF-8 */
	assert_true(json_is_null(json_object_get(os, "version_id")));
	assert_string_equal(jstr(os, "pretty_name"), "\"unterminated");
	const json_t *i2 = find_initramfs(fs, "/boot/initrd.img-5.10.0-2");
	assert_true(json_is_null(json_object_get(i2, "nvme")));
	assert_true(json_is_null(json_object_get(i2, "ena")));
	assert_true(json_is_false(json_object_get(i2, "complete")));
	const json_t *i1 = find_initramfs(fs, "/boot/initramfs-5.10.0-1.img");
	assert_string_equal(jstr(i1, "version"), "5.10.0-1");
	assert_true(json_is_false(json_object_get(i1, "complete")));
	assert_true(json_is_null(json_object_get(i1, "ena"))); /* the archive is cut before its end */
	/* the disk: newest kernel 5.10.0-2, nvme a module, its initramfs unreadable */
	const json_t *n = json_object_get(json_object_get(layout, "os"), "nitro_drivers");
	assert_string_equal(jstr(n, "kernel"), "5.10.0-2");
	assert_true(json_is_null(json_object_get(n, "nvme")));
	assert_true(json_is_false(json_object_get(n, "ena")));
	/* the rest of the probe is unaffected */
	assert_string_equal(jstr(fs, "imaged"), "used-blocks");
	json_decref(layout);

	/* only a symlink loop: an OS, architecture unknown */
	assert_int_equal(dv_test_sh("rm -rf l && mkdir -p l/bin && ln -s /bin/sh2 l/bin/sh && ln -s sh l/bin/sh2 && "
			    "rm -f l.img && truncate -s 16M l.img && dv_mk_ext4 l.img 0 $((16 * MiB)) l l"),
			 0);
	assert_int_equal(probe("l.img", false, false, &layout, &m, &err), 0);
	assert_string_equal(jstr(json_object_get(layout, "os"), "architecture"), "unknown");
	assert_true(json_is_null(json_object_get(json_object_get(layout, "os"), "nitro_drivers")));
	json_decref(layout);
	dv_region_map_release(&m);
}

/* ---- FAT ------------------------------------------------------------------ */

/* Copies image `from` to `to` and zeroes every UNUSED region of m in the
 * copy: what a restore of a used-blocks snapshot writes. */
static void zero_unused(const char *from, const char *to, const struct dv_region_map *m)
{
	assert_int_equal(dv_test_sh("cp --sparse=never %s %s", from, to), 0);
	char *p = img_path(to);
	FILE *f = fopen(p, "r+b");
	assert_non_null(f);
	static const uint8_t zeros[65536];
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].kind != DV_REGION_UNUSED)
			continue;
		assert_int_equal(fseeko(f, (off_t)m->v[i].off, SEEK_SET), 0);
		for (uint64_t left = m->v[i].len; left;) {
			size_t n = (size_t)DV_MIN(left, sizeof zeros);
			assert_int_equal(fwrite(zeros, 1, n, f), n);
			left -= n;
		}
	}
	assert_int_equal(fclose(f), 0);
	free(p);
}

struct fat_facts {
	unsigned long long data_start, cluster, used, fat_start, fat_bytes;
};

/* What fsck.fat -n -v says of a whole-file FAT filesystem. */
static void fat_facts(const char *name, struct fat_facts *ff)
{
	char *out = dv_test_capture("bash -c '. %s/tests/integration/lib_disk.sh && dv_fat_facts %s'", DV_SOURCE_DIR, name);
	assert_int_equal(sscanf(out, "%llu %llu %llu %llu %llu", &ff->data_start, &ff->cluster, &ff->used, &ff->fat_start,
				&ff->fat_bytes),
			 5);
	free(out);
}

/* A whole-disk FAT of `bits` bits over dirty free space, with files: only
 * allocated clusters (and the metadata) are read, used_bytes is what
 * fsck.fat counts, and a copy with every UNUSED region zeroed passes
 * fsck.fat and holds the same files. */
static void check_fat(int bits, int mib, const char *mkfs_args)
{
	char name[32], copy[40];
	snprintf(name, sizeof name, "fat%d.img", bits);
	snprintf(copy, sizeof copy, "fat%d.restored", bits);
	assert_int_equal(dv_test_sh("rm -rf %s %s.d && truncate -s %dM %s && dv_fill_random %s 0 %d && "
			    "mkfs.vfat -F %d %s %s >/dev/null && dv_fill_fat %s %s.d",
			    name, name, mib, name, name, mib, bits, mkfs_args, name, name, name),
			 0);
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(probe(name, false, false, &layout, &m, &err), 0);
	const json_t *fs = json_object_get(layout, "filesystem");
	assert_string_equal(jstr(fs, "type"), "vfat");
	assert_string_equal(jstr(fs, "imaged"), "used-blocks");
	assert_int_equal(nwarnings(layout), 0);
	struct fat_facts ff;
	fat_facts(name, &ff);
	assert_true(ff.used > 100);
	assert_int_equal(jint(fs, "used_bytes"), ff.data_start + ff.used * ff.cluster);
	uint64_t unused = dv_region_map_bytes(&m, DV_REGION_UNUSED);
	assert_true(unused > (uint64_t)mib * MiB / 2);
	/* nothing before the data area is left out */
	assert_int_equal(read_bytes_in(&m, 0, ff.data_start), ff.data_start);
	zero_unused(name, copy, &m);
	assert_int_not_equal(dv_test_sh("cmp -s %s %s", name, copy), 0); /* free space did differ */
	assert_int_equal(dv_test_sh("fsck.fat -n %s >/dev/null 2>&1", copy), 0);
	assert_int_equal(dv_test_sh("dv_fat_check %s %s.d", copy, name), 0);
	json_decref(layout);

	/* --all-blocks still reports used_bytes */
	assert_int_equal(probe(name, true, false, &layout, &m, &err), 0);
	assert_string_equal(jstr(json_object_get(layout, "filesystem"), "imaged"), "whole");
	assert_int_equal(jint(json_object_get(layout, "filesystem"), "used_bytes"), ff.data_start + ff.used * ff.cluster);
	json_decref(layout);
	dv_region_map_release(&m);
}

static void test_fat(void **state)
{
	(void)state;
	check_fat(12, 8, "");
	check_fat(16, 32, "");
	check_fat(32, 80, "-s 1");

	/* the ESP of the generated GPT disk, through the partition offset */
	assert_int_equal(dv_test_sh("dv_mk_gpt esp.img && rm -rf esp.d && dv_fill_fat esp.img@@$((2 * MiB)) esp.d"), 0);
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(probe("esp.img", false, false, &layout, &m, &err), 0);
	assert_string_equal(jstr(part_by_number(layout, 2), "imaged"), "used-blocks");
	assert_true(read_bytes_in(&m, 2 * MiB, 32 * MiB) < 8 * MiB);
	zero_unused("esp.img", "esp.restored", &m);
	assert_int_equal(dv_test_sh("dd if=esp.restored of=esp.part bs=1M skip=2 count=32 status=none && "
			    "fsck.fat -n esp.part >/dev/null 2>&1 && dv_fat_check esp.part esp.d"),
			 0);
	/* the tables, the BIOS boot partition and the ESP's metadata are untouched */
	assert_int_equal(dv_test_sh("cmp -s -n $((2 * MiB + 65536)) esp.img esp.restored"), 0);
	json_decref(layout);
	dv_region_map_release(&m);
}

/* Hostile FAT16 filesystems: each is read whole, with the reason. */
static void hostile_fat(const char *poke, const char *reason)
{
	assert_int_equal(dv_test_sh("rm -rf h16.img h16.d && truncate -s 32M h16.img && mkfs.vfat -F 16 h16.img >/dev/null && "
			    "dv_fill_fat h16.img h16.d && %s",
			    poke),
			 0);
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(probe("h16.img", false, false, &layout, &m, &err), 0);
	const json_t *fs = json_object_get(layout, "filesystem");
	assert_string_equal(jstr(fs, "type"), "vfat");
	assert_string_equal(jstr(fs, "imaged"), "whole");
	if (!warning_mentions(layout, reason))
		fail_msg("no warning with '%s': %s", reason, json_string_value(json_array_get(json_object_get(layout, "warnings"), 0)));
	assert_int_equal(dv_region_map_bytes(&m, DV_REGION_UNUSED), 0);
	json_decref(layout);
	dv_region_map_release(&m);
}

static void test_fat_hostile(void **state)
{
	(void)state;
	/* facts of a fresh FAT16 of 32 MiB: FAT at 2048, 32768 bytes each, 16343 clusters */
	assert_int_equal(dv_test_sh("rm -f x.img && truncate -s 32M x.img && mkfs.vfat -F 16 x.img >/dev/null"), 0);
	struct fat_facts ff;
	fat_facts("x.img", &ff);
	assert_int_equal(ff.fat_start, 2048);
	assert_int_equal(ff.fat_bytes, 32768);
	/* the second FAT disagrees with the first */
	hostile_fat("printf '\\125' | dd of=h16.img bs=1 seek=$((2048 + 32768 + 30000)) conv=notrunc status=none",
		    "FAT copies 1 and 2 differ");
	/* an entry points past the last cluster (16344), in both FATs */
	hostile_fat("for o in 2048 $((2048 + 32768)); do printf '\\356\\377' | "
		    "dd of=h16.img bs=1 seek=$((o + 2 * 16000)) conv=notrunc status=none; done",
		    "points to cluster 65518, past the last one (16344)");
	/* the dirty flag of a mounted or crashed volume */
	hostile_fat("printf '\\1' | dd of=h16.img bs=1 seek=37 conv=notrunc status=none", "not cleanly unmounted");
	/* the media byte of FAT entry 0 does not match the boot sector's */
	hostile_fat("for o in 2048 $((2048 + 32768)); do printf '\\360' | dd of=h16.img bs=1 seek=$o conv=notrunc "
		    "status=none; done",
		    "media byte");
	/* cut short: the filesystem is larger than the disk */
	hostile_fat("truncate -s 20M h16.img", "larger than its partition");
	/* one sector per FAT: too small for the clusters the boot sector implies */
	hostile_fat("printf '\\1\\0' | dd of=h16.img bs=1 seek=22 conv=notrunc status=none", "too small");
}

/* ---- hostile images ------------------------------------------------------- */

static void test_past_end(void **state)
{
	(void)state;
	/* A DOS table written for 256 MiB on an image cut to 150 MiB: partition
	 * 2 (ext4, 33..129 MiB) is whole, the extended partition and its
	 * logicals run past the end or start after it. */
	assert_int_equal(dv_test_sh("dv_mk_mbr cut.img && truncate -s 150M cut.img"), 0);
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(probe("cut.img", false, false, &layout, &m, &err), 0);
	assert_true(nwarnings(layout) > 0);
	assert_true(warning_mentions(layout, "past the end"));
	/* everything after partition 2 is READ */
	assert_int_equal(read_bytes_in(&m, 129 * MiB, 21 * MiB), 21 * MiB);
	json_decref(layout);

	/* a partition entry whose ext4 claims more than the disk holds */
	assert_int_equal(dv_test_sh("dv_mk_gpt cut2.img && truncate -s 100M cut2.img"), 0);
	assert_int_equal(probe("cut2.img", false, false, &layout, &m, &err), 0);
	/* whatever libblkid makes of the cut GPT, nothing of the ext4 is left out */
	assert_int_equal(dv_region_map_bytes(&m, DV_REGION_UNUSED), 0);
	if (!strcmp(jstr(layout, "table"), "none"))
		assert_true(warning_mentions(layout, "no partition table could be read"));
	json_decref(layout);
	dv_region_map_release(&m);
}

/* Writes MBR partition entry idx (0-3) of img by hand (sfdisk refuses overlaps). */
static void write_mbr_entry(const char *name, int idx, uint8_t type, uint32_t start, uint32_t size)
{
	uint8_t e[16] = {0};
	e[4] = type;
	for (int i = 0; i < 4; i++) {
		e[8 + i] = (uint8_t)(start >> (8 * i));
		e[12 + i] = (uint8_t)(size >> (8 * i));
	}
	char *p = img_path(name);
	FILE *f = fopen(p, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, 446 + 16 * idx, SEEK_SET), 0);
	assert_int_equal(fwrite(e, 1, sizeof e, f), sizeof e);
	assert_int_equal(fclose(f), 0);
	free(p);
}

static void test_overlap(void **state)
{
	(void)state;
	/* Two MBR entries, both over the ext4 at 33 MiB: 1 = 33..129 MiB, 2 = 81..177 MiB. */
	assert_int_equal(dv_test_sh("dv_mk_mbr ov.img"), 0);
	write_mbr_entry("ov.img", 0, 0x83, 67584, 196608);
	write_mbr_entry("ov.img", 1, 0x83, 165888, 196608);
	write_mbr_entry("ov.img", 2, 0, 0, 0);
	write_mbr_entry("ov.img", 3, 0, 0, 0);
	char *out = dv_test_capture("sfdisk -d ov.img 2>/dev/null");
	assert_non_null(strstr(out, "start=       67584"));
	assert_non_null(strstr(out, "start=      165888"));
	free(out);
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(probe("ov.img", false, false, &layout, &m, &err), 0);
	assert_true(warning_mentions(layout, "overlap"));
	assert_int_equal(dv_region_map_bytes(&m, DV_REGION_UNUSED), 0);
	assert_string_equal(jstr(part_by_number(layout, 1), "imaged"), "whole");
	assert_string_equal(jstr(part_by_number(layout, 2), "imaged"), "whole");
	json_decref(layout);
	dv_region_map_release(&m);
}

/* A whole-disk ext4 with an MBR table written over its (unused) first
 * sector: one of the two is stale, nothing may be skipped. */
static void test_table_and_whole_fs(void **state)
{
	(void)state;
	assert_int_equal(dv_test_sh("dv_mk_wholefs both.img && printf '\\x55\\xaa' | "
			    "dd of=both.img bs=1 seek=510 conv=notrunc status=none"),
			 0);
	write_mbr_entry("both.img", 0, 0x83, 2048, 126976);
	char *out = dv_test_capture("blkid -p -o export both.img; sfdisk -d both.img 2>/dev/null");
	assert_non_null(strstr(out, "TYPE=ext4"));
	assert_non_null(strstr(out, "start=        2048"));
	free(out);
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(probe("both.img", false, false, &layout, &m, &err), 0);
	assert_string_equal(jstr(layout, "table"), "dos");
	assert_true(warning_mentions(layout, "stale"));
	assert_int_equal(dv_region_map_bytes(&m, DV_REGION_UNUSED), 0);
	json_decref(layout);
	dv_region_map_release(&m);
}

/* Overwrites the block bitmap of group 0 of the ext4 at byte off with `src`. */
static int corrupt_bitmap(const char *img, uint64_t off, const char *src)
{
	return dv_test_sh("bs=$(dumpe2fs -h '%s?offset=%llu' 2>/dev/null | awk '/^Block size:/ {print $3}') && "
		  "b=$(dumpe2fs '%s?offset=%llu' 2>/dev/null | awk '/Block bitmap at/ {print $4; exit}') && "
		  "dd if=%s of='%s' bs=$bs count=1 seek=$(( %llu / bs + b )) conv=notrunc status=none",
		  img, (unsigned long long)off, img, (unsigned long long)off, src, img, (unsigned long long)off);
}

static void test_corrupt_bitmap(void **state)
{
	(void)state;
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;

	/* metadata_csum: the checksum catches it */
	assert_int_equal(dv_test_sh("dv_mk_gpt bad.img"), 0);
	assert_int_equal(corrupt_bitmap("bad.img", 34 * MiB, "/dev/urandom"), 0);
	assert_int_equal(probe("bad.img", false, false, &layout, &m, &err), 0);
	assert_true(warning_mentions(layout, "partition 3 (ext4)"));
	assert_string_equal(jstr(part_by_number(layout, 3), "imaged"), "whole");
	assert_int_equal(read_bytes_in(&m, 34 * MiB, 96 * MiB), 96 * MiB);
	/* the others are still imaged as usual */
	assert_string_equal(jstr(part_by_number(layout, 4), "imaged"), "header-only");
	json_decref(layout);

	/* no checksums: a zeroed bitmap contradicts the descriptors and the metadata */
	assert_int_equal(dv_test_sh("tree=$(mktemp -d) && dv_mk_tree $tree && rm -f nocs.img && truncate -s 64M nocs.img && "
			    "dv_mk_ext4 nocs.img 0 $((64 * MiB)) nocs $tree -O ^metadata_csum,^uninit_bg && "
			    "rm -rf $tree"),
			 0);
	assert_int_equal(probe("nocs.img", false, false, &layout, &m, &err), 0);
	assert_int_equal(nwarnings(layout), 0);
	assert_true(dv_region_map_bytes(&m, DV_REGION_UNUSED) > 0);
	json_decref(layout);
	assert_int_equal(corrupt_bitmap("nocs.img", 0, "/dev/zero"), 0);
	assert_int_equal(probe("nocs.img", false, false, &layout, &m, &err), 0);
	assert_int_equal(nwarnings(layout), 1);
	assert_int_equal(dv_region_map_bytes(&m, DV_REGION_UNUSED), 0);
	assert_string_equal(jstr(json_object_get(layout, "filesystem"), "imaged"), "whole");
	json_decref(layout);
	dv_region_map_release(&m);
}

static void test_needs_recovery(void **state)
{
	(void)state;
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(dv_test_sh("dv_mk_gpt rec.img && debugfs -w -R 'feature needs_recovery' 'rec.img?offset=%llu' "
			    ">/dev/null 2>&1",
			    34 * MiB),
			 0);
	assert_int_equal(probe("rec.img", false, false, &layout, &m, &err), -DV_E_BUSY);
	assert_int_equal(err.code, DV_E_BUSY);
	assert_non_null(strstr(err.msg, "partition 3"));
	assert_non_null(strstr(err.msg, "unmount"));
	assert_non_null(strstr(err.msg, "snapshot"));
	assert_int_equal(m.n, 0);

	assert_int_equal(probe("rec.img", false, true, &layout, &m, &err), 0);
	assert_true(warning_mentions(layout, "needs recovery"));
	assert_string_equal(jstr(part_by_number(layout, 3), "imaged"), "whole");
	assert_int_equal(read_bytes_in(&m, 34 * MiB, 96 * MiB), 96 * MiB);
	json_decref(layout);
	dv_region_map_release(&m);
}

/* Superblock values libext2fs does not guard against (found by
 * tests/fuzz/fuzz_disk.c) are refused before it reads the bitmaps. */
static void test_hostile_superblock(void **state)
{
	(void)state;
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	assert_int_equal(dv_test_sh("rm -f fdb.img && truncate -s 8M fdb.img && mkfs.ext2 -q -F -b 1024 fdb.img && "
			    "debugfs -w -R 'ssv first_data_block 17' fdb.img >/dev/null 2>&1"),
			 0);
	assert_int_equal(probe("fdb.img", false, false, &layout, &m, &err), 0);
	assert_true(warning_mentions(layout, "first data block instead of 1"));
	assert_string_equal(jstr(json_object_get(layout, "filesystem"), "imaged"), "whole");
	assert_int_equal(dv_region_map_bytes(&m, DV_REGION_UNUSED), 0);
	json_decref(layout);

	/* claims 16 MiB in an 8 MiB partition: refused before libext2fs sizes its tables by it */
	assert_int_equal(dv_test_sh("rm -f big.img && truncate -s 16M big.img && mkfs.ext2 -q -F -b 1024 big.img && "
			    "truncate -s 8M big.img"),
			 0);
	assert_int_equal(probe("big.img", false, false, &layout, &m, &err), 0);
	assert_true(warning_mentions(layout, "the filesystem (16777216 bytes) is larger than its partition "
					     "(8388608 bytes)"));
	assert_int_equal(dv_region_map_bytes(&m, DV_REGION_UNUSED), 0);
	json_decref(layout);
	dv_region_map_release(&m);
}

/* Needs root and loop devices: skipped elsewhere. A loop device over the
 * ext4 partition of an image, mounted read-write, makes the image busy; the
 * loop device itself (a block device source) too; read-only is fine. */
static void test_mounted(void **state)
{
	(void)state;
	if (geteuid() != 0 || access("/dev/loop-control", W_OK) != 0)
		skip();
	assert_int_equal(dv_test_sh("dv_mk_gpt mnt.img && mkdir -p mnt"), 0);
	char *loop = dv_test_capture("losetup -f --show -o %llu --sizelimit %llu mnt.img 2>/dev/null", 34 * MiB, 96 * MiB);
	loop[strcspn(loop, "\n")] = 0;
	if (!*loop) {
		free(loop);
		skip();
	}
	if (dv_test_sh("mount %s mnt 2>/dev/null", loop) != 0) {
		dv_test_sh("losetup -d %s", loop);
		free(loop);
		skip();
	}
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	int r1 = probe("mnt.img", false, false, &layout, &m, &err);
	char msg1[sizeof err.msg];
	memcpy(msg1, err.msg, sizeof msg1);
	int r2 = probe("mnt.img", false, true, &layout, &m, &err);
	bool warned = r2 == 0 && warning_mentions(layout, "mounted read-write");
	bool whole = r2 == 0 && read_bytes_in(&m, 34 * MiB, 96 * MiB) == 96 * MiB;
	if (r2 == 0)
		json_decref(layout);
	struct dv_source src;
	int r3 = dv_source_open(loop, &src, &err);
	if (r3 == 0) {
		r3 = dv_disk_probe(&src, false, false, &layout, &m, &err);
		dv_source_close(&src);
		if (r3 == 0)
			json_decref(layout);
	}
	int r4 = dv_test_sh("mount -o remount,ro mnt");
	int r5 = r4 == 0 ? probe("mnt.img", false, false, &layout, &m, &err) : -1;
	if (r5 == 0)
		json_decref(layout);
	dv_test_sh("umount mnt; losetup -d %s", loop);
	free(loop);
	dv_region_map_release(&m);

	assert_int_equal(r1, -DV_E_BUSY);
	assert_non_null(strstr(msg1, "mounted read-write"));
	assert_non_null(strstr(msg1, "remount,ro"));
	assert_int_equal(r2, 0);
	assert_true(warned);
	assert_true(whole);
	assert_int_equal(r3, -DV_E_BUSY);
	assert_int_equal(r5, 0);
}


/* The holder walk and the mount match on a fake sysfs: loop9p2 (start
 * sector 4096) holds dm-0 (a LUKS mapping) which holds dm-1 (an LV, mounted
 * read-write, also bind-mounted read-only) and dm-2 (an LV, not mounted);
 * dm-2 claims dm-0 as a holder again (a loop); loop9p1 holds nothing. */
static void test_holders(void **state)
{
	(void)state;
	assert_int_equal(dv_test_sh("r=fakesys/sys/class/block && rm -rf fakesys && "
			    "mkdir -p $r/loop9/loop9p1 $r/loop9/loop9p2 $r/loop9/holders $r/loop9p1/holders "
			    "$r/loop9p2/holders/dm-0 $r/dm-0/holders/dm-1 $r/dm-0/holders/dm-2 $r/dm-1/holders "
			    "$r/dm-2/holders/dm-0 && echo 7:9 >$r/loop9/dev && echo 2048 >$r/loop9/loop9p1/start && "
			    "echo 4096 >$r/loop9/loop9p2/start && echo 254:0 >$r/dm-0/dev && echo 254:1 >$r/dm-1/dev && "
			    "echo 254:2 >$r/dm-2/dev && "
			    "printf '30 1 254:1 / /srv/ro ro,relatime shared:1 - ext4 /dev/mapper/vg-lv ro\\n"
			    "31 1 254:1 / /srv rw,relatime shared:1 - ext4 /dev/mapper/vg-lv rw\\n"
			    "32 1 254:7 / /other rw - ext4 /dev/mapper/x rw\\nbroken line\\n' >fakesys/mountinfo"),
			 0);
	char *root = img_path("fakesys");
	char *mi = img_path("fakesys/mountinfo");
	struct dv_holder h[8];
	size_t n = dv_disk_holders(root, "loop9p2", h, 0, 8, 0);
	assert_int_equal(n, 3);
	bool seen[3] = {false, false, false};
	for (size_t i = 0; i < n; i++) {
		int k = h[i].name[3] - '0';
		assert_true(k >= 0 && k < 3 && !seen[k]);
		seen[k] = true;
		assert_int_equal(major(h[i].dev), 254);
		assert_int_equal(minor(h[i].dev), (unsigned)k);
	}
	assert_int_equal(dv_disk_holders(root, "loop9p1", h, 0, 8, 0), 0);
	assert_int_equal(dv_disk_holders(root, "loop9p2", h, 0, 2, 0), 2); /* bounded */
	assert_int_equal(dv_disk_holders(root, "nosuch", h, 0, 8, 0), 0);

	struct dv_stacked sk[8];
	n = dv_disk_stacked_mounts(root, mi, "loop9", sk, 8);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(sk[i].off, 4096 * 512);
		if (!strcmp(sk[i].via, "dm-1")) {
			assert_true(sk[i].mounted && sk[i].rw);
			assert_string_equal(sk[i].where, "/srv");
		} else {
			assert_false(sk[i].mounted);
		}
	}
	/* a depth limit: a chain of 12 devices stops at DV_HOLDER_DEPTH */
	assert_int_equal(dv_test_sh("r=fakesys/sys/class/block && for i in $(seq 0 11); do mkdir -p $r/c$i/holders/c$((i + 1)); "
			    "echo 9:$i >$r/c$i/dev; done && mkdir -p $r/c12 && echo 9:12 >$r/c12/dev"),
			 0);
	struct dv_holder many[32];
	assert_int_equal(dv_disk_holders(root, "c0", many, 0, 32, 0), DV_HOLDER_DEPTH);
	free(root);
	free(mi);
}

static void test_garbage(void **state)
{
	(void)state;
	json_t *layout;
	struct dv_region_map m = {0};
	struct dv_err err;
	/* random bytes, an empty file and a one-sector file: no crash, all READ */
	assert_int_equal(dv_test_sh("head -c 3000000 /dev/urandom > rnd.img && : > empty.img && "
			    "printf '\\x55\\xaa' | dd of=tiny.img bs=1 seek=510 status=none"),
			 0);
	const char *names[] = {"rnd.img", "empty.img", "tiny.img"};
	for (size_t i = 0; i < DV_ARRAY_SIZE(names); i++) {
		assert_int_equal(probe(names[i], false, false, &layout, &m, &err), 0);
		assert_int_equal(dv_region_map_bytes(&m, DV_REGION_UNUSED), 0);
		json_decref(layout);
	}
	dv_region_map_release(&m);
}

/* ---- inventory ------------------------------------------------------------ */

static void test_inventory_fake_root(void **state)
{
	(void)state;
	assert_int_equal(dv_test_sh("r=fakeroot && mkdir -p $r/proc $r/etc $r/sys/block/sda/queue $r/sys/block/sda/device "
			    "$r/sys/block/loop0 $r/sys/firmware/efi && "
			    "for c in 0 1 2 3; do mkdir -p $r/sys/devices/system/cpu/cpu$c/topology; "
			    "echo $((c / 2)) > $r/sys/devices/system/cpu/cpu$c/topology/physical_package_id; "
			    "echo $((c %% 2)) > $r/sys/devices/system/cpu/cpu$c/topology/core_id; done && "
			    "printf 'cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 0 0 0\n' > $r/proc/stat && "
			    "printf 'MemTotal:  1000 kB\nMemFree: 10 kB\nMemAvailable:   250 kB\n' > $r/proc/meminfo && "
			    "echo '0.50 0.25 0.10 1/100 42' > $r/proc/loadavg && "
			    "printf 'processor\t: 0\nmodel name\t: Fake CPU 9000\n' > $r/proc/cpuinfo && "
			    "printf 'ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n' > "
			    "$r/etc/os-release && echo 2048 > $r/sys/block/sda/size && echo 0 > "
			    "$r/sys/block/sda/queue/rotational && echo 'Disk  ' > $r/sys/block/sda/device/model"),
			 0);
	char *root = img_path("fakeroot");
	json_t *inv = NULL;
	struct dv_err err;
	assert_int_equal(dv_inventory_collect(root, 0, &inv, &err), 0);
	const json_t *cpu = json_object_get(inv, "cpu"), *mem = json_object_get(inv, "memory");
	assert_string_equal(jstr(cpu, "model"), "Fake CPU 9000");
	assert_int_equal(jint(cpu, "sockets"), 2);
	assert_int_equal(jint(cpu, "cores"), 4);
	assert_int_equal(jint(cpu, "logical"), 4);
	assert_true(json_is_null(json_object_get(cpu, "busy"))); /* no sample window */
	assert_int_equal(jint(mem, "total"), 1000 * 1024);
	assert_int_equal(jint(mem, "used"), 750 * 1024);
	assert_true(json_number_value(json_array_get(json_object_get(inv, "load"), 0)) == 0.5);
	assert_string_equal(jstr(json_object_get(inv, "os"), "version_id"), "12");
	assert_string_equal(jstr(json_object_get(inv, "os"), "pretty_name"), "Debian GNU/Linux 12 (bookworm)");
	assert_string_equal(jstr(inv, "boot_mode"), "uefi");
	const json_t *disks = json_object_get(inv, "disks");
	assert_int_equal(json_array_size(disks), 1); /* loop devices are not disks */
	assert_string_equal(jstr(json_array_get(disks, 0), "name"), "sda");
	assert_string_equal(jstr(json_array_get(disks, 0), "model"), "Disk");
	assert_int_equal(jint(json_array_get(disks, 0), "size"), 2048 * 512);
	assert_true(json_is_false(json_object_get(json_array_get(disks, 0), "rotational")));
	/* no module lists, no initramfs */
	const json_t *nd = json_object_get(inv, "nitro_drivers");
	assert_true(json_is_null(json_object_get(nd, "initramfs")));
	assert_true(json_is_null(json_object_get(json_object_get(nd, "nvme"), "initramfs")));
	assert_true(json_is_null(json_object_get(json_object_get(nd, "nvme"), "module")));
	json_decref(inv);

	/* the running kernel's module lists and initramfs (gzip, after microcode) */
	assert_int_equal(dv_test_sh("r=fakeroot k=$(uname -r) && mkdir -p $r/lib/modules/$k $r/boot && "
			    ": >$r/lib/modules/$k/modules.builtin && printf 'kernel/" NVME ".xz:\nkernel/" ENA
			    ".xz:\n' >$r/lib/modules/$k/modules.dep && "
			    "dv_mk_initramfs $r/boot/initrd.img-$k gzip $k " NVME ".xz"),
			 0);
	assert_int_equal(dv_inventory_collect(root, 0, &inv, &err), 0);
	nd = json_object_get(inv, "nitro_drivers");
	char *rel = dv_test_capture("uname -r");
	rel[strcspn(rel, "\n")] = 0;
	char *want = dv_asprintf("/boot/initrd.img-%s", rel);
	assert_string_equal(jstr(nd, "initramfs"), want);
	const json_t *nv = json_object_get(nd, "nvme"), *en = json_object_get(nd, "ena");
	assert_true(json_is_false(json_object_get(nv, "builtin")));
	assert_true(json_is_true(json_object_get(nv, "module")));
	assert_true(json_is_true(json_object_get(nv, "initramfs")));
	assert_true(json_is_true(json_object_get(en, "module")));
	assert_true(json_is_false(json_object_get(en, "initramfs")));
	free(want);
	free(rel);
	json_decref(inv);

	/* missing /proc/stat: an error naming it */
	char *bad = dv_asprintf("%s/nothing", root);
	assert_int_equal(dv_inventory_collect(bad, 0, &inv, &err), -DV_E_IO);
	assert_non_null(strstr(err.msg, "/proc/stat"));
	free(bad);
	free(root);
}

static void test_inventory_live(void **state)
{
	(void)state;
	json_t *inv = NULL;
	struct dv_err err;
	assert_int_equal(dv_inventory_collect(NULL, 0.2, &inv, &err), 0);
	const json_t *busy = json_object_get(json_object_get(inv, "cpu"), "busy");
	assert_true(json_is_real(busy));
	assert_true(json_real_value(busy) >= 0 && json_real_value(busy) <= 1);
	assert_true(jint(json_object_get(inv, "memory"), "total") > 0);
	assert_non_null(jstr(inv, "architecture"));
	json_decref(inv);
}

static void test_inventory_append(void **state)
{
	(void)state;
	json_t *acc = NULL, *next;
	struct dv_err err;
	/* 100 samples: busy 0.01 .. 1.00, memory 1..100, the peak first */
	for (int i = 100; i >= 1; i--) {
		json_t *s = json_pack("{s:s, s:{s:f}, s:{s:i}, s:[f,f,f]}", "time", "2026-11-25T16:00:00Z", "cpu",
				      "busy", i / 100.0, "memory", "used", i, "load", i / 10.0, 0.0, 0.0);
		assert_int_equal(dv_inventory_append(acc, s, &next, &err), 0);
		json_decref(s);
		json_decref(acc);
		acc = next;
	}
	assert_int_equal(jint(acc, "samples"), 100);
	const json_t *cb = json_object_get(acc, "cpu_busy");
	assert_true(json_number_value(json_object_get(cb, "peak")) == 1.0);
	assert_true(json_number_value(json_object_get(cb, "p50")) == 0.5);
	assert_true(json_number_value(json_object_get(cb, "p95")) == 0.95);
	assert_true(json_number_value(json_object_get(json_object_get(acc, "memory_used"), "p99")) == 99);
	assert_true(json_number_value(json_object_get(json_object_get(acc, "load1"), "peak")) == 10.0);
	assert_true(json_is_object(json_object_get(acc, "latest")));

	/* a round trip through text keeps working */
	char *text = json_dumps(acc, JSON_COMPACT);
	json_t *back = json_loads(text, 0, NULL);
	json_t *s = json_pack("{s:s, s:{s:n}, s:{s:i}, s:[f,f,f]}", "time", "2026-11-25T17:00:00Z", "cpu", "busy",
			      "memory", "used", 5, "load", 0.0, 0.0, 0.0);
	assert_int_equal(dv_inventory_append(back, s, &next, &err), 0);
	assert_int_equal(jint(next, "samples"), 101);
	assert_string_equal(jstr(next, "last"), "2026-11-25T17:00:00Z");
	assert_string_equal(jstr(next, "first"), "2026-11-25T16:00:00Z");
	json_decref(next);

	/* not an accumulated inventory */
	json_t *junk = json_pack("{s:i}", "version", 7);
	assert_int_equal(dv_inventory_append(junk, s, &next, &err), -DV_E_CORRUPT);
	json_decref(junk);
	json_decref(s);
	json_decref(back);
	free(text);
	json_decref(acc);
}

int main(void)
{
	dv_test_prelude = ". '" DV_SOURCE_DIR "/tests/integration/lib_disk.sh' && ";
	if (system("command -v sfdisk mkfs.ext4 mkfs.vfat fsck.fat mcopy mkswap dumpe2fs debugfs blkid cpio zstd gzip >/dev/null") != 0) {
		fprintf(stderr, "test_disk: sfdisk, e2fsprogs, dosfstools, mtools, blkid, cpio, zstd and gzip are needed\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compose),
		cmocka_unit_test(test_gpt),
		cmocka_unit_test(test_mbr),
		cmocka_unit_test(test_whole_disk_fs),
		cmocka_unit_test(test_fat),
		cmocka_unit_test(test_fat_hostile),
		cmocka_unit_test(test_elf_arch),
		cmocka_unit_test(test_osinfo),
		cmocka_unit_test(test_device_names),
		cmocka_unit_test(test_osinfo_hostile),
		cmocka_unit_test(test_past_end),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_table_and_whole_fs),
		cmocka_unit_test(test_corrupt_bitmap),
		cmocka_unit_test(test_needs_recovery),
		cmocka_unit_test(test_hostile_superblock),
		cmocka_unit_test(test_mounted),
		cmocka_unit_test(test_holders),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_inventory_fake_root),
		cmocka_unit_test(test_inventory_live),
		cmocka_unit_test(test_inventory_append),
	};
	return cmocka_run_group_tests(tests, dv_test_setup, dv_test_teardown);
}
