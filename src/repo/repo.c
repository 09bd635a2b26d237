/* repo.c - repository config, content-addressed objects, snapshots. */
#include <stdio.h>
#include "repo_internal.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile int no_interrupt;
volatile int *dv_interrupt_flag = &no_interrupt;

bool dv_repo_interrupted(void) { return *dv_interrupt_flag != 0; }

void dv_repo_init_opts_default(struct dv_repo_init_opts *o)
{
	memset(o, 0, sizeof *o);
	dv_chunker_params_default(&o->chunker);
	o->zstd_level = 3;
	o->pack_size = 32u << 20;
}

static const char *const repo_dirs[] = {"snapshots", "index", "diskindex", "packs", "locks", "tmp"};

static json_t *config_new(const struct dv_repo_init_opts *o, const char *id)
{
	char seed[65], created[32];
	dv_hex(seed, o->chunker.seed, sizeof o->chunker.seed);
	dv_format_time(created, sizeof created, dv_unix_now());
	return json_pack("{s:s, s:i, s:s, s:s, s:{s:s, s:i, s:i, s:i, s:s}, s:s, s:{s:s, s:i}, s:i, s:n}",
			 "format", "diskvault-repository", "version", DV_REPO_VERSION, "id", id, "created", created,
			 "chunker", "algorithm", "fastcdc-gear64", "min", (json_int_t)o->chunker.min, "avg",
			 (json_int_t)o->chunker.avg, "max", (json_int_t)o->chunker.max, "seed", seed, "hash", "sha256",
			 "compression", "algorithm", "zstd", "level", o->zstd_level, "pack_size",
			 (json_int_t)o->pack_size, "encryption");
}

static int is_empty_dir_cb(const char *name, uint64_t size, void *ctx)
{
	(void)name;
	(void)size;
	*(bool *)ctx = false;
	return 1;
}

int dv_repo_init(const char *location, const struct dv_repo_init_opts *o, char id_out[33], struct dv_err *err)
{
	int r = dv_chunker_params_check(&o->chunker, err);
	if (r < 0)
		return r;
	if (o->zstd_level < 1 || o->zstd_level > 19)
		return dv_error(err, DV_E_USAGE, "compression level %d is outside 1..19", o->zstd_level);
	if (o->pack_size < (1u << 20) || o->pack_size > (1u << 30))
		return dv_error(err, DV_E_USAGE, "pack size %u is outside 1 MiB..1 GiB", o->pack_size);
	struct dv_store *s = NULL;
	r = dv_store_open(location, true, &s, err);
	if (r < 0)
		return r;
	uint64_t size;
	struct dv_err tmp;
	if (dv_store_stat(s, "config", &size, &tmp) == 0) {
		r = dv_error(err, DV_E_EXISTS, "%s: a repository already exists here", location);
		goto out;
	}
	/* Refuse a directory that holds anything: a repository must not mix
	 * with other files (and prune must never meet foreign ones). */
	bool empty = true;
	if (dv_store_is_local(s)) {
		DIR *d = opendir(location);
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				empty = false;
		if (d)
			closedir(d);
	} else {
		for (size_t i = 0; i < DV_ARRAY_SIZE(repo_dirs) && empty; i++) {
			char *prefix = dv_asprintf("%s/", repo_dirs[i]);
			r = dv_store_list(s, prefix, is_empty_dir_cb, &empty, err);
			free(prefix);
			if (r < 0)
				goto out;
		}
		r = 0;
	}
	if (!empty) {
		r = dv_error(err, DV_E_EXISTS, "%s: directory is not empty", location);
		goto out;
	}
	if (dv_store_is_local(s)) {
		for (size_t i = 0; i < DV_ARRAY_SIZE(repo_dirs); i++) {
			char *dir = dv_asprintf("%s/%s", location, repo_dirs[i]);
			r = dv_mkdir_p(dir, 0700, err);
			free(dir);
			if (r < 0)
				goto out;
		}
	}
	char id[33];
	dv_random_hex(id, 16);
	json_t *cfg = config_new(o, id);
	char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(cfg);
	r = dv_store_put(s, "config", text, strlen(text), err);
	free(text);
	if (r == 0 && id_out)
		memcpy(id_out, id, 33);
out:
	dv_store_free(s);
	return r;
}

