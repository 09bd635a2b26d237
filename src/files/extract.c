/*
 * extract.c - a tree of a snapshot's filesystem copied into a directory
 * (files.h, dv_extract_path; docs/files.md, "extract").
 *
 * Safety: every name is created with the *at() calls relative to a
 * directory descriptor that was itself opened with O_NOFOLLOW|O_DIRECTORY,
 * starting from the target directory. A symlink the image holds is
 * created, never followed: a later entry whose name meets it (a crafted
 * directory holding "x" -> /tmp and a directory "x") fails to open it as a
 * directory (ELOOP/ENOTDIR) and is reported, so nothing lands outside.
 * Names holding '/' or NUL, ".", ".." and "" are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "files.h"

#define DEPTH_MAX 256

struct link_rec {
	const struct dv_fs *fs;
	uint64_t ino;
	char *path;       /* relative to the top directory */
};

struct dv_extract {
	int top;
	struct dv_extract_opts o;
	struct dv_extract_stats st;
	struct link_rec *links;
	size_t nlinks, caplinks;
	uint64_t stack[DEPTH_MAX];  /* directory inodes being extracted */
	unsigned depth;
	char rel[8192];             /* path of the current entry, relative to top */
	uint8_t *zeros;
};

struct dv_extract *dv_extract_new(int dirfd, const struct dv_extract_opts *o)
{
	struct dv_extract *x = dv_calloc(1, sizeof *x);
	x->top = dirfd;
	if (o)
		x->o = *o;
	return x;
}

const struct dv_extract_stats *dv_extract_stats(const struct dv_extract *x) { return &x->st; }

void dv_extract_free(struct dv_extract *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->nlinks; i++)
		free(x->links[i].path);
	free(x->links);
	free(x);
}

/* A problem with one entry: counted, passed on, the run goes on. */
static void warn(struct dv_extract *x, const struct dv_err *e)
{
	x->st.failed++;
	if (x->o.warn)
		x->o.warn(x->o.ctx, e);
}

static void warnf(struct dv_extract *x, enum dv_code code, const char *fmt, ...) DV_PRINTF(3, 4);
static void warnf(struct dv_extract *x, enum dv_code code, const char *fmt, ...)
{
	struct dv_err e;
	dv_err_clear(&e);
	e.code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof e.msg, fmt, ap);
	va_end(ap);
	warn(x, &e);
}

/* Errors that end the run rather than one entry. */
static bool fatal(int rc)
{
	return rc == -DV_E_NOSPACE || rc == -DV_E_INTERRUPTED || rc == -DV_E_NOMEM || rc == -DV_E_REMOTE ||
	       rc == -DV_E_LOCKED || rc == -DV_E_AUTH;
}

