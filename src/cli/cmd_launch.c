/*
 * cmd_launch.c - `diskvault launch`: an EBS snapshot of a backed-up disk
 * becomes an AMI and a running, right-sized instance. Parses, plans and
 * runs through src/cloud/launch.c, prints (docs/iam.md lists the EC2
 * actions).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cloud.h"
#include "repo/repo.h"

#define MAX_SG DV_CLOUD_MAX_SG
#define MAX_TAGS DV_CLOUD_MAX_TAGS

static const char launch_help[] =
	"usage: diskvault launch SNAPSHOT|snap-... [--disk N] [--instance-type auto|TYPE]\n"
	"           [--subnet ID] [--security-group ID]... [--key-name K] [--name N] [--tag K=V]...\n"
	"           [--region R] [--inventory FILE] [--catalog FILE] [--headroom PCT]\n"
	"           [--arch x86_64|arm64] [--boot-mode uefi|bios|uefi+bios] [--root-device DEV]\n"
	"           [--no-wait] [--dry-run] [--json]\n"
	"Registers an AMI from the EBS snapshot of a backed-up disk (SNAPSHOT: the one\n"
	"'ebs-import SNAPSHOT' made; or an EBS snapshot id: with --repo, the snapshot it was\n"
	"imported from is found by its import record or its diskvault tags, and its disk,\n"
	"inventory and boot mode are used) - HVM, the architecture, gp3 root\n"
	"volume deleted on termination, ENA support, the boot mode probed at backup - and runs\n"
	"one instance of it with IMDSv2 required, waits until it runs and prints its addresses.\n"
	"--instance-type auto (the default) sizes from the snapshot's inventory (or --inventory)\n"
	"as 'rightsize' does. Everything created carries the tags diskvault:created-by,\n"
	"diskvault:launched-from and diskvault:launch-id; 'diskvault cleanup' removes it.\n"
	"  --dry-run         print the full plan; create nothing\n"
	"  --no-wait         do not wait for the instance to run\n"
	"  --root-device DEV root device name of the AMI (default /dev/xvda)\n";

#define STR_(x) #x
#define STR(x) STR_(x) /* MAX_SG, MAX_TAGS as string literals, for messages */

static int boot_mode_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	if (strcmp(arg, "uefi") && strcmp(arg, "bios") && strcmp(arg, "uefi+bios"))
		return dv_cli_usage(cmd, "--boot-mode must be uefi, bios or uefi+bios");
	*(const char **)o->dest = arg;
	return 0;
}

static int root_device_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	if (strncmp(arg, "/dev/", 5) || strlen(arg) > 32)
		return dv_cli_usage(cmd, "--root-device must be a device name such as /dev/xvda");
	*(const char **)o->dest = arg;
	return 0;
}

static bool interrupted(void *ctx)
{
	(void)ctx;
	return dv_cli_interrupted;
}

static void started(void *ctx, const char *iid, const char *itype, const char *ami)
{
	(void)ctx;
	if (!dv_cli.json && !dv_cli.quiet)
		printf("instance %s (%s) started from %s; waiting for it to run...\n", iid, itype, ami);
	fflush(stdout);
}

static void print_form(const char *title, const struct dv_ec2_form *f)
{
	printf("%s\n", title);
	for (size_t i = 2; i < f->n; i++) /* after Action and Version */
		printf("    %s=%s\n", f->keys[i], f->values[i]);
}

static json_t *form_json(const struct dv_ec2_form *f)
{
	json_t *j = json_object();
	for (size_t i = 0; i < f->n; i++)
		json_object_set_new(j, f->keys[i], json_string(f->values[i]));
	return j;
}

static json_t *warnings_json(const struct dv_cloud_warnings *w)
{
	json_t *a = json_array();
	for (size_t i = 0; i < w->n; i++)
		json_array_append_new(a, json_string(w->v[i]));
	return a;
}

static void print_plan(const struct dv_cloud_plan *p)
{
	const char *arch = dv_arch_name(p->d.arch), *id = p->id;
	if (dv_cli.json) {
		json_t *j = json_pack("{s:s, s:b, s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:o, s:o, s:o}, s:o, s:o}",
				      "command", "launch", "ok", 1, "dry_run", 1, "ebs_snapshot", p->ebs_id, "region",
				      p->region, "architecture", arch, "boot_mode", p->d.boot, "instance_type",
				      p->instance_type, "launch_id", p->launch_id, "plan", "RegisterImage",
				      form_json(&p->reg), "CreateTags", form_json(&p->tags), "RunInstances",
				      form_json(&p->run), "warnings", warnings_json(&p->d.w), "sizing",
				      p->sizing_json ? json_incref(p->sizing_json) : json_null());
		if (id[0])
			json_object_set_new(j, "snapshot", json_string(id));
		dv_cli_print_json(j);
	} else if (!dv_cli.quiet) {
		printf("launch plan (dry run: nothing is created) in %s: EBS snapshot %s%s%s, %s (%s), boot mode "
		       "%s, instance type %s\n",
		       p->region, p->ebs_id, id[0] ? " of snapshot " : "", id, arch, p->d.arch_from, p->d.boot,
		       p->instance_type);
		print_form("1. RegisterImage", &p->reg);
		print_form("2. CreateTags", &p->tags);
		print_form("3. RunInstances", &p->run);
		printf("4. DescribeInstances until the instance is running, then print its addresses\n");
	}
}

