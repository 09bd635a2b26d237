/*
 * Right-sizing: the shipped catalog, the CSV reader on hostile input, the
 * refresh update and writer, the inventory reader on every JSON shape, and
 * the documented algorithm (docs/rightsizing.md) on the cases issue 5 lists,
 * using the fixtures the CLI test uses too (fixtures/inventory/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sizing/sizing.h"

#define CATALOG DV_SOURCE_DIR "/data/ec2-catalog.csv"
#define FIX DV_SOURCE_DIR "/fixtures/inventory/"
#define GIB (1024.0 * 1024.0 * 1024.0)

static struct dv_catalog *shipped(void)
{
	struct dv_catalog *c = NULL;
	struct dv_err err;
	if (dv_catalog_load(CATALOG, &c, &err) < 0) {
		print_error("%s\n", err.msg);
		fail();
	}
	return c;
}

static void test_shipped_catalog(void **state)
{
	(void)state;
	struct dv_catalog *c = shipped();
	assert_int_equal(dv_catalog_count(c), 45);
	assert_int_equal(dv_catalog_region_count(c), 2);
	assert_string_equal(dv_catalog_region(c, 0), "us-east-1");
	assert_string_equal(dv_catalog_region(c, 1), "ap-northeast-2");
	assert_string_equal(dv_catalog_comment(c, "date"), "2026-01-19");
	const struct dv_catalog_type *t = dv_catalog_find(c, "c5.9xlarge");
	assert_non_null(t);
	assert_int_equal(t->vcpus, 36);
	assert_true(t->memory_gib == 72);
	assert_false(t->burstable);
	assert_true(t->prices[0] == 1.53);
	t = dv_catalog_find(c, "t3.nano");
	assert_true(t->burstable && t->baseline_pct == 5 && t->memory_gib == 0.5);
	assert_true(t->legacy_bios && t->uefi);
	t = dv_catalog_find(c, "t4g.large");
	assert_int_equal(t->arch, DV_ARCH_ARM64);
	assert_true(t->uefi && !t->legacy_bios);
	assert_string_equal(t->family, "t4g");
	assert_null(dv_catalog_find(c, "x1.huge"));
	dv_catalog_free(c);
}

#define HDR "type,arch,vcpus,memory_gib,burstable,baseline_pct_per_vcpu,price_usd_hour_us_east_1\n"

static void test_catalog_hostile(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"# only a comment\n",
		HDR,                                                  /* no rows */
		"type,arch,vcpus,memory_gib,burstable,baseline_pct_per_vcpu\nm5.large,x86_64,2,8,false,\n", /* no price */
		"type,vcpus,memory_gib,burstable,baseline_pct_per_vcpu,price_usd_hour_x\nm5.large,2,8,false,,1\n",
		HDR "m5.large,x86_64,2,8,false,\n",                   /* too few cells */
		HDR "m5.large,x86_64,2,8,false,,0.1,extra\n",         /* too many */
		HDR "m5.large,x86_64,2,8,false,,0.1\nm5.large,x86_64,2,8,false,,0.1\n", /* twice */
		HDR "m5.large,x86_64,-2,8,false,,0.1\n",
		HDR "m5.large,x86_64,2,1e3,false,,0.1\n",
		HDR "m5.large,x86_64,2,inf,false,,0.1\n",
		HDR "m5.large,x86_64,2,nan,false,,0.1\n",
		HDR "m5.large,x86_64,2, 8,false,,0.1\n",
		HDR "m5.large,x86_64,0x2,8,false,,0.1\n",
		HDR "m5.large,x86_64,0,8,false,,0.1\n",
		HDR "m5.large,x86_64,99999,8,false,,0.1\n",
		HDR "m5.large,x86_64,2,0,false,,0.1\n",
		HDR "m5.large,x86_64,2,8.,false,,0.1\n",
		HDR "m5.large,x86_64,2,8,false,,-0.1\n",
		HDR "m5.large,x86_64,2,8,false,,10001\n",
		HDR "m5.large,sparc,2,8,false,,0.1\n",
		HDR "m5.large,aarch64,2,8,false,,0.1\n",            /* catalog spells it arm64 */
		HDR "m5.large,x86_64,2,8,yes,,0.1\n",
		HDR "t3.large,x86_64,2,8,true,,0.1\n",              /* burstable without baseline */
		HDR "t3.large,x86_64,2,8,true,101,0.1\n",
		HDR "m5.large,x86_64,2,8,false,30,0.1\n",           /* baseline on a fixed type */
		HDR "M5.large,x86_64,2,8,false,,0.1\n",
		HDR "m5 large,x86_64,2,8,false,,0.1\n",
		HDR "m5large,x86_64,2,8,false,,0.1\n",
		HDR "\"m5.large,x86_64,2,8,false,,0.1\n",             /* unterminated quote */
		HDR "m5.\"large\",x86_64,2,8,false,,0.1\n",           /* quote inside a cell */
		HDR "\"m5.large\"x,x86_64,2,8,false,,0.1\n",          /* text after a quote */
		HDR "m5.large,x86_64,2,8,false,,0.1\r\r\n",
		"type,type,arch,vcpus,memory_gib,burstable,baseline_pct_per_vcpu,price_usd_hour_a\n",
		"Type,arch,vcpus,memory_gib,burstable,baseline_pct_per_vcpu,price_usd_hour_a\nm5.large,x86_64,2,8,false,,1\n",
		"type,arch,vcpus,memory_gib,burstable,baseline_pct_per_vcpu,price_usd_hour_a,boot_modes\n"
		"m5.large,x86_64,2,8,false,,1,bios\n",
		"type,family,arch,vcpus,memory_gib,burstable,baseline_pct_per_vcpu,price_usd_hour_a\n"
		"m5.large,c5,x86_64,2,8,false,,1\n",
	};
	for (size_t i = 0; i < DV_ARRAY_SIZE(bad); i++) {
		struct dv_catalog *c = NULL;
		struct dv_err err;
		dv_err_clear(&err);
		int r = dv_catalog_parse(bad[i], strlen(bad[i]), "bad.csv", &c, &err);
		if (r != -DV_E_CORRUPT) {
			print_error("case %zu accepted (%d): %s\n", i, r, bad[i]);
			fail();
		}
		assert_null(c);
		assert_non_null(strstr(err.msg, "bad.csv"));
	}
	/* NUL byte, a long cell, many columns, a huge file */
	char nul[] = HDR "m5.large,x86_64,2,8,false,,0.1\n";
	nul[sizeof HDR + 2] = 0;
	struct dv_catalog *c = NULL;
	struct dv_err err;
	assert_int_equal(dv_catalog_parse(nul, sizeof nul - 1, "n", &c, &err), -DV_E_CORRUPT);
	struct dv_buf b = DV_BUF_INIT;
	dv_buf_addf(&b, HDR "m5.large,x86_64,2,8,false,,0.1");
	for (int i = 0; i < 300; i++)
		dv_buf_add(&b, "1", 1);
	dv_buf_add(&b, "\n", 1);
	assert_int_equal(dv_catalog_parse((char *)b.data, b.len, "n", &c, &err), -DV_E_CORRUPT);
	dv_buf_reset(&b);
	for (int i = 0; i < 70; i++)
		dv_buf_addf(&b, "c%d,", i);
	dv_buf_add(&b, "\n", 1);
	assert_int_equal(dv_catalog_parse((char *)b.data, b.len, "n", &c, &err), -DV_E_CORRUPT);
	dv_buf_reset(&b);
	assert_int_equal(dv_catalog_parse("x", DV_CATALOG_MAX_BYTES + 1, "n", &c, &err), -DV_E_CORRUPT);
	dv_buf_release(&b);
}

