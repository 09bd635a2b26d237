/* cloud.c - options and output shared by rightsize, catalog, launch, cleanup
 * (the work is in src/cloud/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cloud.h"

int dv_cloud_arch_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	enum dv_arch *arch = o->dest;
	*arch = dv_arch_parse(arg);
	if (*arch == DV_ARCH_UNKNOWN)
		return dv_cli_usage(cmd, "--arch must be x86_64 or arm64");
	return 0;
}

#define GIB (1024.0 * 1024.0 * 1024.0)

static void print_type(const char *label, const struct dv_catalog_type *t, double price)
{
	printf("%-12s %s: %u vCPUs, %g GiB, ", label, t->name, t->vcpus, t->memory_gib);
	if (t->burstable)
		printf("burstable (%g%% baseline per vCPU), ", t->baseline_pct);
	printf("$%.4f/hour, $%.2f/month\n", price, price * DV_SIZING_HOURS_PER_MONTH);
}

void dv_cloud_print_sizing(const struct dv_sizing_result *res, const struct dv_sizing_input *in,
			   const struct dv_sizing_opts *o, const struct dv_catalog *cat)
{
	printf("source       %s (%s, %d logical CPUs, %.1f GiB MemTotal)", in->hostname[0] ? in->hostname : "?",
	       in->arch_raw[0] ? in->arch_raw : dv_arch_name(res->arch), in->logical_cpus,
	       in->mem_total > 0 ? in->mem_total / GIB : 0.0);
	if (in->samples > 0)
		printf(", %ld utilisation sample%s%s%s%s%s", in->samples, in->samples == 1 ? "" : "s",
		       in->first[0] ? " from " : "", in->first, in->last[0] && strcmp(in->first, in->last) ? " to " : "",
		       in->last[0] && strcmp(in->first, in->last) ? in->last : "");
	else
		printf(", no utilisation samples");
	printf("\nregion       %s, headroom %.0f%%%s%s\n", o->region, o->headroom * 100,
	       o->boot_mode && strcmp(o->boot_mode, "unknown") ? ", image boots " : "",
	       o->boot_mode && strcmp(o->boot_mode, "unknown") ? o->boot_mode : "");
	if (res->from_spec)
		printf("CPU need     %.2f vCPUs (%s)\n", res->cpu_need, res->cpu_basis);
	else
		printf("CPU need     %.2f vCPUs = %.2f measured (%s) + %.0f%% headroom\n", res->cpu_need,
		       res->cpu_measured, res->cpu_basis, o->headroom * 100);
	if (res->from_spec)
		printf("memory need  %.2f GiB (%s)\n", res->mem_need / GIB, res->mem_basis);
	else
		printf("memory need  %.2f GiB = %.2f GiB measured (%s) + %.0f%% headroom\n", res->mem_need / GIB,
		       res->mem_measured / GIB, res->mem_basis, o->headroom * 100);
	if (res->avg_vcpus >= 0)
		printf("average use  %.2f vCPUs (%s): decides whether a burstable type fits\n", res->avg_vcpus,
		       in->avg_basis);
	print_type("chosen", res->chosen, res->chosen_price);
	if (res->spec_match) {
		print_type("spec match", res->spec_match, res->spec_price);
		double save = (res->spec_price - res->chosen_price) * DV_SIZING_HOURS_PER_MONTH;
		if (save > 0.005)
			printf("             the chosen type costs $%.2f/month less than a spec-matching one\n", save);
	} else {
		printf("spec match   none in the catalog has %d vCPUs and %.1f GiB\n", in->logical_cpus,
		       in->mem_total / GIB);
	}
	if (res->nrejected) {
		/* the closest in price tell the story; --json lists them all */
		size_t from = res->nrejected > 6 ? res->nrejected - 6 : 0;
		printf("cheaper types passed over%s:\n", from ? " (the 6 closest in price; --json lists all)" : "");
		for (size_t i = from; i < res->nrejected; i++)
			printf("  %-12s $%.4f/hour  %s\n", res->rejected[i].type->name, res->rejected[i].price,
			       res->rejected[i].why);
	}
	for (size_t i = 0; i < res->nnotes; i++)
		printf("note: %s\n", res->notes[i]);
	const char *date = dv_catalog_comment(cat, "date");
	const char *refreshed = dv_catalog_comment(cat, "refreshed");
	printf("catalog      %s (prices of %s%s%s)\n", dv_catalog_source(cat), date ? date : "unknown date",
	       refreshed ? "; specs refreshed " : "", refreshed ? refreshed : "");
}
