/* ebs_state.c - EBS import records in the repository (ebs_state.h). */
#include "ebs_state.h"

#include "crypt/crypt.h"

#include <stdlib.h>
#include <string.h>

#include "repo_internal.h"

#define EBS_RECORD_CAP (64u << 10)

static bool valid_snapshot(const char *s)
{
	if (!s || strlen(s) != DV_ID_HEX_LEN)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* Records are sealed like every other object of an encrypted repository
 * (their block signatures and snapshot ids are metadata too), with their
 * name as associated data; plain otherwise. */
static int put_sealed(struct dv_repo *r, const char *name, const void *p, size_t n, struct dv_err *err)
{
	struct dv_buf sealed = DV_BUF_INIT;
	size_t len;
	const uint8_t *q = dv_repo_seal(r, name, strlen(name), p, n, &sealed, &len);
	int rc = dv_store_put(r->store, name, q, len, err);
	dv_buf_release(&sealed);
	return rc;
}

/* Reads name (at most cap plaintext bytes) into out, unsealing it. */
static int get_sealed(struct dv_repo *r, const char *name, size_t cap, struct dv_buf *out, struct dv_err *err)
{
	struct dv_buf raw = DV_BUF_INIT;
	int rc = dv_store_get(r->store, name, cap + (r->encrypted ? DV_CRYPT_OVERHEAD : 0), &raw, err);
	if (rc == 0 && r->encrypted) {
		const uint8_t *p;
		size_t n;
		rc = dv_repo_unseal(r, name, strlen(name), raw.data, raw.len, out, &p, &n, name, err);
		dv_buf_release(&raw);
	} else if (rc == 0) {
		dv_buf_release(out);
		*out = raw;
	} else {
		dv_buf_release(&raw);
	}
	return rc;
}

int dv_ebs_state_put(struct dv_repo *r, const json_t *record, const uint8_t *sig, size_t sig_len, struct dv_err *err)
{
	const char *snap = json_string_value(json_object_get(record, "snapshot"));
	json_t *disk = json_object_get(record, "disk");
	if (!valid_snapshot(snap) || !json_is_integer(disk) || json_integer_value(disk) < 0)
		DV_BUG("EBS record without snapshot or disk");
	char name[128];
	snprintf(name, sizeof name, "ebs/%s-%lld.sig", snap, (long long)json_integer_value(disk));
	int rc = put_sealed(r, name, sig, sig_len, err);
	if (rc < 0)
		return rc;
	char *text = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		DV_BUG("json_dumps failed");
	snprintf(name, sizeof name, "ebs/%s-%lld", snap, (long long)json_integer_value(disk));
	rc = put_sealed(r, name, text, strlen(text), err);
	free(text);
	return rc;
}

struct collect {
	struct dv_repo *r;
	json_t *arr;
};

static int collect_one(const char *name, uint64_t size, void *ctx)
{
	struct collect *c = ctx;
	size_t n = strlen(name);
	if (size > EBS_RECORD_CAP || (n > 4 && !strcmp(name + n - 4, ".sig")) || strstr(name, ".tmp"))
		return 0;
	struct dv_buf b = DV_BUF_INIT;
	struct dv_err e;
	if (get_sealed(c->r, name, EBS_RECORD_CAP, &b, &e) == 0 && b.data) {
		json_t *j = json_loadb((char *)b.data, b.len, 0, NULL);
		if (json_is_object(j) && valid_snapshot(json_string_value(json_object_get(j, "snapshot"))) &&
		    json_is_integer(json_object_get(j, "disk")) &&
		    json_string_value(json_object_get(j, "ebs_snapshot_id")))
			json_array_append(c->arr, j);
		json_decref(j);
	}
	dv_buf_release(&b);
	return 0;
}

static int by_time(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "time"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "time"));
	return x < y ? -1 : x > y;
}

int dv_ebs_state_list(struct dv_repo *r, json_t **out, struct dv_err *err)
{
	struct collect c = {r, json_array()};
	int rc = dv_store_list(r->store, "ebs/", collect_one, &c, err);
	if (rc < 0 && rc != -DV_E_NOT_FOUND) {
		json_decref(c.arr);
		return rc;
	}
	size_t n = json_array_size(c.arr);
	json_t **v = dv_calloc(n ? n : 1, sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(c.arr, i));
	qsort(v, n, sizeof *v, by_time);
	json_t *sorted = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(sorted, v[i]);
	free(v);
	json_decref(c.arr);
	*out = sorted;
	return 0;
}

int dv_ebs_state_get_sig(struct dv_repo *r, const char *snapshot, unsigned disk, uint64_t n_blocks, struct dv_buf *out,
			 struct dv_err *err)
{
	if (!valid_snapshot(snapshot))
		return dv_error(err, DV_E_USAGE, "invalid snapshot id");
	char name[128];
	snprintf(name, sizeof name, "ebs/%s-%u.sig", snapshot, disk);
	uint64_t want = n_blocks * DV_EBS_SIG_ENTRY;
	if (want > (1ull << 34))
		return dv_error(err, DV_E_CORRUPT, "%s: too many blocks", name);
	dv_buf_reset(out);
	int rc = get_sealed(r, name, (size_t)want, out, err);
	if (rc < 0)
		return rc;
	if (out->len != want)
		return dv_error(err, DV_E_CORRUPT, "%s: %zu bytes, expected %llu", name, out->len,
				(unsigned long long)want);
	return 0;
}

