/*
 * cloud.h - what the EC2-facing commands (rightsize, catalog, launch,
 * cleanup) share in the CLI: the --arch option, the sizing options and the
 * right-sizing report. The work itself is in src/cloud/cloud.h.
 */
#ifndef DV_CLI_CLOUD_H
#define DV_CLI_CLOUD_H

#include <jansson.h>

#include "cloud/cloud.h"
#include "sizing/sizing.h"
#include "util/util.h"

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

/* Prints the right-sizing report for people on stdout. */
void dv_cloud_print_sizing(const struct dv_sizing_result *res, const struct dv_sizing_input *in,
			   const struct dv_sizing_opts *o, const struct dv_catalog *cat);
#endif
