/*
 * test_btrfs.c - dv_usedmap_btrfs() on btrfs images made by mkfs.btrfs
 * --rootdir over random data. Every unused range must be exactly device
 * space that `btrfs inspect-internal dump-tree -t dev` lists no DEV_EXTENT
 * for (outside the first MiB and the superblock mirror); a copy with every
 * unused range zeroed must pass `btrfs check --readonly` and give the same
 * files (`btrfs restore`). A bad superblock checksum or magic, a damaged
 * tree block, two devices and a cut image are refused with the reason.
 * No root needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

 
/* Makes NAME: MIB MiB of random data, mkfs.btrfs with b.d's files. */
static void mk_btrfs(const char *name, int mib)
{
	assert_int_equal(dv_test_sh("rm -rf %s b.d && mkdir -p b.d/sub && head -c %dM /dev/urandom >%s && "
			    "head -c 9000000 /dev/urandom >b.d/a.bin && seq 1 200000 >b.d/sub/b.txt && "
			    "head -c 777 /dev/urandom >b.d/c.bin && "
			    "mkfs.btrfs -q -f --rootdir b.d %s >/dev/null 2>&1",
			    name, mib, name, name),
			 0);
}

/* The unused ranges dump-tree implies, "OFF LEN" lines, into file out. */
static void expected_unused(const char *img, uint64_t dev_bytes, const char *out)
{
	assert_int_equal(dv_test_sh("btrfs inspect-internal dump-tree -t dev %s 2>/dev/null | awk '"
			    "/key \\([0-9]+ DEV_EXTENT [0-9]+\\)/ { s = $0; sub(/.*DEV_EXTENT /, \"\", s); "
			    "sub(/\\).*/, \"\", s); off = s } "
			    "/chunk_objectid .* length / && off != \"\" { print off, $NF; off = \"\" }' >ext.txt && "
			    "{ echo 0 1048576; echo 67108864 4096; cat ext.txt; } | sort -n | awk -v end=%llu '"
			    "{ if ($1 > pos) print pos, $1 - pos; if ($1 + $2 > pos) pos = $1 + $2 } "
			    "END { if (pos < end) print pos, end - pos }' | awk '$1 < %llu' >%s",
			    img, (unsigned long long)dev_bytes, (unsigned long long)dev_bytes, out),
			 0);
}

static void test_btrfs_map(void **state)
{
	(void)state;
	mk_btrfs("b.img", 256);
	struct dv_test_img im;
	dv_test_img_open(&im, "b.img", 0, 0);
	struct dv_ext_info info;
	struct dv_ivl_list runs = {0};
	char *why = NULL;
	int r = dv_usedmap_btrfs(&im.vol, &info, &runs, &why);
	if (r)
		fprintf(stderr, "why: %s\n", why);
	assert_int_equal(r, 0);
	assert_true(info.opened && info.has_used);
	assert_int_equal(info.fs_bytes, 256 * MiB);
	assert_true(info.used_bytes > 9000000 && info.used_bytes < 128 * MiB);

	expected_unused("b.img", info.fs_bytes, "want.txt");
	char *p = dv_asprintf("%s/got.txt", dv_test_dir);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	uint64_t unused = 0;
	for (size_t i = 0; i < runs.n; i++) {
		fprintf(f, "%llu %llu\n", (unsigned long long)runs.v[i].off, (unsigned long long)runs.v[i].len);
		unused += runs.v[i].len;
	}
	fclose(f);
	free(p);
	assert_int_equal(dv_test_sh("diff want.txt got.txt >&2"), 0);
	assert_int_equal(unused + info.used_bytes, info.fs_bytes);
	assert_true(runs.n > 0);

	dv_test_zero_runs("b.img", "b.restored", &runs, 0);
	assert_int_not_equal(dv_test_sh("cmp -s b.img b.restored"), 0); /* the free space did hold old data */
	assert_int_equal(dv_test_sh("btrfs check --readonly b.restored >/dev/null 2>&1"), 0);
	assert_int_equal(dv_test_sh("rm -rf out && mkdir out && btrfs restore b.restored out >/dev/null 2>&1 && "
			    "diff -r b.d out"),
			 0);
	dv_ivl_release(&runs);
	dv_test_img_close(&im);
}

static void test_btrfs_refused(void **state)
{
	(void)state;
	mk_btrfs("r.img", 128);
	/* a flipped byte in the superblock's label: checksum */
	assert_int_equal(dv_test_sh("cp r.img sb.img && printf 'Z' | dd of=sb.img bs=1 seek=$((65536 + 0x12b)) conv=notrunc "
			    "status=none"),
			 0);
	dv_test_expect_refused(dv_usedmap_btrfs, "sb.img", 0, "superblock fails its checksum");
	assert_int_equal(dv_test_sh("cp r.img mag.img && printf 'X' | dd of=mag.img bs=1 seek=$((65536 + 0x40)) conv=notrunc "
			    "status=none"),
			 0);
	dv_test_expect_refused(dv_usedmap_btrfs, "mag.img", 0, "no btrfs magic");
	/* a damaged chunk tree block */
	assert_int_equal(dv_test_sh("cp r.img ct.img && la=$(btrfs inspect-internal dump-super r.img | "
			    "awk '$1 == \"chunk_root\" { print $2 }') && "
			    "pa=$(btrfs inspect-internal dump-tree -t chunk r.img | awk -v la=$la '"
			    "/CHUNK_ITEM/ { s = $0; sub(/.*CHUNK_ITEM /, \"\", s); sub(/\\).*/, \"\", s); lo = s } "
			    "/length/ { for (i = 1; i < NF; i++) if ($i == \"length\") len = $(i + 1) } "
			    "/stripe 0 devid/ { po = $NF; if (la >= lo && la < lo + len) { print po + la - lo; exit } }') && "
			    "[ -n \"$pa\" ] && printf 'ZZZZ' | dd of=ct.img bs=1 seek=$((pa + 200)) conv=notrunc status=none"),
			 0);
	dv_test_expect_refused(dv_usedmap_btrfs, "ct.img", 0, "tree block fails its checksum");
	/* cut short */
	dv_test_expect_refused(dv_usedmap_btrfs, "r.img", 64 * MiB, "larger than its partition");
	/* two devices */
	assert_int_equal(dv_test_sh("truncate -s 128M m1.img m2.img && mkfs.btrfs -q -f m1.img m2.img >/dev/null 2>&1"), 0);
	dv_test_expect_refused(dv_usedmap_btrfs, "m1.img", 0, "several devices");
	/* nothing */
	assert_int_equal(dv_test_sh("head -c 1M /dev/zero >zero.img"), 0);
	dv_test_expect_refused(dv_usedmap_btrfs, "zero.img", 0, "no btrfs magic");
}

int main(void)
{
	if (system("command -v mkfs.btrfs >/dev/null && command -v btrfs >/dev/null") != 0) {
		fprintf(stderr, "skipped: mkfs.btrfs/btrfs (Debian btrfs-progs) are not installed\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_btrfs_map),
		cmocka_unit_test(test_btrfs_refused),
	};
	return cmocka_run_group_tests(tests, dv_test_setup, dv_test_teardown);
}
