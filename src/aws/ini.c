/*
 * The INI dialect of ~/.aws/config and ~/.aws/credentials. No Debian
 * library parses it (nested "s3 =" blocks, "[profile x]" names), so this is
 * a small line parser that only ever copies bounded substrings.
 */
#include "aws.h"

#include <stdlib.h>
#include <string.h>

struct ini_entry {
	char *section;
	char *key;
	char *value;
};

struct dv_aws_ini {
	struct ini_entry *e;
	size_t n, cap;
};

#define INI_MAX_LINE 8192
#define INI_MAX_ENTRIES 100000

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

static char *trimmed(const char *p, size_t n)
{
	while (n && is_space(*p)) {
		p++;
		n--;
	}
	while (n && is_space(p[n - 1]))
		n--;
	return dv_asprintf("%.*s", (int)n, p);
}

static void add(struct dv_aws_ini *ini, const char *section, char *key, char *value)
{
	if (ini->n == ini->cap) {
		ini->cap = ini->cap ? ini->cap * 2 : 16;
		ini->e = dv_realloc(ini->e, ini->cap * sizeof *ini->e);
	}
	ini->e[ini->n].section = dv_strdup(section);
	ini->e[ini->n].key = key;
	ini->e[ini->n].value = value;
	ini->n++;
}

int dv_aws_ini_parse(const char *text, size_t len, struct dv_aws_ini **out, struct dv_err *err)
{
	struct dv_aws_ini *ini = dv_calloc(1, sizeof *ini);
	char *section = NULL;
	char *parent = NULL; /* key of an open nested block ("s3") */
	size_t lineno = 0;
	int r = 0;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t n = (size_t)(le - p);
		lineno++;
		if (n > INI_MAX_LINE || ini->n >= INI_MAX_ENTRIES) {
			r = dv_error(err, DV_E_USAGE, "line %zu: too long or too many entries", lineno);
			goto fail;
		}
		if (memchr(p, '\0', n)) {
			r = dv_error(err, DV_E_USAGE, "line %zu: NUL byte", lineno);
			goto fail;
		}
		bool indented = n > 0 && is_space(p[0]);
		char *line = trimmed(p, n);
		p = nl ? nl + 1 : end;
		if (!line[0] || line[0] == '#' || line[0] == ';') {
			free(line);
			continue;
		}
		if (line[0] == '[') {
			char *close = strrchr(line, ']');
			if (!close) {
				free(line);
				r = dv_error(err, DV_E_USAGE, "line %zu: section header without ']'", lineno);
				goto fail;
			}
			free(section);
			section = trimmed(line + 1, (size_t)(close - line - 1));
			free(parent);
			parent = NULL;
			free(line);
			continue;
		}
		char *eq = strchr(line, '=');
		if (!eq || !section) {
			free(line);
			r = dv_error(err, DV_E_USAGE, "line %zu: expected 'key = value' inside a [section]", lineno);
			goto fail;
		}
		char *key = trimmed(line, (size_t)(eq - line));
		char *value = trimmed(eq + 1, strlen(eq + 1));
		free(line);
		if (!key[0]) {
			free(key);
			free(value);
			r = dv_error(err, DV_E_USAGE, "line %zu: empty key", lineno);
			goto fail;
		}
		if (indented && parent) {
			char *full = dv_asprintf("%s.%s", parent, key);
			free(key);
			add(ini, section, full, value);
			continue;
		}
		free(parent);
		parent = value[0] ? NULL : dv_strdup(key);
		add(ini, section, key, value);
	}
	free(section);
	free(parent);
	*out = ini;
	return 0;
fail:
	free(section);
	free(parent);
	dv_aws_ini_free(ini);
	return r;
}

const char *dv_aws_ini_get(const struct dv_aws_ini *ini, const char *section, const char *key)
{
	if (!ini)
		return NULL;
	for (size_t i = ini->n; i-- > 0;)
		if (!strcmp(ini->e[i].section, section) && !strcmp(ini->e[i].key, key))
			return ini->e[i].value;
	return NULL;
}

bool dv_aws_ini_has_section(const struct dv_aws_ini *ini, const char *section)
{
	if (!ini)
		return false;
	for (size_t i = 0; i < ini->n; i++)
		if (!strcmp(ini->e[i].section, section))
			return true;
	return false;
}

void dv_aws_ini_free(struct dv_aws_ini *ini)
{
	if (!ini)
		return;
	for (size_t i = 0; i < ini->n; i++) {
		free(ini->e[i].section);
		free(ini->e[i].key);
		if (ini->e[i].value)
			explicit_bzero(ini->e[i].value, strlen(ini->e[i].value));
		free(ini->e[i].value);
	}
	free(ini->e);
	free(ini);
}
