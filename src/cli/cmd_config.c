/* cmd_config.c - `diskvault config show|check` and the glue that puts the
 * config file's values under the CLI's flags (config.h). */
#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include "cli.h"
#include "config.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault config show [--json] | config check [FILE]\n"
	"Shows the effective settings and where each comes from (file:line, env, flag,\n"
	"default), or checks a config file. Secret files are named, never read; secret\n"
	"environment variables are masked.\n"
	"  show            print every setting with its value and source\n"
	"  check [FILE]    validate FILE (default: the config in use) and its secret files\n"
	"  --config FILE   global option: read FILE instead of ~/.config/diskvault/config or\n"
	"                  /etc/diskvault/diskvault.conf (docs/configuration.md)\n";

/* What main() had for --repo / DISKVAULT_REPO, to tell where dv_cli.repo
 * came from. */
static const char *repo_from_file;

int dv_cli_config_load(int argc, char **argv)
{
	struct dv_err err;
	dv_err_clear(&err);
	if (dv_config_setup(argc, argv, &err) < 0)
		return dv_cli_fail(NULL, &err);
	if (!dv_cli.repo || !*dv_cli.repo) {
		struct dv_config_setting s;
		for (size_t i = 0; i < dv_config_count(); i++) {
			dv_config_setting_at(i, &s);
			if (!strcmp(s.section, "repository") && !strcmp(s.key, "path") && s.value &&
			    s.source == DV_CONFIG_SRC_FILE)
				dv_cli.repo = repo_from_file = s.value;
		}
	}
	const char *lw = dv_config_get("repository", "lock_wait");
	if (lw && dv_cli.lock_wait == 0)
		dv_cli.lock_wait = dv_cli_parse_wait(lw); /* --lock-wait after the command overrides */
	return 0;
}

void dv_cli_config_prune(struct dv_prune_opts *po)
{
	/* both were checked when the file was loaded */
	const char *v = dv_config_get("retention", "max_unused");
	if (v && !dv_config_parse_unused(v, &po->max_unused_pct, &po->max_unused_bytes))
		DV_BUG("retention.max_unused passed the config check but does not parse");
	if ((v = dv_config_get("retention", "max_repack_size")) && !dv_parse_size(v, &po->max_repack_bytes))
		DV_BUG("retention.max_repack_size passed the config check but does not parse");
}

void dv_cli_config_forget(struct dv_forget_policy *p, const char **tagbuf, size_t tagcap)
{
	static const char *const kinds[DV_KEEP_KINDS] = {"keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
							  "keep_yearly"};
	const char *v;
	if (!p || !dv_forget_policy_empty(p))
		return; /* rules on the command line replace the config's policy */
	if ((v = dv_config_get("retention", "keep_last")))
		p->keep_last = strtoll(v, NULL, 10);
	for (size_t i = 0; i < DV_KEEP_KINDS; i++)
		if ((v = dv_config_get("retention", kinds[i])))
			p->keep[i] = strtoll(v, NULL, 10);
	if ((v = dv_config_get("retention", "keep_within")))
		if (!dv_parse_duration(v, DV_DUR_RETENTION, &p->keep_within))
			DV_BUG("retention.keep_within passed the config check but does not parse");
	size_t n;
	const char *const *tags = dv_config_get_list("retention", "keep_tags", &n);
	for (size_t i = 0; i < n && p->ntags < tagcap; i++)
		tagbuf[p->ntags++] = tags[i];
}

void dv_cli_config_backup(struct dv_backup_opts *b, const char **tagbuf, size_t tagcap)
{
	if (!b->name)
		b->name = dv_config_get("backup", "name");
	if (!b->host)
		b->host = dv_config_get("backup", "host");
	if (b->ntags == 0) {
		size_t n;
		const char *const *tags = dv_config_get_list("backup", "tags", &n);
		for (size_t i = 0; i < n && i < tagcap; i++)
			tagbuf[b->ntags++] = tags[i];
	}
	const char *t = dv_config_get("backup", "threads");
	if (!b->threads && t)
		b->threads = (unsigned)strtoul(t, NULL, 10);
	b->all_blocks = b->all_blocks || dv_config_get_bool("backup", "all_blocks", false);
	b->allow_mounted = b->allow_mounted || dv_config_get_bool("backup", "allow_mounted", false);
	b->sha256 = b->sha256 || dv_config_get_bool("backup", "sha256", false);
}

/* Environment variables that hold secrets: shown masked when set. */
static const char *const secret_env[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
					 "DISKVAULT_PASSWORD"};

static char *mask_env(const char *name, const char *v)
{
	if (!strcmp(name, "AWS_ACCESS_KEY_ID") && strlen(v) > 8)
		return dv_asprintf("%.4s********", v);
	return dv_strdup("********");
}

/* An endpoint from the environment may carry user:password@: mask it. */
static char *mask_value(const char *v)
{
	const char *s = strstr(v, "://");
	if (!s)
		return dv_strdup(v);
	s += 3;
	size_t auth = strcspn(s, "/?#");
	const char *at = memchr(s, '@', auth);
	if (!at)
		return dv_strdup(v);
	return dv_asprintf("%.*s********%s", (int)(s - v), v, at);
}

