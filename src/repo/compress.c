/* compress.c - zstd behind two calls; one context per thread. */
#include <stdio.h>
#include "repo_internal.h"

#include <pthread.h>
#include <zstd.h>

static pthread_key_t cctx_key, dctx_key;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;

static void free_cctx(void *p) { ZSTD_freeCCtx(p); }
static void free_dctx(void *p) { ZSTD_freeDCtx(p); }

static void make_keys(void)
{
	if (pthread_key_create(&cctx_key, free_cctx) || pthread_key_create(&dctx_key, free_dctx))
		DV_BUG("pthread_key_create failed");
}

static ZSTD_CCtx *thread_cctx(void)
{
	pthread_once(&keys_once, make_keys);
	ZSTD_CCtx *c = pthread_getspecific(cctx_key);
	if (!c) {
		c = ZSTD_createCCtx();
		if (!c)
			DV_BUG("ZSTD_createCCtx failed");
		pthread_setspecific(cctx_key, c);
	}
	return c;
}

static ZSTD_DCtx *thread_dctx(void)
{
	pthread_once(&keys_once, make_keys);
	ZSTD_DCtx *d = pthread_getspecific(dctx_key);
	if (!d) {
		d = ZSTD_createDCtx();
		if (!d)
			DV_BUG("ZSTD_createDCtx failed");
		pthread_setspecific(dctx_key, d);
	}
	return d;
}

void dv_compress(const void *src, size_t n, int level, struct dv_buf *out)
{
	ZSTD_CCtx *c = thread_cctx();
	size_t bound = ZSTD_compressBound(n);
	dv_buf_reset(out);
	dv_buf_reserve(out, bound);
	/* Frames carry their content size and a checksum-free body: integrity
	 * is the chunk id's job. */
	size_t r = ZSTD_compressCCtx(c, out->data, bound, src, n, level);
	if (ZSTD_isError(r))
		DV_BUG("zstd compression failed: %s", ZSTD_getErrorName(r));
	out->len = r;
}

int dv_decompress(const void *src, size_t n, size_t raw_len, struct dv_buf *out, const char *what,
		  struct dv_err *err)
{
	ZSTD_DCtx *d = thread_dctx();
	dv_buf_reset(out);
	dv_buf_reserve(out, raw_len);
	size_t r = ZSTD_decompressDCtx(d, out->data, raw_len, src, n);
	if (ZSTD_isError(r))
		return dv_error(err, DV_E_CORRUPT, "%s: cannot decompress: %s", what, ZSTD_getErrorName(r));
	if (r != raw_len)
		return dv_error(err, DV_E_CORRUPT, "%s: decompressed to %zu bytes, expected %zu", what, r, raw_len);
	out->len = r;
	return 0;
}

bool dv_is_zstd_frame(const void *p, size_t n)
{
	return n >= 4 && dv_le32(p) == ZSTD_MAGICNUMBER;
}

int dv_decompress_frame(const void *src, size_t n, size_t cap, struct dv_buf *out, const char *what,
			struct dv_err *err)
{
	unsigned long long size = ZSTD_getFrameContentSize(src, n);
	if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
		return dv_error(err, DV_E_CORRUPT, "%s: not a complete zstd frame", what);
	if (size > cap)
		return dv_error(err, DV_E_CORRUPT, "%s: expands to %llu bytes, more than the limit of %zu", what, size, cap);
	return dv_decompress(src, n, (size_t)size, out, what, err);
}
