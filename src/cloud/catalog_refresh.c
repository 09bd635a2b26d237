/*
 * catalog_refresh.c - refreshes the instance catalog's specs from EC2
 * DescribeInstanceTypes (cloud.h); prices and burstable baselines are not
 * in that API and are kept from the file.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud.h"

/* DescribeInstanceTypes for every type in the catalog, 100 per request,
 * following NextToken. The types go in an instance-type filter, not as
 * InstanceType.N: EC2 refuses the whole request (InvalidInstanceType) when
 * one type so named is not offered in the region, while a filter value
 * that matches nothing is just absent from the answer (reported missing). */
void dv_cloud_refresh_result_release(struct dv_cloud_refresh_result *res)
{
	free(res->region);
	json_decref(res->missing);
	memset(res, 0, sizeof *res);
}

int dv_cloud_catalog_refresh(struct dv_catalog *cat, const char *region, const char *output,
			     const struct dv_cloud_cb *cb, struct dv_cloud_refresh_result *res, struct dv_err *err)
{
	memset(res, 0, sizeof *res);
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
				if (ch && cb && cb->catalog_updated)
					cb->catalog_updated(cb->ctx, t->type);
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
			if (cb && cb->catalog_missing)
				cb->catalog_missing(cb->ctx, dv_catalog_at(cat, i)->name, dv_ec2_region(ec2));
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
	res->region = dv_strdup(dv_ec2_region(ec2));
	res->n = n;
	res->found = found;
	res->changed = changed;
	res->missing = missing;
	dv_buf_release(&resp);
	free(seen);
	dv_ec2_free(ec2);
	return r;
}

