/*
 * lock.c - repository locks: objects locks/<random> holding JSON
 * {"exclusive", "host", "pid", "time"}. Taking a lock writes one's own
 * object first and then lists the others, so of two racing lockers at
 * least one sees the other (both may back off; neither wins wrongly).
 * This needs no atomic create-if-absent, so it works the same on S3.
 *
 * Shared locks coexist; an exclusive lock excludes everything. A holder
 * refreshes its lock every DV_LOCK_REFRESH seconds (a new object, then the
 * old one deleted, so it is never absent). A lock is stale when its holder
 * is a dead pid on this host, or when it was not refreshed for
 * DV_LOCK_STALE seconds; stale locks are ignored and `unlock` removes
 * them. A lock object that cannot be read or parsed counts as held.
 */
#include "repo_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dv_lock {
	struct dv_repo *repo;
	bool exclusive;
	char name[64];
	double refreshed;
};

static void hostname(char *out, size_t n)
{
	if (gethostname(out, n) < 0)
		snprintf(out, n, "unknown");
	out[n - 1] = 0;
}

int dv_lock_describe(struct dv_repo *r, const char *name, struct dv_lock_info *info)
{
	memset(info, 0, sizeof *info);
	snprintf(info->name, sizeof info->name, "%s", name);
	struct dv_buf b = DV_BUF_INIT;
	struct dv_err err;
	int rc = dv_store_get(r->store, name, 65536, &b, &err);
	if (rc == -DV_E_NOT_FOUND) {
		dv_buf_release(&b);
		return rc; /* released meanwhile */
	}
	json_t *j = rc == 0 ? json_loadb((const char *)b.data, b.len, 0, NULL) : NULL;
	dv_buf_release(&b);
	const char *host = json_string_value(json_object_get(j, "host"));
	const char *time = json_string_value(json_object_get(j, "time"));
	json_t *pid = json_object_get(j, "pid");
	int64_t t;
	if (!host || !time || !json_is_integer(pid) || dv_parse_time(time, &t) < 0) {
		info->unreadable = true;
		info->exclusive = true;
		json_decref(j);
		return 0;
	}
	info->exclusive = json_is_true(json_object_get(j, "exclusive"));
	snprintf(info->host, sizeof info->host, "%s", host);
	info->pid = (int64_t)json_integer_value(pid);
	info->time = t;
	char me[256];
	hostname(me, sizeof me);
	info->stale = (!strcmp(host, me) && info->pid > 0 && kill((pid_t)info->pid, 0) < 0 && errno == ESRCH) ||
		      dv_unix_now() - t > DV_LOCK_STALE;
	json_decref(j);
	return 0;
}

struct scan {
	struct dv_repo *repo;
	const char *own;
	bool exclusive;
	char conflict[512];
};

static int scan_lock(const char *name, uint64_t size, void *ctx)
{
	(void)size;
	struct scan *s = ctx;
	struct dv_lock_info li;
	if (!strcmp(name, s->own) || dv_lock_describe(s->repo, name, &li) < 0 || li.stale)
		return 0;
	if (!li.exclusive && !s->exclusive)
		return 0;
	if (li.unreadable) {
		snprintf(s->conflict, sizeof s->conflict, "unreadable lock %s (remove it with 'diskvault unlock --all' "
			 "if no diskvault runs)", name);
	} else {
		char when[32];
		dv_format_time(when, sizeof when, li.time);
		snprintf(s->conflict, sizeof s->conflict, "%s lock held by pid %lld on %s since %s (%s)",
			 li.exclusive ? "exclusive" : "shared", (long long)li.pid, li.host, when, name);
	}
	return 1;
}

