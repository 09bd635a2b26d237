/*
 * test_ntfs.c - dv_usedmap_ntfs() on NTFS images made by mkntfs over random
 * data, with files added by ntfscp. The used and free cluster counts must
 * equal what ntfscluster -i reports (its own read of $Bitmap); a copy with
 * every unused range zeroed must pass ntfsfix -n and hold the same files
 * (ntfscat). Dirty, hibernated, truncated and damaged volumes must be
 * refused with the reason. No root and no FUSE needed.
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

#include <ntfs-3g/types.h>
#include <ntfs-3g/layout.h>
#include <ntfs-3g/volume.h>
#include <ntfs-3g/attrib.h>

#include "testutil.h"

/* A number ntfscluster -i prints after "label :". */
static uint64_t ntfscluster_fact(const char *img, const char *label)
{
	char *cmd = dv_asprintf("cd '%s' && ntfscluster -i %s 2>/dev/null | sed -n 's/^%s *: *//p'", dv_test_dir, img,
				label);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	unsigned long long v = 0;
	assert_int_equal(fscanf(p, "%llu", &v), 1);
	pclose(p);
	free(cmd);
	return v;
}

/* Makes NAME: MIB MiB of random data, mkntfs -Q, three files (n.d keeps them). */
static void mk_ntfs(const char *name, int mib)
{
	assert_int_equal(dv_test_sh("rm -rf %s n.d && mkdir n.d && head -c %dM /dev/urandom >%s && "
			    "mkntfs -F -Q -q %s >/dev/null 2>&1 && "
			    "head -c 3000000 /dev/urandom >n.d/a.bin && seq 1 200000 >n.d/b.txt && "
			    "head -c 777 /dev/urandom >n.d/c.bin && "
			    "for f in a.bin b.txt c.bin; do ntfscp -q %s n.d/$f $f || exit 1; done",
			    name, mib, name, name, name),
			 0);
}

static void test_ntfs_map(void **state)
{
	(void)state;
	mk_ntfs("n.img", 64);
	struct dv_test_img im;
	dv_test_img_open(&im, "n.img", 0, 0);
	struct dv_ext_info info;
	struct dv_ivl_list runs = {0};
	char *why = NULL;
	int r = dv_usedmap_ntfs(&im.vol, &info, &runs, &why);
	if (r)
		fprintf(stderr, "why: %s\n", why);
	assert_int_equal(r, 0);
	assert_null(why);
	assert_true(info.opened && info.has_used);

	uint64_t fs_bytes = ntfscluster_fact("n.img", "bytes per volume");
	uint64_t free_bytes = ntfscluster_fact("n.img", "bytes of free space");
	assert_int_equal(info.fs_bytes, fs_bytes);
	assert_int_equal(info.used_bytes, fs_bytes - free_bytes);
	assert_true(info.used_bytes > 3000000);
	uint64_t unused = 0;
	for (size_t i = 0; i < runs.n; i++) {
		assert_true(runs.v[i].off % 4096 == 0 && runs.v[i].len % 4096 == 0);
		assert_true(runs.v[i].off + runs.v[i].len <= fs_bytes);
		assert_true(runs.v[i].off > 0); /* the boot sector's cluster is used */
		unused += runs.v[i].len;
	}
	assert_int_equal(unused, free_bytes);

	dv_test_zero_runs("n.img", "n.restored", &runs, 0);
	assert_int_not_equal(dv_test_sh("cmp -s n.img n.restored"), 0); /* the free space did hold old data */
	assert_int_equal(dv_test_sh("ntfsfix -n n.restored >/dev/null 2>&1"), 0);
	assert_int_equal(dv_test_sh("for f in a.bin b.txt c.bin; do ntfscat n.restored $f | cmp -s - n.d/$f || exit 1; done"),
			 0);
	dv_ivl_release(&runs);
	dv_test_img_close(&im);

	/* inside a partition: the same map, in volume offsets */
	assert_int_equal(dv_test_sh("rm -f p.img && head -c 1M /dev/urandom >p.img && cat n.img >>p.img && "
			    "head -c 1M /dev/urandom >>p.img"),
			 0);
	dv_test_img_open(&im, "p.img", MiB, 64 * MiB);
	assert_int_equal(dv_usedmap_ntfs(&im.vol, &info, &runs, &why), 0);
	assert_int_equal(info.used_bytes, fs_bytes - free_bytes);
	unused = 0;
	for (size_t i = 0; i < runs.n; i++)
		unused += runs.v[i].len;
	assert_int_equal(unused, free_bytes);
	dv_ivl_release(&runs);
	dv_test_img_close(&im);
}

/* A $Bitmap that marks the clusters of $Boot free (the fuzzer made one)
 * must not leave the boot sector out of the image. */
/* Runs dv_usedmap_ntfs on IMG, which must succeed. */
static void map_ok(const char *img, struct dv_ext_info *info, struct dv_ivl_list *runs)
{
	struct dv_test_img im;
	dv_test_img_open(&im, img, 0, 0);
	char *why = NULL;
	assert_int_equal(dv_usedmap_ntfs(&im.vol, info, runs, &why), 0);
	dv_test_img_close(&im);
}

/* A $Bitmap that marks the clusters of $Boot free (the fuzzer made one)
 * must not leave the boot sector out of the image: the map is the same as
 * with the bits set. */
