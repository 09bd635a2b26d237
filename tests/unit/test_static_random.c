/*
 * dv_random_bytes on kernels without getrandom(2) (< 3.17, e.g. CentOS 7's
 * 3.10): the /dev/urandom fallback, forced by DISKVAULT_TEST_NO_GETRANDOM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/util.h"

static int nonzero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 1;
	return 0;
}

static void check_random(void)
{
	uint8_t a[4096], b[4096];
	memset(a, 0, sizeof a);
	memset(b, 0, sizeof b);
	dv_random_bytes(a, sizeof a);
	dv_random_bytes(b, sizeof b);
	assert_true(nonzero(a, sizeof a));
	assert_true(memcmp(a, b, sizeof a) != 0);
	/* the tail is filled too, not only a first short read */
	assert_true(nonzero(a + sizeof a - 64, 64));
	uint8_t one = 0, seen = 0;
	for (int i = 0; i < 64; i++) {
		dv_random_bytes(&one, 1);
		seen |= one;
	}
	assert_int_equal(seen, 0xff);
}

static void test_getrandom(void **state)
{
	(void)state;
	unsetenv("DISKVAULT_TEST_NO_GETRANDOM");
	check_random();
}

static void test_urandom_fallback(void **state)
{
	(void)state;
	setenv("DISKVAULT_TEST_NO_GETRANDOM", "1", 1);
	check_random();
	unsetenv("DISKVAULT_TEST_NO_GETRANDOM");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_getrandom),
		cmocka_unit_test(test_urandom_fallback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