static int get_uint(const json_t *obj, const char *key, uint64_t lo, uint64_t hi, uint64_t *out, const char *what,
		    struct dv_err *err)
{
	json_t *v = json_object_get(obj, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < lo ||
	    (uint64_t)json_integer_value(v) > hi)
		return dv_error(err, DV_E_CORRUPT, "%s: field '%s' missing or out of range", what, key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int parse_config(struct dv_repo *r, const struct dv_buf *b, struct dv_err *err)
{
	const char *loc = dv_store_location(r->store);
	json_error_t je;
	json_t *cfg = json_loadb((const char *)b->data, b->len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(cfg)) {
		json_decref(cfg);
		return dv_error(err, DV_E_NOT_REPO, "%s: not a diskvault repository (config is not JSON: %s)", loc,
				je.text);
	}
	r->config = cfg;
	const char *fmt = json_string_value(json_object_get(cfg, "format"));
	if (!fmt || strcmp(fmt, "diskvault-repository"))
		return dv_error(err, DV_E_NOT_REPO, "%s: not a diskvault repository (config format is not "
				"diskvault-repository)", loc);
	json_t *ver = json_object_get(cfg, "version");
	if (!json_is_integer(ver))
		return dv_error(err, DV_E_CORRUPT, "%s/config: version missing", loc);
	if (json_integer_value(ver) != DV_REPO_VERSION)
		return dv_error(err, DV_E_VERSION,
				"%s: repository format version %lld is not supported by this diskvault (supports %d)",
				loc, (long long)json_integer_value(ver), DV_REPO_VERSION);
	const char *id = json_string_value(json_object_get(cfg, "id"));
	if (!id || strlen(id) != 32)
		return dv_error(err, DV_E_CORRUPT, "%s/config: repository id missing", loc);
	memcpy(r->id, id, 33);
	json_t *ch = json_object_get(cfg, "chunker");
	const char *alg = json_string_value(json_object_get(ch, "algorithm"));
	const char *seed = json_string_value(json_object_get(ch, "seed"));
	if (!alg || strcmp(alg, "fastcdc-gear64") || !seed || strlen(seed) != 64 ||
	    dv_unhex(r->chunker.seed, seed, 32) < 0)
		return dv_error(err, DV_E_CORRUPT, "%s/config: unknown or malformed chunker", loc);
	uint64_t v;
	int rc;
	if ((rc = get_uint(ch, "min", 64, UINT32_MAX, &v, "config chunker", err)) < 0)
		return rc;
	r->chunker.min = (uint32_t)v;
	if ((rc = get_uint(ch, "avg", 1024, UINT32_MAX, &v, "config chunker", err)) < 0)
		return rc;
	r->chunker.avg = (uint32_t)v;
	if ((rc = get_uint(ch, "max", 1024, UINT32_MAX, &v, "config chunker", err)) < 0)
		return rc;
	r->chunker.max = (uint32_t)v;
	if ((rc = dv_chunker_params_check(&r->chunker, err)) < 0)
		return dv_error_prefix(err, "%s/config: ", loc);
	json_t *comp = json_object_get(cfg, "compression");
	const char *calg = json_string_value(json_object_get(comp, "algorithm"));
	if (!calg || strcmp(calg, "zstd"))
		return dv_error(err, DV_E_CORRUPT, "%s/config: unknown compression", loc);
	if ((rc = get_uint(comp, "level", 1, 19, &v, "config compression", err)) < 0)
		return rc;
	r->zstd_level = (int)v;
	if ((rc = get_uint(cfg, "pack_size", 1u << 20, 1u << 30, &v, "config", err)) < 0)
		return rc;
	r->pack_size = (uint32_t)v;
	const char *hash = json_string_value(json_object_get(cfg, "hash"));
	if (!hash || strcmp(hash, "sha256"))
		return dv_error(err, DV_E_CORRUPT, "%s/config: unknown hash", loc);
	json_t *enc = json_object_get(cfg, "encryption");
	if (!enc)
		return dv_error(err, DV_E_CORRUPT, "%s/config: field 'encryption' missing", loc);
	if (!json_is_null(enc))
		return dv_error(err, DV_E_VERSION, "%s: repository is encrypted; this build does not support encryption",
				loc);
	return 0;
}

int dv_repo_open(const char *location, struct dv_repo **out, struct dv_err *err)
{
	struct dv_repo *r = dv_calloc(1, sizeof *r);
	int rc = dv_store_open(location, false, &r->store, err);
	if (rc < 0) {
		free(r);
		return rc;
	}
	struct dv_buf b = DV_BUF_INIT;
	rc = dv_store_get(r->store, "config", DV_MAX_CONFIG, &b, err);
	if (rc == -DV_E_NOT_FOUND)
		rc = dv_error(err, DV_E_NOT_REPO, "%s: not a diskvault repository (no config)", location);
	if (rc == 0)
		rc = parse_config(r, &b, err);
	dv_buf_release(&b);
	if (rc == 0 && dv_store_is_local(r->store)) {
		/* Writers need the spool directory (it may have been removed). */
		rc = dv_mkdir_p(dv_store_spool_dir(r->store), 0700, err);
	}
	if (rc < 0) {
		dv_repo_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void dv_repo_free(struct dv_repo *r)
{
	if (!r)
		return;
	json_decref(r->config);
	dv_store_free(r->store);
	free(r);
}

const char *dv_repo_id(const struct dv_repo *r) { return r->id; }
const char *dv_repo_location(const struct dv_repo *r) { return dv_store_location(r->store); }
const json_t *dv_repo_config(const struct dv_repo *r) { return r->config; }

/* ---- content-addressed objects ---------------------------------------- */

int dv_repo_put_content(struct dv_repo *r, const char *dir, const void *data, size_t len,
			char id_hex[DV_ID_HEX_LEN + 1], struct dv_err *err)
{
	struct dv_id id;
	dv_sha256(data, len, &id);
	dv_id_hex(id_hex, &id);
	char name[256];
	snprintf(name, sizeof name, "%s/%s", dir, id_hex);
	return dv_store_put(r->store, name, data, len, err);
}

int dv_repo_get_content(struct dv_repo *r, const char *dir, const char *id_hex, size_t cap, struct dv_buf *out,
			struct dv_err *err)
{
	struct dv_id want, got;
	if (dv_id_parse(&want, id_hex) < 0)
		return dv_error(err, DV_E_CORRUPT, "%s/%s: malformed object id", dir, id_hex);
	char name[256];
	snprintf(name, sizeof name, "%s/%s", dir, id_hex);
	int rc = dv_store_get(r->store, name, cap, out, err);
	if (rc == -DV_E_NOT_FOUND)
		return dv_error(err, DV_E_CORRUPT, "%s: object is missing", name);
	if (rc < 0)
		return rc;
	dv_sha256(out->data, out->len, &got);
	if (!dv_id_eq(&want, &got))
		return dv_error(err, DV_E_CORRUPT, "%s: content does not match its name (corrupt or truncated)", name);
	return 0;
}

/* ---- snapshots ---------------------------------------------------------- */

static int validate_manifest(const json_t *m, const char *what, struct dv_err *err)
{
	const char *fmt = json_string_value(json_object_get(m, "format"));
	if (!fmt || strcmp(fmt, "diskvault-snapshot"))
		return dv_error(err, DV_E_CORRUPT, "%s: not a snapshot manifest", what);
	json_t *ver = json_object_get(m, "version");
	if (!json_is_integer(ver))
		return dv_error(err, DV_E_CORRUPT, "%s: version missing", what);
	if (json_integer_value(ver) != DV_SNAPSHOT_VERSION)
		return dv_error(err, DV_E_VERSION, "%s: snapshot format version %lld is not supported (supports %d)",
				what, (long long)json_integer_value(ver), DV_SNAPSHOT_VERSION);
	int64_t t;
	const char *ts = json_string_value(json_object_get(m, "time"));
	if (!ts || dv_parse_time(ts, &t) < 0)
		return dv_error(err, DV_E_CORRUPT, "%s: time missing or malformed", what);
	static const char *const strings[] = {"host", "mode", "repository"};
	for (size_t k = 0; k < DV_ARRAY_SIZE(strings); k++)
		if (!json_is_string(json_object_get(m, strings[k])))
			return dv_error(err, DV_E_CORRUPT, "%s: field '%s' missing or not a string", what, strings[k]);
	json_t *disks = json_object_get(m, "disks");
	if (!json_is_array(disks) || json_array_size(disks) == 0)
		return dv_error(err, DV_E_CORRUPT, "%s: no disks", what);
	size_t i;
	json_t *d;
	json_array_foreach(disks, i, d) {
		struct dv_id x;
		const char *ix = json_string_value(json_object_get(d, "index"));
		const char *dg = json_string_value(json_object_get(d, "digest"));
		json_t *size = json_object_get(d, "size");
		if (!json_is_string(json_object_get(d, "source")) || !ix || dv_id_parse(&x, ix) < 0 || !dg || dv_id_parse(&x, dg) < 0 || !json_is_integer(size) ||
		    json_integer_value(size) < 0)
			return dv_error(err, DV_E_CORRUPT, "%s: disk %zu: index, digest or size missing or malformed",
					what, i);
	}
	return 0;
}

int dv_snapshot_load(struct dv_repo *r, const char *id, json_t **out, struct dv_err *err)
{
	struct dv_buf b = DV_BUF_INIT;
	char what[128];
	snprintf(what, sizeof what, "snapshot %.16s", id);
	int rc = dv_repo_get_content(r, "snapshots", id, DV_MAX_MANIFEST, &b, err);
	if (rc < 0) {
		dv_buf_release(&b);
		return rc;
	}
	json_error_t je;
	json_t *m = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES, &je);
	dv_buf_release(&b);
	if (!json_is_object(m)) {
		json_decref(m);
		return dv_error(err, DV_E_CORRUPT, "%s: manifest is not valid JSON: %s", what, je.text);
	}
	rc = validate_manifest(m, what, err);
	if (rc < 0) {
		json_decref(m);
		return rc;
	}
	*out = m;
	return 0;
}

struct name_list {
	char **v;
	size_t n, cap;
};

static int collect_name(const char *name, uint64_t size, void *ctx)
{
	(void)size;
	struct name_list *l = ctx;
	const char *base = strrchr(name, '/');
	base = base ? base + 1 : name;
	struct dv_id x;
	if (dv_id_parse(&x, base) < 0)
		return 0; /* not ours (temporary or foreign file): check reports it */
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = dv_realloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n++] = dv_strdup(base);
	return 0;
}

static void name_list_release(struct name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static int cmp_snap(const void *a, const void *b)
{
	const struct dv_snapshot_ref *x = a, *y = b;
	if (x->time_us != y->time_us)
		return x->time_us < y->time_us ? -1 : 1;
	return strcmp(x->id, y->id);
}

int dv_snapshot_list_load(struct dv_repo *r, struct dv_snapshot_list *out, struct dv_err *err)
{
	struct name_list names = {0};
	memset(out, 0, sizeof *out);
	int rc = dv_store_list(r->store, "snapshots/", collect_name, &names, err);
	if (rc < 0)
		goto out;
	out->v = dv_calloc(names.n, sizeof *out->v);
	for (size_t i = 0; i < names.n; i++) {
		json_t *m;
		rc = dv_snapshot_load(r, names.v[i], &m, err);
		if (rc < 0) {
			dv_snapshot_list_release(out);
			goto out;
		}
		struct dv_snapshot_ref *s = &out->v[out->n++];
		memcpy(s->id, names.v[i], sizeof s->id);
		s->manifest = m;
		if (dv_parse_time(json_string_value(json_object_get(m, "time")), &s->time) < 0)
			s->time = 0;
		json_t *us = json_object_get(m, "time_unix_us");
		s->time_us = json_is_integer(us) ? (int64_t)json_integer_value(us) : s->time * 1000000;
	}
	qsort(out->v, out->n, sizeof *out->v, cmp_snap);
out:
	name_list_release(&names);
	return rc;
}

void dv_snapshot_list_release(struct dv_snapshot_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		json_decref(l->v[i].manifest);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int dv_snapshot_resolve(struct dv_repo *r, const char *spec, char id[DV_ID_HEX_LEN + 1], struct dv_err *err)
{
	struct name_list names = {0};
	int rc = dv_store_list(r->store, "snapshots/", collect_name, &names, err);
	if (rc < 0)
		goto out;
	if (!strcmp(spec, "latest")) {
		struct dv_snapshot_list l;
		rc = dv_snapshot_list_load(r, &l, err);
		if (rc < 0)
			goto out;
		if (l.n == 0)
			rc = dv_error(err, DV_E_NOT_FOUND, "repository %s has no snapshots", dv_store_location(r->store));
		else
			memcpy(id, l.v[l.n - 1].id, DV_ID_HEX_LEN + 1);
		dv_snapshot_list_release(&l);
		goto out;
	}
	size_t len = strlen(spec), found = 0;
	if (len < 4 || len > DV_ID_HEX_LEN) {
		rc = dv_error(err, DV_E_USAGE, "snapshot '%s': give 'latest' or at least 4 hex digits of an id", spec);
		goto out;
	}
	for (size_t i = 0; i < names.n; i++)
		if (!strncmp(names.v[i], spec, len)) {
			if (found++)
				break;
			memcpy(id, names.v[i], DV_ID_HEX_LEN + 1);
		}
	if (found == 0)
		rc = dv_error(err, DV_E_NOT_FOUND, "snapshot %s not found", spec);
	else if (found > 1)
		rc = dv_error(err, DV_E_USAGE, "snapshot prefix %s is ambiguous", spec);
out:
	name_list_release(&names);
	return rc;
}
