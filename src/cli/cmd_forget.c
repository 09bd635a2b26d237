/* cmd_forget.c - forget (retention) and prune (garbage collection). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "repo/repo.h"

static const char forget_help[] =
	"usage: diskvault --repo PATH forget [--keep-last N] [--keep-hourly N] [--keep-daily N]\n"
	"         [--keep-weekly N] [--keep-monthly N] [--keep-yearly N] [--keep-within DURATION]\n"
	"         [--keep-tag TAG]... [--host HOST] [--dry-run]\n"
	"         [--prune [--max-unused LIMIT] [--max-repack-size SIZE]]\n"
	"       diskvault --repo PATH forget [--dry-run] [--prune ...] SNAPSHOT...\n"
	"Removes the snapshots no rule keeps, and prints what it keeps and why. Snapshots are grouped\n"
	"by host and disk sources; each rule keeps, per group, the newest snapshot of each of the\n"
	"last N hours/days/ISO weeks/months/years (UTC) that have one. --keep-within keeps all\n"
	"snapshots that are at most DURATION older than the newest one, on the calendar: y years,\n"
	"m months, w weeks, d days, h hours, combined as in 1y6m2d (restic's units; 6m is six months). The EBS\n"
	"import records of removed snapshots go too (the newest one of each disk stays as the parent\n"
	"of the next import). --prune frees the data right after (see 'diskvault prune --help').\n"
	"Without --keep-* options, the [retention] policy of the config file applies\n"
	"(docs/configuration.md). Given SNAPSHOTs (ids or unique prefixes of 4+ hex digits), exactly\n"
	"those are forgotten, damaged ones too, and no rule applies. A manifest that cannot be read is\n"
	"skipped (neither kept nor forgotten), named on stderr, and the exit code is 3; --prune then\n"
	"refuses until 'diskvault repair snapshots' removed it.\n";

static const char prune_help[] =
	"usage: diskvault --repo PATH prune [--max-unused LIMIT] [--max-repack-size SIZE] [--dry-run]\n"
	"Deletes data no snapshot uses: packs with nothing in use are deleted, and packs that mix used\n"
	"and unused data are rewritten, those with the most unused data per used byte first, until\n"
	"the unused data left is within LIMIT. Packs, disk indexes and temporary files left by\n"
	"interrupted runs, and EBS import records of snapshots that are gone, are removed.\n"
	"Takes the exclusive lock; safe to interrupt at any point.\n"
	"  --max-unused LIMIT     N% of the repository after prune (default 5%), a size such as\n"
	"                         200M or 1G, 0 to leave nothing unused, or unlimited (no rewriting)\n"
	"  --max-repack-size SIZE rewrite at most SIZE of used data per run (e.g. 2G; default no cap)\n"
	"The config file's [retention] max_unused and max_repack_size replace the defaults.\n";

/* --keep-last N and the like: a count >= 0 */
static int count_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	char *end;
	long long v = strtoll(arg, &end, 10);
	if (!*arg || *end || v < 0)
		return dv_cli_usage(cmd, "--%s needs a number >= 0", o->name);
	*(int64_t *)o->dest = v;
	return 0;
}

/* --keep-within DURATION */
static int within_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	struct dv_duration *d = o->dest;
	if (!dv_parse_duration(arg, DV_DUR_RETENTION, d) || dv_duration_is_zero(d))
		return dv_cli_usage(cmd, "--keep-within '%s': expected a duration of y (years), m (months), w, d and h, "
				    "such as 14d, 6m or 1y6m2d", arg);
	return 0;
}

struct opts {
	struct dv_forget_policy pol;
	const char *tags[64];
	char (*ids)[DV_ID_HEX_LEN + 1]; /* forget SNAPSHOT...: resolved */
	const char **idp;
	bool dry_run, prune;
	const char *budget_flag; /* --max-unused or --max-repack-size given */
	struct dv_prune_opts po;
};

