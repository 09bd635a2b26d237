/*
 * S3 backend: a repository under s3://bucket/prefix. Objects map to keys
 * "prefix/name". S3 PUTs are atomic (readers see the old state or the whole
 * new object), and diskvault's objects are immutable and uniquely named, so
 * no locking or rename is needed.
 *
 * Large spool files go up as multipart uploads, several parts in flight.
 * The upload id and every finished part (number, size, SHA-256, MD5, ETag)
 * are kept in a state file (JSON, 0600, replaced atomically) under the
 * local state directory, keyed by bucket and key. Pack names are
 * the SHA-256 of their bytes, so a rerun that produces the same object name
 * has the same bytes: it asks ListParts which parts the server holds, keeps
 * those whose size and checksum match, sends the rest and completes.
 *
 * Settings (environment; the CLI may later set them from options):
 *   DISKVAULT_S3_ENDPOINT, DISKVAULT_S3_PROFILE, DISKVAULT_S3_REGION
 *   (explicit settings: outrank AWS_*, as --endpoint/--profile/--region);
 *   AWS_* as in aws.h; DISKVAULT_S3_STORAGE_CLASS (packs only; metadata
 *   stays STANDARD), DISKVAULT_S3_SSE (AES256 | aws:kms),
 *   DISKVAULT_S3_SSE_KMS_KEY_ID, DISKVAULT_S3_CONNECTIONS,
 *   DISKVAULT_S3_MULTIPART_THRESHOLD, DISKVAULT_S3_PART_SIZE (bytes),
 *   DISKVAULT_S3_DELETE_BATCH (keys per DeleteObjects, aws.h),
 *   DISKVAULT_STATE_DIR, DISKVAULT_CACHE_DIR, DISKVAULT_S3_STATS_FILE
 *   (a JSON line of request/byte counters is appended at close).
 */
#include "store_internal.h"

#include "aws/aws.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024ull * 1024)
#define S3_MAX_PARTS 10000
#define S3_MIN_PART (5 * MIB)
#define S3_DEFAULT_PART (8 * MIB)
/* Objects below 64 MiB (packs at the default 32 MiB, and up to twice that)
 * go up in one PUT: one request instead of initiate, parts and complete (a
 * sixth of the requests per GiB), and on the loopback Swift endpoint 43%
 * less server CPU for a first backup. Parallelism comes from the background
 * uploads of several packs at once. docs/s3.md. */
#define S3_DEFAULT_THRESHOLD (64 * MIB)
#define STATE_CAP (4u << 20)

/* Read-ahead for ranged reads (restore, verify): chunks of a pack are read
 * in order with small gaps (tar headers), so when a read starts at or just
 * after the end of the previous one on the same object, the window grows
 * (64 KiB doubling to 8 MiB) and later reads are served from memory. A
 * random read fetches only what was asked, so partial restores do not
 * download whole packs. */
#define RA_SLOTS 4
#define RA_MIN (64u << 10)
#define RA_MAX (8u << 20)
#define RA_GAP (64u << 10)

struct ra_slot {
	char *name;
	uint64_t off;          /* buf holds [off, off + buf.len) */
	struct dv_buf buf;
	uint64_t next;         /* end of the last range served */
	size_t window;
	uint64_t used;         /* LRU stamp */
	bool pending;          /* a thread is fetching [pend_off, pend_end) */
	uint64_t pend_off, pend_end;
};

struct s3store {
	struct dv_s3 *s3;
	char *bucket;
	char *prefix;  /* "" or "some/prefix/" */
	char *state_dir;
	char *storage_class, *sse, *kms;
	bool content_md5;  /* DISKVAULT_S3_CONTENT_MD5=1: send Content-MD5 too */
	uint64_t threshold, part_size;
	uint64_t parts_sent, parts_resumed;

	/* Background publication of spool files (see put_file below). */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t *workers;
	unsigned nworkers, max_queued;
	struct job *queue, *queue_tail;
	unsigned queued, running;
	bool stop;
	struct dv_err failed;  /* first background failure; sticky */

	bool readahead;  /* now; dv_store_set_readahead */
	bool readahead_allowed;  /* DISKVAULT_S3_READAHEAD=0 turns it off for good */
	pthread_mutex_t ra_lock;
	pthread_cond_t ra_cond;
	struct ra_slot ra[RA_SLOTS];
	uint64_t ra_clock;
};

struct job {
	struct job *next;
	char *name;
	char *spool_path;
};

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* A size variable; 0 means the default too. */
static uint64_t env_size(const char *name, uint64_t def)
{
	uint64_t x = dv_env_size(name, def);
	return x ? x : def;
}

static char *key_of(struct s3store *st, const char *name) { return dv_asprintf("%s%s", st->prefix, name); }

/* ---- simple calls ------------------------------------------------------ */

static void put_opts(struct s3store *st, const char *name, struct dv_s3_put_opts *o)
{
	memset(o, 0, sizeof *o);
	if (!strncmp(name, "packs/", 6))
		o->storage_class = st->storage_class;
	o->sse = st->sse;
	o->sse_kms_key_id = st->kms;
	o->content_md5 = st->content_md5;
}

