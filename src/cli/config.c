/*
 * config.c - the config file: the table of known keys, a line parser that
 * names file:line in every complaint, the file and secret-file permission
 * rules, and the process-wide resolved view (default < file < env).
 *
 * The parser never trusts its input: NUL bytes, control characters,
 * overlong lines, unterminated quotes, duplicate keys and unknown names
 * are all errors, so a typo in a nightly job's config fails loudly instead
 * of silently backing up the wrong thing.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum kind {
	K_STRING,      /* any text */
	K_WORD,        /* printable, no blanks */
	K_LOCATION,    /* absolute path or s3://... */
	K_PATH,        /* absolute path */
	K_SECRET_FILE, /* absolute path of a file holding a secret */
	K_PATH_LIST,   /* list of absolute paths */
	K_LIST,        /* list of words */
	K_BOOL,
	K_COUNT,       /* decimal in [min, max] */
	K_DURATION,    /* retention: 1y6m, 30d, 12h, 2w (dv_parse_duration) */
	K_WAIT,        /* lock wait: 90s, 15m (minutes), 2h */
	K_ENUM,        /* one of choices ("a|b") */
	K_URL,         /* http(s)://, no credentials */
	K_SIZE,        /* 200M, 1.5G (dv_parse_size) */
	K_UNUSED,      /* 5%, a size or unlimited (dv_config_parse_unused) */
};

struct keydef {
	const char *section, *key;
	enum kind kind;
	const char *env;     /* environment variable that overrides the file */
	const char *env_alt; /* another variable that counts as set */
	bool export_env;     /* copy the file's value into env for the store */
	const char *def;
	long min, max;
	const char *choices;
	const char *help;
	const char *env_top; /* a variable that outranks env and env_alt */
};

static const char *const sections[] = {"repository", "backup", "retention", "s3", "paths"};

/* Designated initialisers: a key names only what it has. */
#define KEY(s, k, kd, h, ...) {.section = s, .key = k, .kind = kd, .help = h, __VA_ARGS__}
#define COUNT(s, k, mn, mx, h) KEY(s, k, K_COUNT, h, .min = mn, .max = mx)