static void test_catalog_quotes_roundtrip_update(void **state)
{
	(void)state;
	static const char text[] =
		"\xef\xbb\xbf# date: 2026-01-01\n"
		"\n"
		"type,arch,vcpus,memory_gib,burstable,baseline_pct_per_vcpu,boot_modes,note,price_usd_hour_eu_west_1\r\n"
		"\"t3.large\",x86_64,2,8,true,30,\"legacy-bios;uefi\",\"a, \"\"quoted\"\" note\",0.0912\r\n"
		"# a comment between rows\n"
		"m7g.large,arm64,2,8,false,,uefi,,\n";
	struct dv_catalog *c = NULL;
	struct dv_err err;
	assert_int_equal(dv_catalog_parse(text, sizeof text - 1, "q.csv", &c, &err), 0);
	assert_int_equal(dv_catalog_count(c), 2);
	assert_int_equal(dv_catalog_region_index(c, "eu-west-1"), 0);
	assert_true(dv_catalog_find(c, "m7g.large")->prices[0] < 0); /* not sold there */
	struct dv_buf out = DV_BUF_INIT;
	dv_catalog_format(c, &out);
	assert_non_null(strstr((char *)out.data, "\"a, \"\"quoted\"\" note\""));
	struct dv_catalog *c2 = NULL;
	assert_int_equal(dv_catalog_parse((char *)out.data, out.len, "again", &c2, &err), 0);
	struct dv_buf out2 = DV_BUF_INIT;
	dv_catalog_format(c2, &out2);
	assert_string_equal((char *)out.data, (char *)out2.data);

	/* refresh: new specs, kept price and baseline; refused changes change nothing */
	struct dv_catalog_spec s = {.type = "t3.large", .arch = DV_ARCH_X86_64, .vcpus = 4, .memory_mib = 12288,
				    .burstable = 1, .ena = "required", .boot_modes = "legacy-bios;uefi"};
	bool changed;
	assert_int_equal(dv_catalog_update(c, &s, &changed, &err), 0);
	assert_true(changed);
	const struct dv_catalog_type *t = dv_catalog_find(c, "t3.large");
	assert_int_equal(t->vcpus, 4);
	assert_true(t->memory_gib == 12);
	assert_true(t->baseline_pct == 30 && t->prices[0] == 0.0912);
	assert_int_equal(dv_catalog_update(c, &s, &changed, &err), 0);
	assert_false(changed);
	struct dv_catalog_spec s2 = {.type = "m7g.large", .burstable = 1};
	assert_int_equal(dv_catalog_update(c, &s2, &changed, &err), -DV_E_CORRUPT);
	assert_false(dv_catalog_find(c, "m7g.large")->burstable);
	struct dv_catalog_spec s3 = {.type = "t3.large", .burstable = 0};
	assert_int_equal(dv_catalog_update(c, &s3, &changed, &err), 0);
	assert_false(dv_catalog_find(c, "t3.large")->burstable);
	struct dv_catalog_spec s4 = {.type = "nope.large", .burstable = -1};
	assert_int_equal(dv_catalog_update(c, &s4, &changed, &err), -DV_E_NOT_FOUND);
	dv_catalog_set_comment(c, "refreshed", "now");
	assert_string_equal(dv_catalog_comment(c, "refreshed"), "now");

	/* atomic save, then load */
	char path[] = "/tmp/dv-test-catalog-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(dv_catalog_save(c, path, &err), 0);
	struct dv_catalog *c3 = NULL;
	assert_int_equal(dv_catalog_load(path, &c3, &err), 0);
	assert_string_equal(dv_catalog_comment(c3, "refreshed"), "now");
	assert_int_equal(dv_catalog_find(c3, "t3.large")->vcpus, 4);
	unlink(path);
	dv_catalog_free(c3);
	dv_buf_release(&out);
	dv_buf_release(&out2);
	dv_catalog_free(c2);
	dv_catalog_free(c);
}

