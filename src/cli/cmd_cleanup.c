/*
 * cmd_cleanup.c - `diskvault cleanup`: removes what launch created, found
 * by the diskvault tags it puts on everything (dv_cloud_cleanup,
 * src/cloud/cleanup.c); docs/iam.md lists the EC2 actions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cloud.h"
#include "repo/repo.h"

static const char cleanup_help[] =
	"usage: diskvault cleanup --launched-from SNAPSHOT|snap-... | --tag K=V [--region R]\n"
	"           [--no-wait] [--dry-run] [--json]\n"
	"Terminates the instances, deregisters the AMIs and deletes the EBS snapshots that\n"
	"diskvault created (tag diskvault:created-by=diskvault) and that were launched from\n"
	"SNAPSHOT (or carry tag K=V), and nothing else. --dry-run lists them.\n";

static bool interrupted(void *ctx)
{
	(void)ctx;
	return dv_cli_interrupted;
}

static void print(const struct dv_cloud_cleanup_result *res, const char *fkey, const char *fval, bool dry_run)
{
	if (dv_cli.json) {
		dv_cli_print_json(json_pack("{s:s, s:b, s:b, s:s, s:s, s:O, s:O, s:O}", "command", "cleanup", "ok", 1,
					    "dry_run", dry_run, "tag", fkey, "value", fval, "instances", res->instances,
					    "images", res->images, "snapshots", res->snapshots));
		return;
	}
	if (dv_cli.quiet)
		return;
	const char *verb[3] = {dry_run ? "would terminate" : "terminated", dry_run ? "would deregister" : "deregistered",
			       dry_run ? "would delete" : "deleted"};
	json_t *sets[3] = {res->instances, res->images, res->snapshots};
	const char *what[3] = {"instance", "AMI", "EBS snapshot"};
	size_t i;
	json_t *e;
	for (int k = 0; k < 3; k++)
		json_array_foreach(sets[k], i, e)
			printf("%s %s %s\n", verb[k], what[k], json_string_value(json_object_get(e, "id")));
	printf("cleanup %s=%s: %zu instance(s), %zu AMI(s), %zu EBS snapshot(s)%s\n", fkey, fval,
	       json_array_size(res->instances), json_array_size(res->images), json_array_size(res->snapshots),
	       dry_run ? " (dry run: nothing changed)" : "");
}

int cmd_cleanup(int argc, char **argv)
{
	struct {
		const char *launched_from, *region, *tag_args[DV_CLOUD_MAX_TAGS];
		size_t ntags;
		bool dry_run, no_wait;
	} x = {0};
	const struct dv_cli_opt opts[] = {
		DV_OPT_STRING("launched-from", &x.launched_from),
		DV_OPT_LIST("tag", x.tag_args, &x.ntags, DV_CLOUD_MAX_TAGS, "at most 40 --tag"),
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
	struct dv_cloud_cleanup_result res;
	memset(&res, 0, sizeof res);
	if (x.launched_from) {
		fkey = DV_TAG_LAUNCHED_FROM;
		fval = x.launched_from;
		bool ebs = dv_cloud_is_ebs_snapshot_id(x.launched_from);
		if (!ebs && dv_cli.repo) {
			struct dv_repo *repo = NULL;
			int r = dv_cli_open_snapshot(dv_cli.repo, x.launched_from, &repo, id, NULL, &err);
			dv_repo_free(repo);
			if (r < 0)
				goto fail;
			fval = id;
		} else if (!ebs && strlen(x.launched_from) != DV_ID_HEX_LEN) {
			dv_error(&err, DV_E_USAGE, "--launched-from %s: give --repo to resolve a short snapshot id, "
				 "or the full id", x.launched_from);
			goto fail;
		}
	} else if (dv_cloud_parse_tag(x.tag_args[0], &tagbuf, &fkey, &fval) < 0) {
		rc = dv_cli_usage("cleanup", "--tag must be KEY=VALUE");
		goto out;
	}
	struct dv_cloud_cleanup_opts co = {
		.tag_key = fkey,
		.tag_value = fval,
		.imports = id[0] || (x.launched_from && strlen(x.launched_from) == DV_ID_HEX_LEN),
		.region = x.region,
		.dry_run = x.dry_run,
		.no_wait = x.no_wait,
	};
	struct dv_cloud_cb cb = {.interrupted = interrupted};
	if (dv_cloud_cleanup(&co, &cb, &res, &err) < 0)
		goto fail;
	print(&res, fkey, fval, x.dry_run);
	goto out;
fail:
	rc = dv_cli_fail("cleanup", &err);
out:
	dv_cloud_cleanup_result_release(&res);
	free(tagbuf);
	return rc;
}