static const struct keydef keys[] = {
	KEY("repository", "path", K_LOCATION, "repository location: a directory or s3://bucket/prefix (--repo)",
	    .env = "DISKVAULT_REPO"),
	KEY("repository", "lock_wait", K_WAIT, "how long to wait for a conflicting lock (--lock-wait), e.g. 15m"),
	KEY("repository", "password_file", K_SECRET_FILE, "file holding the repository password (mode 0600/0400)",
	    .env = "DISKVAULT_PASSWORD_FILE", .export_env = true),
	KEY("repository", "password_command", K_STRING,
	    "command whose first output line is the repository password (run by /bin/sh)",
	    .env = "DISKVAULT_PASSWORD_COMMAND", .export_env = true),
	KEY("backup", "sources", K_PATH_LIST, "disks or image files to back up when none are given on the command line"),
	KEY("backup", "name", K_STRING, "snapshot name (--name)"),
	KEY("backup", "tags", K_LIST, "snapshot tags (--tag)"),
	KEY("backup", "host", K_WORD, "host name to record (--host)"),
	KEY("backup", "all_blocks", K_BOOL, "store every block, not only used ones (--all-blocks)", .def = "false"),
	KEY("backup", "allow_mounted", K_BOOL, "image mounted filesystems whole (--allow-mounted)", .def = "false"),
	KEY("backup", "sha256", K_BOOL, "record each disk's plain SHA-256 (--sha256)", .def = "false"),
	COUNT("backup", "threads", 1, 256, "worker threads (--threads); default: CPUs"),
	COUNT("retention", "keep_last", 0, 1000000, "keep the N most recent snapshots (forget --keep-last)"),
	COUNT("retention", "keep_hourly", 0, 1000000, "forget --keep-hourly"),
	COUNT("retention", "keep_daily", 0, 1000000, "forget --keep-daily"),
	COUNT("retention", "keep_weekly", 0, 1000000, "forget --keep-weekly"),
	COUNT("retention", "keep_monthly", 0, 1000000, "forget --keep-monthly"),
	COUNT("retention", "keep_yearly", 0, 1000000, "forget --keep-yearly"),
	KEY("retention", "keep_within", K_DURATION,
	    "keep what is at most this much older than the newest (forget --keep-within), e.g. 14d"),
	KEY("retention", "keep_tags", K_LIST, "keep snapshots carrying any of these tags (forget --keep-tag)"),
	KEY("retention", "max_unused", K_UNUSED,
	    "unused data prune may leave: 5% (of the repository), a size such as 200M, or unlimited (--max-unused)"),
	KEY("retention", "max_repack_size", K_SIZE, "prune rewrites at most this much data, e.g. 2G (--max-repack-size)"),
	KEY("s3", "endpoint", K_URL, "S3-compatible endpoint URL (path-style addressing)",
	    .env_top = "DISKVAULT_S3_ENDPOINT", .env = "AWS_ENDPOINT_URL_S3", .env_alt = "AWS_ENDPOINT_URL",
	    .export_env = true),
	KEY("s3", "region", K_WORD, "AWS region", .env_top = "DISKVAULT_S3_REGION", .env = "AWS_REGION",
	    .env_alt = "AWS_DEFAULT_REGION", .export_env = true),
	KEY("s3", "profile", K_WORD, "profile in the AWS shared config/credentials files",
	    .env_top = "DISKVAULT_S3_PROFILE", .env = "AWS_PROFILE", .env_alt = "AWS_DEFAULT_PROFILE",
	    .export_env = true),
	KEY("s3", "storage_class", K_WORD, "storage class of pack objects, e.g. STANDARD_IA, GLACIER_IR",
	    .env = "DISKVAULT_S3_STORAGE_CLASS", .export_env = true),
	KEY("s3", "sse", K_ENUM, "server-side encryption", .choices = "AES256|aws:kms", .env = "DISKVAULT_S3_SSE",
	    .export_env = true),
	KEY("s3", "sse_kms_key_id", K_WORD, "KMS key for sse = aws:kms", .env = "DISKVAULT_S3_SSE_KMS_KEY_ID",
	    .export_env = true),
	KEY("s3", "credentials_file", K_SECRET_FILE, "AWS shared credentials file (mode 0600/0400)",
	    .env = "AWS_SHARED_CREDENTIALS_FILE", .export_env = true),
	KEY("s3", "addressing", K_ENUM, "bucket addressing style", .choices = "path|virtual",
	    .env = "DISKVAULT_S3_ADDRESSING", .export_env = true),
	KEY("s3", "connections", K_COUNT, "parallel S3 connections", .min = 1, .max = 256,
	    .env = "DISKVAULT_S3_CONNECTIONS", .export_env = true),
	KEY("paths", "state_dir", K_PATH, "local state (multipart upload resume files)", .env = "DISKVAULT_STATE_DIR",
	    .export_env = true),
	KEY("paths", "cache_dir", K_PATH, "local cache (spool files before upload)", .env = "DISKVAULT_CACHE_DIR",
	    .export_env = true),
};

#define NKEYS DV_ARRAY_SIZE(keys)

/* Keys an older diskvault knew: an error that says what to write instead
 * beats "unknown key" for a file written back then. */
static const struct {
	const char *section, *key, *hint;
} old_keys[] = {
	{"retention", "repack_threshold",
	 "was replaced by max_unused (repository-wide budget for unused data, default 5%) and max_repack_size"},
};

struct dv_config {
	char *path;
	char *value[NKEYS];
	unsigned line[NKEYS];
};

struct dv_config *dv_config_new(void) { return dv_calloc(1, sizeof(struct dv_config)); }

void dv_config_free(struct dv_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		free(c->value[i]);
	free(c->path);
	free(c);
}

static int find_key(const char *section, const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key))
			return (int)i;
	return -1;
}

const char *dv_config_file_value(const struct dv_config *c, const char *section, const char *key, unsigned *line)
{
	int i = find_key(section, key);
	if (i < 0 || !c || !c->value[i])
		return NULL;
	if (line)
		*line = c->line[i];
	return c->value[i];
}

const char *dv_config_file_path(const struct dv_config *c) { return c ? c->path : NULL; }

/* ---- lists and quoting ---------------------------------------------------- */

static bool is_blank(char ch) { return ch == ' ' || ch == '\t'; }

/* Reads one list item at *p into item; returns false at the end. A quoted
 * item ends at its closing quote (an unterminated one at the end). */
