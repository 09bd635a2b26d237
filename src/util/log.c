#include "util.h"

#include <stdio.h>

static enum dv_log_level level = DV_LOG_NORMAL;

void dv_log_set_level(enum dv_log_level l) { level = l; }
enum dv_log_level dv_log_level(void) { return level; }

void dv_debug(const char *fmt, ...)
{
	if (level < DV_LOG_DEBUG)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("diskvault: debug: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}
