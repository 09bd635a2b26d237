/* The cloud module without servers: EBS block selection, the launch
 * decisions (architecture, boot mode, Nitro drivers), the EC2 form setter,
 * and the one lineage rule that ebs-import and prune share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/cloud.h"
#include "repo/ebs_state.h"
#include "repo/repo.h"

/* ---- block selection ---------------------------------------------------- */

static void entry(uint8_t e[DV_EBS_SIG_ENTRY], uint8_t fill, uint8_t flags)
{
	memset(e, fill, DV_EBS_SIG_ENTRY - 1);
	e[DV_EBS_SIG_ENTRY - 1] = flags;
}

static void test_block_want_no_parent(void **state)
{
	(void)state;
	uint8_t e[DV_EBS_SIG_ENTRY];
	bool same = true;
	entry(e, 0xaa, 0);
	assert_int_equal(dv_cloud_block_want(true, e, NULL, &same), DV_WANT_DATA);
	assert_false(same);
	assert_int_equal(dv_cloud_block_want(false, e, NULL, &same), DV_WANT_SKIP);
	assert_false(same);
}

static void test_block_want_parent(void **state)
{
	(void)state;
	uint8_t e[DV_EBS_SIG_ENTRY], p[DV_EBS_SIG_ENTRY];
	bool same;
	/* same signature as the parent: skipped, the parent's flag carried over */
	entry(e, 0x11, 0);
	entry(p, 0x11, DV_EBS_SIG_PRESENT);
	assert_int_equal(dv_cloud_block_want(true, e, p, &same), DV_WANT_SKIP);
	assert_true(same);
	assert_int_equal(e[DV_EBS_SIG_ENTRY - 1], DV_EBS_SIG_PRESENT);
	entry(e, 0x11, DV_EBS_SIG_PRESENT);
	entry(p, 0x11, 0);
	assert_int_equal(dv_cloud_block_want(true, e, p, &same), DV_WANT_SKIP);
	assert_true(same);
	assert_int_equal(e[DV_EBS_SIG_ENTRY - 1], 0);
	/* changed, over a block the parent holds data in */
	entry(e, 0x22, 0);
	entry(p, 0x11, DV_EBS_SIG_PRESENT);
	assert_int_equal(dv_cloud_block_want(true, e, p, &same), DV_WANT_DATA_P);
	assert_false(same);
	/* now zero or unused where the parent has data: zeros must be written */
	assert_int_equal(dv_cloud_block_want(false, e, p, &same), DV_WANT_ZERO);
	/* changed over a block the parent left empty */
	entry(p, 0x11, 0);
	assert_int_equal(dv_cloud_block_want(true, e, p, &same), DV_WANT_DATA);
	assert_int_equal(dv_cloud_block_want(false, e, p, &same), DV_WANT_SKIP);
	assert_false(same);
	/* one differing byte of the 15 is a change; the flags byte is not */
	entry(e, 0x33, 0);
	entry(p, 0x33, DV_EBS_SIG_PRESENT);
	e[14] ^= 1;
	assert_int_equal(dv_cloud_block_want(true, e, p, &same), DV_WANT_DATA_P);
}

static void test_block_flags(void **state)
{
	(void)state;
	assert_int_equal(dv_cloud_block_flags(DV_WANT_DATA, true), DV_EBS_SIG_PRESENT);
	assert_int_equal(dv_cloud_block_flags(DV_WANT_DATA_P, true), DV_EBS_SIG_PRESENT);
	/* a data block found all zero was not written: nothing there */
	assert_int_equal(dv_cloud_block_flags(DV_WANT_DATA, false), 0);
	/* zeros written over the parent's data: nothing non-zero left */
	assert_int_equal(dv_cloud_block_flags(DV_WANT_ZERO, true), 0);
	/* equal to the parent's bytes: the parent's data is there */
	assert_int_equal(dv_cloud_block_flags(DV_WANT_SAME, false), DV_EBS_SIG_PRESENT);
}

/* ---- launch decisions --------------------------------------------------- */

/* A manifest whose disk 0 has boot mode boot, OS architecture arch (NULL:
 * none recorded) and, with nvme/ena >= -1, nitro_drivers (2: not recorded). */
