/* test_users_duration.c - dv_parse_duration: restic's retention units
 * pinned against calendar dates, the --lock-wait grammar, and what both
 * refuse (issue 16). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/util.h"

/* "2024-03-31T12:00:00Z" minus s (a retention duration), formatted */
static const char *before(const char *when, const char *s)
{
	static char out[32];
	struct dv_duration d;
	int64_t t;
	assert_int_equal(dv_parse_time(when, &t), 0);
	assert_true(dv_parse_duration(s, DV_DUR_RETENTION, &d));
	dv_format_time(out, sizeof out, dv_duration_before(t, &d));
	return out;
}

static void test_retention_calendar(void **state)
{
	(void)state;
	const char *t = "2024-03-31T12:00:00Z";
	assert_string_equal(before(t, "1y"), "2023-03-31T12:00:00Z");
	assert_string_equal(before(t, "6m"), "2023-10-01T12:00:00Z"); /* months, not minutes; "Sep 31" is Oct 1 */
	assert_string_equal(before("2024-03-15T12:00:00Z", "6m"), "2023-09-15T12:00:00Z");
	assert_string_equal(before(t, "1m"), "2024-03-02T12:00:00Z"); /* "Feb 31" normalised, as restic */
	assert_string_equal(before(t, "2w"), "2024-03-17T12:00:00Z");
	assert_string_equal(before(t, "14d"), "2024-03-17T12:00:00Z");
	assert_string_equal(before(t, "36h"), "2024-03-30T00:00:00Z");
	assert_string_equal(before(t, "1y6m2d"), "2022-09-29T12:00:00Z");
	assert_string_equal(before(t, "1y6m2d3h"), "2022-09-29T09:00:00Z");
	assert_string_equal(before(t, "1w2d"), "2024-03-22T12:00:00Z");
	/* leap day: one year back from 2024-02-29 is 2023-03-01 */
	assert_string_equal(before("2024-02-29T00:00:00Z", "1y"), "2023-03-01T00:00:00Z");
	/* across a year end */
	assert_string_equal(before("2024-01-15T00:00:00Z", "2m"), "2023-11-15T00:00:00Z");
}

static void test_retention_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {"", "6", "inf", "nan", "1e1d", "1.5d", "-1d", "+1d", "1 d", "d", "1dd",
					  "1d1y", "1m1m", "6M", "90s", "15min", "1h30m", "1y6m2d0", "0x10d",
					  "9999999d", "100001d"};
	struct dv_duration d;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (dv_parse_duration(bad[i], DV_DUR_RETENTION, &d))
			fail_msg("retention duration '%s' was accepted", bad[i]);
	assert_true(dv_parse_duration("0d", DV_DUR_RETENTION, &d));
	assert_true(dv_duration_is_zero(&d)); /* the callers refuse a zero span */
	assert_true(dv_parse_duration("100000d", DV_DUR_RETENTION, &d));
	assert_int_equal(d.days, 100000);
}

static double wait_s(const char *s)
{
	struct dv_duration d;
	if (!dv_parse_duration(s, DV_DUR_WAIT, &d))
		return -1;
	return dv_duration_seconds(&d);
}

static void test_wait(void **state)
{
	(void)state;
	assert_true(wait_s("90") == 90);
	assert_true(wait_s("90s") == 90);
	assert_true(wait_s("15m") == 900); /* minutes for a wait, as Go's ParseDuration */
	assert_true(wait_s("2h") == 7200);
	assert_true(wait_s("1h30m") == 5400);
	assert_true(wait_s("1d") == 86400);
	assert_true(wait_s("0") == 0);
	static const char *const bad[] = {"", "1y", "1w", "inf", "nan", "1e1", "1e1s", "1.5m", "-5s", "soon",
					  "30m1h", "5ss", "1234567"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (wait_s(bad[i]) >= 0)
			fail_msg("wait duration '%s' was accepted", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retention_calendar),
		cmocka_unit_test(test_retention_refused),
		cmocka_unit_test(test_wait),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
