/*
 * files.h - the files of a snapshot, without restoring its disks
 * (docs/files.md): a file spec "SNAPSHOT[:VOLUME][/PATH]" resolved against
 * the snapshot's volumes (disk/layoutvol.h, opened by
 * dv_snapshot_vols_open), a filesystem reader on one volume (ext2/3/4
 * through libext2fs with the io_manager of disk/ext_io.h, so every read
 * goes through the snapshot's chunk readers: no root, no kernel mount, no
 * FUSE), and on top of it ls, cat and extract.
 *
 * Nothing here prints: the CLI formats entries and progress.
 * Not thread safe: one thread per struct dv_fs.
 */
#ifndef DV_FILES_FILES_H
#define DV_FILES_FILES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk/layoutvol.h"
#include "util/util.h"

/* ---- naming --------------------------------------------------------- */

/*
 * Splits a file spec into the snapshot (copied into snap, cap bytes: what
 * comes before the first ':' or '/') and the rest (a pointer into spec:
 * after the ':', or from the '/'; "" when none). -DV_E_USAGE when the
 * snapshot part is empty or too long.
 */
int dv_files_split_spec(const char *spec, char *snap, size_t cap, const char **rest, struct dv_err *err) DV_WUR;
/*
 * Resolves the rest of a spec against the volumes:
 *   ""  or "/PATH"          the default volume (dv_layout_vol_default)
 *   "VOLUME"                a named volume, its root
 *   "VOLUME/PATH", "VOLUME:/PATH"
 *                           VOLUME is the longest volume name that the
 *                           rest starts with, followed by '/' or ':'
 *                           (LV names hold a '/': "centos/root/etc")
 * The path (absolute, "/" when none) goes into path. An unknown volume is
 * -DV_E_USAGE listing the names there are; no default volume too.
 */
int dv_files_resolve(const struct dv_layout_vols *vols, const char *rest, const struct dv_layout_vol **vol,
		     char *path, size_t cap, struct dv_err *err) DV_WUR;

/* ---- a filesystem --------------------------------------------------- */

struct dv_fs;
/*
 * Opens the filesystem of volume lv (borrowed; must outlive the dv_fs).
 * Today ext2/3/4; another filesystem is -DV_E_USAGE naming it and
 * pointing at `diskvault mount`.
 */
int dv_fs_open(const struct dv_layout_vol *lv, struct dv_fs **out, struct dv_err *err) DV_WUR;
void dv_fs_close(struct dv_fs *fs);

struct dv_fs_stat {
	uint64_t ino;
	uint32_t mode;            /* st_mode: type and permission bits */
	uint32_t uid, gid, nlink;
	uint64_t size;
	uint32_t rdev_major, rdev_minor;
	int64_t atime, mtime, ctime; /* seconds since the epoch */
	uint32_t atime_ns, mtime_ns, ctime_ns;
};

/* The inode at absolute path (symlinks on the way followed inside the
 * filesystem, the last one not); -DV_E_NOT_FOUND when there is none. */
int dv_fs_lookup(struct dv_fs *fs, const char *path, uint64_t *ino, struct dv_err *err) DV_WUR;
/* The same, following a symlink in the last component too (inside the
 * filesystem: an absolute target is taken from its root). */
int dv_fs_lookup_follow(struct dv_fs *fs, const char *path, uint64_t *ino, struct dv_err *err) DV_WUR;
int dv_fs_stat(struct dv_fs *fs, uint64_t ino, struct dv_fs_stat *st, struct dv_err *err) DV_WUR;
/* A directory's entries but "." and "..", in on-disk order; cb returning
 * non-zero stops the walk and is returned. Names are raw bytes (not NUL
 * terminated, never checked: callers check them). */
typedef int (*dv_fs_dirent_fn)(void *ctx, const char *name, size_t len, uint64_t ino);
int dv_fs_readdir(struct dv_fs *fs, uint64_t dir, dv_fs_dirent_fn cb, void *ctx, struct dv_err *err) DV_WUR;
/* A symlink's target, NUL terminated (-DV_E_CORRUPT if longer than cap-1). */
int dv_fs_readlink(struct dv_fs *fs, uint64_t ino, char *buf, size_t cap, struct dv_err *err) DV_WUR;
/* A regular file's data, as runs in increasing offset order: the bytes no
 * run covers, up to its size, are holes (zeros). cb returning < 0 stops
 * the walk and is returned. A region the snapshot could not read fails
 * with DV_E_SOURCE naming its disk bytes. */
