/* cmd_s3.c - `diskvault s3 uploads [--abort]`: multipart uploads left
 * under an S3 repository's prefix by interrupted runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws.h"
#include "cli.h"

static const char help[] =
	"usage: diskvault --repo s3://BUCKET/PREFIX s3 uploads [--abort]\n"
	"Lists the multipart uploads that interrupted runs left under the repository's prefix (a\n"
	"later backup resumes them); --abort aborts them all, freeing their stored parts. Run it only\n"
	"when no backup is running. An AbortIncompleteMultipartUpload lifecycle rule on the bucket\n"
	"does the same automatically (docs/s3.md).\n";

struct uploads {
	struct dv_s3 *s3;
	bool abort;
	json_t *list;
	size_t n, aborted;
	struct dv_err *err;
};

static int one(const struct dv_s3_upload *u, void *ctx)
{
	struct uploads *x = ctx;
	x->n++;
	bool done = false;
	if (x->abort) {
		if (dv_s3_abort_multipart(x->s3, u->key, u->upload_id, x->err) < 0)
			return 1;
		done = true;
		x->aborted++;
	}
	if (dv_cli.json)
		json_array_append_new(x->list, json_pack("{s:s, s:s, s:s, s:b}", "key", u->key, "upload_id", u->upload_id,
							 "initiated", u->initiated ? u->initiated : "", "aborted", done));
	else if (!dv_cli.quiet)
		printf("%s%s  %s  (upload %.16s...)\n", done ? "aborted " : "", u->initiated ? u->initiated : "-", u->key,
		       u->upload_id);
	return 0;
}

int cmd_s3(int argc, char **argv)
{
	bool abort_all = false;
	const struct dv_cli_opt opts[] = {DV_OPT_FLAG("abort", &abort_all), DV_OPT_END};
	int first, rc;
	if (!dv_cli_parse("s3", help, argc, argv, opts, &first, &rc))
		return rc;
	if (argc - first != 1 || strcmp(argv[first], "uploads"))
		return dv_cli_usage("s3", "give 'uploads'");
	const char *repo;
	if ((rc = dv_cli_need_repo("s3", &repo)))
		return rc;
	if (strncmp(repo, "s3://", 5))
		return dv_cli_usage("s3", "the repository %s is not on S3", repo);
	struct dv_err err;
	struct dv_s3 *s3 = NULL;
	char *prefix = NULL;
	struct uploads x = {.abort = abort_all, .list = json_array(), .err = &err};
	if (dv_s3_open_url(repo, NULL, &s3, &prefix, &err) < 0) {
		rc = dv_cli_fail("s3", &err);
		goto out;
	}
	x.s3 = s3;
	rc = dv_s3_list_uploads(s3, prefix, one, &x, &err);
	if (rc != 0) {
		rc = dv_cli_fail("s3", &err);
		goto out;
	}
	if (dv_cli.json)
		dv_cli_print_json(json_pack("{s:s, s:b, s:I, s:I, s:O}", "command", "s3 uploads", "ok", 1, "uploads",
					    (json_int_t)x.n, "aborted", (json_int_t)x.aborted, "list", x.list));
	else if (!dv_cli.quiet)
		printf("%zu multipart upload(s) under %s%s\n", x.n, repo, abort_all ? ", all aborted" : "");
out:
	json_decref(x.list);
	free(prefix);
	dv_s3_free(s3);
	return rc;
}
