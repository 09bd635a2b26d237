/* LVM2 PVs and metadata (src/disk/lvm.c) and md superblocks (src/disk/md.c)
 * on crafted images: both metadata copies and the newest seqno, bad
 * checksums, the text parser (striped, out-of-order segments, unknown
 * segment types, hidden LVs, hostile nesting and references). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "disk/lvm.h"

#define PV_SIZE (4u << 20)
#define MDA_SIZE (256u * 1024)
#define MAGIC "\x20\x4c\x56\x4d\x32\x20\x78\x5b\x35\x41\x25\x72\x30\x4e\x2a\x3e"
#define PVID "abcdefABCDEF0123456789abcdefGHIJ"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static char *vg_text(unsigned seqno, const char *lvs)
{
	char *t = NULL;
	assert_true(asprintf(&t,
			     "# crafted\n"
			     "vg0 {\n id = \"VGVGVG-0000-0000-0000-0000-0000-000000\"\n seqno = %u\n format = \"lvm2\"\n"
			     " status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\n flags = []\n extent_size = 8\n"
			     " physical_volumes {\n  pv0 {\n   id = \"abcdef-ABCD-EF01-2345-6789-abcd-efGHIJ\"\n"
			     "   device = \"/dev/x\"\t# Hint only\n   pe_start = 2048\n   pe_count = 100\n  }\n"
			     "  pv1 {\n   id = \"zzzzzz-zzzz-zzzz-zzzz-zzzz-zzzz-zzzzzz\"\n   pe_start = 2048\n"
			     "   pe_count = 50\n  }\n }\n"
			     " logical_volumes {\n%s }\n}\n"
			     "contents = \"Text Format Volume Group\"\nversion = 1\ndescription = \"a \\\"quoted\\\" one\"\n",
			     seqno, lvs) > 0);
	return t;
}

static const char *LVS_OK =
	"  root {\n   id = \"r\"\n   status = [\"READ\", \"WRITE\", \"VISIBLE\"]\n   segment_count = 2\n"
	"   segment2 {\n    start_extent = 4\n    extent_count = 4\n    type = \"striped\"\n    stripe_count = 1\n"
	"    stripes = [\n     \"pv0\", 0\n    ]\n   }\n"
	"   segment1 {\n    start_extent = 0\n    extent_count = 4\n    type = \"striped\"\n    stripe_count = 1\n"
	"    stripes = [\"pv0\", 10]\n   }\n  }\n"
	"  data {\n   id = \"d\"\n   status = [\"VISIBLE\"]\n   segment_count = 1\n"
	"   segment1 {\n    start_extent = 0\n    extent_count = 8\n    type = \"striped\"\n    stripe_count = 2\n"
	"    stripe_size = 4\n    stripes = [\"pv0\", 20, \"pv1\", 0]\n   }\n  }\n"
	"  pool {\n   id = \"p\"\n   status = [\"VISIBLE\"]\n   segment_count = 1\n"
	"   segment1 {\n    start_extent = 0\n    extent_count = 2\n    type = \"thin-pool\"\n"
	"    metadata = \"pool_tmeta\"\n    pool = \"pool_tdata\"\n   }\n  }\n"
	"  pool_tdata {\n   id = \"t\"\n   status = [\"READ\"]\n   segment_count = 1\n"
	"   segment1 {\n    start_extent = 0\n    extent_count = 2\n    type = \"striped\"\n    stripe_count = 1\n"
	"    stripes = [\"pv1\", 40]\n   }\n  }\n";

/* Writes one metadata area (header + text at offset 512 of the area). */
static void put_mda(uint8_t *pv, uint64_t off, const char *text, bool bad_text_crc)
{
	uint8_t *h = pv + off;
	memset(h, 0, 512);
	memcpy(h + 4, MAGIC, 16);
	put32(h + 20, 1);
	put64(h + 24, off);
	put64(h + 32, MDA_SIZE);
	size_t n = strlen(text) + 1;
	memcpy(h + 512, text, n);
	put64(h + 40, 512);
	put64(h + 48, n);
	put32(h + 56, dv_lvm_crc(h + 512, n) ^ (bad_text_crc ? 1u : 0u));
	put32(h, dv_lvm_crc(h + 4, 508));
}

/* A PV image: label in sector 1, two metadata areas (at 4 KiB and at the
 * end), data from 1 MiB. text2 NULL: one area only. */
