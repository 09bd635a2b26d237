/* output.c - option parsing, messages, progress and exit codes. */
#include <stdio.h>
#include "cli.h"

#include "repo/repo.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int dv_cli_exit_code(enum dv_code code)
{
	switch (code) {
	case DV_OK:
		return DV_EXIT_OK;
	case DV_E_USAGE:
		return DV_EXIT_USAGE;
	case DV_E_CORRUPT:
		return DV_EXIT_INTEGRITY;
	case DV_E_LOCKED:
		return DV_EXIT_LOCKED;
	case DV_E_REMOTE:
		return DV_EXIT_REMOTE;
	case DV_E_NOT_REPO:
		return DV_EXIT_NO_REPO;
	case DV_E_VERSION:
		return DV_EXIT_VERSION;
	case DV_E_TOO_SMALL:
	case DV_E_BUSY:
	case DV_E_EXISTS:
	case DV_E_CLOSED:
		return DV_EXIT_TARGET;
	case DV_E_NOSPACE:
		return DV_EXIT_NOSPACE;
	case DV_E_SOURCE:
		return DV_EXIT_SOURCE;
	case DV_E_INTERRUPTED:
		return DV_EXIT_INTERRUPTED;
	case DV_E_AUTH:
		return DV_EXIT_AUTH;
	default:
		return DV_EXIT_FAILURE;
	}
}

int dv_cli_fail(const char *cmd, const struct dv_err *err)
{
	dv_cli_progress_done();
	int code = dv_cli_exit_code(err->code);
	fprintf(stderr, "diskvault%s%s: %s\n", cmd ? " " : "", cmd ? cmd : "", err->msg[0] ? err->msg : "failed");
	if (dv_cli.json) {
		json_t *j = json_pack("{s:s, s:b, s:s, s:s, s:i}", "command", cmd ? cmd : "", "ok", 0, "error",
				      err->msg, "error_class", dv_code_name(err->code), "exit_code", code);
		dv_cli_print_json(j);
	}
	return code;
}

int dv_cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	char msg[1024];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "diskvault%s%s: %s\nTry 'diskvault %s%s--help'.\n", cmd ? " " : "", cmd ? cmd : "", msg,
		cmd ? cmd : "", cmd ? " " : "");
	if (dv_cli.json)
		dv_cli_print_json(json_pack("{s:s, s:b, s:s, s:s, s:i}", "command", cmd ? cmd : "", "ok", 0, "error", msg,
					    "error_class", dv_code_name(DV_E_USAGE), "exit_code", DV_EXIT_USAGE));
	return DV_EXIT_USAGE;
}

/* S3 settings given as options: each sets the environment variable the
 * S3 store reads (docs/s3.md), which outranks the AWS_* ones. */
static const struct {
	const char *name, *env;
} s3_options[] = {
	{"endpoint", "DISKVAULT_S3_ENDPOINT"},
	{"profile", "DISKVAULT_S3_PROFILE"},
	{"region", "DISKVAULT_S3_REGION"},
	{"connections", "DISKVAULT_S3_CONNECTIONS"},
	{"storage-class", "DISKVAULT_S3_STORAGE_CLASS"},
	{"sse", "DISKVAULT_S3_SSE"},
	{"sse-kms-key-id", "DISKVAULT_S3_SSE_KMS_KEY_ID"},
	{"limit-upload", "DISKVAULT_S3_LIMIT_UPLOAD"},
	{"limit-download", "DISKVAULT_S3_LIMIT_DOWNLOAD"},
};

bool dv_cli_s3_option(const char *name, const char *value)
{
	for (size_t i = 0; i < DV_ARRAY_SIZE(s3_options); i++)
		if (!strcmp(name, s3_options[i].name)) {
			setenv(s3_options[i].env, value, 1);
			return true;
		}
	return false;
}

int dv_cli_open_repo(const char *location, struct dv_repo **out, struct dv_err *err)
{
	int rc = dv_repo_open(location, out, err);
	if (rc == 0)
		dv_repo_set_lock_wait(*out, dv_cli.lock_wait);
	return rc;
}

