/*
 * The store contract (store.h) on the S3 backend, against a live endpoint.
 * Runs when DV_S3_TEST_REPO=s3://bucket/prefix names a writable location
 * (with the AWS_* environment of tests/servers/swift-s3-start.sh); skips
 * otherwise. tests/integration/t_s3_store.sh starts a server and runs it.
 *
 * Helper mode for the resume tests: `test_store_s3 put-file LOCATION NAME
 * FILE` copies FILE into the store's spool dir and publishes it as NAME.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

static const char *repo(void)
{
	const char *r = getenv("DV_S3_TEST_REPO");
	return r && *r ? r : NULL;
}

static struct dv_store *open_store(void)
{
	struct dv_store *s = NULL;
	struct dv_err err;
	int r = dv_store_open(repo(), true, &s, &err);
	if (r < 0)
		print_error("open %s: %s\n", repo(), err.msg);
	assert_int_equal(r, 0);
	assert_false(dv_store_is_local(s));
	return s;
}

static int count_cb(const char *name, uint64_t size, void *ctx)
{
	(void)size;
	if (!strncmp(name, "t/", 2))
		(*(int *)ctx)++;
	return 0;
}

static void test_contract(void **state)
{
	(void)state;
	if (!repo())
		skip();
	struct dv_store *s = open_store();
	struct dv_err err;
	struct dv_buf b = DV_BUF_INIT;
	uint64_t size;

	/* missing objects */
	assert_int_equal(dv_store_get(s, "t/missing", 100, &b, &err), -DV_E_NOT_FOUND);
	assert_int_equal(dv_store_stat(s, "t/missing", &size, &err), -DV_E_NOT_FOUND);
	int rr = dv_store_get_range(s, "t/missing", 0, 4, &b, &err);
	if (rr != -DV_E_NOT_FOUND)
		print_error("%s\n", err.msg);
	assert_int_equal(rr, -DV_E_NOT_FOUND);
	assert_int_equal(dv_store_delete(s, "t/missing", &err), 0);

	/* put / get / range / stat; names with characters that need encoding */
	const char *names[] = {"t/a", "t/sub dir/b+c=d&e", "t/utf8-\xc3\xa9", "t/empty"};
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(dv_store_put(s, names[i], "hello, world", 12, &err), 0);
		assert_int_equal(dv_store_get(s, names[i], 100, &b, &err), 0);
		assert_int_equal(b.len, 12);
		assert_memory_equal(b.data, "hello, world", 12);
	}
	assert_int_equal(dv_store_put(s, "t/empty", "", 0, &err), 0);
	assert_int_equal(dv_store_stat(s, "t/empty", &size, &err), 0);
	assert_int_equal(size, 0);
	assert_int_equal(dv_store_get(s, "t/empty", 100, &b, &err), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(dv_store_stat(s, "t/a", &size, &err), 0);
	assert_int_equal(size, 12);
	assert_int_equal(dv_store_get_range(s, "t/a", 7, 5, &b, &err), 0);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "world", 5);
	assert_int_equal(dv_store_get_range(s, "t/a", 0, 0, &b, &err), 0);
	assert_int_equal(b.len, 0);
	/* cap and truncation */
	assert_int_equal(dv_store_get(s, "t/a", 5, &b, &err), -DV_E_CORRUPT);
	assert_int_equal(dv_store_get_range(s, "t/a", 10, 5, &b, &err), -DV_E_CORRUPT);
	assert_int_equal(dv_store_get_range(s, "t/a", 100, 5, &b, &err), -DV_E_CORRUPT);
	/* overwrite is atomic: whole new content */
	assert_int_equal(dv_store_put(s, "t/a", "second", 6, &err), 0);
	assert_int_equal(dv_store_get(s, "t/a", 100, &b, &err), 0);
	assert_int_equal(b.len, 6);

	int n = 0;
	assert_int_equal(dv_store_list(s, "t/", count_cb, &n, &err), 0);
	assert_int_equal(n, 4);
	/* DeleteObjects in batches of 3 (keys that need XML escaping, and a
	 * missing one), then single deletes of what is already gone */
	setenv("DISKVAULT_S3_DELETE_BATCH", "3", 1);
	char *many[5];
	for (size_t i = 0; i < 4; i++)
		many[i] = (char *)names[i];
	many[4] = (char *)"t/missing";
	int dr = dv_store_delete_many(s, many, 5, &err);
	if (dr < 0)
		print_error("delete_many: %s\n", err.msg);
	assert_int_equal(dr, 0);
	unsetenv("DISKVAULT_S3_DELETE_BATCH");
	assert_int_equal(dv_store_stat(s, names[1], &size, &err), -DV_E_NOT_FOUND);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(dv_store_delete(s, names[i], &err), 0);
	n = 0;
	assert_int_equal(dv_store_list(s, "t/", count_cb, &n, &err), 0);
	assert_int_equal(n, 0);
	dv_buf_release(&b);
	dv_store_free(s);
}

