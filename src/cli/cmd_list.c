#include <string.h>

#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include "cli.h"
#include "cli/table.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault --repo PATH list [--host HOST]... [--tag TAG[,TAG...]]... [--latest N]\n"
	"Lists snapshots, oldest first: id, time, host, name, tags, source disks, logical size,\n"
	"new data. Nothing is cut: a column is as wide as its longest value. 'snapshots' is\n"
	"the same command.\n"
	"  --host HOST       only snapshots of this host (repeatable: any of them)\n"
	"  --tag TAG[,TAG]   only snapshots that have every tag of the list (repeatable: any\n"
	"                    of the lists, as in restic; '' matches snapshots without tags)\n"
	"  --latest N        only the N newest snapshots of each host and name\n"
	"--json gives the same snapshots and fields. A manifest that cannot be read is skipped\n"
	"and named on stderr; the exit code is then 3 (see 'diskvault repair --help').\n";

#define LIST_MAX 64

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

static bool has_tag(const json_t *m, const char *tag, size_t len)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(m, "tags"), i, t) {
		const char *s = json_string_value(t);
		if (s && strlen(s) == len && !memcmp(s, tag, len))
			return true;
	}
	return false;
}

/* restic's --tag: one value "a,b" needs both a and b; "" needs no tags. */
static bool has_tags(const json_t *m, const char *list)
{
	if (!*list)
		return json_array_size(json_object_get(m, "tags")) == 0;
	for (const char *p = list;;) {
		size_t len = strcspn(p, ",");
		if (len && !has_tag(m, p, len))
			return false;
		if (!p[len])
			return true;
		p += len + 1;
	}
}

static bool matches(const json_t *m, const char **hosts, size_t nh, const char **tags, size_t nt)
{
	const char *host = json_string_value(json_object_get(m, "host"));
	bool ok = !nh;
	for (size_t i = 0; i < nh && !ok; i++)
		ok = host && !strcmp(host, hosts[i]);
	if (!ok)
		return false;
	ok = !nt;
	for (size_t i = 0; i < nt && !ok; i++)
		ok = has_tags(m, tags[i]);
	return ok;
}

static const char *group_str(const json_t *m, const char *key)
{
	const char *s = json_string_value(json_object_get(m, key));
	return s ? s : "";
}

/* Orders by host, then name (no name first), then age: each host+name
 * group is one run, its newest snapshot last (l.v is oldest first). */
static const struct dv_snapshot_list *sort_list;
static int group_cmp(const json_t *mx, const json_t *my)
{
	int c = strcmp(group_str(mx, "host"), group_str(my, "host"));
	if (!c)
		c = json_is_string(json_object_get(mx, "name")) - json_is_string(json_object_get(my, "name"));
	return c ? c : strcmp(group_str(mx, "name"), group_str(my, "name"));
}
static int by_group(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = group_cmp(sort_list->v[x].manifest, sort_list->v[y].manifest);
	return c ? c : x < y ? -1 : x > y;
}

/* Clears keep[i] of all but the `latest` newest kept snapshots of each
 * host+name. */
static int keep_latest(const struct dv_snapshot_list *l, bool *keep, unsigned latest)
{
	size_t *ix = malloc((l->n ? l->n : 1) * sizeof *ix), n = 0;
	if (!ix)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++)
		if (keep[i])
			ix[n++] = i;
	sort_list = l;
	qsort(ix, n, sizeof *ix, by_group);
	for (size_t end = n; end > 0;) {
		size_t start = end - 1;
		while (start > 0 && !group_cmp(l->v[ix[start - 1]].manifest, l->v[ix[end - 1]].manifest))
			start--;
		for (size_t k = start; k < end; k++)
			keep[ix[k]] = end - k <= latest;
		end = start;
	}
	free(ix);
	return 0;
}

static int parse_latest(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (!*arg || *end || *arg == '-' || *arg == '+' || errno || v < 1 || v > 1000000000UL)
		return dv_cli_usage(cmd, "--latest '%s': expected a number of snapshots, 1 or more", arg);
	*(unsigned *)o->dest = (unsigned)v;
	return 0;
}

/* "a,b" of an array of strings; "-" when empty. Caller frees. */
static char *join(const json_t *arr, const char *key)
{
	size_t i, len = 0;
	json_t *x;
	json_array_foreach(arr, i, x) {
		const char *s = json_string_value(key ? json_object_get(x, key) : x);
		len += (s ? strlen(s) : 1) + 1;
	}
	char *out = malloc(len + 2);
	if (!out)
		return NULL;
	strcpy(out, len ? "" : "-");
	json_array_foreach(arr, i, x) {
		const char *s = json_string_value(key ? json_object_get(x, key) : x);
		if (i)
			strcat(out, ",");
		strcat(out, s ? s : "?");
	}
	return out;
}