int dv_cli_open_snapshot(const char *location, const char *spec, struct dv_repo **repo, char *id, json_t **manifest,
			 struct dv_err *err)
{
	int rc = dv_cli_open_repo(location, repo, err);
	if (rc == 0)
		rc = dv_snapshot_resolve(*repo, spec, id, err);
	if (rc == 0 && manifest)
		rc = dv_snapshot_load(*repo, id, manifest, err);
	return rc;
}

double dv_cli_parse_wait(const char *s)
{
	struct dv_duration d;
	return dv_parse_duration(s, DV_DUR_WAIT, &d) ? dv_duration_seconds(&d) : -1;
}

/* Checks and stores the value of one of the command's own options. */
static int own_option(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	char *end;
	switch (o->kind) {
	case DV_CLI_OPT_STRING:
		*(const char **)o->dest = arg;
		return 0;
	case DV_CLI_OPT_FLAG:
		*(bool *)o->dest = true;
		return 0;
	case DV_CLI_OPT_UINT: {
		long v = strtol(arg, &end, 10);
		if (!*arg || *end || v < o->lo || v > o->hi)
			return dv_cli_usage(cmd, "%s", o->msg);
		*(unsigned *)o->dest = (unsigned)v;
		return 0;
	}
	case DV_CLI_OPT_PERCENT: {
		double v = strtod(arg, &end);
		if (end == arg || *end || !(v >= (double)o->lo && v <= (double)o->hi))
			return dv_cli_usage(cmd, "%s", o->msg);
		*(double *)o->dest = v / 100;
		return 0;
	}
	case DV_CLI_OPT_LIST:
		if (*o->count >= (size_t)o->hi)
			return dv_cli_usage(cmd, "%s", o->msg);
		((const char **)o->dest)[(*o->count)++] = arg;
		return 0;
	case DV_CLI_OPT_CALLBACK:
		return o->fn(cmd, o, arg);
	}
	DV_BUG("option --%s: unknown kind %d", o->name, (int)o->kind);
}

enum { OPT_REPO = 0x1000, OPT_JSON, OPT_PROGRESS, OPT_LOCK_WAIT, OPT_CONFIG, OPT_PASSWORD_FILE, OPT_S3 = 0x1100,
       OPT_OWN = 0x1200 };