static char *spool_copy(struct dv_store *s, const void *data, size_t len)
{
	char *p = dv_asprintf("%s/test-%d.tmp", dv_store_spool_dir(s), (int)getpid());
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	struct dv_err err;
	assert_int_equal(dv_write_all(fd, data, len, &err, p), 0);
	close(fd);
	return p;
}

static void test_put_file(void **state)
{
	(void)state;
	if (!repo())
		skip();
	setenv("DISKVAULT_S3_PART_SIZE", "5M", 1);
	setenv("DISKVAULT_S3_MULTIPART_THRESHOLD", "5M", 1);
	struct dv_store *s = open_store();
	struct dv_err err;
	size_t len = (size_t)(17 << 20) + 12345; /* 4 parts, a short last one */
	uint8_t *data = dv_malloc(len);
	dv_random_bytes(data, len);
	for (int round = 0; round < 2; round++) {
		size_t l = round ? 1000 : len; /* multipart, then a plain PUT */
		char *p = spool_copy(s, data, l);
		int r = dv_store_put_file(s, "t/big", p, &err);
		if (r < 0)
			print_error("put_file: %s\n", err.msg);
		assert_int_equal(r, 0);
		uint64_t size;
		/* uploads may finish in the background; any later call waits */
		assert_int_equal(dv_store_stat(s, "t/big", &size, &err), 0);
		assert_int_equal(access(p, F_OK), -1); /* consumed */
		free(p);
		assert_int_equal(size, l);
		struct dv_buf b = DV_BUF_INIT;
		assert_int_equal(dv_store_get_range(s, "t/big", l - 100, 100, &b, &err), 0);
		assert_memory_equal(b.data, data + l - 100, 100);
		if (!round) {
			assert_int_equal(dv_store_get_range(s, "t/big", (5 << 20) - 10, 20, &b, &err), 0);
			assert_memory_equal(b.data, data + (5 << 20) - 10, 20);
		}
		assert_int_equal(dv_store_get(s, "t/big", l, &b, &err), 0);
		assert_int_equal(b.len, l);
		assert_memory_equal(b.data, data, l);
		dv_buf_release(&b);
	}
	assert_int_equal(dv_store_delete(s, "t/big", &err), 0);
	free(data);
	dv_store_free(s);
	unsetenv("DISKVAULT_S3_PART_SIZE");
	unsetenv("DISKVAULT_S3_MULTIPART_THRESHOLD");
}

/* put-file LOCATION NAME FILE */
static int helper_put_file(char **argv)
{
	struct dv_store *s;
	struct dv_err err;
	if (dv_store_open(argv[2], false, &s, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	struct dv_buf b = DV_BUF_INIT;
	if (dv_read_file(argv[4], (size_t)1 << 31, &b, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	char *p = dv_asprintf("%s/helper-%d.tmp", dv_store_spool_dir(s), (int)getpid());
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int r = fd < 0 ? -1 : dv_write_all(fd, b.data, b.len, &err, p);
	if (fd >= 0)
		close(fd);
	if (r == 0)
		r = dv_store_put_file(s, argv[3], p, &err);
	if (r < 0)
		fprintf(stderr, "%s\n", err.msg);
	free(p);
	dv_buf_release(&b);
	dv_store_free(s);
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "put-file"))
		return helper_put_file(argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_contract),
		cmocka_unit_test(test_put_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
