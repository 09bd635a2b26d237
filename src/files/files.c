/* files.c - file specs, ls and cat over a struct dv_fs (files.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "files.h"

/* ---- naming --------------------------------------------------------- */

int dv_files_split_spec(const char *spec, char *snap, size_t cap, const char **rest, struct dv_err *err)
{
	size_t n = strcspn(spec, ":/");
	if (n == 0)
		return dv_error(err, DV_E_USAGE, "'%s': a file spec starts with a snapshot (latest or an id prefix): "
				"SNAPSHOT[:VOLUME][/PATH]", spec);
	if (n >= cap)
		return dv_error(err, DV_E_USAGE, "'%.*s...': no snapshot has so long a name", 16, spec);
	memcpy(snap, spec, n);
	snap[n] = 0;
	*rest = spec[n] == ':' ? spec + n + 1 : spec + n;
	return 0;
}

/* "p1, p2, centos/root" into buf. */
static void vol_names(const struct dv_layout_vols *vols, char *buf, size_t cap)
{
	size_t o = 0;
	buf[0] = 0;
	for (size_t i = 0; i < vols->n && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", vols->v[i].name);
	if (!vols->n)
		snprintf(buf, cap, "none");
}

static int set_path(const char *p, char *path, size_t cap, struct dv_err *err)
{
	if (!*p)
		p = "/";
	if (p[0] != '/')
		return dv_error(err, DV_E_USAGE, "'%s': a path in a snapshot starts with '/'", p);
	if (strlen(p) >= cap)
		return dv_error(err, DV_E_USAGE, "a path of %zu bytes is too long", strlen(p));
	snprintf(path, cap, "%s", p);
	return 0;
}

int dv_files_resolve(const struct dv_layout_vols *vols, const char *rest, const struct dv_layout_vol **vol,
		     char *path, size_t cap, struct dv_err *err)
{
	char names[1024];
	if (!*rest || rest[0] == '/') {
		*vol = dv_layout_vol_default(vols);
		if (!*vol) {
			vol_names(vols, names, sizeof names);
			return dv_error(err, DV_E_USAGE,
					"the snapshot has no volume with a filesystem to read by default; name one "
					"(SNAPSHOT:VOLUME/PATH; it has: %s)",
					names);
		}
		return set_path(rest, path, cap, err);
	}
	const struct dv_layout_vol *best = NULL;
	size_t best_len = 0;
	for (size_t i = 0; i < vols->n; i++) {
		size_t l = strlen(vols->v[i].name);
		if (l > best_len && !strncmp(rest, vols->v[i].name, l) &&
		    (rest[l] == 0 || rest[l] == '/' || rest[l] == ':')) {
			best = &vols->v[i];
			best_len = l;
		}
	}
	if (!best) {
		size_t l = strcspn(rest, ":/");
		for (size_t i = 0; i < vols->nskipped; i++) {
			size_t k = strcspn(vols->skipped[i], ":");
			if (!strncmp(vols->skipped[i], rest, k) && (rest[k] == 0 || rest[k] == '/' || rest[k] == ':'))
				return dv_error(err, DV_E_USAGE, "volume %.*s cannot be assembled: %s", (int)k, rest,
						vols->skipped[i][k] ? vols->skipped[i] + k + 1 : "");
		}
		vol_names(vols, names, sizeof names);
		return dv_error(err, DV_E_USAGE, "the snapshot has no volume %.*s (it has: %s; a path starts with '/')",
				(int)DV_MIN(l, (size_t)200), rest, names);
	}
	*vol = best;
	const char *p = rest + best_len;
	if (*p == ':')
		p++;
	return set_path(p, path, cap, err);
}

/* ---- ls ------------------------------------------------------------- */

void dv_files_mode_string(uint32_t mode, char out[11])
{
	char t = '?';
	switch (mode & S_IFMT) {
	case S_IFREG: t = '-'; break;
	case S_IFDIR: t = 'd'; break;
	case S_IFLNK: t = 'l'; break;
	case S_IFCHR: t = 'c'; break;
	case S_IFBLK: t = 'b'; break;
	case S_IFIFO: t = 'p'; break;
	case S_IFSOCK: t = 's'; break;
	}
	out[0] = t;
	static const char rwx[] = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[1 + i] = (mode & (0400u >> i)) ? rwx[i] : '-';
	if (mode & S_ISUID)
		out[3] = (mode & S_IXUSR) ? 's' : 'S';
	if (mode & S_ISGID)
		out[6] = (mode & S_IXGRP) ? 's' : 'S';
	if (mode & S_ISVTX)
		out[9] = (mode & S_IXOTH) ? 't' : 'T';
	out[10] = 0;
}

void dv_files_escape(const char *name, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else if (c < 0x20 || c >= 0x7f) {
			o += (size_t)snprintf(out + o, cap - o, "\\%03o", c);
		} else {
			out[o++] = (char)c;
		}
	}
	if (cap)
		out[o < cap ? o : cap - 1] = 0;
}

