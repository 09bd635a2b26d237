/* test_ebs.c - EBS direct helpers: block and LINEAR checksums (values
 * recomputed with Python's hashlib), answer and error parsing on good and
 * hostile input, the EC2 DescribeSnapshots status parser, the
 * CompleteSnapshot answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "aws/ebs.h"

static void test_block_checksum(void **state)
{
	(void)state;
	uint8_t *b = calloc(1, DV_EBS_BLOCK_SIZE);
	uint8_t d0[32], d1[32];
	char ck[45];
	dv_ebs_block_checksum(b, DV_EBS_BLOCK_SIZE, d0, ck);
	assert_string_equal(ck, "B4VNL+8pega6gWheZgwzLeNtXRjVRpJ9MNqtbX/aFUE="); /* the captured CLI answer */
	memset(b, 7, DV_EBS_BLOCK_SIZE);
	dv_ebs_block_checksum(b, DV_EBS_BLOCK_SIZE, d1, ck);
	assert_string_equal(ck, "tAwxgAgWAt0K1xXWD3v780t3erlGZ/MYbDLRljAlS8c=");
	free(b);

	/* LINEAR: SHA-256 over the raw digests in block-index order */
	uint8_t dg[2][32];
	memcpy(dg[0], d0, 32);
	memcpy(dg[1], d1, 32);
	dv_ebs_linear_checksum((const uint8_t(*)[32])dg, 2, ck);
	assert_string_equal(ck, "swwX/cYHC0T7BaIeF4zQYr3Gtg5q+jcgZDMroGpM1eE=");
	dv_ebs_linear_checksum((const uint8_t(*)[32])dg, 0, ck);
	assert_string_equal(ck, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

static void test_parse_snapshot(void **state)
{
	(void)state;
	struct dv_ebs_snapshot_info s;
	struct dv_err e;
	const char *ok = "{\"SnapshotId\": \"snap-0123456789abcdef0\", \"OwnerId\": \"123456789012\", \"Status\": "
			 "\"pending\", \"StartTime\": 1795618134.6274211, \"VolumeSize\": 8, \"BlockSize\": 524288, "
			 "\"ParentSnapshotId\": \"snap-1\"}";
	assert_int_equal(dv_ebs_parse_snapshot(ok, strlen(ok), &s, &e), 0);
	assert_string_equal(s.id, "snap-0123456789abcdef0");
	assert_string_equal(s.status, "pending");
	assert_string_equal(s.parent, "snap-1");
	assert_int_equal(s.volume_size, 8);
	static const char *const bad[] = {
		"", "[]", "{\"Status\": \"pending\"}", "{\"SnapshotId\": 5}",
		"{\"SnapshotId\": \"snap-1\", \"BlockSize\": 4096}", "{\"SnapshotId\": \"snap-1\", \"VolumeSize\": -1}",
		"{\"SnapshotId\": \"snap-1\", \"SnapshotId\": \"snap-2\"}", "{\"SnapshotId\": \"snap-1\"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(dv_ebs_parse_snapshot(bad[i], strlen(bad[i]), &s, &e), -DV_E_REMOTE);
	char *longid = malloc(300);
	strcpy(longid, "{\"SnapshotId\": \"");
	memset(longid + 16, 'a', 200);
	strcpy(longid + 216, "\"}");
	assert_int_equal(dv_ebs_parse_snapshot(longid, strlen(longid), &s, &e), -DV_E_REMOTE);
	free(longid);
}

static void test_parse_error(void **state)
{
	(void)state;
	struct dv_ebs_error x;
	const char *b = "{\"Message\": \"The snapshot 'snap-1' does not exist.\", \"Reason\": \"SNAPSHOT_NOT_FOUND\"}";
	dv_ebs_parse_error("ResourceNotFoundException:http://internal.amazon.com/coral/", b, strlen(b), &x);
	assert_string_equal(x.type, "ResourceNotFoundException");
	assert_string_equal(x.reason, "SNAPSHOT_NOT_FOUND");
	assert_string_equal(x.message, "The snapshot 'snap-1' does not exist.");
	assert_false(dv_ebs_retryable(404, x.type));
	b = "{\"__type\": \"com.amazon.coral#ThrottlingException\", \"message\": \"Rate\\nexceeded\"}";
	dv_ebs_parse_error(NULL, b, strlen(b), &x);
	assert_string_equal(x.type, "ThrottlingException");
	assert_string_equal(x.message, "Rate exceeded"); /* control characters never reach a terminal */
	assert_true(dv_ebs_retryable(400, x.type));
	assert_true(dv_ebs_retryable(400, "RequestThrottledException"));
	assert_true(dv_ebs_retryable(503, ""));
	assert_false(dv_ebs_retryable(400, "ValidationException"));
	assert_false(dv_ebs_retryable(403, "AccessDeniedException"));
	dv_ebs_parse_error(NULL, "<html>", 6, &x); /* not JSON: empty, no crash */
	assert_string_equal(x.type, "");
	dv_ebs_parse_error(NULL, NULL, 0, &x);
	assert_string_equal(x.message, "");
}

struct got {
	uint64_t idx[8];
	char tok[8][300];
	size_t n;
};

static int collect(uint64_t index, const char *token, void *ctx)
{
	struct got *g = ctx;
	if (g->n >= 8)
		return -DV_E_FAIL;
	g->idx[g->n] = index;
	strcpy(g->tok[g->n++], token);
	return 0;
}

static void test_parse_block_list(void **state)
{
	(void)state;
	struct got g = {0};
	char *next = NULL;
	struct dv_err e;
	const char *ok = "{\"Blocks\": [{\"BlockIndex\": 0, \"BlockToken\": \"tok0\"}, {\"BlockIndex\": 7, \"BlockToken\": "
			 "\"a+b/c==\"}], \"ExpiryTime\": 1795621738.7, \"VolumeSize\": 1, \"BlockSize\": 524288, "
			 "\"NextToken\": \"n1\"}";
	assert_int_equal(dv_ebs_parse_block_list(ok, strlen(ok), collect, &g, &next, &e), 0);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.idx[1], 7);
	assert_string_equal(g.tok[1], "a+b/c==");
	assert_string_equal(next, "n1");
	free(next);
	static const char *const bad[] = {
		"nope",
		"{\"Blocks\": {}}",
		"{\"Blocks\": [{\"BlockIndex\": -1, \"BlockToken\": \"t\"}]}",
		"{\"Blocks\": [{\"BlockIndex\": \"1\", \"BlockToken\": \"t\"}]}",
		"{\"Blocks\": [{\"BlockIndex\": 1}]}",
		"{\"Blocks\": [], \"BlockSize\": 4096}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		g.n = 0;
		assert_int_equal(dv_ebs_parse_block_list(bad[i], strlen(bad[i]), collect, &g, &next, &e), -DV_E_REMOTE);
		assert_null(next);
	}
	/* a token longer than the model's 256 */
	char big[600];
	strcpy(big, "{\"Blocks\": [{\"BlockIndex\": 1, \"BlockToken\": \"");
	size_t l = strlen(big);
	memset(big + l, 'x', 300);
	strcpy(big + l + 300, "\"}]}");
	assert_int_equal(dv_ebs_parse_block_list(big, strlen(big), collect, &g, &next, &e), -DV_E_REMOTE);
}

static void test_ec2_status(void **state)
{
	(void)state;
	char st[16];
	struct dv_err e;
	const char *x = "<?xml version=\"1.0\"?><DescribeSnapshotsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
			"<requestId>r</requestId><snapshotSet><item><snapshotId>snap-a</snapshotId><status>pending</status>"
			"<tagSet><item><key>status</key><value>x</value></item></tagSet></item><item><snapshotId>snap-b"
			"</snapshotId><status>completed</status></item></snapshotSet></DescribeSnapshotsResponse>";
	assert_int_equal(dv_ec2_parse_snapshot_status(x, strlen(x), "snap-b", st, sizeof st, &e), 0);
	assert_string_equal(st, "completed");
	assert_int_equal(dv_ec2_parse_snapshot_status(x, strlen(x), "snap-a", st, sizeof st, &e), 0);
	assert_string_equal(st, "pending");
	assert_int_equal(dv_ec2_parse_snapshot_status(x, strlen(x), "snap-c", st, sizeof st, &e), -DV_E_NOT_FOUND);
	const char *empty = "<DescribeSnapshotsResponse><snapshotSet/></DescribeSnapshotsResponse>";
	assert_int_equal(dv_ec2_parse_snapshot_status(empty, strlen(empty), "snap-a", st, sizeof st, &e), -DV_E_NOT_FOUND);
	const char *ent = "<!DOCTYPE a [<!ENTITY x \"snap-a\">]><a><snapshotSet><item><snapshotId>&x;</snapshotId>"
			  "<status>completed</status></item></snapshotSet></a>";
	assert_int_equal(dv_ec2_parse_snapshot_status(ent, strlen(ent), "snap-a", st, sizeof st, &e), -DV_E_REMOTE);
	assert_int_equal(dv_ec2_parse_snapshot_status("<a>", 3, "snap-a", st, sizeof st, &e), -DV_E_REMOTE);
}

static void test_parse_complete(void **state)
{
	(void)state;
	char st[16];
	static const char ok[] = "{\"Status\":\"completed\"}"; /* no NUL within len */
	dv_ebs_parse_complete(ok, sizeof ok - 1, st, sizeof st);
	assert_string_equal(st, "completed");
	dv_ebs_parse_complete("{\"Status\": \"pending\"}", 21, st, sizeof st);
	assert_string_equal(st, "pending");
	/* nothing usable: the service's documented initial state */
	const char *bad[] = {"", "{}", "[\"completed\"]", "{\"Status\": 3}", "{\"Status\": \"\"}", "not json"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		memset(st, 'x', sizeof st);
		dv_ebs_parse_complete(bad[i], strlen(bad[i]), st, sizeof st);
		assert_string_equal(st, "pending");
	}
	dv_ebs_parse_complete(NULL, 0, st, sizeof st);
	assert_string_equal(st, "pending");
	const char *longer = "{\"Status\": \"completed-and-then-some-more\"}";
	dv_ebs_parse_complete(longer, strlen(longer), st, sizeof st);
	assert_string_equal(st, "completed-and-t"); /* truncated to fit */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_checksum), cmocka_unit_test(test_parse_snapshot),
		cmocka_unit_test(test_parse_error),    cmocka_unit_test(test_parse_block_list),
		cmocka_unit_test(test_ec2_status),    cmocka_unit_test(test_parse_complete),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
