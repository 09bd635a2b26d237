/*
 * rightsize.c - the choice of an instance type from measured need. The
 * steps and the reasons for each constant are in docs/rightsizing.md.
 */
#include "sizing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1024.0 * 1024.0 * 1024.0)
#define MIN_MEMORY (512.0 * 1024 * 1024)

void dv_sizing_opts_default(struct dv_sizing_opts *o)
{
	memset(o, 0, sizeof *o);
	o->headroom = 0.30;
	o->arch = DV_ARCH_UNKNOWN;
	o->percentile_min_samples = 20;
}

void dv_sizing_result_release(struct dv_sizing_result *res)
{
	free(res->rejected);
	memset(res, 0, sizeof *res);
}

static void note(struct dv_sizing_result *res, const char *fmt, ...) DV_PRINTF(2, 3);
static void note(struct dv_sizing_result *res, const char *fmt, ...)
{
	if (res->nnotes >= DV_ARRAY_SIZE(res->notes))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->notes[res->nnotes++], sizeof res->notes[0], fmt, ap);
	va_end(ap);
}

static bool boots(const struct dv_catalog_type *t, const char *mode)
{
	if (!mode || !strcmp(mode, "unknown") || !*mode)
		return true;
	if (!strcmp(mode, "uefi"))
		return t->uefi;
	if (!strcmp(mode, "bios"))
		return t->legacy_bios;
	if (!strcmp(mode, "uefi+bios"))
		return t->uefi || t->legacy_bios;
	return true;
}

/* Whether t meets the need; why says what it misses. */
static bool qualifies(const struct dv_catalog_type *t, const struct dv_sizing_result *res,
		      const struct dv_sizing_opts *o, char *why, size_t n)
{
	double h = o->headroom;
	if (!boots(t, o->boot_mode)) {
		snprintf(why, n, "cannot boot the image's boot mode (%s)", o->boot_mode);
		return false;
	}
	if ((double)t->vcpus + 1e-9 < res->cpu_need) {
		snprintf(why, n, "%u vCPUs, need %.2f", t->vcpus, res->cpu_need);
		return false;
	}
	if (t->memory_gib * GIB + 1 < res->mem_need) {
		snprintf(why, n, "%g GiB memory, need %.2f GiB", t->memory_gib, res->mem_need / GIB);
		return false;
	}
	if (t->burstable) {
		if (res->avg_vcpus < 0) {
			snprintf(why, n, "burstable, and the average CPU use is unknown");
			return false;
		}
		double pct = res->avg_vcpus * (1 + h) / t->vcpus * 100;
		if (pct > t->baseline_pct + 1e-9) {
			snprintf(why, n, "burstable: average use with headroom would be %.1f%% of its vCPUs, above its "
				 "%g%% baseline", pct, t->baseline_pct);
			return false;
		}
	}
	return true;
}

/* Is a a better choice than b at the same need: cheaper, then newer, then
 * fixed performance, then more memory, then by name (deterministic). */
static bool better(const struct dv_catalog_type *a, double pa, const struct dv_catalog_type *b, double pb)
{
	if (!b)
		return true;
	if (fabs(pa - pb) > 1e-9)
		return pa < pb;
	if (a->generation != b->generation)
		return a->generation > b->generation;
	if (a->burstable != b->burstable)
		return !a->burstable;
	if (a->memory_gib != b->memory_gib)
		return a->memory_gib > b->memory_gib;
	return strcmp(a->name, b->name) < 0;
}

static int rej_cmp(const void *x, const void *y)
{
	const struct dv_sizing_reject *a = x, *b = y;
	if (a->price != b->price)
		return a->price < b->price ? -1 : 1;
	return strcmp(a->type->name, b->type->name);
}

int dv_sizing_choose(const struct dv_catalog *cat, const struct dv_sizing_input *in, const struct dv_sizing_opts *o,
		     struct dv_sizing_result *res, struct dv_err *err)
{
	memset(res, 0, sizeof *res);
	if (!o->region)
		return dv_error(err, DV_E_USAGE, "rightsize: no region");
	int ri = dv_catalog_region_index(cat, o->region);
	if (ri < 0) {
		struct dv_buf b = DV_BUF_INIT;
		for (size_t i = 0; i < dv_catalog_region_count(cat); i++)
			dv_buf_addf(&b, "%s%s", i ? ", " : "", dv_catalog_region(cat, i));
		int r = dv_error(err, DV_E_USAGE, "the catalog %s has no prices for region %s (it has: %s)",
				 dv_catalog_source(cat), o->region, b.data ? (char *)b.data : "none");
		dv_buf_release(&b);
		return r;
	}
	if (!(o->headroom >= 0 && o->headroom <= 10))
		return dv_error(err, DV_E_USAGE, "rightsize: headroom must be between 0 and 1000%%");
	res->arch = o->arch != DV_ARCH_UNKNOWN ? o->arch : in->arch;
	if (res->arch == DV_ARCH_UNKNOWN)
		return dv_error(err, DV_E_USAGE,
				"the inventory's architecture '%s' is not one EC2 offers (x86_64, arm64); give --arch",
				in->arch_raw[0] ? in->arch_raw : "(none)");
	if (in->logical_cpus < 1)
		return dv_error(err, DV_E_CORRUPT, "the inventory does not say how many logical CPUs the machine has");
	double h = o->headroom;
	double logical = in->logical_cpus;
	res->avg_vcpus = -1;