/* --max-unused LIMIT (dest: struct opts) */
static int unused_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	struct opts *x = o->dest;
	x->budget_flag = "--max-unused";
	if (!dv_config_parse_unused(arg, &x->po.max_unused_pct, &x->po.max_unused_bytes))
		return dv_cli_usage(cmd, "--max-unused '%s': expected a percentage below 100 (5%%), a size (200M) or unlimited",
				    arg);
	return 0;
}

/* --max-repack-size SIZE (dest: struct opts) */
static int repack_size_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	struct opts *x = o->dest;
	x->budget_flag = "--max-repack-size";
	if (!dv_parse_size(arg, &x->po.max_repack_bytes))
		return dv_cli_usage(cmd, "--max-repack-size '%s': expected a size such as 500M or 2G", arg);
	return 0;
}

static void print_decision(const char *id, const json_t *m, bool keep, const char *reasons, void *ctx)
{
	json_t *list = ctx;
	if (!m) { /* a damaged manifest named on the command line */
		if (dv_cli.json)
			json_array_append_new(list, json_pack("{s:s, s:n, s:n, s:b, s:s}", "id", id, "time", "host",
							      "keep", 0, "reasons", "unreadable"));
		else if (!dv_cli.quiet)
			printf("%-6s %.8s  (manifest cannot be read)\n", "forget", id);
		return;
	}
	if (dv_cli.json) {
		json_array_append_new(list, json_pack("{s:s, s:O, s:O, s:b, s:s}", "id", id, "time",
						      json_object_get(m, "time"), "host", json_object_get(m, "host"),
						      "keep", keep, "reasons", reasons));
		return;
	}
	if (dv_cli.quiet)
		return;
	printf("%-6s %.8s  %s  %-16s  %s\n", keep ? "keep" : "forget", id, json_string_value(json_object_get(m, "time")),
	       json_string_value(json_object_get(m, "host")), reasons);
}

static json_t *prune_json(const struct dv_prune_result *p)
{
	json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "packs",
			 (json_int_t)p->packs,
			 "packs_deleted", (json_int_t)p->packs_deleted, "packs_repacked", (json_int_t)p->packs_repacked,
			 "packs_written", (json_int_t)p->packs_written, "packs_unindexed_deleted",
			 (json_int_t)p->packs_unindexed_deleted, "disk_indexes_deleted",
			 (json_int_t)p->disk_indexes_deleted, "tmp_deleted", (json_int_t)p->tmp_deleted, "bytes_before",
			 (json_int_t)p->bytes_before, "bytes_after", (json_int_t)p->bytes_after, "bytes_freed",
			 (json_int_t)p->bytes_freed, "bytes_written", (json_int_t)p->bytes_written, "bytes_repacked",
			 (json_int_t)p->bytes_repacked, "bytes_read", (json_int_t)p->bytes_read, "range_reads",
			 (json_int_t)p->range_reads, "seconds", p->seconds);
	json_object_set_new(j, "bytes_used", json_integer((json_int_t)p->bytes_used));
	json_object_set_new(j, "bytes_unused_before", json_integer((json_int_t)p->bytes_unused_before));
	json_object_set_new(j, "bytes_unused_after", json_integer((json_int_t)p->bytes_unused_after));
	json_object_set_new(j, "unused_limit", p->unused_limit == DV_PRUNE_UNLIMITED
						       ? json_null()
						       : json_integer((json_int_t)p->unused_limit));
	json_object_set_new(j, "ebs_records_deleted", json_integer((json_int_t)p->ebs_records_deleted));
	return j;
}

