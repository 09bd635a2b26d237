/*
 * config.h - the diskvault configuration file (docs/configuration.md).
 *
 * A config file is plain text: `[section]` headers and `key = value` lines,
 * `#` or `;` comments. Only the keys in the table of config.c exist; an
 * unknown section or key, a malformed line, a bad value or a key that would
 * hold a secret inline (password, secret, token, ...) is an error that
 * names file:line. Secrets are referenced by *file path* only
 * (repository.password_file, s3.credentials_file); a config that names such
 * a file must not be readable by group or others, and the secret file
 * itself must be mode 0600 or 0400.
 *
 * Which file: --config FILE, else $DISKVAULT_CONFIG, else
 * $XDG_CONFIG_HOME/diskvault/config (~/.config/diskvault/config), else
 * /etc/diskvault/diskvault.conf; the first that is given or exists is the
 * only one read. /dev/null stands for "no config file".
 *
 * Precedence of a setting: built-in default < config file < environment
 * (DISKVAULT_REPO, AWS_REGION, ...: the variable each key names) < the
 * command's flags. dv_config_get() resolves the first three; each command
 * applies its own flags on top.
 *
 * Keys other commands read (values are the normalised text; NULL = unset):
 *   repository.path            repository location (--repo, DISKVAULT_REPO)
 *   repository.password_file   path of the repository password (secret file)
 *   repository.password_command  command printing the password (first line)
 *   repository.lock_wait       duration (90s, 15m = minutes, 2h, 1d) as --lock-wait
 *   backup.sources             SOURCE list (dv_config_get_list)
 *   backup.name, backup.host   strings; backup.tags a list
 *   backup.all_blocks, backup.allow_mounted, backup.sha256  "true"/"false"
 *   backup.threads             decimal 1..256
 *   retention.keep_last, keep_hourly, keep_daily, keep_weekly,
 *     keep_monthly, keep_yearly  decimal counts (forget --keep-*)
 *   retention.keep_within      duration such as 36h, 14d, 6m = months (forget --keep-within)
 *   retention.keep_tags        list of tags (forget --keep-tag, repeated)
 *   retention.max_unused       5%, a size or unlimited (prune --max-unused)
 *   retention.max_repack_size  a size (prune --max-repack-size)
 *   s3.endpoint, region, profile, storage_class, sse, sse_kms_key_id,
 *     credentials_file, addressing, connections: exported to the
 *     environment variables the S3 store reads (unless already set)
 *   paths.state_dir, paths.cache_dir  DISKVAULT_STATE_DIR / _CACHE_DIR
 *
 * Thread safety: load once in main() before any thread starts; the getters
 * only read afterwards.
 */
#ifndef DV_CLI_CONFIG_H
#define DV_CLI_CONFIG_H

#include "util/util.h"

#define DV_CONFIG_SYSTEM_PATH "/etc/diskvault/diskvault.conf"
#define DV_CONFIG_MAX_SIZE (1u << 20)
#define DV_CONFIG_MAX_LINE 4096

enum dv_config_source {
	DV_CONFIG_SRC_DEFAULT, /* built in (or unset) */
	DV_CONFIG_SRC_FILE,    /* the config file, at file:line */
	DV_CONFIG_SRC_ENV,     /* an environment variable */
	DV_CONFIG_SRC_FLAG,    /* a command-line flag (set by the CLI) */
	DV_CONFIG_SRC_MAX
};

/* One parsed config file. */
struct dv_config;

/* An empty config (no file). Caller frees with dv_config_free. */
struct dv_config *dv_config_new(void);
void dv_config_free(struct dv_config *c); /* accepts NULL */

/*
 * Parses text (len bytes, may hold anything) as a config file named path
 * (used in messages only) into c, which must be empty. Checks syntax, keys
 * and values; does not touch the filesystem. Returns 0 or -DV_E_USAGE with
 * "path:line: ..." in err.
 */
int dv_config_parse(struct dv_config *c, const char *path, const char *text, size_t len, struct dv_err *err) DV_WUR;

/*
 * Reads and parses path, then applies the file rules: a regular file (or
 * /dev/null) of at most DV_CONFIG_MAX_SIZE bytes, not writable by others;
 * if it names a secret file, not readable by group/others; every secret
 * file it names exists, is a regular file and has no group/other bits.
 */