static void test_ntfs_boot_always_used(void **state)
{
	(void)state;
	mk_ntfs("b.img", 32);
	assert_int_equal(ntfscluster_fact("b.img", "bytes per cluster"), 4096);
	struct dv_ext_info before, after;
	struct dv_ivl_list runs0 = {0}, runs1 = {0};
	map_ok("b.img", &before, &runs0);

	char *p = dv_asprintf("%s/b.img", dv_test_dir);
	ntfs_volume *nv = ntfs_mount(p, 0);
	assert_non_null(nv);
	uint8_t first = 0;
	assert_int_equal(ntfs_attr_pread(nv->lcnbmp_na, 0, 1, &first), 1);
	assert_int_equal(first & 3, 3); /* mkntfs marks clusters 0 and 1 used */
	first &= (uint8_t)~3u;
	assert_int_equal(ntfs_attr_pwrite(nv->lcnbmp_na, 0, 1, &first), 1);
	assert_int_equal(ntfs_umount(nv, FALSE), 0);
	nv = ntfs_mount(p, NTFS_MNT_RDONLY);
	assert_non_null(nv);
	assert_int_equal(ntfs_attr_pread(nv->lcnbmp_na, 0, 1, &first), 1);
	assert_int_equal(first & 3, 0); /* the damage is on disk */
	assert_int_equal(ntfs_umount(nv, FALSE), 0);
	free(p);

	map_ok("b.img", &after, &runs1);
	assert_int_equal(after.used_bytes, before.used_bytes);
	assert_int_equal(runs1.n, runs0.n);
	for (size_t i = 0; i < runs1.n; i++) {
		assert_true(runs1.v[i].off >= 8192);
		assert_int_equal(runs1.v[i].off, runs0.v[i].off);
		assert_int_equal(runs1.v[i].len, runs0.v[i].len);
	}
	dv_ivl_release(&runs0);
	dv_ivl_release(&runs1);
}

static void test_ntfs_refused(void **state)
{
	(void)state;
	mk_ntfs("r.img", 32);

	/* marked dirty (what Windows leaves after a crash, or for chkdsk) */
	assert_int_equal(dv_test_sh("cp r.img dirty.img"), 0);
	char *p = dv_asprintf("%s/dirty.img", dv_test_dir);
	ntfs_volume *nv = ntfs_mount(p, 0);
	assert_non_null(nv);
	assert_int_equal(ntfs_volume_write_flags(nv, nv->flags | VOLUME_IS_DIRTY), 0);
	assert_int_equal(ntfs_umount(nv, FALSE), 0);
	free(p);
	dv_test_expect_refused(dv_usedmap_ntfs, "dirty.img", 0, "marked dirty");

	/* hibernated Windows: hiberfil.sys starts with "hibr" */
	assert_int_equal(dv_test_sh("cp r.img hib.img && { printf 'hibr'; head -c 8188 /dev/zero; } >hiberfil.sys && "
			    "ntfscp -q hib.img hiberfil.sys hiberfil.sys"),
			 0);
	dv_test_expect_refused(dv_usedmap_ntfs, "hib.img", 0, "hibernated");
	/* the same file, no longer hibernated: mapped */
	assert_int_equal(dv_test_sh("cp r.img hib0.img && head -c 8192 /dev/zero >hiberfil.sys && "
			    "ntfscp -q hib0.img hiberfil.sys hiberfil.sys"),
			 0);
	struct dv_test_img im;
	dv_test_img_open(&im, "hib0.img", 0, 0);
	struct dv_ext_info info;
	struct dv_ivl_list runs = {0};
	char *why = NULL;
	assert_int_equal(dv_usedmap_ntfs(&im.vol, &info, &runs, &why), 0);
	dv_ivl_release(&runs);
	dv_test_img_close(&im);

	/* a partition smaller than the filesystem */
	dv_test_expect_refused(dv_usedmap_ntfs, "r.img", 16 * MiB, "larger than its partition");
	/* no NTFS boot sector; a damaged $MFT */
	assert_int_equal(dv_test_sh("cp r.img bad.img && printf 'XXXXXXXX' | dd of=bad.img bs=1 seek=3 conv=notrunc "
			    "status=none"),
			 0);
	dv_test_expect_refused(dv_usedmap_ntfs, "bad.img", 0, "libntfs-3g cannot mount it");
	assert_int_equal(dv_test_sh("cp r.img mft.img && lcn=$(ntfsinfo -m mft.img 2>/dev/null | "
			    "sed -n 's/.*LCN of Data Attribute for FILE_MFT: //p') && "
			    "head -c 16384 /dev/urandom | dd of=mft.img bs=4096 seek=$lcn conv=notrunc status=none"),
			 0);
	dv_test_expect_refused(dv_usedmap_ntfs, "mft.img", 0, "libntfs-3g cannot mount it");
	/* an empty volume */
	assert_int_equal(dv_test_sh("head -c 4096 /dev/zero >zero.img"), 0);
	dv_test_expect_refused(dv_usedmap_ntfs, "zero.img", 0, "libntfs-3g cannot mount it");
}

int main(void)
{
	if (system("command -v mkntfs >/dev/null && command -v ntfscluster >/dev/null") != 0) {
		fprintf(stderr, "skipped: mkntfs/ntfscluster (Debian ntfs-3g) are not installed\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ntfs_map),
		cmocka_unit_test(test_ntfs_boot_always_used),
		cmocka_unit_test(test_ntfs_refused),
	};
	return cmocka_run_group_tests(tests, dv_test_setup, dv_test_teardown);
}
