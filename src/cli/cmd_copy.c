#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault copy --from REPO --to REPO [SNAPSHOT...]\n"
	"Copies a repository (e.g. a local directory to s3://bucket/prefix) object by object:\n"
	"only objects the destination lacks, packs first and snapshot manifests and config last, so\n"
	"an interrupted copy continues where it stopped when run again. The copy is the same\n"
	"repository (same id, same keys): it can be used directly, and copied to again later.\n"
	"With SNAPSHOT arguments (ids, unique prefixes or 'latest') only those snapshots and the\n"
	"packs, disk indexes and EBS records they need are copied, with a new index segment for\n"
	"the copied packs; without, the whole repository.\n";

int cmd_copy(int argc, char **argv)
{
	struct {
		const char *from, *to;
	} x = {0};
	const struct dv_cli_opt opts[] = {DV_OPT_STRING("from", &x.from), DV_OPT_STRING("to", &x.to), DV_OPT_END};
	int first, rc;
	if (!dv_cli_parse("copy", help, argc, argv, opts, &first, &rc))
		return rc;
	if (!x.from)
		x.from = dv_cli.repo;
	if (!x.from || !x.to)
		return dv_cli_usage("copy", "give --from REPO and --to REPO");
	if (!strcmp(x.from, x.to))
		return dv_cli_usage("copy", "--from and --to are the same repository");
	struct dv_err err;
	struct dv_repo *repo = NULL;
	struct dv_copy_result res;
	if (dv_cli_open_repo(x.from, &repo, &err) < 0 || dv_copy(repo, x.to, (const char *const *)argv + first, (size_t)(argc - first), &res, &err) < 0) {
		rc = dv_cli_fail("copy", &err);
	} else if (dv_cli.json) {
		dv_cli_print_json(json_pack("{s:s, s:b, s:s, s:s, s:I, s:I, s:I}", "command", "copy", "ok", 1, "from", x.from,
					    "to", x.to, "objects_copied", (json_int_t)res.objects_copied, "objects_skipped",
					    (json_int_t)res.objects_skipped, "bytes_copied", (json_int_t)res.bytes_copied));
	} else if (!dv_cli.quiet) {
		printf("copied %llu objects (%s) from %s to %s; %llu were there already\n",
		       (unsigned long long)res.objects_copied, dv_cli_size(res.bytes_copied), x.from, x.to,
		       (unsigned long long)res.objects_skipped);
	}
	dv_repo_free(repo);
	return rc;
}
