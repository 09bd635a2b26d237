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

#include "disk/probe_internal.h"

#define MiB (1024ULL * 1024)

static char tmpdir[] = "/tmp/dv-test-ntfs-XXXXXX";

static int sh(const char *fmt, ...) DV_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *cmd = NULL;
	assert_true(vasprintf(&cmd, fmt, ap) >= 0);
	va_end(ap);
	char *full = dv_asprintf("cd '%s' && %s", tmpdir, cmd);
	char *q = dv_asprintf("bash -c \"$(cat <<'DV_EOF'\n%s\nDV_EOF\n)\"", full);
	int r = system(q);
	free(q);
	free(full);
	free(cmd);
	return r;
}

/* A number ntfscluster -i prints after "label :". */
static uint64_t ntfscluster_fact(const char *img, const char *label)
{
	char *cmd = dv_asprintf("cd '%s' && ntfscluster -i %s 2>/dev/null | sed -n 's/^%s *: *//p'", tmpdir, img,
				label);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	unsigned long long v = 0;
	assert_int_equal(fscanf(p, "%llu", &v), 1);
	pclose(p);
	free(cmd);
	return v;
}

struct img {
	struct dv_source src;
	struct dv_vol vol;
	int fd;
};

/* Opens tmpdir/name as a volume of len bytes at off (len 0: to the end). */
static void img_open(struct img *im, const char *name, uint64_t off, uint64_t len)
{
	char *p = dv_asprintf("%s/%s", tmpdir, name);
	im->fd = open(p, O_RDONLY);
	assert_true(im->fd >= 0);
	off_t size = lseek(im->fd, 0, SEEK_END);
	memset(&im->src, 0, sizeof im->src);
	im->src.fd = im->fd;
	im->src.path = p;
	im->src.size = (uint64_t)size;
	im->src.sector_size = 512;
	dv_vol_range(&im->vol, &im->src, off, len ? len : (uint64_t)size - off, "partition 1");
}

static void img_close(struct img *im)
{
	dv_vol_release(&im->vol);
	close(im->fd);
	free((char *)im->src.path);
}

/* Makes NAME: MIB MiB of random data, mkntfs -Q, three files (n.d keeps them). */
static void mk_ntfs(const char *name, int mib)
{
	assert_int_equal(sh("rm -rf %s n.d && mkdir n.d && head -c %dM /dev/urandom >%s && "
			    "mkntfs -F -Q -q %s >/dev/null 2>&1 && "
			    "head -c 3000000 /dev/urandom >n.d/a.bin && seq 1 200000 >n.d/b.txt && "
			    "head -c 777 /dev/urandom >n.d/c.bin && "
			    "for f in a.bin b.txt c.bin; do ntfscp -q %s n.d/$f $f || exit 1; done",
			    name, mib, name, name, name),
			 0);
}

static void zero_runs(const char *from, const char *to, const struct dv_ivl_list *runs, uint64_t base)
{
	assert_int_equal(sh("cp %s %s", from, to), 0);
	char *p = dv_asprintf("%s/%s", tmpdir, to);
	int fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	static const uint8_t zeros[65536];
	for (size_t i = 0; i < runs->n; i++)
		for (uint64_t o = 0; o < runs->v[i].len;) {
			size_t n = (size_t)DV_MIN(runs->v[i].len - o, sizeof zeros);
			assert_int_equal(pwrite(fd, zeros, n, (off_t)(base + runs->v[i].off + o)), (ssize_t)n);
			o += n;
		}
	close(fd);
	free(p);
}

static void test_ntfs_map(void **state)
{
	(void)state;
	mk_ntfs("n.img", 64);
	struct img im;
	img_open(&im, "n.img", 0, 0);
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

	zero_runs("n.img", "n.restored", &runs, 0);
	assert_int_not_equal(sh("cmp -s n.img n.restored"), 0); /* the free space did hold old data */
	assert_int_equal(sh("ntfsfix -n n.restored >/dev/null 2>&1"), 0);
	assert_int_equal(sh("for f in a.bin b.txt c.bin; do ntfscat n.restored $f | cmp -s - n.d/$f || exit 1; done"),
			 0);
	dv_ivl_release(&runs);
	img_close(&im);

	/* inside a partition: the same map, in volume offsets */
	assert_int_equal(sh("rm -f p.img && head -c 1M /dev/urandom >p.img && cat n.img >>p.img && "
			    "head -c 1M /dev/urandom >>p.img"),
			 0);
	img_open(&im, "p.img", MiB, 64 * MiB);
	assert_int_equal(dv_usedmap_ntfs(&im.vol, &info, &runs, &why), 0);
	assert_int_equal(info.used_bytes, fs_bytes - free_bytes);
	unused = 0;
	for (size_t i = 0; i < runs.n; i++)
		unused += runs.v[i].len;
	assert_int_equal(unused, free_bytes);
	dv_ivl_release(&runs);
	img_close(&im);
}

