/*
 * cmd_catalog.c - `diskvault catalog list|refresh`: shows the instance
 * catalog right-sizing uses, or refreshes its specs from EC2
 * DescribeInstanceTypes (prices and burstable baselines are not in that API
 * and are kept from the file).
 */
#include <errno.h>
#include <libgen.h>
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

/* DescribeInstanceTypes for every type in the catalog, 100 per request,
 * following NextToken. The types go in an instance-type filter, not as
 * InstanceType.N: EC2 refuses the whole request (InvalidInstanceType) when
 * one type so named is not offered in the region, while a filter value
 * that matches nothing is just absent from the answer (reported missing). */
static int refresh(struct dv_catalog *cat, const char *region, const char *output, struct dv_err *err)
{
	struct dv_ec2 *ec2 = NULL;
	int r = dv_cloud_ec2(region, &ec2, err);
	if (r < 0)
		return r;
	size_t n = dv_catalog_count(cat), found = 0, changed = 0;
	bool *seen = dv_calloc(n ? n : 1, sizeof *seen);
	struct dv_buf resp = DV_BUF_INIT;
	for (size_t start = 0; r == 0 && start < n; start += 100) {
		char *token = NULL;
		do {
			struct dv_ec2_form f;
			dv_ec2_form_init(&f, "DescribeInstanceTypes");
			dv_ec2_form_add(&f, "Filter.1.Name", "instance-type");
			for (size_t i = start; i < n && i < start + 100; i++)
				dv_ec2_form_addf(&f, dv_catalog_at(cat, i)->name, "Filter.1.Value.%zu", i - start + 1);
			dv_ec2_form_add(&f, "MaxResults", "100");
			if (token)
				dv_ec2_form_add(&f, "NextToken", token);
			free(token);
			token = NULL;
			r = dv_ec2_call(ec2, &f, &resp, NULL, err);
			dv_ec2_form_release(&f);
			struct dv_ec2_type_infos ti;
			memset(&ti, 0, sizeof ti);
			if (r == 0)
				r = dv_ec2_parse_instance_types((char *)resp.data, resp.len, &ti, err);
			for (size_t k = 0; r == 0 && k < ti.n; k++) {
				const struct dv_ec2_type_info *t = &ti.v[k];
				const struct dv_catalog_type *ct = dv_catalog_find(cat, t->type);
				if (!ct)
					continue; /* not asked for */
				for (size_t q = 0; q < n; q++)
					if (dv_catalog_at(cat, q) == ct && !seen[q]) {
						seen[q] = true;
						found++;
					}
				/* arm64 wins when a type lists both (none does today) */
				enum dv_arch a = strstr(t->architectures, "arm64")    ? DV_ARCH_ARM64
						 : strstr(t->architectures, "x86_64") ? DV_ARCH_X86_64
										      : DV_ARCH_UNKNOWN;
				struct dv_catalog_spec s = {
					.type = t->type,
					.arch = a,
					.vcpus = t->vcpus,
					.memory_mib = t->memory_mib,
					.burstable = t->burstable,
					.ena = t->ena[0] ? t->ena : NULL,
					.nvme = t->nvme[0] ? t->nvme : NULL,
					.boot_modes = t->boot_modes[0] ? t->boot_modes : NULL,
				};
				bool ch = false;
				r = dv_catalog_update(cat, &s, &ch, err);
				if (r < 0)
					dv_error_prefix(err, "DescribeInstanceTypes answer for %s: ", t->type);
				changed += ch;
				if (ch && !dv_cli.quiet && !dv_cli.json)
					printf("updated %s\n", t->type);
			}
			if (r == 0 && ti.next_token && *ti.next_token)
				token = dv_strdup(ti.next_token);
			dv_ec2_type_infos_release(&ti);
		} while (r == 0 && token);
		free(token);
	}
	json_t *missing = json_array();
	for (size_t i = 0; r == 0 && i < n; i++)
		if (!seen[i]) {
			json_array_append_new(missing, json_string(dv_catalog_at(cat, i)->name));
			if (!dv_cli.json)
				fprintf(stderr, "diskvault catalog: warning: %s is not offered in %s (kept as it was)\n",
					dv_catalog_at(cat, i)->name, dv_ec2_region(ec2));
		}
	if (r == 0) {
		char when[32], *note;
		dv_format_time(when, sizeof when, dv_unix_now());
		note = dv_asprintf("%s, specs from DescribeInstanceTypes in %s", when, dv_ec2_region(ec2));
		dv_catalog_set_comment(cat, "refreshed", note);
		free(note);
		char *dir = dv_strdup(output);
		r = dv_mkdir_p(dirname(dir), 0755, err);
		free(dir);
		if (r == 0)
			r = dv_catalog_save(cat, output, err);
	}
	if (r == 0) {
		if (dv_cli.json)
			dv_cli_print_json(json_pack("{s:s, s:b, s:s, s:s, s:i, s:i, s:O}", "command", "catalog", "ok", 1,
						    "file", output, "region", dv_ec2_region(ec2), "types", (int)found,
						    "changed", (int)changed, "missing", missing));
		else if (!dv_cli.quiet)
			printf("catalog refreshed from DescribeInstanceTypes in %s: %zu of %zu types found, %zu changed; "
			       "written to %s (prices kept)\n",
			       dv_ec2_region(ec2), found, n, changed, output);
	}
	json_decref(missing);
	dv_buf_release(&resp);
	free(seen);
	dv_ec2_free(ec2);
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
