/*
 * cmd_launch.c - `diskvault launch` (an EBS snapshot of a backed-up disk
 * becomes an AMI and a running, right-sized instance) and `diskvault
 * cleanup` (removes what launch created, found by the diskvault tags it
 * puts on everything; docs/iam.md lists the EC2 actions both need).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cloud.h"
#include "repo/ebs_state.h"
#include "repo/repo.h"

#define MAX_SG 16
#define MAX_TAGS 40

static const char launch_help[] =
	"usage: diskvault launch SNAPSHOT|snap-... [--disk N] [--instance-type auto|TYPE]\n"
	"           [--subnet ID] [--security-group ID]... [--key-name K] [--name N] [--tag K=V]...\n"
	"           [--region R] [--inventory FILE] [--catalog FILE] [--headroom PCT]\n"
	"           [--arch x86_64|arm64] [--boot-mode uefi|bios|uefi+bios] [--root-device DEV]\n"
	"           [--no-wait] [--dry-run] [--json]\n"
	"Registers an AMI from the EBS snapshot of a backed-up disk (SNAPSHOT: the one\n"
	"'ebs-import SNAPSHOT' made; or an EBS snapshot id) - HVM, the architecture, gp3 root\n"
	"volume deleted on termination, ENA support, the boot mode probed at backup - and runs\n"
	"one instance of it with IMDSv2 required, waits until it runs and prints its addresses.\n"
	"--instance-type auto (the default) sizes from the snapshot's inventory (or --inventory)\n"
	"as 'rightsize' does. Everything created carries the tags diskvault:created-by,\n"
	"diskvault:launched-from and diskvault:launch-id; 'diskvault cleanup' removes it.\n"
	"  --dry-run         print the full plan; create nothing\n"
	"  --no-wait         do not wait for the instance to run\n"
	"  --root-device DEV root device name of the AMI (default /dev/xvda)\n";

static const char cleanup_help[] =
	"usage: diskvault cleanup --launched-from SNAPSHOT|snap-... | --tag K=V [--region R]\n"
	"           [--no-wait] [--dry-run] [--json]\n"
	"Terminates the instances, deregisters the AMIs and deletes the EBS snapshots that\n"
	"diskvault created (tag diskvault:created-by=diskvault) and that were launched from\n"
	"SNAPSHOT (or carry tag K=V), and nothing else. --dry-run lists them.\n";

#define STR_(x) #x
#define STR(x) STR_(x) /* MAX_SG, MAX_TAGS as string literals, for messages */

struct opts {
	unsigned disk;
	const char *itype;
	const char *subnet;
	const char *sg[MAX_SG];
	size_t nsg;
	const char *key_name;
	const char *name;
	const char *tag_args[MAX_TAGS];
	size_t ntags;
	const char *region;
	const char *inventory;
	const char *catalog;
	double headroom;
	enum dv_arch arch;
	const char *boot_mode;
	const char *root_device;
	const char *launched_from;
	bool dry_run;
	bool no_wait;
};

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

#define TAG_OPT(x) DV_OPT_LIST("tag", (x)->tag_args, &(x)->ntags, MAX_TAGS, "at most " STR(MAX_TAGS) " --tag")