/* The repository setting as the CLI resolved it (flags included). */
static void resolve_repo(struct dv_config_setting *s)
{
	const char *env = getenv("DISKVAULT_REPO");
	if (dv_cli.repo && *dv_cli.repo) {
		if (dv_cli.repo == repo_from_file) {
			s->source = DV_CONFIG_SRC_FILE;
		} else if (env && dv_cli.repo == env) {
			s->source = DV_CONFIG_SRC_ENV;
			s->env_used = "DISKVAULT_REPO";
		} else {
			s->source = DV_CONFIG_SRC_FLAG;
		}
		s->value = dv_cli.repo;
	}
}

static const char *const src_names[] = {"default", "file", "env", "flag"};

static void origin_of(const struct dv_config_setting *s, char *origin, size_t n)
{
	switch (s->source) {
	case DV_CONFIG_SRC_FILE:
		snprintf(origin, n, "%s:%u", s->file, s->line);
		break;
	case DV_CONFIG_SRC_ENV:
		snprintf(origin, n, "%s", s->env_used);
		break;
	case DV_CONFIG_SRC_FLAG:
		snprintf(origin, n, "--%s", !strcmp(s->key, "path") ? "repo" : "password-file");
		break;
	default:
		snprintf(origin, n, "%s", s->value ? "built-in" : "not set");
	}
}

static int show(void)
{
	const char *path = dv_config_path();
	json_t *settings = json_object();
	if (!dv_cli.json)
		printf("# config file: %s\n", path ? path : "none");
	const char *section = "";
	for (size_t i = 0; i < dv_config_count(); i++) {
		struct dv_config_setting s;
		char origin[1200];
		dv_config_setting_at(i, &s);
		if (!strcmp(s.section, "repository") && !strcmp(s.key, "path"))
			resolve_repo(&s);
		if (!strcmp(s.section, "repository") && !strcmp(s.key, "password_file") && dv_cli.password_file) {
			s.source = DV_CONFIG_SRC_FLAG; /* --password-file outranks all */
			s.value = dv_cli.password_file;
		}
		origin_of(&s, origin, sizeof origin);
		char *value = s.value ? mask_value(s.value) : NULL;
		if (dv_cli.json) {
			json_t *o = json_pack("{s:o, s:s, s:s}", "value", value ? json_string(value) : json_null(),
					      "source", src_names[s.source], "origin", origin);
			if (s.source == DV_CONFIG_SRC_FILE) {
				json_object_set_new(o, "file", json_string(s.file));
				json_object_set_new(o, "line", json_integer(s.line));
			}
			if (s.env)
				json_object_set_new(o, "env", json_string(s.env));
			if (s.secret_file)
				json_object_set_new(o, "secret_file", json_true());
			char *name = dv_asprintf("%s.%s", s.section, s.key);
			json_object_set_new(settings, name, o);
			free(name);
		} else {
			if (strcmp(section, s.section)) {
				printf("%s[%s]\n", i ? "\n" : "", s.section);
				section = s.section;
			}
			char *kv = dv_asprintf("%s%s = %s", value ? "" : "# ", s.key, value ? value : "");
			printf("%-46s # %s: %s%s\n", kv, src_names[s.source], origin,
			       s.secret_file && value ? " (secret file: path shown, contents never read here)" : "");
			free(kv);
		}
		free(value);
	}
	json_t *secrets = json_object();
	bool header = false;
	for (size_t i = 0; i < DV_ARRAY_SIZE(secret_env); i++) {
		const char *v = getenv(secret_env[i]);
		if (!v || !*v)
			continue;
		char *m = mask_env(secret_env[i], v);
		if (dv_cli.json) {
			json_object_set_new(secrets, secret_env[i], json_string(m));
		} else {
			if (!header)
				printf("\n# secrets from the environment (masked)\n");
			header = true;
			printf("# %s = %s\n", secret_env[i], m);
		}
		free(m);
	}
	if (dv_cli.json) {
		json_t *j = json_pack("{s:s, s:b, s:o, s:o, s:o}", "command", "config", "ok", 1, "config_file",
				      path ? json_string(path) : json_null(), "settings", settings,
				      "environment_secrets", secrets);
		dv_cli_print_json(j);
	} else {
		json_decref(settings);
		json_decref(secrets);
	}
	return 0;
}

static int check(const char *file)
{
	struct dv_err err;
	dv_err_clear(&err);
	if (file) {
		struct dv_config *c = dv_config_new();
		int r = dv_config_load_file(c, file, &err);
		dv_config_free(c);
		if (r < 0)
			return dv_cli_fail("config", &err);
	} else {
		file = dv_config_path(); /* main() already loaded and checked it */
	}
	if (dv_cli.json)
		dv_cli_print_json(json_pack("{s:s, s:b, s:o}", "command", "config", "ok", 1, "config_file",
					    file ? json_string(file) : json_null()));
	else if (!dv_cli.quiet)
		printf("%s: ok\n", file ? file : "no config file in use");
	return 0;
}

int cmd_config(int argc, char **argv)
{
	int first, rc;
	if (!dv_cli_parse("config", help, argc, argv, NULL, &first, &rc))
		return rc;
	if (first >= argc)
		return dv_cli_usage("config", "expected 'show' or 'check'");
	if (!strcmp(argv[first], "show")) {
		if (first + 1 < argc)
			return dv_cli_usage("config", "unexpected argument '%s'", argv[first + 1]);
		return show();
	}
	if (!strcmp(argv[first], "check")) {
		if (first + 2 < argc)
			return dv_cli_usage("config", "unexpected argument '%s'", argv[first + 2]);
		return check(first + 1 < argc ? argv[first + 1] : NULL);
	}
	return dv_cli_usage("config", "unknown subcommand '%s' (expected 'show' or 'check')", argv[first]);
}
