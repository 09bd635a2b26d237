/* cmd_repair.c - repair snapshots: remove manifests that cannot be read. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault --repo PATH repair snapshots [--dry-run]\n"
	"Removes the snapshot manifests that cannot be read or parsed (truncated, damaged, failing\n"
	"authentication), which 'list', 'forget' and 'check' name. Their snapshots are lost already;\n"
	"the data only they used goes with the next 'prune'. --dry-run names them and removes\n"
	"nothing. Takes the exclusive lock (not with --dry-run). A wrong passphrase or an I/O error\n"
	"is a failure, never a reason to remove anything.\n";

int cmd_repair(int argc, char **argv)
{
	bool dry_run = false;
	const struct dv_cli_opt opts[] = {
		DV_OPT_FLAG("dry-run", &dry_run),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("repair", help, argc, argv, opts, &first, &rc))
		return rc;
	if (first >= argc)
		return dv_cli_usage("repair", "what to repair? 'snapshots' is the one there is");
	if (strcmp(argv[first], "snapshots"))
		return dv_cli_usage("repair", "unknown object '%s': 'snapshots' is the one there is", argv[first]);
	const char *repo_path;
	if ((rc = dv_cli_no_operands("repair", argc, argv, first + 1)) || (rc = dv_cli_need_repo("repair", &repo_path)))
		return rc;
	struct dv_err err;
	struct dv_repo *repo = NULL;
	struct dv_strlist ids = {0}, msgs = {0};
	if (dv_cli_open_repo(repo_path, &repo, &err) < 0 || dv_repair_snapshots(repo, dry_run, &ids, &msgs, &err) < 0) {
		rc = dv_cli_fail("repair", &err);
		goto out;
	}
	if (dv_cli.json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < ids.n; i++)
			json_array_append_new(arr, json_pack("{s:s, s:s}", "id", ids.v[i], "error", msgs.v[i]));
		dv_cli_print_json(json_pack("{s:s, s:b, s:b, s:o}", "command", "repair", "ok", 1, "dry_run", dry_run,
					    "removed", arr));
	} else if (!dv_cli.quiet) {
		for (size_t i = 0; i < ids.n; i++)
			printf("%s snapshot %s: %s\n", dry_run ? "would remove" : "removed", ids.v[i], msgs.v[i]);
		printf("%zu damaged snapshot manifest(s) %sremoved%s\n", ids.n, dry_run ? "would be " : "",
		       ids.n && !dry_run ? "; 'diskvault prune' frees their data" : "");
	}
out:
	dv_strlist_release(&ids);
	dv_strlist_release(&msgs);
	dv_repo_free(repo);
	return rc;
}
