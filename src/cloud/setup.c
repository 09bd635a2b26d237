/* setup.c - region, EC2 client, catalog, tags, and what a manifest says
 * about a disk (cloud.h). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloud_internal.h"

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

bool dv_cloud_is_ebs_snapshot_id(const char *s)
{
	if (strncmp(s, "snap-", 5) || strlen(s) < 6 || strlen(s) > 64)
		return false;
	for (s += 5; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
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

const json_t *dv_cloud_disk_device_names(const json_t *manifest, unsigned disk)
{
	const json_t *a = json_object_get(disk_os(manifest, disk), "device_names");
	return json_array_size(a) ? a : NULL;
}

bool dv_cloud_interrupted(const struct dv_cloud_cb *cb)
{
	return cb && cb->interrupted && cb->interrupted(cb->ctx);
}

double dv_cloud_poll_interval(void)
{
	const char *v = getenv("DISKVAULT_EC2_POLL_SECONDS");
	double d = v ? atof(v) : 0;
	return d > 0 && d <= 60 ? d : 5;
}

double dv_cloud_wait_limit(void)
{
	const char *v = getenv("DISKVAULT_EC2_WAIT_SECONDS");
	return v && atof(v) > 0 ? atof(v) : 900;
}

void dv_cloud_pause(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}