static void load_input(const char *file, struct dv_sizing_input *in)
{
	struct dv_buf b = DV_BUF_INIT;
	struct dv_err err;
	char *path = dv_asprintf("%s%s", FIX, file);
	if (dv_read_file(path, 1 << 24, &b, &err) < 0 ||
	    dv_sizing_input_parse((char *)b.data, b.len, file, in, &err) < 0) {
		print_error("%s\n", err.msg);
		fail();
	}
	free(path);
	dv_buf_release(&b);
}

static void choose(const char *file, const char *region, struct dv_sizing_input *in, struct dv_sizing_result *res,
		   struct dv_catalog **cat)
{
	*cat = shipped();
	load_input(file, in);
	struct dv_sizing_opts o;
	dv_sizing_opts_default(&o);
	o.region = region;
	struct dv_err err;
	if (dv_sizing_choose(*cat, in, &o, res, &err) < 0) {
		print_error("%s: %s\n", file, err.msg);
		fail();
	}
	/* the JSON report carries the same facts */
	json_t *j = dv_sizing_result_json(res, in, &o, *cat);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "chosen"), "type")),
			    res->chosen->name);
	json_decref(j);
}

static bool has_note(const struct dv_sizing_result *res, const char *s)
{
	for (size_t i = 0; i < res->nnotes; i++)
		if (strstr(res->notes[i], s))
			return true;
	return false;
}