static json_t *manifest(const char *boot, const char *arch, int nvme, int ena)
{
	json_t *os = json_object();
	if (arch)
		json_object_set_new(os, "architecture", json_string(arch));
	if (nvme < 2) {
		json_t *n = json_pack("{s:s, s:s}", "kernel", "6.1.0-test", "initramfs", "/boot/initrd.img-6.1.0-test");
		json_object_set_new(n, "nvme", nvme < 0 ? json_null() : json_boolean(nvme));
		json_object_set_new(n, "ena", ena < 0 ? json_null() : json_boolean(ena));
		json_object_set_new(os, "nitro_drivers", n);
	}
	return json_pack("{s:s, s:[{s:s, s:{s:s, s:o}}]}", "host", "h1", "disks", "source", "/dev/sda", "layout",
			 "boot_mode", boot, "os", os);
}

static bool has_warning(const struct dv_cloud_decision *d, const char *needle)
{
	for (size_t i = 0; i < d->w.n; i++)
		if (strstr(d->w.v[i], needle))
			return true;
	return false;
}

static void test_decide_from_disk(void **state)
{
	(void)state;
	struct dv_cloud_decision d;
	struct dv_err err;
	json_t *m = manifest("uefi+bios", "x86_64", 1, 1);
	assert_int_equal(dv_cloud_launch_decide(m, 0, NULL, DV_ARCH_UNKNOWN, NULL, &d, &err), 0);
	assert_int_equal(d.arch, DV_ARCH_X86_64);
	assert_string_equal(d.arch_from, "the installed OS");
	assert_string_equal(d.boot, "uefi+bios");
	assert_string_equal(d.ec2_boot, "uefi-preferred");
	assert_int_equal(d.w.n, 0);
	json_decref(m);

	m = manifest("bios", "x86_64", 1, 1);
	assert_int_equal(dv_cloud_launch_decide(m, 0, NULL, DV_ARCH_UNKNOWN, NULL, &d, &err), 0);
	assert_string_equal(d.ec2_boot, "legacy-bios");
	/* --boot-mode wins over the probe */
	assert_int_equal(dv_cloud_launch_decide(m, 0, NULL, DV_ARCH_UNKNOWN, "uefi", &d, &err), 0);
	assert_string_equal(d.boot, "uefi");
	assert_string_equal(d.ec2_boot, "uefi");
	json_decref(m);
}

static void test_decide_arm64(void **state)
{
	(void)state;
	struct dv_cloud_decision d;
	struct dv_err err;
	/* Graviton boots UEFI only: a BIOS-only disk is warned about */
	json_t *m = manifest("bios", "arm64", 1, 1);
	assert_int_equal(dv_cloud_launch_decide(m, 0, NULL, DV_ARCH_UNKNOWN, NULL, &d, &err), 0);
	assert_int_equal(d.arch, DV_ARCH_ARM64);
	assert_string_equal(d.ec2_boot, "uefi");
	assert_int_equal(d.w.n, 1);
	assert_true(has_warning(&d, "Graviton (arm64) instances boot only UEFI"));
	json_decref(m);
}

static void test_decide_arch_conflicts(void **state)
{
	(void)state;
	struct dv_cloud_decision d;
	struct dv_err err;
	/* an OS EC2 cannot run: refused unless --arch */
	json_t *m = manifest("uefi", "i386", 1, 1);
	assert_int_equal(dv_cloud_launch_decide(m, 0, NULL, DV_ARCH_UNKNOWN, NULL, &d, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "built for i386"));
	assert_int_equal(dv_cloud_launch_decide(m, 0, NULL, DV_ARCH_X86_64, NULL, &d, &err), 0);
	assert_string_equal(d.arch_from, "--arch");
	assert_int_equal(d.w.n, 0);
	json_decref(m);

	/* the inventory says arm64, the disk's OS x86_64: the inventory is taken,
	 * with a warning; --arch silences it */
	struct dv_sizing_input in;
	memset(&in, 0, sizeof in);
	in.arch = DV_ARCH_ARM64;
	in.nvme = in.ena = 1;
	m = manifest("uefi", "x86_64", 2, 2);
	assert_int_equal(dv_cloud_launch_decide(m, 0, &in, DV_ARCH_UNKNOWN, NULL, &d, &err), 0);
	assert_int_equal(d.arch, DV_ARCH_ARM64);
	assert_string_equal(d.arch_from, "the inventory");
	assert_true(has_warning(&d, "built for x86_64, but the inventory says arm64"));
	assert_int_equal(dv_cloud_launch_decide(m, 0, &in, DV_ARCH_X86_64, NULL, &d, &err), 0);
	assert_int_equal(d.w.n, 0);
	json_decref(m);
}

