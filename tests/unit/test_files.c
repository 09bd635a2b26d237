/* File specs (src/files/files.c): splitting "SNAPSHOT[:VOLUME][/PATH]",
 * resolving the rest against a snapshot's volumes (default volume,
 * names, the longest LV name, ':' or '/' after it, unknown names listing
 * those there are), the mode string and name escaping of ls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "files/files.h"

static void split(void **state)
{
	(void)state;
	char snap[80];
	const char *rest;
	struct dv_err err;
	assert_int_equal(dv_files_split_spec("latest:/etc", snap, sizeof snap, &rest, &err), 0);
	assert_string_equal(snap, "latest");
	assert_string_equal(rest, "/etc");
	assert_int_equal(dv_files_split_spec("3fa2/etc/x", snap, sizeof snap, &rest, &err), 0);
	assert_string_equal(snap, "3fa2");
	assert_string_equal(rest, "/etc/x");
	assert_int_equal(dv_files_split_spec("3fa2:centos/root:/var", snap, sizeof snap, &rest, &err), 0);
	assert_string_equal(snap, "3fa2");
	assert_string_equal(rest, "centos/root:/var");
	assert_int_equal(dv_files_split_spec("latest", snap, sizeof snap, &rest, &err), 0);
	assert_string_equal(rest, "");
	assert_int_equal(dv_files_split_spec(":/etc", snap, sizeof snap, &rest, &err), -DV_E_USAGE);
	assert_int_equal(dv_files_split_spec("/etc", snap, sizeof snap, &rest, &err), -DV_E_USAGE);
	assert_int_equal(dv_files_split_spec("0123456789:/", snap, 8, &rest, &err), -DV_E_USAGE);
}

/* disk0, p1 (vfat), p2 (ext4, the OS), p3 (LVM2_member), vg/root, vg/root2 (ext4) */
static struct dv_layout_vol vv[6];
static struct dv_layout_vols vols = {vv, 6, 6, NULL, 0};

static void mk(int i, const char *name, const char *fs, uint64_t size, bool os)
{
	memset(&vv[i], 0, sizeof vv[i]);
	snprintf(vv[i].name, sizeof vv[i].name, "%s", name);
	snprintf(vv[i].fstype, sizeof vv[i].fstype, "%s", fs);
	vv[i].vol.size = size;
	vv[i].has_os = os;
}

static int setup(void **state)
{
	(void)state;
	mk(0, "disk0", "", 1000, false);
	mk(1, "p1", "vfat", 10, false);
	mk(2, "p2", "ext4", 100, true);
	mk(3, "p3", "LVM2_member", 500, false);
	mk(4, "vg/root", "ext4", 200, false);
	mk(5, "vg/root2", "xfs", 300, false);
	return 0;
}

static void resolve_ok(const char *rest, const char *vol, const char *path)
{
	const struct dv_layout_vol *v = NULL;
	char p[256];
	struct dv_err err;
	dv_err_clear(&err);
	int rc = dv_files_resolve(&vols, rest, &v, p, sizeof p, &err);
	if (rc)
		fail_msg("'%s': %s", rest, err.msg);
	assert_string_equal(v->name, vol);
	assert_string_equal(p, path);
}

static void resolve(void **state)
{
	(void)state;
	resolve_ok("", "p2", "/");
	resolve_ok("/", "p2", "/");
	resolve_ok("/etc/nginx", "p2", "/etc/nginx");
	resolve_ok("p1", "p1", "/");
	resolve_ok("p1/EFI/boot", "p1", "/EFI/boot");
	resolve_ok("p1:/EFI", "p1", "/EFI");
	resolve_ok("p1:", "p1", "/");
	resolve_ok("vg/root", "vg/root", "/");
	resolve_ok("vg/root/etc", "vg/root", "/etc");
	resolve_ok("vg/root2/etc", "vg/root2", "/etc");   /* longest name, not vg/root + "2/etc" */
	resolve_ok("vg/root2:/etc", "vg/root2", "/etc");
	resolve_ok("disk0", "disk0", "/");

	const struct dv_layout_vol *v;
	char p[256];
	struct dv_err err;
	assert_int_equal(dv_files_resolve(&vols, "p7/etc", &v, p, sizeof p, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "no volume p7"));
	assert_non_null(strstr(err.msg, "p1, p2, p3, vg/root, vg/root2"));
	assert_int_equal(dv_files_resolve(&vols, "etc", &v, p, sizeof p, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "starts with '/'"));
	assert_int_equal(dv_files_resolve(&vols, "vg/ro/etc", &v, p, sizeof p, &err), -DV_E_USAGE);
	assert_int_equal(dv_files_resolve(&vols, "p1:etc", &v, p, sizeof p, &err), -DV_E_USAGE);
	assert_int_equal(dv_files_resolve(&vols, "p1/etc", &v, p, 4, &err), -DV_E_USAGE);  /* too long */

	/* no OS: the largest filesystem that is not a container */
	vv[2].has_os = false;
	resolve_ok("/x", "vg/root2", "/x");
	vv[2].has_os = true;
	/* a volume that cannot be assembled says why */
	char *sk[] = {"vg/gone: a PV is on no disk of the snapshot"};
	struct dv_layout_vols v2 = vols;
	v2.skipped = sk;
	v2.nskipped = 1;
	assert_int_equal(dv_files_resolve(&v2, "vg/gone/etc", &v, p, sizeof p, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "vg/gone cannot be assembled"));
	/* nothing to default to */
	struct dv_layout_vols none = {vv, 1, 1, NULL, 0};
	assert_int_equal(dv_files_resolve(&none, "/etc", &v, p, sizeof p, &err), -DV_E_USAGE);
}

static void ls_strings(void **state)
{
	(void)state;
	char m[11];
	dv_files_mode_string(S_IFDIR | 0755, m);
	assert_string_equal(m, "drwxr-xr-x");
	dv_files_mode_string(S_IFREG | 04755, m);
	assert_string_equal(m, "-rwsr-xr-x");
	dv_files_mode_string(S_IFREG | 02640, m);
	assert_string_equal(m, "-rw-r-S---");
	dv_files_mode_string(S_IFDIR | 01777, m);
	assert_string_equal(m, "drwxrwxrwt");
	dv_files_mode_string(S_IFLNK | 0777, m);
	assert_string_equal(m, "lrwxrwxrwx");
	char e[64];
	dv_files_escape("a b\nc\\d\xff", 8, e, sizeof e);
	assert_string_equal(e, "a b\\012c\\\\d\\377");
	dv_files_escape("abcdefgh", 8, e, 6);  /* cut, terminated */
	assert_true(strlen(e) < 6);

	struct dv_files_entry en = {.name = "ln", .name_len = 2, .target = "../etc/hosts"};
	en.st.mode = S_IFLNK | 0777;
	en.st.nlink = 1;
	en.st.uid = 1234;
	en.st.gid = 5678;
	en.st.size = 12;
	en.st.mtime = 0;
	char line[256];
	setenv("TZ", "UTC", 1);
	dv_files_long_line(&en, line, sizeof line);
	assert_string_equal(line, "lrwxrwxrwx 1 1234 5678 12 1970-01-01 00:00 ln -> ../etc/hosts");
	json_t *j = dv_files_entry_json(&en);
	assert_string_equal(json_string_value(json_object_get(j, "type")), "symlink");
	assert_string_equal(json_string_value(json_object_get(j, "target")), "../etc/hosts");
	assert_int_equal(json_integer_value(json_object_get(j, "mode")), 0777);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(split),
		cmocka_unit_test_setup(resolve, setup),
		cmocka_unit_test(ls_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
