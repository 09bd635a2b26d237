#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"
#include "disk/inventory.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault --repo PATH backup SOURCE... [--name NAME] [--tag TAG]... [--sha256] [--threads N]\n"
	"Images each SOURCE (a block device or an image file) into one new snapshot.\n"
	"Without SOURCE, the config file's [backup] sources; options left out come from [backup].\n"
	"  --name NAME     a name for the snapshot\n"
	"  --tag TAG       a tag (repeatable)\n"
	"  --all-blocks    read and store every block (bit-exact whole disk); default: only the\n"
	"                  blocks ext2/3/4 and FAT filesystems use, free space restored as zeros\n"
	"  --allow-mounted image a mounted or unclean filesystem anyway (read whole, with a warning)\n"
	"  --skip-bad-sectors  record sectors that cannot be read as unreadable (restored as zeros)\n"
	"                  instead of failing; the backup then exits with 3 (partial)\n"
	"  --sha256        also record the plain SHA-256 of each disk as restore will write it\n"
	"  --host HOST     record HOST instead of this machine's hostname\n"
	"  --time TIME     record TIME (2026-11-25T03:00:00Z) instead of now\n"
	"  --threads N     worker threads for hashing and compression (default: CPUs)\n"
	"  --inventory FILE  attach a machine inventory saved earlier ('diskvault inventory --append');\n"
	"                  without it, a backup of block devices samples this machine for 1 s\n"
	"  --no-inventory  attach none\n";

/* --time TIME */
static int time_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	int64_t *t = o->dest;
	if (dv_parse_time(arg, t) < 0 || *t <= 0)
		return dv_cli_usage(cmd, "--time needs a UTC time such as 2026-11-25T03:00:00Z");
	return 0;
}

int cmd_backup(int argc, char **argv)
{
	struct {
		struct dv_backup_opts b;
		const char *tags[64];
		const char *inventory;
		bool no_inventory;
	} x;
	memset(&x, 0, sizeof x);
	x.b.tags = x.tags;
	const struct dv_cli_opt opts[] = {
		DV_OPT_STRING("name", &x.b.name),
		DV_OPT_LIST("tag", x.tags, &x.b.ntags, DV_ARRAY_SIZE(x.tags), "too many tags"),
		DV_OPT_FLAG("sha256", &x.b.sha256),
		DV_OPT_FLAG("all-blocks", &x.b.all_blocks),
		DV_OPT_FLAG("allow-mounted", &x.b.allow_mounted),
		DV_OPT_FLAG("skip-bad-sectors", &x.b.skip_bad_sectors),
		DV_OPT_STRING("host", &x.b.host),
		DV_OPT_CALLBACK("time", required_argument, time_opt, &x.b.time),
		DV_OPT_STRING("inventory", &x.inventory),
		DV_OPT_FLAG("no-inventory", &x.no_inventory),
		DV_OPT_UINT("threads", &x.b.threads, 1, 256, "--threads must be between 1 and 256"),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("backup", help, argc, argv, opts, &first, &rc))
		return rc;
	size_t ncfg = 0;
	const char *const *cfg_src = dv_config_get_list("backup", "sources", &ncfg);
	if (first >= argc && ncfg == 0)
		return dv_cli_usage("backup", "no SOURCE given (nor [backup] sources in a config file)");
	dv_cli_config_backup(&x.b, x.tags, DV_ARRAY_SIZE(x.tags));
	const char *repo_path;
	if ((rc = dv_cli_need_repo("backup", &repo_path)))
		return rc;
	size_t nsrc = first < argc ? (size_t)(argc - first) : ncfg;
	struct dv_backup_source *src = dv_calloc(nsrc, sizeof *src);
	for (size_t i = 0; i < nsrc; i++)
		src[i].path = first < argc ? argv[first + (int)i] : cfg_src[i];
	/* The inventory: a saved one, or this machine's when it images its own
	 * block devices (an image file may come from anywhere). */
	struct dv_err err;
	json_t *inv = NULL;
	if (x.inventory && !x.no_inventory) {
		json_error_t je;
		inv = json_load_file(x.inventory, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(inv)) {
			json_decref(inv);
			free(src);
			dv_error(&err, DV_E_USAGE, "inventory %s: not a JSON object: %s", x.inventory, je.text);
			return dv_cli_fail("backup", &err);
		}
	} else if (!x.no_inventory) {
		bool devices = false;
		struct stat st;
		for (size_t i = 0; i < nsrc; i++)
			if (stat(src[i].path, &st) == 0 && S_ISBLK(st.st_mode))
				devices = true;
		if (devices && dv_inventory_collect(NULL, 1.0, &inv, &err) < 0) {
			fprintf(stderr, "diskvault backup: warning: no inventory attached: %s\n", err.msg);
			inv = NULL;
		}
	}
	x.b.inventory = inv;
	x.b.progress = dv_cli_progress_cb;
	x.b.progress_ctx = "backup";
	struct dv_repo *repo = NULL;
	struct dv_stats st;
	char id[DV_ID_HEX_LEN + 1];
	if (dv_cli_open_repo(repo_path, &repo, &err) < 0 || dv_backup(repo, src, nsrc, &x.b, id, &st, &err) < 0) {
		rc = dv_cli_fail("backup", &err);
		goto out;
	}
	dv_cli_progress_done();
	if (st.bytes_unreadable) {
		/* Complete but not whole: visible to cron and monitoring. */
		rc = DV_EXIT_PARTIAL;
		fprintf(stderr, "diskvault backup: warning: %llu bytes could not be read and were recorded as unreadable "
			"(see 'diskvault show %.8s')\n", (unsigned long long)st.bytes_unreadable, id);
	}
	if (dv_cli.json) {
		json_t *j = dv_stats_json(&st);
		json_object_set_new(j, "command", json_string("backup"));
		json_object_set_new(j, "ok", json_true());
		json_object_set_new(j, "snapshot", json_string(id));
		json_object_set_new(j, "mode", json_string(x.b.all_blocks ? "all-blocks" : "used-blocks"));
		dv_cli_print_json(j);
	} else if (!dv_cli.quiet) {
		printf("snapshot %.8s saved (%s): %zu disk(s), %s, %s read, %s new data stored (%s before compression), "
		       "%s deduplicated, %s zero, %s unused, %.1fs\n",
		       id, x.b.all_blocks ? "all blocks" : "used blocks", nsrc, dv_cli_size(st.bytes_total), dv_cli_size(st.bytes_read), dv_cli_size(st.bytes_new_stored),
		       dv_cli_size(st.bytes_new_raw), dv_cli_size(st.bytes_dedup), dv_cli_size(st.bytes_zero), dv_cli_size(st.bytes_unused), st.seconds);
	}
out:
	json_decref(inv);
	dv_repo_free(repo);
	free(src);
	return rc;
}
