/* parse.c - sizes in the forms users write them (config values, options,
 * tuning variables of the environment). */
#include "util.h"

#include <stdlib.h>
#include <string.h>

bool dv_parse_size(const char *s, uint64_t *out)
{
	size_t n = strspn(s, "0123456789"), f = 0;
	if (s[n] == '.')
		f = 1 + strspn(s + n + 1, "0123456789");
	if (n == 0 || n > 15 || f == 1 || f > 7)
		return false;
	double v = strtod(s, NULL), unit = 1;
	const char *u = s + n + f, *units = "KMGT", *c;
	if (*u && (c = strchr(units, *u >= 'a' ? *u - 'a' + 'A' : *u))) {
		for (const char *x = units; x <= c; x++)
			unit *= 1024;
		u++;
		if (!strcmp(u, "iB") || !strcmp(u, "B"))
			u += strlen(u);
	} else if (f) {
		return false; /* a fraction of a byte */
	} else if (!strcmp(u, "B")) {
		u++;
	}
	if (*u || v * unit >= 9.2e18)
		return false;
	*out = (uint64_t)(v * unit);
	return true;
}

uint64_t dv_env_size(const char *name, uint64_t def)
{
	const char *v = getenv(name);
	uint64_t x;
	return v && *v && dv_parse_size(v, &x) ? x : def;
}
