/*
 * Local directory backend. Atomic publication: write into <root>/tmp, fsync
 * the file, rename into place, fsync the destination directory. rename(2)
 * within one filesystem is atomic, so a reader or a crash sees the whole
 * object or nothing; leftovers in tmp/ are garbage that check reports.
 */
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct local {
	char *root;
};

static char *path_of(struct dv_store *s, const char *name)
{
	struct local *l = s->impl;
	return dv_asprintf("%s/%s", l->root, name);
}

/* Directory part of path, in a new string. */
static char *dirname_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return dv_strdup(".");
	return dv_asprintf("%.*s", (int)(slash - path), path);
}

static int publish(struct dv_store *s, const char *tmp, const char *name, struct dv_err *err)
{
	char *dst = path_of(s, name);
	char *dir = dirname_of(dst);
	struct stat st;
	bool fresh = stat(dir, &st) < 0;
	int r = dv_mkdir_p(dir, 0755, err);
	if (r == 0 && fresh) {
		/* A new directory (packs/<xx>/) is durable only once its parent
		 * is synced: without it a power cut could lose the pack. */
		char *parent = dirname_of(dir);
		r = dv_fsync_dir(parent, err);
		free(parent);
	}
	if (r == 0 && rename(tmp, dst) < 0)
		r = dv_error_errno(err, errno, "publishing %s", name);
	if (r == 0)
		r = dv_fsync_dir(dir, err);
	free(dst);
	free(dir);
	return r;
}

static int local_put(struct dv_store *s, const char *name, const void *data, size_t len, struct dv_err *err)
{
	char rnd[33];
	dv_random_hex(rnd, 16);
	char *tmp = dv_asprintf("%s/%s.tmp", s->spool_dir, rnd);
	int r = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = dv_error_errno(err, errno, "creating %s", tmp);
		goto out;
	}
	r = dv_write_all(fd, data, len, err, name);
	if (r == 0 && fsync(fd) < 0)
		r = dv_error_errno(err, errno, "fsync of %s", name);
	if (close(fd) < 0 && r == 0)
		r = dv_error_errno(err, errno, "closing %s", name);
	if (r == 0)
		r = publish(s, tmp, name, err);
	if (r < 0)
		unlink(tmp);
out:
	free(tmp);
	return r;
}

static int local_put_file(struct dv_store *s, const char *name, const char *spool_path, struct dv_err *err)
{
	int r = publish(s, spool_path, name, err);
	if (r < 0)
		unlink(spool_path);
	return r;
}

static int local_get_range(struct dv_store *s, const char *name, uint64_t off, size_t len, bool whole, size_t cap,
			   struct dv_buf *out, struct dv_err *err)
{
	char *path = path_of(s, name);
	int r = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = errno == ENOENT ? dv_error(err, DV_E_NOT_FOUND, "%s: object is missing", name)
				    : dv_error_errno(err, errno, "opening %s", name);
		goto out;
	}
	if (whole) {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			r = dv_error_errno(err, errno, "%s", name);
			goto out_close;
		}
		if ((uint64_t)st.st_size > cap) {
			r = dv_error(err, DV_E_CORRUPT, "%s: %lld bytes, larger than the limit of %zu", name,
				     (long long)st.st_size, cap);
			goto out_close;
		}
		len = (size_t)st.st_size;
		off = 0;
	}
	dv_buf_reset(out);
	dv_buf_reserve(out, len);
	r = dv_pread_all(fd, out->data, len, (off_t)off, err, name);
	if (r == 0) {
		out->len = len;
		out->data[len] = 0;
	}
out_close:
	close(fd);
out:
	free(path);
	return r;
}

static int local_stat(struct dv_store *s, const char *name, uint64_t *size, struct dv_err *err)
{
	char *path = path_of(s, name);
	struct stat st;
	int r = 0;
	if (stat(path, &st) < 0)
		r = errno == ENOENT ? dv_error(err, DV_E_NOT_FOUND, "%s: object is missing", name)
				    : dv_error_errno(err, errno, "%s", name);
	else
		*size = (uint64_t)st.st_size;
	free(path);
	return r;
}

