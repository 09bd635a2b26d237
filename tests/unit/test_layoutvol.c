/* The volumes of a recorded layout (src/disk/layoutvol.c) over virtual
 * sources (dv_source_virtual): names, sizes, the bytes each volume reads
 * (partitions, an md RAID1 data area, an LV with a linear segment on one
 * disk and a striped one over two), the LVs it cannot assemble, and the
 * default volume. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk/layoutvol.h"

#define DISK (1u << 20)
#define ES 4096u /* extent size of the VG */

static int calls;

/* Disk with salt s: byte i is (i * 7 + s) & 0xff. */
static int vread(void *ctx, uint64_t off, void *buf, size_t len, struct dv_err *err)
{
	(void)err;
	uint8_t *b = buf;
	calls++;
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)((off + i) * 7 + (uintptr_t)ctx);
	return 0;
}

static uint8_t at(int salt, uint64_t off) { return (uint8_t)(off * 7 + (unsigned)salt); }

static const char *disk0_json =
	"{\"table\":\"gpt\",\"partitions\":["
	"{\"number\":1,\"start\":4096,\"size\":8192,\"fs\":{\"type\":\"ext4\",\"label\":\"boot\",\"os\":{\"id\":\"x\"}}},"
	"{\"number\":2,\"start\":16384,\"size\":65536,\"fs\":{\"type\":\"linux_raid_member\"},"
	" \"md\":{\"level\":1,\"data_offset\":8192,\"size\":32768,\"fs\":{\"type\":\"xfs\",\"label\":\"data\"}}},"
	"{\"number\":3,\"start\":131072,\"size\":262144,\"fs\":{\"type\":\"LVM2_member\"}},"
	"{\"number\":4,\"start\":0,\"size\":0,\"extended\":true},"
	"{\"number\":5,\"start\":2097152,\"size\":4096}],"
	"\"volume_groups\":[{\"name\":\"vg\",\"uuid\":\"U\",\"extent_size\":4096,\"lvs\":["
	" {\"name\":\"root\",\"fs\":{\"type\":\"ext4\"},\"segments\":["
	"  {\"start_extent\":0,\"extent_count\":2,\"type\":\"striped\",\"stripe_count\":1,\"stripe_size\":0,"
	"   \"stripes\":[{\"pv\":\"pv0\",\"start_extent\":4,\"offset\":163840}]},"
	"  {\"start_extent\":2,\"extent_count\":4,\"type\":\"striped\",\"stripe_count\":2,\"stripe_size\":2048,"
	"   \"stripes\":[{\"pv\":\"pv0\",\"start_extent\":10,\"offset\":188416},{\"pv\":\"pv1\",\"start_extent\":0,\"offset\":null}]}]},"
	" {\"name\":\"pool\",\"segments\":[{\"start_extent\":0,\"extent_count\":1,\"type\":\"thin-pool\"}]},"
	" {\"name\":\"lost\",\"segments\":[{\"start_extent\":0,\"extent_count\":1,\"type\":\"striped\",\"stripe_count\":1,"
	"   \"stripes\":[{\"pv\":\"pv2\",\"start_extent\":0,\"offset\":null}]}]}]}]}";

/* disk 1: no table, a PV over the whole disk holding pv1's stripes. */
static const char *disk1_json =
	"{\"table\":\"none\",\"filesystem\":{\"type\":\"LVM2_member\"},\"partitions\":[],"
	"\"volume_groups\":[{\"name\":\"vg\",\"uuid\":\"U\",\"extent_size\":4096,\"lvs\":["
	" {\"name\":\"root\",\"fs\":{\"type\":\"ext4\"},\"segments\":["
	"  {\"start_extent\":0,\"extent_count\":2,\"type\":\"striped\",\"stripe_count\":1,\"stripe_size\":0,"
	"   \"stripes\":[{\"pv\":\"pv0\",\"start_extent\":4,\"offset\":null}]},"
	"  {\"start_extent\":2,\"extent_count\":4,\"type\":\"striped\",\"stripe_count\":2,\"stripe_size\":2048,"
	"   \"stripes\":[{\"pv\":\"pv0\",\"start_extent\":10,\"offset\":null},{\"pv\":\"pv1\",\"start_extent\":0,\"offset\":65536}]}]}]}]}";

struct fixture {
	struct dv_source s[2];
	json_t *lay[2];
	struct dv_layout_vols l;
};

static void setup(struct fixture *f)
{
	json_error_t je;
	dv_source_virtual(&f->s[0], "snapshot disk 0", DISK, vread, (void *)(uintptr_t)0);
	dv_source_virtual(&f->s[1], "snapshot disk 1", DISK, vread, (void *)(uintptr_t)1);
	f->lay[0] = json_loads(disk0_json, 0, &je);
	f->lay[1] = json_loads(disk1_json, 0, &je);
	assert_non_null(f->lay[0]);
	assert_non_null(f->lay[1]);
	const json_t *lays[2] = {f->lay[0], f->lay[1]};
	const struct dv_source *srcs[2] = {&f->s[0], &f->s[1]};
	dv_layout_volumes(lays, srcs, 2, &f->l);
}

static void teardown(struct fixture *f)
{
	dv_layout_vols_release(&f->l);
	for (int i = 0; i < 2; i++) {
		json_decref(f->lay[i]);
		dv_source_close(&f->s[i]);
	}
}

