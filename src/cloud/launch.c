/*
 * launch.c - an EBS snapshot of a backed-up disk becomes an AMI and a
 * running, right-sized instance (cloud.h): the decisions (architecture,
 * boot mode, Nitro drivers), the plan (instance type, tags, the EC2 forms)
 * and its execution.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloud.h"
#include "cloud_internal.h"
#include "repo/ebs_state.h"
#include "repo/repo.h"

static void warn(struct dv_cloud_warnings *w, const char *fmt, ...) DV_PRINTF(2, 3);
static void warn(struct dv_cloud_warnings *w, const char *fmt, ...)
{
	if (w->n >= DV_ARRAY_SIZE(w->v))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->v[w->n++], sizeof w->v[0], fmt, ap);
	va_end(ap);
}

int dv_cloud_launch_decide(const json_t *manifest, unsigned disk, const struct dv_sizing_input *in,
			   enum dv_arch forced, const char *boot_mode, struct dv_cloud_decision *d, struct dv_err *err)
{
	memset(d, 0, sizeof *d);
	struct dv_cloud_warnings *w = &d->w;
	bool have_inv = in != NULL;
	enum dv_arch arch = forced;
	const char *arch_from = "--arch";
	const char *disk_arch = manifest ? dv_cloud_disk_arch(manifest, disk) : NULL;
	if (arch == DV_ARCH_UNKNOWN && have_inv && in->arch != DV_ARCH_UNKNOWN) {
		arch = in->arch;
		arch_from = "the inventory";
	}
	if (arch == DV_ARCH_UNKNOWN && disk_arch) {
		arch = dv_arch_parse(disk_arch);
		arch_from = "the installed OS";
		if (arch == DV_ARCH_UNKNOWN)
			return dv_error(err, DV_E_USAGE,
					"the OS on the disk is built for %s, which EC2 does not run (x86_64, arm64); give "
					"--arch to launch it anyway",
					disk_arch);
	}
	if (arch == DV_ARCH_UNKNOWN) {
		arch = DV_ARCH_X86_64;
		arch_from = "assumed";
		warn(w, "the architecture is not recorded%s: assuming x86_64 (give --arch arm64 for a Graviton image)",
		     have_inv ? " in a form EC2 knows" : "");
	} else if (disk_arch && strcmp(disk_arch, dv_arch_name(arch)) && forced == DV_ARCH_UNKNOWN) {
		warn(w, "the OS on the disk is built for %s, but %s says %s: the instance will probably not boot "
			"(give --arch to choose)",
		     disk_arch, arch_from, dv_arch_name(arch));
	}
	const char *boot = boot_mode ? boot_mode : manifest ? dv_cloud_boot_mode(manifest, disk) : "unknown";
	const char *ec2_boot = NULL;
	if (arch == DV_ARCH_ARM64) {
		ec2_boot = "uefi";
		if (!strcmp(boot, "bios"))
			warn(w, "the disk boots with legacy BIOS only, but Graviton (arm64) instances boot only UEFI: "
				"it will probably not boot");
	} else if (!strcmp(boot, "uefi")) {
		ec2_boot = "uefi";
	} else if (!strcmp(boot, "bios")) {
		ec2_boot = "legacy-bios";
	} else if (!strcmp(boot, "uefi+bios")) {
		ec2_boot = "uefi-preferred";
	}
	if (!strcmp(boot, "unknown"))
		warn(w, "the boot mode of the disk is unknown (no ESP or BIOS boot code was found%s): the AMI gets EC2's "
			"default (legacy BIOS on x86_64); give --boot-mode if you know better",
		     manifest ? "" : ", or no backup was named");
	int dnvme, dena;
	const char *kernel, *initramfs;
	if (manifest && dv_cloud_disk_nitro(manifest, disk, &dnvme, &dena, &kernel, &initramfs)) {
		/* what is installed on the disk decides: it is what boots */
		if (dnvme == 0)
			warn(w, "kernel %s on the disk has no nvme driver built in%s: Nitro instances boot from NVMe, "
				"the instance will probably not boot",
			     kernel, initramfs ? " or in its initramfs" : " and no initramfs with it was found");
		else if (dnvme < 0)
			warn(w, "cannot tell whether kernel %s on the disk can load the nvme driver Nitro instances "
				"boot from (%s)",
			     kernel, initramfs ? "its initramfs could not be read" : "no initramfs for it was found");
		if (dena == 0)
			warn(w, "kernel %s on the disk has no ena driver (not built in, not a module): the instance "
				"will probably not be reachable over the network",
			     kernel);
		else if (dena < 0)
			warn(w, "cannot tell whether kernel %s on the disk has the ena driver Nitro instances need",
			     kernel);
	} else if (have_inv) {
		const char *names[2] = {"nvme", "ena"};
		int states[2] = {in->nvme, in->ena};
		for (int k = 0; k < 2; k++) {
			if (states[k] == 0)
				warn(w, "the recorded inventory shows no %s driver (%s): Nitro "
					"instances need it, the instance will probably not boot or not be reachable",
				     names[k], k == 0 ? "not built in, not in the initramfs" : "not built in, not a module");
			else if (states[k] < 0)
				warn(w, "the recorded inventory cannot tell whether the kernel has the %s driver that "
					"Nitro instances need", names[k]);
		}
	} else {
		warn(w, "no inventory recorded and no kernel found on the disk: cannot check for the nvme and ena "
			"drivers Nitro instances need");
	}
	const json_t *names = manifest ? dv_cloud_disk_device_names(manifest, disk) : NULL;
	for (size_t i = 0; i < json_array_size(names) && i < 2; i++) {
		const json_t *x = json_array_get(names, i);
		warn(w, "%s line %lld names %s, which will not exist on a Nitro instance (its disks are /dev/nvme*): "
			"\"%s\"; name it by UUID= or LABEL= before the backup, or fix it after the first boot",
		     json_string_value(json_object_get(x, "file")), (long long)json_integer_value(json_object_get(x, "line")),
		     json_string_value(json_object_get(x, "device")), json_string_value(json_object_get(x, "text")));
	}
	if (json_array_size(names) > 2)
		warn(w, "%zu more configuration lines name such devices (show --json: layout.os.device_names)",
		     json_array_size(names) - 2);
	d->arch = arch;
	d->arch_from = arch_from;
	d->boot = boot;
	d->ec2_boot = ec2_boot;
	return 0;
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
		    dv_cloud_is_ebs_snapshot_id(e)) {
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

/* The record of an import of ebs_id (newest wins), or NULL; borrowed from list. */
static const json_t *record_of(const json_t *list, const char *ebs_id)
{
	const json_t *found = NULL, *rec;
	size_t i;
	json_array_foreach(list, i, rec) {
		const char *e = json_string_value(json_object_get(rec, "ebs_snapshot_id"));
		if (e && !strcmp(e, ebs_id) && json_is_string(json_object_get(rec, "snapshot")) &&
		    json_is_integer(json_object_get(rec, "disk")))
			found = rec;
	}
	return found;
}

/* The diskvault tags of ebs_id: *snap and *disk_s malloc'ed, or NULL when
 * it has none of repo's. */
static int tags_of(struct dv_repo *repo, const char *ebs_id, const char *region, char **snap, char **disk_s,
		   struct dv_err *err)
{
	*snap = *disk_s = NULL;
	struct dv_ec2 *ec2 = NULL;
	int r = dv_cloud_ec2(region, &ec2, err);
	if (r < 0)
		return r;
	struct dv_ec2_form f;
	struct dv_buf resp = DV_BUF_INIT;
	struct dv_ec2_snapshots l = {0};
	dv_ec2_form_init(&f, "DescribeSnapshots");
	dv_ec2_form_add(&f, "SnapshotId.1", ebs_id);
	r = dv_ec2_call(ec2, &f, &resp, NULL, err);
	if (r == 0)
		r = dv_ec2_parse_snapshots((char *)resp.data, resp.len, &l, err);
	for (size_t i = 0; r == 0 && i < l.n; i++) {
		const char *rid = dv_ec2_snapshot_tag(&l.v[i], DV_TAG_IMPORT_REPOSITORY);
		const char *sid = dv_ec2_snapshot_tag(&l.v[i], DV_TAG_IMPORT_SNAPSHOT);
		const char *d = dv_ec2_snapshot_tag(&l.v[i], DV_TAG_IMPORT_DISK);
		if (!strcmp(l.v[i].id, ebs_id) && rid && sid && d && !strcmp(rid, dv_repo_id(repo))) {
			*snap = dv_strdup(sid);
			*disk_s = dv_strdup(d);
		}
	}
	dv_ec2_snapshots_release(&l);
	dv_buf_release(&resp);
	dv_ec2_form_release(&f);
	dv_ec2_free(ec2);
	return r;
}

int dv_cloud_find_imported(struct dv_repo *repo, const char *ebs_id, const char *region,
			   char id[DV_ID_HEX_LEN + 1], unsigned *disk, char **found_region, struct dv_err *err)
{
	*found_region = NULL;
	id[0] = 0;
	json_t *list = NULL;
	int r = dv_ebs_state_list(repo, &list, err);
	if (r < 0)
		return r;
	const json_t *rec = record_of(list, ebs_id);
	char *snap = NULL, *disk_s = NULL;
	const char *how;
	if (rec) {
		how = "its import record";
		snap = dv_strdup(json_string_value(json_object_get(rec, "snapshot")));
		json_int_t d = json_integer_value(json_object_get(rec, "disk"));
		disk_s = dv_asprintf("%lld", (long long)d);
		const char *reg = json_string_value(json_object_get(rec, "region"));
		if (reg)
			*found_region = dv_strdup(reg);
	} else {
		how = "its diskvault tags";
		if ((r = tags_of(repo, ebs_id, region, &snap, &disk_s, err)) < 0)
			goto out;
		if (!snap) {
			dv_error(err, DV_E_NOT_FOUND,
				     "%s was not imported from this repository (no import record, no diskvault tags "
				     "naming it)",
				     ebs_id);
			goto out;
		}
		if (region)
			*found_region = dv_strdup(region);
	}
	char *end;
	unsigned long d = strtoul(disk_s, &end, 10);
	if (!*disk_s || *end || d > 1000 || strlen(snap) != DV_ID_HEX_LEN) {
		dv_error(err, DV_E_NOT_FOUND, "%s: %s name no snapshot of this repository", ebs_id, how);
		goto out;
	}
	struct dv_err e2;
	if (dv_snapshot_resolve(repo, snap, id, &e2) < 0) {
		id[0] = 0;
		dv_error(err, DV_E_NOT_FOUND, "%s was imported from snapshot %.8s, which is no longer in the repository",
			     ebs_id, snap);
		goto out;
	}
	*disk = (unsigned)d;
out:
	if (!id[0]) {
		free(*found_region);
		*found_region = NULL;
	}
	free(snap);
	free(disk_s);
	json_decref(list);
	return r;
}

void dv_cloud_plan_release(struct dv_cloud_plan *p)
{
	for (size_t i = 0; i < DV_CLOUD_MAX_TAGS; i++)
		free(p->tagbufs[i]);
	dv_ec2_form_release(&p->reg);
	dv_ec2_form_release(&p->run);
	dv_ec2_form_release(&p->tags);
	dv_sizing_result_release(&p->res);
	json_decref(p->sizing_json);
	dv_catalog_free(p->cat);
	free(p->ebs_id);
	free(p->region);
	memset(p, 0, sizeof *p);
}

int dv_cloud_launch_plan(struct dv_repo *repo, const char *id, const json_t *manifest, const char *ebs_id,
			 const struct dv_cloud_launch_opts *o, struct dv_cloud_plan *p, struct dv_err *err)
{
	memset(p, 0, sizeof *p);
	char *rec_region = NULL;
	bool have_inv = false;
	int r;

	/* 1. the EBS snapshot and what the backup recorded about the machine */
	if (ebs_id)
		p->ebs_id = dv_strdup(ebs_id);
	if (id) {
		snprintf(p->id, sizeof p->id, "%s", id);
		if (!ebs_id && (r = find_import(repo, id, o->disk, &p->ebs_id, &rec_region, err)) < 0)
			goto out;
		if (o->disk >= json_array_size(json_object_get(manifest, "disks"))) {
			r = dv_error(err, DV_E_USAGE, "snapshot %.8s has no disk %u", id, o->disk);
			goto out;
		}
	}
	if (o->region && rec_region && strcmp(o->region, rec_region)) {
		r = dv_error(err, DV_E_USAGE, "%s was imported in region %s, not %s (EBS snapshots are regional)",
			     p->ebs_id, rec_region, o->region);
		goto out;
	}
	if ((r = dv_cloud_region(o->region ? o->region : rec_region, &p->region, err)) < 0)
		goto out;
	if (o->inventory) {
		struct dv_buf b = DV_BUF_INIT;
		r = dv_read_file(o->inventory, 256u << 20, &b, err);
		if (r == 0)
			r = dv_sizing_input_parse(b.data ? (char *)b.data : "", b.len, o->inventory, &p->in, err);
		dv_buf_release(&b);
		if (r < 0)
			goto out;
		have_inv = true;
	} else if (manifest) {
		struct dv_err e2;
		r = dv_sizing_input_from_json(manifest, &p->in, &e2);
		if (r < 0 && r != -DV_E_NOT_FOUND) {
			*err = e2;
			goto out;
		}
		have_inv = r == 0;
	}

	/* 2. architecture, boot mode, drivers */
	if ((r = dv_cloud_launch_decide(manifest, o->disk, have_inv ? &p->in : NULL, o->arch, o->boot_mode, &p->d,
					err)) < 0)
		goto out;
	enum dv_arch arch = p->d.arch;

	/* 3. instance type */
	const char *itype = o->instance_type ? o->instance_type : "auto";
	if ((r = dv_cloud_catalog(o->catalog, &p->cat, err)) < 0) {
		if (!strcmp(itype, "auto"))
			goto out;
		p->cat = NULL; /* an explicit type needs no catalog */
	}
	if (!strcmp(itype, "auto")) {
		if (!have_inv) {
			r = dv_error(err, DV_E_USAGE,
				     "--instance-type auto needs the machine's inventory: this %s records none; give "
				     "--inventory FILE or --instance-type TYPE",
				     manifest ? "snapshot" : "EBS snapshot id");
			goto out;
		}
		dv_sizing_opts_default(&p->so);
		if (o->headroom >= 0)
			p->so.headroom = o->headroom;
		p->so.region = p->region;
		p->so.arch = arch;
		p->so.boot_mode = p->d.boot;
		if ((r = dv_sizing_choose(p->cat, &p->in, &p->so, &p->res, err)) < 0)
			goto out;
		itype = p->res.chosen->name;
		p->sizing_json = dv_sizing_result_json(&p->res, &p->in, &p->so, p->cat);
		p->sized = true;
	} else {
		const struct dv_catalog_type *t = p->cat ? dv_catalog_find(p->cat, itype) : NULL;
		if (t && t->arch != arch) {
			r = dv_error(err, DV_E_USAGE, "%s is an %s type; the image is %s", itype, dv_arch_name(t->arch),
				     dv_arch_name(arch));
			goto out;
		}
	}
	p->instance_type = itype;

	/* 4. the plan */
	dv_random_hex(p->launch_id, 8);
	char when[32];
	dv_format_time(when, sizeof when, dv_unix_now());
	for (char *q = when; *q; q++)
		if (*q == ':')
			*q = '-';
	snprintf(p->ami_name, sizeof p->ami_name, "diskvault-%.12s-%s-%s", p->id[0] ? p->id : p->ebs_id, when,
		 p->launch_id);
	p->from = p->id[0] ? p->id : p->ebs_id;
	char default_name[64];
	snprintf(default_name, sizeof default_name, "diskvault-%.8s", p->id[0] ? p->id : p->ebs_id + 5);
	struct dv_ec2_tag tags[DV_CLOUD_MAX_TAGS + 4];
	size_t ntags = 0;
	tags[ntags++] = (struct dv_ec2_tag){DV_TAG_CREATED_BY, "diskvault"};
	tags[ntags++] = (struct dv_ec2_tag){DV_TAG_LAUNCHED_FROM, p->from};
	tags[ntags++] = (struct dv_ec2_tag){DV_TAG_LAUNCH_ID, p->launch_id};
	bool named = false;
	if (o->ntags > DV_CLOUD_MAX_TAGS)
		DV_BUG("too many launch tags");
	for (size_t i = 0; i < o->ntags; i++) {
		const char *k, *v;
		if (dv_cloud_parse_tag(o->tag_args[i], &p->tagbufs[i], &k, &v) < 0) {
			r = dv_error(err, DV_E_USAGE, "--tag '%s' must be KEY=VALUE (not aws: or diskvault: keys)",
				     o->tag_args[i]);
			goto out;
		}
		named |= !strcmp(k, "Name");
		tags[ntags++] = (struct dv_ec2_tag){k, v};
	}
	if (!named)
		tags[ntags++] = (struct dv_ec2_tag){"Name", o->name ? o->name : default_name};
	char desc[200];
	snprintf(desc, sizeof desc, "diskvault launch of %s%s", p->id[0] ? "snapshot " : "", p->from);
	struct dv_ec2_image_spec is = {
		.name = p->ami_name,
		.description = desc,
		.architecture = dv_arch_name(arch),
		.root_device = o->root_device ? o->root_device : "/dev/xvda",
		.snapshot_id = p->ebs_id,
		.volume_type = "gp3",
		.delete_on_termination = true,
		.ena = true,
		.boot_mode = p->d.ec2_boot,
	};
	dv_ec2_form_register_image(&p->reg, &is);
	struct dv_ec2_run_spec rs = {
		.image_id = DV_CLOUD_NEW_AMI,
		.instance_type = itype,
		.key_name = o->key_name,
		.subnet_id = o->subnet,
		.security_groups = o->security_groups,
		.nsecurity_groups = o->nsecurity_groups,
		.tags = tags,
		.ntags = ntags,
		.client_token = p->launch_id,
		.imdsv2_required = true,
	};
	dv_ec2_form_run_instances(&p->run, &rs);
	const char *tag_targets[2] = {DV_CLOUD_NEW_AMI, p->ebs_id};
	/* the EBS snapshot is tagged only when diskvault made it (ebs-import) */
	dv_ec2_form_create_tags(&p->tags, tag_targets, p->id[0] ? 2 : 1, tags, ntags);
	r = 0;
out:
	free(rec_region);
	return r;
}

/* Waits until instance id runs (or fails); fills *inst (owned). */
static int wait_running(struct dv_ec2 *ec2, const char *id, const struct dv_cloud_cb *cb, struct dv_ec2_instances *inst,
			struct dv_err *err)
{
	double limit = dv_cloud_wait_limit(), start = dv_now();
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
			dv_cloud_pause(dv_cloud_poll_interval());
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
		if (dv_cloud_interrupted(cb)) {
			r = dv_error(err, DV_E_INTERRUPTED, "interrupted while waiting for %s", id);
			break;
		}
		if (dv_now() - start > limit) {
			r = dv_error(err, DV_E_REMOTE, "instance %s did not reach running within %.0f s", id, limit);
			break;
		}
		dv_cloud_pause(dv_cloud_poll_interval());
	}
	if (r < 0)
		dv_ec2_instances_release(inst);
	dv_buf_release(&resp);
	return r;
}