static bool next_item(const char **p, struct dv_buf *item)
{
	const char *s = *p;
	while (*s && (is_blank(*s) || *s == ','))
		s++;
	if (!*s) {
		*p = s;
		return false;
	}
	dv_buf_reset(item);
	if (*s == '"') {
		s++;
		while (*s && *s != '"') {
			if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
				s++;
			dv_buf_add(item, s++, 1);
		}
		if (*s == '"')
			s++;
	} else {
		while (*s && !is_blank(*s) && *s != ',')
			dv_buf_add(item, s++, 1);
	}
	if (!item->data)
		dv_buf_add(item, "", 0);
	*p = s;
	return true;
}

size_t dv_config_split(const char *value, char ***out)
{
	size_t n = 0, cap = 4;
	char **list = dv_calloc(cap, sizeof *list);
	struct dv_buf item = DV_BUF_INIT;
	const char *p = value ? value : "";
	while (next_item(&p, &item)) {
		if (n + 1 >= cap)
			list = dv_realloc(list, (cap *= 2) * sizeof *list);
		list[n++] = dv_strdup((const char *)item.data);
	}
	list[n] = NULL;
	dv_buf_release(&item);
	*out = list;
	return n;
}

void dv_config_list_free(char **list)
{
	if (!list)
		return;
	for (char **p = list; *p; p++)
		free(*p);
	free(list);
}

/* Appends item to b in the form next_item reads back. */
static void add_quoted(struct dv_buf *b, const char *item)
{
	bool plain = *item != 0 && *item != '"';
	for (const char *s = item; *s && plain; s++)
		if (is_blank(*s) || *s == ',' || *s == '"' || *s == '\\' || *s == '#')
			plain = false;
	if (b->len)
		dv_buf_add(b, " ", 1);
	if (plain) {
		dv_buf_add(b, item, strlen(item));
		return;
	}
	dv_buf_add(b, "\"", 1);
	for (const char *s = item; *s; s++) {
		if (*s == '"' || *s == '\\')
			dv_buf_add(b, "\\", 1);
		dv_buf_add(b, s, 1);
	}
	dv_buf_add(b, "\"", 1);
}

/* ---- values ----------------------------------------------------------- */


bool dv_config_parse_unused(const char *s, double *pct, uint64_t *bytes)
{
	*pct = -1;
	*bytes = UINT64_MAX;
	if (!strcmp(s, "unlimited"))
		return true;
	size_t len = strlen(s);
	if (len && s[len - 1] == '%') {
		size_t n = strspn(s, "0123456789"), f = 0;
		if (s[n] == '.')
			f = 1 + strspn(s + n + 1, "0123456789");
		double v = strtod(s, NULL);
		if (n == 0 || n > 3 || f == 1 || n + f != len - 1 || !(v < 100))
			return false;
		*pct = v;
		return true;
	}
	return dv_parse_size(s, bytes);
}

static bool printable_word(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s == 0x7f)
			return false;
	return true;
}

/* Checks v against the key's kind; on success *norm gets the normalised
 * value (caller frees); on failure why gets the reason. */