static void print_launched(const struct dv_cloud_plan *p, const struct dv_cloud_launched *l)
{
	const struct dv_ec2_instance *i0 = &l->inst.v[0];
	if (dv_cli.json) {
		json_t *j = json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:o, s:o}", "command",
				      "launch", "ok", 1, "ebs_snapshot", p->ebs_id, "region", p->region, "image_id",
				      l->ami, "instance_id", i0->id, "instance_type", p->instance_type, "architecture",
				      dv_arch_name(p->d.arch), "boot_mode", p->d.boot, "private_ip",
				      i0->private_ip ? json_string(i0->private_ip) : json_null(), "public_ip",
				      i0->public_ip ? json_string(i0->public_ip) : json_null(), "launch_id",
				      p->launch_id, "warnings", warnings_json(&p->d.w), "sizing",
				      p->sizing_json ? json_incref(p->sizing_json) : json_null());
		json_object_set_new(j, "state", json_string(i0->state ? i0->state : "pending"));
		if (p->id[0])
			json_object_set_new(j, "snapshot", json_string(p->id));
		dv_cli_print_json(j);
	} else if (!dv_cli.quiet) {
		printf("launched %s (%s, %s) from AMI %s of %s: private address %s, public address %s\n", i0->id,
		       p->instance_type, i0->state ? i0->state : "pending", l->ami, p->ebs_id,
		       i0->private_ip ? i0->private_ip : "-", i0->public_ip ? i0->public_ip : "-");
		printf("remove it with: diskvault cleanup --launched-from %s\n", p->from);
	}
}

int cmd_launch(int argc, char **argv)
{
	struct dv_cloud_launch_opts x = {.headroom = -1, .instance_type = "auto", .root_device = "/dev/xvda"};
	const char *sg[MAX_SG], *tags[MAX_TAGS];
	bool dry_run = false, no_wait = false;
	const struct dv_cli_opt opts[] = {
		DV_OPT_UINT("disk", &x.disk, 0, 1000, "--disk must be a disk number"),
		DV_OPT_STRING("instance-type", &x.instance_type),
		DV_OPT_STRING("subnet", &x.subnet),
		DV_OPT_LIST("security-group", sg, &x.nsecurity_groups, MAX_SG, "at most " STR(MAX_SG) " --security-group"),
		DV_OPT_STRING("key-name", &x.key_name),
		DV_OPT_STRING("name", &x.name),
		DV_OPT_LIST("tag", tags, &x.ntags, MAX_TAGS, "at most " STR(MAX_TAGS) " --tag"),
		DV_CLOUD_SIZING_OPTS(&x),
		DV_OPT_CALLBACK("boot-mode", required_argument, boot_mode_opt, &x.boot_mode),
		DV_OPT_CALLBACK("root-device", required_argument, root_device_opt, &x.root_device),
		DV_OPT_FLAG("no-wait", &no_wait),
		DV_OPT_FLAG("dry-run", &dry_run),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("launch", launch_help, argc, argv, opts, &first, &rc))
		return rc;
	if (argc - first != 1)
		return dv_cli_usage("launch", "give exactly one SNAPSHOT or EBS snapshot id");
	const char *src = argv[first];
	struct dv_err err;
	struct dv_repo *repo = NULL;
	json_t *manifest = NULL;
	char id[DV_ID_HEX_LEN + 1] = "";
	struct dv_cloud_plan plan;
	struct dv_cloud_launched l;
	memset(&plan, 0, sizeof plan);
	memset(&l, 0, sizeof l);
	x.security_groups = sg;
	x.tag_args = tags;
	struct dv_cloud_cb cb = {.interrupted = interrupted, .launch_started = started};
	bool is_ebs = dv_cloud_is_ebs_snapshot_id(src);
	char *found_region = NULL;
	if (!is_ebs) {
		const char *repo_path;
		if ((rc = dv_cli_need_repo("launch", &repo_path)))
			return rc;
		if (dv_cli_open_snapshot(repo_path, src, &repo, id, &manifest, &err) < 0)
			goto fail;
	} else if (dv_cli.repo && *dv_cli.repo) {
		/* with a repository, an EBS snapshot diskvault imported brings its
		 * backup's inventory, boot mode and drivers */
		if (dv_cli_open_repo(dv_cli.repo, &repo, &err) < 0)
			goto fail;
		if (dv_cloud_find_imported(repo, src, x.region, id, &x.disk, &found_region, &err) < 0)
			goto fail;
		if (!id[0]) {
			if (!dv_cli.quiet)
				fprintf(stderr, "diskvault launch: note: %s; going on without the backup's records\n",
					err.msg);
			dv_repo_free(repo);
			repo = NULL;
			id[0] = 0;
		} else if (dv_snapshot_load(repo, id, &manifest, &err) < 0) {
			goto fail;
		} else if (!x.region) {
			x.region = found_region;
		}
	}
	if (dv_cloud_launch_plan(repo, id[0] ? id : NULL, manifest, is_ebs ? src : NULL, &x, &plan, &err) < 0)
		goto fail;
	if (plan.sized && !dv_cli.json && !dv_cli.quiet) {
		printf("right-sizing (--instance-type auto):\n");
		dv_cloud_print_sizing(&plan.res, &plan.in, &plan.so, plan.cat);
	}
	if (!dv_cli.json)
		for (size_t i = 0; i < plan.d.w.n; i++)
			fprintf(stderr, "diskvault launch: warning: %s\n", plan.d.w.v[i]);
	if (dry_run)
		print_plan(&plan);
	else if (dv_cloud_launch_run(&plan, no_wait, &cb, &l, &err) < 0)
		goto fail;
	else
		print_launched(&plan, &l);
	rc = 0;
	goto out;
fail:
	rc = dv_cli_fail("launch", &err);
out:
	dv_cloud_launched_release(&l);
	dv_cloud_plan_release(&plan);
	json_decref(manifest);
	dv_repo_free(repo);
	free(found_region);
	return rc;
}