/* issue 5: 36 threads, 72 GiB, mostly idle, ~10 GiB in use */
static void test_idle_server(void **state)
{
	(void)state;
	struct dv_sizing_input in;
	struct dv_sizing_result res;
	struct dv_catalog *cat;
	choose("idle-36t-72g.json", "us-east-1", &in, &res, &cat);
	assert_int_equal(in.logical_cpus, 36);
	assert_int_equal(in.samples, 336);
	assert_true(in.have_history && in.history_hours > 24 * 13);
	assert_false(res.from_spec);
	assert_string_not_equal(res.chosen->name, "c5.9xlarge");
	/* t3.xlarge-class or smaller */
	assert_true(res.chosen->vcpus <= 4 && res.chosen->memory_gib <= 16);
	assert_true(res.chosen_price <= dv_catalog_find(cat, "t3.xlarge")->prices[0]);
	assert_true(res.mem_need >= 12 * GIB && res.mem_need <= 14 * GIB);
	assert_non_null(res.spec_match);
	assert_string_equal(res.spec_match->name, "c5.9xlarge");
	assert_true(res.spec_price > 5 * res.chosen_price);
	dv_sizing_result_release(&res);
	dv_catalog_free(cat);
}

static void test_busy_compute(void **state)
{
	(void)state;
	struct dv_sizing_input in;
	struct dv_sizing_result res;
	struct dv_catalog *cat;
	choose("busy-compute-16t.json", "us-east-1", &in, &res, &cat);
	assert_int_equal(in.samples, 2016);
	assert_false(res.from_spec);
	assert_true(res.cpu_need > 14 && res.cpu_need <= 16);
	assert_string_equal(res.chosen->name, "c6i.4xlarge");
	assert_false(res.chosen->burstable);
	/* burstable types are out: the average is far above any baseline */
	for (size_t i = 0; i < res.nrejected; i++)
		if (res.rejected[i].type->burstable && res.rejected[i].type->vcpus >= 16)
			fail();
	dv_sizing_result_release(&res);
	dv_catalog_free(cat);
}

static void test_memory_heavy(void **state)
{
	(void)state;
	struct dv_sizing_input in;
	struct dv_sizing_result res;
	struct dv_catalog *cat;
	choose("memory-heavy-8t-64g.json", "us-east-1", &in, &res, &cat);
	assert_true(res.mem_need > 50 * GIB);
	assert_string_equal(res.chosen->family, "r6i");
	assert_true(res.chosen->memory_gib * GIB >= res.mem_need);
	dv_sizing_result_release(&res);
	dv_catalog_free(cat);
	/* the same machine priced in Seoul chooses the same type */
	choose("memory-heavy-8t-64g.json", "ap-northeast-2", &in, &res, &cat);
	assert_string_equal(res.chosen->name, "r6i.2xlarge");
	assert_true(res.chosen_price == 0.608);
	dv_sizing_result_release(&res);
	dv_catalog_free(cat);
}