static uint8_t *make_pv(const char *text1, const char *text2, bool bad2)
{
	uint8_t *pv = calloc(1, PV_SIZE);
	uint8_t *l = pv + 512;
	memcpy(l, "LABELONE", 8);
	put64(l + 8, 1);
	put32(l + 20, 32);
	memcpy(l + 24, "LVM2 001", 8);
	uint8_t *p = l + 32;
	memcpy(p, PVID, 32);
	put64(p + 32, PV_SIZE);
	put64(p + 40, 1 << 20); /* data area */
	p += 40 + 32;           /* + its zero terminator */
	put64(p, 4096);
	put64(p + 8, MDA_SIZE);
	if (text2) {
		put64(p + 16, PV_SIZE - MDA_SIZE);
		put64(p + 24, MDA_SIZE);
	}
	put32(l + 16, dv_lvm_crc(l + 20, 512 - 20));
	put_mda(pv, 4096, text1, false);
	if (text2)
		put_mda(pv, PV_SIZE - MDA_SIZE, text2, bad2);
	return pv;
}

static int read_pv(uint8_t *img, struct dv_lvm_pv_label *lab, char **why, char **note)
{
	int fd = memfd_create("pv", 0);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, img, PV_SIZE, 0), PV_SIZE);
	struct dv_source src = {.fd = fd, .path = "pv", .size = PV_SIZE, .sector_size = 512};
	struct dv_vol v;
	dv_vol_range(&v, &src, 0, PV_SIZE, "PV");
	int r = dv_lvm_pv_read(&v, lab, why, note);
	dv_vol_release(&v);
	close(fd);
	return r;
}

static void test_two_copies_newest(void **st)
{
	(void)st;
	char *t5 = vg_text(5, LVS_OK), *t7 = vg_text(7, LVS_OK);
	uint8_t *img = make_pv(t5, t7, false);
	struct dv_lvm_pv_label lab;
	char *why = NULL, *note = NULL;
	assert_int_equal(read_pv(img, &lab, &why, &note), 0);
	assert_string_equal(lab.uuid, PVID);
	assert_int_equal(lab.nmda, 2);
	assert_int_equal(lab.mda_ok, 2);
	assert_int_equal(lab.seqno, 7);
	assert_int_equal(lab.data_off, 1 << 20);
	assert_null(note);
	dv_lvm_pv_label_release(&lab);

	/* the newer copy's text fails its checksum: the older one is used, and said */
	free(img);
	img = make_pv(t5, t7, true);
	assert_int_equal(read_pv(img, &lab, &why, &note), 0);
	assert_int_equal(lab.seqno, 5);
	assert_int_equal(lab.mda_ok, 1);
	assert_non_null(note);
	assert_non_null(strstr(note, "metadata area 2"));
	assert_non_null(strstr(note, "checksum"));
	free(note);
	dv_lvm_pv_label_release(&lab);

	/* the only copy's header is damaged: no metadata at all */
	free(img);
	img = make_pv(t5, NULL, false);
	img[4096 + 30] ^= 1;
	note = NULL;
	assert_int_equal(read_pv(img, &lab, &why, &note), -1);
	assert_non_null(strstr(why, "checksum"));
	free(why);
	free(note);

	/* a damaged label */
	free(img);
	img = make_pv(t5, NULL, false);
	img[512 + 100] ^= 1;
	note = NULL;
	assert_int_equal(read_pv(img, &lab, &why, &note), -1);
	assert_non_null(strstr(why, "label"));
	free(why);
	free(img);
	free(t5);
	free(t7);
}

static void test_parse(void **st)
{
	(void)st;
	char *t = vg_text(3, LVS_OK), *why = NULL;
	struct dv_lvm_vg *vg = dv_lvm_parse(t, strlen(t), &why);
	assert_non_null(vg);
	assert_null(why);
	assert_string_equal(vg->name, "vg0");
	assert_int_equal(vg->seqno, 3);
	assert_int_equal(vg->extent_size, 8);
	assert_int_equal(vg->npvs, 2);
	assert_int_equal(vg->pvs[1].pe_count, 50);
	assert_int_equal(vg->nlvs, 4);
	const struct dv_lvm_lv *root = &vg->lvs[0];
	assert_string_equal(root->name, "root");
	assert_true(root->visible);
	assert_null(root->whole_why);
	assert_int_equal(root->nsegs, 2);
	/* sorted by start_extent whatever the section order */
	assert_int_equal(root->segs[0].start_extent, 0);
	assert_int_equal(root->segs[0].stripes[0].extent, 10);
	assert_int_equal(root->segs[1].stripes[0].extent, 0);
	assert_int_equal(root->extents, 8);
	const struct dv_lvm_lv *data = &vg->lvs[1];
	assert_int_equal(data->segs[0].stripe_count, 2);
	assert_int_equal(data->segs[0].stripe_size, 4);
	assert_int_equal(data->segs[0].stripes[1].pv, 1);
	assert_non_null(strstr(vg->lvs[2].whole_why, "thin-pool"));
	assert_false(vg->lvs[3].visible);
	assert_non_null(strstr(vg->lvs[3].whole_why, "hidden"));
	char plain[33];
	dv_lvm_uuid_plain(vg->pvs[0].uuid, plain);
	assert_string_equal(plain, PVID);
	dv_lvm_vg_free(vg);
	free(t);
}

