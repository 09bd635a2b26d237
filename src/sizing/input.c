/*
 * input.c - reads the measured use right-sizing needs out of the inventory
 * JSON shapes diskvault writes (src/disk/inventory.c, src/cli/cmd_inventory.c,
 * snapshot manifests). The field names are listed in docs/rightsizing.md;
 * values of the wrong type or out of range are refused, missing ones are
 * unknown.
 */
#include "sizing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_MAX 200000
#define MAX_BYTES (1ull << 50)  /* 1 PiB of memory is not a server we size */
#define MAX_LOAD 1e6

struct ictx {
	struct dv_err *err;
	const char *what;
};

/* A number field: absent or null -> *v untouched, returns 0; else checked
 * against [0, max]. */
static int num(struct ictx *c, const json_t *o, const char *key, double max, double *v)
{
	const json_t *x = json_object_get(o, key);
	if (!x || json_is_null(x))
		return 0;
	if (!json_is_number(x))
		return dv_error(c->err, DV_E_CORRUPT, "%s: \"%s\" is not a number", c->what, key);
	double d = json_number_value(x);
	if (!isfinite(d) || d < 0 || d > max)
		return dv_error(c->err, DV_E_CORRUPT, "%s: \"%s\" = %g is out of range [0, %g]", c->what, key, d, max);
	*v = d;
	return 0;
}

static const json_t *obj(const json_t *o, const char *key)
{
	const json_t *x = json_object_get(o, key);
	return json_is_object(x) ? x : NULL;
}

static void copy_str(char *dst, size_t cap, const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	snprintf(dst, cap, "%s", s ? s : "");
}

/* 1 present, 0 missing, -1 unknown for nitro_drivers.<name>. The root disk
 * of a Nitro instance is NVMe, so nvme as a module counts only when the
 * initramfs carries it (or, in inventories that did not look inside the
 * initramfs, when it is a module at all). */
static int driver_state(const json_t *drivers, const char *name, bool boot_critical)
{
	const json_t *d = obj(drivers, name);
	if (!d)
		return -1;
	const json_t *b = json_object_get(d, "builtin"), *m = json_object_get(d, "module"),
		     *l = json_object_get(d, "loaded"), *ir = json_object_get(d, "initramfs");
	if (json_is_true(b) || json_is_true(ir))
		return 1;
	if (boot_critical && json_is_false(ir))
		return 0;
	if (json_is_true(m) || json_is_true(l))
		return 1;
	if (json_is_false(b) && json_is_false(m))
		return 0;
	return -1;
}

/* One inventory object (dv_inventory_collect). */
static int read_sample(struct ictx *c, const json_t *s, struct dv_sizing_input *in)
{
	if (!json_is_object(s))
		return dv_error(c->err, DV_E_CORRUPT, "%s: inventory is not an object", c->what);
	copy_str(in->hostname, sizeof in->hostname, s, "hostname");
	copy_str(in->arch_raw, sizeof in->arch_raw, s, "architecture");
	in->arch = dv_arch_parse(in->arch_raw);
	copy_str(in->boot_mode, sizeof in->boot_mode, s, "boot_mode");
	const json_t *cpu = obj(s, "cpu"), *mem = obj(s, "memory");
	if (!cpu && !mem)
		return dv_error(c->err, DV_E_CORRUPT, "%s: inventory has neither \"cpu\" nor \"memory\"", c->what);
	int r;
	double logical = -1, busy = -1, total = -1, used = -1;
	if ((r = num(c, cpu, "logical", 100000, &logical)) < 0 || (r = num(c, cpu, "busy", 1.0001, &busy)) < 0 ||
	    (r = num(c, mem, "total", (double)MAX_BYTES, &total)) < 0 ||
	    (r = num(c, mem, "used", (double)MAX_BYTES, &used)) < 0)
		return r;
	if (logical >= 0 && (logical != floor(logical) || logical < 1))
		return dv_error(c->err, DV_E_CORRUPT, "%s: cpu.logical must be a positive integer", c->what);
	if (total >= 0 && used > total)
		return dv_error(c->err, DV_E_CORRUPT, "%s: memory.used is larger than memory.total", c->what);
	in->logical_cpus = logical >= 0 ? (int)logical : -1;
	in->mem_total = total;
	if (busy > 1)
		busy = 1;
	const json_t *load = json_object_get(s, "load");
	double load1 = -1;
	if (load && !json_is_null(load)) {
		if (!json_is_array(load) || json_array_size(load) < 1 || !json_is_number(json_array_get(load, 0)))
			return dv_error(c->err, DV_E_CORRUPT, "%s: \"load\" is not an array of numbers", c->what);
		load1 = json_number_value(json_array_get(load, 0));
		if (!isfinite(load1) || load1 < 0 || load1 > MAX_LOAD)
			return dv_error(c->err, DV_E_CORRUPT, "%s: load average %g out of range", c->what, load1);
	}
	/* a lone inventory is one sample: everything equals its one look */
	if (busy >= 0) {
		in->samples = 1;
		in->cpu_peak = in->cpu_p95 = in->cpu_p99 = in->cpu_avg = busy;
		snprintf(in->avg_basis, sizeof in->avg_basis, "one sample");
	}
	in->mem_peak = in->mem_p95 = used;
	in->load_peak = in->load_p95 = load1;
	copy_str(in->first, sizeof in->first, s, "time");
	copy_str(in->last, sizeof in->last, s, "time");
	const json_t *nd = obj(s, "nitro_drivers");
	in->nvme = driver_state(nd, "nvme", true);
	in->ena = driver_state(nd, "ena", false);
	return 0;
}