static void test_arm64(void **state)
{
	(void)state;
	struct dv_sizing_input in;
	struct dv_sizing_result res;
	struct dv_catalog *cat;
	choose("arm64-4c-8g.json", "us-east-1", &in, &res, &cat);
	assert_string_equal(in.arch_raw, "aarch64");
	assert_int_equal(res.arch, DV_ARCH_ARM64);
	assert_int_equal(res.chosen->arch, DV_ARCH_ARM64);
	assert_true(!strcmp(res.chosen->family, "m7g") || !strcmp(res.chosen->family, "t4g"));
	assert_int_equal(res.spec_match->arch, DV_ARCH_ARM64);
	assert_true(has_note(&res, "only 1 utilisation sample"));
	dv_sizing_result_release(&res);
	/* an x86_64 image of it may be sized with --arch */
	struct dv_sizing_opts o;
	dv_sizing_opts_default(&o);
	o.region = "us-east-1";
	o.arch = DV_ARCH_X86_64;
	struct dv_err err;
	assert_int_equal(dv_sizing_choose(cat, &in, &o, &res, &err), 0);
	assert_int_equal(res.chosen->arch, DV_ARCH_X86_64);
	dv_sizing_result_release(&res);
	/* a bios-only image cannot go to Graviton */
	o.arch = DV_ARCH_UNKNOWN;
	o.boot_mode = "bios";
	assert_int_equal(dv_sizing_choose(cat, &in, &o, &res, &err), -DV_E_NOT_FOUND);
	assert_non_null(strstr(err.msg, "boots bios"));
	dv_catalog_free(cat);
}

static void test_no_samples(void **state)
{
	(void)state;
	struct dv_sizing_input in;
	struct dv_sizing_result res;
	struct dv_catalog *cat;
	choose("no-samples-8t-32g.json", "us-east-1", &in, &res, &cat);
	assert_int_equal(in.samples, 0);
	assert_true(res.from_spec);
	assert_true(has_note(&res, "no utilisation samples: sized on the spec"));
	assert_true(res.cpu_need == 8);
	assert_string_equal(res.chosen->name, "m6i.2xlarge");
	assert_false(res.chosen->burstable);
	assert_int_equal(in.nvme, 0);
	assert_int_equal(in.ena, 1);
	dv_sizing_result_release(&res);
	dv_catalog_free(cat);
}

