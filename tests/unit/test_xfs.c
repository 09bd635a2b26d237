/* The XFS used-block parser (src/disk/xfs.c) on images made by mkfs.xfs in
 * a mkdtemp directory: its free extents must equal, one for one, those of
 * `xfs_db -r -c 'freesp -d'` less the AGFL blocks (xfs_db counts the free
 * list as free; diskvault keeps it, as the free-space btrees own it). Bad
 * magic, a wrong AGF CRC, an unknown incompat flag and a dirty log must
 * each give "read whole" with a reason. Needs xfsprogs; the fragmented and
 * the shut-down images need root (a loop mount) and are skipped without. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk/probe_internal.h"

static char dir[64];

static void sh(const char *fmt, ...) DV_PRINTF(1, 2);
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int r = system(cmd);
	if (r != 0)
		fail_msg("command failed (%d): %s", r, cmd);
}

static char *capture(const char *fmt, ...) DV_PRINTF(1, 2);
static char *capture(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t cap = 1 << 16, n = 0;
	char *out = malloc(cap);
	for (size_t k; (k = fread(out + n, 1, cap - n - 1, p)) > 0;) {
		n += k;
		if (n + 1 == cap)
			out = realloc(out, cap *= 2);
	}
	out[n] = 0;
	assert_int_equal(pclose(p), 0);
	return out;
}

/* Runs the parser over the whole file name (in dir). */
static int run(const char *name, struct dv_ext_info *info, struct dv_ivl_list *unused, char **why)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	struct dv_source src;
	struct dv_err e;
	assert_int_equal(dv_source_open(path, &src, &e), 0);
	struct dv_vol v;
	dv_vol_range(&v, &src, 0, src.size, "%s", name);
	int r = dv_usedmap_xfs(&v, info, unused, why);
	dv_vol_release(&v);
	dv_source_close(&src);
	return r;
}

static uint64_t xdb_num(const char *name, const char *cmds, const char *field)
{
	char *out = capture("xfs_db -r %s -c 'p %s' %s/%s", cmds, field, dir, name);
	unsigned long long v = 0;
	char *eq = strchr(out, '=');
	assert_non_null(eq);
	v = strtoull(eq + 1, NULL, 0);
	free(out);
	return v;
}

/* The free extents xfs_db reports, less the AGFL's blocks, in bytes, and
 * compares them one for one with what the parser found. */
static void expect_same_as_xfs_db(const char *name)
{
	struct dv_ext_info info;
	struct dv_ivl_list got = {0};
	char *why = NULL;
	int r = run(name, &info, &got, &why);
	if (r)
		fail_msg("%s: read whole: %s", name, why);
	uint64_t bs = xdb_num(name, "-c 'sb 0'", "blocksize"), agb = xdb_num(name, "-c 'sb 0'", "agblocks");
	uint64_t agc = xdb_num(name, "-c 'sb 0'", "agcount"), dblocks = xdb_num(name, "-c 'sb 0'", "dblocks");
	/* AGFL blocks per AG */
	struct dv_ivl_list agfl = {0};
	for (uint64_t ag = 0; ag < agc; ag++) {
		char *out = capture("xfs_db -r -c 'agfl %llu' -c 'p bno' %s/%s", (unsigned long long)ag, dir, name);
		char *p = strchr(out, '=');
		assert_non_null(p);
		for (p++; *p;) {
			unsigned long i, b;
			int used = 0;
			if (sscanf(p, " %lu:%lu%n", &i, &b, &used) == 2)
				dv_ivl_add(&agfl, (ag * agb + b) * bs, bs);
			char *sp = strchr(p + 1, ' ');
			if (!sp)
				break;
			p = sp;
		}
		free(out);
	}
	char *out = capture("xfs_db -r -c 'freesp -d' %s/%s", dir, name);
	struct dv_ivl_list want = {0};
	uint64_t free_blocks = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long long ag, bno, len;
		char extra;
		if (sscanf(line, " %llu %llu %llu %c", &ag, &bno, &len, &extra) != 3)
			continue;
		uint64_t off = (ag * agb + bno) * bs;
		bool is_agfl = false;
		for (size_t i = 0; len == 1 && i < agfl.n; i++)
			is_agfl |= agfl.v[i].off == off;
		if (is_agfl)
			continue;
		dv_ivl_add(&want, off, len * bs);
		free_blocks += len;
	}
	free(out);
	assert_true(want.n > 0);
	if (got.n != want.n)
		fail_msg("%s: %zu free extents, xfs_db says %zu", name, got.n, want.n);
	for (size_t i = 0; i < want.n; i++)
		if (got.v[i].off != want.v[i].off || got.v[i].len != want.v[i].len)
			fail_msg("%s: extent %zu is %llu+%llu, xfs_db says %llu+%llu", name, i,
				 (unsigned long long)got.v[i].off, (unsigned long long)got.v[i].len,
				 (unsigned long long)want.v[i].off, (unsigned long long)want.v[i].len);
	assert_true(info.opened && info.has_used && !info.needs_recovery);
	assert_int_equal(info.fs_bytes, dblocks * bs);
	assert_int_equal(info.used_bytes, (dblocks - free_blocks) * bs);
	dv_ivl_release(&got);
	dv_ivl_release(&want);
	dv_ivl_release(&agfl);
}