int dv_config_load_file(struct dv_config *c, const char *path, struct dv_err *err) DV_WUR;

/* The value the file gives section.key, or NULL; *line (may be NULL) gets
 * its line number. Borrowed from c. */
const char *dv_config_file_value(const struct dv_config *c, const char *section, const char *key, unsigned *line);
/* The file's path as given to parse/load, or NULL. Borrowed. */
const char *dv_config_file_path(const struct dv_config *c);

/*
 * Splits a list value: items separated by blanks or commas; an item may
 * be written "in double quotes" (with \" and \\) to hold either. Returns
 * the number of items; *out is a NULL-terminated array the caller frees
 * with dv_config_list_free. value NULL gives 0 items.
 */
size_t dv_config_split(const char *value, char ***out);

/* prune's limit on unused data: "unlimited" (*pct = -1, *bytes =
 * UINT64_MAX), "N%" with 0 <= N < 100 (*pct = N), or a size (*pct = -1,
 * *bytes). False when malformed. */
bool dv_config_parse_unused(const char *s, double *pct, uint64_t *bytes);
void dv_config_list_free(char **list);

/* ---- the process-wide configuration (the CLI's) ------------------------ */

/*
 * Finds and loads the config file (see top) for this run: argv is scanned
 * for "--config FILE" / "--config=FILE" (the last one counts; scanning
 * stops at "--"). Exports [s3] and [paths] values and
 * repository.password_file to their environment variables where those
 * are unset, so the store sees them. Returns 0 or an error; without a
 * file to read it succeeds with an empty config.
 */
int dv_config_setup(int argc, char **argv, struct dv_err *err) DV_WUR;

/* The effective value of section.key: environment, else config file, else
 * the built-in default; NULL when none. Borrowed, valid until exit. */
const char *dv_config_get(const char *section, const char *key);
/* dv_config_get() as a boolean ("true"/"false"), def when unset. */
bool dv_config_get_bool(const char *section, const char *key, bool def);
/* dv_config_get() split into a list (dv_config_split): a NULL-terminated
 * array owned by the config (do not free), never NULL; *n (may be NULL)
 * gets the count. */
const char *const *dv_config_get_list(const char *section, const char *key, size_t *n);
/* The file the process loaded, or NULL. */
const char *dv_config_path(void);

/* One known setting as resolved for this run (for `config show`). */
struct dv_config_setting {
	const char *section, *key;
	const char *value;     /* effective value, NULL when unset */
	enum dv_config_source source;
	const char *file;      /* DV_CONFIG_SRC_FILE: the file */
	unsigned line;         /* ... and the line */
	const char *env;       /* the environment variable of this key, or NULL */
	const char *env_used;  /* DV_CONFIG_SRC_ENV: the variable that was set */
	bool secret_file;      /* value is the path of a secret file */
	const char *help;      /* one line */
};
/* Number of known settings; dv_config_setting_at fills *out for i <
 * that. Valid after dv_config_setup (before it, no file and no env). */
size_t dv_config_count(void);
void dv_config_setting_at(size_t i, struct dv_config_setting *out);

/* ---- CLI glue (cmd_config.c) ------------------------------------------ */

/* Loads the config for main() (dv_config_setup), sets dv_cli.repo from
 * repository.path when neither DISKVAULT_REPO nor --repo gave one, and
 * returns 0 or an exit code after printing the error. */
int dv_cli_config_load(int argc, char **argv);

struct dv_backup_opts;
/* Fills what backup's flags left unset from [backup]: name, host, tags
 * (into tagbuf, up to tagcap), threads, and turns on all_blocks,
 * allow_mounted, sha256 when the config says true. */
void dv_cli_config_backup(struct dv_backup_opts *b, const char **tagbuf, size_t tagcap);

struct dv_forget_policy;
struct dv_prune_opts;
/* For forget: when p has no rule from the command line, fills it from
 * [retention] (tags into tagbuf, which p->tags must point to, up to
 * tagcap). */
void dv_cli_config_forget(struct dv_forget_policy *p, const char **tagbuf, size_t tagcap);
/* For prune and forget --prune, before the flags are applied: o gets
 * retention.max_unused and retention.max_repack_size when set. */
void dv_cli_config_prune(struct dv_prune_opts *o);

#endif
