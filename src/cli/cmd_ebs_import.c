/*
 * cmd_ebs_import.c - `diskvault ebs-import`: parses, calls
 * dv_cloud_ebs_import (src/cloud/ebs_import.c, which does the work) and
 * prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cloud/cloud.h"
#include "repo/repo.h"

#define MAX_TAGS DV_CLOUD_MAX_TAGS

static const char help[] =
	"usage: diskvault --repo PATH ebs-import SNAPSHOT [--disk N] [--region R] [--description D]\n"
	"         [--tag K=V]... [--kms-key-id ARN] [--parent auto|snap-...|none] [--concurrency N]\n"
	"Writes disk N (default 0) of SNAPSHOT into a new EBS snapshot with the EBS direct APIs:\n"
	"only 512 KiB blocks that hold non-zero data are sent, many at once, each with its\n"
	"SHA-256; then CompleteSnapshot (LINEAR checksum) and a wait until it is completed.\n"
	"  --disk N            which disk of the snapshot\n"
	"  --region R          AWS region (else AWS_REGION, the profile, us-east-1)\n"
	"  --description D     snapshot description (default names the snapshot and host)\n"
	"  --tag K=V           tag the EBS snapshot (repeatable)\n"
	"  --kms-key-id ARN    encrypt with this KMS key\n"
	"  --parent P          auto (default): the last EBS snapshot diskvault made of this disk,\n"
	"                      sending only changed blocks; snap-...: that one (must be recorded);\n"
	"                      none: a full snapshot\n"
	"  --concurrency N     PutSnapshotBlock requests in flight (default 64)\n"
	"Endpoints: AWS_ENDPOINT_URL_EBS, AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL or the profile's\n"
	"endpoint_url. A killed import resumes when run again (state in DISKVAULT_STATE_DIR).\n";

struct opts {
	unsigned disk;
	const char *region;
	const char *description;
	const char *kms;
	const char *parent;
	unsigned concurrency;
	struct dv_aws_kv tags[MAX_TAGS];
	char *tagbuf[MAX_TAGS];
	size_t ntags;
};

static int description_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	if (strlen(arg) > 255)
		return dv_cli_usage(cmd, "--description is limited to 255 characters");
	*(const char **)o->dest = arg;
	return 0;
}

/* --tag K=V; dest is the struct opts */
static int tag_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	struct opts *x = o->dest;
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg || x->ntags >= MAX_TAGS - DV_CLOUD_IMPORT_TAGS || !strncmp(arg, "aws:", 4))
		return dv_cli_usage(cmd, "--tag takes KEY=VALUE (at most %d, no aws: prefix)", MAX_TAGS - DV_CLOUD_IMPORT_TAGS);
	char *t = dv_strdup(arg);
	t[eq - arg] = 0;
	x->tagbuf[x->ntags] = t;
	x->tags[x->ntags].key = t;
	x->tags[x->ntags].value = t + (eq - arg) + 1;
	x->ntags++;
	return 0;
}

static int parent_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	if (strcmp(arg, "auto") && strcmp(arg, "none") && strncmp(arg, "snap-", 5))
		return dv_cli_usage(cmd, "--parent must be auto, none or an EBS snapshot id (snap-...)");
	*(const char **)o->dest = arg;
	return 0;
}

static bool interrupted(void *ctx)
{
	(void)ctx;
	return dv_cli_interrupted;
}

static void progress(void *ctx, uint64_t processed, uint64_t todo, uint64_t sent, uint64_t bytes)
{
	double *last = ctx, now = dv_now();
	if (!dv_cli_progress_enabled() || now - *last < 0.25)
		return;
	*last = now;
	dv_cli_progress_line("ebs-import: %llu/%llu blocks, %llu sent, %s", (unsigned long long)processed,
			     (unsigned long long)todo, (unsigned long long)sent, dv_cli_size(bytes));
}