/* Volume v reads, at each of its bytes, what the disk bytes expect[] say. */
static void check_bytes(const struct dv_layout_vol *v, uint64_t size, void (*where)(uint64_t x, int *salt,
										     uint64_t *off))
{
	assert_int_equal(v->vol.size, size);
	uint8_t *b = malloc(size);
	struct dv_err err = {0};
	assert_int_equal(dv_vol_read(&v->vol, 0, b, size, &err), 0);
	for (uint64_t x = 0; x < size; x++) {
		int salt;
		uint64_t off;
		where(x, &salt, &off);
		if (b[x] != at(salt, off))
			fail_msg("%s byte %llu: %u, expected disk %d byte %llu", v->name, (unsigned long long)x, b[x],
				 salt, (unsigned long long)off);
	}
	free(b);
}

static void where_p1(uint64_t x, int *salt, uint64_t *off) { *salt = 0, *off = 4096 + x; }
static void where_md(uint64_t x, int *salt, uint64_t *off) { *salt = 0, *off = 16384 + 8192 + x; }

/* root: 2 extents at 163840 of disk 0; then 16 KiB striped 2 KiB at a
 * time over 188416 of disk 0 and 65536 of disk 1. */
static void where_root(uint64_t x, int *salt, uint64_t *off)
{
	if (x < 2 * ES) {
		*salt = 0, *off = 163840 + x;
		return;
	}
	uint64_t r = x - 2 * ES, stripe = r / 2048;
	*salt = (int)(stripe % 2);
	*off = (stripe % 2 ? 65536 : 188416) + (stripe / 2) * 2048 + r % 2048;
}

static void test_names_and_bytes(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f);
	const char *names[] = {"disk0", "p1", "p2", "p2-md", "p3", "disk1", "vg/root"};
	assert_int_equal(f.l.n, sizeof names / sizeof *names);
	for (size_t i = 0; i < f.l.n; i++)
		assert_string_equal(f.l.v[i].name, names[i]);
	/* p5 starts past the end of the disk; the extended container is no volume */
	assert_null(dv_layout_vol_find(&f.l, "p5"));
	assert_null(dv_layout_vol_find(&f.l, "p4"));
	assert_ptr_equal(dv_layout_vol_find(&f.l, "disk0-p2"), dv_layout_vol_find(&f.l, "p2"));

	const struct dv_layout_vol *p1 = dv_layout_vol_find(&f.l, "p1");
	assert_string_equal(p1->fstype, "ext4");
	assert_string_equal(p1->label, "boot");
	assert_true(p1->has_os);
	check_bytes(p1, 8192, where_p1);
	const struct dv_layout_vol *md = dv_layout_vol_find(&f.l, "p2-md");
	assert_int_equal(md->kind, DV_LV_MD);
	assert_string_equal(md->fstype, "xfs");
	check_bytes(md, 32768, where_md);
	const struct dv_layout_vol *root = dv_layout_vol_find(&f.l, "vg/root");
	assert_int_equal(root->kind, DV_LV_LVM);
	assert_string_equal(root->fstype, "ext4");
	check_bytes(root, 6 * ES, where_root);
	assert_string_equal(p1->vol.name, "partition 1 of disk 0");
	assert_string_equal(md->vol.name, "the md RAID1 data of partition 2 of disk 0");
	assert_string_equal(dv_layout_vol_find(&f.l, "disk1")->fstype, "LVM2_member");
	assert_int_equal(dv_layout_vol_find(&f.l, "disk1")->vol.size, DISK);

	/* the thin pool and the LV whose PV is on no disk are named, once */
	assert_int_equal(f.l.nskipped, 2);
	assert_non_null(strstr(f.l.skipped[0], "vg/pool: a segment type other than"));
	assert_non_null(strstr(f.l.skipped[1], "vg/lost: a PV that is on no disk"));
	assert_ptr_equal(dv_layout_vol_default(&f.l), p1);
	teardown(&f);
}

static void test_default_without_os(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f);
	json_object_del(json_object_get(json_array_get(json_object_get(f.lay[0], "partitions"), 0), "fs"), "os");
	dv_layout_vols_release(&f.l);
	const json_t *lays[2] = {f.lay[0], f.lay[1]};
	const struct dv_source *srcs[2] = {&f.s[0], &f.s[1]};
	dv_layout_volumes(lays, srcs, 2, &f.l);
	/* the largest filesystem that is not a container: the 32 KiB XFS in the
	 * md data area, not the 24 KiB LV or the 1 MiB PV disk */
	assert_string_equal(dv_layout_vol_default(&f.l)->name, "p2-md");
	/* a layout of null: just the disk, which holds nothing known */
	struct dv_layout_vols l;
	const json_t *none[1] = {json_null()};
	dv_layout_volumes(none, srcs, 1, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].name, "disk0");
	assert_null(dv_layout_vol_default(&l));
	dv_layout_vols_release(&l);
	teardown(&f);
}

static void test_virtual_source(void **state)
{
	(void)state;
	struct dv_source s;
	dv_source_virtual(&s, "v", 4096, vread, (void *)(uintptr_t)3);
	uint8_t b[16];
	struct dv_err err = {0};
	calls = 0;
	assert_int_equal(dv_source_read(&s, 100, b, sizeof b, &err), 0);
	assert_int_equal(calls, 1);
	assert_int_equal(b[5], at(3, 105));
	uint64_t len;
	bool hole;
	dv_source_run(&s, 1000, 1 << 20, &len, &hole);
	assert_false(hole);
	assert_int_equal(len, 4096 - 1000);
	dv_source_prefetch(&s, 0, 4096); /* nothing to do, must not touch fd -1 */
	assert_string_equal(s.path, "v");
	dv_source_close(&s);
	assert_null(s.path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_and_bytes),
		cmocka_unit_test(test_default_without_os),
		cmocka_unit_test(test_virtual_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