/* The snapshot id of an ebs/ name "ebs/<64 hex>-<disk>[.sig]" into snap,
 * and whether it is a table; false for any other name (left alone). */
static bool parse_record_name(const char *name, char snap[DV_ID_HEX_LEN + 1], bool *is_sig)
{
	if (strncmp(name, "ebs/", 4))
		return false;
	const char *p = name + 4;
	if (strlen(p) < DV_ID_HEX_LEN + 2 || p[DV_ID_HEX_LEN] != '-')
		return false;
	memcpy(snap, p, DV_ID_HEX_LEN);
	snap[DV_ID_HEX_LEN] = 0;
	if (!valid_snapshot(snap))
		return false;
	const char *d = p + DV_ID_HEX_LEN + 1, *e = d;
	while (*e >= '0' && *e <= '9')
		e++;
	if (e == d || e - d > 9)
		return false;
	*is_sig = !strcmp(e, ".sig");
	return *is_sig || !*e;
}

void dv_ebs_lineage_of(const json_t *rec, struct dv_ebs_lineage *out)
{
	out->host = json_string_value(json_object_get(rec, "host"));
	out->source = json_string_value(json_object_get(rec, "source"));
	out->disk = (unsigned)json_integer_value(json_object_get(rec, "disk"));
	out->region = json_string_value(json_object_get(rec, "region"));
	out->endpoint = json_string_value(json_object_get(rec, "endpoint"));
}

static bool same_str(const char *a, const char *b)
{
	return a && b ? !strcmp(a, b) : !a && !b;
}

bool dv_ebs_lineage_same(const struct dv_ebs_lineage *a, const struct dv_ebs_lineage *b)
{
	if (!same_str(a->host, b->host) || !same_str(a->region, b->region) || !same_str(a->endpoint, b->endpoint))
		return false;
	if (a->source || b->source)
		return same_str(a->source, b->source);
	return a->disk == b->disk;
}

int dv_ebs_state_purge(struct dv_repo *r, const char *const *existing, size_t n, bool dry_run, uint64_t *deleted,
		       struct dv_err *err)
{
	*deleted = 0;
	struct dv_strlist names = {0}, records = {0}, tables = {0}, newest = {0};
	struct dv_chunk_index *exists = dv_chunk_index_new();
	json_t *all = NULL;
	int rc = dv_store_list_names(r->store, "ebs/", &names, err);
	if (rc == -DV_E_NOT_FOUND)
		rc = 0; /* a local repository where nothing was imported yet */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct dv_id id;
		if (dv_id_parse(&id, existing[i]) == 0)
			dv_chunk_index_insert(exists, &id, &(struct dv_chunk_loc){0});
	}
	/* the objects of snapshots that are gone */
	struct dv_strlist gone = {0};
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		char snap[DV_ID_HEX_LEN + 1];
		bool is_sig;
		struct dv_id id;
		if (parse_record_name(names.v[i], snap, &is_sig) && dv_id_parse(&id, snap) == 0 &&
		    !dv_chunk_index_lookup(exists, &id, NULL))
			dv_strlist_add(&gone, names.v[i]);
	}
	if (rc == 0 && gone.n)
		rc = dv_ebs_state_list(r, &all, err);
	if (rc == 0 && gone.n) {
		/* the newest record of each lineage: "<snapshot>-<disk>" kept */
		size_t nall = json_array_size(all), nseen = 0;
		struct dv_ebs_lineage *seen = dv_calloc(nall ? nall : 1, sizeof *seen);
		for (size_t k = nall; k-- > 0;) {
			const json_t *rec = json_array_get(all, k);
			struct dv_ebs_lineage lin;
			dv_ebs_lineage_of(rec, &lin);
			bool first = true;
			for (size_t s = 0; first && s < nseen; s++)
				first = !dv_ebs_lineage_same(&seen[s], &lin);
			if (first) {
				seen[nseen++] = lin;
				char *keep = dv_asprintf("ebs/%s-%lld", json_string_value(json_object_get(rec, "snapshot")),
							 (long long)json_integer_value(json_object_get(rec, "disk")));
				dv_strlist_add(&newest, keep);
				free(keep);
			}
		}
		free(seen);
		for (size_t i = 0; i < gone.n; i++) {
			size_t len = strlen(gone.v[i]);
			bool is_sig = len > 4 && !strcmp(gone.v[i] + len - 4, ".sig");
			size_t base = is_sig ? len - 4 : len;
			bool kept = false;
			for (size_t s = 0; !kept && s < newest.n; s++)
				kept = strlen(newest.v[s]) == base && !strncmp(newest.v[s], gone.v[i], base);
			if (!kept)
				dv_strlist_add(is_sig ? &tables : &records, gone.v[i]);
		}
	}
	dv_strlist_release(&gone);
	if (rc == 0)
		*deleted = records.n + tables.n;
	if (rc == 0 && !dry_run)
		rc = dv_store_delete_many(r->store, records.v, records.n, err);
	if (rc == 0 && !dry_run)
		rc = dv_store_delete_many(r->store, tables.v, tables.n, err);
	json_decref(all);
	dv_chunk_index_free(exists);
	dv_strlist_release(&names);
	dv_strlist_release(&records);
	dv_strlist_release(&tables);
	dv_strlist_release(&newest);
	return rc;
}