	if (in->samples > 0 && (in->cpu_peak >= 0 || in->cpu_p95 >= 0)) {
		bool pct = in->samples >= o->percentile_min_samples && in->cpu_p95 >= 0;
		const char *stat = pct ? "p95" : "peak";
		double busy = pct ? in->cpu_p95 : in->cpu_peak;
		double load = pct ? in->load_p95 : in->load_peak;
		double from_busy = busy * logical;
		/* load counts runnable and uninterruptible (I/O) tasks: above the
		 * CPU count it measures queueing, not CPUs a copy would need */
		double from_load = load >= 0 ? DV_MIN(load, logical) : -1;
		res->cpu_measured = DV_MAX(from_busy, from_load);
		if (from_load > from_busy)
			snprintf(res->cpu_basis, sizeof res->cpu_basis,
				 "%s 1-minute load %.2f, above %s CPU busy %.1f%% x %d logical CPUs = %.2f", stat, load,
				 stat, busy * 100, in->logical_cpus, from_busy);
		else
			snprintf(res->cpu_basis, sizeof res->cpu_basis, "%s CPU busy %.1f%% x %d logical CPUs%s", stat,
				 busy * 100, in->logical_cpus,
				 from_load >= 0 ? "" : " (no load average recorded)");
		res->cpu_need = DV_MAX(res->cpu_measured * (1 + h), 1.0);
		if (in->cpu_avg >= 0)
			res->avg_vcpus = in->cpu_avg * logical;
		double mem = pct ? in->mem_p95 : in->mem_peak;
		if (mem >= 0) {
			res->mem_measured = mem;
			snprintf(res->mem_basis, sizeof res->mem_basis, "%s memory in use (MemTotal - MemAvailable)", stat);
		} else if (in->mem_total > 0) {
			res->mem_measured = in->mem_total / (1 + h);
			snprintf(res->mem_basis, sizeof res->mem_basis, "memory in use not recorded: MemTotal");
			note(res, "memory in use was not measured: memory is sized on MemTotal");
		} else {
			return dv_error(err, DV_E_CORRUPT, "the inventory records neither memory in use nor MemTotal");
		}
		res->mem_need = DV_MAX(res->mem_measured * (1 + h), MIN_MEMORY);
		if (in->samples < o->percentile_min_samples)
			note(res, "only %ld utilisation sample%s: sized on the peak; sample for days "
				  "(diskvault inventory --sample 60 --append FILE) before trusting a small type",
			     in->samples, in->samples == 1 ? "" : "s");
		else if (in->have_history && in->history_hours < 24)
			note(res, "the samples span only %.1f hours: a daily or weekly peak may be missing",
			     in->history_hours);
		if (res->avg_vcpus < 0)
			note(res, "average CPU use unknown: burstable types were not considered");
	} else {
		res->from_spec = true;
		if (!(in->mem_total > 0))
			return dv_error(err, DV_E_CORRUPT,
					"the inventory has no utilisation samples and no MemTotal to fall back on");
		res->cpu_measured = logical;
		res->cpu_need = logical;
		snprintf(res->cpu_basis, sizeof res->cpu_basis, "spec: %d logical CPUs (no utilisation samples)",
			 in->logical_cpus);
		res->mem_measured = in->mem_total;
		res->mem_need = in->mem_total;
		snprintf(res->mem_basis, sizeof res->mem_basis, "spec: MemTotal (no utilisation samples)");
		note(res, "no utilisation samples: sized on the spec (%d logical CPUs, %.1f GiB); measured use "
			  "(diskvault inventory --sample 60 --append FILE over days) usually allows a smaller type",
		     in->logical_cpus, in->mem_total / GIB);
	}