static json_t *sources_json(const json_t *m)
{
	json_t *a = json_array();
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(m, "disks"), i, d)
		json_array_append(a, json_object_get(d, "source"));
	return a;
}

static int print_table(const struct dv_snapshot_list *l, const bool *keep, size_t shown)
{
	static const char *const heads[] = {"ID", "TIME", "HOST", "NAME", "TAGS", "SOURCE", "SIZE", "NEW DATA"};
	struct dv_table t;
	int r = 0;
	dv_table_init(&t, DV_ARRAY_SIZE(heads), heads, "llllllrr");
	for (size_t i = 0; i < l->n && !r; i++) {
		if (!keep[i])
			continue;
		json_t *m = l->v[i].manifest;
		char id[9];
		snprintf(id, sizeof id, "%.8s", l->v[i].id);
		char *tags = join(json_object_get(m, "tags"), NULL);
		char *src = join(json_object_get(m, "disks"), "source");
		const char *row[] = {id,
				     json_string_value(json_object_get(m, "time")),
				     json_string_value(json_object_get(m, "host")),
				     json_string_value(json_object_get(m, "name")),
				     tags,
				     src,
				     dv_cli_size(logical_size(m)),
				     dv_cli_size((uint64_t)json_integer_value(
					     json_object_get(json_object_get(m, "stats"), "bytes_new_stored")))};
		r = tags && src ? dv_table_add(&t, row) : -ENOMEM;
		free(tags);
		free(src);
	}
	if (!r) {
		dv_table_print(stdout, &t, NULL);
		printf("%zu snapshot(s)\n", shown);
	}
	dv_table_release(&t);
	return r;
}

int cmd_list(int argc, char **argv)
{
	const char *hosts[LIST_MAX], *tags[LIST_MAX];
	size_t nh = 0, nt = 0;
	unsigned latest = 0;
	const struct dv_cli_opt opts[] = {
		DV_OPT_LIST("host", hosts, &nh, LIST_MAX, "at most 64 --host options"),
		DV_OPT_LIST("tag", tags, &nt, LIST_MAX, "at most 64 --tag options"),
		DV_OPT_CALLBACK("latest", required_argument, parse_latest, &latest),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("list", help, argc, argv, opts, &first, &rc))
		return rc;
	const char *repo_path;
	if ((rc = dv_cli_no_operands("list", argc, argv, first)) || (rc = dv_cli_need_repo("list", &repo_path)))
		return rc;
	struct dv_err err;
	struct dv_repo *repo = NULL;
	struct dv_snapshot_list l = {0};
	bool *keep = NULL;
	if (dv_cli_open_repo(repo_path, &repo, &err) < 0 || dv_snapshot_list_load_readable(repo, &l, &err) < 0) {
		rc = dv_cli_fail("list", &err);
		goto out;
	}
	keep = calloc(l.n ? l.n : 1, sizeof *keep);
	for (size_t i = 0; keep && i < l.n; i++)
		keep[i] = matches(l.v[i].manifest, hosts, nh, tags, nt);
	if (!keep || (latest && keep_latest(&l, keep, latest) < 0)) {
		dv_error(&err, DV_E_NOMEM, "list: out of memory");
		rc = dv_cli_fail("list", &err);
		goto out;
	}
	size_t shown = 0;
	for (size_t i = 0; i < l.n; i++)
		shown += keep[i];
	if (dv_cli.json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < l.n; i++) {
			if (!keep[i])
				continue;
			json_t *m = l.v[i].manifest;
			json_t *stats = json_object_get(m, "stats");
			json_array_append_new(
				arr, json_pack("{s:s, s:O, s:O, s:O, s:O, s:I, s:o, s:I, s:O}", "id", l.v[i].id, "time",
					       json_object_get(m, "time"), "host", json_object_get(m, "host"), "name",
					       json_object_get(m, "name"), "tags", json_object_get(m, "tags"), "disks",
					       (json_int_t)json_array_size(json_object_get(m, "disks")), "sources",
					       sources_json(m), "size", (json_int_t)logical_size(m), "bytes_new_stored",
					       json_object_get(stats, "bytes_new_stored")));
		}
		json_t *j = json_pack("{s:s, s:b, s:o}", "command", "list", "ok", 1, "snapshots", arr);
		rc = dv_cli_report_unreadable("list", &l.unreadable, &l.unreadable_msg, j);
		json_object_set_new(j, "exit_code", json_integer(rc));
		dv_cli_print_json(j);
	} else {
		rc = dv_cli_report_unreadable("list", &l.unreadable, &l.unreadable_msg, NULL);
	}
	if (!dv_cli.json && !dv_cli.quiet && print_table(&l, keep, shown) < 0) {
		dv_error(&err, DV_E_NOMEM, "list: out of memory");
		rc = dv_cli_fail("list", &err);
	}
out:
	free(keep);
	dv_snapshot_list_release(&l);
	dv_repo_free(repo);
	return rc;
}