static bool is_ebs_snapshot_id(const char *s)
{
	if (strncmp(s, "snap-", 5) || strlen(s) < 6 || strlen(s) > 64)
		return false;
	for (s += 5; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* Seconds between polls (DISKVAULT_EC2_POLL_SECONDS, default 5). */
static double poll_interval(void)
{
	const char *v = getenv("DISKVAULT_EC2_POLL_SECONDS");
	double d = v ? atof(v) : 0;
	return d > 0 && d <= 60 ? d : 5;
}

static void pause_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

/* ---- launch ---------------------------------------------------------------- */

struct warnings {
	char v[8][320];
	size_t n;
};

static void warn(struct warnings *w, const char *fmt, ...) DV_PRINTF(2, 3);
static void warn(struct warnings *w, const char *fmt, ...)
{
	if (w->n >= DV_ARRAY_SIZE(w->v))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->v[w->n++], sizeof w->v[0], fmt, ap);
	va_end(ap);
}

/* The EBS snapshot ebs-import made of disk `disk` of snapshot id (newest
 * record wins). *ebs_id and *region malloc'ed. */
static int find_import(struct dv_repo *repo, const char *id, unsigned disk, char **ebs_id, char **region,
		       struct dv_err *err)
{
	*ebs_id = *region = NULL;
	json_t *list = NULL;
	int r = dv_ebs_state_list(repo, &list, err);
	if (r < 0)
		return r;
	size_t i;
	json_t *rec;
	json_array_foreach(list, i, rec) {
		const char *s = json_string_value(json_object_get(rec, "snapshot"));
		const char *e = json_string_value(json_object_get(rec, "ebs_snapshot_id"));
		if (s && e && !strcmp(s, id) && json_integer_value(json_object_get(rec, "disk")) == (json_int_t)disk &&
		    is_ebs_snapshot_id(e)) {
			free(*ebs_id);
			free(*region);
			*ebs_id = dv_strdup(e);
			const char *reg = json_string_value(json_object_get(rec, "region"));
			*region = reg ? dv_strdup(reg) : NULL;
		}
	}
	json_decref(list);
	if (!*ebs_id)
		return dv_error(err, DV_E_NOT_FOUND,
				"disk %u of snapshot %.8s has no EBS snapshot yet: run 'diskvault ebs-import %.8s%s' "
				"first, or give an EBS snapshot id (snap-...)",
				disk, id, id, disk ? " --disk N" : "");
	return 0;
}

static void print_form(const char *title, const struct dv_ec2_form *f)
{
	printf("%s\n", title);
	for (size_t i = 2; i < f->n; i++)
		printf("    %s=%s\n", f->keys[i], f->values[i]);
}

static json_t *form_json(const struct dv_ec2_form *f)
{
	json_t *j = json_object();
	for (size_t i = 0; i < f->n; i++)
		json_object_set_new(j, f->keys[i], json_string(f->values[i]));
	return j;
}

/* Waits until instance id runs (or fails); fills *inst (owned). */
static int wait_running(struct dv_ec2 *ec2, const char *id, struct dv_ec2_instances *inst, struct dv_err *err)
{
	const char *v = getenv("DISKVAULT_EC2_WAIT_SECONDS");
	double limit = v && atof(v) > 0 ? atof(v) : 900, start = dv_now();
	struct dv_buf resp = DV_BUF_INIT;
	int r;
	for (;;) {
		struct dv_ec2_form f;
		dv_ec2_form_init(&f, "DescribeInstances");
		dv_ec2_form_add(&f, "InstanceId.1", id);
		r = dv_ec2_call(ec2, &f, &resp, NULL, err);
		dv_ec2_form_release(&f);
		/* a fresh instance may not be visible yet (eventual consistency) */
		if (r == -DV_E_NOT_FOUND && dv_now() - start < 60) {
			pause_s(poll_interval());
			continue;
		}
		if (r < 0)
			break;
		memset(inst, 0, sizeof *inst);
		if ((r = dv_ec2_parse_instances((char *)resp.data, resp.len, inst, err)) < 0)
			break;
		const char *st = inst->n ? inst->v[0].state : NULL;
		if (st && !strcmp(st, "running"))
			break;
		if (st && (!strcmp(st, "terminated") || !strcmp(st, "shutting-down") || !strcmp(st, "stopped"))) {
			r = dv_error(err, DV_E_REMOTE, "instance %s is %s instead of running", id, st);
			break;
		}
		dv_ec2_instances_release(inst);
		if (dv_cli_interrupted) {
			r = dv_error(err, DV_E_INTERRUPTED, "interrupted while waiting for %s", id);
			break;
		}
		if (dv_now() - start > limit) {
			r = dv_error(err, DV_E_REMOTE, "instance %s did not reach running within %.0f s", id, limit);
			break;
		}
		pause_s(poll_interval());
	}
	if (r < 0)
		dv_ec2_instances_release(inst);
	dv_buf_release(&resp);
	return r;
}

int cmd_launch(int argc, char **argv)
{
	struct opts x = {.headroom = -1, .itype = "auto", .root_device = "/dev/xvda"};
	const struct dv_cli_opt opts[] = {
		DV_OPT_UINT("disk", &x.disk, 0, 1000, "--disk must be a disk number"),
		DV_OPT_STRING("instance-type", &x.itype),
		DV_OPT_STRING("subnet", &x.subnet),
		DV_OPT_LIST("security-group", x.sg, &x.nsg, MAX_SG, "at most " STR(MAX_SG) " --security-group"),
		DV_OPT_STRING("key-name", &x.key_name),
		DV_OPT_STRING("name", &x.name),
		TAG_OPT(&x),
		DV_CLOUD_SIZING_OPTS(&x),
		DV_OPT_CALLBACK("boot-mode", required_argument, boot_mode_opt, &x.boot_mode),
		DV_OPT_CALLBACK("root-device", required_argument, root_device_opt, &x.root_device),
		DV_OPT_FLAG("no-wait", &x.no_wait),
		DV_OPT_FLAG("dry-run", &x.dry_run),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("launch", launch_help, argc, argv, opts, &first, &rc))
		return rc;
	if (argc - first != 1)
		return dv_cli_usage("launch", "give exactly one SNAPSHOT or EBS snapshot id");
	const char *src = argv[first];

	struct dv_err err;
	struct warnings w = {0};
	struct dv_repo *repo = NULL;
	json_t *manifest = NULL, *sizing_json = NULL;
	char id[DV_ID_HEX_LEN + 1] = "";
	char *ebs_id = NULL, *rec_region = NULL, *region = NULL, *ami = NULL, *tagbufs[MAX_TAGS] = {0};
	struct dv_catalog *cat = NULL;
	struct dv_sizing_input in;
	bool have_inv = false;
	struct dv_sizing_result res;
	struct dv_ec2 *ec2 = NULL;
	struct dv_ec2_form reg, run, tags_form;
	struct dv_buf resp = DV_BUF_INIT;
	struct dv_ec2_instances inst;
	memset(&res, 0, sizeof res);
	memset(&reg, 0, sizeof reg);
	memset(&run, 0, sizeof run);
	memset(&tags_form, 0, sizeof tags_form);
	memset(&inst, 0, sizeof inst);
	memset(&in, 0, sizeof in);
	int r = 0;

	/* 1. the EBS snapshot and what the backup recorded about the machine */
	if (is_ebs_snapshot_id(src)) {
		ebs_id = dv_strdup(src);
	} else {
		const char *repo_path;
		if ((rc = dv_cli_need_repo("launch", &repo_path)))
			return rc;
		if ((r = dv_cli_open_snapshot(repo_path, src, &repo, id, &manifest, &err)) < 0 ||
		    (r = find_import(repo, id, x.disk, &ebs_id, &rec_region, &err)) < 0)
			goto fail;
		if (x.disk >= json_array_size(json_object_get(manifest, "disks"))) {
			r = dv_error(&err, DV_E_USAGE, "snapshot %.8s has no disk %u", id, x.disk);
			goto fail;
		}
	}
	if (x.region && rec_region && strcmp(x.region, rec_region)) {
		r = dv_error(&err, DV_E_USAGE, "%s was imported in region %s, not %s (EBS snapshots are regional)",
			     ebs_id, rec_region, x.region);
		goto fail;
	}
	if ((r = dv_cloud_region(x.region ? x.region : rec_region, &region, &err)) < 0)
		goto fail;
	if (x.inventory) {
		struct dv_buf b = DV_BUF_INIT;
		r = dv_read_file(x.inventory, 256u << 20, &b, &err);
		if (r == 0)
			r = dv_sizing_input_parse(b.data ? (char *)b.data : "", b.len, x.inventory, &in, &err);
		dv_buf_release(&b);
		if (r < 0)
			goto fail;
		have_inv = true;
	} else if (manifest) {
		struct dv_err e2;
		r = dv_sizing_input_from_json(manifest, &in, &e2);
		if (r < 0 && r != -DV_E_NOT_FOUND) {
			err = e2;
			goto fail;
		}
		have_inv = r == 0;
		r = 0;
	}

	/* 2. architecture, boot mode, drivers */
	enum dv_arch arch = x.arch;
	const char *arch_from = "--arch";
	const char *disk_arch = manifest ? dv_cloud_disk_arch(manifest, x.disk) : NULL;
	if (arch == DV_ARCH_UNKNOWN && have_inv && in.arch != DV_ARCH_UNKNOWN) {
		arch = in.arch;
		arch_from = "the inventory";
	}
	if (arch == DV_ARCH_UNKNOWN && disk_arch) {
		arch = dv_arch_parse(disk_arch);
		arch_from = "the installed OS";
		if (arch == DV_ARCH_UNKNOWN) {
			r = dv_error(&err, DV_E_USAGE,
				     "the OS on the disk is built for %s, which EC2 does not run (x86_64, arm64); give "
				     "--arch to launch it anyway",
				     disk_arch);
			goto fail;
		}
	}
	if (arch == DV_ARCH_UNKNOWN) {
		arch = DV_ARCH_X86_64;
		arch_from = "assumed";
		warn(&w, "the architecture is not recorded%s: assuming x86_64 (give --arch arm64 for a Graviton image)",
		     have_inv ? " in a form EC2 knows" : "");
	} else if (disk_arch && strcmp(disk_arch, dv_arch_name(arch)) && x.arch == DV_ARCH_UNKNOWN) {
		warn(&w, "the OS on the disk is built for %s, but %s says %s: the instance will probably not boot "
			 "(give --arch to choose)",
		     disk_arch, arch_from, dv_arch_name(arch));
	}
	const char *boot = x.boot_mode ? x.boot_mode : manifest ? dv_cloud_boot_mode(manifest, x.disk) : "unknown";
	const char *ec2_boot = NULL;
	if (arch == DV_ARCH_ARM64) {
		ec2_boot = "uefi";
		if (!strcmp(boot, "bios"))
			warn(&w, "the disk boots with legacy BIOS only, but Graviton (arm64) instances boot only UEFI: "
				 "it will probably not boot");
	} else if (!strcmp(boot, "uefi")) {
		ec2_boot = "uefi";
	} else if (!strcmp(boot, "bios")) {
		ec2_boot = "legacy-bios";
	} else if (!strcmp(boot, "uefi+bios")) {
		ec2_boot = "uefi-preferred";
	}
	if (!strcmp(boot, "unknown"))
		warn(&w, "the boot mode of the disk is unknown (no ESP or BIOS boot code was found%s): the AMI gets EC2's "
			 "default (legacy BIOS on x86_64); give --boot-mode if you know better",
		     manifest ? "" : ", or no backup was named");
	int dnvme, dena;
	const char *kernel, *initramfs;
	if (manifest && dv_cloud_disk_nitro(manifest, x.disk, &dnvme, &dena, &kernel, &initramfs)) {
		/* what is installed on the disk decides: it is what boots */
		if (dnvme == 0)
			warn(&w, "kernel %s on the disk has no nvme driver built in%s: Nitro instances boot from NVMe, "
				 "the instance will probably not boot",
			     kernel, initramfs ? " or in its initramfs" : " and no initramfs with it was found");
		else if (dnvme < 0)
			warn(&w, "cannot tell whether kernel %s on the disk can load the nvme driver Nitro instances "
				 "boot from (%s)",
			     kernel, initramfs ? "its initramfs could not be read" : "no initramfs for it was found");
		if (dena == 0)
			warn(&w, "kernel %s on the disk has no ena driver (not built in, not a module): the instance "
				 "will probably not be reachable over the network",
			     kernel);
		else if (dena < 0)
			warn(&w, "cannot tell whether kernel %s on the disk has the ena driver Nitro instances need",
			     kernel);
	} else if (have_inv) {
		const char *names[2] = {"nvme", "ena"};
		int states[2] = {in.nvme, in.ena};
		for (int k = 0; k < 2; k++) {
			if (states[k] == 0)
				warn(&w, "the recorded inventory shows no %s driver (%s): Nitro "
					 "instances need it, the instance will probably not boot or not be reachable",
				     names[k], k == 0 ? "not built in, not in the initramfs" : "not built in, not a module");
			else if (states[k] < 0)
				warn(&w, "the recorded inventory cannot tell whether the kernel has the %s driver that "
					 "Nitro instances need", names[k]);
		}
	} else {
		warn(&w, "no inventory recorded and no kernel found on the disk: cannot check for the nvme and ena "
			 "drivers Nitro instances need");
	}

	/* 3. instance type */
	const char *itype = x.itype;
	if (dv_cloud_catalog(x.catalog, &cat, &err) < 0) {
		if (!strcmp(itype, "auto"))
			goto fail_r;
		cat = NULL; /* an explicit type needs no catalog */
	}
	if (!strcmp(itype, "auto")) {
		if (!have_inv) {
			r = dv_error(&err, DV_E_USAGE,
				     "--instance-type auto needs the machine's inventory: this %s records none; give "
				     "--inventory FILE or --instance-type TYPE",
				     manifest ? "snapshot" : "EBS snapshot id");
			goto fail;
		}
		struct dv_sizing_opts so;
		dv_sizing_opts_default(&so);
		if (x.headroom >= 0)
			so.headroom = x.headroom;
		so.region = region;
		so.arch = arch;
		so.boot_mode = boot;
		if ((r = dv_sizing_choose(cat, &in, &so, &res, &err)) < 0)
			goto fail;
		itype = res.chosen->name;
		sizing_json = dv_sizing_result_json(&res, &in, &so, cat);
		if (!dv_cli.json && !dv_cli.quiet) {
			printf("right-sizing (--instance-type auto):\n");
			dv_cloud_print_sizing(&res, &in, &so, cat);
		}
	} else {
		const struct dv_catalog_type *t = cat ? dv_catalog_find(cat, itype) : NULL;
		if (t && t->arch != arch) {
			r = dv_error(&err, DV_E_USAGE, "%s is an %s type; the image is %s", itype, dv_arch_name(t->arch),
				     dv_arch_name(arch));
			goto fail;
		}
	}

	/* 4. the plan */
	char launch_id[17], ami_name[160];
	dv_random_hex(launch_id, 8);
	char when[32];
	dv_format_time(when, sizeof when, dv_unix_now());
	for (char *p = when; *p; p++)
		if (*p == ':')
			*p = '-';
	snprintf(ami_name, sizeof ami_name, "diskvault-%.12s-%s-%s", id[0] ? id : ebs_id, when, launch_id);
	const char *from = id[0] ? id : ebs_id;
	char default_name[64];
	snprintf(default_name, sizeof default_name, "diskvault-%.8s", id[0] ? id : ebs_id + 5);
	struct dv_ec2_tag tags[MAX_TAGS + 4];
	size_t ntags = 0;
	tags[ntags++] = (struct dv_ec2_tag){DV_TAG_CREATED_BY, "diskvault"};
	tags[ntags++] = (struct dv_ec2_tag){DV_TAG_LAUNCHED_FROM, from};
	tags[ntags++] = (struct dv_ec2_tag){DV_TAG_LAUNCH_ID, launch_id};
	bool named = false;
	for (size_t i = 0; i < x.ntags; i++) {
		const char *k, *v;
		if (dv_cloud_parse_tag(x.tag_args[i], &tagbufs[i], &k, &v) < 0) {
			r = dv_error(&err, DV_E_USAGE, "--tag '%s' must be KEY=VALUE (not aws: or diskvault: keys)",
				     x.tag_args[i]);
			goto fail;
		}
		named |= !strcmp(k, "Name");
		tags[ntags++] = (struct dv_ec2_tag){k, v};
	}
	if (!named)
		tags[ntags++] = (struct dv_ec2_tag){"Name", x.name ? x.name : default_name};
	char desc[200];
	snprintf(desc, sizeof desc, "diskvault launch of %s%s%s", id[0] ? "snapshot " : "", from, id[0] ? "" : "");
	struct dv_ec2_image_spec is = {
		.name = ami_name,
		.description = desc,
		.architecture = dv_arch_name(arch),
		.root_device = x.root_device,
		.snapshot_id = ebs_id,
		.volume_type = "gp3",
		.delete_on_termination = true,
		.ena = true,
		.boot_mode = ec2_boot,
	};
	dv_ec2_form_register_image(&reg, &is);
	struct dv_ec2_run_spec rs = {
		.image_id = "(the new AMI)",
		.instance_type = itype,
		.key_name = x.key_name,
		.subnet_id = x.subnet,
		.security_groups = x.sg,
		.nsecurity_groups = x.nsg,
		.tags = tags,
		.ntags = ntags,
		.client_token = launch_id,
		.imdsv2_required = true,
	};
	dv_ec2_form_run_instances(&run, &rs);
	const char *tag_targets[2] = {"(the new AMI)", ebs_id};
	/* the EBS snapshot is tagged only when diskvault made it (ebs-import) */
	dv_ec2_form_create_tags(&tags_form, tag_targets, id[0] ? 2 : 1, tags, ntags);

	if (!dv_cli.json) {
		for (size_t i = 0; i < w.n; i++)
			fprintf(stderr, "diskvault launch: warning: %s\n", w.v[i]);
	}
	if (x.dry_run) {
		if (dv_cli.json) {
			json_t *warr = json_array();
			for (size_t i = 0; i < w.n; i++)
				json_array_append_new(warr, json_string(w.v[i]));
			json_t *j = json_pack("{s:s, s:b, s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:o, s:o, s:o}, s:o, s:o}",
					      "command", "launch", "ok", 1, "dry_run", 1, "ebs_snapshot", ebs_id, "region",
					      region, "architecture", dv_arch_name(arch), "boot_mode", boot,
					      "instance_type", itype, "launch_id", launch_id, "plan", "RegisterImage",
					      form_json(&reg), "CreateTags", form_json(&tags_form), "RunInstances",
					      form_json(&run), "warnings", warr, "sizing",
					      sizing_json ? json_incref(sizing_json) : json_null());
			if (id[0])
				json_object_set_new(j, "snapshot", json_string(id));
			dv_cli_print_json(j);
		} else if (!dv_cli.quiet) {
			printf("launch plan (dry run: nothing is created) in %s: EBS snapshot %s%s%s, %s (%s), boot mode "
			       "%s, instance type %s\n",
			       region, ebs_id, id[0] ? " of snapshot " : "", id[0] ? id : "", dv_arch_name(arch), arch_from,
			       boot, itype);
			print_form("1. RegisterImage", &reg);
			print_form("2. CreateTags", &tags_form);
			print_form("3. RunInstances", &run);
			printf("4. DescribeInstances until the instance is running, then print its addresses\n");
		}
		goto out;
	}

	/* 5. do it */
	if ((r = dv_cloud_ec2(region, &ec2, &err)) < 0)
		goto fail;
	char code[64];
	r = dv_ec2_call(ec2, &reg, &resp, code, &err);
	if (r < 0) {
		if (!strcmp(code, "InvalidAMIName.Duplicate"))
			dv_error_prefix(&err, "AMI name %s exists: ", ami_name);
		goto fail;
	}
	if ((r = dv_ec2_parse_register_image((char *)resp.data, resp.len, &ami, &err)) < 0)
		goto fail;
	free(tags_form.values[2]);
	tags_form.values[2] = dv_strdup(ami); /* ResourceId.1 */
	if ((r = dv_ec2_call(ec2, &tags_form, &resp, NULL, &err)) < 0 ||
	    (r = dv_ec2_parse_return((char *)resp.data, resp.len, "CreateTags", &err)) < 0) {
		dv_error_prefix(&err, "AMI %s registered but not tagged (deregister it by hand): ", ami);
		goto fail;
	}
	free(run.values[2]);
	run.values[2] = dv_strdup(ami); /* ImageId */
	if ((r = dv_ec2_call(ec2, &run, &resp, NULL, &err)) < 0 ||
	    (r = dv_ec2_parse_instances((char *)resp.data, resp.len, &inst, &err)) < 0) {
		dv_error_prefix(&err, "AMI %s registered (diskvault cleanup --launched-from %s removes it): ", ami, from);
		goto fail;
	}
	if (inst.n != 1) {
		r = dv_error(&err, DV_E_REMOTE, "RunInstances started %zu instances instead of 1", inst.n);
		goto fail;
	}
	char *iid = dv_strdup(inst.v[0].id);
	if (!x.no_wait) {
		dv_ec2_instances_release(&inst);
		if (!dv_cli.json && !dv_cli.quiet)
			printf("instance %s (%s) started from %s; waiting for it to run...\n", iid, itype, ami);
		fflush(stdout);
		r = wait_running(ec2, iid, &inst, &err);
	}
	if (r < 0) {
		free(iid);
		goto fail;
	}
	const struct dv_ec2_instance *i0 = &inst.v[0];
	if (dv_cli.json) {
		json_t *warr = json_array();
		for (size_t i = 0; i < w.n; i++)
			json_array_append_new(warr, json_string(w.v[i]));
		json_t *j = json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:o, s:o}", "command",
				      "launch", "ok", 1, "ebs_snapshot", ebs_id, "region", region, "image_id", ami,
				      "instance_id", iid, "instance_type", itype, "architecture", dv_arch_name(arch),
				      "boot_mode", boot, "private_ip",
				      i0->private_ip ? json_string(i0->private_ip) : json_null(), "public_ip",
				      i0->public_ip ? json_string(i0->public_ip) : json_null(), "launch_id", launch_id,
				      "warnings", warr, "sizing", sizing_json ? json_incref(sizing_json) : json_null());
		json_object_set_new(j, "state", json_string(i0->state ? i0->state : "pending"));
		if (id[0])
			json_object_set_new(j, "snapshot", json_string(id));
		dv_cli_print_json(j);
	} else if (!dv_cli.quiet) {
		printf("launched %s (%s, %s) from AMI %s of %s: private address %s, public address %s\n", iid, itype,
		       i0->state ? i0->state : "pending", ami, ebs_id, i0->private_ip ? i0->private_ip : "-",
		       i0->public_ip ? i0->public_ip : "-");
		printf("remove it with: diskvault cleanup --launched-from %s\n", from);
	}
	free(iid);
	goto out;

