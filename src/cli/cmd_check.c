#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include "cli.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault --repo PATH check [--read-data[=PCT]]\n"
	"Checks the repository's structure: every pack an index names exists with the right size,\n"
	"pack indexes agree with the index, manifests and disk indexes are intact, and every chunk\n"
	"a snapshot uses is stored. Unreferenced data and further copies of a chunk in other packs\n"
	"are reported (unused, as prune counts them), not deleted. Exit code 4 when an error is found.\n"
	"  --read-data[=PCT]  also read PCT percent of the packs (default 100), chosen at random, and\n"
	"                     verify every chunk in them; a nightly --read-data=5 covers all in ~20 runs\n";

/* --read-data[=PCT]: a fraction of the packs, all without PCT. */
static int read_data_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	double *read_data = o->dest;
	*read_data = 1;
	if (arg) {
		char *end;
		double v = strtod(arg, &end);
		if (end == arg || (*end && strcmp(end, "%")) || v <= 0 || v > 100)
			return dv_cli_usage(cmd, "--read-data takes a percentage between 0 and 100");
		*read_data = v / 100;
	}
	return 0;
}

struct problems {
	json_t *list;
};

static void problem(const char *msg, bool is_error, void *ctx)
{
	struct problems *p = ctx;
	if (dv_cli.json)
		json_array_append_new(p->list, json_pack("{s:s, s:s}", "severity", is_error ? "error" : "warning",
							 "message", msg));
	else if (is_error || !dv_cli.quiet)
		fprintf(is_error ? stderr : stdout, "%s: %s\n", is_error ? "error" : "warning", msg);
}

int cmd_check(int argc, char **argv)
{
	struct dv_check_opts co = {0};
	const struct dv_cli_opt opts[] = {
		DV_OPT_CALLBACK("read-data", optional_argument, read_data_opt, &co.read_data),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("check", help, argc, argv, opts, &first, &rc))
		return rc;
	const char *repo_path;
	if ((rc = dv_cli_no_operands("check", argc, argv, first)) || (rc = dv_cli_need_repo("check", &repo_path)))
		return rc;
	struct dv_err err;
	struct dv_repo *repo = NULL;
	struct dv_check_report rep;
	struct problems p = {json_array()};
	if (dv_cli_open_repo(repo_path, &repo, &err) < 0) {
		rc = dv_cli_fail("check", &err);
		goto out;
	}
	int crc = dv_check(repo, &co, problem, &p, &rep, &err);
	if (crc < 0 && err.code != DV_E_CORRUPT) {
		rc = dv_cli_fail("check", &err);
		goto out;
	}
	rc = crc < 0 ? DV_EXIT_INTEGRITY : 0;
	/* What to run: damaged manifests are removed by repair snapshots. */
	struct dv_snapshot_list l;
	struct dv_err lerr;
	size_t damaged = 0;
	if (crc < 0 && dv_snapshot_list_load_readable(repo, &l, &lerr) == 0) {
		damaged = l.unreadable.n;
		dv_snapshot_list_release(&l);
	}
	if (dv_cli.json) {
		dv_cli_print_json(json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
					    "s:I, s:I, s:I, s:O}",
					    "packs_read", (json_int_t)rep.packs_read, "bytes_read", (json_int_t)rep.bytes_read,
					    "used_bytes", (json_int_t)rep.used_bytes, "unused_bytes",
					    (json_int_t)rep.unused_bytes, "duplicate_chunks", (json_int_t)rep.duplicate_chunks,
					    "duplicate_bytes", (json_int_t)rep.duplicate_bytes, "command",
					    "check", "ok", crc == 0, "snapshots", (json_int_t)rep.snapshots, "packs",
					    (json_int_t)rep.packs, "index_segments", (json_int_t)rep.index_segments,
					    "disk_indexes", (json_int_t)rep.disk_indexes, "chunks", (json_int_t)rep.chunks,
					    "errors", (json_int_t)rep.errors, "unreferenced_chunks",
					    (json_int_t)rep.unreferenced_chunks, "unreferenced_bytes",
					    (json_int_t)rep.unreferenced_bytes, "unindexed_packs",
					    (json_int_t)rep.unindexed_packs, "stray_objects", (json_int_t)rep.stray_objects,
					    "problems", p.list));
		if (damaged)
			fprintf(stderr, "diskvault check: %zu snapshot manifest(s) cannot be read: run 'diskvault repair "
				"snapshots --dry-run' to see them, 'diskvault repair snapshots' to remove them, then "
				"'diskvault prune'\n", damaged);
	} else {
		if (crc < 0)
			fprintf(stderr, "diskvault check: %s\n", err.msg);
		if (damaged)
			fprintf(stderr, "diskvault check: %zu snapshot manifest(s) cannot be read: run 'diskvault repair "
				"snapshots --dry-run' to see them, 'diskvault repair snapshots' to remove them, then "
				"'diskvault prune'\n", damaged);
		else if (!dv_cli.quiet)
			printf("repository %s is consistent: %llu snapshots, %llu packs, %llu chunks, %llu index segments; "
			       "%llu unreferenced chunks (%s), %llu duplicate copies (%s), %s unused in all; "
			       "%llu packs (%s) read and verified\n",
			       repo_path, (unsigned long long)rep.snapshots, (unsigned long long)rep.packs,
			       (unsigned long long)rep.chunks, (unsigned long long)rep.index_segments,
			       (unsigned long long)rep.unreferenced_chunks, dv_cli_size(rep.unreferenced_bytes),
			       (unsigned long long)rep.duplicate_chunks, dv_cli_size(rep.duplicate_bytes),
			       dv_cli_size(rep.unused_bytes), (unsigned long long)rep.packs_read,
			       dv_cli_size(rep.bytes_read));
	}
out:
	json_decref(p.list);
	dv_repo_free(repo);
	return rc;
}
