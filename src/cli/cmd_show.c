#include <string.h>

#include <stdio.h>
#include "cli.h"
#include "layout_print.h"
#include "repo/repo.h"

static const char help[] = "usage: diskvault --repo PATH show SNAPSHOT\n"
			   "Shows a snapshot (an id prefix or 'latest'): disks, sizes, extents, stored and\n"
			   "deduplicated bytes, and each disk's layout (partitions with their type names,\n"
			   "filesystems, md arrays, LVM volume groups) in lines of at most 100 columns.\n"
			   "--json prints the whole manifest.\n";

static uint64_t u(const json_t *o, const char *k) { return (uint64_t)json_integer_value(json_object_get(o, k)); }

int cmd_show(int argc, char **argv)
{
	int first, rc;
	if (!dv_cli_parse("show", help, argc, argv, NULL, &first, &rc))
		return rc;
	if (argc - first != 1)
		return dv_cli_usage("show", "give exactly one SNAPSHOT");
	const char *repo_path;
	if ((rc = dv_cli_need_repo("show", &repo_path)))
		return rc;
	struct dv_err err;
	struct dv_repo *repo = NULL;
	json_t *m = NULL;
	char id[DV_ID_HEX_LEN + 1];
	if (dv_cli_open_snapshot(repo_path, argv[first], &repo, id, &m, &err) < 0) {
		rc = dv_cli_fail("show", &err);
		goto out;
	}
	if (dv_cli.json) {
		json_t *j = json_pack("{s:s, s:b, s:s, s:O}", "command", "show", "ok", 1, "id", id, "snapshot", m);
		dv_cli_print_json(j);
	} else if (!dv_cli.quiet) {
		const char *name = json_string_value(json_object_get(m, "name"));
		printf("snapshot %s\n  time   %s\n  host   %s\n  name   %s\n  mode   %s\n", id,
		       json_string_value(json_object_get(m, "time")), json_string_value(json_object_get(m, "host")),
		       name ? name : "-", json_string_value(json_object_get(m, "mode")));
		json_t *tags = json_object_get(m, "tags");
		if (json_array_size(tags)) {
			printf("  tags  ");
			for (size_t i = 0; i < json_array_size(tags); i++)
				printf(" %s", json_string_value(json_array_get(tags, i)));
			printf("\n");
		}
		size_t i;
		json_t *d;
		json_array_foreach(json_object_get(m, "disks"), i, d) {
			json_t *ex = json_object_get(d, "extents"), *by = json_object_get(d, "bytes");
			const char *sha = json_string_value(json_object_get(d, "sha256"));
			printf("disk %zu: %s\n  size         %s (%llu bytes, %d-byte sectors)\n", i,
			       json_string_value(json_object_get(d, "source")), dv_cli_size(u(d, "size")),
			       (unsigned long long)u(d, "size"), (int)u(d, "sector_size"));
			printf("  extents      %llu data, %llu zero, %llu unused, %llu unreadable\n",
			       (unsigned long long)u(ex, "data"), (unsigned long long)u(ex, "zero"),
			       (unsigned long long)u(ex, "unused"), (unsigned long long)u(ex, "unreadable"));
			printf("  bytes        %s data, %s zero, %s unused, %s unreadable\n", dv_cli_size(u(by, "data")),
			       dv_cli_size(u(by, "zero")), dv_cli_size(u(by, "unused")), dv_cli_size(u(by, "unreadable")));
			printf("  disk index   %.16s  digest %.16s\n", json_string_value(json_object_get(d, "index")),
			       json_string_value(json_object_get(d, "digest")));
			if (sha)
				printf("  sha256       %s\n", sha);
			size_t k;
			json_t *bad;
			json_array_foreach(json_object_get(d, "unreadable"), k, bad)
				printf("  unreadable   bytes %llu..%llu (%llu bytes, restored as zeros)\n",
				       (unsigned long long)u(bad, "offset"),
				       (unsigned long long)(u(bad, "offset") + u(bad, "length") - 1),
				       (unsigned long long)u(bad, "length"));
			json_t *layout = json_object_get(d, "layout");
			if (json_is_object(layout))
				dv_cli_print_layout(stdout, layout);
		}
		json_t *s = json_object_get(m, "stats");
		printf("stats: %s read, %s new stored (%s raw), %.1fs\n", dv_cli_size(u(s, "bytes_read")),
		       dv_cli_size(u(s, "bytes_new_stored")), dv_cli_size(u(s, "bytes_new_raw")),
		       json_number_value(json_object_get(s, "seconds")));
		printf("       %s deduplicated, %s zero, %s unused\n", dv_cli_size(u(s, "bytes_dedup")),
		       dv_cli_size(u(s, "bytes_zero")), dv_cli_size(u(s, "bytes_unused")));
	}
out:
	json_decref(m);
	dv_repo_free(repo);
	return rc;
}