static bool check_value(const struct keydef *k, const char *v, char **norm, const char **why)
{
	*norm = NULL;
	switch (k->kind) {
	case K_STRING:
		break;
	case K_WORD:
		if (!printable_word(v))
			return *why = "must be one word without blanks", false;
		break;
	case K_LOCATION:
		if (!strncmp(v, "s3://", 5)) {
			if (!v[5] || v[5] == '/' || !printable_word(v))
				return *why = "expected s3://bucket[/prefix]", false;
		} else if (v[0] != '/')
			return *why = "must be an absolute path or s3://bucket[/prefix]", false;
		break;
	case K_PATH:
	case K_SECRET_FILE:
		if (v[0] != '/')
			return *why = "must be an absolute path", false;
		break;
	case K_BOOL:
		if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
			*norm = dv_strdup("true");
		else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
			*norm = dv_strdup("false");
		else
			return *why = "must be true or false", false;
		return true;
	case K_COUNT: {
		size_t n = strspn(v, "0123456789");
		if (n == 0 || v[n])
			return *why = "must be a decimal number", false;
		while (v[0] == '0' && v[1])
			v++;
		if (strlen(v) > 9 || atol(v) < k->min || atol(v) > k->max) {
			static char range[64];
			snprintf(range, sizeof range, "must be between %ld and %ld", k->min, k->max);
			return *why = range, false;
		}
		break;
	}
	case K_DURATION: {
		struct dv_duration d;
		if (!dv_parse_duration(v, DV_DUR_RETENTION, &d) || dv_duration_is_zero(&d))
			return *why = "must be a duration of y, m (months), w, d, h such as 14d, 6m or 1y6m2d", false;
		break;
	}
	case K_WAIT: {
		struct dv_duration d;
		if (!dv_parse_duration(v, DV_DUR_WAIT, &d))
			return *why = "must be a duration such as 90s, 15m (minutes) or 2h", false;
		break;
	}
	case K_SIZE: {
		uint64_t b;
		if (!dv_parse_size(v, &b))
			return *why = "must be a size such as 500M or 2G", false;
		break;
	}
	case K_UNUSED: {
		double pct;
		uint64_t b;
		if (!dv_config_parse_unused(v, &pct, &b))
			return *why = "must be a percentage below 100 (5%), a size (200M) or unlimited", false;
		break;
	}
	case K_ENUM: {
		size_t vl = strlen(v);
		for (const char *c = k->choices; *c;) {
			size_t cl = strcspn(c, "|");
			if (cl == vl && !strncmp(c, v, vl))
				goto ok;
			c += cl + (c[cl] == '|');
		}
		static char choice[96];
		snprintf(choice, sizeof choice, "must be one of: %s", k->choices);
		return *why = choice, false;
	}
	case K_URL: {
		const char *rest;
		if (!strncmp(v, "https://", 8))
			rest = v + 8;
		else if (!strncmp(v, "http://", 7))
			rest = v + 7;
		else
			return *why = "must start with http:// or https://", false;
		if (!printable_word(v) || !*rest || *rest == '/')
			return *why = "must be a URL such as https://host:port", false;
		size_t auth = strcspn(rest, "/?#");
		if (memchr(rest, '@', auth))
			return *why = "must not carry user or password: credentials belong in credentials_file", false;
		break;
	}
	case K_PATH_LIST:
	case K_LIST: {
		char **list;
		size_t n = dv_config_split(v, &list);
		struct dv_buf b = DV_BUF_INIT;
		bool good = n > 0;
		if (!good)
			*why = "is an empty list";
		for (size_t i = 0; good && i < n; i++) {
			if (!list[i][0])
				good = false, *why = "has an empty item";
			else if (k->kind == K_PATH_LIST && list[i][0] != '/')
				good = false, *why = "items must be absolute paths";
			else
				add_quoted(&b, list[i]);
		}
		dv_config_list_free(list);
		if (!good) {
			dv_buf_release(&b);
			return false;
		}
		*norm = (char *)b.data;
		return true;
	}
	}
ok:
	*norm = dv_strdup(v);
	return true;
}

/* ---- parsing ---------------------------------------------------------- */

static const char *const secret_words[] = {"password", "passwd", "passphrase", "secret", "token",
					   "access_key", "private_key", "credential"};

static bool secret_name(const char *key)
{
	size_t n = strlen(key);
	if ((n > 5 && !strcmp(key + n - 5, "_file")) || (n > 8 && !strcmp(key + n - 8, "_command")))
		return false; /* names where a secret is, not the secret */
	for (size_t i = 0; i < DV_ARRAY_SIZE(secret_words); i++)
		if (strstr(key, secret_words[i]))
			return true;
	return false;
}

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

static char *trim(char *s)
{
	while (is_blank(*s))
		s++;
	size_t n = strlen(s);
	while (n && is_blank(s[n - 1]))
		s[--n] = 0;
	return s;
}

/* Cuts a comment ('#' at the start or after a blank, outside quotes).
 * Returns false on an unterminated quote. */
static bool cut_comment(char *s)
{
	bool q = false;
	for (size_t i = 0; s[i]; i++) {
		if (q && s[i] == '\\' && s[i + 1]) {
			i++;
			continue;
		}
		if (s[i] == '"')
			q = !q;
		else if (!q && s[i] == '#' && (i == 0 || is_blank(s[i - 1]))) {
			s[i] = 0;
			break;
		}
	}
	return !q;
}

static void key_list(struct dv_buf *b, const char *section)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].section, section))
			dv_buf_addf(b, "%s%s", b->len ? ", " : "", keys[i].key);
}