static void print_prune(const struct dv_prune_result *p, bool dry_run)
{
	printf("prune%s: %llu packs, %llu %sdeleted, %llu %srewritten into %llu new, %llu unindexed packs and "
	       "%llu disk indexes %sremoved; %s freed, %s rewritten; repository %s -> %s, %s unused left "
	       "(limit %s), %.1fs\n",
	       dry_run ? " (dry run)" : "", (unsigned long long)p->packs, (unsigned long long)p->packs_deleted,
	       dry_run ? "would be " : "", (unsigned long long)p->packs_repacked, dry_run ? "would be " : "",
	       (unsigned long long)p->packs_written, (unsigned long long)p->packs_unindexed_deleted,
	       (unsigned long long)p->disk_indexes_deleted, dry_run ? "would be " : "", dv_cli_size(p->bytes_freed),
	       dv_cli_size(p->bytes_repacked), dv_cli_size(p->bytes_before), dv_cli_size(p->bytes_after),
	       dv_cli_size(p->bytes_unused_after),
	       p->unused_limit == DV_PRUNE_UNLIMITED ? "unlimited" : dv_cli_size(p->unused_limit), p->seconds);
	if (p->ebs_records_deleted)
		printf("prune: %llu EBS record object(s) of snapshots that are gone %sdeleted\n",
		       (unsigned long long)p->ebs_records_deleted, dry_run ? "would be " : "");
}

/* A forgotten snapshot that came back is a sign of tampering: always said. */
static void report_replayed(const char *cmd, uint64_t n)
{
	if (n)
		fprintf(stderr,
			"diskvault %s: warning: removed %llu snapshot manifest(s) that were forgotten earlier and had "
			"reappeared (replayed objects; see formats/encryption.md)\n",
			cmd, (unsigned long long)n);
}