int cmd_ebs_import(int argc, char **argv)
{
	const char *cmd = "ebs-import";
	struct opts x;
	memset(&x, 0, sizeof x);
	x.parent = "auto";
	const struct dv_cli_opt opts[] = {
		DV_OPT_UINT("disk", &x.disk, 0, 1000, "--disk must be a disk number"),
		DV_OPT_STRING("region", &x.region),
		DV_OPT_CALLBACK("description", required_argument, description_opt, &x.description),
		DV_OPT_CALLBACK("tag", required_argument, tag_opt, &x),
		DV_OPT_STRING("kms-key-id", &x.kms),
		DV_OPT_CALLBACK("parent", required_argument, parent_opt, &x.parent),
		DV_OPT_UINT("concurrency", &x.concurrency, 1, 512, "--concurrency must be between 1 and 512"),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse(cmd, help, argc, argv, opts, &first, &rc))
		goto free_tags;
	if (argc - first != 1) {
		rc = dv_cli_usage(cmd, "give exactly one SNAPSHOT");
		goto free_tags;
	}
	const char *repo_path;
	if ((rc = dv_cli_need_repo(cmd, &repo_path)))
		goto free_tags;

	struct dv_err err;
	struct dv_repo *repo = NULL;
	json_t *manifest = NULL;
	char id[DV_ID_HEX_LEN + 1];
	double t0 = dv_now(), last = 0;
	struct dv_cloud_import_result res;
	memset(&res, 0, sizeof res);
	struct dv_cloud_import_opts io = {
		.disk = x.disk,
		.region = x.region,
		.description = x.description,
		.kms_key_id = x.kms,
		.parent = !strcmp(x.parent, "auto") ? DV_PARENT_AUTO : !strcmp(x.parent, "none") ? DV_PARENT_NONE : DV_PARENT_ID,
		.parent_id = x.parent,
		.concurrency = x.concurrency,
		.tags = x.tags,
		.ntags = x.ntags,
	};
	struct dv_cloud_cb cb = {.ctx = &last, .interrupted = interrupted, .import_progress = progress};
	if (dv_cli_open_snapshot(repo_path, argv[first], &repo, id, &manifest, &err) < 0 ||
	    dv_cloud_ebs_import(repo, id, manifest, &io, &cb, &res, &err) < 0) {
		dv_cli_progress_done();
		rc = dv_cli_fail(cmd, &err);
		goto out;
	}
	dv_cli_progress_done();
	json_t *rec = res.record;
	double secs = dv_now() - t0;
	if (dv_cli.json) {
		json_object_set_new(rec, "command", json_string(cmd));
		json_object_set_new(rec, "ok", json_true());
		json_object_set_new(rec, "blocks_written_total",
				    res.written_known ? json_integer((json_int_t)res.written_total) : json_null());
		json_object_set_new(rec, "existing",
				    res.existing == DV_IMPORT_RECORDED ? json_string("recorded")
				    : res.existing == DV_IMPORT_TAGGED ? json_string("tagged")
								       : json_null());
		if (res.existing) {
			/* what this run did, not what the record says an earlier one did */
			json_object_set_new(rec, "blocks_sent", json_integer(0));
			json_object_set_new(rec, "bytes_sent", json_integer(0));
		}
		json_object_set_new(rec, "blocks_resumed", json_integer((json_int_t)res.resumed_blocks));
		json_object_set_new(rec, "blocks_unchanged", json_integer((json_int_t)res.unchanged));
		json_object_set_new(rec, "blocks_zero_skipped", json_integer((json_int_t)res.zero_skipped));
		json_object_set_new(rec, "blocks_same_as_parent", json_integer((json_int_t)res.same_as_parent));
		json_object_set_new(rec, "requests", json_integer((json_int_t)res.requests));
		json_object_set_new(rec, "retries", json_integer((json_int_t)res.retries));
		json_object_set_new(rec, "throttled", json_integer((json_int_t)res.throttled));
		json_object_set_new(rec, "resumed", json_boolean(res.resumed));
		json_object_set_new(rec, "seconds", json_real(secs));
		dv_cli_print_json(json_incref(rec));
	} else if (res.existing && !dv_cli.quiet) {
		printf("ebs-import: disk %u of snapshot %.8s is already in %s (%s%s%s): nothing sent\n", x.disk, id,
		       res.ebs_id, res.existing == DV_IMPORT_RECORDED ? "recorded" : "found by its tags, now recorded",
		       res.parent[0] ? ", parent " : "", res.parent);
	} else {
		if (!dv_cli.quiet)
			printf("ebs-import: disk %u of snapshot %.8s -> %s (%llu GiB%s%s): %llu blocks sent (%s)%s, "
			       "%llu unchanged, %llu retries, %.1fs\n",
			       x.disk, id, res.ebs_id, (unsigned long long)res.volume_gib, res.parent[0] ? ", parent " : "",
			       res.parent, (unsigned long long)res.sent, dv_cli_size(res.bytes_sent),
			       res.resumed ? " (resumed)" : "", (unsigned long long)res.unchanged,
			       (unsigned long long)res.retries, secs);
		if (dv_cli.quiet)
			printf("%s\n", res.ebs_id);
	}
	rc = 0;
out:
	dv_cloud_import_result_release(&res);
	json_decref(manifest);
	dv_repo_free(repo);
free_tags:
	for (size_t q = 0; q < x.ntags; q++)
		free(x.tagbuf[q]);
	return rc;
}