bool dv_cli_parse(const char *cmd, const char *help, int argc, char **argv, const struct dv_cli_opt *opts,
		  int *first_arg, int *rc_out)
{
	static const struct option globals[] = {
		{"repo", required_argument, NULL, OPT_REPO},
		{"json", no_argument, NULL, OPT_JSON},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"progress", required_argument, NULL, OPT_PROGRESS},
		{"lock-wait", required_argument, NULL, OPT_LOCK_WAIT},
		{"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"help", no_argument, NULL, 'h'},
	};
	size_t n = 0;
	while (opts && opts[n].name)
		n++;
	/* The command's own options come first: getopt_long takes the first
	 * match, so a command's --region is its own, not the S3 one. */
	size_t ns3 = DV_ARRAY_SIZE(s3_options);
	struct option *all = dv_calloc(n + DV_ARRAY_SIZE(globals) + ns3 + 1, sizeof *all);
	for (size_t i = 0; i < n; i++)
		all[i] = (struct option){opts[i].name, opts[i].has_arg, NULL, OPT_OWN + (int)i};
	memcpy(all + n, globals, sizeof globals);
	for (size_t i = 0; i < ns3; i++)
		all[n + DV_ARRAY_SIZE(globals) + i] =
			(struct option){s3_options[i].name, required_argument, NULL, OPT_S3 + (int)i};
	/* GNU getopt permutes argv, so options may follow operands
	 * ("backup IMG --json"); operands end up at optind..argc. */
	int rc = 0, opt;
	bool help_shown = false;
	optind = 1;
	opterr = 0;
	while (rc == 0 && !help_shown && (opt = getopt_long(argc, argv, ":qvh", all, NULL)) != -1) {
		switch (opt) {
		case OPT_REPO:
			dv_cli.repo = optarg;
			break;
		case OPT_JSON:
			dv_cli.json = true;
			break;
		case 'q':
			dv_cli.quiet = true;
			break;
		case 'v':
			dv_cli.verbose++;
			break;
		case OPT_PROGRESS:
			if (!strcmp(optarg, "auto"))
				dv_cli.progress = DV_PROGRESS_AUTO;
			else if (!strcmp(optarg, "always"))
				dv_cli.progress = DV_PROGRESS_ALWAYS;
			else if (!strcmp(optarg, "never"))
				dv_cli.progress = DV_PROGRESS_NEVER;
			else
				rc = dv_cli_usage(cmd, "--progress must be auto, always or never");
			break;
		case OPT_PASSWORD_FILE:
			dv_cli.password_file = optarg;
			break;
		case OPT_LOCK_WAIT:
			dv_cli.lock_wait = dv_cli_parse_wait(optarg);
			if (dv_cli.lock_wait < 0)
				rc = dv_cli_usage(cmd, DV_CLI_WAIT_MSG, optarg);
			break;
		case OPT_CONFIG:
			break; /* read before the command ran (dv_cli_config_load) */
		case 'h':
			fputs(help, stdout);
			help_shown = true;
			break;
		case '?':
			rc = dv_cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
			break;
		case ':':
			rc = dv_cli_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
			break;
		default:
			if (opt >= OPT_S3 && opt < OPT_S3 + (int)ns3)
				dv_cli_s3_option(s3_options[opt - OPT_S3].name, optarg);
			else if (opt >= OPT_OWN && opt < OPT_OWN + (int)n)
				rc = own_option(cmd, &opts[opt - OPT_OWN], optarg);
			else
				DV_BUG("getopt_long returned %d", opt);
		}
	}
	free(all);
	*first_arg = optind;
	/* -v: more detail; -vv: also the library's debug lines (retries,
	 * resumed uploads, clock correction) */
	dv_log_set_level(dv_cli.quiet ? DV_LOG_QUIET
			 : dv_cli.verbose >= 2 ? DV_LOG_DEBUG
			 : dv_cli.verbose ? DV_LOG_VERBOSE
					   : DV_LOG_NORMAL);
	*rc_out = rc;
	return rc == 0 && !help_shown;
}

int dv_cli_no_operands(const char *cmd, int argc, char **argv, int first)
{
	return first < argc ? dv_cli_usage(cmd, "unexpected argument '%s'", argv[first]) : 0;
}

bool dv_cli_progress_enabled(void)
{
	if (dv_cli.quiet || dv_cli.progress == DV_PROGRESS_NEVER)
		return false;
	if (dv_cli.progress == DV_PROGRESS_ALWAYS)
		return true;
	return isatty(STDERR_FILENO);
}

static bool progress_shown;

size_t dv_cli_term_width(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	const char *c = getenv("COLUMNS");
	long v = c ? strtol(c, NULL, 10) : 0;
	return v >= 20 && v <= 1000 ? (size_t)v : 80;
}

void dv_cli_progress_line(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* One column short of the width: a line filling the last column
	 * wraps on some terminals, and then every \r redraw adds a line. */
	size_t w = dv_cli_term_width() - 1;
	if (strlen(line) > w)
		line[w] = 0;
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
	progress_shown = true;
}

void dv_cli_progress_done(void)
{
	if (progress_shown) {
		fputc('\n', stderr);
		progress_shown = false;
	}
}

void dv_cli_print_json(json_t *j)
{
	if (!j)
		DV_BUG("building the JSON summary failed (format mismatch)");
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	if (s) {
		puts(s);
		free(s);
	}
	json_decref(j);
}