void dv_cloud_launched_release(struct dv_cloud_launched *l)
{
	free(l->ami);
	dv_ec2_instances_release(&l->inst);
	memset(l, 0, sizeof *l);
}

int dv_cloud_launch_run(struct dv_cloud_plan *p, bool no_wait, const struct dv_cloud_cb *cb,
			struct dv_cloud_launched *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct dv_ec2 *ec2 = NULL;
	struct dv_buf resp = DV_BUF_INIT;
	char *iid = NULL;
	int r;
	if ((r = dv_cloud_ec2(p->region, &ec2, err)) < 0)
		goto out;
	char code[64];
	r = dv_ec2_call(ec2, &p->reg, &resp, code, err);
	if (r < 0) {
		if (!strcmp(code, "InvalidAMIName.Duplicate"))
			dv_error_prefix(err, "AMI name %s exists: ", p->ami_name);
		goto out;
	}
	if ((r = dv_ec2_parse_register_image((char *)resp.data, resp.len, &out->ami, err)) < 0)
		goto out;
	dv_ec2_form_set(&p->tags, "ResourceId.1", out->ami);
	if ((r = dv_ec2_call(ec2, &p->tags, &resp, NULL, err)) < 0 ||
	    (r = dv_ec2_parse_return((char *)resp.data, resp.len, "CreateTags", err)) < 0) {
		dv_error_prefix(err, "AMI %s registered but not tagged (deregister it by hand): ", out->ami);
		goto out;
	}
	dv_ec2_form_set(&p->run, "ImageId", out->ami);
	if ((r = dv_ec2_call(ec2, &p->run, &resp, NULL, err)) < 0 ||
	    (r = dv_ec2_parse_instances((char *)resp.data, resp.len, &out->inst, err)) < 0) {
		dv_error_prefix(err, "AMI %s registered (diskvault cleanup --launched-from %s removes it): ", out->ami,
				p->from);
		goto out;
	}
	if (out->inst.n != 1) {
		r = dv_error(err, DV_E_REMOTE, "RunInstances started %zu instances instead of 1", out->inst.n);
		goto out;
	}
	if (!no_wait) {
		iid = dv_strdup(out->inst.v[0].id);
		dv_ec2_instances_release(&out->inst);
		if (cb && cb->launch_started)
			cb->launch_started(cb->ctx, iid, p->instance_type, out->ami);
		r = wait_running(ec2, iid, cb, &out->inst, err);
	}
out:
	if (r < 0) {
		/* keep the AMI id for the caller's message; drop the rest */
		dv_ec2_instances_release(&out->inst);
	}
	free(iid);
	dv_buf_release(&resp);
	dv_ec2_free(ec2);
	return r;
}
