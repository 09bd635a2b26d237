/*
 * catalog.c - the EC2 instance catalog: a strict CSV reader, the typed
 * view right-sizing uses, in-place updates from DescribeInstanceTypes and
 * an atomic writer. Rows keep their cells as text so that a refresh
 * rewrites columns it does not understand unchanged.
 */
#include "sizing.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct row {
	char **cells;              /* ncols, owned */
	struct dv_catalog_type t;  /* strings point into cells */
	double *prices;            /* nregions */
	char family[24];
};

struct dv_catalog {
	char *source;
	char **comments;  /* text after '#', owned */
	size_t ncomments;
	char **cols;
	size_t ncols;
	/* column indexes, -1 when absent */
	int c_type, c_family, c_gen, c_arch, c_vcpus, c_mem, c_burst, c_base, c_boot;
	char **regions;
	int *price_col;
	size_t nregions;
	struct row *rows;
	size_t nrows;
};

const char *dv_arch_name(enum dv_arch a)
{
	return a == DV_ARCH_X86_64 ? "x86_64" : a == DV_ARCH_ARM64 ? "arm64" : "unknown";
}

enum dv_arch dv_arch_parse(const char *s)
{
	if (!s)
		return DV_ARCH_UNKNOWN;
	if (!strcmp(s, "x86_64") || !strcmp(s, "amd64") || !strcmp(s, "x86_64_mac"))
		return DV_ARCH_X86_64;
	if (!strcmp(s, "arm64") || !strcmp(s, "aarch64") || !strcmp(s, "arm64_mac"))
		return DV_ARCH_ARM64;
	return DV_ARCH_UNKNOWN;
}

/* ---- strict scalar parsing ---------------------------------------------- */

/* Plain decimal: digits, optionally '.' and digits; no sign, exponent,
 * spaces, hex, inf or nan (strtod alone accepts all of those). */
static bool parse_dec(const char *s, double max, double *out)
{
	size_t n = strlen(s), i = 0, digits = 0;
	if (n == 0 || n > 24)
		return false;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (i < n && s[i] == '.') {
		i++;
		size_t frac = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, frac++;
		if (!frac)
			return false;
	}
	if (i != n || !digits)
		return false;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !(v >= 0 && v <= max))
		return false;
	*out = v;
	return true;
}

static bool parse_uint(const char *s, unsigned max, unsigned *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 9)
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

static bool type_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 3 || n > 31 || !strchr(s, '.') || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-'))
			return false;
	return true;
}

static bool column_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* ---- CSV lexing ----------------------------------------------------------- */

struct lexer {
	const char *p, *end;
	unsigned line;
	const char *name;
};

static void free_cells(char **cells, size_t n)
{
	if (!cells)
		return;
	for (size_t i = 0; i < n; i++)
		free(cells[i]);
	free(cells);
}

/* Reads one record into *cells and *n (owned). Returns 1 for a record, 0 at
 * the end, or an error. Quoted cells may not span lines (no catalog needs
 * that, and it keeps line numbers honest). */