/*
 * Ordering: every operation except lock files (and a put of a disk index,
 * see s3_put) waits until the background
 * uploads queued before it have finished, and fails with their error, so
 * "packs, then index, then snapshot" holds exactly as with synchronous
 * puts (a snapshot is never written after a pack upload failed).
 */
static int barrier(struct s3store *st, const char *name, struct dv_err *err)
{
	if (!st->nworkers || (name && !strncmp(name, "locks/", 6)))
		return 0;
	pthread_mutex_lock(&st->lock);
	while (st->queued || st->running)
		pthread_cond_wait(&st->cond, &st->lock);
	int r = 0;
	if (st->failed.code != DV_OK) {
		if (err)
			*err = st->failed;
		r = -(int)st->failed.code;
	}
	pthread_mutex_unlock(&st->lock);
	return r;
}

static int put_object(struct s3store *st, const char *name, const void *data, size_t len, struct dv_err *err)
{
	struct dv_s3_put_opts o;
	put_opts(st, name, &o);
	char *key = key_of(st, name);
	int r = dv_s3_put_object(st->s3, key, data, len, &o, err);
	free(key);
	return r;
}

static int s3_put(struct dv_store *s, const char *name, const void *data, size_t len, struct dv_err *err)
{
	struct s3store *st = s->impl;
	/* A disk index is referenced by nothing but the snapshot manifest,
	 * which passes the barrier after it (this put is synchronous), so it
	 * need not wait for the packs still going up: the last pack and the
	 * disk index travel together at the end of a backup. */
	int r = strncmp(name, "diskindex/", 10) ? barrier(st, name, err) : 0;
	return r < 0 ? r : put_object(st, name, data, len, err);
}

/* Serves [off, off+len) from the read-ahead cache (waiting for a window
 * another thread is fetching that covers it), or says how much to fetch
 * (*fetch >= len) after looking at the access pattern; *slot_out is the
 * slot that now owns a pending window when *fetch > len. */
static bool ra_lookup(struct s3store *st, const char *name, uint64_t off, size_t len, struct dv_buf *out,
		      size_t *fetch, struct ra_slot **slot_out)
{
	*fetch = len;
	*slot_out = NULL;
	pthread_mutex_lock(&st->ra_lock);
	struct ra_slot *sl = NULL;
	for (int i = 0; i < RA_SLOTS && !sl; i++)
		if (st->ra[i].name && !strcmp(st->ra[i].name, name))
			sl = &st->ra[i];
	while (sl && sl->pending && off >= sl->pend_off && off + len <= sl->pend_end)
		pthread_cond_wait(&st->ra_cond, &st->ra_lock);
	if (sl && (!sl->name || strcmp(sl->name, name)))
		sl = NULL; /* evicted while waiting */
	bool hit = false;
	if (sl && off >= sl->off && off + len <= sl->off + sl->buf.len) {
		dv_buf_reset(out);
		dv_buf_add(out, sl->buf.data + (off - sl->off), len);
		sl->next = DV_MAX(sl->next, off + len);
		sl->used = ++st->ra_clock;
		hit = true;
	} else if (sl && !sl->pending && off + RA_GAP >= sl->next && off <= sl->next + RA_GAP) {
		sl->window = sl->window ? DV_MIN(sl->window * 2, (size_t)RA_MAX) : RA_MIN;
		if (sl->window > len) {
			*fetch = sl->window;
			sl->pending = true;
			sl->pend_off = off;
			sl->pend_end = off + sl->window;
			*slot_out = sl;
		}
	}
	pthread_mutex_unlock(&st->ra_lock);
	return hit;
}

/* After a fetch: a window fetch (slot != NULL) fills its slot; a plain read
 * only records where the object's reader is. */
static void ra_store(struct s3store *st, struct ra_slot *slot, const char *name, uint64_t off,
		     const struct dv_buf *data, size_t served, bool ok)
{
	pthread_mutex_lock(&st->ra_lock);
	if (slot) {
		dv_buf_reset(&slot->buf);
		if (ok) {
			dv_buf_add(&slot->buf, data->data, data->len);
			slot->off = off;
			slot->next = DV_MAX(slot->next, off + served);
		}
		slot->pending = false;
		slot->used = ++st->ra_clock;
		pthread_cond_broadcast(&st->ra_cond);
		pthread_mutex_unlock(&st->ra_lock);
		return;
	}
	if (!ok) {
		pthread_mutex_unlock(&st->ra_lock);
		return;
	}
	struct ra_slot *pick = NULL;
	for (int i = 0; i < RA_SLOTS && !pick; i++)
		if (st->ra[i].name && !strcmp(st->ra[i].name, name))
			pick = &st->ra[i];
	for (int i = 0; i < RA_SLOTS && !pick; i++)
		if (!st->ra[i].name)
			pick = &st->ra[i];
	for (int i = 0; i < RA_SLOTS && !pick; i++)
		if (!st->ra[i].pending && (!pick || st->ra[i].used < pick->used))
			pick = &st->ra[i];
	if (pick && (!pick->name || strcmp(pick->name, name))) {
		free(pick->name);
		pick->name = dv_strdup(name);
		pick->window = 0;
		pick->next = 0;
		pick->off = 0;
		dv_buf_reset(&pick->buf);
	}
	if (pick) {
		pick->next = DV_MAX(pick->next, off + served);
		pick->used = ++st->ra_clock;
	}
	pthread_mutex_unlock(&st->ra_lock);
}