static bool name_ok(const char *name, size_t len)
{
	if (len == 0 || len > 255 || memchr(name, '/', len) || memchr(name, 0, len))
		return false;
	return !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

/* ---- attributes ----------------------------------------------------- */

struct xa_ctx {
	struct dv_extract *x;
	int fd;
};

static int xa_set(void *ctx, const char *name, const void *value, size_t len)
{
	struct xa_ctx *c = ctx;
	struct dv_extract *x = c->x;
	bool acl = !strncmp(name, "system.posix_acl_", 17);
	if (!x->o.owner && strncmp(name, "user.", 5) && !acl)
		return 0;  /* trusted.*, security.*: root only */
	if (fsetxattr(c->fd, name, value, len, 0) < 0)
		warnf(x, DV_E_IO, "%s: cannot set xattr %s: %s", x->rel, name, strerror(errno));
	else
		x->st.xattrs++;
	return 0;
}

/* Owner, mode, xattrs and times of the open file or directory fd. */
static int set_attrs(struct dv_extract *x, struct dv_fs *fs, int fd, const struct dv_fs_stat *st)
{
	if (x->o.owner && fchown(fd, st->uid, st->gid) < 0)
		warnf(x, DV_E_IO, "%s: cannot set owner %u:%u: %s", x->rel, st->uid, st->gid, strerror(errno));
	if (fchmod(fd, st->mode & 07777) < 0)
		warnf(x, DV_E_IO, "%s: cannot set mode %o: %s", x->rel, st->mode & 07777, strerror(errno));
	if (x->o.xattrs) {
		struct xa_ctx c = {x, fd};
		struct dv_err e;
		dv_err_clear(&e);
		int rc = dv_fs_xattrs(fs, st->ino, xa_set, &c, &e);
		if (rc < 0) {
			if (fatal(rc))
				return rc;
			warn(x, &e);
		}
	}
	struct timespec ts[2] = {{(time_t)st->atime, st->atime_ns}, {(time_t)st->mtime, st->mtime_ns}};
	if (futimens(fd, ts) < 0)
		warnf(x, DV_E_IO, "%s: cannot set times: %s", x->rel, strerror(errno));
	return 0;
}

/* ---- regular files -------------------------------------------------- */

struct wr_ctx {
	struct dv_extract *x;
	int fd;
	const char *what;
};

#define ZCHECK 4096

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Writes a run; blocks of zeros stay holes (the file is sized at the end). */
static int wr_cb(void *ctx, uint64_t off, const void *data, size_t len, struct dv_err *err)
{
	struct wr_ctx *c = ctx;
	if (c->x->o.interrupted && *c->x->o.interrupted)
		return dv_error(err, DV_E_INTERRUPTED, "interrupted");
	const uint8_t *p = data;
	size_t i = 0;
	while (i < len) {
		size_t k = DV_MIN((size_t)ZCHECK, len - i);
		if (all_zero(p + i, k)) {
			i += k;
			continue;
		}
		size_t j = i + k;
		while (j < len) {
			size_t m = DV_MIN((size_t)ZCHECK, len - j);
			if (all_zero(p + j, m))
				break;
			j += m;
		}
		int rc = dv_pwrite_all(c->fd, p + i, j - i, (off_t)(off + i), err, c->what);
		if (rc < 0)
			return rc;
		i = j;
	}
	c->x->st.bytes += len;
	return 0;
}

static void tmp_name(char *buf, size_t cap, uint64_t ino)
{
	snprintf(buf, cap, ".dv-extract.%llu.%ld", (unsigned long long)ino, (long)getpid());
}

static bool same_file(const struct stat *sb, const struct dv_fs_stat *st)
{
	return S_ISREG(sb->st_mode) && (uint64_t)sb->st_size == st->size && sb->st_mtim.tv_sec == st->mtime &&
	       sb->st_mtim.tv_nsec == (long)st->mtime_ns;
}

static int extract_file(struct dv_extract *x, struct dv_fs *fs, int dirfd, const char *name,
			const struct dv_fs_stat *st, struct dv_err *err)
{
	struct stat sb;
	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && same_file(&sb, st)) {
		x->st.skipped++;
		return 0;
	}
	char tmp[64];
	tmp_name(tmp, sizeof tmp, st->ino);
	unlinkat(dirfd, tmp, 0);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return dv_error_errno(err, errno, "%s: cannot create", x->rel);
	struct wr_ctx c = {x, fd, x->rel};
	int rc = dv_fs_read(fs, st->ino, wr_cb, &c, err);
	if (rc < 0 && rc != -DV_E_IO && rc != -DV_E_NOSPACE && rc != -DV_E_INTERRUPTED)
		rc = dv_error_prefix(err, "%s: ", x->rel);
	if (rc == 0 && ftruncate(fd, (off_t)st->size) < 0)
		rc = dv_error_errno(err, errno, "%s: cannot set the size", x->rel);
	if (rc == 0)
		rc = set_attrs(x, fs, fd, st);
	if (close(fd) < 0 && rc == 0)
		rc = dv_error_errno(err, errno, "%s: close", x->rel);
	if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = dv_error_errno(err, errno, "%s: cannot put it in place", x->rel);
	if (rc < 0) {
		unlinkat(dirfd, tmp, 0);
		return rc;
	}
	x->st.files++;
	return 0;
}

/* ---- hard links ----------------------------------------------------- */

static struct link_rec *link_find(struct dv_extract *x, const struct dv_fs *fs, uint64_t ino)
{
	for (size_t i = 0; i < x->nlinks; i++)
		if (x->links[i].fs == fs && x->links[i].ino == ino)
			return &x->links[i];
	return NULL;
}

static void link_add(struct dv_extract *x, const struct dv_fs *fs, uint64_t ino)
{
	if (x->nlinks == x->caplinks) {
		x->caplinks = x->caplinks ? x->caplinks * 2 : 32;
		x->links = dv_realloc(x->links, x->caplinks * sizeof *x->links);
	}
	x->links[x->nlinks++] = (struct link_rec){fs, ino, dv_strdup(x->rel)};
}

/* Opens the directory holding rel (relative to top) component by
 * component with O_NOFOLLOW; *base gets the last component. */
static int open_parent(struct dv_extract *x, const char *rel, char *copy, size_t cap, const char **base)
{
	snprintf(copy, cap, "%s", rel);
	int fd = dup(x->top);
	char *p = copy;
	for (char *s = strchr(p, '/'); fd >= 0 && s; s = strchr(p, '/')) {
		*s = 0;
		int n = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = n;
		p = s + 1;
	}
	*base = p;
	return fd;
}

/* A second name of an inode extracted already in this run: a link to the
 * first (or nothing when it is one already). true when done (or failed). */
