#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include "cli.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault --repo PATH backup SOURCE... [--name NAME] [--tag TAG]... [--sha256] [--threads N]\n"
	"Images each SOURCE (a block device or an image file) into one new snapshot.\n"
	"  --name NAME     a name for the snapshot\n"
	"  --tag TAG       a tag (repeatable)\n"
	"  --all-blocks    read and store every block (bit-exact whole disk); default: only the\n"
	"                  blocks ext2/3/4 filesystems use, free space restored as zeros\n"
	"  --allow-mounted image a mounted or unclean filesystem anyway (read whole, with a warning)\n"
	"  --sha256        also record the plain SHA-256 of each disk as restore will write it\n"
	"  --host HOST     record HOST instead of this machine's hostname\n"
	"  --threads N     worker threads for hashing and compression (default: CPUs)\n";

struct opts {
	struct dv_backup_opts b;
	const char *tags[64];
};

static int opt(int o, const char *arg, void *ctx)
{
	struct opts *x = ctx;
	switch (o) {
	case 'h':
		fputs(help, stdout);
		return 0;
	case 'n':
		x->b.name = arg;
		return 0;
	case 't':
		if (x->b.ntags == DV_ARRAY_SIZE(x->tags))
			return dv_cli_usage("backup", "too many tags");
		x->tags[x->b.ntags++] = arg;
		return 0;
	case 's':
		x->b.sha256 = true;
		return 0;
	case 'A':
		x->b.all_blocks = true;
		return 0;
	case 'M':
		x->b.allow_mounted = true;
		return 0;
	case 'H':
		x->b.host = arg;
		return 0;
	case 'T': {
		char *end;
		long v = strtol(arg, &end, 10);
		if (*end || v < 1 || v > 256)
			return dv_cli_usage("backup", "--threads must be between 1 and 256");
		x->b.threads = (unsigned)v;
		return 0;
	}
	}
	return DV_EXIT_USAGE;
}

int cmd_backup(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"name", required_argument, NULL, 'n'},
		{"tag", required_argument, NULL, 't'},
		{"sha256", no_argument, NULL, 's'},
		{"all-blocks", no_argument, NULL, 'A'},
		{"allow-mounted", no_argument, NULL, 'M'},
		{"host", required_argument, NULL, 'H'},
		{"threads", required_argument, NULL, 'T'},
		{NULL, 0, NULL, 0},
	};
	struct opts x;
	memset(&x, 0, sizeof x);
	x.b.tags = x.tags;
	int first, rc = dv_cli_parse("backup", argc, argv, "", longopts, opt, &x, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first >= argc)
		return dv_cli_usage("backup", "no SOURCE given");
	const char *repo_path;
	if ((rc = dv_cli_need_repo("backup", &repo_path)))
		return rc;
	size_t nsrc = (size_t)(argc - first);
	struct dv_backup_source *src = dv_calloc(nsrc, sizeof *src);
	for (size_t i = 0; i < nsrc; i++)
		src[i].path = argv[first + (int)i];
	x.b.progress = dv_cli_progress_cb;
	x.b.progress_ctx = "backup";
	struct dv_err err;
	struct dv_repo *repo = NULL;
	struct dv_stats st;
	char id[DV_ID_HEX_LEN + 1];
	if (dv_cli_open_repo(repo_path, &repo, &err) < 0 || dv_backup(repo, src, nsrc, &x.b, id, &st, &err) < 0) {
		rc = dv_cli_fail("backup", &err);
		goto out;
	}
	dv_cli_progress_done();
	if (dv_cli.json) {
		json_t *j = dv_stats_json(&st);
		json_object_set_new(j, "command", json_string("backup"));
		json_object_set_new(j, "ok", json_true());
		json_object_set_new(j, "snapshot", json_string(id));
		dv_cli_print_json(j);
	} else if (!dv_cli.quiet) {
		printf("snapshot %.8s saved (%s): %zu disk(s), %s, %s read, %s new data stored (%s before compression), "
		       "%s deduplicated, %s zero, %s unused, %.1fs\n",
		       id, x.b.all_blocks ? "all blocks" : "used blocks", nsrc, dv_cli_size(st.bytes_total), dv_cli_size(st.bytes_read), dv_cli_size(st.bytes_new_stored),
		       dv_cli_size(st.bytes_new_raw), dv_cli_size(st.bytes_dedup), dv_cli_size(st.bytes_zero), dv_cli_size(st.bytes_unused), st.seconds);
	}
out:
	dv_repo_free(repo);
	free(src);
	return rc;
}