static void test_input_shapes(void **state)
{
	(void)state;
	struct dv_sizing_input in;
	struct dv_err err;
	/* a manifest without inventory */
	static const char m0[] = "{\"format\":\"diskvault-snapshot\",\"version\":1,\"inventory\":null}";
	assert_int_equal(dv_sizing_input_parse(m0, sizeof m0 - 1, "m", &in, &err), -DV_E_NOT_FOUND);
	/* a manifest with a bare inventory, and `show --json` around it */
	static const char m1[] = "{\"command\":\"show\",\"snapshot\":{\"format\":\"diskvault-snapshot\",\"inventory\":"
				 "{\"architecture\":\"x86_64\",\"cpu\":{\"logical\":4,\"busy\":0.5},"
				 "\"memory\":{\"total\":8589934592,\"used\":1073741824},\"load\":[1.0,1.0,1.0]}}}";
	assert_int_equal(dv_sizing_input_parse(m1, sizeof m1 - 1, "m", &in, &err), 0);
	assert_int_equal(in.logical_cpus, 4);
	assert_int_equal(in.samples, 1);
	assert_true(in.cpu_peak == 0.5 && in.load_peak == 1.0 && in.mem_peak == 1073741824.0);
	assert_int_equal(in.nvme, -1);
	/* nvme as a module counts only when the initramfs carries it (the root
	 * disk of a Nitro instance is NVMe); ena may load later */
	static const char d1[] = "{\"cpu\":{\"logical\":2},\"nitro_drivers\":{"
				 "\"nvme\":{\"builtin\":false,\"module\":true,\"loaded\":true,\"initramfs\":false},"
				 "\"ena\":{\"builtin\":false,\"module\":true,\"loaded\":false,\"initramfs\":false}}}";
	assert_int_equal(dv_sizing_input_parse(d1, sizeof d1 - 1, "d1", &in, &err), 0);
	assert_int_equal(in.nvme, 0);
	assert_int_equal(in.ena, 1);
	static const char d2[] = "{\"cpu\":{\"logical\":2},\"nitro_drivers\":{"
				 "\"nvme\":{\"builtin\":false,\"module\":true,\"loaded\":false,\"initramfs\":true},"
				 "\"ena\":{\"builtin\":false,\"module\":false,\"loaded\":false,\"initramfs\":null}}}";
	assert_int_equal(dv_sizing_input_parse(d2, sizeof d2 - 1, "d2", &in, &err), 0);
	assert_int_equal(in.nvme, 1);
	assert_int_equal(in.ena, 0);
	static const char *const bad[] = {
		"[]",
		"{\"cpu\":{\"logical\":\"four\"}}",
		"{\"cpu\":{\"logical\":2.5}}",
		"{\"cpu\":{\"logical\":0}}",
		"{\"cpu\":{\"logical\":4,\"busy\":1.5}}",
		"{\"cpu\":{\"logical\":4,\"busy\":-0.1}}",
		"{\"memory\":{\"total\":100,\"used\":200}}",
		"{\"memory\":{\"total\":1e300}}",
		"{\"cpu\":{\"logical\":4},\"load\":\"high\"}",
		"{\"cpu\":{\"logical\":4},\"load\":[-1]}",
		"{\"hostname\":\"x\"}",
		"{\"command\":\"list\",\"snapshots\":[]}",
		"{\"command\":\"inventory\",\"ok\":false,\"error\":\"x\"}",
		"{\"latest\":{\"cpu\":{\"logical\":4}},\"samples\":3,\"history\":{}}",
		"{\"latest\":{\"cpu\":{\"logical\":4}},\"samples\":3,\"history\":[1,2]}",
		"{\"latest\":{\"cpu\":{\"logical\":4}},\"samples\":3,\"cpu_busy\":{\"peak\":\"x\"}}",
		"{\"latest\":{\"cpu\":{\"logical\":4}},\"samples\":-3}",
		"{\"cpu\":{\"logical\":4}, \"cpu\":{\"logical\":8}}", /* duplicate keys */
		"not json",
	};
	for (size_t i = 0; i < DV_ARRAY_SIZE(bad); i++) {
		int r = dv_sizing_input_parse(bad[i], strlen(bad[i]), "bad", &in, &err);
		if (r != -DV_E_CORRUPT) {
			print_error("case %zu: %d for %s\n", i, r, bad[i]);
			fail();
		}
	}
	/* an architecture EC2 does not offer is a usage error at choose time */
	static const char i386[] = "{\"architecture\":\"i686\",\"cpu\":{\"logical\":2},\"memory\":{\"total\":1073741824}}";
	assert_int_equal(dv_sizing_input_parse(i386, sizeof i386 - 1, "x", &in, &err), 0);
	struct dv_catalog *cat = shipped();
	struct dv_sizing_opts o;
	dv_sizing_opts_default(&o);
	o.region = "us-east-1";
	struct dv_sizing_result res;
	assert_int_equal(dv_sizing_choose(cat, &in, &o, &res, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "i686"));
	in.arch = DV_ARCH_X86_64;
	o.region = "mars-north-1";
	assert_int_equal(dv_sizing_choose(cat, &in, &o, &res, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "us-east-1, ap-northeast-2"));
	/* more than the catalog's biggest type: not found, with the need */
	o.region = "us-east-1";
	in.logical_cpus = 256;
	in.mem_total = 4096 * GIB;
	assert_int_equal(dv_sizing_choose(cat, &in, &o, &res, &err), -DV_E_NOT_FOUND);
	assert_non_null(strstr(err.msg, "256.00 vCPUs"));
	dv_catalog_free(cat);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_catalog),
		cmocka_unit_test(test_catalog_hostile),
		cmocka_unit_test(test_catalog_quotes_roundtrip_update),
		cmocka_unit_test(test_idle_server),
		cmocka_unit_test(test_busy_compute),
		cmocka_unit_test(test_memory_heavy),
		cmocka_unit_test(test_arm64),
		cmocka_unit_test(test_no_samples),
		cmocka_unit_test(test_input_shapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
