/*
 * cmd_inventory.c - `diskvault inventory [--sample SECONDS] [--append FILE]`:
 * prints the running machine's inventory, or folds it into an accumulated
 * inventory file (peaks and percentiles of measured use) for right-sizing.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli.h"
#include "disk/inventory.h"

static const char help[] =
	"usage: diskvault inventory [--sample SECONDS] [--append FILE] [--json]\n"
	"Records what this machine is: CPU, memory and their measured use, OS, kernel, boot\n"
	"mode, network interfaces, disks, and whether the kernel has the nvme and ena\n"
	"drivers an EC2 Nitro instance needs.\n"
	"  --sample SECONDS  measure CPU busy time over this window (default 1, 0 = none)\n"
	"  --append FILE     fold this sample into FILE (created if missing), keeping the\n"
	"                    peak and p50/p95/p99 of CPU busy, memory in use and load; for a\n"
	"                    cron entry such as: diskvault inventory -q --sample 60 --append F\n"
	"                    (FILE.lock serialises concurrent runs)\n";

/* --sample SECONDS */
static int sample_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	char *end;
	double v = strtod(arg, &end);
	if (*end || end == arg || !(v >= 0 && v <= 86400))
		return dv_cli_usage(cmd, "--sample must be between 0 and 86400 seconds");
	*(double *)o->dest = v;
	return 0;
}

/* Reads FILE (missing or empty: *acc = NULL), folds sample in, writes it
 * back atomically (temp file, fsync, rename), all under FILE.lock. */
static int append_to(const char *file, const json_t *sample, json_t **acc_out, struct dv_err *err)
{
	*acc_out = NULL;
	char *lockname = dv_asprintf("%s.lock", file);
	json_t *acc = NULL, *next = NULL;
	struct dv_buf b = DV_BUF_INIT;
	int r = 0;
	int lfd = open(lockname, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0) {
		r = dv_error_errno(err, errno, "inventory %s", lockname);
		goto out;
	}
	while (flock(lfd, LOCK_EX) < 0 && errno == EINTR)
		;
	struct dv_err e2;
	if (dv_read_file(file, 256u << 20, &b, &e2) == 0 && b.len > 0) {
		json_error_t je;
		acc = json_loadb((const char *)b.data, b.len, 0, &je);
		if (!acc) {
			r = dv_error(err, DV_E_CORRUPT, "inventory %s: not JSON (line %d: %s)", file, je.line, je.text);
			goto out;
		}
	} /* missing or empty: a new accumulation */
	if ((r = dv_inventory_append(acc, sample, &next, err)) < 0) {
		dv_error_prefix(err, "%s: ", file);
		goto out;
	}
	char *text = json_dumps(next, JSON_COMPACT);
	char *line = dv_asprintf("%s\n", text);
	free(text);
	r = dv_write_file_atomic(file, line, strlen(line), 0644, err);
	free(line);
	if (r < 0)
		dv_error_prefix(err, "inventory: ");
	else {
		*acc_out = next;
		next = NULL;
	}
out:
	if (lfd >= 0)
		close(lfd);
	json_decref(acc);
	json_decref(next);
	dv_buf_release(&b);
	free(lockname);
	return r;
}

static const char *s_or(const json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : dflt;
}