void dv_files_long_line(const struct dv_files_entry *e, char *buf, size_t cap)
{
	char mode[11], size[48], when[32], name[1100], target[4200] = "";
	dv_files_mode_string(e->st.mode, mode);
	if (S_ISCHR(e->st.mode) || S_ISBLK(e->st.mode))
		snprintf(size, sizeof size, "%u, %u", e->st.rdev_major, e->st.rdev_minor);
	else
		snprintf(size, sizeof size, "%llu", (unsigned long long)e->st.size);
	time_t t = (time_t)e->st.mtime;
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
	else
		snprintf(when, sizeof when, "%lld", (long long)e->st.mtime);
	dv_files_escape(e->name, e->name_len, name, sizeof name);
	if (e->target) {
		memcpy(target, " -> ", 4);
		dv_files_escape(e->target, strlen(e->target), target + 4, sizeof target - 4);
	}
	snprintf(buf, cap, "%s %u %u %u %s %s %s%s", mode, e->st.nlink, e->st.uid, e->st.gid, size, when, name, target);
}

static const char *type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "file";
	case S_IFDIR: return "dir";
	case S_IFLNK: return "symlink";
	case S_IFCHR: return "char";
	case S_IFBLK: return "block";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	}
	return "unknown";
}

/* name as a JSON string: itself when UTF-8, else escaped (ls -b). */
static json_t *json_name(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	if (j)
		return j;
	char buf[4200];
	dv_files_escape(s, len, buf, sizeof buf);
	return json_string(buf);
}

json_t *dv_files_entry_json(const struct dv_files_entry *e)
{
	json_t *j = json_pack("{s:o, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:i, s:I}", "name",
			      json_name(e->name, e->name_len), "type", type_name(e->st.mode), "mode",
			      (int)(e->st.mode & 07777), "uid", (json_int_t)e->st.uid, "gid", (json_int_t)e->st.gid, "nlink",
			      (json_int_t)e->st.nlink, "size", (json_int_t)e->st.size, "mtime", (json_int_t)e->st.mtime,
			      "mtime_ns", (int)e->st.mtime_ns, "ino", (json_int_t)e->st.ino);
	if (e->target)
		json_object_set_new(j, "target", json_name(e->target, strlen(e->target)));
	if (S_ISCHR(e->st.mode) || S_ISBLK(e->st.mode))
		json_object_set_new(j, "rdev", json_pack("[i, i]", (int)e->st.rdev_major, (int)e->st.rdev_minor));
	return j;
}

struct list_ctx {
	struct dv_fs *fs;
	struct dv_files_entry *e;
	size_t n, cap;
	struct dv_err *err;
};

static int fill_entry(struct dv_fs *fs, const char *name, size_t len, uint64_t ino, struct dv_files_entry *e,
		      struct dv_err *err)
{
	memset(e, 0, sizeof *e);
	e->name = dv_malloc(len + 1);
	memcpy(e->name, name, len);
	e->name[len] = 0;
	e->name_len = len;
	int rc = dv_fs_stat(fs, ino, &e->st, err);
	if (rc == 0 && S_ISLNK(e->st.mode)) {
		char t[4097];
		if ((rc = dv_fs_readlink(fs, ino, t, sizeof t, err)) == 0)
			e->target = dv_strdup(t);
	}
	return rc;
}

