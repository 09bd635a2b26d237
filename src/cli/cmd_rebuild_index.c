#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault --repo PATH rebuild-index\n"
	"Rebuilds the chunk index (index/) from the packs, which each carry their own index: reads\n"
	"and verifies every pack, then replaces the old index. Use it when check or backup report a\n"
	"damaged or missing index segment. Damaged packs are named and left out.\n";

static void problem(const char *msg, bool is_error, void *ctx)
{
	(void)is_error;
	json_t *list = ctx;
	if (dv_cli.json)
		json_array_append_new(list, json_string(msg));
	else
		fprintf(stderr, "error: %s\n", msg);
}

int cmd_rebuild_index(int argc, char **argv)
{
	int first, rc;
	if (!dv_cli_parse("rebuild-index", help, argc, argv, NULL, &first, &rc))
		return rc;
	const char *repo_path;
	if ((rc = dv_cli_no_operands("rebuild-index", argc, argv, first)) || (rc = dv_cli_need_repo("rebuild-index", &repo_path)))
		return rc;
	struct dv_err err;
	struct dv_repo *repo = NULL;
	struct dv_rebuild_result res;
	json_t *problems = json_array();
	if (dv_cli_open_repo(repo_path, &repo, &err) < 0 || dv_rebuild_index(repo, problem, problems, &res, &err) < 0) {
		rc = dv_cli_fail("rebuild-index", &err);
	} else {
		rc = res.packs_skipped ? DV_EXIT_INTEGRITY : 0;
		if (dv_cli.json)
			dv_cli_print_json(json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:O}", "command", "rebuild-index", "ok",
						    rc == 0, "packs", (json_int_t)res.packs, "chunks", (json_int_t)res.chunks,
						    "packs_skipped", (json_int_t)res.packs_skipped, "segments_replaced",
						    (json_int_t)res.segments_replaced, "problems", problems));
		else if (!dv_cli.quiet)
			printf("index rebuilt from %llu packs (%llu chunks); %llu damaged packs left out; %llu old segments "
			       "replaced\n",
			       (unsigned long long)res.packs, (unsigned long long)res.chunks,
			       (unsigned long long)res.packs_skipped, (unsigned long long)res.segments_replaced);
	}
	json_decref(problems);
	dv_repo_free(repo);
	return rc;
}
