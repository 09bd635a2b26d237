/* testutil.c - shared helpers of the unit tests (see testutil.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

char dv_test_dir[64];
const char *dv_test_prelude;

int dv_test_setup(void **state)
{
	(void)state;
	snprintf(dv_test_dir, sizeof dv_test_dir, "/tmp/dv-test-XXXXXX");
	return mkdtemp(dv_test_dir) ? 0 : -1;
}

int dv_test_teardown(void **state)
{
	(void)state;
	return dv_test_dir[0] ? dv_test_sh("cd / && rm -rf '%s'", dv_test_dir) : 0;
}

/* "cd DIR && CMD" under bash, the command passed through a quoted here
 * document so that it needs no escaping. */
static char *in_dir(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *in_dir(const char *fmt, va_list ap)
{
	char *cmd = NULL;
	assert_true(vasprintf(&cmd, fmt, ap) >= 0);
	char *q = dv_asprintf("bash -c \"$(cat <<'DV_EOF'\ncd '%s' && %s%s\nDV_EOF\n)\"", dv_test_dir,
			      dv_test_prelude ? dv_test_prelude : "", cmd);
	free(cmd);
	return q;
}

int dv_test_sh(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *q = in_dir(fmt, ap);
	va_end(ap);
	int r = system(q);
	free(q);
	return r;
}

char *dv_test_capture(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *q = in_dir(fmt, ap);
	va_end(ap);
	FILE *p = popen(q, "r");
	assert_non_null(p);
	struct dv_buf b = DV_BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
		dv_buf_add(&b, chunk, n);
	pclose(p);
	free(q);
	dv_buf_add(&b, "", 1);
	return (char *)b.data;
}

void dv_test_img_open(struct dv_test_img *im, const char *name, uint64_t off, uint64_t len)
{
	char *p = dv_asprintf("%s/%s", dv_test_dir, name);
	struct dv_err err;
	if (dv_source_open(p, &im->src, &err) < 0)
		fail_msg("%s", err.msg);
	free(p);
	dv_vol_range(&im->vol, &im->src, off, len ? len : im->src.size - off, "partition 1");
}

void dv_test_img_close(struct dv_test_img *im)
{
	dv_vol_release(&im->vol);
	dv_source_close(&im->src);
}

void dv_test_zero_runs(const char *from, const char *to, const struct dv_ivl_list *runs, uint64_t base)
{
	assert_int_equal(dv_test_sh("cp %s %s", from, to), 0);
	char *p = dv_asprintf("%s/%s", dv_test_dir, to);
	FILE *f = fopen(p, "r+b");
	assert_non_null(f);
	static const uint8_t zeros[65536];
	for (size_t i = 0; i < runs->n; i++)
		for (uint64_t o = 0; o < runs->v[i].len;) {
			size_t n = (size_t)DV_MIN(runs->v[i].len - o, sizeof zeros);
			assert_int_equal(fseeko(f, (off_t)(base + runs->v[i].off + o), SEEK_SET), 0);
			assert_int_equal(fwrite(zeros, 1, n, f), n);
			o += n;
		}
	assert_int_equal(fclose(f), 0);
	free(p);
}

void dv_test_expect_refused(dv_usedmap_fn fn, const char *name, uint64_t len, const char *want)
{
	struct dv_test_img im;
	dv_test_img_open(&im, name, 0, len);
	struct dv_ext_info info;
	struct dv_ivl_list runs = {0};
	char *why = NULL;
	assert_int_equal(fn(&im.vol, &info, &runs, &why), -1);
	assert_non_null(why);
	print_message("%s: %s\n", name, why);
	if (!strstr(why, want))
		fail_msg("reason \"%s\" lacks \"%s\"", why, want);
	assert_int_equal(runs.n, 0);
	assert_false(info.has_used);
	free(why);
	dv_test_img_close(&im);
}
