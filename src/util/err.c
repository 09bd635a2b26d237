#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const code_names[DV_E_CODE_MAX] = {
	[DV_OK] = "ok",
	[DV_E_FAIL] = "failure",
	[DV_E_USAGE] = "usage",
	[DV_E_NOMEM] = "out-of-memory",
	[DV_E_IO] = "io",
	[DV_E_NOSPACE] = "no-space",
	[DV_E_NOT_FOUND] = "not-found",
	[DV_E_EXISTS] = "exists",
	[DV_E_NOT_REPO] = "not-a-repository",
	[DV_E_VERSION] = "unsupported-version",
	[DV_E_CORRUPT] = "corrupt",
	[DV_E_LOCKED] = "locked",
	[DV_E_TOO_SMALL] = "target-too-small",
	[DV_E_BUSY] = "target-busy",
	[DV_E_SOURCE] = "source-unreadable",
	[DV_E_REMOTE] = "remote",
	[DV_E_INTERRUPTED] = "interrupted",
	[DV_E_AUTH] = "wrong-passphrase",
	[DV_E_CLOSED] = "target-closed",
};

const char *dv_code_name(enum dv_code code)
{
	if ((unsigned)code >= DV_E_CODE_MAX)
		return "unknown";
	return code_names[code];
}

void dv_bug(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "diskvault: internal error at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

void dv_err_clear(struct dv_err *err)
{
	if (!err)
		return;
	err->code = DV_OK;
	err->msg[0] = 0;
}

__attribute__((format(printf, 3, 0))) static int verror(struct dv_err *err, enum dv_code code, const char *fmt,
								  va_list ap)
{
	if (err) {
		err->code = code;
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	}
	return -(int)code;
}

int dv_error(struct dv_err *err, enum dv_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = verror(err, code, fmt, ap);
	va_end(ap);
	return r;
}

int dv_error_errno(struct dv_err *err, int errnum, const char *fmt, ...)
{
	enum dv_code code = DV_E_IO;
	if (errnum == ENOSPC || errnum == EDQUOT)
		code = DV_E_NOSPACE;
	else if (errnum == ENOMEM)
		code = DV_E_NOMEM;
	else if (errnum == ENOENT)
		code = DV_E_NOT_FOUND;
	va_list ap;
	va_start(ap, fmt);
	int r = verror(err, code, fmt, ap);
	va_end(ap);
	if (err) {
		size_t l = strlen(err->msg);
		snprintf(err->msg + l, sizeof err->msg - l, ": %s", strerror(errnum));
	}
	return r;
}

int dv_error_prefix(struct dv_err *err, const char *fmt, ...)
{
	if (!err)
		return -DV_E_FAIL;
	char old[sizeof err->msg];
	memcpy(old, err->msg, sizeof old);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof err->msg)
		memcpy(err->msg + n, old, DV_MIN(strlen(old) + 1, sizeof err->msg - (size_t)n - 1));
	err->msg[sizeof err->msg - 1] = 0;
	return -(int)(err->code ? err->code : DV_E_FAIL);
}

void *dv_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		DV_BUG("out of memory allocating %zu bytes", n);
	return p;
}

void *dv_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		DV_BUG("out of memory allocating %zu x %zu bytes", n, size);
	return p;
}

void *dv_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		DV_BUG("out of memory reallocating %zu bytes", n);
	return q;
}

char *dv_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(dv_malloc(n), s, n);
}

char *dv_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		DV_BUG("bad format %s", fmt);
	char *s = dv_malloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}