static int s3_get_range(struct dv_store *s, const char *name, uint64_t off, size_t len, bool whole, size_t cap,
			struct dv_buf *out, struct dv_err *err)
{
	struct s3store *st = s->impl;
	int r = barrier(st, name, err);
	if (r < 0)
		return r;
	char *key = key_of(st, name);
	size_t fetch = len;
	struct ra_slot *slot = NULL;
	if (!whole && len && st->readahead && ra_lookup(st, name, off, len, out, &fetch, &slot)) {
		free(key);
		return 0;
	}
	if (slot) {
		r = dv_s3_get_object_upto(st->s3, key, off, fetch, out, err);
		if (r == 0 && out->len < len)
			r = dv_error(err, DV_E_CORRUPT, "%s: truncated (asked %zu bytes at offset %llu, got %zu)", name,
				     len, (unsigned long long)off, out->len);
		ra_store(st, slot, name, off, out, len, r == 0);
		if (r == 0) {
			out->len = len;
			out->data[len] = 0;
		} else {
			dv_buf_reset(out);
		}
	} else {
		r = dv_s3_get_object(st->s3, key, off, len, whole, cap, out, err);
		if (!whole && len && st->readahead)
			ra_store(st, NULL, name, off, out, len, r == 0);
	}
	if (r == -DV_E_NOT_FOUND)
		r = dv_error(err, DV_E_NOT_FOUND, "%s: object is missing", name);
	free(key);
	return r;
}

static int s3_stat(struct dv_store *s, const char *name, uint64_t *size, struct dv_err *err)
{
	struct s3store *st = s->impl;
	int r = barrier(st, name, err);
	if (r < 0)
		return r;
	char *key = key_of(st, name);
	r = dv_s3_head_object(st->s3, key, size, err);
	if (r == -DV_E_NOT_FOUND)
		r = dv_error(err, DV_E_NOT_FOUND, "%s: object is missing", name);
	free(key);
	return r;
}

struct list_ctx {
	size_t strip;
	dv_store_list_fn fn;
	void *ctx;
};

static int list_cb(const char *key, uint64_t size, void *ctx)
{
	struct list_ctx *c = ctx;
	if (strlen(key) <= c->strip)
		return 0;
	return c->fn(key + c->strip, size, c->ctx);
}

static int s3_list(struct dv_store *s, const char *prefix, dv_store_list_fn fn, void *ctx, struct dv_err *err)
{
	struct s3store *st = s->impl;
	int r = barrier(st, prefix, err);
	if (r < 0)
		return r;
	char *p = key_of(st, prefix);
	struct list_ctx c = {strlen(st->prefix), fn, ctx};
	r = dv_s3_list_objects(st->s3, p, list_cb, &c, err);
	free(p);
	return r;
}

static int s3_del(struct dv_store *s, const char *name, struct dv_err *err)
{
	struct s3store *st = s->impl;
	int r = barrier(st, name, err);
	if (r < 0)
		return r;
	char *key = key_of(st, name);
	r = dv_s3_delete_object(st->s3, key, err);
	free(key);
	return r;
}

static int s3_del_many(struct dv_store *s, char *const *names, size_t n, struct dv_err *err)
{
	struct s3store *st = s->impl;
	int r = barrier(st, NULL, err);
	if (r < 0)
		return r;
	char **keys = dv_malloc(n * sizeof *keys);
	for (size_t i = 0; i < n; i++)
		keys[i] = key_of(st, names[i]);
	r = dv_s3_delete_objects(st->s3, keys, n, err);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	return r;
}

static void s3_set_readahead(struct dv_store *s, bool on)
{
	struct s3store *st = s->impl;
	st->readahead = on && st->readahead_allowed;
}

/* ---- multipart state ---------------------------------------------------- */

struct part {
	unsigned number;
	uint64_t offset, size;
	char sha256[65];
	char md5_hex[33];  /* "" until needed (Content-MD5 or a resume check) */
	char md5_b64[25];
	char *etag;   /* NULL until the server holds this part */
};

struct upload {
	struct s3store *st;
	const char *name;
	char *key;
	char *state_path;
	char *upload_id;
	uint64_t size, part_size;
	struct part *parts;
	size_t n;
	int fd;
	double state_written;  /* dv_now() of the last state write */
};