static void test_decide_nitro(void **state)
{
	(void)state;
	struct dv_cloud_decision d;
	struct dv_err err;
	json_t *m = manifest("uefi", "x86_64", 0, 0);
	assert_int_equal(dv_cloud_launch_decide(m, 0, NULL, DV_ARCH_UNKNOWN, NULL, &d, &err), 0);
	assert_int_equal(d.w.n, 2);
	assert_true(has_warning(&d, "kernel 6.1.0-test on the disk has no nvme driver built in or in its initramfs"));
	assert_true(has_warning(&d, "has no ena driver"));
	json_decref(m);

	m = manifest("uefi", "x86_64", -1, 1);
	assert_int_equal(dv_cloud_launch_decide(m, 0, NULL, DV_ARCH_UNKNOWN, NULL, &d, &err), 0);
	assert_int_equal(d.w.n, 1);
	assert_true(has_warning(&d, "cannot tell whether kernel 6.1.0-test on the disk can load the nvme driver"));
	json_decref(m);

	/* no kernel found on the disk: the inventory's drivers decide */
	struct dv_sizing_input in;
	memset(&in, 0, sizeof in);
	in.nvme = 1;
	in.ena = 0;
	m = manifest("uefi", "x86_64", 2, 2);
	assert_int_equal(dv_cloud_launch_decide(m, 0, &in, DV_ARCH_UNKNOWN, NULL, &d, &err), 0);
	assert_int_equal(d.w.n, 1);
	assert_true(has_warning(&d, "the recorded inventory shows no ena driver"));
	json_decref(m);
}

static void test_decide_nothing_recorded(void **state)
{
	(void)state;
	struct dv_cloud_decision d;
	struct dv_err err;
	/* an EBS snapshot id: no manifest, no inventory */
	assert_int_equal(dv_cloud_launch_decide(NULL, 0, NULL, DV_ARCH_UNKNOWN, NULL, &d, &err), 0);
	assert_int_equal(d.arch, DV_ARCH_X86_64);
	assert_string_equal(d.arch_from, "assumed");
	assert_string_equal(d.boot, "unknown");
	assert_null(d.ec2_boot);
	assert_int_equal(d.w.n, 3);
	assert_true(has_warning(&d, "assuming x86_64"));
	assert_true(has_warning(&d, ", or no backup was named"));
	assert_true(has_warning(&d, "cannot check for the nvme and ena"));
}

/* ---- EC2 forms by field name ------------------------------------------- */

static void test_form_set(void **state)
{
	(void)state;
	struct dv_ec2_form f;
	const char *sg[2] = {"sg-1", "sg-2"};
	struct dv_ec2_run_spec rs = {
		.image_id = "(the new AMI)",
		.instance_type = "t3.micro",
		.security_groups = sg,
		.nsecurity_groups = 2,
		.client_token = "tok",
	};
	memset(&f, 0, sizeof f);
	dv_ec2_form_run_instances(&f, &rs);
	size_t n = f.n;
	dv_ec2_form_set(&f, "ImageId", "ami-0123");
	assert_string_equal(dv_ec2_form_get(&f, "ImageId"), "ami-0123");
	assert_string_equal(dv_ec2_form_get(&f, "InstanceType"), "t3.micro");
	assert_int_equal(f.n, n);
	dv_ec2_form_release(&f);
}

/* ---- the lineage rule -------------------------------------------------- */

static json_t *record(const char *snap_fill, const char *host, const char *source, int disk, long t)
{
	char snap[65];
	memset(snap, snap_fill[0], 64);
	snap[64] = 0;
	json_t *r = json_pack("{s:i, s:s, s:i, s:s, s:n, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i}", "version", 1,
			      "snapshot", snap, "disk", disk, "ebs_snapshot_id", "snap-0a", "parent_ebs_snapshot_id",
			      "region", "eu-west-1", "endpoint", "https://ebs.eu-west-1.amazonaws.com", "volume_size_gib",
			      1, "block_size", 524288, "block_count", 1, "blocks_sent", 1, "bytes_sent", 524288, "time",
			      (int)t);
	if (host)
		json_object_set_new(r, "host", json_string(host));
	if (source)
		json_object_set_new(r, "source", json_string(source));
	return r;
}