static int lex_record(struct lexer *lx, char ***cells, size_t *n, struct dv_err *err)
{
	*cells = NULL;
	*n = 0;
	if (lx->p >= lx->end)
		return 0;
	lx->line++;
	char **v = dv_calloc(DV_CATALOG_MAX_COLUMNS, sizeof *v);
	size_t nv = 0;
	struct dv_buf cell = DV_BUF_INIT;
	int r = 0;
	for (;;) {
		dv_buf_reset(&cell);
		bool quoted = false;
		if (lx->p < lx->end && *lx->p == '"') {
			quoted = true;
			lx->p++;
			for (;;) {
				if (lx->p >= lx->end || *lx->p == '\n' || *lx->p == '\r') {
					r = dv_error(err, DV_E_CORRUPT, "%s line %u: unterminated quoted cell", lx->name,
						     lx->line);
					goto fail;
				}
				if (*lx->p == '"') {
					if (lx->p + 1 < lx->end && lx->p[1] == '"') {
						dv_buf_add(&cell, "\"", 1);
						lx->p += 2;
						continue;
					}
					lx->p++;
					break;
				}
				if (*lx->p == 0) {
					r = dv_error(err, DV_E_CORRUPT, "%s line %u: NUL byte", lx->name, lx->line);
					goto fail;
				}
				dv_buf_add(&cell, lx->p++, 1);
				if (cell.len > DV_CATALOG_MAX_CELL) {
					r = dv_error(err, DV_E_CORRUPT, "%s line %u: cell longer than %u bytes", lx->name,
						     lx->line, DV_CATALOG_MAX_CELL);
					goto fail;
				}
			}
		}
		while (lx->p < lx->end && *lx->p != ',' && *lx->p != '\n' && *lx->p != '\r') {
			if (quoted) {
				r = dv_error(err, DV_E_CORRUPT, "%s line %u: text after a closing quote", lx->name,
					     lx->line);
				goto fail;
			}
			if (*lx->p == 0 || *lx->p == '"') {
				r = dv_error(err, DV_E_CORRUPT, "%s line %u: %s in an unquoted cell", lx->name, lx->line,
					     *lx->p ? "quote" : "NUL byte");
				goto fail;
			}
			dv_buf_add(&cell, lx->p++, 1);
			if (cell.len > DV_CATALOG_MAX_CELL) {
				r = dv_error(err, DV_E_CORRUPT, "%s line %u: cell longer than %u bytes", lx->name,
					     lx->line, DV_CATALOG_MAX_CELL);
				goto fail;
			}
		}
		if (nv >= DV_CATALOG_MAX_COLUMNS) {
			r = dv_error(err, DV_E_CORRUPT, "%s line %u: more than %u cells", lx->name, lx->line,
				     DV_CATALOG_MAX_COLUMNS);
			goto fail;
		}
		v[nv++] = cell.data ? dv_strdup((char *)cell.data) : dv_strdup("");
		if (lx->p < lx->end && *lx->p == ',') {
			lx->p++;
			continue;
		}
		break;
	}
	if (lx->p < lx->end && *lx->p == '\r')
		lx->p++;
	if (lx->p < lx->end && *lx->p == '\n')
		lx->p++;
	else if (lx->p < lx->end) {
		r = dv_error(err, DV_E_CORRUPT, "%s line %u: stray carriage return", lx->name, lx->line);
		goto fail;
	}
	dv_buf_release(&cell);
	*cells = v;
	*n = nv;
	return 1;
fail:
	dv_buf_release(&cell);
	free_cells(v, nv);
	return r;
}

/* Skips one line (comment or blank) and returns its text without the
 * line end in *text (owned) when want_text. */
static void skip_line(struct lexer *lx, char **text)
{
	const char *s = lx->p;
	while (lx->p < lx->end && *lx->p != '\n')
		lx->p++;
	size_t n = (size_t)(lx->p - s);
	if (n && s[n - 1] == '\r')
		n--;
	if (lx->p < lx->end)
		lx->p++;
	lx->line++;
	if (text)
		*text = dv_asprintf("%.*s", (int)n, s);
}

static bool line_blank(const struct lexer *lx)
{
	const char *q = lx->p;
	while (q < lx->end && (*q == ' ' || *q == '\t' || *q == '\r'))
		q++;
	return q >= lx->end || *q == '\n';
}

/* ---- rows ----------------------------------------------------------------- */

static const char *cell(const struct row *rw, int col)
{
	return col >= 0 ? rw->cells[col] : "";
}

