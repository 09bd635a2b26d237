/* cmd_restore.c - restore and verify share their options and output. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdio.h>
#include "cli.h"
#include "repo/repo.h"

static const char restore_help[] =
	"usage: diskvault --repo PATH restore SNAPSHOT TARGET [--disk N | --volume NAME] [--force] [--threads N]\n"
	"Writes disk N (default 0) of SNAPSHOT ('latest' or an id prefix) to TARGET, an image\n"
	"file (created sparse) or a block device; TARGET '-' writes it to stdout in order (a\n"
	"pipe: '| ssh host dd of=/dev/sdb', '| zstd > disk.zst'), messages going to stderr.\n"
	"Every chunk is checked against its id and the disk index against the snapshot's\n"
	"digest, so a successful restore is bit-exact.\n"
	"  --disk N      which disk of a multi-disk snapshot (required with '-' when it has several)\n"
	"  --volume NAME one volume of the recorded layout instead of a disk: a partition (p2,\n"
	"                disk1-p2), an md RAID1 data area (p1-md) or an LVM LV (vg/lv)\n"
	"  --force       overwrite a non-empty file or a device that holds a partition table or filesystem\n"
	"  --threads N   readers (default: CPUs, at least 4 from S3; see docs/s3.md)\n";

static const char verify_help[] =
	"usage: diskvault --repo PATH verify SNAPSHOT [--threads N]\n"
	"Reads every chunk SNAPSHOT uses, decompresses it and checks it against its id.\n";

static int run(const char *cmd, int argc, char **argv)
{
	bool restore = !strcmp(cmd, "restore");
	struct dv_restore_opts ro;
	memset(&ro, 0, sizeof ro);
	ro.disk = UINT_MAX;
	ro.stream_fd = -1;
	/* verify takes only --threads, the last row before the end */
	const struct dv_cli_opt opts[] = {
		DV_OPT_UINT("disk", &ro.disk, 0, 1000, "--disk must be a disk number"),
		DV_OPT_FLAG("force", &ro.force),
		DV_OPT_STRING("volume", &ro.volume),
		DV_OPT_UINT("threads", &ro.threads, 1, 256, "--threads must be between 1 and 256"),
		DV_OPT_END,
	};
	int first, rc;
	const struct dv_cli_opt *own = restore ? opts : opts + DV_ARRAY_SIZE(opts) - 2;
	if (!dv_cli_parse(cmd, restore ? restore_help : verify_help, argc, argv, own, &first, &rc))
		return rc;
	int want = restore ? 2 : 1;
	if (argc - first != want)
		return dv_cli_usage(cmd, restore ? "give SNAPSHOT and TARGET" : "give exactly one SNAPSHOT");
	ro.disk_set = ro.disk != UINT_MAX;
	if (!ro.disk_set)
		ro.disk = 0;
	if (ro.disk_set && ro.volume)
		return dv_cli_usage(cmd, "give --disk or --volume, not both (a volume name says its disk: disk1-p2)");
	bool stream = restore && !strcmp(argv[first + 1], "-");
	if (stream) {
		if (isatty(STDOUT_FILENO))
			return dv_cli_usage(cmd, "refusing to write a disk image to a terminal: pipe or redirect stdout");
		ro.stream_fd = STDOUT_FILENO;
	}
	const char *repo_path;
	if ((rc = dv_cli_need_repo(cmd, &repo_path)))
		return rc;
	/* stdout carries the disk: everything else goes to stderr */
	FILE *msg = stream ? stderr : stdout;
	ro.progress = dv_cli_progress_cb;
	ro.progress_ctx = (void *)cmd;
	struct dv_err err;
	struct dv_repo *repo = NULL;
	struct dv_stats st;
	char id[DV_ID_HEX_LEN + 1];
	if (dv_cli_open_snapshot(repo_path, argv[first], &repo, id, NULL, &err) < 0 ||
	    (restore ? dv_restore(repo, id, argv[first + 1], &ro, &st, &err)
		     : dv_verify(repo, id, &ro, &st, &err)) < 0) {
		rc = dv_cli_fail(cmd, &err);
		goto out;
	}
	dv_cli_progress_done();
	/* What the restore guarantees depends on how the snapshot was taken. */
	json_t *m = NULL;
	const char *mode = "all-blocks";
	if (dv_snapshot_load(repo, id, &m, &err) == 0 && json_string_value(json_object_get(m, "mode")))
		mode = json_string_value(json_object_get(m, "mode"));
	const char *guarantee = !strcmp(mode, "used-blocks")
		? "every block the filesystems use is bit-exact; their free space reads as zeros"
		: "the whole disk is bit-exact";
	if (dv_cli.json) {
		json_t *j = dv_stats_json(&st);
		json_object_set_new(j, "command", json_string(cmd));
		json_object_set_new(j, "ok", json_true());
		json_object_set_new(j, "snapshot", json_string(id));
		if (restore) {
			json_object_set_new(j, "target", json_string(argv[first + 1]));
			json_object_set_new(j, "mode", json_string(mode));
			json_object_set_new(j, "guarantee", json_string(guarantee));
		}
		if (restore && ro.volume)
			json_object_set_new(j, "volume", json_string(ro.volume));
		else if (restore)
			json_object_set_new(j, "disk", json_integer(ro.disk));
		if (stream) {
			char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
			if (s)
				fprintf(stderr, "%s\n", s);
			free(s);
			json_decref(j);
		} else
			dv_cli_print_json(j);
	} else if (!dv_cli.quiet) {
		char what[200];
		if (ro.volume)
			snprintf(what, sizeof what, "volume %s", ro.volume);
		else
			snprintf(what, sizeof what, "disk %u", ro.disk);
		if (restore)
			fprintf(msg,
				"restored %s of snapshot %.8s to %s: %s (%s data written, %s zero/unused %s as "
				"zeros), every chunk and the disk digest verified, %.1fs\n%s snapshot: %s\n",
				what, id, stream ? "stdout" : argv[first + 1], dv_cli_size(st.bytes_total),
				dv_cli_size(st.bytes_data), dv_cli_size(st.bytes_zero + st.bytes_unused),
				stream ? "written" : "left", st.seconds, mode, guarantee);
		else
			printf("snapshot %.8s verified: %llu chunks (%s) read and checked, %.1fs\n", id,
			       (unsigned long long)st.chunks, dv_cli_size(st.bytes_data), st.seconds);
	}
	json_decref(m);
out:
	dv_repo_free(repo);
	return rc;
}

int cmd_restore(int argc, char **argv) { return run("restore", argc, argv); }
int cmd_verify(int argc, char **argv) { return run("verify", argc, argv); }
