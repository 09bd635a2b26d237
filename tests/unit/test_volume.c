/* Piece maps (src/disk/volume.c): a volume reads the bytes of its
 * segments, linear and striped, across two disks, and its ranges map back
 * to exactly the disk bytes they came from. */
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

#include "disk/probe_internal.h"

#define DISK (1u << 20)

/* A disk in a memfd whose byte i is (i * 7 + salt) & 0xff. */
static struct dv_source disk(int salt)
{
	int fd = memfd_create("disk", 0);
	assert_true(fd >= 0);
	uint8_t *b = malloc(DISK);
	for (size_t i = 0; i < DISK; i++)
		b[i] = (uint8_t)(i * 7 + (size_t)salt);
	assert_int_equal(pwrite(fd, b, DISK, 0), DISK);
	free(b);
	return (struct dv_source){.fd = fd, .path = salt ? "b" : "a", .size = DISK, .sector_size = 512};
}

static uint8_t byte_of(const struct dv_source *s, uint64_t off)
{
	return (uint8_t)(off * 7 + (s->path[0] == 'b'));
}

/* Volume: 4096 linear bytes at 8192 of A, then 4 stripes of 1024 over
 * (A at 65536, B at 131072) = 8192 bytes, then 100 bytes at 5 of B. */
static void build(struct dv_vol *v, const struct dv_source *a, const struct dv_source *b)
{
	dv_vol_init(v, "LV %s", "vg/lv");
	dv_vol_add_linear(v, a, 8192, 4096);
	struct dv_vol_area ar[2] = {{a, 65536}, {b, 131072}};
	assert_int_equal(dv_vol_add_striped(v, ar, 2, 1024, 8192), 0);
	assert_int_equal(dv_vol_add_striped(v, ar, 2, 1024, 1000), -1); /* not whole stripes */
	dv_vol_add_linear(v, b, 5, 100);
	assert_int_equal(v->size, 4096 + 8192 + 100);
}

/* Where volume byte x lies, computed independently of volume.c. */
static void expect_at(const struct dv_source *a, const struct dv_source *b, uint64_t x, const struct dv_source **s,
		      uint64_t *off)
{
	if (x < 4096) {
		*s = a, *off = 8192 + x;
	} else if (x < 4096 + 8192) {
		uint64_t r = x - 4096, stripe = r / 1024;
		*s = stripe % 2 ? b : a;
		*off = (stripe % 2 ? 131072 : 65536) + (stripe / 2) * 1024 + r % 1024;
	} else {
		*s = b, *off = 5 + (x - 4096 - 8192);
	}
}

static void test_read(void **state)
{
	(void)state;
	struct dv_source a = disk(0), b = disk(1);
	struct dv_vol v;
	build(&v, &a, &b);
	uint8_t buf[4096 + 8192 + 100];
	struct dv_err err;
	assert_int_equal(dv_vol_read(&v, 0, buf, sizeof buf, &err), 0);
	for (uint64_t x = 0; x < sizeof buf; x++) {
		const struct dv_source *s;
		uint64_t off;
		expect_at(&a, &b, x, &s, &off);
		if (buf[x] != byte_of(s, off))
			fail_msg("volume byte %llu", (unsigned long long)x);
	}
	/* an unaligned read across the linear/striped boundary */
	assert_int_equal(dv_vol_read(&v, 4000, buf, 3000, &err), 0);
	const struct dv_source *s;
	uint64_t off;
	expect_at(&a, &b, 6999, &s, &off);
	assert_int_equal(buf[2999], byte_of(s, off));
	assert_int_equal(dv_vol_read(&v, v.size - 10, buf, 11, &err), -DV_E_CORRUPT);
	assert_non_null(strstr(err.msg, "LV vg/lv"));
	dv_vol_release(&v);
	close(a.fd);
	close(b.fd);
}

static void test_to_disk(void **state)
{
	(void)state;
	struct dv_source a = disk(0), b = disk(1);
	struct dv_vol v;
	build(&v, &a, &b);
	struct dv_ivl_list in = {0}, on_a = {0}, on_b = {0};
	dv_ivl_add(&in, 4000, 3000);   /* 96 linear bytes, then stripes 0..2 (part) */
	dv_ivl_add(&in, 12280, 1000);  /* the last 8 striped bytes, the linear tail, and past the end */
	dv_vol_to_disk(&v, &a, &in, &on_a);
	dv_vol_to_disk(&v, &b, &in, &on_b);
	uint64_t total = 0;
	for (size_t i = 0; i < on_a.n; i++)
		total += on_a.v[i].len;
	for (size_t i = 0; i < on_b.n; i++)
		total += on_b.v[i].len;
	assert_int_equal(total, 3000 + 8 + 100); /* clipped at the volume's end */
	/* every mapped byte is the one the volume reads at that place */
	assert_int_equal(on_a.v[0].off, 8192 + 4000);
	assert_int_equal(on_a.v[0].len, 96);
	assert_int_equal(on_a.v[1].off, 65536);
	assert_int_equal(on_a.v[1].len, 1024);
	assert_int_equal(on_b.v[0].off, 131072);
	assert_int_equal(on_b.v[0].len, 1024);
	assert_int_equal(on_a.v[2].off, 65536 + 1024);
	assert_int_equal(on_a.v[2].len, 3000 - 96 - 2048);
	assert_int_equal(on_b.v[1].off, 131072 + 3 * 1024 + 1016);
	assert_int_equal(on_b.v[1].len, 8);
	assert_int_equal(on_b.v[2].off, 5);
	assert_int_equal(on_b.v[2].len, 100);
	dv_ivl_release(&in);
	dv_ivl_release(&on_a);
	dv_ivl_release(&on_b);
	dv_vol_release(&v);
	close(a.fd);
	close(b.fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_to_disk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
