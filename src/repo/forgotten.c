/*
 * forgotten.c - the forgotten-snapshot ledger: which snapshots `forget`
 * removed from a repository, kept on this machine so that a manifest that
 * reappears later (an attacker with write access to the bucket replaying
 * an old, validly sealed object, or an old copy of the repository put back)
 * is reported instead of trusted. Encryption cannot catch this: the
 * replayed manifest is genuine.
 *
 * One file per repository id and location, in the state directory:
 * "forgotten-<hash>", one line "<snapshot id> <RFC 3339 time>" per
 * forgotten snapshot, appended (and fsync'ed) once the manifest is
 * deleted, mode 0600 (a forget killed in between leaves that one snapshot
 * unrecorded: a missed detection, never a false alarm). Keyed by location too, because copies of one
 * repository (a local repository and its S3 copy) share the id but not
 * their snapshot sets. The ledger only knows what forget run on this
 * machine removed; formats/encryption.md states the limits.
 */
#include "repo_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LEDGER_MAX (64u << 20)

/* The location in a stable spelling: a local path resolved, an S3 URL
 * without trailing slashes. */
static char *canonical_location(const struct dv_repo *r)
{
	const char *loc = dv_store_location(r->store);
	if (dv_store_is_local(r->store)) {
		char *real = realpath(loc, NULL);
		if (real)
			return real;
	}
	size_t n = strlen(loc);
	while (n > 1 && loc[n - 1] == '/')
		n--;
	return dv_asprintf("%.*s", (int)n, loc);
}

static char *ledger_path(const struct dv_repo *r)
{
	char *loc = canonical_location(r);
	char *key = dv_asprintf("%s\n%s", r->id, loc);
	struct dv_id h;
	dv_sha256(key, strlen(key), &h);
	char hex[DV_ID_HEX_LEN + 1];
	dv_id_hex(hex, &h);
	char *dir = dv_state_dir();
	char *path = dv_asprintf("%s/forgotten-%.32s", dir, hex);
	free(dir);
	free(key);
	free(loc);
	return path;
}

/* Index of the entry for id in the sorted ledger, or -1. */
static ssize_t find(const struct dv_strlist *l, const char *id)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strncmp(l->v[mid], id, DV_ID_HEX_LEN);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int dv_forgotten_load(struct dv_repo *r, struct dv_err *err)
{
	dv_strlist_release(&r->forgotten);
	free(r->ledger_path);
	r->ledger_path = ledger_path(r);
	struct dv_buf b = DV_BUF_INIT;
	int rc = dv_read_file(r->ledger_path, LEDGER_MAX, &b, err);
	if (rc == -DV_E_NOT_FOUND)
		return 0;
	if (rc < 0)
		return rc;
	char *p = (char *)b.data, *end = p + b.len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct dv_id x;
		char id[DV_ID_HEX_LEN + 1];
		/* A torn last line (crash while appending) is ignored. */
		if (len > DV_ID_HEX_LEN && p[DV_ID_HEX_LEN] == ' ') {
			memcpy(id, p, DV_ID_HEX_LEN);
			id[DV_ID_HEX_LEN] = 0;
			if (dv_id_parse(&x, id) == 0) {
				char *line = dv_asprintf("%.*s", (int)len, p);
				dv_strlist_add(&r->forgotten, line);
				free(line);
			}
		}
		p += len + (nl != NULL);
	}
	dv_buf_release(&b);
	dv_strlist_sort(&r->forgotten);
	return 0;
}

const char *dv_forgotten_when(const struct dv_repo *r, const char *id)
{
	ssize_t i = find(&r->forgotten, id);
	return i < 0 ? NULL : r->forgotten.v[i] + DV_ID_HEX_LEN + 1;
}

int dv_forgotten_record(struct dv_repo *r, const char *id, struct dv_err *err)
{
	if (dv_forgotten_when(r, id))
		return 0;
	char *dir = dv_state_dir();
	int rc = dv_mkdir_p(dir, 0700, err);
	free(dir);
	if (rc < 0)
		return dv_error_prefix(err, "recording forgotten snapshot %.16s: ", id);
	char now[32], line[DV_ID_HEX_LEN + 40];
	dv_format_time(now, sizeof now, dv_unix_now());
	int n = snprintf(line, sizeof line, "%s %s\n", id, now);
	int fd = open(r->ledger_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return dv_error_errno(err, errno, "recording forgotten snapshot %.16s in %s", id, r->ledger_path);
	rc = dv_write_all(fd, line, (size_t)n, err, r->ledger_path);
	if (rc == 0 && fsync(fd) < 0)
		rc = dv_error_errno(err, errno, "fsync of %s", r->ledger_path);
	close(fd);
	if (rc < 0)
		return rc;
	line[n - 1] = 0;
	dv_strlist_add(&r->forgotten, line);
	dv_strlist_sort(&r->forgotten);
	return 0;
}

int dv_forgotten_unrecord(struct dv_repo *r, const char *id, struct dv_err *err)
{
	ssize_t i = find(&r->forgotten, id);
	if (i < 0)
		return 0;
	free(r->forgotten.v[i]);
	memmove(&r->forgotten.v[i], &r->forgotten.v[i + 1], (r->forgotten.n - (size_t)i - 1) * sizeof *r->forgotten.v);
	r->forgotten.n--;
	struct dv_buf b = DV_BUF_INIT;
	for (size_t k = 0; k < r->forgotten.n; k++) {
		dv_buf_add(&b, r->forgotten.v[k], strlen(r->forgotten.v[k]));
		dv_buf_add(&b, "\n", 1);
	}
	int rc = dv_write_file_atomic(r->ledger_path, b.data, b.len, 0600, err);
	dv_buf_release(&b);
	return rc;
}

int dv_forgotten_purge(struct dv_repo *r, uint64_t *removed, struct dv_err *err)
{
	*removed = 0;
	if (r->forgotten.n == 0)
		return 0;
	struct dv_strlist ids = {0}, back = {0};
	int rc = dv_repo_list_ids(r, "snapshots", &ids, err);
	for (size_t i = 0; rc == 0 && i < ids.n; i++)
		if (dv_forgotten_when(r, ids.v[i])) {
			char name[128];
			snprintf(name, sizeof name, "snapshots/%s", ids.v[i]);
			dv_strlist_add(&back, name);
		}
	if (rc == 0 && back.n)
		rc = dv_store_delete_many(r->store, back.v, back.n, err);
	if (rc == 0)
		*removed = back.n;
	dv_strlist_release(&back);
	dv_strlist_release(&ids);
	return rc;
}