	/* the choice, and the spec-matching type for comparison */
	char why[160];
	for (size_t i = 0; i < dv_catalog_count(cat); i++) {
		const struct dv_catalog_type *t = dv_catalog_at(cat, i);
		double p = t->prices[ri];
		if (p < 0 || t->arch != res->arch)
			continue;
		if (qualifies(t, res, o, why, sizeof why) && better(t, p, res->chosen, res->chosen_price)) {
			res->chosen = t;
			res->chosen_price = p;
		}
		if (!t->burstable && boots(t, o->boot_mode) && t->vcpus >= (unsigned)in->logical_cpus &&
		    in->mem_total > 0 && t->memory_gib * GIB >= in->mem_total &&
		    better(t, p, res->spec_match, res->spec_price)) {
			res->spec_match = t;
			res->spec_price = p;
		}
	}
	/* why each cheaper type (all of them when nothing fits) was passed over */
	res->rejected = dv_calloc(dv_catalog_count(cat) + 1, sizeof *res->rejected);
	for (size_t i = 0; i < dv_catalog_count(cat); i++) {
		const struct dv_catalog_type *t = dv_catalog_at(cat, i);
		double p = t->prices[ri];
		if (p < 0 || t->arch != res->arch || t == res->chosen)
			continue;
		if (res->chosen && p > res->chosen_price)
			continue;
		struct dv_sizing_reject *rj = &res->rejected[res->nrejected];
		if (qualifies(t, res, o, rj->why, sizeof rj->why))
			snprintf(rj->why, sizeof rj->why, "qualifies at the same price; %s preferred",
				 res->chosen ? res->chosen->name : "another");
		rj->type = t;
		rj->price = p;
		res->nrejected++;
	}
	qsort(res->rejected, res->nrejected, sizeof *res->rejected, rej_cmp);
	if (!res->chosen) {
		int r = dv_error(err, DV_E_NOT_FOUND,
				 "no %s type in the catalog priced in %s meets the need of %.2f vCPUs and %.2f GiB%s%s",
				 dv_arch_name(res->arch), o->region, res->cpu_need, res->mem_need / GIB,
				 o->boot_mode && strcmp(o->boot_mode, "unknown") ? " and boots " : "",
				 o->boot_mode && strcmp(o->boot_mode, "unknown") ? o->boot_mode : "");
		dv_sizing_result_release(res);
		return r;
	}
	return 0;
}

static json_t *type_json(const struct dv_catalog_type *t, double price)
{
	if (!t)
		return json_null();
	json_t *j = json_pack("{s:s, s:s, s:i, s:f, s:b, s:f, s:f}", "type", t->name, "arch", dv_arch_name(t->arch),
			      "vcpus", (int)t->vcpus, "memory_gib", t->memory_gib, "burstable", t->burstable,
			      "price_usd_hour", price, "price_usd_month", price * DV_SIZING_HOURS_PER_MONTH);
	if (t->burstable)
		json_object_set_new(j, "baseline_pct_per_vcpu", json_real(t->baseline_pct));
	return j;
}

static json_t *num_or_null(double v) { return v >= 0 ? json_real(v) : json_null(); }

json_t *dv_sizing_result_json(const struct dv_sizing_result *res, const struct dv_sizing_input *in,
			      const struct dv_sizing_opts *o, const struct dv_catalog *cat)
{
	json_t *need = json_pack("{s:f, s:f, s:s, s:f, s:f, s:s, s:o, s:s}", "vcpus", res->cpu_need, "vcpus_measured",
				 res->cpu_measured, "cpu_basis", res->cpu_basis, "memory_bytes", res->mem_need,
				 "memory_measured_bytes", res->mem_measured, "memory_basis", res->mem_basis,
				 "average_vcpus", num_or_null(res->avg_vcpus), "average_basis",
				 res->avg_vcpus >= 0 ? in->avg_basis : "");
	json_t *source = json_pack("{s:s, s:s, s:i, s:o, s:I, s:o, s:o}", "hostname", in->hostname, "architecture",
				   in->arch_raw, "logical_cpus", in->logical_cpus, "memory_total",
				   num_or_null(in->mem_total), "samples", (json_int_t)in->samples, "first",
				   in->first[0] ? json_string(in->first) : json_null(), "last",
				   in->last[0] ? json_string(in->last) : json_null());
	json_t *rej = json_array();
	for (size_t i = 0; i < res->nrejected; i++)
		json_array_append_new(rej, json_pack("{s:s, s:f, s:s}", "type", res->rejected[i].type->name,
						     "price_usd_hour", res->rejected[i].price, "why",
						     res->rejected[i].why));
	json_t *notes = json_array();
	for (size_t i = 0; i < res->nnotes; i++)
		json_array_append_new(notes, json_string(res->notes[i]));
	const char *date = dv_catalog_comment(cat, "date");
	json_t *j = json_pack("{s:s, s:f, s:s, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:{s:s, s:o}}", "region", o->region,
			      "headroom_pct", o->headroom * 100, "arch", dv_arch_name(res->arch), "from_spec",
			      res->from_spec, "source", source, "need", need, "chosen",
			      type_json(res->chosen, res->chosen_price), "spec_match",
			      type_json(res->spec_match, res->spec_price), "rejected", rej, "notes", notes, "catalog",
			      "file", dv_catalog_source(cat), "date", date ? json_string(date) : json_null());
	if (res->spec_match)
		json_object_set_new(j, "saving_usd_month",
				    json_real((res->spec_price - res->chosen_price) * DV_SIZING_HOURS_PER_MONTH));
	return j;
}