/* Each of these must be refused with a reason, never half-parsed. */
static void test_parse_refused(void **st)
{
	(void)st;
	static const char *bad_lvs[] = {
		/* a gap between segments */
		"  a {\n status = [\"VISIBLE\"]\n segment_count = 2\n"
		"   segment1 { start_extent = 0 extent_count = 2 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 0] }\n"
		"   segment2 { start_extent = 3 extent_count = 2 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 5] }\n"
		"  }\n",
		/* two LVs on the same extents */
		"  a { segment_count = 1 segment1 { start_extent = 0 extent_count = 4 type = \"striped\" stripe_count = 1 "
		"stripes = [\"pv0\", 0] } }\n"
		"  b { segment_count = 1 segment1 { start_extent = 0 extent_count = 4 type = \"striped\" stripe_count = 1 "
		"stripes = [\"pv0\", 3] } }\n",
		/* an unknown PV */
		"  a { segment_count = 1 segment1 { start_extent = 0 extent_count = 4 type = \"striped\" stripe_count = 1 "
		"stripes = [\"pv9\", 0] } }\n",
		/* past the end of the PV */
		"  a { segment_count = 1 segment1 { start_extent = 0 extent_count = 4 type = \"striped\" stripe_count = 1 "
		"stripes = [\"pv1\", 48] } }\n",
		/* stripes that do not divide the extents */
		"  a { segment_count = 1 segment1 { start_extent = 0 extent_count = 5 type = \"striped\" stripe_count = 2 "
		"stripe_size = 4 stripes = [\"pv0\", 0, \"pv1\", 0] } }\n",
		/* a stripe size that is not a power of two */
		"  a { segment_count = 1 segment1 { start_extent = 0 extent_count = 4 type = \"striped\" stripe_count = 2 "
		"stripe_size = 3 stripes = [\"pv0\", 0, \"pv1\", 0] } }\n",
		/* fewer stripes than stripe_count */
		"  a { segment_count = 1 segment1 { start_extent = 0 extent_count = 4 type = \"striped\" stripe_count = 2 "
		"stripe_size = 4 stripes = [\"pv0\", 0] } }\n",
		/* segment_count disagrees */
		"  a { segment_count = 2 segment1 { start_extent = 0 extent_count = 4 type = \"striped\" stripe_count = 1 "
		"stripes = [\"pv0\", 0] } }\n",
		/* a string that never ends */
		"  a { id = \"x }\n",
		/* a float */
		"  a { x = 1.5 }\n",
	};
	for (size_t i = 0; i < sizeof bad_lvs / sizeof bad_lvs[0]; i++) {
		char *t = vg_text(1, bad_lvs[i]), *why = NULL;
		struct dv_lvm_vg *vg = dv_lvm_parse(t, strlen(t), &why);
		if (vg)
			fail_msg("case %zu was accepted", i);
		assert_non_null(why);
		free(why);
		free(t);
	}
	/* a pvmove's mirror takes extents straight from PVs */
	{
		char *t = vg_text(1, "  pvmove0 { segment_count = 1 segment1 { start_extent = 0 extent_count = 4 "
				     "type = \"mirror\" mirror_count = 2 mirrors = [\"pv0\", 0, \"pv1\", 0] } }\n");
		char *w = NULL;
		assert_null(dv_lvm_parse(t, strlen(t), &w));
		assert_non_null(strstr(w, "pvmove"));
		free(w);
		free(t);
	}
	/* an old-style snapshot makes its origin read whole */
	{
		char *t = vg_text(1, "  o { status = [\"VISIBLE\"] segment_count = 1 segment1 { start_extent = 0 "
				     "extent_count = 4 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 0] } }\n"
				     "  snapshot0 { segment_count = 1 segment1 { start_extent = 0 extent_count = 4 "
				     "type = \"snapshot\" chunk_size = 8 origin = \"o\" cow_store = \"s\" } }\n");
		char *w = NULL;
		struct dv_lvm_vg *vg = dv_lvm_parse(t, strlen(t), &w);
		assert_non_null(vg);
		assert_non_null(strstr(vg->lvs[0].whole_why, "origin of a snapshot"));
		dv_lvm_vg_free(vg);
		free(t);
	}
	/* nesting bomb */
	char *bomb = malloc(100000);
	size_t k = 0;
	for (int i = 0; i < 20000; i++)
		bomb[k++] = 'a', bomb[k++] = '{';
	char *why = NULL;
	assert_null(dv_lvm_parse(bomb, k, &why));
	assert_non_null(strstr(why, "deep"));
	free(why);
	/* not a VG at all, and two VGs */
	assert_null(dv_lvm_parse("x = 1\n", 6, &why));
	free(why);
	const char *two = "a { seqno = 1 }\nb { seqno = 1 }\n";
	assert_null(dv_lvm_parse(two, strlen(two), &why));
	free(why);
	free(bomb);
}