/* Derives the typed view of a row from its cells, validating them. */
static int row_derive(struct dv_catalog *c, struct row *rw, unsigned line, struct dv_err *err)
{
	const char *nm = c->source;
	struct dv_catalog_type *t = &rw->t;
	const char *name = cell(rw, c->c_type);
	if (!type_name_ok(name))
		return dv_error(err, DV_E_CORRUPT, "%s line %u: bad instance type name '%.40s'", nm, line, name);
	t->name = name;
	const char *fam = cell(rw, c->c_family);
	size_t dot = (size_t)(strchr(name, '.') - name);
	if (*fam) {
		if (strlen(fam) >= sizeof rw->family || strncmp(fam, name, dot) || fam[dot])
			return dv_error(err, DV_E_CORRUPT, "%s line %u: family '%.40s' does not match type %s", nm, line,
					fam, name);
	}
	if (dot >= sizeof rw->family)
		return dv_error(err, DV_E_CORRUPT, "%s line %u: family of %s too long", nm, line, name);
	memcpy(rw->family, name, dot);
	rw->family[dot] = 0;
	t->family = rw->family;
	t->generation = 0;
	if (*cell(rw, c->c_gen) && !parse_uint(cell(rw, c->c_gen), 99, &t->generation))
		return dv_error(err, DV_E_CORRUPT, "%s line %u: %s: bad generation '%.40s'", nm, line, name,
				cell(rw, c->c_gen));
	const char *arch = cell(rw, c->c_arch);
	t->arch = dv_arch_parse(arch);
	if (t->arch == DV_ARCH_UNKNOWN || (strcmp(arch, "x86_64") && strcmp(arch, "arm64")))
		return dv_error(err, DV_E_CORRUPT, "%s line %u: %s: arch must be x86_64 or arm64, not '%.40s'", nm,
				line, name, arch);
	if (!parse_uint(cell(rw, c->c_vcpus), 4096, &t->vcpus) || t->vcpus == 0)
		return dv_error(err, DV_E_CORRUPT, "%s line %u: %s: vcpus must be 1..4096, not '%.40s'", nm, line,
				name, cell(rw, c->c_vcpus));
	if (!parse_dec(cell(rw, c->c_mem), 65536, &t->memory_gib) || t->memory_gib <= 0)
		return dv_error(err, DV_E_CORRUPT, "%s line %u: %s: memory_gib must be a number in (0, 65536], not "
				"'%.40s'", nm, line, name, cell(rw, c->c_mem));
	const char *b = cell(rw, c->c_burst);
	if (!strcmp(b, "true"))
		t->burstable = true;
	else if (!strcmp(b, "false"))
		t->burstable = false;
	else
		return dv_error(err, DV_E_CORRUPT, "%s line %u: %s: burstable must be true or false, not '%.40s'", nm,
				line, name, b);
	const char *base = cell(rw, c->c_base);
	t->baseline_pct = 0;
	if (t->burstable) {
		if (!parse_dec(base, 100, &t->baseline_pct) || t->baseline_pct <= 0)
			return dv_error(err, DV_E_CORRUPT,
					"%s line %u: %s: a burstable type needs baseline_pct_per_vcpu in (0, 100], "
					"not '%.40s'", nm, line, name, base);
	} else if (*base) {
		return dv_error(err, DV_E_CORRUPT, "%s line %u: %s: baseline_pct_per_vcpu given for a "
				"fixed-performance type", nm, line, name);
	}
	const char *bm = cell(rw, c->c_boot);
	t->uefi = t->legacy_bios = false;
	if (!*bm) {
		/* unknown: do not filter on it */
		t->uefi = t->legacy_bios = true;
	} else {
		const char *p = bm;
		while (*p) {
			size_t n = strcspn(p, ";");
			if (n == 4 && !strncmp(p, "uefi", 4))
				t->uefi = true;
			else if (n == 11 && !strncmp(p, "legacy-bios", 11))
				t->legacy_bios = true;
			else if (n == 0 || !(n == 14 && !strncmp(p, "uefi-preferred", 14)))
				return dv_error(err, DV_E_CORRUPT, "%s line %u: %s: bad boot_modes '%.60s'", nm, line,
						name, bm);
			p += n;
			if (*p == ';')
				p++;
		}
	}
	for (size_t i = 0; i < c->nregions; i++) {
		const char *pv = rw->cells[c->price_col[i]];
		rw->prices[i] = -1;
		if (*pv && !parse_dec(pv, 10000, &rw->prices[i]))
			return dv_error(err, DV_E_CORRUPT, "%s line %u: %s: bad price '%.40s' for %s", nm, line, name, pv,
					c->regions[i]);
	}
	t->prices = rw->prices;
	return 0;
}