typedef int (*dv_fs_data_fn)(void *ctx, uint64_t off, const void *data, size_t len, struct dv_err *err);
int dv_fs_read(struct dv_fs *fs, uint64_t ino, dv_fs_data_fn cb, void *ctx, struct dv_err *err) DV_WUR;
/* Extended attributes (POSIX ACLs as system.posix_acl_access/_default in
 * the Linux xattr format). cb returning non-zero stops and is returned. */
typedef int (*dv_fs_xattr_fn)(void *ctx, const char *name, const void *value, size_t len);
int dv_fs_xattrs(struct dv_fs *fs, uint64_t ino, dv_fs_xattr_fn cb, void *ctx, struct dv_err *err) DV_WUR;

/* ---- ls and cat ----------------------------------------------------- */

struct dv_files_entry {
	char *name;               /* owned, NUL terminated (names never hold NUL) */
	size_t name_len;
	char *target;             /* symlink target, owned; NULL otherwise */
	struct dv_fs_stat st;
};
/* The last component of path (trailing slashes ignored; not NUL
 * terminated: *len bytes), or NULL for the root ("/", "//"). */
const char *dv_files_last_component(const char *path, size_t *len);
/* The entries of directory path, sorted by name (bytes), or the one entry
 * of path when it is not a directory (its name: the last component). */
int dv_files_list(struct dv_fs *fs, const char *path, struct dv_files_entry **out, size_t *n,
		  struct dv_err *err) DV_WUR;
void dv_files_entries_free(struct dv_files_entry *e, size_t n);
/* "drwxr-xr-x" for mode (10 characters and a NUL). */
void dv_files_mode_string(uint32_t mode, char out[11]);
/* name with backslash as "\\" and every byte outside printable ASCII as
 * "\ooo" (ls -b), NUL terminated, cut to cap. */
void dv_files_escape(const char *name, size_t len, char *out, size_t cap);
/* One `ls -ln --time-style=long-iso`-like line (no newline): mode, links,
 * uid, gid, size (or "major, minor"), mtime "YYYY-MM-DD HH:MM" in local
 * time, the escaped name and " -> target". */
void dv_files_long_line(const struct dv_files_entry *e, char *buf, size_t cap);
/* The entry as a JSON object: name, type, mode, uid, gid, nlink, size,
 * mtime (seconds), mtime_ns, ino, [target], [rdev]. */
json_t *dv_files_entry_json(const struct dv_files_entry *e);
/* Writes the regular file at path (a symlink: followed, inside the
 * filesystem) to fd (holes as zeros); *bytes gets the
 * count written. A directory or any other non-regular file is
 * -DV_E_USAGE. */
int dv_files_cat(struct dv_fs *fs, const char *path, int fd, uint64_t *bytes, struct dv_err *err) DV_WUR;

/* ---- extract -------------------------------------------------------- */

struct dv_extract_stats {
	uint64_t files, dirs, symlinks, hardlinks, specials; /* written */
	uint64_t skipped;         /* files already present and identical */
	uint64_t bytes;           /* file bytes written */
	uint64_t xattrs;          /* xattrs set (ACLs included) */
	uint64_t failed;          /* entries (or attributes) not extracted, each passed to warn */
};
struct dv_extract_opts {
	bool owner;               /* set numeric owner and group (as root) */
	bool xattrs;              /* set xattrs and ACLs (user.* and system.posix_acl_*;
				     every namespace when owner) */
	/* each entry that could not be extracted (the run goes on) */
	void (*warn)(void *ctx, const struct dv_err *e);
	/* after each entry; path relative to the target directory */
	void (*progress)(void *ctx, const struct dv_extract_stats *st, const char *path);
	void *ctx;
	volatile int *interrupted;  /* non-zero ends the run with DV_E_INTERRUPTED (may be NULL) */
};
struct dv_extract;
/* One run of extract into the directory open at dirfd (borrowed; opened
 * O_DIRECTORY): several paths share it, so hard links between them are
 * kept. */
struct dv_extract *dv_extract_new(int dirfd, const struct dv_extract_opts *o);
/*
 * Extracts path of fs (recursively) as dirfd/<last component of path>
 * ("/": its entries go into dirfd itself). Everything is created relative
 * to directory descriptors opened with O_NOFOLLOW: nothing is ever written
 * outside dirfd, whatever the image holds; names holding '/' or being "."
 * or ".." are refused. A file already there with the same type, size and
 * mtime (ns) is skipped. Fatal errors (path not there, no space,
 * interrupted) are returned; others are counted in failed and passed to
 * warn. Regular files are written under a temporary name and renamed.
 */
int dv_extract_path(struct dv_extract *x, struct dv_fs *fs, const char *path, struct dv_err *err) DV_WUR;
const struct dv_extract_stats *dv_extract_stats(const struct dv_extract *x);
void dv_extract_free(struct dv_extract *x);

#endif