/* A tree of files for mkfs.xfs -p: sizes 0..200 KiB, 3 directories. */
static void protofile(void)
{
	sh("cd %s && mkdir -p src && for i in $(seq 1 60); do head -c $((i * 3433 %% 200000)) /dev/urandom "
	   ">src/f$i; done && { echo /dev/null; echo 0 0; echo 'd--755 0 0'; "
	   "for d in a b c; do echo \" $d d--755 0 0\"; for i in $(seq 1 20); do n=$(( (i - 1) * 3 + 1 )); "
	   "echo \"  f$i ---644 0 0 %s/src/f$((n + $(printf %%d \"'$d\") %% 3))\"; done; echo ' $'; done; "
	   "echo '$'; } >proto",
	   dir, dir);
}

static void mkfs(const char *name, const char *size, const char *opts)
{
	sh("cd %s && rm -f %s && truncate -s %s %s && mkfs.xfs -q -f %s -p proto %s 2>/dev/null", dir, name, size, name, opts,
	   name);
}

static void expect_whole(const char *name, const char *reason_part, bool recovery)
{
	struct dv_ext_info info;
	struct dv_ivl_list got = {0};
	char *why = NULL;
	assert_int_equal(run(name, &info, &got, &why), -1);
	assert_int_equal(got.n, 0);
	assert_non_null(why);
	if (!strstr(why, reason_part))
		fail_msg("%s: reason \"%s\" lacks \"%s\"", name, why, reason_part);
	assert_int_equal(info.needs_recovery, recovery);
	free(why);
	dv_ivl_release(&got);
}

static void test_crc32c(void **state)
{
	(void)state;
	assert_int_equal(dv_xfs_crc32c("123456789", 9), 0xe3069283u);
	assert_int_equal(dv_xfs_crc32c("", 0), 0);
}

static void test_v5(void **state)
{
	(void)state;
	mkfs("v5.img", "320M", "");
	expect_same_as_xfs_db("v5.img");
	mkfs("v5b.img", "1G", "-d agcount=7 -s size=4096");
	expect_same_as_xfs_db("v5b.img");
}

static void test_v4(void **state)
{
	(void)state;
	mkfs("v4.img", "320M", "-m crc=0 -b size=512 2>/dev/null");
	expect_same_as_xfs_db("v4.img");
}

