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
/* Usage error: prints the message and a hint, returns DV_EXIT_USAGE. */
int dv_cli_usage(const char *cmd, const char *fmt, ...) DV_PRINTF(2, 3);

/*
 * Option parsing shared by every command: getopt_long over the command's
 * own options plus the global ones (--repo, --json, -q, -v, --progress),
 * which may appear anywhere. handle(opt, optarg, ctx) gets the command's
 * options; it returns 0 or an exit code ('h' asks it to print help and
 * return 0). On success *first_arg is the index of the first operand.
 * Returns 0, -1 after help was printed (the command exits 0), or an exit
 * code.
 */
typedef int (*dv_cli_opt_fn)(int opt, const char *arg, void *ctx);
/* The dv_cli_opt_fn of a command whose only own option is --help; ctx is
 * its help text. */
int dv_cli_help_opt(int opt, const char *arg, void *ctx);
int dv_cli_parse(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts,
		 dv_cli_opt_fn handle, void *ctx, int *first_arg);

/* true when the progress line should be drawn (stderr is a TTY, or
 * --progress=always, and not --quiet/--json). */
bool dv_cli_progress_enabled(void);
/* Redraws the single progress line on stderr (\r, clear to EOL). */
void dv_cli_progress_line(const char *fmt, ...) DV_PRINTF(1, 2);
void dv_cli_progress_done(void);
/* Prints j as one line of JSON on stdout and releases it. */
void dv_cli_print_json(json_t *j);
struct dv_repo;
/* dv_repo_open plus the global settings that apply to a repository
 * (--lock-wait). */
int dv_cli_open_repo(const char *location, struct dv_repo **out, struct dv_err *err);
/* Parses a duration "90", "90s", "15m", "2h", "7d" into seconds; -1 if bad. */
double dv_cli_parse_duration(const char *s);
/* The repository location, or a usage error when none was given. */
int dv_cli_need_repo(const char *cmd, const char **repo);
struct dv_stats;
/* A dv_progress_fn drawing "verb: done/total, MB/s, dedup, ratio, ETA";
 * ctx is the verb (a string). */
void dv_cli_progress_cb(const struct dv_stats *s, bool final, void *ctx);
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

#endif