int dv_cli_report_unreadable(const char *cmd, const struct dv_strlist *ids, const struct dv_strlist *msgs,
			     json_t *json)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < ids->n; i++) {
		fprintf(stderr, "diskvault %s: skipped snapshot %s: %s\n", cmd, ids->v[i], msgs->v[i]);
		json_array_append_new(arr, json_pack("{s:s, s:s}", "id", ids->v[i], "error", msgs->v[i]));
	}
	if (ids->n)
		fprintf(stderr,
			"diskvault %s: %zu snapshot manifest(s) cannot be read; 'diskvault repair snapshots --dry-run' "
			"shows them and 'diskvault repair snapshots' removes them\n",
			cmd, ids->n);
	if (json)
		json_object_set_new(json, "unreadable", arr);
	else
		json_decref(arr);
	return ids->n ? DV_EXIT_PARTIAL : DV_EXIT_OK;
}

int dv_cli_need_repo(const char *cmd, const char **repo)
{
	if (!dv_cli.repo || !*dv_cli.repo)
		return dv_cli_usage(cmd, "no repository given: use --repo PATH or set DISKVAULT_REPO");
	*repo = dv_cli.repo;
	return 0;
}

const char *dv_cli_size(uint64_t bytes)
{
	static char bufs[8][32];
	static unsigned next;
	char *b = bufs[next++ % 8];
	dv_format_size(b, sizeof bufs[0], bytes);
	return b;
}

void dv_cli_progress_cb(const struct dv_stats *s, bool final, void *ctx)
{
	if (!dv_cli_progress_enabled())
		return;
	dv_cli_progress_frame((const char *)ctx, s, final, dv_cli_term_width() - 1);
	if (final)
		dv_cli_progress_done();
}

/* h:mm:ss (hours grow as needed) */
static void hms(char *out, size_t n, double sec)
{
	if (!(sec >= 0 && sec < 1e8)) {
		snprintf(out, n, "-:--:--");
		return;
	}
	unsigned long t = (unsigned long)(sec + 0.5);
	snprintf(out, n, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
}

void dv_cli_progress_frame(const char *verb, const struct dv_stats *s, bool final, size_t width)
{
	/* binary units throughout (GiB, MiB/s), as dv_cli_size prints sizes */
	double rate = s->seconds > 0 ? (double)s->bytes_done / s->seconds : 0;
	double pct = s->bytes_total ? 100.0 * (double)s->bytes_done / (double)s->bytes_total : final ? 100 : 0;
	char when[48], t[24];
	if (final) {
		hms(t, sizeof t, s->seconds);
		snprintf(when, sizeof when, "done in %s", t);
	} else {
		hms(t, sizeof t, rate > 0 ? (double)(s->bytes_total - s->bytes_done) / rate : -1);
		snprintf(when, sizeof when, "ETA %s", t);
	}
	char full[256], mid[192], small[128], tiny[64];
	snprintf(tiny, sizeof tiny, "%s: %.1f%%, %s", verb, pct, when);
	snprintf(small, sizeof small, "%s: %s / %s (%.1f%%), %s", verb, dv_cli_size(s->bytes_done),
		 dv_cli_size(s->bytes_total), pct, when);
	snprintf(mid, sizeof mid, "%s: %s / %s (%.1f%%), %.1f MiB/s, %s", verb, dv_cli_size(s->bytes_done),
		 dv_cli_size(s->bytes_total), pct, rate / 1048576, when);
	snprintf(full, sizeof full, "%s", mid);
	if (s->bytes_new_raw || s->bytes_dedup)
		snprintf(full, sizeof full, "%s: %s / %s (%.1f%%), %.1f MiB/s, dedup %s, compression %.2fx, %s", verb,
			 dv_cli_size(s->bytes_done), dv_cli_size(s->bytes_total), pct, rate / 1048576,
			 dv_cli_size(s->bytes_dedup),
			 s->bytes_new_stored ? (double)s->bytes_new_raw / (double)s->bytes_new_stored : 1.0, when);
	/* the most that fits; dv_cli_progress_line cuts what still does not */
	const char *pick = strlen(full) <= width ? full : strlen(mid) <= width ? mid
						 : strlen(small) <= width ? small : tiny;
	dv_cli_progress_line("%s", pick);
}