/* Expects name (len bytes at 0; 0 = all) to be refused with a reason holding want. */
static void expect_refused(const char *name, uint64_t len, const char *want)
{
	struct img im;
	img_open(&im, name, 0, len);
	struct dv_ext_info info;
	struct dv_ivl_list runs = {0};
	char *why = NULL;
	assert_int_equal(dv_usedmap_ntfs(&im.vol, &info, &runs, &why), -1);
	assert_non_null(why);
	print_message("%s: %s\n", name, why);
	if (!strstr(why, want))
		fail_msg("reason \"%s\" lacks \"%s\"", why, want);
	assert_int_equal(runs.n, 0);
	assert_false(info.has_used);
	free(why);
	img_close(&im);
}

static void test_ntfs_refused(void **state)
{
	(void)state;
	mk_ntfs("r.img", 32);

	/* marked dirty (what Windows leaves after a crash, or for chkdsk) */
	assert_int_equal(sh("cp r.img dirty.img"), 0);
	char *p = dv_asprintf("%s/dirty.img", tmpdir);
	ntfs_volume *nv = ntfs_mount(p, 0);
	assert_non_null(nv);
	assert_int_equal(ntfs_volume_write_flags(nv, nv->flags | VOLUME_IS_DIRTY), 0);
	assert_int_equal(ntfs_umount(nv, FALSE), 0);
	free(p);
	expect_refused("dirty.img", 0, "marked dirty");

	/* hibernated Windows: hiberfil.sys starts with "hibr" */
	assert_int_equal(sh("cp r.img hib.img && { printf 'hibr'; head -c 8188 /dev/zero; } >hiberfil.sys && "
			    "ntfscp -q hib.img hiberfil.sys hiberfil.sys"),
			 0);
	expect_refused("hib.img", 0, "hibernated");
	/* the same file, no longer hibernated: mapped */
	assert_int_equal(sh("cp r.img hib0.img && head -c 8192 /dev/zero >hiberfil.sys && "
			    "ntfscp -q hib0.img hiberfil.sys hiberfil.sys"),
			 0);
	struct img im;
	img_open(&im, "hib0.img", 0, 0);
	struct dv_ext_info info;
	struct dv_ivl_list runs = {0};
	char *why = NULL;
	assert_int_equal(dv_usedmap_ntfs(&im.vol, &info, &runs, &why), 0);
	dv_ivl_release(&runs);
	img_close(&im);

	/* a partition smaller than the filesystem */
	expect_refused("r.img", 16 * MiB, "larger than its partition");
	/* no NTFS boot sector; a damaged $MFT */
	assert_int_equal(sh("cp r.img bad.img && printf 'XXXXXXXX' | dd of=bad.img bs=1 seek=3 conv=notrunc "
			    "status=none"),
			 0);
	expect_refused("bad.img", 0, "libntfs-3g cannot mount it");
	assert_int_equal(sh("cp r.img mft.img && lcn=$(ntfsinfo -m mft.img 2>/dev/null | "
			    "sed -n 's/.*LCN of Data Attribute for FILE_MFT: //p') && "
			    "head -c 16384 /dev/urandom | dd of=mft.img bs=4096 seek=$lcn conv=notrunc status=none"),
			 0);
	expect_refused("mft.img", 0, "libntfs-3g cannot mount it");
	/* an empty volume */
	assert_int_equal(sh("head -c 4096 /dev/zero >zero.img"), 0);
	expect_refused("zero.img", 0, "libntfs-3g cannot mount it");
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return sh("cd / && rm -rf '%s'", tmpdir);
}

int main(void)
{
	if (system("command -v mkntfs >/dev/null && command -v ntfscluster >/dev/null") != 0) {
		fprintf(stderr, "skipped: mkntfs/ntfscluster (Debian ntfs-3g) are not installed\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ntfs_map),
		cmocka_unit_test(test_ntfs_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