fail_r:
fail:
	rc = dv_cli_fail("launch", &err);
out:
	for (size_t i = 0; i < MAX_TAGS; i++)
		free(tagbufs[i]);
	dv_ec2_instances_release(&inst);
	dv_buf_release(&resp);
	dv_ec2_form_release(&reg);
	dv_ec2_form_release(&run);
	dv_ec2_form_release(&tags_form);
	dv_ec2_free(ec2);
	dv_sizing_result_release(&res);
	json_decref(sizing_json);
	dv_catalog_free(cat);
	json_decref(manifest);
	dv_repo_free(repo);
	free(ebs_id);
	free(rec_region);
	free(region);
	free(ami);
	return rc;
}

/* ---- cleanup ---------------------------------------------------------------- */

/* Calls form (plus NextToken pages) and collects ids with parse. */
static int describe_all(struct dv_ec2 *ec2, const char *action, const struct dv_ec2_filter *filters, size_t nf,
			bool owner_self, json_t *out, struct dv_err *err)
{
	struct dv_buf resp = DV_BUF_INIT;
	char *token = NULL;
	int r = 0;
	do {
		struct dv_ec2_form f;
		dv_ec2_form_init(&f, action);
		if (owner_self)
			dv_ec2_form_add(&f, "Owner.1", "self");
		dv_ec2_form_add_filters(&f, filters, nf);
		if (token)
			dv_ec2_form_add(&f, "NextToken", token);
		free(token);
		token = NULL;
		r = dv_ec2_call(ec2, &f, &resp, NULL, err);
		dv_ec2_form_release(&f);
		if (r < 0)
			break;
		const char *next = NULL;
		if (!strcmp(action, "DescribeInstances")) {
			struct dv_ec2_instances l;
			if ((r = dv_ec2_parse_instances((char *)resp.data, resp.len, &l, err)) < 0)
				break;
			for (size_t i = 0; i < l.n; i++)
				if (!l.v[i].state || strcmp(l.v[i].state, "terminated"))
					json_array_append_new(out, json_pack("{s:s, s:s}", "id", l.v[i].id, "state",
									     l.v[i].state ? l.v[i].state : "?"));
			next = l.next_token;
			token = next && *next ? dv_strdup(next) : NULL;
			dv_ec2_instances_release(&l);
		} else if (!strcmp(action, "DescribeImages")) {
			struct dv_ec2_images l;
			if ((r = dv_ec2_parse_images((char *)resp.data, resp.len, &l, err)) < 0)
				break;
			for (size_t i = 0; i < l.n; i++)
				json_array_append_new(out, json_pack("{s:s, s:s}", "id", l.v[i].id, "name",
								     l.v[i].name ? l.v[i].name : ""));
			next = l.next_token;
			token = next && *next ? dv_strdup(next) : NULL;
			dv_ec2_images_release(&l);
		} else {
			struct dv_ec2_snapshots l;
			if ((r = dv_ec2_parse_snapshots((char *)resp.data, resp.len, &l, err)) < 0)
				break;
			for (size_t i = 0; i < l.n; i++)
				json_array_append_new(out, json_pack("{s:s, s:s}", "id", l.v[i].id, "state",
								     l.v[i].state ? l.v[i].state : "?"));
			next = l.next_token;
			token = next && *next ? dv_strdup(next) : NULL;
			dv_ec2_snapshots_release(&l);
		}
	} while (token);
	free(token);
	dv_buf_release(&resp);
	return r;
}

