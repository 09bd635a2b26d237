/*
 * cloud.h - what the EC2-facing commands (rightsize, catalog, launch,
 * cleanup) share: region and client setup, the catalog, the diskvault tags
 * on everything launch creates, and the right-sizing report.
 */
#ifndef DV_CLI_CLOUD_H
#define DV_CLI_CLOUD_H

#include <jansson.h>

#include "aws/aws.h"
#include "aws/ec2.h"
#include "sizing/sizing.h"
#include "util/util.h"

/* Tags launch puts on every resource it creates (instance, volumes, AMI)
 * and that cleanup requires before it touches anything. */
#define DV_TAG_CREATED_BY "diskvault:created-by"      /* value "diskvault" */
#define DV_TAG_LAUNCHED_FROM "diskvault:launched-from" /* diskvault snapshot id or snap-... */
#define DV_TAG_LAUNCH_ID "diskvault:launch-id"        /* one value per launch */

struct dv_cli_opt;
/* The dv_cli_opt_fn of --arch: x86_64 or arm64 into the enum dv_arch at
 * o->dest. */
int dv_cloud_arch_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg);
/* The options rightsize and launch share, for their option tables:
 * --region, --inventory, --catalog, --headroom, --arch. */
#define DV_CLOUD_SIZING_OPTS(x)                                                                                    \
	DV_OPT_STRING("region", &(x)->region), DV_OPT_STRING("inventory", &(x)->inventory),                          \
		DV_OPT_STRING("catalog", &(x)->catalog),                                                              \
		DV_OPT_PERCENT("headroom", &(x)->headroom, 0, 1000,                                                   \
			       "--headroom must be a percentage between 0 and 1000"),                                 \
		DV_OPT_CALLBACK("arch", required_argument, dv_cloud_arch_opt, &(x)->arch)

/* The region: explicit, else the AWS configuration's (env, profile,
 * "us-east-1"). *region malloc'ed. */
int dv_cloud_region(const char *explicit_region, char **region, struct dv_err *err) DV_WUR;
/* Configuration, credentials and an EC2 client for region (NULL = the
 * configured one). */
int dv_cloud_ec2(const char *region, struct dv_ec2 **out, struct dv_err *err) DV_WUR;
/* Finds and loads the catalog (dv_catalog_locate order). */
int dv_cloud_catalog(const char *explicit_path, struct dv_catalog **out, struct dv_err *err) DV_WUR;
/* Splits "K=V" (K non-empty, at most 128 bytes; V at most 256); pointers
 * into a malloc'ed copy returned in *buf. -1 when malformed. */
int dv_cloud_parse_tag(const char *arg, char **buf, const char **key, const char **value);
/* Prints the right-sizing report for people on stdout. */
void dv_cloud_print_sizing(const struct dv_sizing_result *res, const struct dv_sizing_input *in,
			   const struct dv_sizing_opts *o, const struct dv_catalog *cat);
/* Boot mode of disk `disk` of a manifest ("uefi", "bios", "uefi+bios",
 * "unknown"); borrowed from the manifest or a constant. */
const char *dv_cloud_boot_mode(const json_t *manifest, unsigned disk);
/* Architecture of the OS installed on disk `disk` of a manifest, as the
 * probe read it from an ELF header (layout.os.architecture: "x86_64",
 * "arm64", "i386", ...), or NULL when not recorded or "unknown". Borrowed. */
const char *dv_cloud_disk_arch(const json_t *manifest, unsigned disk);
/* Nitro drivers of the newest kernel installed on disk `disk`
 * (layout.os.nitro_drivers): *nvme, *ena 1 present, 0 missing, -1 unknown;
 * *kernel borrowed. Returns false when the probe recorded no kernel. */
bool dv_cloud_disk_nitro(const json_t *manifest, unsigned disk, int *nvme, int *ena, const char **kernel,
			 const char **initramfs);

#endif
