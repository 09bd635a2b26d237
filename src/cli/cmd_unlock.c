#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault --repo PATH unlock [--all]\n"
	"Removes stale locks: those of a process that no longer runs on this host, and those not\n"
	"refreshed for 30 minutes. --all removes every lock (only when no diskvault runs anywhere).\n";

static void report(const struct dv_lock_info *li, bool removed, void *ctx)
{
	json_t *list = ctx;
	char when[32] = "?";
	if (!li->unreadable)
		dv_format_time(when, sizeof when, li->time);
	if (dv_cli.json)
		json_array_append_new(list, json_pack("{s:s, s:b, s:b, s:b, s:s, s:I, s:s}", "lock", li->name, "removed",
						      removed, "stale", li->stale, "exclusive", li->exclusive, "host",
						      li->host, "pid", (json_int_t)li->pid, "time", when));
	else if (!dv_cli.quiet)
		printf("%s %s: %s%s lock of pid %lld on %s since %s\n", removed ? "removed" : "kept", li->name,
		       li->stale ? "stale " : "", li->exclusive ? "exclusive" : "shared", (long long)li->pid,
		       li->unreadable ? "?" : li->host, when);
}

int cmd_unlock(int argc, char **argv)
{
	bool all = false;
	const struct dv_cli_opt opts[] = {DV_OPT_FLAG("all", &all), DV_OPT_END};
	int first, rc;
	if (!dv_cli_parse("unlock", help, argc, argv, opts, &first, &rc))
		return rc;
	const char *repo_path;
	if ((rc = dv_cli_no_operands("unlock", argc, argv, first)) || (rc = dv_cli_need_repo("unlock", &repo_path)))
		return rc;
	struct dv_err err;
	struct dv_repo *repo = NULL;
	json_t *list = json_array();
	if (dv_cli_open_repo(repo_path, &repo, &err) < 0 || dv_lock_remove(repo, all, report, list, &err) < 0)
		rc = dv_cli_fail("unlock", &err);
	else if (dv_cli.json)
		dv_cli_print_json(json_pack("{s:s, s:b, s:O}", "command", "unlock", "ok", 1, "locks", list));
	json_decref(list);
	dv_repo_free(repo);
	return rc;
}
