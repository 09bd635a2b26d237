/* parse.c - sizes and durations in the forms users write them (config
 * values, options, tuning variables of the environment). */
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

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

bool dv_parse_duration(const char *s, enum dv_duration_kind kind, struct dv_duration *out)
{
	/* units from the largest down; each term must come after the previous */
	static const char retention_units[] = "ymwdh", wait_units[] = "dhms";
	const char *units = kind == DV_DUR_RETENTION ? retention_units : wait_units;
	struct dv_duration d = {0};
	size_t next = 0; /* index into units of the smallest unit still allowed */
	if (!s || !*s)
		return false;
	if (kind == DV_DUR_WAIT && s[strspn(s, "0123456789")] == 0) {
		if (strlen(s) > 6)
			return false;
		d.seconds = atoi(s);
		*out = d;
		return true;
	}
	while (*s) {
		size_t n = strspn(s, "0123456789");
		if (n == 0 || n > 6)
			return false;
		long v = strtol(s, NULL, 10);
		const char *u = s + n;
		const char *c = *u ? strchr(units + next, *u) : NULL;
		if (!c || v > 100000)
			return false;
		next = (size_t)(c - units) + 1;
		switch (*c) {
		case 'y': d.years = (int)v; break;
		case 'm': *(kind == DV_DUR_RETENTION ? &d.months : &d.minutes) = (int)v; break;
		case 'w': d.days += 7 * (int)v; break;
		case 'd': d.days += (int)v; break;
		case 'h': d.hours = (int)v; break;
		case 's': d.seconds = (int)v; break;
		}
		s = u + 1;
	}
	*out = d;
	return true;
}

bool dv_duration_is_zero(const struct dv_duration *d)
{
	return !d->years && !d->months && !d->days && !d->hours && !d->minutes && !d->seconds;
}

int64_t dv_duration_before(int64_t t, const struct dv_duration *d)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	tm.tm_year -= d->years;
	tm.tm_mon -= d->months;
	tm.tm_mday -= d->days;
	tm.tm_isdst = 0;
	return (int64_t)timegm(&tm) - 3600LL * d->hours - 60LL * d->minutes - d->seconds;
}

double dv_duration_seconds(const struct dv_duration *d)
{
	return 86400.0 * d->days + 3600.0 * d->hours + 60.0 * d->minutes + d->seconds;
}