static int list_dir(struct dv_store *s, const char *rel, dv_store_list_fn fn, void *ctx, struct dv_err *err)
{
	char *path = path_of(s, rel);
	DIR *d = opendir(path);
	int r = 0;
	if (!d) {
		if (errno != ENOENT)
			r = dv_error_errno(err, errno, "listing %s", path);
		free(path);
		return r;
	}
	struct dirent *e;
	while (r == 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char *child = dv_asprintf("%s%s", rel, e->d_name);
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, 0) < 0) {
			if (errno != ENOENT) /* deleted while listing: skip */
				r = dv_error_errno(err, errno, "stat of %s", child);
		} else if (S_ISDIR(st.st_mode)) {
			char *sub = dv_asprintf("%s/", child);
			r = list_dir(s, sub, fn, ctx, err);
			free(sub);
		} else if (S_ISREG(st.st_mode)) {
			r = fn(child, (uint64_t)st.st_size, ctx);
		}
		free(child);
	}
	closedir(d);
	free(path);
	return r;
}

static int local_list(struct dv_store *s, const char *prefix, dv_store_list_fn fn, void *ctx, struct dv_err *err)
{
	size_t n = strlen(prefix);
	if (n == 0 || prefix[n - 1] != '/')
		return dv_error(err, DV_E_USAGE, "local store lists directories only, got prefix '%s'", prefix);
	return list_dir(s, prefix, fn, ctx, err);
}

static int local_del(struct dv_store *s, const char *name, struct dv_err *err)
{
	char *path = path_of(s, name);
	int r = 0;
	if (unlink(path) < 0 && errno != ENOENT)
		r = dv_error_errno(err, errno, "deleting %s", name);
	free(path);
	return r;
}

/* Unlinks every name, then syncs each parent directory once: one fsync per
 * directory instead of one per object, and the step is durable before the
 * caller starts the next one (prune's ordering, prune.c). */
static int local_del_many(struct dv_store *s, char *const *names, size_t n, struct dv_err *err)
{
	struct dv_strlist dirs = {0};
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		char *path = path_of(s, names[i]);
		char *dir = dirname_of(path);
		if (unlink(path) < 0 && errno != ENOENT)
			r = dv_error_errno(err, errno, "deleting %s", names[i]);
		else
			dv_strlist_add(&dirs, dir);
		free(dir);
		free(path);
	}
	/* after a failure the deletions made so far are still synced */
	dv_strlist_sort(&dirs);
	for (size_t i = 0; i < dirs.n; i++) {
		if ((i && !strcmp(dirs.v[i], dirs.v[i - 1])) || (access(dirs.v[i], F_OK) < 0 && errno == ENOENT))
			continue;
		struct dv_err ignore;
		int fr = dv_fsync_dir(dirs.v[i], r == 0 ? err : &ignore);
		if (r == 0)
			r = fr;
	}
	dv_strlist_release(&dirs);
	return r;
}

static void local_free(struct dv_store *s)
{
	struct local *l = s->impl;
	if (l)
		free(l->root);
	free(l);
}

static const struct dv_store_ops local_ops = {
	.put = local_put,
	.put_file = local_put_file,
	.get_range = local_get_range,
	.stat = local_stat,
	.list = local_list,
	.del = local_del,
	.del_many = local_del_many,
	.free = local_free,
};

int dv_store_local_open(const char *path, bool create, struct dv_store *s, struct dv_err *err)
{
	struct stat st;
	if (create) {
		int r = dv_mkdir_p(path, 0700, err);
		if (r < 0)
			return r;
	}
	if (stat(path, &st) < 0)
		return errno == ENOENT ? dv_error(err, DV_E_NOT_REPO, "%s: repository does not exist", path)
				       : dv_error_errno(err, errno, "%s", path);
	if (!S_ISDIR(st.st_mode))
		return dv_error(err, DV_E_NOT_REPO, "%s: not a diskvault repository (not a directory)", path);
	struct local *l = dv_calloc(1, sizeof *l);
	l->root = dv_strdup(path);
	s->impl = l;
	s->ops = &local_ops;
	s->local = true;
	s->spool_dir = dv_asprintf("%s/tmp", path);
	return 0;
}