static int parse_line(struct dv_config *c, const char *path, unsigned ln, char *s, int *sect, struct dv_err *err)
{
	for (const char *p = s; *p; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			return dv_error(err, DV_E_USAGE, "%s:%u: control character 0x%02x", path, ln, (unsigned char)*p);
	s = trim(s);
	if (!*s || *s == '#' || *s == ';')
		return 0;
	if (*s == '[') {
		char *end = strchr(s, ']');
		if (!end)
			return dv_error(err, DV_E_USAGE, "%s:%u: section header without ']'", path, ln);
		*end = 0;
		char *name = trim(s + 1), *rest = trim(end + 1);
		if (*rest && *rest != '#' && *rest != ';')
			return dv_error(err, DV_E_USAGE, "%s:%u: text after the section header", path, ln);
		if (!name_ok(name, strlen(name)))
			return dv_error(err, DV_E_USAGE, "%s:%u: invalid section name '%.64s'", path, ln, name);
		for (size_t i = 0; i < DV_ARRAY_SIZE(sections); i++)
			if (!strcmp(sections[i], name)) {
				*sect = (int)i;
				return 0;
			}
		return dv_error(err, DV_E_USAGE,
				"%s:%u: unknown section [%s] (known: repository, backup, retention, s3, paths)", path,
				ln, name);
	}
	char *eq = strchr(s, '=');
	if (!eq)
		return dv_error(err, DV_E_USAGE, "%s:%u: expected 'key = value' or '[section]'", path, ln);
	*eq = 0;
	char *key = trim(s), *val = eq + 1;
	if (!name_ok(key, strlen(key)))
		return dv_error(err, DV_E_USAGE,
				"%s:%u: invalid key name '%.64s' (lower-case letters, digits and '_')", path, ln, key);
	if (*sect < 0)
		return dv_error(err, DV_E_USAGE, "%s:%u: '%s' is outside any [section]", path, ln, key);
	const char *section = sections[*sect];
	if (secret_name(key))
		return dv_error(err, DV_E_USAGE,
				"%s:%u: [%s] %s: secrets are not allowed in the config file; put the secret in its "
				"own file readable only by its owner (chmod 600) and name that file instead "
				"(password_file, credentials_file)",
				path, ln, section, key);
	int k = find_key(section, key);
	for (size_t i = 0; k < 0 && i < DV_ARRAY_SIZE(old_keys); i++)
		if (!strcmp(old_keys[i].section, section) && !strcmp(old_keys[i].key, key))
			return dv_error(err, DV_E_USAGE, "%s:%u: [%s] %s %s", path, ln, section, key, old_keys[i].hint);
	if (k < 0) {
		struct dv_buf b = DV_BUF_INIT;
		key_list(&b, section);
		int r = dv_error(err, DV_E_USAGE, "%s:%u: unknown key '%s' in [%s] (known: %s)", path, ln, key,
				 section, (const char *)b.data);
		dv_buf_release(&b);
		return r;
	}
	if (c->value[k])
		return dv_error(err, DV_E_USAGE, "%s:%u: %s.%s is already set on line %u", path, ln, section, key,
				c->line[k]);
	if (!cut_comment(val))
		return dv_error(err, DV_E_USAGE, "%s:%u: %s.%s: unterminated quote", path, ln, section, key);
	val = trim(val);
	bool list = keys[k].kind == K_LIST || keys[k].kind == K_PATH_LIST;
	struct dv_buf unq = DV_BUF_INIT;
	if (*val == '"' && !list) {
		const char *p = val;
		next_item(&p, &unq);
		if (*trim((char *)p)) {
			dv_buf_release(&unq);
			return dv_error(err, DV_E_USAGE, "%s:%u: %s.%s: text after the closing quote", path, ln,
					section, key);
		}
		val = (char *)unq.data;
	}
	if (!*val) {
		dv_buf_release(&unq);
		return dv_error(err, DV_E_USAGE, "%s:%u: %s.%s has an empty value (remove the line for the default)",
				path, ln, section, key);
	}
	char *norm;
	const char *why = "is invalid";
	bool good = check_value(&keys[k], val, &norm, &why);
	int r = 0;
	if (!good)
		r = dv_error(err, DV_E_USAGE, "%s:%u: %s.%s = %.200s: %s", path, ln, section, key, val, why);
	dv_buf_release(&unq);
	if (r < 0)
		return r;
	c->value[k] = norm;
	c->line[k] = ln;
	return 0;
}

int dv_config_parse(struct dv_config *c, const char *path, const char *text, size_t len, struct dv_err *err)
{
	free(c->path);
	c->path = dv_strdup(path);
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) { /* a UTF-8 byte order mark */
		text += 3;
		len -= 3;
	}
	int sect = -1;
	unsigned ln = 0;
	char *line = dv_malloc(DV_CONFIG_MAX_LINE + 1);
	int r = 0;
	size_t pos = 0;
	while (pos < len && r == 0) {
		ln++;
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (n && text[pos + n - 1] == '\r')
			n--;
		if (n > DV_CONFIG_MAX_LINE)
			r = dv_error(err, DV_E_USAGE, "%s:%u: line longer than %u bytes", path, ln, DV_CONFIG_MAX_LINE);
		else if (memchr(text + pos, 0, n))
			r = dv_error(err, DV_E_USAGE, "%s:%u: NUL byte", path, ln);
		else {
			memcpy(line, text + pos, n);
			line[n] = 0;
			r = parse_line(c, path, ln, line, &sect, err);
		}
		pos += (nl ? (size_t)(nl - (text + pos)) + 1 : len - pos);
	}
	free(line);
	return r;
}