static int write_lock(struct dv_lock *l, struct dv_err *err)
{
	char rnd[33], host[256], now[32];
	dv_random_hex(rnd, 16);
	snprintf(l->name, sizeof l->name, "locks/%s", rnd);
	hostname(host, sizeof host);
	dv_format_time(now, sizeof now, dv_unix_now());
	json_t *j = json_pack("{s:b, s:s, s:I, s:s}", "exclusive", l->exclusive, "host", host, "pid",
			      (json_int_t)getpid(), "time", now);
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	int rc = dv_store_put(l->repo->store, l->name, text, strlen(text), err);
	free(text);
	l->refreshed = dv_now();
	return rc;
}

static int try_lock(struct dv_repo *r, bool exclusive, struct dv_lock **out, struct dv_err *err)
{
	struct dv_lock *l = dv_calloc(1, sizeof *l);
	l->repo = r;
	l->exclusive = exclusive;
	int rc = write_lock(l, err);
	if (rc < 0) {
		free(l);
		return rc;
	}
	struct scan s = {.repo = r, .own = l->name, .exclusive = exclusive};
	rc = dv_store_list(r->store, "locks/", scan_lock, &s, err);
	if (rc == 1)
		rc = dv_error(err, DV_E_LOCKED, "repository %s is locked: %s", dv_store_location(r->store), s.conflict);
	if (rc < 0) {
		dv_lock_release(l);
		return rc;
	}
	*out = l;
	return 0;
}

int dv_lock_acquire(struct dv_repo *r, bool exclusive, struct dv_lock **out, struct dv_err *err)
{
	double deadline = dv_now() + r->lock_wait;
	unsigned delay_ms = 200;
	for (;;) {
		int rc = try_lock(r, exclusive, out, err);
		if (rc != -DV_E_LOCKED || dv_now() >= deadline || dv_repo_interrupted())
			return rc;
		/* Random back-off so two waiting lockers do not collide forever. */
		uint32_t jitter;
		dv_random_bytes(&jitter, sizeof jitter);
		usleep((useconds_t)(delay_ms + jitter % delay_ms) * 1000);
		if (delay_ms < 5000)
			delay_ms *= 2;
	}
}

int dv_lock_refresh(struct dv_lock *l, struct dv_err *err)
{
	if (!l || dv_now() - l->refreshed < DV_LOCK_REFRESH)
		return 0;
	char old[64];
	memcpy(old, l->name, sizeof old);
	int rc = write_lock(l, err);
	if (rc < 0) {
		memcpy(l->name, old, sizeof old);
		return rc;
	}
	struct dv_err ignore;
	if (dv_store_delete(l->repo->store, old, &ignore) < 0)
		dv_debug("deleting old lock %s: %s", old, ignore.msg);
	return 0;
}

void dv_lock_release(struct dv_lock *l)
{
	if (!l)
		return;
	struct dv_err err;
	if (dv_store_delete(l->repo->store, l->name, &err) < 0)
		dv_debug("releasing %s: %s", l->name, err.msg);
	free(l);
}

struct unlock_ctx {
	struct dv_repo *r;
	bool all;
	dv_lock_fn fn;
	void *ctx;
	int rc;
	struct dv_err *err;
};

static int unlock_one(const char *name, uint64_t size, void *ctx)
{
	(void)size;
	struct unlock_ctx *u = ctx;
	struct dv_lock_info li;
	if (dv_lock_describe(u->r, name, &li) < 0)
		return 0;
	bool remove = u->all || li.stale;
	if (remove) {
		int rc = dv_store_delete(u->r->store, name, u->err);
		if (rc < 0)
			return rc;
	}
	if (u->fn)
		u->fn(&li, remove, u->ctx);
	return 0;
}

int dv_lock_remove(struct dv_repo *r, bool all, dv_lock_fn fn, void *ctx, struct dv_err *err)
{
	struct unlock_ctx u = {r, all, fn, ctx, 0, err};
	return dv_store_list(r->store, "locks/", unlock_one, &u, err);
}

void dv_repo_set_lock_wait(struct dv_repo *r, double seconds) { r->lock_wait = seconds; }