static int run(const char *cmd, int argc, char **argv)
{
	bool forget = !strcmp(cmd, "forget");
	struct opts x;
	memset(&x, 0, sizeof x);
	x.pol.tags = x.tags;
	dv_prune_opts_init(&x.po);
	dv_cli_config_prune(&x.po); /* [retention]; the flags override it */
	/* prune takes only the last three (before the end row) */
	const struct dv_cli_opt opts[] = {
		DV_OPT_CALLBACK("keep-last", required_argument, count_opt, &x.pol.keep_last),
		DV_OPT_CALLBACK("keep-hourly", required_argument, count_opt, &x.pol.keep[0]),
		DV_OPT_CALLBACK("keep-daily", required_argument, count_opt, &x.pol.keep[1]),
		DV_OPT_CALLBACK("keep-weekly", required_argument, count_opt, &x.pol.keep[2]),
		DV_OPT_CALLBACK("keep-monthly", required_argument, count_opt, &x.pol.keep[3]),
		DV_OPT_CALLBACK("keep-yearly", required_argument, count_opt, &x.pol.keep[4]),
		DV_OPT_CALLBACK("keep-within", required_argument, within_opt, &x.pol.keep_within),
		DV_OPT_LIST("keep-tag", x.tags, &x.pol.ntags, DV_ARRAY_SIZE(x.tags), "too many --keep-tag"),
		DV_OPT_STRING("host", &x.pol.host),
		DV_OPT_FLAG("prune", &x.prune),
		DV_OPT_FLAG("dry-run", &x.dry_run),
		DV_OPT_CALLBACK("max-unused", required_argument, unused_opt, &x),
		DV_OPT_CALLBACK("max-repack-size", required_argument, repack_size_opt, &x),
		DV_OPT_END,
	};
	int first, rc;
	const struct dv_cli_opt *own = forget ? opts : opts + DV_ARRAY_SIZE(opts) - 4;
	if (!dv_cli_parse(cmd, forget ? forget_help : prune_help, argc, argv, own, &first, &rc))
		return rc;
	x.po.dry_run = x.dry_run;
	if (forget && first < argc && !dv_forget_policy_empty(&x.pol))
		return dv_cli_usage(cmd, "give either SNAPSHOTs or --keep-* rules, not both");
	if (forget && first < argc) {
		/* set now so that the config's policy does not apply; resolved below */
		x.pol.ids = (const char *const *)(argv + first);
		x.pol.nids = (size_t)(argc - first);
	}
	if (forget)
		dv_cli_config_forget(&x.pol, x.tags, DV_ARRAY_SIZE(x.tags)); /* [retention] */
	if (!forget && (rc = dv_cli_no_operands(cmd, argc, argv, first)))
		return rc;
	if (forget && !x.prune && x.budget_flag)
		return dv_cli_usage(cmd, "%s applies to the prune: give --prune too", x.budget_flag);
	if (forget && dv_forget_policy_empty(&x.pol))
		return dv_cli_usage(cmd, "give at least one --keep-* rule (forgetting every snapshot is not allowed)");
	const char *repo_path;
	if ((rc = dv_cli_need_repo(cmd, &repo_path)))
		return rc;
	struct dv_err err;
	struct dv_repo *repo = NULL;
	json_t *decisions = json_array();
	struct dv_forget_result fr = {0};
	struct dv_prune_result pr;
	bool pruned = false;
	int partial = 0;
	if (dv_cli_open_repo(repo_path, &repo, &err) < 0) {
		rc = dv_cli_fail(cmd, &err);
		goto out;
	}
	if (forget && x.pol.nids) {
		x.ids = dv_calloc(x.pol.nids, sizeof *x.ids);
		x.idp = dv_calloc(x.pol.nids, sizeof *x.idp);
		for (size_t i = 0; i < x.pol.nids; i++) {
			if (dv_snapshot_resolve(repo, x.pol.ids[i], x.ids[i], &err) < 0) {
				rc = dv_cli_fail(cmd, &err);
				goto out;
			}
			x.idp[i] = x.ids[i];
		}
		x.pol.ids = x.idp;
	}
	if (forget) {
		if (dv_forget(repo, &x.pol, x.dry_run, print_decision, decisions, &fr, &err) < 0) {
			rc = dv_cli_fail(cmd, &err);
			goto out;
		}
		report_replayed(cmd, fr.replayed);
		partial = dv_cli_report_unreadable(cmd, &fr.unreadable, &fr.unreadable_msg, NULL);
		if (!dv_cli.json && !dv_cli.quiet)
			printf("%llu snapshot(s) kept, %llu %sforgotten\n", (unsigned long long)fr.kept,
			       (unsigned long long)fr.removed, x.dry_run ? "would be " : "");
		if (!dv_cli.json && !dv_cli.quiet && fr.ebs_records_deleted)
			printf("%llu EBS record object(s) of forgotten snapshots %sdeleted\n",
			       (unsigned long long)fr.ebs_records_deleted, x.dry_run ? "would be " : "");
	}
	if (!forget || x.prune) {
		if (dv_prune(repo, &x.po, &pr, &err) < 0) {
			rc = dv_cli_fail(cmd, &err);
			goto out;
		}
		pruned = true;
		report_replayed(cmd, pr.replayed);
		if (!dv_cli.json && !dv_cli.quiet)
			print_prune(&pr, x.dry_run);
	}
	if (dv_cli.json) {
		json_t *j = json_pack("{s:s, s:b, s:b}", "command", cmd, "ok", 1, "dry_run", x.dry_run);
		if (forget) {
			json_object_set(j, "snapshots", decisions);
			json_object_set_new(j, "kept", json_integer((json_int_t)fr.kept));
			json_object_set_new(j, "removed", json_integer((json_int_t)fr.removed));
			json_object_set_new(j, "ebs_records_deleted", json_integer((json_int_t)fr.ebs_records_deleted));
			json_t *un = json_array();
			for (size_t i = 0; i < fr.unreadable.n; i++)
				json_array_append_new(un, json_pack("{s:s, s:s}", "id", fr.unreadable.v[i], "error",
								    fr.unreadable_msg.v[i]));
			json_object_set_new(j, "unreadable", un);
			json_object_set_new(j, "exit_code", json_integer(partial));
		}
		json_object_set_new(j, "replayed_removed", json_integer((json_int_t)(fr.replayed + (pruned ? pr.replayed : 0))));
		if (pruned)
			json_object_set_new(j, "prune", prune_json(&pr));
		dv_cli_print_json(j);
	}
	rc = partial;
out:
	dv_forget_result_release(&fr);
	free(x.ids);
	free(x.idp);
	json_decref(decisions);
	dv_repo_free(repo);
	return rc;
}

int cmd_forget(int argc, char **argv) { return run("forget", argc, argv); }
int cmd_prune(int argc, char **argv) { return run("prune", argc, argv); }