static bool extract_link(struct dv_extract *x, int dirfd, const char *name, const struct link_rec *l)
{
	char copy[8192];
	const char *base;
	int pfd = open_parent(x, l->path, copy, sizeof copy, &base);
	if (pfd < 0) {
		warnf(x, DV_E_IO, "%s: cannot link to %s: %s", x->rel, l->path, strerror(errno));
		return true;
	}
	struct stat a, b;
	if (fstatat(pfd, base, &a, AT_SYMLINK_NOFOLLOW) == 0 && fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
		x->st.skipped++;
		close(pfd);
		return true;
	}
	if (fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(b.st_mode))
		unlinkat(dirfd, name, 0);
	if (linkat(pfd, base, dirfd, name, 0) < 0)
		warnf(x, DV_E_IO, "%s: cannot link to %s: %s", x->rel, l->path, strerror(errno));
	else
		x->st.hardlinks++;
	close(pfd);
	return true;
}

/* ---- the tree ------------------------------------------------------- */

static int extract_entry(struct dv_extract *x, struct dv_fs *fs, int dirfd, const char *name, uint64_t ino,
			 struct dv_err *err);

struct dir_ctx {
	struct dv_extract *x;
	struct dv_fs *fs;
	int fd;
	struct dv_err *err;
	size_t rel_len;
};

static int dir_cb(void *ctx, const char *name, size_t len, uint64_t ino)
{
	struct dir_ctx *c = ctx;
	struct dv_extract *x = c->x;
	if (x->o.interrupted && *x->o.interrupted)
		return dv_error(c->err, DV_E_INTERRUPTED, "interrupted");
	char esc[1100];
	if (!name_ok(name, len)) {
		dv_files_escape(name, len, esc, sizeof esc);
		warnf(x, DV_E_CORRUPT, "%s%s%s: refused: a name holding '/' or NUL, or '.', '..' or empty", x->rel,
		      c->rel_len ? "/" : "", esc);
		return 0;
	}
	char nm[256];
	memcpy(nm, name, len);
	nm[len] = 0;
	size_t o = c->rel_len;
	if (o + len + 2 >= sizeof x->rel) {
		warnf(x, DV_E_USAGE, "%s/...: path too long", x->rel);
		return 0;
	}
	if (o)
		x->rel[o++] = '/';
	memcpy(x->rel + o, nm, len + 1);
	int rc = extract_entry(x, c->fs, c->fd, nm, ino, c->err);
	x->rel[c->rel_len] = 0;
	return rc;
}

/* Extracts the entries of directory ino into the open directory fd. */
static int extract_children(struct dv_extract *x, struct dv_fs *fs, int fd, uint64_t ino, struct dv_err *err)
{
	for (unsigned i = 0; i < x->depth; i++)
		if (x->stack[i] == ino) {
			warnf(x, DV_E_CORRUPT, "%s: a directory that holds itself (a loop in the image): not descended",
			      x->rel);
			return 0;
		}
	if (x->depth == DEPTH_MAX) {
		warnf(x, DV_E_CORRUPT, "%s: directories nested deeper than %d: not descended", x->rel, DEPTH_MAX);
		return 0;
	}
	x->stack[x->depth++] = ino;
	struct dir_ctx c = {x, fs, fd, err, strlen(x->rel)};
	struct dv_err e;
	dv_err_clear(&e);
	c.err = &e;
	int rc = dv_fs_readdir(fs, ino, dir_cb, &c, &e);
	x->depth--;
	if (rc < 0) {
		if (fatal(rc)) {
			*err = e;
			return rc;
		}
		warn(x, &e);
	}
	return 0;
}

static int extract_dir(struct dv_extract *x, struct dv_fs *fs, int dirfd, const char *name,
		       const struct dv_fs_stat *st, struct dv_err *err)
{
	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return dv_error_errno(err, errno, "%s: cannot create the directory", x->rel);
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return dv_error_errno(err, errno, "%s: exists and is not a directory (or a symlink to one: not followed)",
				      x->rel);
	/* owner-writable while its entries go in */
	struct stat sb;
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 0700) != 0700)
		fchmod(fd, sb.st_mode | 0700);
	int rc = extract_children(x, fs, fd, st->ino, err);
	if (rc == 0)
		rc = set_attrs(x, fs, fd, st);
	close(fd);
	if (rc == 0)
		x->st.dirs++;
	return rc;
}

