/* Chunker properties, hashing vectors and zero detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "chunk/chunk.h"

/* Deterministic pseudo-random bytes (xorshift64*). */
static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed | 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		p[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> 56);
	}
}

/* Cut positions of data fed in pieces of `piece` bytes (0: all at once). */
static size_t cuts(const struct dv_chunker_params *pr, const uint8_t *p, size_t n, size_t piece, size_t *out,
		   size_t max)
{
	struct dv_chunker *c = dv_chunker_new(pr);
	size_t ncut = 0, pos = 0, step = piece ? piece : n;
	while (pos < n) {
		size_t len = n - pos < step ? n - pos : step;
		size_t k = dv_chunker_scan(c, p + pos, len);
		if (k) {
			pos += k;
			if (ncut < max)
				out[ncut] = pos;
			ncut++;
		} else {
			pos += len;
		}
	}
	dv_chunker_free(c);
	return ncut;
}

static void test_boundaries_within_limits(void **state)
{
	(void)state;
	struct dv_chunker_params pr;
	dv_chunker_params_default(&pr);
	size_t n = 32u << 20;
	uint8_t *p = malloc(n);
	fill_random(p, n, 42);
	size_t *c = calloc(4096, sizeof *c);
	size_t k = cuts(&pr, p, n, 0, c, 4096);
	assert_true(k > 40 && k < 4096);
	size_t prev = 0;
	for (size_t i = 0; i < k; i++) {
		size_t len = c[i] - prev;
		assert_true(len >= pr.min);
		assert_true(len <= pr.max);
		prev = c[i];
	}
	/* Normalized chunking keeps the mean near avg on random data. */
	double mean = (double)prev / (double)k;
	assert_true(mean > pr.avg * 0.6 && mean < pr.avg * 1.6);
	free(c);
	free(p);
}

static void test_streaming_equals_whole(void **state)
{
	(void)state;
	struct dv_chunker_params pr;
	dv_chunker_params_default(&pr);
	size_t n = 8u << 20;
	uint8_t *p = malloc(n);
	fill_random(p, n, 7);
	size_t a[256], b[256], d[256];
	size_t ka = cuts(&pr, p, n, 0, a, 256);
	size_t kb = cuts(&pr, p, n, 4093, b, 256); /* odd piece size */
	size_t kd = cuts(&pr, p, n, 1, d, 256) ;   /* byte by byte */
	assert_int_equal(ka, kb);
	assert_int_equal(ka, kd);
	assert_memory_equal(a, b, ka * sizeof *a);
	assert_memory_equal(a, d, ka * sizeof *a);
	free(p);
}

static void test_resync_after_insert(void **state)
{
	(void)state;
	struct dv_chunker_params pr;
	dv_chunker_params_default(&pr);
	size_t n = 16u << 20;
	uint8_t *p = malloc(n + 100);
	fill_random(p, n, 9);
	size_t a[512], b[512];
	size_t ka = cuts(&pr, p, n, 0, a, 512);
	/* Insert 100 bytes at 1 MiB: later boundaries shift by exactly 100. */
	memmove(p + (1u << 20) + 100, p + (1u << 20), n - (1u << 20));
	memset(p + (1u << 20), 0xAB, 100);
	size_t kb = cuts(&pr, p, n + 100, 0, b, 512);
	size_t same = 0;
	for (size_t i = 0; i < ka; i++)
		for (size_t j = 0; j < kb; j++)
			if (a[i] > (3u << 20) && b[j] == a[i] + 100)
				same++;
	size_t after = 0;
	for (size_t i = 0; i < ka; i++)
		if (a[i] > (3u << 20))
			after++;
	assert_true(after > 10);
	assert_int_equal(same, after);
	free(p);
}

static void test_seed_changes_boundaries(void **state)
{
	(void)state;
	struct dv_chunker_params pr, ps;
	dv_chunker_params_default(&pr);
	ps = pr;
	ps.seed[0] = 1;
	size_t n = 8u << 20;
	uint8_t *p = malloc(n);
	fill_random(p, n, 11);
	size_t a[256], b[256];
	size_t ka = cuts(&pr, p, n, 0, a, 256), kb = cuts(&ps, p, n, 0, b, 256);
	assert_false(ka == kb && !memcmp(a, b, ka * sizeof *a));
	free(p);
}

static void test_params_check(void **state)
{
	(void)state;
	struct dv_chunker_params pr;
	struct dv_err err;
	dv_chunker_params_default(&pr);
	assert_int_equal(dv_chunker_params_check(&pr, &err), 0);
	pr.avg = 300000; /* not a power of two */
	assert_int_equal(dv_chunker_params_check(&pr, &err), -DV_E_USAGE);
	dv_chunker_params_default(&pr);
	pr.min = pr.avg;
	assert_int_equal(dv_chunker_params_check(&pr, &err), -DV_E_USAGE);
	dv_chunker_params_default(&pr);
	pr.max = DV_CHUNK_SIZE_LIMIT + 1;
	assert_int_equal(dv_chunker_params_check(&pr, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "maximum"));
}

static void test_hash_vectors(void **state)
{
	(void)state;
	struct dv_id id;
	char hex[DV_ID_HEX_LEN + 1];
	dv_sha256("abc", 3, &id);
	dv_id_hex(hex, &id);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	uint8_t key[32];
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	dv_chunk_id(key, "diskvault", 9, &id);
	dv_id_hex(hex, &id);
	assert_string_equal(hex, "5cbb8b2a28654d703b740d915bc72b8715a5071a8881242181b561cdc862ddda");
	/* Streaming equals one-shot. */
	struct dv_sha256_ctx *c = dv_sha256_new();
	dv_sha256_update(c, "a", 1);
	dv_sha256_update(c, "bc", 2);
	struct dv_id id2;
	dv_sha256_final(c, &id2);
	dv_sha256("abc", 3, &id);
	assert_true(dv_id_eq(&id, &id2));
	struct dv_id parsed;
	assert_int_equal(dv_id_parse(&parsed, hex), 0);
	assert_int_equal(dv_id_parse(&parsed, "zz"), -1);
}

static void test_zero_detection(void **state)
{
	(void)state;
	uint8_t buf[4096 + 7];
	memset(buf, 0, sizeof buf);
	assert_true(dv_is_zero(buf, sizeof buf));
	for (size_t i = 0; i < sizeof buf; i += 509) {
		buf[i] = 1;
		assert_false(dv_is_zero(buf, sizeof buf));
		buf[i] = 0;
	}
	buf[sizeof buf - 1] = 0x80; /* in the unaligned tail */
	assert_false(dv_is_zero(buf, sizeof buf));
	assert_true(dv_is_zero(buf, sizeof buf - 1));
	assert_true(dv_is_zero(dv_zero_block(), DV_ZERO_BLOCK));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_boundaries_within_limits),
		cmocka_unit_test(test_streaming_equals_whole),
		cmocka_unit_test(test_resync_after_insert),
		cmocka_unit_test(test_seed_changes_boundaries),
		cmocka_unit_test(test_params_check),
		cmocka_unit_test(test_hash_vectors),
		cmocka_unit_test(test_zero_detection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
