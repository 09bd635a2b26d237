/*
 * cli.h - what the subcommands share: global options, output helpers,
 * exit codes (docs/exit-codes.md). Commands parse their own options, call
 * the library, and format the result; algorithms stay in the library.
 */
#ifndef DV_CLI_H
#define DV_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>

#include "util/util.h"

enum dv_progress_mode { DV_PROGRESS_AUTO, DV_PROGRESS_ALWAYS, DV_PROGRESS_NEVER };

struct dv_cli_globals {
	const char *repo;     /* --repo or DISKVAULT_REPO */
	bool json;            /* --json: machine-readable summary on stdout */
	bool quiet;           /* -q: no summary, errors only */
	int verbose;          /* -v count */
	enum dv_progress_mode progress;
	double lock_wait;     /* --lock-wait: seconds to wait for a lock */
	const char *password_file;     /* --password-file */
	const char *new_password_file; /* key add/passwd: --new-password-file */
	bool adding_key;               /* the next new-key passphrase is a second one */
};
extern struct dv_cli_globals dv_cli;

/* Exit codes: see docs/exit-codes.md. */
enum dv_exit {
	DV_EXIT_OK = 0,
	DV_EXIT_FAILURE = 1,
	DV_EXIT_USAGE = 2,
	DV_EXIT_PARTIAL = 3,
	DV_EXIT_INTEGRITY = 4,
	DV_EXIT_LOCKED = 5,
	DV_EXIT_REMOTE = 6,
	DV_EXIT_NO_REPO = 10,
	DV_EXIT_AUTH = 12,
	DV_EXIT_VERSION = 11,
	DV_EXIT_TARGET = 13,
	DV_EXIT_NOSPACE = 14,
	DV_EXIT_SOURCE = 15,
	DV_EXIT_INTERRUPTED = 130,
};

/* Maps a library error code to the exit code. */
int dv_cli_exit_code(enum dv_code code);
/* Prints "diskvault: <message>" on stderr (and, with --json, an error
 * object on stdout) and returns the exit code for err. */
int dv_cli_fail(const char *cmd, const struct dv_err *err);
/* Usage error: prints the message and a hint on stderr (and, with --json,
 * the error object of dv_cli_fail on stdout), returns DV_EXIT_USAGE. */
int dv_cli_usage(const char *cmd, const char *fmt, ...) DV_PRINTF(2, 3);

/*
 * A command's own options, as a table in the manner of git's
 * parse-options: one row each, ended by DV_OPT_END. A row names the long
 * option and where its value goes; the kind fixes the type of dest (the
 * macros check it) and how the value is checked:
 *   DV_OPT_STRING(name, const char **)   the value, borrowed from argv
 *   DV_OPT_FLAG(name, bool *)            true; the option takes no value
 *   DV_OPT_UINT(name, unsigned *, lo, hi, msg)
 *                                        a decimal integer in [lo, hi]
 *   DV_OPT_PERCENT(name, double *, lo, hi, msg)
 *                                        a number in [lo, hi], stored / 100
 *   DV_OPT_LIST(name, const char **, size_t *count, cap, msg)
 *                                        appended to an array of cap entries
 *   DV_OPT_CALLBACK(name, has_arg, fn, dest)
 *                                        fn checks and stores the value
 * A value that fails its check is a usage error with the message msg
 * (e.g. "--disk must be a disk number").
 */
enum dv_cli_opt_kind {
	DV_CLI_OPT_STRING,
	DV_CLI_OPT_FLAG,
	DV_CLI_OPT_UINT,
	DV_CLI_OPT_PERCENT,
	DV_CLI_OPT_LIST,
	DV_CLI_OPT_CALLBACK,
};
struct dv_cli_opt;
/* Checks and stores arg (NULL for an optional value left out) into o->dest;
 * returns 0 or the exit code of a usage error (dv_cli_usage). */
typedef int (*dv_cli_opt_fn)(const char *cmd, const struct dv_cli_opt *o, const char *arg);
struct dv_cli_opt {
	const char *name;            /* long name without the dashes; NULL ends the table */
	enum dv_cli_opt_kind kind;
	int has_arg;                 /* no_argument, required_argument, optional_argument */
	void *dest;                  /* borrowed */
	size_t *count;               /* DV_CLI_OPT_LIST: entries in dest so far */
	long lo, hi;                 /* bounds; DV_CLI_OPT_LIST: hi is the capacity */
	const char *msg;             /* usage error when the value fails the check */
	dv_cli_opt_fn fn;            /* DV_CLI_OPT_CALLBACK */
};
/* `1 ? p : (T *)NULL` does not compile (-Werror) when p is not a T *. */
#define DV_OPT_STRING(n, p) {(n), DV_CLI_OPT_STRING, required_argument, 1 ? (p) : (const char **)NULL, NULL, 0, 0, NULL, NULL}
#define DV_OPT_FLAG(n, p) {(n), DV_CLI_OPT_FLAG, no_argument, 1 ? (p) : (bool *)NULL, NULL, 0, 0, NULL, NULL}
#define DV_OPT_UINT(n, p, lo, hi, msg) {(n), DV_CLI_OPT_UINT, required_argument, 1 ? (p) : (unsigned *)NULL, NULL, (lo), (hi), (msg), NULL}
#define DV_OPT_PERCENT(n, p, lo, hi, msg) {(n), DV_CLI_OPT_PERCENT, required_argument, 1 ? (p) : (double *)NULL, NULL, (lo), (hi), (msg), NULL}
#define DV_OPT_LIST(n, p, cnt, cap, msg) {(n), DV_CLI_OPT_LIST, required_argument, 1 ? (p) : (const char **)NULL, 1 ? (cnt) : (size_t *)NULL, 0, (long)(cap), (msg), NULL}
#define DV_OPT_CALLBACK(n, has, f, p) {(n), DV_CLI_OPT_CALLBACK, (has), (p), NULL, 0, 0, NULL, (f)}
#define DV_OPT_END {NULL, DV_CLI_OPT_STRING, 0, NULL, NULL, 0, 0, NULL, NULL}