static char *state_path_for(struct s3store *st, const char *key)
{
	/* bucket and key only: an upload id that the endpoint does not know
	 * (another endpoint, or aborted) is found out by ListParts */
	char *id = dv_asprintf("%s\n%s", st->bucket, key);
	char h[65];
	dv_aws_sha256_hex(h, id, strlen(id));
	free(id);
	return dv_asprintf("%s/s3-upload-%.32s.json", st->state_dir, h);
}

static int state_write(struct upload *u, struct dv_err *err)
{
	json_t *parts = json_array();
	for (size_t i = 0; i < u->n; i++) {
		if (!u->parts[i].etag)
			continue;
		json_array_append_new(parts, json_pack("{s:i, s:I, s:s, s:s, s:s}", "number", (int)u->parts[i].number,
						       "size", (json_int_t)u->parts[i].size, "sha256",
						       u->parts[i].sha256, "md5", u->parts[i].md5_hex, "etag",
						       u->parts[i].etag));
	}
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:I, s:I, s:o}", "version", 1, "endpoint", dv_s3_describe(u->st->s3),
			      "key", u->key, "upload_id", u->upload_id, "size", (json_int_t)u->size, "part_size",
			      (json_int_t)u->part_size, "parts", parts);
	char *text = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(j);
	int r = dv_write_file_atomic(u->state_path, text, strlen(text), 0600, err);
	if (r < 0)
		dv_error_prefix(err, "upload state: ");
	u->state_written = dv_now();
	free(text);
	return r;
}

/* Reads a state file that matches this upload; *found = false otherwise.
 * Recorded parts are returned through rec (etag/sha256 by number). */
static void state_read(struct upload *u, bool *found, json_t **rec)
{
	*found = false;
	*rec = NULL;
	struct dv_buf b = DV_BUF_INIT;
	struct dv_err e;
	if (dv_read_file(u->state_path, STATE_CAP, &b, &e) < 0 || !b.data) {
		dv_buf_release(&b);
		return;
	}
	json_error_t je;
	json_t *j = json_loadb((char *)b.data, b.len, 0, &je);
	dv_buf_release(&b);
	const char *id = json_string_value(json_object_get(j, "upload_id"));
	const char *key = json_string_value(json_object_get(j, "key"));
	if (j && id && *id && key && !strcmp(key, u->key) &&
	    json_integer_value(json_object_get(j, "version")) == 1 &&
	    (uint64_t)json_integer_value(json_object_get(j, "size")) == u->size &&
	    (uint64_t)json_integer_value(json_object_get(j, "part_size")) == u->part_size) {
		u->upload_id = dv_strdup(id);
		*rec = json_incref(json_object_get(j, "parts"));
		*found = true;
	}
	json_decref(j);
}

/* true when the state file records that an upload of this key was being
 * created (upload_id "") by a run that never learnt its id. */
static bool state_creating(struct upload *u)
{
	struct dv_buf b = DV_BUF_INIT;
	struct dv_err e;
	bool creating = false;
	if (dv_read_file(u->state_path, STATE_CAP, &b, &e) == 0 && b.data) {
		json_t *j = json_loadb((char *)b.data, b.len, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "upload_id"));
		const char *key = json_string_value(json_object_get(j, "key"));
		creating = id && !*id && key && !strcmp(key, u->key);
		json_decref(j);
	}
	dv_buf_release(&b);
	return creating;
}

static int adopt_upload(const struct dv_s3_upload *up, void *ctx)
{
	struct upload *u = ctx;
	if (!u->upload_id && !strcmp(up->key, u->key))
		u->upload_id = dv_strdup(up->upload_id);
	return 0;
}

static bool etag_is(const char *etag, const char *hex)
{
	size_t n = strlen(etag);
	if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"')
		return n - 2 == strlen(hex) && !strncasecmp(etag + 1, hex, n - 2);
	return !strcasecmp(etag, hex);
}

/* Hashes [p->offset, p->offset + p->size) of fd (name: for messages):
 * SHA-256 (the signed payload hash, which S3 verifies) always, MD5 when
 * want_md5. */
static int hash_part(int fd, const char *name, struct part *p, bool want_md5, struct dv_err *err)
{
	size_t bsz = 1 << 20;
	uint8_t *buf = dv_malloc(bsz);
	EVP_MD_CTX *a = EVP_MD_CTX_new(), *b = want_md5 ? EVP_MD_CTX_new() : NULL;
	if (!a || (want_md5 && !b))
		DV_BUG("EVP_MD_CTX_new failed");
	EVP_DigestInit_ex(a, EVP_sha256(), NULL);
	if (b)
		EVP_DigestInit_ex(b, EVP_md5(), NULL);
	int r = 0;
	for (uint64_t done = 0; done < p->size && r == 0;) {
		size_t n = (size_t)DV_MIN((uint64_t)bsz, p->size - done);
		r = dv_pread_all(fd, buf, n, (off_t)(p->offset + done), err, name);
		if (r == 0) {
			EVP_DigestUpdate(a, buf, n);
			if (b)
				EVP_DigestUpdate(b, buf, n);
		}
		done += n;
	}
	if (r == 0) {
		uint8_t md[32];
		unsigned ml;
		EVP_DigestFinal_ex(a, md, &ml);
		dv_hex(p->sha256, md, 32);
		if (b) {
			EVP_DigestFinal_ex(b, md, &ml);
			dv_hex(p->md5_hex, md, 16);
			EVP_EncodeBlock((unsigned char *)p->md5_b64, md, 16);
		}
	}
	EVP_MD_CTX_free(a);
	EVP_MD_CTX_free(b);
	free(buf);
	return r;
}