/* ---- files -------------------------------------------------------------- */

static int check_secret_file(const struct dv_config *c, size_t k, struct dv_err *err)
{
	const char *p = c->value[k];
	struct stat st;
	if (stat(p, &st) < 0)
		return dv_error(err, DV_E_USAGE, "%s:%u: %s.%s = %s: %s", c->path, c->line[k], keys[k].section,
				keys[k].key, p, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return dv_error(err, DV_E_USAGE, "%s:%u: %s.%s = %s: not a regular file", c->path, c->line[k],
				keys[k].section, keys[k].key, p);
	if (st.st_mode & 077)
		return dv_error(err, DV_E_USAGE,
				"%s:%u: secret file %s has mode %04o: it must be readable by its owner only "
				"(0600 or 0400); run: chmod 600 %s",
				c->path, c->line[k], p, (unsigned)(st.st_mode & 07777), p);
	return 0;
}

int dv_config_load_file(struct dv_config *c, const char *path, struct dv_err *err)
{
	if (!strcmp(path, "/dev/null")) {
		free(c->path);
		c->path = dv_strdup(path);
		return 0;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return dv_error(err, DV_E_USAGE, "config file %s: %s", path, strerror(errno));
	struct stat st;
	struct dv_buf b = DV_BUF_INIT;
	int r = 0;
	if (fstat(fd, &st) < 0) {
		r = dv_error(err, DV_E_USAGE, "config file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = dv_error(err, DV_E_USAGE, "config file %s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & S_IWOTH) {
		r = dv_error(err, DV_E_USAGE, "config file %s is writable by others (mode %04o); run: chmod o-w %s",
			     path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size > (off_t)DV_CONFIG_MAX_SIZE) {
		r = dv_error(err, DV_E_USAGE, "config file %s: larger than %u bytes", path, DV_CONFIG_MAX_SIZE);
		goto out;
	}
	dv_buf_reserve(&b, (size_t)st.st_size + 1);
	for (;;) {
		if (b.len > DV_CONFIG_MAX_SIZE) {
			r = dv_error(err, DV_E_USAGE, "config file %s: larger than %u bytes", path, DV_CONFIG_MAX_SIZE);
			goto out;
		}
		dv_buf_reserve(&b, 4096);
		ssize_t n = read(fd, b.data + b.len, b.cap - b.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = dv_error(err, DV_E_USAGE, "config file %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		b.len += (size_t)n;
		b.data[b.len] = 0;
	}
	if ((r = dv_config_parse(c, path, b.data ? (const char *)b.data : "", b.len, err)) < 0)
		goto out;
	for (size_t k = 0; k < NKEYS; k++) {
		if (keys[k].kind != K_SECRET_FILE || !c->value[k])
			continue;
		if (st.st_mode & 044) {
			r = dv_error(err, DV_E_USAGE,
				     "config file %s names a secret file (%s.%s on line %u) but is readable by group "
				     "or others (mode %04o); run: chmod 600 %s",
				     path, keys[k].section, keys[k].key, c->line[k], (unsigned)(st.st_mode & 07777),
				     path);
			goto out;
		}
		if ((r = check_secret_file(c, k, err)) < 0)
			goto out;
	}
out:
	dv_buf_release(&b);
	close(fd);
	return r;
}

/* ---- the process-wide config -------------------------------------------- */

static struct dv_config *g_cfg;
static bool g_exported[NKEYS];
static char **g_lists[NKEYS];

static const char *env_of(const char *name)
{
	const char *v = name ? getenv(name) : NULL;
	return v && *v ? v : NULL;
}

/* The config file named on the command line, or NULL. */
static const char *argv_config(int argc, char **argv)
{
	const char *p = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			p = argv[++i];
		else if (!strncmp(argv[i], "--config=", 9))
			p = argv[i] + 9;
	}
	return p;
}

static bool exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

int dv_config_setup(int argc, char **argv, struct dv_err *err)
{
	dv_config_free(g_cfg);
	g_cfg = dv_config_new();
	memset(g_exported, 0, sizeof g_exported);
	for (size_t k = 0; k < NKEYS; k++) { /* a second setup: tests only */
		dv_config_list_free(g_lists[k]);
		g_lists[k] = NULL;
	}
	const char *path = argv_config(argc, argv);
	if (path && !*path)
		return dv_error(err, DV_E_USAGE, "--config needs a file name");
	if (!path)
		path = env_of("DISKVAULT_CONFIG");
	char *user = NULL;
	if (!path) {
		const char *xdg = env_of("XDG_CONFIG_HOME"), *home = env_of("HOME");
		if (xdg)
			user = dv_asprintf("%s/diskvault/config", xdg);
		else if (home)
			user = dv_asprintf("%s/.config/diskvault/config", home);
		if (user && exists(user))
			path = user;
		else if (exists(DV_CONFIG_SYSTEM_PATH) && access(DV_CONFIG_SYSTEM_PATH, R_OK) == 0)
			path = DV_CONFIG_SYSTEM_PATH; /* one a user cannot read is not theirs */
	}
	int r = 0;
	if (path)
		r = dv_config_load_file(g_cfg, path, err);
	free(user);
	if (r < 0)
		return r;
	for (size_t k = 0; k < NKEYS; k++) {
		if (!keys[k].export_env || !g_cfg->value[k] || env_of(keys[k].env_top) || env_of(keys[k].env) ||
		    env_of(keys[k].env_alt))
			continue;
		if (setenv(keys[k].env, g_cfg->value[k], 1) < 0)
			return dv_error_errno(err, errno, "setenv %s", keys[k].env);
		g_exported[k] = true;
	}
	return 0;
}

const char *dv_config_path(void) { return g_cfg ? g_cfg->path : NULL; }

size_t dv_config_count(void) { return NKEYS; }

void dv_config_setting_at(size_t i, struct dv_config_setting *out)
{
	if (i >= NKEYS)
		DV_BUG("config setting %zu of %zu", i, (size_t)NKEYS);
	const struct keydef *k = &keys[i];
	memset(out, 0, sizeof *out);
	out->section = k->section;
	out->key = k->key;
	out->env = k->env;
	out->help = k->help;
	out->secret_file = k->kind == K_SECRET_FILE;
	const char *env_used = NULL;
	if (env_of(k->env_top))
		env_used = k->env_top;
	else if (!g_exported[i])
		env_used = env_of(k->env) ? k->env : env_of(k->env_alt) ? k->env_alt : NULL;
	if (env_used) {
		out->source = DV_CONFIG_SRC_ENV;
		out->env_used = env_used;
		out->value = env_of(env_used);
	} else if (g_cfg && g_cfg->value[i]) {
		out->source = DV_CONFIG_SRC_FILE;
		out->value = g_cfg->value[i];
		out->file = g_cfg->path;
		out->line = g_cfg->line[i];
	} else {
		out->source = DV_CONFIG_SRC_DEFAULT;
		out->value = k->def;
	}
}

const char *dv_config_get(const char *section, const char *key)
{
	int i = find_key(section, key);
	if (i < 0)
		DV_BUG("unknown config key %s.%s", section, key);
	struct dv_config_setting s;
	dv_config_setting_at((size_t)i, &s);
	return s.value;
}

bool dv_config_get_bool(const char *section, const char *key, bool def)
{
	const char *v = dv_config_get(section, key);
	if (!v)
		return def;
	return !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1");
}

const char *const *dv_config_get_list(const char *section, const char *key, size_t *n)
{
	int i = find_key(section, key);
	if (i < 0)
		DV_BUG("unknown config key %s.%s", section, key);
	if (!g_lists[i])
		dv_config_split(dv_config_get(section, key), &g_lists[i]);
	size_t c = 0;
	while (g_lists[i][c])
		c++;
	if (n)
		*n = c;
	return (const char *const *)g_lists[i];
}
