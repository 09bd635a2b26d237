#include <string.h>

#include <stdio.h>
#include "cli.h"
#include "repo/repo.h"

static const char help[] = "usage: diskvault --repo PATH list\n"
			   "Lists snapshots, oldest first: id, time, host, name, disks, logical size, new data.\n"
			   "A manifest that cannot be read is skipped and named on stderr; the exit code is then 3\n"
			   "(see 'diskvault repair --help').\n";

/* Total logical size of a manifest's disks. */
static uint64_t logical_size(const json_t *m)
{
	uint64_t sum = 0;
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(m, "disks"), i, d)
		sum += (uint64_t)json_integer_value(json_object_get(d, "size"));
	return sum;
}

int cmd_list(int argc, char **argv)
{
	int first, rc;
	if (!dv_cli_parse("list", help, argc, argv, NULL, &first, &rc))
		return rc;
	const char *repo_path;
	if ((rc = dv_cli_no_operands("list", argc, argv, first)) || (rc = dv_cli_need_repo("list", &repo_path)))
		return rc;
	struct dv_err err;
	struct dv_repo *repo = NULL;
	struct dv_snapshot_list l = {0};
	if (dv_cli_open_repo(repo_path, &repo, &err) < 0 || dv_snapshot_list_load_readable(repo, &l, &err) < 0) {
		rc = dv_cli_fail("list", &err);
		goto out;
	}
	if (dv_cli.json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < l.n; i++) {
			json_t *m = l.v[i].manifest;
			json_t *stats = json_object_get(m, "stats");
			json_array_append_new(
				arr, json_pack("{s:s, s:O, s:O, s:O, s:O, s:I, s:I, s:O}", "id", l.v[i].id, "time",
					       json_object_get(m, "time"), "host", json_object_get(m, "host"), "name",
					       json_object_get(m, "name"), "tags", json_object_get(m, "tags"), "disks",
					       (json_int_t)json_array_size(json_object_get(m, "disks")), "size",
					       (json_int_t)logical_size(m), "bytes_new_stored",
					       json_object_get(stats, "bytes_new_stored")));
		}
		json_t *j = json_pack("{s:s, s:b, s:o}", "command", "list", "ok", 1, "snapshots", arr);
		rc = dv_cli_report_unreadable("list", &l.unreadable, &l.unreadable_msg, j);
		json_object_set_new(j, "exit_code", json_integer(rc));
		dv_cli_print_json(j);
	} else {
		rc = dv_cli_report_unreadable("list", &l.unreadable, &l.unreadable_msg, NULL);
	}
	if (!dv_cli.json && !dv_cli.quiet) {
		printf("%-8s  %-20s  %-16s  %-16s  %5s  %12s  %12s\n", "ID", "TIME", "HOST", "NAME", "DISKS", "SIZE",
		       "NEW DATA");
		for (size_t i = 0; i < l.n; i++) {
			json_t *m = l.v[i].manifest;
			const char *name = json_string_value(json_object_get(m, "name"));
			json_t *stats = json_object_get(m, "stats");
			printf("%-8.8s  %-20s  %-16.16s  %-16.16s  %5zu  %12s  %12s\n", l.v[i].id,
			       json_string_value(json_object_get(m, "time")),
			       json_string_value(json_object_get(m, "host")), name ? name : "-",
			       json_array_size(json_object_get(m, "disks")), dv_cli_size(logical_size(m)),
			       dv_cli_size((uint64_t)json_integer_value(json_object_get(stats, "bytes_new_stored"))));
		}
		printf("%zu snapshot(s)\n", l.n);
	}
out:
	dv_snapshot_list_release(&l);
	dv_repo_free(repo);
	return rc;
}