static void print_human(const json_t *inv)
{
	const json_t *os = json_object_get(inv, "os"), *cpu = json_object_get(inv, "cpu"),
		     *mem = json_object_get(inv, "memory"), *load = json_object_get(inv, "load");
	char a[32], b[32];
	printf("host       %s (%s, Linux %s, %s)\n", s_or(inv, "hostname", "-"), s_or(inv, "architecture", "-"),
	       s_or(inv, "kernel", "-"), s_or(os, "pretty_name", "-"));
	printf("boot mode  %s\n", s_or(inv, "boot_mode", "-"));
	printf("cpu        %s: %lld socket(s), %lld core(s), %lld logical", s_or(cpu, "model", "-"),
	       (long long)json_integer_value(json_object_get(cpu, "sockets")),
	       (long long)json_integer_value(json_object_get(cpu, "cores")),
	       (long long)json_integer_value(json_object_get(cpu, "logical")));
	if (json_is_number(json_object_get(cpu, "busy")))
		printf("; %.1f%% busy over %.1fs", 100 * json_number_value(json_object_get(cpu, "busy")),
		       json_number_value(json_object_get(cpu, "sample_seconds")));
	printf("\n");
	dv_format_size(a, sizeof a, (uint64_t)json_integer_value(json_object_get(mem, "total")));
	dv_format_size(b, sizeof b, (uint64_t)json_integer_value(json_object_get(mem, "used")));
	printf("memory     %s total, %s in use\n", a, b);
	if (json_array_size(load) == 3)
		printf("load       %.2f %.2f %.2f\n", json_number_value(json_array_get(load, 0)),
		       json_number_value(json_array_get(load, 1)), json_number_value(json_array_get(load, 2)));
	size_t i;
	const json_t *d;
	json_array_foreach(json_object_get(inv, "disks"), i, d) {
		dv_format_size(a, sizeof a, (uint64_t)json_integer_value(json_object_get(d, "size")));
		printf("%-10s %s %s (%s)\n", i ? "" : "disks", s_or(d, "name", "-"), a, s_or(d, "model", "-"));
	}
	json_array_foreach(json_object_get(inv, "network"), i, d) {
		printf("%-10s %s %s", i ? "" : "network", s_or(d, "name", "-"), s_or(d, "mac", "-"));
		size_t k;
		const json_t *ad;
		json_array_foreach(json_object_get(d, "addresses"), k, ad) printf(" %s", json_string_value(ad));
		printf("\n");
	}
	const json_t *n = json_object_get(inv, "nitro_drivers");
	const char *names[] = {"nvme", "ena"};
	printf("nitro     ");
	/* "unknown" when /lib/modules/<release> is not there (containers). */
	for (size_t k = 0; k < 2; k++) {
		const json_t *x = json_object_get(n, names[k]);
		const char *st = json_is_true(json_object_get(x, "builtin"))  ? "built in"
				 : json_is_true(json_object_get(x, "module")) ? "module"
				 : json_is_true(json_object_get(x, "loaded")) ? "loaded"
				 : json_is_null(json_object_get(x, "builtin")) &&
						 json_is_null(json_object_get(x, "module"))
					 ? "unknown (no module lists)"
					 : "missing";
		printf(" %s: %s%s", names[k], st, k ? "\n" : ";");
	}
}

int cmd_inventory(int argc, char **argv)
{
	struct {
		double sample;
		const char *append;
	} x = {1.0, NULL};
	const struct dv_cli_opt opts[] = {
		DV_OPT_CALLBACK("sample", required_argument, sample_opt, &x.sample),
		DV_OPT_STRING("append", &x.append),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("inventory", help, argc, argv, opts, &first, &rc))
		return rc;
	if ((rc = dv_cli_no_operands("inventory", argc, argv, first)))
		return rc;
	struct dv_err err;
	json_t *inv = NULL, *acc = NULL;
	if (dv_inventory_collect(NULL, x.sample, &inv, &err) < 0)
		return dv_cli_fail("inventory", &err);
	if (x.append && append_to(x.append, inv, &acc, &err) < 0) {
		json_decref(inv);
		return dv_cli_fail("inventory", &err);
	}
	if (dv_cli.json) {
		json_t *j = json_pack("{s:s, s:b, s:O}", "command", "inventory", "ok", 1, "inventory", inv);
		if (acc)
			json_object_set_new(j, "accumulated",
					    json_pack("{s:s, s:O, s:O, s:O, s:O}", "file", x.append, "samples",
						      json_object_get(acc, "samples"), "cpu_busy",
						      json_object_get(acc, "cpu_busy"), "memory_used",
						      json_object_get(acc, "memory_used"), "load1",
						      json_object_get(acc, "load1")));
		dv_cli_print_json(j);
	} else if (!dv_cli.quiet) {
		print_human(inv);
		if (acc) {
			const json_t *cb = json_object_get(json_object_get(acc, "cpu_busy"), "peak");
			char m[32];
			dv_format_size(m, sizeof m,
				       (uint64_t)json_number_value(json_object_get(json_object_get(acc, "memory_used"), "peak")));
			printf("appended to %s: %lld samples, peak CPU busy %.1f%%, peak memory in use %s\n", x.append,
			       (long long)json_integer_value(json_object_get(acc, "samples")),
			       json_is_number(cb) ? 100 * json_number_value(cb) : 0.0, m);
		}
	}
	json_decref(acc);
	json_decref(inv);
	return 0;
}