void dv_catalog_free(struct dv_catalog *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nrows; i++) {
		free_cells(c->rows[i].cells, c->ncols);
		free(c->rows[i].prices);
	}
	free(c->rows);
	for (size_t i = 0; i < c->ncomments; i++)
		free(c->comments[i]);
	free(c->comments);
	free_cells(c->cols, c->ncols);
	free_cells(c->regions, c->nregions);
	free(c->price_col);
	free(c->source);
	free(c);
}

static int col_index(const struct dv_catalog *c, const char *name)
{
	for (size_t i = 0; i < c->ncols; i++)
		if (!strcmp(c->cols[i], name))
			return (int)i;
	return -1;
}

int dv_catalog_parse(const char *text, size_t len, const char *name, struct dv_catalog **out, struct dv_err *err)
{
	*out = NULL;
	if (!name)
		name = "<memory>";
	if (len > DV_CATALOG_MAX_BYTES)
		return dv_error(err, DV_E_CORRUPT, "%s: catalog larger than %u bytes", name, DV_CATALOG_MAX_BYTES);
	if (memchr(text, 0, len))
		return dv_error(err, DV_E_CORRUPT, "%s: NUL byte in the catalog", name);
	struct dv_catalog *c = dv_calloc(1, sizeof *c);
	c->source = dv_strdup(name);
	struct lexer lx = {text, text + len, 0, c->source};
	int r = 0;
	/* UTF-8 byte order mark */
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		lx.p += 3;

	/* comments and blank lines, then the header */
	for (;;) {
		if (lx.p >= lx.end) {
			r = dv_error(err, DV_E_CORRUPT, "%s: no header line", name);
			goto fail;
		}
		if (*lx.p == '#') {
			char *t;
			skip_line(&lx, &t);
			if (c->ncomments >= 256) {
				free(t);
				r = dv_error(err, DV_E_CORRUPT, "%s: too many comment lines", name);
				goto fail;
			}
			c->comments = dv_realloc(c->comments, (c->ncomments + 1) * sizeof *c->comments);
			c->comments[c->ncomments++] = dv_strdup(t + 1);
			free(t);
			continue;
		}
		if (line_blank(&lx)) {
			skip_line(&lx, NULL);
			continue;
		}
		break;
	}
	r = lex_record(&lx, &c->cols, &c->ncols, err);
	if (r < 0)
		goto fail;
	unsigned header_line = lx.line;
	for (size_t i = 0; i < c->ncols; i++) {
		if (!column_name_ok(c->cols[i]) || col_index(c, c->cols[i]) != (int)i) {
			r = dv_error(err, DV_E_CORRUPT, "%s line %u: bad or repeated column name '%.40s'", name,
				     header_line, c->cols[i]);
			goto fail;
		}
		static const char pfx[] = "price_usd_hour_";
		if (!strncmp(c->cols[i], pfx, sizeof pfx - 1) && c->cols[i][sizeof pfx - 1]) {
			char *reg = dv_strdup(c->cols[i] + sizeof pfx - 1);
			for (char *q = reg; *q; q++)
				if (*q == '_')
					*q = '-';
			c->regions = dv_realloc(c->regions, (c->nregions + 1) * sizeof *c->regions);
			c->price_col = dv_realloc(c->price_col, (c->nregions + 1) * sizeof *c->price_col);
			c->regions[c->nregions] = reg;
			c->price_col[c->nregions++] = (int)i;
		}
	}
	c->c_type = col_index(c, "type");
	c->c_family = col_index(c, "family");
	c->c_gen = col_index(c, "generation");
	c->c_arch = col_index(c, "arch");
	c->c_vcpus = col_index(c, "vcpus");
	c->c_mem = col_index(c, "memory_gib");
	c->c_burst = col_index(c, "burstable");
	c->c_base = col_index(c, "baseline_pct_per_vcpu");
	c->c_boot = col_index(c, "boot_modes");
	const char *missing = c->c_type < 0 ? "type" : c->c_arch < 0 ? "arch" : c->c_vcpus < 0 ? "vcpus"
		: c->c_mem < 0 ? "memory_gib" : c->c_burst < 0 ? "burstable" : c->c_base < 0 ? "baseline_pct_per_vcpu"
		: !c->nregions ? "price_usd_hour_<region>" : NULL;
	if (missing) {
		r = dv_error(err, DV_E_CORRUPT, "%s line %u: no '%s' column", name, header_line, missing);
		goto fail;
	}

	size_t cap = 0;
	for (;;) {
		if (lx.p < lx.end && (*lx.p == '#' || line_blank(&lx))) {
			skip_line(&lx, NULL);
			continue;
		}
		char **cells;
		size_t n;
		r = lex_record(&lx, &cells, &n, err);
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		if (n != c->ncols) {
			free_cells(cells, n);
			r = dv_error(err, DV_E_CORRUPT, "%s line %u: %zu cells, the header has %zu", name, lx.line, n,
				     c->ncols);
			goto fail;
		}
		if (c->nrows >= DV_CATALOG_MAX_ROWS) {
			free_cells(cells, n);
			r = dv_error(err, DV_E_CORRUPT, "%s: more than %u instance types", name, DV_CATALOG_MAX_ROWS);
			goto fail;
		}
		if (c->nrows == cap) {
			cap = cap ? cap * 2 : 64;
			c->rows = dv_realloc(c->rows, cap * sizeof *c->rows);
		}
		struct row *rw = &c->rows[c->nrows++];
		memset(rw, 0, sizeof *rw);
		rw->cells = cells;
		rw->prices = dv_calloc(c->nregions, sizeof *rw->prices);
		if ((r = row_derive(c, rw, lx.line, err)) < 0)
			goto fail;
		for (size_t k = 0; k + 1 < c->nrows; k++)
			if (!strcmp(c->rows[k].t.name, rw->t.name)) {
				r = dv_error(err, DV_E_CORRUPT, "%s line %u: %s listed twice", name, lx.line, rw->t.name);
				goto fail;
			}
	}
	if (!c->nrows) {
		r = dv_error(err, DV_E_CORRUPT, "%s: no instance types", name);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	dv_catalog_free(c);
	return r;
}

int dv_catalog_load(const char *path, struct dv_catalog **out, struct dv_err *err)
{
	*out = NULL;
	struct dv_buf b = DV_BUF_INIT;
	int r = dv_read_file(path, DV_CATALOG_MAX_BYTES, &b, err);
	if (r < 0) {
		dv_error_prefix(err, "catalog: ");
		return r;
	}
	r = dv_catalog_parse(b.data ? (const char *)b.data : "", b.len, path, out, err);
	dv_buf_release(&b);
	return r;
}

/* ---- lookup ---------------------------------------------------------------- */

char *dv_catalog_user_path(void)
{
	const char *x = getenv("XDG_DATA_HOME");
	if (x && *x == '/')
		return dv_asprintf("%s/diskvault/ec2-catalog.csv", x);
	const char *h = getenv("HOME");
	if (h && *h == '/')
		return dv_asprintf("%s/.local/share/diskvault/ec2-catalog.csv", h);
	return NULL;
}

int dv_catalog_locate(const char *explicit_path, char **path, struct dv_err *err)
{
	*path = NULL;
	if (explicit_path) {
		if (access(explicit_path, R_OK) < 0)
			return dv_error_errno(err, errno, "catalog %s", explicit_path);
		*path = dv_strdup(explicit_path);
		return 0;
	}
	const char *env = getenv("DISKVAULT_CATALOG");
	if (env && *env) {
		if (access(env, R_OK) < 0)
			return dv_error_errno(err, errno, "catalog %s (DISKVAULT_CATALOG)", env);
		*path = dv_strdup(env);
		return 0;
	}
	char *cand[3] = {dv_catalog_user_path(), dv_strdup(DV_CATALOG_INSTALLED), dv_strdup(DV_CATALOG_SOURCE)};
	struct dv_buf tried = DV_BUF_INIT;
	for (size_t i = 0; i < 3; i++) {
		if (!cand[i])
			continue;
		if (!*path && access(cand[i], R_OK) == 0) {
			*path = cand[i];
			cand[i] = NULL;
		} else if (!*path) {
			dv_buf_addf(&tried, "%s%s", tried.len ? ", " : "", cand[i]);
		}
		free(cand[i]);
	}
	int r = 0;
	if (!*path)
		r = dv_error(err, DV_E_NOT_FOUND, "no instance catalog found (tried %s); give --catalog FILE",
			     tried.data ? (char *)tried.data : "nothing");
	dv_buf_release(&tried);
	return r;
}

size_t dv_catalog_count(const struct dv_catalog *c) { return c->nrows; }

const struct dv_catalog_type *dv_catalog_at(const struct dv_catalog *c, size_t i)
{
	return i < c->nrows ? &c->rows[i].t : NULL;
}

const struct dv_catalog_type *dv_catalog_find(const struct dv_catalog *c, const char *type)
{
	for (size_t i = 0; i < c->nrows; i++)
		if (!strcmp(c->rows[i].t.name, type))
			return &c->rows[i].t;
	return NULL;
}

size_t dv_catalog_region_count(const struct dv_catalog *c) { return c->nregions; }
const char *dv_catalog_region(const struct dv_catalog *c, size_t i) { return i < c->nregions ? c->regions[i] : NULL; }

int dv_catalog_region_index(const struct dv_catalog *c, const char *region)
{
	for (size_t i = 0; i < c->nregions; i++)
		if (!strcmp(c->regions[i], region))
			return (int)i;
	return -1;
}

const char *dv_catalog_source(const struct dv_catalog *c) { return c->source; }

/* " key: value" -> value when the key matches. */
static const char *comment_value(const char *line, const char *key)
{
	while (*line == ' ')
		line++;
	size_t n = strlen(key);
	if (strncmp(line, key, n) || line[n] != ':')
		return NULL;
	line += n + 1;
	while (*line == ' ')
		line++;
	return line;
}

const char *dv_catalog_comment(const struct dv_catalog *c, const char *key)
{
	for (size_t i = 0; i < c->ncomments; i++) {
		const char *v = comment_value(c->comments[i], key);
		if (v)
			return v;
	}
	return NULL;
}

void dv_catalog_set_comment(struct dv_catalog *c, const char *key, const char *value)
{
	char *line = dv_asprintf(" %s: %s", key, value);
	for (char *q = line; *q; q++)
		if (*q == '\n' || *q == '\r')
			*q = ' ';
	for (size_t i = 0; i < c->ncomments; i++)
		if (comment_value(c->comments[i], key)) {
			free(c->comments[i]);
			c->comments[i] = line;
			return;
		}
	c->comments = dv_realloc(c->comments, (c->ncomments + 1) * sizeof *c->comments);
	c->comments[c->ncomments++] = line;
}

/* ---- update and write -------------------------------------------------------- */

static void set_cell(struct row *rw, int col, const char *v, bool *changed)
{
	if (col < 0 || !v || !strcmp(rw->cells[col], v))
		return;
	free(rw->cells[col]);
	rw->cells[col] = dv_strdup(v);
	*changed = true;
}

int dv_catalog_update(struct dv_catalog *c, const struct dv_catalog_spec *s, bool *changed, struct dv_err *err)
{
	*changed = false;
	struct row *rw = NULL;
	for (size_t i = 0; i < c->nrows; i++)
		if (!strcmp(c->rows[i].t.name, s->type))
			rw = &c->rows[i];
	if (!rw)
		return dv_error(err, DV_E_NOT_FOUND, "catalog: no instance type %s", s->type);
	/* work on a copy of the cells so a refused update changes nothing */
	char **saved = dv_calloc(c->ncols, sizeof *saved);
	for (size_t i = 0; i < c->ncols; i++)
		saved[i] = dv_strdup(rw->cells[i]);
	char num[32];
	if (s->arch != DV_ARCH_UNKNOWN)
		set_cell(rw, c->c_arch, dv_arch_name(s->arch), changed);
	if (s->vcpus) {
		snprintf(num, sizeof num, "%u", s->vcpus);
		set_cell(rw, c->c_vcpus, num, changed);
	}
	if (s->memory_mib) {
		/* GiB without trailing zeros, as the shipped file writes them ("0.5", "16") */
		snprintf(num, sizeof num, "%.3f", (double)s->memory_mib / 1024.0);
		char *e = num + strlen(num) - 1;
		while (*e == '0')
			*e-- = 0;
		if (*e == '.')
			*e = 0;
		set_cell(rw, c->c_mem, num, changed);
	}
	if (s->burstable >= 0) {
		set_cell(rw, c->c_burst, s->burstable ? "true" : "false", changed);
		if (!s->burstable)
			set_cell(rw, c->c_base, "", changed);
	}
	set_cell(rw, col_index(c, "ena"), s->ena, changed);
	set_cell(rw, col_index(c, "nvme"), s->nvme, changed);
	set_cell(rw, c->c_boot, s->boot_modes, changed);
	int r = row_derive(c, rw, 0, err);
	if (r < 0) {
		for (size_t i = 0; i < c->ncols; i++) {
			free(rw->cells[i]);
			rw->cells[i] = saved[i];
		}
		free(saved);
		*changed = false;
		struct dv_err e2;
		if (row_derive(c, rw, 0, &e2) < 0)
			DV_BUG("catalog row no longer valid after restore: %s", e2.msg);
		return r;
	}
	free_cells(saved, c->ncols);
	return 0;
}

static void add_cell(struct dv_buf *out, const char *v)
{
	if (!strpbrk(v, ",\"\r\n") && !(v[0] == '#')) {
		dv_buf_add(out, v, strlen(v));
		return;
	}
	dv_buf_add(out, "\"", 1);
	for (; *v; v++) {
		if (*v == '"')
			dv_buf_add(out, "\"\"", 2);
		else
			dv_buf_add(out, v, 1);
	}
	dv_buf_add(out, "\"", 1);
}

void dv_catalog_format(const struct dv_catalog *c, struct dv_buf *out)
{
	for (size_t i = 0; i < c->ncomments; i++)
		dv_buf_addf(out, "#%s\n", c->comments[i]);
	for (size_t i = 0; i < c->ncols; i++) {
		if (i)
			dv_buf_add(out, ",", 1);
		add_cell(out, c->cols[i]);
	}
	dv_buf_add(out, "\n", 1);
	for (size_t r = 0; r < c->nrows; r++) {
		for (size_t i = 0; i < c->ncols; i++) {
			if (i)
				dv_buf_add(out, ",", 1);
			add_cell(out, c->rows[r].cells[i]);
		}
		dv_buf_add(out, "\n", 1);
	}
}

int dv_catalog_save(const struct dv_catalog *c, const char *path, struct dv_err *err)
{
	struct dv_buf b = DV_BUF_INIT;
	dv_catalog_format(c, &b);
	int r = dv_write_file_atomic(path, b.data, b.len, 0644, err);
	if (r < 0)
		dv_error_prefix(err, "catalog: ");
	dv_buf_release(&b);
	return r;
}
