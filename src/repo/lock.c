/*
 * lock.c - repository locks: objects locks/<random> holding JSON
 * {"exclusive", "host", "pid", "time"}. Taking a lock writes one's own
 * object first and then lists the others, so of two racing lockers at
 * least one sees the other (both may back off; neither wins wrongly).
 * Shared locks coexist; an exclusive lock excludes everything. A lock
 * whose holder is a dead pid on this host is stale and ignored.
 */
#include <stdio.h>
#include "repo_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dv_lock {
	struct dv_repo *repo;
	char name[64];
};

struct scan {
	struct dv_repo *repo;
	const char *own;
	bool exclusive;
	char conflict[512];
};

static void hostname(char *out, size_t n)
{
	if (gethostname(out, n) < 0)
		snprintf(out, n, "unknown");
	out[n - 1] = 0;
}

static int scan_lock(const char *name, uint64_t size, void *ctx)
{
	(void)size;
	struct scan *s = ctx;
	if (!strcmp(name, s->own))
		return 0;
	struct dv_buf b = DV_BUF_INIT;
	struct dv_err err;
	if (dv_store_get(s->repo->store, name, 65536, &b, &err) < 0) {
		dv_buf_release(&b);
		return 0; /* released meanwhile */
	}
	json_t *j = json_loadb((const char *)b.data, b.len, 0, NULL);
	dv_buf_release(&b);
	bool excl = json_is_true(json_object_get(j, "exclusive"));
	const char *host = json_string_value(json_object_get(j, "host"));
	json_int_t pid = json_integer_value(json_object_get(j, "pid"));
	const char *time = json_string_value(json_object_get(j, "time"));
	char me[256];
	hostname(me, sizeof me);
	bool stale = host && !strcmp(host, me) && pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
	if (!stale && j && (excl || s->exclusive))
		snprintf(s->conflict, sizeof s->conflict, "%s lock held by pid %lld on %s since %s (%s)",
			 excl ? "exclusive" : "shared", (long long)pid, host ? host : "?", time ? time : "?", name);
	json_decref(j);
	return s->conflict[0] ? 1 : 0;
}

int dv_lock_acquire(struct dv_repo *r, bool exclusive, struct dv_lock **out, struct dv_err *err)
{
	struct dv_lock *l = dv_calloc(1, sizeof *l);
	char rnd[33], host[256], now[32];
	dv_random_hex(rnd, 16);
	snprintf(l->name, sizeof l->name, "locks/%s", rnd);
	l->repo = r;
	hostname(host, sizeof host);
	dv_format_time(now, sizeof now, dv_unix_now());
	json_t *j = json_pack("{s:b, s:s, s:I, s:s}", "exclusive", exclusive, "host", host, "pid",
			      (json_int_t)getpid(), "time", now);
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	int rc = dv_store_put(r->store, l->name, text, strlen(text), err);
	free(text);
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

void dv_lock_release(struct dv_lock *l)
{
	if (!l)
		return;
	struct dv_err err;
	if (dv_store_delete(l->repo->store, l->name, &err) < 0)
		dv_debug("releasing %s: %s", l->name, err.msg);
	free(l);
}