static int extract_symlink(struct dv_extract *x, struct dv_fs *fs, int dirfd, const char *name,
			   const struct dv_fs_stat *st, struct dv_err *err)
{
	char target[4097], have[4097];
	int rc = dv_fs_readlink(fs, st->ino, target, sizeof target, err);
	if (rc < 0)
		return rc;
	ssize_t n = readlinkat(dirfd, name, have, sizeof have - 1);
	if (n >= 0 && (size_t)n == strlen(target) && !memcmp(have, target, (size_t)n)) {
		x->st.skipped++;
		return 0;
	}
	char tmp[64];
	tmp_name(tmp, sizeof tmp, st->ino);
	unlinkat(dirfd, tmp, 0);
	if (symlinkat(target, dirfd, tmp) < 0)
		return dv_error_errno(err, errno, "%s: cannot create the symlink", x->rel);
	if (x->o.owner && fchownat(dirfd, tmp, st->uid, st->gid, AT_SYMLINK_NOFOLLOW) < 0)
		warnf(x, DV_E_IO, "%s: cannot set owner %u:%u: %s", x->rel, st->uid, st->gid, strerror(errno));
	struct timespec ts[2] = {{(time_t)st->atime, st->atime_ns}, {(time_t)st->mtime, st->mtime_ns}};
	if (utimensat(dirfd, tmp, ts, AT_SYMLINK_NOFOLLOW) < 0)
		warnf(x, DV_E_IO, "%s: cannot set times: %s", x->rel, strerror(errno));
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		rc = dv_error_errno(err, errno, "%s: cannot put the symlink in place", x->rel);
		unlinkat(dirfd, tmp, 0);
		return rc;
	}
	x->st.symlinks++;
	return 0;
}

static int extract_special(struct dv_extract *x, int dirfd, const char *name, const struct dv_fs_stat *st,
			   struct dv_err *err)
{
	struct stat sb;
	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && (sb.st_mode & S_IFMT) == (st->mode & S_IFMT)) {
		x->st.skipped++;
		return 0;
	}
	dev_t dev = makedev(st->rdev_major, st->rdev_minor);
	if (mknodat(dirfd, name, (st->mode & S_IFMT) | (st->mode & 07777), dev) < 0)
		return dv_error_errno(err, errno, "%s: cannot create the %s", x->rel,
				      S_ISFIFO(st->mode) ? "fifo" : S_ISSOCK(st->mode) ? "socket" : "device node");
	if (x->o.owner && fchownat(dirfd, name, st->uid, st->gid, AT_SYMLINK_NOFOLLOW) < 0)
		warnf(x, DV_E_IO, "%s: cannot set owner: %s", x->rel, strerror(errno));
	struct timespec ts[2] = {{(time_t)st->atime, st->atime_ns}, {(time_t)st->mtime, st->mtime_ns}};
	utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
	x->st.specials++;
	return 0;
}

static int extract_entry(struct dv_extract *x, struct dv_fs *fs, int dirfd, const char *name, uint64_t ino,
			 struct dv_err *err)
{
	struct dv_fs_stat st;
	struct dv_err e;
	dv_err_clear(&e);
	int rc = dv_fs_stat(fs, ino, &st, &e);
	if (rc == 0) {
		if (!S_ISDIR(st.mode) && st.nlink > 1) {
			const struct link_rec *l = link_find(x, fs, ino);
			if (l && extract_link(x, dirfd, name, l))
				goto done;
		}
		if (S_ISDIR(st.mode))
			rc = extract_dir(x, fs, dirfd, name, &st, &e);
		else if (S_ISREG(st.mode))
			rc = extract_file(x, fs, dirfd, name, &st, &e);
		else if (S_ISLNK(st.mode))
			rc = extract_symlink(x, fs, dirfd, name, &st, &e);
		else
			rc = extract_special(x, dirfd, name, &st, &e);
		if (rc == 0 && !S_ISDIR(st.mode) && st.nlink > 1 && !link_find(x, fs, ino))
			link_add(x, fs, ino);
	}
	if (rc < 0) {
		if (fatal(rc)) {
			*err = e;
			return rc;
		}
		warn(x, &e);
	}
done:
	if (x->o.progress)
		x->o.progress(x->o.ctx, &x->st, x->rel);
	return 0;
}

int dv_extract_path(struct dv_extract *x, struct dv_fs *fs, const char *path, struct dv_err *err)
{
	uint64_t ino;
	int rc = dv_fs_lookup(fs, path, &ino, err);
	if (rc < 0)
		return rc;
	/* the last component names what is created in the target */
	size_t len;
	const char *last = dv_files_last_component(path, &len);
	if (!last) {  /* the root: its entries go into the target itself */
		struct dv_fs_stat st;
		if ((rc = dv_fs_stat(fs, ino, &st, err)) < 0)
			return rc;
		x->rel[0] = 0;
		rc = extract_children(x, fs, x->top, ino, err);
		x->rel[0] = 0;
		return rc;
	}
	if (!name_ok(last, len) || len >= 256)
		return dv_error(err, DV_E_USAGE, "%s: cannot be extracted under that name", path);
	char nm[256];
	memcpy(nm, last, len);
	nm[len] = 0;
	snprintf(x->rel, sizeof x->rel, "%s", nm);
	rc = extract_entry(x, fs, x->top, nm, ino, err);
	x->rel[0] = 0;
	return rc;
}
