/*
 * testutil.h - what the filesystem and layout unit tests share: a private
 * work directory, shell commands run in it (the real mkfs and checker
 * tools make the images), image files opened as volumes, and a parser's
 * refusal checked with its reason. Linked into every unit test; cmocka's
 * assertions fail the calling test.
 */
#ifndef DV_TESTUTIL_H
#define DV_TESTUTIL_H

#include <stdint.h>

#include "disk/probe_internal.h"

#define MiB (1024ULL * 1024)

/* The work directory: made by dv_test_setup (a cmocka group setup,
 * "/tmp/dv-test-XXXXXX"), removed with its content by dv_test_teardown. */
extern char dv_test_dir[64];
int dv_test_setup(void **state);
int dv_test_teardown(void **state);

/* Runs the bash command (printf-style) in the work directory, after
 * dv_test_prelude (shell text such as ". lib_disk.sh && ", or NULL);
 * returns system()'s status (0 on success). */
extern const char *dv_test_prelude;
int dv_test_sh(const char *fmt, ...) DV_PRINTF(1, 2);
/* The standard output of such a command (NUL-terminated, malloc'd),
 * whatever its exit status. */
char *dv_test_capture(const char *fmt, ...) DV_PRINTF(1, 2);

/* An image file of the work directory read as one volume. */
struct dv_test_img {
	struct dv_source src;
	struct dv_vol vol;
};
/* Opens name as a volume of len bytes at off (len 0: to the end). */
void dv_test_img_open(struct dv_test_img *im, const char *name, uint64_t off, uint64_t len);
void dv_test_img_close(struct dv_test_img *im);

/* Copies from to to (work directory) and zeroes there the ranges runs
 * (offsets relative to base), as a used-blocks restore leaves them. */
void dv_test_zero_runs(const char *from, const char *to, const struct dv_ivl_list *runs, uint64_t base);

/* Expects parser fn to refuse name (len bytes at 0; 0 = all) with a
 * reason holding want, and to report nothing used or unused. */
void dv_test_expect_refused(dv_usedmap_fn fn, const char *name, uint64_t len, const char *want);

#endif