/* Hashes the parts. MD5 is another full pass over the data, so it is
 * computed up front only for Content-MD5; a resume computes it for the
 * parts the server reports (reconcile). */
static int hash_parts(struct upload *u, bool want_md5, struct dv_err *err)
{
	int r = 0;
	for (size_t i = 0; i < u->n && r == 0; i++)
		r = hash_part(u->fd, u->name, &u->parts[i], want_md5, err);
	return r;
}

/* Marks the parts the server already holds with matching size and
 * checksum (the ETag of a plain part is its MD5; otherwise the state file
 * must have recorded that ETag for the same SHA-256). */
static int reconcile(struct upload *u, json_t *rec, struct dv_err *err)
{
	struct dv_s3_parts have;
	int r = dv_s3_list_parts(u->st->s3, u->key, u->upload_id, &have, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < have.n && r == 0; i++) {
		unsigned num = have.parts[i].number;
		if (num < 1 || num > u->n)
			continue;
		struct part *p = &u->parts[num - 1];
		if (have.parts[i].size != p->size)
			continue;
		if (!p->md5_hex[0] && (r = hash_part(u->fd, u->name, p, true, err)) < 0)
			break;
		bool ok = etag_is(have.parts[i].etag, p->md5_hex);
		size_t k;
		json_t *v;
		json_array_foreach(rec, k, v)
		{
			if (json_integer_value(json_object_get(v, "number")) == num) {
				const char *sha = json_string_value(json_object_get(v, "sha256"));
				const char *et = json_string_value(json_object_get(v, "etag"));
				if (sha && et && !strcmp(sha, p->sha256) && !strcmp(et, have.parts[i].etag))
					ok = true;
			}
		}
		if (ok) {
			free(p->etag);
			p->etag = dv_strdup(have.parts[i].etag);
		}
	}
	dv_s3_parts_release(&have);
	return r;
}

static int part_done(struct dv_s3_part_job *job, void *ctx)
{
	struct upload *u = ctx;
	struct part *p = &u->parts[job->number - 1];
	free(p->etag);
	p->etag = dv_strdup(job->etag);
	u->st->parts_sent++;
	/* At most one state write (two fsyncs) a second: this runs in the
	 * transfer loop. A part finished but not yet recorded is still found
	 * by ListParts on resume and kept when its MD5 matches its ETag; only
	 * with SSE-KMS/SSE-C ETags (not MD5) is such a part sent again. A failed
	 * state write likewise only costs a re-send after a crash. */
	double now = dv_now();
	if (now - u->state_written < 1.0)
		return 0;
	struct dv_err e;
	if (state_write(u, &e) < 0)
		dv_debug("s3: %s", e.msg);
	return 0;
}

static void upload_release(struct upload *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->parts[i].etag);
	free(u->parts);
	free(u->key);
	free(u->state_path);
	free(u->upload_id);
}

