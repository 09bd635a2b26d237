/*
 * cmd_rightsize.c - `diskvault rightsize SNAPSHOT|--inventory FILE`: the
 * cheapest EC2 instance type that meets the machine's measured need, and
 * why (algorithm: docs/rightsizing.md; library: src/sizing/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cloud.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault rightsize SNAPSHOT|--inventory FILE [--region R] [--headroom PCT]\n"
	"                           [--catalog FILE] [--arch x86_64|arm64] [--json]\n"
	"Chooses the cheapest EC2 instance type that meets the measured need of the machine\n"
	"a snapshot's inventory (or an inventory file) describes: CPU from the measured busy\n"
	"time and load (p95 from 20 samples on, else the peak), memory from memory in use,\n"
	"plus headroom; burstable types only when the average use stays under their\n"
	"baseline. Without utilisation samples it sizes on the spec and says so.\n"
	"Algorithm: docs/rightsizing.md.\n"
	"  --inventory FILE  output of 'inventory --json', or an 'inventory --append' file\n"
	"  --region R        price column of the catalog (default: the AWS configuration's)\n"
	"  --headroom PCT    added to the measured need (default 30)\n"
	"  --catalog FILE    instance catalog (default: see data/ec2-catalog.md)\n"
	"  --arch A          size for this architecture instead of the recorded one\n";

struct opts {
	const char *inventory;
	const char *region;
	const char *catalog;
	double headroom;
	enum dv_arch arch;
};

/* Input (and the probed boot mode) from a snapshot's manifest. */
static int from_snapshot(const char *spec, struct dv_sizing_input *in, char *boot, size_t nboot, char id[],
			 enum dv_arch *disk_arch, struct dv_err *err)
{
	struct dv_repo *repo = NULL;
	json_t *m = NULL;
	int r = dv_cli_open_snapshot(dv_cli.repo, spec, &repo, id, &m, err);
	if (r == 0) {
		snprintf(boot, nboot, "%s", dv_cloud_boot_mode(m, 0));
		const char *a = dv_cloud_disk_arch(m, 0);
		*disk_arch = a ? dv_arch_parse(a) : DV_ARCH_UNKNOWN;
		r = dv_sizing_input_from_json(m, in, err);
		if (r < 0)
			dv_error_prefix(err, "snapshot %.8s: ", id);
	}
	json_decref(m);
	dv_repo_free(repo);
	return r;
}

int cmd_rightsize(int argc, char **argv)
{
	struct opts x = {.headroom = -1};
	const struct dv_cli_opt opts[] = {DV_CLOUD_SIZING_OPTS(&x), DV_OPT_END};
	int first, rc;
	if (!dv_cli_parse("rightsize", help, argc, argv, opts, &first, &rc))
		return rc;
	if ((argc - first != 1) == !x.inventory || argc - first > 1)
		return dv_cli_usage("rightsize", "give either SNAPSHOT or --inventory FILE");
	if (!x.inventory) {
		const char *repo_path;
		if ((rc = dv_cli_need_repo("rightsize", &repo_path)))
			return rc;
	}
	struct dv_err err;
	struct dv_sizing_input in;
	struct dv_sizing_opts so;
	struct dv_sizing_result res;
	struct dv_catalog *cat = NULL;
	char *region = NULL;
	char boot[16] = "unknown", id[DV_ID_HEX_LEN + 1] = "";
	enum dv_arch disk_arch = DV_ARCH_UNKNOWN;
	memset(&res, 0, sizeof res);
	dv_sizing_opts_default(&so);
	if (x.headroom >= 0)
		so.headroom = x.headroom;
	so.arch = x.arch;
	if (x.inventory) {
		struct dv_buf b = DV_BUF_INIT;
		int r = dv_read_file(x.inventory, 256u << 20, &b, &err);
		if (r == 0)
			r = dv_sizing_input_parse(b.data ? (char *)b.data : "", b.len, x.inventory, &in, &err);
		dv_buf_release(&b);
		if (r < 0)
			return dv_cli_fail("rightsize", &err);
	} else if (from_snapshot(argv[first], &in, boot, sizeof boot, id, &disk_arch, &err) < 0) {
		return dv_cli_fail("rightsize", &err);
	}
	/* an inventory without a usable architecture: the installed OS's */
	if (so.arch == DV_ARCH_UNKNOWN && in.arch == DV_ARCH_UNKNOWN)
		so.arch = disk_arch;
	so.boot_mode = boot;
	if (dv_cloud_catalog(x.catalog, &cat, &err) < 0 || dv_cloud_region(x.region, &region, &err) < 0) {
		rc = dv_cli_fail("rightsize", &err);
		goto out;
	}
	so.region = region;
	if (dv_sizing_choose(cat, &in, &so, &res, &err) < 0) {
		rc = dv_cli_fail("rightsize", &err);
		goto out;
	}
	if (dv_cli.json) {
		json_t *j = dv_sizing_result_json(&res, &in, &so, cat);
		json_object_set_new(j, "command", json_string("rightsize"));
		json_object_set_new(j, "ok", json_true());
		if (id[0])
			json_object_set_new(j, "snapshot", json_string(id));
		json_object_set_new(j, "boot_mode", json_string(boot));
		dv_cli_print_json(j);
	} else if (!dv_cli.quiet) {
		dv_cloud_print_sizing(&res, &in, &so, cat);
	}
out:
	dv_sizing_result_release(&res);
	dv_catalog_free(cat);
	free(region);
	return rc;
}