/* {"peak","p50","p95","p99"} summaries; max bounds the values. */
static int read_stats(struct ictx *c, const json_t *st, double max, double *peak, double *p95, double *p99,
		      double *p50)
{
	if (!st || json_is_null(st))
		return 0;
	if (!json_is_object(st))
		return dv_error(c->err, DV_E_CORRUPT, "%s: percentile summary is not an object", c->what);
	double pk = -1, a = -1, b = -1, m = -1;
	int r;
	if ((r = num(c, st, "peak", max, &pk)) < 0 || (r = num(c, st, "p95", max, &a)) < 0 ||
	    (r = num(c, st, "p99", max, &b)) < 0 || (r = num(c, st, "p50", max, &m)) < 0)
		return r;
	if (pk >= 0)
		*peak = pk;
	if (a >= 0)
		*p95 = a;
	if (b >= 0 && p99)
		*p99 = b;
	if (m >= 0 && p50)
		*p50 = m;
	return 0;
}

struct hpoint {
	int64_t t;
	double busy;
};

static int hp_cmp(const void *a, const void *b)
{
	const struct hpoint *x = a, *y = b;
	return x->t < y->t ? -1 : x->t > y->t;
}

/* Average CPU from the history: the highest mean over any 24 hours once
 * the samples span a day (what unlimited-mode billing and the credit bank
 * see), else the mean of all of them. */
static int read_history(struct ictx *c, const json_t *h, struct dv_sizing_input *in)
{
	if (!h || json_is_null(h))
		return 0;
	if (!json_is_array(h))
		return dv_error(c->err, DV_E_CORRUPT, "%s: \"history\" is not an array", c->what);
	size_t n = json_array_size(h);
	if (n > HISTORY_MAX)
		return dv_error(c->err, DV_E_CORRUPT, "%s: history of %zu samples is more than %d", c->what, n,
				HISTORY_MAX);
	struct hpoint *p = dv_calloc(n ? n : 1, sizeof *p);
	size_t m = 0;
	bool timed = true;
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(h, i);
		if (!json_is_object(e)) {
			free(p);
			return dv_error(c->err, DV_E_CORRUPT, "%s: history[%zu] is not an object", c->what, i);
		}
		double busy = -1;
		int r = num(c, e, "cpu_busy", 1.0001, &busy);
		if (r < 0) {
			free(p);
			return r;
		}
		if (busy < 0)
			continue;
		const char *ts = json_string_value(json_object_get(e, "time"));
		int64_t t = 0;
		if (!ts || dv_parse_time(ts, &t) < 0)
			timed = false;
		p[m].t = t;
		p[m++].busy = busy > 1 ? 1 : busy;
		sum += busy > 1 ? 1 : busy;
	}
	if (!m) {
		free(p);
		return 0;
	}
	in->have_history = true;
	in->samples = (long)m;
	in->cpu_avg = sum / (double)m;
	snprintf(in->avg_basis, sizeof in->avg_basis, "mean of %zu samples", m);
	if (timed) {
		qsort(p, m, sizeof *p, hp_cmp);
		in->history_hours = (double)(p[m - 1].t - p[0].t) / 3600.0;
		if (p[m - 1].t - p[0].t >= 86400) {
			double best = 0, wsum = 0;
			size_t j = 0;
			for (size_t i = 0; i < m; i++) {
				wsum += p[i].busy;
				while (p[i].t - p[j].t >= 86400)
					wsum -= p[j++].busy;
				if (p[i].t - p[0].t >= 86400 - 1) {
					double mean = wsum / (double)(i - j + 1);
					if (mean > best)
						best = mean;
				}
			}
			in->cpu_avg = best;
			snprintf(in->avg_basis, sizeof in->avg_basis, "highest 24-hour mean over %.1f days",
				 in->history_hours / 24);
		}
	}
	free(p);
	return 0;
}

static void input_init(struct dv_sizing_input *in)
{
	memset(in, 0, sizeof *in);
	in->logical_cpus = -1;
	in->mem_total = -1;
	in->cpu_peak = in->cpu_p95 = in->cpu_p99 = in->cpu_avg = -1;
	in->mem_peak = in->mem_p95 = -1;
	in->load_peak = in->load_p95 = -1;
	in->nvme = in->ena = -1;
}

