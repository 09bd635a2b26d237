/* cloud.c - setup and output shared by rightsize, catalog, launch, cleanup. */
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

int dv_cloud_region(const char *explicit_region, char **region, struct dv_err *err)
{
	*region = NULL;
	if (explicit_region) {
		*region = dv_strdup(explicit_region);
		return 0;
	}
	struct dv_aws_config cfg;
	struct dv_aws_options opt = {0};
	int r = dv_aws_config_load(&opt, &cfg, err);
	if (r < 0)
		return r;
	*region = dv_strdup(cfg.region);
	dv_aws_config_release(&cfg);
	return 0;
}

int dv_cloud_ec2(const char *region, struct dv_ec2 **out, struct dv_err *err)
{
	*out = NULL;
	struct dv_aws_options opt = {.region = region};
	struct dv_aws_config cfg;
	struct dv_aws_creds creds;
	memset(&creds, 0, sizeof creds);
	int r = dv_aws_config_load(&opt, &cfg, err);
	if (r < 0)
		return r;
	if ((r = dv_aws_creds_load(&opt, &cfg, &creds, err)) == 0)
		r = dv_ec2_new(&cfg, &creds, NULL, out, err);
	dv_aws_creds_release(&creds);
	dv_aws_config_release(&cfg);
	return r;
}

int dv_cloud_catalog(const char *explicit_path, struct dv_catalog **out, struct dv_err *err)
{
	*out = NULL;
	char *path = NULL;
	int r = dv_catalog_locate(explicit_path, &path, err);
	if (r == 0)
		r = dv_catalog_load(path, out, err);
	free(path);
	return r;
}

int dv_cloud_parse_tag(const char *arg, char **buf, const char **key, const char **value)
{
	*buf = NULL;
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg || eq - arg > 128 || strlen(eq + 1) > 256)
		return -1;
	/* "aws:" is reserved by AWS; our own prefix only through our code */
	if (!strncmp(arg, "aws:", 4) || !strncmp(arg, "diskvault:", 10))
		return -1;
	*buf = dv_strdup(arg);
	(*buf)[eq - arg] = 0;
	*key = *buf;
	*value = *buf + (eq - arg) + 1;
	return 0;
}

const char *dv_cloud_boot_mode(const json_t *manifest, unsigned disk)
{
	const json_t *d = json_array_get(json_object_get(manifest, "disks"), disk);
	const char *m = json_string_value(json_object_get(json_object_get(d, "layout"), "boot_mode"));
	if (m && (!strcmp(m, "uefi") || !strcmp(m, "bios") || !strcmp(m, "uefi+bios")))
		return m;
	return "unknown";
}

static const json_t *disk_os(const json_t *manifest, unsigned disk)
{
	const json_t *d = json_array_get(json_object_get(manifest, "disks"), disk);
	const json_t *os = json_object_get(json_object_get(d, "layout"), "os");
	return json_is_object(os) ? os : NULL;
}

const char *dv_cloud_disk_arch(const json_t *manifest, unsigned disk)
{
	const char *a = json_string_value(json_object_get(disk_os(manifest, disk), "architecture"));
	return a && *a && strcmp(a, "unknown") ? a : NULL;
}

static int tri_state(const json_t *v)
{
	return json_is_true(v) ? 1 : json_is_false(v) ? 0 : -1;
}

bool dv_cloud_disk_nitro(const json_t *manifest, unsigned disk, int *nvme, int *ena, const char **kernel,
			 const char **initramfs)
{
	const json_t *n = json_object_get(disk_os(manifest, disk), "nitro_drivers");
	if (!json_is_object(n))
		return false;
	*nvme = tri_state(json_object_get(n, "nvme"));
	*ena = tri_state(json_object_get(n, "ena"));
	*kernel = json_string_value(json_object_get(n, "kernel"));
	*initramfs = json_string_value(json_object_get(n, "initramfs"));
	if (!*kernel)
		*kernel = "?";
	return true;
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