static int multipart(struct s3store *st, const char *name, int fd, uint64_t size, struct dv_err *err)
{
	struct upload u = {.st = st, .name = name, .size = size, .fd = fd};
	u.key = key_of(st, name);
	u.state_path = state_path_for(st, u.key);
	u.part_size = st->part_size;
	/* never more than 10,000 parts: grow the part size in whole MiB */
	if ((size + u.part_size - 1) / u.part_size > S3_MAX_PARTS)
		u.part_size = ((size + S3_MAX_PARTS - 1) / S3_MAX_PARTS + MIB - 1) / MIB * MIB;
	/* A remainder of less than half a part joins the last part instead of
	 * going up as a small part of its own: a 32.3 MiB pack is four parts,
	 * one round with four connections, not five (two rounds). */
	u.n = (size_t)(size / u.part_size);
	if (u.n == 0 || size - u.n * u.part_size >= u.part_size / 2)
		u.n++;
	u.parts = dv_calloc(u.n, sizeof *u.parts);
	for (size_t i = 0; i < u.n; i++) {
		u.parts[i].number = (unsigned)i + 1;
		u.parts[i].offset = (uint64_t)i * u.part_size;
		u.parts[i].size = i + 1 < u.n ? u.part_size : size - u.parts[i].offset;
	}
	struct dv_s3_part_job *jobs = NULL;
	json_t *rec = NULL;
	int r = hash_parts(&u, st->content_md5, err);
	if (r < 0)
		goto out;

	bool found;
	state_read(&u, &found, &rec);
	if (found) {
		r = reconcile(&u, rec, err);
		if (r == -DV_E_NOT_FOUND) {
			/* the upload was completed or aborted meanwhile: start over */
			dv_debug("s3: %s: upload %s is gone, starting a new one", name, u.upload_id);
			free(u.upload_id);
			u.upload_id = NULL;
			for (size_t i = 0; i < u.n; i++) {
				free(u.parts[i].etag);
				u.parts[i].etag = NULL;
			}
			found = false;
			r = 0;
		}
		if (r < 0)
			goto out;
	}
	if (!found && state_creating(&u)) {
		/* a run was killed between CreateMultipartUpload and recording the
		 * id: find that upload and continue it rather than leave it behind */
		r = dv_s3_list_uploads(st->s3, u.key, adopt_upload, &u, err);
		if (r == 0 && u.upload_id) {
			r = reconcile(&u, NULL, err);
			found = r == 0;
			if (r == -DV_E_NOT_FOUND) {
				free(u.upload_id);
				u.upload_id = NULL;
				r = 0;
			}
		}
		if (r < 0)
			goto out;
	}
	if (!found) {
		/* record the intent first (upload_id ""), for the case above */
		u.upload_id = dv_strdup("");
		r = state_write(&u, err);
		free(u.upload_id);
		u.upload_id = NULL;
		if (r < 0)
			goto out;
		struct dv_s3_put_opts o;
		put_opts(st, name, &o);
		r = dv_s3_create_multipart(st->s3, u.key, &o, &u.upload_id, err);
		if (r < 0)
			goto out;
	}
	r = state_write(&u, err);
	if (r < 0)
		goto out;

	jobs = dv_calloc(u.n, sizeof *jobs);
	size_t nj = 0;
	for (size_t i = 0; i < u.n; i++) {
		struct part *p = &u.parts[i];
		if (p->etag) {
			st->parts_resumed++;
			continue;
		}
		jobs[nj].number = p->number;
		jobs[nj].offset = p->offset;
		jobs[nj].size = p->size;
		memcpy(jobs[nj].md5_b64, p->md5_b64, sizeof jobs[nj].md5_b64);
		memcpy(jobs[nj].sha256_hex, p->sha256, sizeof jobs[nj].sha256_hex);
		nj++;
	}
	dv_debug("s3: %s: %zu parts of %llu bytes, %zu to send, upload %s", name, u.n,
		 (unsigned long long)u.part_size, nj, u.upload_id);
	if (nj)
		r = dv_s3_upload_parts(st->s3, u.key, u.upload_id, fd, jobs, nj, part_done, &u, err);
	if (r < 0)
		goto out;

	struct dv_s3_part *cp = dv_calloc(u.n, sizeof *cp);
	for (size_t i = 0; i < u.n; i++) {
		cp[i].number = u.parts[i].number;
		cp[i].size = u.parts[i].size;
		cp[i].etag = u.parts[i].etag;
	}
	r = dv_s3_complete_multipart(st->s3, u.key, u.upload_id, cp, u.n, err);
	free(cp);
	if (r == 0)
		unlink(u.state_path);
out:
	if (jobs) {
		for (size_t i = 0; i < u.n; i++)
			free(jobs[i].etag);
		free(jobs);
	}
	json_decref(rec);
	if (r < 0)
		dv_error_prefix(err, "uploading %s: ", name);
	upload_release(&u);
	return r;
}

static int put_file_sync(struct s3store *st, const char *name, const char *spool_path, struct dv_err *err)
{
	int r = 0;
	int fd = open(spool_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dv_error_errno(err, errno, "opening %s", spool_path);
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		r = dv_error_errno(err, errno, "stat of %s", spool_path);
		goto out;
	}
	uint64_t size = (uint64_t)sb.st_size;
	if (size < st->threshold) {
		/* streamed from the file: four uploads of 32 MiB packs in
		 * memory would be 128 MiB of RSS */
		struct part p = {.number = 1, .size = size};
		r = hash_part(fd, spool_path, &p, st->content_md5, err);
		if (r == 0) {
			struct dv_s3_put_opts o;
			put_opts(st, name, &o);
			char *key = key_of(st, name);
			r = dv_s3_put_fd(st->s3, key, fd, size, p.sha256, p.md5_b64, &o, err);
			free(key);
		}
	} else {
		r = multipart(st, name, fd, size, err);
	}
out:
	close(fd);
	/* consumed either way (store.h); a rerun rebuilds the same bytes under
	 * the same name and resumes from the state file */
	unlink(spool_path);
	return r;
}