static int list_cb(void *ctx, const char *name, size_t len, uint64_t ino)
{
	struct list_ctx *c = ctx;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->e = dv_realloc(c->e, c->cap * sizeof *c->e);
	}
	int rc = fill_entry(c->fs, name, len, ino, &c->e[c->n], c->err);
	c->n++;
	return rc;
}

static int by_name(const void *a, const void *b)
{
	const struct dv_files_entry *x = a, *y = b;
	int c = memcmp(x->name, y->name, DV_MIN(x->name_len, y->name_len));
	return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

const char *dv_files_last_component(const char *path, size_t *len)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	size_t s = n;
	while (s > 0 && path[s - 1] != '/')
		s--;
	*len = n - s;
	return s == n ? NULL : path + s;
}

int dv_files_list(struct dv_fs *fs, const char *path, struct dv_files_entry **out, size_t *n, struct dv_err *err)
{
	*out = NULL;
	*n = 0;
	uint64_t ino;
	int rc = dv_fs_lookup(fs, path, &ino, err);
	if (rc < 0)
		return rc;
	struct dv_fs_stat st;
	if ((rc = dv_fs_stat(fs, ino, &st, err)) < 0)
		return rc;
	struct list_ctx c = {.fs = fs, .err = err};
	if (!S_ISDIR(st.mode)) {
		size_t len;
		const char *name = dv_files_last_component(path, &len);
		if (!name) {
			name = "/";
			len = 1;
		}
		c.e = dv_calloc(1, sizeof *c.e);
		c.n = 1;
		rc = fill_entry(fs, name, len, ino, c.e, err);
	} else {
		rc = dv_fs_readdir(fs, ino, list_cb, &c, err);
	}
	if (rc < 0) {
		dv_files_entries_free(c.e, c.n);
		return rc;
	}
	qsort(c.e, c.n, sizeof *c.e, by_name);
	*out = c.e;
	*n = c.n;
	return 0;
}

void dv_files_entries_free(struct dv_files_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].target);
	}
	free(e);
}

/* ---- cat ------------------------------------------------------------ */

struct cat_ctx {
	int fd;
	uint64_t pos;
	uint8_t *zeros;
};

#define ZBUF (1u << 16)

static int cat_zeros(struct cat_ctx *c, uint64_t upto, struct dv_err *err)
{
	while (c->pos < upto) {
		size_t k = (size_t)DV_MIN((uint64_t)ZBUF, upto - c->pos);
		int rc = dv_write_all(c->fd, c->zeros, k, err, "standard output");
		if (rc < 0)
			return rc;
		c->pos += k;
	}
	return 0;
}

static int cat_cb(void *ctx, uint64_t off, const void *data, size_t len, struct dv_err *err)
{
	struct cat_ctx *c = ctx;
	int rc = cat_zeros(c, off, err);
	if (rc == 0)
		rc = dv_write_all(c->fd, data, len, err, "standard output");
	if (rc == 0)
		c->pos = off + len;
	return rc;
}

int dv_files_cat(struct dv_fs *fs, const char *path, int fd, uint64_t *bytes, struct dv_err *err)
{
	uint64_t ino;
	struct dv_fs_stat st;
	*bytes = 0;
	int rc = dv_fs_lookup_follow(fs, path, &ino, err);
	if (rc == 0)
		rc = dv_fs_stat(fs, ino, &st, err);
	if (rc < 0)
		return rc;
	if (S_ISDIR(st.mode))
		return dv_error(err, DV_E_USAGE, "%s is a directory (ls lists it, extract copies it)", path);
	if (!S_ISREG(st.mode))
		return dv_error(err, DV_E_USAGE, "%s is not a regular file (it is a %s)", path, type_name(st.mode));
	struct cat_ctx c = {.fd = fd, .zeros = dv_calloc(1, ZBUF)};
	rc = dv_fs_read(fs, ino, cat_cb, &c, err);
	if (rc < 0 && rc != -DV_E_IO && rc != -DV_E_NOSPACE)  /* not stdout's failure */
		rc = dv_error_prefix(err, "%s: ", path);
	if (rc == 0)
		rc = cat_zeros(&c, st.size, err);
	*bytes = c.pos;
	free(c.zeros);
	return rc;
}
