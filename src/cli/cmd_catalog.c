/*
 * cmd_catalog.c - `diskvault catalog list|refresh`: shows the instance
 * catalog right-sizing uses, or refreshes its specs from EC2
 * DescribeInstanceTypes (dv_cloud_catalog_refresh, src/cloud/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cloud.h"

static const char help[] =
	"usage: diskvault catalog list [--region R] [--catalog FILE] [--json]\n"
	"       diskvault catalog refresh [--region R] [--catalog FILE] [--output FILE] [--json]\n"
	"list: the instance types right-sizing chooses from, with their price in the region.\n"
	"refresh: asks EC2 DescribeInstanceTypes (region R) about every type of the catalog and\n"
	"rewrites vcpus, memory_gib, arch, burstable, ena, nvme and boot_modes from the answer;\n"
	"prices and burstable baselines are kept from the file (they are not in that API).\n"
	"The result is written atomically to FILE (default: the user copy,\n"
	"$XDG_DATA_HOME or ~/.local/share/diskvault/ec2-catalog.csv, which is then used first).\n";

static int list(struct dv_catalog *cat, const char *region)
{
	int ri = dv_catalog_region_index(cat, region);
	json_t *arr = json_array();
	if (!dv_cli.json && !dv_cli.quiet)
		printf("%-14s %-7s %5s %9s %-10s %12s\n", "type", "arch", "vCPUs", "GiB", "baseline", "USD/hour");
	for (size_t i = 0; i < dv_catalog_count(cat); i++) {
		const struct dv_catalog_type *t = dv_catalog_at(cat, i);
		double p = ri >= 0 ? t->prices[ri] : -1;
		if (dv_cli.json) {
			json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:f, s:b, s:o, s:o}", "type", t->name,
							     "arch", dv_arch_name(t->arch), "vcpus", (int)t->vcpus,
							     "memory_gib", t->memory_gib, "burstable", t->burstable,
							     "baseline_pct_per_vcpu",
							     t->burstable ? json_real(t->baseline_pct) : json_null(),
							     "price_usd_hour", p >= 0 ? json_real(p) : json_null()));
		} else if (!dv_cli.quiet) {
			char base[16] = "-";
			if (t->burstable)
				snprintf(base, sizeof base, "%g%%", t->baseline_pct);
			char price[24] = "-";
			if (p >= 0)
				snprintf(price, sizeof price, "%.4f", p);
			printf("%-14s %-7s %5u %9g %-10s %12s\n", t->name, dv_arch_name(t->arch), t->vcpus, t->memory_gib,
			       base, price);
		}
	}
	const char *date = dv_catalog_comment(cat, "date");
	if (dv_cli.json) {
		json_t *j = json_pack("{s:s, s:b, s:s, s:s, s:o, s:o}", "command", "catalog", "ok", 1, "file",
				      dv_catalog_source(cat), "region", region, "date",
				      date ? json_string(date) : json_null(), "types", arr);
		dv_cli_print_json(j);
	} else {
		json_decref(arr);
		if (!dv_cli.quiet)
			printf("%zu types from %s (date %s)%s\n", dv_catalog_count(cat), dv_catalog_source(cat),
			       date ? date : "unknown", ri < 0 ? "; no prices for this region" : "");
	}
	return 0;
}

static void updated(void *ctx, const char *type)
{
	(void)ctx;
	if (!dv_cli.quiet && !dv_cli.json)
		printf("updated %s\n", type);
}

static void missing(void *ctx, const char *type, const char *region)
{
	(void)ctx;
	if (!dv_cli.json)
		fprintf(stderr, "diskvault catalog: warning: %s is not offered in %s (kept as it was)\n", type, region);
}

static int refresh(struct dv_catalog *cat, const char *region, const char *output, struct dv_err *err)
{
	struct dv_cloud_cb cb = {.catalog_updated = updated, .catalog_missing = missing};
	struct dv_cloud_refresh_result res;
	int r = dv_cloud_catalog_refresh(cat, region, output, &cb, &res, err);
	if (r == 0) {
		if (dv_cli.json)
			dv_cli_print_json(json_pack("{s:s, s:b, s:s, s:s, s:i, s:i, s:O}", "command", "catalog", "ok", 1,
						    "file", output, "region", res.region, "types", (int)res.found,
						    "changed", (int)res.changed, "missing", res.missing));
		else if (!dv_cli.quiet)
			printf("catalog refreshed from DescribeInstanceTypes in %s: %zu of %zu types found, %zu changed; "
			       "written to %s (prices kept)\n",
			       res.region, res.found, res.n, res.changed, output);
	}
	dv_cloud_refresh_result_release(&res);
	return r;
}

int cmd_catalog(int argc, char **argv)
{
	struct {
		const char *region, *catalog, *output;
	} x = {0};
	const struct dv_cli_opt opts[] = {
		DV_OPT_STRING("region", &x.region),
		DV_OPT_STRING("catalog", &x.catalog),
		DV_OPT_STRING("output", &x.output),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("catalog", help, argc, argv, opts, &first, &rc))
		return rc;
	if (argc - first != 1 || (strcmp(argv[first], "list") && strcmp(argv[first], "refresh")))
		return dv_cli_usage("catalog", "give 'list' or 'refresh'");
	bool do_refresh = !strcmp(argv[first], "refresh");
	struct dv_err err;
	struct dv_catalog *cat = NULL;
	char *region = NULL, *out = NULL;
	if (dv_cloud_catalog(x.catalog, &cat, &err) < 0 || dv_cloud_region(x.region, &region, &err) < 0) {
		rc = dv_cli_fail("catalog", &err);
		goto done;
	}
	if (!do_refresh) {
		rc = list(cat, region);
		goto done;
	}
	out = x.output ? dv_strdup(x.output) : dv_catalog_user_path();
	if (!out) {
		rc = dv_cli_usage("catalog", "no HOME or XDG_DATA_HOME: give --output FILE");
		goto done;
	}
	if (refresh(cat, region, out, &err) < 0)
		rc = dv_cli_fail("catalog", &err);
done:
	dv_catalog_free(cat);
	free(region);
	free(out);
	return rc;
}