static void *worker(void *arg)
{
	struct s3store *st = arg;
	pthread_mutex_lock(&st->lock);
	for (;;) {
		while (!st->queue && !st->stop)
			pthread_cond_wait(&st->cond, &st->lock);
		if (!st->queue)
			break;
		struct job *j = st->queue;
		st->queue = j->next;
		if (!st->queue)
			st->queue_tail = NULL;
		st->queued--;
		st->running++;
		bool skip = st->failed.code != DV_OK;
		pthread_mutex_unlock(&st->lock);
		struct dv_err e;
		dv_err_clear(&e);
		int r = 0;
		if (skip)
			unlink(j->spool_path); /* the run has failed already */
		else
			r = put_file_sync(st, j->name, j->spool_path, &e);
		pthread_mutex_lock(&st->lock);
		if (r < 0 && st->failed.code == DV_OK)
			st->failed = e;
		st->running--;
		pthread_cond_broadcast(&st->cond);
		free(j->name);
		free(j->spool_path);
		free(j);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

/*
 * Publishing a spool file returns once it is queued: up to four uploads run
 * in the background (DISKVAULT_S3_UPLOADS, default 4; 0 = synchronous) so
 * the backup pipeline keeps compressing the next pack meanwhile. Four keep
 * the connections busy while other uploads hash their parts or wait for
 * initiate/complete (with two, copy to the loopback Swift endpoint reached
 * 0.6-0.85x the throughput of `aws s3 cp`, docs/performance.md). At most
 * max_queued files wait, which bounds the local spool. A failure is
 * reported by the next call that passes the barrier (and by later
 * put_file calls).
 */
static int s3_put_file(struct dv_store *s, const char *name, const char *spool_path, struct dv_err *err)
{
	struct s3store *st = s->impl;
	struct dv_err scratch;
	if (!err)
		err = &scratch;
	if (!st->nworkers)
		return put_file_sync(st, name, spool_path, err);
	struct job *j = dv_calloc(1, sizeof *j);
	j->name = dv_strdup(name);
	j->spool_path = dv_strdup(spool_path);
	pthread_mutex_lock(&st->lock);
	while (st->queued >= st->max_queued && st->failed.code == DV_OK)
		pthread_cond_wait(&st->cond, &st->lock);
	if (st->failed.code != DV_OK) {
		*err = st->failed;
		int r = -(int)st->failed.code;
		pthread_mutex_unlock(&st->lock);
		unlink(spool_path);
		free(j->name);
		free(j->spool_path);
		free(j);
		return r;
	}
	if (st->queue_tail)
		st->queue_tail->next = j;
	else
		st->queue = j;
	st->queue_tail = j;
	st->queued++;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	return 0;
}

static void s3_free(struct dv_store *s)
{
	struct s3store *st = s->impl;
	if (!st)
		return;
	if (st->nworkers) {
		pthread_mutex_lock(&st->lock);
		st->stop = true;
		pthread_cond_broadcast(&st->cond);
		pthread_mutex_unlock(&st->lock);
		for (unsigned i = 0; i < st->nworkers; i++)
			pthread_join(st->workers[i], NULL);
		if (st->failed.code != DV_OK)
			dv_debug("s3: a background upload failed: %s", st->failed.msg);
	}
	free(st->workers);
	for (int i = 0; i < RA_SLOTS; i++) {
		free(st->ra[i].name);
		dv_buf_release(&st->ra[i].buf);
	}
	pthread_mutex_destroy(&st->ra_lock);
	pthread_cond_destroy(&st->ra_cond);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	if (st->s3) {
		struct dv_s3_stats t;
		dv_s3_get_stats(st->s3, &t);
		dv_debug("s3: %llu requests (%llu retries), %llu bytes sent, %llu received, %llu parts sent, %llu resumed, "
			 "%llu keys deleted by %llu DeleteObjects and %llu DeleteObject requests",
			 (unsigned long long)t.requests, (unsigned long long)t.retries,
			 (unsigned long long)t.bytes_sent, (unsigned long long)t.bytes_received,
			 (unsigned long long)st->parts_sent, (unsigned long long)st->parts_resumed,
			 (unsigned long long)t.keys_deleted, (unsigned long long)t.delete_objects_requests,
			 (unsigned long long)t.delete_requests);
		const char *sf = env("DISKVAULT_S3_STATS_FILE");
		FILE *f = sf ? fopen(sf, "a") : NULL;
		if (f) {
			fprintf(f,
				"{\"requests\": %llu, \"retries\": %llu, \"bytes_sent\": %llu, \"bytes_received\": %llu, "
				"\"parts_sent\": %llu, \"parts_resumed\": %llu, \"delete_requests\": %llu, "
				"\"delete_objects_requests\": %llu, \"keys_deleted\": %llu}\n",
				(unsigned long long)t.requests, (unsigned long long)t.retries,
				(unsigned long long)t.bytes_sent, (unsigned long long)t.bytes_received,
				(unsigned long long)st->parts_sent, (unsigned long long)st->parts_resumed,
				(unsigned long long)t.delete_requests, (unsigned long long)t.delete_objects_requests,
				(unsigned long long)t.keys_deleted);
			fclose(f);
		}
	}
	dv_s3_free(st->s3);
	free(st->bucket);
	free(st->prefix);
	free(st->state_dir);
	free(st->storage_class);
	free(st->sse);
	free(st->kms);
	free(st);
}

static const struct dv_store_ops s3_ops = {
	.put = s3_put,
	.put_file = s3_put_file,
	.get_range = s3_get_range,
	.stat = s3_stat,
	.list = s3_list,
	.del = s3_del,
	.del_many = s3_del_many,
	.set_readahead = s3_set_readahead,
	.free = s3_free,
};

/* Spool files of killed runs stay behind (the local store reports its own
 * in check). Here the spool is outside the repository, so remove files
 * untouched for a day: no live writer keeps one that long. */
static void sweep_spool(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	int64_t now = dv_unix_now();
	while ((e = readdir(d))) {
		struct stat sb;
		if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(sb.st_mode) && now - (int64_t)sb.st_mtime > 24 * 3600 &&
		    unlinkat(dirfd(d), e->d_name, 0) == 0)
			dv_debug("s3: removed stale spool file %s/%s", dir, e->d_name);
	}
	closedir(d);
}

static char *xdg_dir(const char *var, const char *fallback, const char *leaf)
{
	const char *x = env(var);
	if (x)
		return dv_asprintf("%s/diskvault%s", x, leaf);
	const char *home = env("HOME");
	return dv_asprintf("%s/%s/diskvault%s", home ? home : "/tmp", fallback, leaf);
}

static char *opt_dup(const char *name)
{
	const char *v = env(name);
	return v ? dv_strdup(v) : NULL;
}

int dv_store_s3_open(const char *location, bool create, struct dv_store *s, struct dv_err *err)
{
	(void)create; /* buckets are not created implicitly: region, policy and
			 lifecycle rules are the owner's choice */
	struct s3store *st = dv_calloc(1, sizeof *st);
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	pthread_mutex_init(&st->ra_lock, NULL);
	pthread_cond_init(&st->ra_cond, NULL);

	st->readahead_allowed = !(env("DISKVAULT_S3_READAHEAD") && !strcmp(env("DISKVAULT_S3_READAHEAD"), "0"));
	st->readahead = st->readahead_allowed;
	st->storage_class = opt_dup("DISKVAULT_S3_STORAGE_CLASS");
	st->sse = opt_dup("DISKVAULT_S3_SSE");
	st->kms = opt_dup("DISKVAULT_S3_SSE_KMS_KEY_ID");
	st->content_md5 = env("DISKVAULT_S3_CONTENT_MD5") && strcmp(env("DISKVAULT_S3_CONTENT_MD5"), "0");
	st->part_size = env_size("DISKVAULT_S3_PART_SIZE", S3_DEFAULT_PART);
	if (st->part_size < S3_MIN_PART)
		st->part_size = S3_MIN_PART;
	st->threshold = env_size("DISKVAULT_S3_MULTIPART_THRESHOLD", S3_DEFAULT_THRESHOLD);
	if (st->threshold < st->part_size)
		st->threshold = st->part_size;
	s->impl = st;
	s->ops = &s3_ops;
	s->local = false;

	/* explicit settings DISKVAULT_S3_ENDPOINT/PROFILE/REGION (what the
	 * CLI's --endpoint/--profile/--region set), then AWS_* */
	int r = dv_s3_open_url(location, NULL, &st->s3, &st->prefix, err);
	if (r < 0)
		goto fail;
	st->bucket = dv_asprintf("%.*s", (int)strcspn(location + 5, "/"), location + 5);

	st->state_dir = dv_state_dir();
	s->spool_dir = env("DISKVAULT_CACHE_DIR") ? dv_asprintf("%s/spool", env("DISKVAULT_CACHE_DIR"))
						  : xdg_dir("XDG_CACHE_HOME", ".cache", "/spool");
	if ((r = dv_mkdir_p(st->state_dir, 0700, err)) < 0 || (r = dv_mkdir_p(s->spool_dir, 0700, err)) < 0)
		goto fail;
	sweep_spool(s->spool_dir);
	r = dv_s3_check_bucket(st->s3, st->prefix, err);
	if (r == 0) {
		unsigned n = (unsigned)env_size("DISKVAULT_S3_UPLOADS", 4);
		if (env("DISKVAULT_S3_UPLOADS") && !strcmp(env("DISKVAULT_S3_UPLOADS"), "0"))
			n = 0;
		n = DV_MIN(n, 8u);
		st->workers = dv_calloc(n ? n : 1, sizeof *st->workers);
		for (; st->nworkers < n; st->nworkers++)
			if (pthread_create(&st->workers[st->nworkers], NULL, worker, st) != 0)
				DV_BUG("pthread_create failed");
		st->max_queued = st->nworkers;
	}
	if (r == -DV_E_NOT_FOUND) {
		err->code = DV_E_NOT_REPO;
		r = dv_error_prefix(err, "%s: ", location);
	}
	if (r < 0)
		goto fail;
	return 0;
fail:
	s3_free(s);
	s->impl = NULL;
	free(s->spool_dir);
	s->spool_dir = NULL;
	return r;
}