/* Writes a byte at off of name (in dir). */
static void poke(const char *name, uint64_t off, uint8_t b)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static void test_bad(void **state)
{
	(void)state;
	mkfs("bad.img", "320M", "");
	uint64_t bs = xdb_num("bad.img", "-c 'sb 0'", "blocksize"), agb = xdb_num("bad.img", "-c 'sb 0'", "agblocks");
	sh("cd %s && cp bad.img magic.img && cp bad.img agfcrc.img && cp bad.img incompat.img && cp bad.img log.img",
	   dir);
	poke("magic.img", 0, 'Y');
	expect_whole("magic.img", "no XFSB magic", false);
	/* AGF of AG 1, sector 1 of the AG: flip a byte of its freeblks */
	poke("agfcrc.img", agb * bs + 512 + 53, 0x5a);
	expect_whole("agfcrc.img", "AGF of allocation group 1 has a wrong CRC", false);
	/* an incompat bit no XFS has yet, with a correct superblock CRC */
	sh("xfs_db -x -c 'sb 0' -c 'write -d features_incompat 0x80000003' %s/incompat.img >/dev/null 2>&1", dir);
	assert_int_equal(xdb_num("incompat.img", "-c 'sb 0'", "features_incompat"), 0x80000003);
	expect_whole("incompat.img", "unknown incompatible feature", false);
	/* the unmount record's op flags cleared: a log that needs recovery */
	uint64_t logstart = xdb_num("log.img", "-c 'sb 0'", "logstart");
	uint64_t agblklog = xdb_num("log.img", "-c 'sb 0'", "agblklog");
	uint64_t lblk = (logstart >> agblklog) * agb + (logstart & ((1ull << agblklog) - 1));
	poke("log.img", lblk * bs + 512 + 9, 0);
	expect_whole("log.img", "unmount record", true);
	/* a btree block: flip a record byte of AG 2's bnobt root */
	uint64_t root = xdb_num("bad.img", "-c 'agf 2'", "bnoroot");
	poke("bad.img", (2 * agb + root) * bs + 60, 0x77);
	expect_whole("bad.img", "wrong CRC", false);
	/* not XFS at all */
	sh("cd %s && head -c 1048576 /dev/zero >zero.img", dir);
	expect_whole("zero.img", "no XFSB magic", false);
}

/* As root: a loop mount, thousands of small files, every other one
 * deleted (a multi-level free-space btree), then a clean unmount; a log
 * with a stripe unit, cleanly unmounted; then a shutdown without log flush
 * (a dirty log). */
static void test_mounted(void **state)
{
	(void)state;
	if (geteuid() != 0 || system("grep -qw xfs /proc/filesystems") != 0) {
		print_message("skipped: needs root and a kernel with xfs\n");
		return;
	}
	mkfs("frag.img", "320M", "-b size=1024");
	sh("cd %s && mkdir -p m && mount -o loop frag.img m && for i in $(seq 1 3000); do head -c 3000 /dev/zero "
	   ">m/f$i; done && sync && rm -f m/f*[02468] && umount m",
	   dir);
	assert_true(xdb_num("frag.img", "-c 'agf 0'", "bnolevel") >= 2);
	expect_same_as_xfs_db("frag.img");
	/* a log stripe unit: records padded to 32 KiB */
	mkfs("su.img", "320M", "-l su=32k");
	sh("cd %s && mount -o loop su.img m && cp -r src m/ && umount m", dir);
	expect_same_as_xfs_db("su.img");
	sh("cd %s && mount -o loop frag.img m && echo x >m/new && sync && xfs_io -x -c 'shutdown' m && umount m", dir);
	expect_whole("frag.img", "unmount record", true);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/dv-xfs-XXXXXX");
	assert_non_null(mkdtemp(dir));
	protofile();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sh("umount %s/m 2>/dev/null; rm -rf %s", dir, dir);
	return 0;
}

int main(void)
{
	if (system("command -v mkfs.xfs >/dev/null && command -v xfs_db >/dev/null") != 0) {
		fprintf(stderr, "xfsprogs is not installed (scripts/deps.sh test)\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c), cmocka_unit_test(test_v5), cmocka_unit_test(test_v4),
		cmocka_unit_test(test_bad), cmocka_unit_test(test_mounted),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
