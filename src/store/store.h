/*
 * store.h - where repository objects live: a local directory or (later) an
 * S3 prefix. Object names are relative paths such as "config",
 * "snapshots/<id>" or "packs/3f/<id>". Every object is immutable once
 * written, so a backend needs no read-modify-write: put is atomic (a
 * reader sees the whole object or none), get_range serves ranged reads
 * (S3 Range GETs), and list/delete serve prune and check.
 *
 * Thread safety: all calls may be made from several threads at once.
 * Errors follow util.h; a missing object is DV_E_NOT_FOUND.
 */
#ifndef DV_STORE_H
#define DV_STORE_H

#include "util/util.h"

struct dv_store;

/* Opens location (a directory path; "s3://" comes with the S3 backend).
 * create: make the directory if missing. Caller frees with dv_store_free. */
int dv_store_open(const char *location, bool create, struct dv_store **out, struct dv_err *err) DV_WUR;
void dv_store_free(struct dv_store *s);
/* The location as given, for messages. Borrowed. */
const char *dv_store_location(const struct dv_store *s);

/* Atomically writes name with data (temp file, fsync, rename, fsync dir). */
int dv_store_put(struct dv_store *s, const char *name, const void *data, size_t len, struct dv_err *err) DV_WUR;
/* Publishes a finished spool file (created in dv_store_spool_dir, already
 * fsync'ed) as name; the spool file is consumed (renamed or uploaded and
 * unlinked). */
int dv_store_put_file(struct dv_store *s, const char *name, const char *spool_path, struct dv_err *err) DV_WUR;
/* Reads the whole object; larger than cap is DV_E_CORRUPT. */
int dv_store_get(struct dv_store *s, const char *name, size_t cap, struct dv_buf *out, struct dv_err *err) DV_WUR;
/* Reads exactly len bytes at off into out (replacing its content); an
 * object shorter than off+len is DV_E_CORRUPT ("truncated"). */
int dv_store_get_range(struct dv_store *s, const char *name, uint64_t off, size_t len, struct dv_buf *out,
		       struct dv_err *err) DV_WUR;
/* Size of an object; DV_E_NOT_FOUND when missing. */
int dv_store_stat(struct dv_store *s, const char *name, uint64_t *size, struct dv_err *err) DV_WUR;
/* Calls fn(name, size, ctx) for each object whose name starts with prefix
 * ("packs/" lists all packs). Order is unspecified. A non-zero return of
 * fn stops the listing and is returned. */
typedef int (*dv_store_list_fn)(const char *name, uint64_t size, void *ctx);
int dv_store_list(struct dv_store *s, const char *prefix, dv_store_list_fn fn, void *ctx, struct dv_err *err) DV_WUR;
/* The names under prefix, replacing the content of out (unsorted). */
int dv_store_list_names(struct dv_store *s, const char *prefix, struct dv_strlist *out, struct dv_err *err) DV_WUR;
/* Deletes name; deleting a missing object is not an error. */
int dv_store_delete(struct dv_store *s, const char *name, struct dv_err *err) DV_WUR;
/*
 * Deletes names[0..n) (borrowed); missing objects are not an error. Every
 * name is checked before anything is deleted. Local: unlinks each, then
 * fsyncs each directory touched once, so the deletions are durable when
 * it returns. S3: DeleteObjects requests of up to 1000 keys (aws.h,
 * dv_s3_delete_objects). On failure some of the objects may be gone; the
 * message names the first one that could not be deleted. Callers that
 * depend on an order between deletions make one call per step.
 */
int dv_store_delete_many(struct dv_store *s, char *const *names, size_t n, struct dv_err *err) DV_WUR;
/* A local directory for building large objects before dv_store_put_file
 * (inside the repository for a local store, so publishing is a rename).
 * Borrowed. */
const char *dv_store_spool_dir(const struct dv_store *s);
/* Turns the S3 store's read-ahead for ranged reads on or off (a no-op on a
 * local store). Prune turns it off while it reads exactly the ranges it
 * merged itself. Not to be called while other threads read. */
void dv_store_set_readahead(struct dv_store *s, bool on);
/* true when the location is on this machine's filesystem. */
bool dv_store_is_local(const struct dv_store *s);

#endif