/* Accumulated summaries (file or the CLI's "accumulated" object). */
static int read_accumulated(struct ictx *c, const json_t *acc, struct dv_sizing_input *in)
{
	double samples = -1, p50 = -1;
	int r;
	if ((r = num(c, acc, "samples", 1e12, &samples)) < 0)
		return r;
	if ((r = read_stats(c, json_object_get(acc, "cpu_busy"), 1.0001, &in->cpu_peak, &in->cpu_p95, &in->cpu_p99,
			    &p50)) < 0 ||
	    (r = read_stats(c, json_object_get(acc, "memory_used"), (double)MAX_BYTES, &in->mem_peak, &in->mem_p95,
			    NULL, NULL)) < 0 ||
	    (r = read_stats(c, json_object_get(acc, "load1"), MAX_LOAD, &in->load_peak, &in->load_p95, NULL,
			    NULL)) < 0)
		return r;
	if (in->cpu_peak > 1)
		in->cpu_peak = 1;
	if (in->cpu_p95 > 1)
		in->cpu_p95 = 1;
	/* without CPU figures the samples do not count as utilisation samples */
	bool have_cpu = in->cpu_peak >= 0 || in->cpu_p95 >= 0;
	in->samples = have_cpu ? (samples >= 1 ? (long)samples : 1) : 0;
	if (!have_cpu)
		in->cpu_peak = in->cpu_p95 = in->cpu_p99 = in->cpu_avg = -1;
	if (in->cpu_p95 < 0)
		in->cpu_p95 = in->cpu_peak;
	if (in->cpu_peak < 0)
		in->cpu_peak = in->cpu_p95;
	if (in->mem_p95 < 0)
		in->mem_p95 = in->mem_peak;
	if (in->load_p95 < 0)
		in->load_p95 = in->load_peak;
	in->cpu_avg = -1;
	in->avg_basis[0] = 0;
	if (have_cpu && p50 >= 0) {
		in->cpu_avg = p50 > 1 ? 1 : p50;
		snprintf(in->avg_basis, sizeof in->avg_basis, "median (no per-sample history)");
	}
	if ((r = read_history(c, json_object_get(acc, "history"), in)) < 0)
		return r;
	copy_str(in->first, sizeof in->first, acc, "first");
	copy_str(in->last, sizeof in->last, acc, "last");
	return 0;
}

int dv_sizing_input_from_json(const json_t *j, struct dv_sizing_input *in, struct dv_err *err)
{
	input_init(in);
	struct ictx c = {err, "inventory"};
	if (!json_is_object(j))
		return dv_error(err, DV_E_CORRUPT, "inventory: not a JSON object");
	const char *format = json_string_value(json_object_get(j, "format"));
	const char *command = json_string_value(json_object_get(j, "command"));
	/* `show --json` wraps the manifest */
	if (command && !strcmp(command, "show") && obj(j, "snapshot")) {
		j = obj(j, "snapshot");
		format = json_string_value(json_object_get(j, "format"));
		command = NULL;
	}
	if (format && !strcmp(format, "diskvault-snapshot")) {
		const json_t *inv = json_object_get(j, "inventory");
		if (!inv || json_is_null(inv))
			return dv_error(err, DV_E_NOT_FOUND,
					"the snapshot records no inventory (back up with --inventory FILE, or give "
					"rightsize --inventory FILE)");
		if (obj(inv, "latest") || (obj(inv, "inventory") && json_object_get(inv, "command"))) {
			j = inv;
		} else {
			c.what = "snapshot inventory";
			return read_sample(&c, inv, in);
		}
		format = NULL;
		command = json_string_value(json_object_get(j, "command"));
	}
	int r;
	if (command) {
		if (strcmp(command, "inventory"))
			return dv_error(err, DV_E_CORRUPT, "inventory: JSON of the '%.32s' command, not of inventory",
					command);
		const json_t *ok = json_object_get(j, "ok");
		if (json_is_false(ok))
			return dv_error(err, DV_E_CORRUPT, "inventory: the inventory command failed (\"ok\": false)");
		if ((r = read_sample(&c, json_object_get(j, "inventory"), in)) < 0)
			return r;
		const json_t *acc = json_object_get(j, "accumulated");
		if (acc && !json_is_null(acc)) {
			if (!json_is_object(acc))
				return dv_error(err, DV_E_CORRUPT, "inventory: \"accumulated\" is not an object");
			c.what = "inventory accumulated";
			return read_accumulated(&c, acc, in);
		}
		return 0;
	}
	if (json_object_get(j, "latest")) {
		c.what = "accumulated inventory";
		if ((r = read_sample(&c, json_object_get(j, "latest"), in)) < 0)
			return r;
		return read_accumulated(&c, j, in);
	}
	return read_sample(&c, j, in);
}

int dv_sizing_input_parse(const char *text, size_t len, const char *name, struct dv_sizing_input *in,
			  struct dv_err *err)
{
	json_error_t je;
	input_init(in);
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return dv_error(err, DV_E_CORRUPT, "%s: not JSON (line %d: %s)", name, je.line, je.text);
	int r = dv_sizing_input_from_json(j, in, err);
	json_decref(j);
	if (r < 0)
		dv_error_prefix(err, "%s: ", name);
	return r;
}