/* ---- md ------------------------------------------------------------------- */

static uint32_t fold(const uint8_t *b, size_t n, size_t skip)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n; i += 4)
		if (i != skip)
			s += (uint32_t)b[i] | (uint32_t)b[i + 1] << 8 | (uint32_t)b[i + 2] << 16 | (uint32_t)b[i + 3] << 24;
	return (uint32_t)((s & 0xffffffffu) + (s >> 32));
}

static int md_of(uint8_t *img, size_t size, struct dv_md_info *md, char **why)
{
	int fd = memfd_create("md", 0);
	assert_int_equal(pwrite(fd, img, size, 0), (ssize_t)size);
	struct dv_source src = {.fd = fd, .path = "md", .size = size, .sector_size = 512};
	struct dv_vol v;
	dv_vol_range(&v, &src, 0, size, "member");
	int r = dv_md_read(&v, md, why);
	dv_vol_release(&v);
	close(fd);
	return r;
}

static void test_md(void **st)
{
	(void)st;
	const size_t size = 8u << 20;
	uint8_t *img = calloc(1, size);
	struct dv_md_info md;
	char *why = NULL;
	assert_int_equal(md_of(img, size, &md, &why), 1); /* nothing there */

	/* 1.2 at 4 KiB: RAID1, data at 1 MiB, 6 MiB of it */
	uint8_t *b = img + 4096;
	put32(b, 0xa92b4efc);
	put32(b + 4, 1);
	for (int i = 0; i < 16; i++)
		b[16 + i] = (uint8_t)(0x10 + i);
	memcpy(b + 32, "host:0", 6);
	put32(b + 72, 1);
	put64(b + 80, (6u << 20) / 512);
	put32(b + 92, 2);
	put64(b + 128, 2048);
	put64(b + 136, (6u << 20) / 512);
	put64(b + 144, 8);
	put32(b + 220, 2);
	put32(b + 216, fold(b, 256 + 4, 216));
	assert_int_equal(md_of(img, size, &md, &why), 0);
	assert_string_equal(md.metadata, "1.2");
	assert_int_equal(md.level, 1);
	assert_int_equal(md.data_off, 1 << 20);
	assert_int_equal(md.size, 6u << 20);
	assert_string_equal(md.name, "host:0");
	assert_string_equal(md.uuid, "10111213:14151617:18191a1b:1c1d1e1f");
	b[100] ^= 1; /* checksum fails */
	assert_int_equal(md_of(img, size, &md, &why), -1);
	assert_non_null(strstr(why, "checksum"));
	free(why);
	memset(b, 0, 1024);

	/* 0.90 in the last 64 KiB-aligned 64 KiB: RAID1 of 7 MiB */
	b = img + size - 65536;
	put32(b, 0xa92b4efc);
	put32(b + 8, 90);
	put32(b + 7 * 4, 1);
	put32(b + 8 * 4, 7 * 1024);
	put32(b + 10 * 4, 2);
	put32(b + 5 * 4, 0xdeadbeef);
	put32(b + 38 * 4, fold(b, 4096, 38 * 4));
	assert_int_equal(md_of(img, size, &md, &why), 0);
	assert_string_equal(md.metadata, "0.90");
	assert_int_equal(md.data_off, 0);
	assert_int_equal(md.size, 7u << 20);
	assert_string_equal(md.uuid, "deadbeef:00000000:00000000:00000000");
	/* a size past the superblock is refused */
	put32(b + 8 * 4, 8 * 1024);
	put32(b + 38 * 4, fold(b, 4096, 38 * 4));
	assert_int_equal(md_of(img, size, &md, &why), -1);
	free(why);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_copies_newest),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_md),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