/*
 * Option parsing shared by every command: getopt_long over the command's
 * own options (opts, may be NULL) plus the global ones (--repo, --json, -q,
 * -v, --progress, ...), which may appear anywhere; --help prints help.
 * Returns true to go on, with *first_arg the index of the first operand;
 * false when the command is to return *rc at once (0 after --help, or the
 * exit code of a usage error).
 */
bool dv_cli_parse(const char *cmd, const char *help, int argc, char **argv, const struct dv_cli_opt *opts,
		  int *first_arg, int *rc) DV_WUR;
/* Usage error "unexpected argument" when there are operands from first on;
 * else 0. */
int dv_cli_no_operands(const char *cmd, int argc, char **argv, int first);

/* true when the progress line should be drawn (stderr is a TTY, or
 * --progress=always, and not --quiet/--json). */
bool dv_cli_progress_enabled(void);
/* The terminal's width in columns (TIOCGWINSZ on stderr, else $COLUMNS,
 * else 80). */
size_t dv_cli_term_width(void);
/* Redraws the single progress line on stderr (\r, clear to EOL), cut to
 * one column less than the terminal's width so that it never wraps. */
void dv_cli_progress_line(const char *fmt, ...) DV_PRINTF(1, 2);
void dv_cli_progress_done(void);
/* Prints j as one line of JSON on stdout and releases it. */
void dv_cli_print_json(json_t *j);
struct dv_repo;
/* dv_repo_open plus the global settings that apply to a repository
 * (--lock-wait). */
int dv_cli_open_repo(const char *location, struct dv_repo **out, struct dv_err *err);
/* Opens the repository at location (dv_cli_open_repo) and resolves the
 * snapshot spec ('latest' or an id prefix) into id (DV_ID_HEX_LEN + 1
 * bytes); with manifest non-NULL also loads the snapshot's manifest (caller
 * frees with json_decref). On failure *repo may be set still: the caller
 * frees it with dv_repo_free either way. */
int dv_cli_open_snapshot(const char *location, const char *spec, struct dv_repo **repo, char *id, json_t **manifest,
			 struct dv_err *err);
/* Parses a --lock-wait duration (dv_parse_duration, DV_DUR_WAIT: "90",
 * "90s", "15m" = minutes, "1h30m", "2d") into seconds; -1 if bad. */
double dv_cli_parse_wait(const char *s);
#define DV_CLI_WAIT_MSG "--lock-wait '%s': expected a duration such as 90s, 15m (minutes), 2h or 1h30m"
/* Names each damaged manifest a command skipped on stderr ("diskvault CMD:
 * skipped snapshot ID: message") with what to run, and returns
 * DV_EXIT_PARTIAL, or DV_EXIT_OK when there are none. With --json,
 * *json (if non-NULL) gets an array "unreadable" of {id, error}. */
struct dv_strlist;
int dv_cli_report_unreadable(const char *cmd, const struct dv_strlist *ids, const struct dv_strlist *msgs,
			     json_t *json);
/* The repository location, or a usage error when none was given. */
int dv_cli_need_repo(const char *cmd, const char **repo);
struct dv_stats;
/* A dv_progress_fn drawing "verb: done / total (pct), MiB/s, dedup, ratio,
 * ETA h:mm:ss"; the final call draws the completed frame ("done in
 * h:mm:ss") and ends the line. ctx is the verb (a string). */
void dv_cli_progress_cb(const struct dv_stats *s, bool final, void *ctx);
/* Draws one frame of dv_cli_progress_cb, the longest variant of at most
 * width columns (dropping dedup and ratio, then the rate, then sizes). */
void dv_cli_progress_frame(const char *verb, const struct dv_stats *s, bool final, size_t width);
/* Human size "1.23 GiB" (rotating static buffers: up to 8 per statement). */
const char *dv_cli_size(uint64_t bytes);
/* Applies an S3 option (--endpoint, --profile, --region, --connections,
 * --storage-class, --sse, --sse-kms-key-id, --limit-upload,
 * --limit-download) given without its dashes; false if name is none. */
bool dv_cli_s3_option(const char *name, const char *value);
/* The dv_passphrase_fn of the CLI (password.c). */
int dv_cli_passphrase(const char *location, bool new_key, char *buf, size_t cap, struct dv_err *err);
/* Set by SIGINT/SIGTERM. */
extern volatile int dv_cli_interrupted;

/* Subcommands. */
int cmd_init(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_inventory(int argc, char **argv);
int cmd_forget(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_unlock(int argc, char **argv);
int cmd_rebuild_index(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_s3(int argc, char **argv);
int cmd_copy(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_ebs_import(int argc, char **argv);
int cmd_rightsize(int argc, char **argv);
int cmd_catalog(int argc, char **argv);
int cmd_launch(int argc, char **argv);
int cmd_cleanup(int argc, char **argv);
int cmd_repair(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_extract(int argc, char **argv);

#endif