static int simple_call(struct dv_ec2 *ec2, const char *action, const char *param, const char *id, struct dv_err *err)
{
	struct dv_ec2_form f;
	struct dv_buf resp = DV_BUF_INIT;
	dv_ec2_form_init(&f, action);
	dv_ec2_form_add(&f, param, id);
	int r = dv_ec2_call(ec2, &f, &resp, NULL, err);
	if (r == 0 && strcmp(action, "TerminateInstances"))
		r = dv_ec2_parse_return((char *)resp.data, resp.len, action, err);
	dv_ec2_form_release(&f);
	dv_buf_release(&resp);
	return r;
}

int cmd_cleanup(int argc, char **argv)
{
	struct opts x = {.headroom = -1};
	const struct dv_cli_opt opts[] = {
		DV_OPT_STRING("launched-from", &x.launched_from),
		TAG_OPT(&x),
		DV_OPT_STRING("region", &x.region),
		DV_OPT_FLAG("no-wait", &x.no_wait),
		DV_OPT_FLAG("dry-run", &x.dry_run),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("cleanup", cleanup_help, argc, argv, opts, &first, &rc))
		return rc;
	if ((rc = dv_cli_no_operands("cleanup", argc, argv, first)))
		return rc;
	if (!x.launched_from == !x.ntags || x.ntags > 1)
		return dv_cli_usage("cleanup", "give either --launched-from SNAPSHOT or one --tag K=V");
	struct dv_err err;
	char id[DV_ID_HEX_LEN + 1] = "", *tagbuf = NULL;
	const char *fkey, *fval;
	struct dv_ec2 *ec2 = NULL;
	json_t *insts = json_array(), *images = json_array(), *snaps = json_array();
	int r = 0;
	if (x.launched_from) {
		fkey = DV_TAG_LAUNCHED_FROM;
		fval = x.launched_from;
		if (!is_ebs_snapshot_id(x.launched_from) && dv_cli.repo) {
			struct dv_repo *repo = NULL;
			r = dv_cli_open_snapshot(dv_cli.repo, x.launched_from, &repo, id, NULL, &err);
			dv_repo_free(repo);
			if (r < 0)
				goto fail;
			fval = id;
		} else if (!is_ebs_snapshot_id(x.launched_from) && strlen(x.launched_from) != DV_ID_HEX_LEN) {
			r = dv_error(&err, DV_E_USAGE, "--launched-from %s: give --repo to resolve a short snapshot id, "
				     "or the full id", x.launched_from);
			goto fail;
		}
	} else if (dv_cloud_parse_tag(x.tag_args[0], &tagbuf, &fkey, &fval) < 0) {
		rc = dv_cli_usage("cleanup", "--tag must be KEY=VALUE");
		goto out;
	}
	char fname[200];
	snprintf(fname, sizeof fname, "tag:%s", fkey);
	const char *marker[1] = {"diskvault"}, *val[1] = {fval};
	const char *live[5] = {"pending", "running", "stopping", "stopped", "shutting-down"};
	struct dv_ec2_filter filt[3] = {
		{"tag:" DV_TAG_CREATED_BY, marker, 1},
		{fname, val, 1},
		{"instance-state-name", live, 5},
	};
	if ((r = dv_cloud_ec2(x.region, &ec2, &err)) < 0 ||
	    (r = describe_all(ec2, "DescribeInstances", filt, 3, false, insts, &err)) < 0 ||
	    (r = describe_all(ec2, "DescribeImages", filt, 2, true, images, &err)) < 0 ||
	    (r = describe_all(ec2, "DescribeSnapshots", filt, 2, true, snaps, &err)) < 0)
		goto fail;
	if (id[0] || (x.launched_from && strlen(x.launched_from) == DV_ID_HEX_LEN)) {
		/* EBS snapshots ebs-import made of this snapshot (tag diskvault:snapshot),
		 * launched or not: diskvault created them too */
		const char *sid[1] = {fval};
		struct dv_ec2_filter imp = {"tag:diskvault:snapshot", sid, 1};
		json_t *more = json_array();
		if ((r = describe_all(ec2, "DescribeSnapshots", &imp, 1, true, more, &err)) < 0) {
			json_decref(more);
			goto fail;
		}
		size_t k;
		json_t *m;
		json_array_foreach(more, k, m) {
			bool dup = false;
			size_t q;
			json_t *s;
			json_array_foreach(snaps, q, s) dup |= json_equal(json_object_get(s, "id"), json_object_get(m, "id"));
			if (!dup)
				json_array_append(snaps, m);
		}
		json_decref(more);
	}
	size_t i;
	json_t *e;
	if (!x.dry_run) {
		json_array_foreach(insts, i, e) {
			if (!strcmp(json_string_value(json_object_get(e, "state")), "shutting-down"))
				continue;
			if ((r = simple_call(ec2, "TerminateInstances", "InstanceId.1",
					     json_string_value(json_object_get(e, "id")), &err)) < 0)
				goto fail;
		}
		json_array_foreach(images, i, e)
			if ((r = simple_call(ec2, "DeregisterImage", "ImageId", json_string_value(json_object_get(e, "id")),
					     &err)) < 0)
				goto fail;
		json_array_foreach(snaps, i, e)
			if ((r = simple_call(ec2, "DeleteSnapshot", "SnapshotId",
					     json_string_value(json_object_get(e, "id")), &err)) < 0)
				goto fail;
		/* wait until the instances are gone, so "nothing left" is true on return */
		const char *v = getenv("DISKVAULT_EC2_WAIT_SECONDS");
		double limit = v && atof(v) > 0 ? atof(v) : 900, start = dv_now();
		while (!x.no_wait && json_array_size(insts)) {
			json_t *left = json_array();
			if ((r = describe_all(ec2, "DescribeInstances", filt, 3, false, left, &err)) < 0) {
				json_decref(left);
				goto fail;
			}
			size_t n = json_array_size(left);
			json_decref(left);
			if (!n)
				break;
			if (dv_now() - start > limit || dv_cli_interrupted) {
				r = dv_error(&err, DV_E_REMOTE, "%zu instance(s) not terminated after %.0f s", n,
					     dv_now() - start);
				goto fail;
			}
			pause_s(poll_interval());
		}
	}
	if (dv_cli.json) {
		dv_cli_print_json(json_pack("{s:s, s:b, s:b, s:s, s:s, s:O, s:O, s:O}", "command", "cleanup", "ok", 1,
					    "dry_run", x.dry_run, "tag", fkey, "value", fval, "instances", insts, "images",
					    images, "snapshots", snaps));
	} else if (!dv_cli.quiet) {
		const char *verb[3] = {x.dry_run ? "would terminate" : "terminated",
				       x.dry_run ? "would deregister" : "deregistered",
				       x.dry_run ? "would delete" : "deleted"};
		json_t *sets[3] = {insts, images, snaps};
		const char *what[3] = {"instance", "AMI", "EBS snapshot"};
		for (int k = 0; k < 3; k++)
			json_array_foreach(sets[k], i, e)
				printf("%s %s %s\n", verb[k], what[k], json_string_value(json_object_get(e, "id")));
		printf("cleanup %s=%s: %zu instance(s), %zu AMI(s), %zu EBS snapshot(s)%s\n", fkey, fval,
		       json_array_size(insts), json_array_size(images), json_array_size(snaps),
		       x.dry_run ? " (dry run: nothing changed)" : "");
	}
	goto out;
fail:
	rc = dv_cli_fail("cleanup", &err);
out:
	json_decref(insts);
	json_decref(images);
	json_decref(snaps);
	dv_ec2_free(ec2);
	free(tagbuf);
	return rc;
}