static bool same(const json_t *a, const json_t *b)
{
	struct dv_ebs_lineage x, y;
	dv_ebs_lineage_of(a, &x);
	dv_ebs_lineage_of(b, &y);
	bool s = dv_ebs_lineage_same(&x, &y);
	assert_int_equal(s, dv_ebs_lineage_same(&y, &x)); /* symmetric */
	return s;
}

static void test_lineage_rule(void **state)
{
	(void)state;
	json_t *a = record("a", "h1", "/dev/sda", 0, 1), *b = record("b", "h1", "/dev/sda", 1, 2);
	json_t *nohost = record("c", NULL, "/dev/sda", 0, 3), *nosrc0 = record("d", "h1", NULL, 0, 4);
	json_t *nosrc0b = record("e", "h1", NULL, 0, 5), *nosrc1 = record("f", "h1", NULL, 1, 6);
	assert_true(same(a, b));        /* the source decides, not the disk number */
	assert_false(same(a, nohost));  /* a missing host equals only a missing host */
	assert_true(same(nohost, nohost));
	assert_false(same(a, nosrc0));  /* a source on one side only */
	assert_true(same(nosrc0, nosrc0b));
	assert_false(same(nosrc0, nosrc1));
	json_t *other_region = record("a", "h1", "/dev/sda", 0, 7);
	json_object_set_new(other_region, "region", json_string("us-east-1"));
	assert_false(same(a, other_region));
	json_object_del(other_region, "region");
	assert_false(same(a, other_region)); /* missing region */
	json_decref(a);
	json_decref(b);
	json_decref(nohost);
	json_decref(nosrc0);
	json_decref(nosrc0b);
	json_decref(nosrc1);
	json_decref(other_region);
}

/* prune keeps the newest record of each lineage by the same rule: records of
 * the same disk with and without a host are two lineages (import took the
 * host-less one as a parent of any host before), so both newest stay. */
static void test_lineage_purge(void **state)
{
	(void)state;
	char tmp[256], path[300];
	snprintf(tmp, sizeof tmp, "%s/dvcloud-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(tmp));
	snprintf(path, sizeof path, "%s/repo", tmp);
	struct dv_repo_init_opts io;
	dv_repo_init_opts_default(&io);
	struct dv_err err;
	assert_int_equal(dv_repo_init(path, &io, NULL, &err), 0);
	struct dv_repo *r;
	assert_int_equal(dv_repo_open(path, &r, &err), 0);
	uint8_t sig[DV_EBS_SIG_ENTRY] = {0};
	/* h1 twice (old, new), no host once (newest of all): snapshots all gone */
	json_t *recs[3] = {record("1", "h1", "/dev/sda", 0, 10), record("2", "h1", "/dev/sda", 0, 20),
			   record("3", NULL, "/dev/sda", 0, 30)};
	for (int i = 0; i < 3; i++)
		assert_int_equal(dv_ebs_state_put(r, recs[i], sig, sizeof sig, &err), 0);
	uint64_t deleted = 99;
	assert_int_equal(dv_ebs_state_purge(r, NULL, 0, false, &deleted, &err), 0);
	assert_int_equal(deleted, 2); /* the old h1 record and its table */
	json_t *left = NULL;
	assert_int_equal(dv_ebs_state_list(r, &left, &err), 0);
	assert_int_equal(json_array_size(left), 2);
	assert_true(json_equal(json_object_get(json_array_get(left, 0), "snapshot"),
			       json_object_get(recs[1], "snapshot")));
	assert_true(json_equal(json_object_get(json_array_get(left, 1), "snapshot"),
			       json_object_get(recs[2], "snapshot")));
	json_decref(left);
	for (int i = 0; i < 3; i++)
		json_decref(recs[i]);
	dv_repo_free(r);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_want_no_parent),
		cmocka_unit_test(test_block_want_parent),
		cmocka_unit_test(test_block_flags),
		cmocka_unit_test(test_decide_from_disk),
		cmocka_unit_test(test_decide_arm64),
		cmocka_unit_test(test_decide_arch_conflicts),
		cmocka_unit_test(test_decide_nitro),
		cmocka_unit_test(test_decide_nothing_recorded),
		cmocka_unit_test(test_form_set),
		cmocka_unit_test(test_lineage_rule),
		cmocka_unit_test(test_lineage_purge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
