/*
 * extfs.c - ext2/3/4 read through libext2fs over a volume of a snapshot
 * (files.h), with the io_manager of disk/ext_io.h. A read that fails
 * (an unreadable region) passes on the volume's own error, naming its
 * disk bytes, rather than libext2fs's bare EIO. Read-only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

#include "disk/ext_io.h"
#include "disk/volume.h"
#include "files.h"

struct dv_fs {
	ext2_filsys e;
	const struct dv_vol *v;
};

/* ---- errors --------------------------------------------------------- */

/* The error of a libext2fs call: the failed read's own message when the
 * volume failed (DV_E_SOURCE: unreadable bytes), else libext2fs's text. */
static int ext_err(struct dv_fs *fs, errcode_t r, struct dv_err *err, const char *what, uint64_t ino)
{
	if (dv_ext_io_take_error(err)) {
		if (ino)
			return dv_error_prefix(err, "%s of inode %llu: ", what, (unsigned long long)ino);
		return dv_error_prefix(err, "%s: ", what);
	}
	if (ino)
		return dv_error(err, DV_E_CORRUPT, "%s: %s: inode %llu: %s", fs->v->name, what, (unsigned long long)ino,
				error_message(r));
	return dv_error(err, DV_E_CORRUPT, "%s: %s: %s", fs->v->name, what, error_message(r));
}

/* ---- open ----------------------------------------------------------- */

static bool is_ext(const char *t)
{
	return !strcmp(t, "ext2") || !strcmp(t, "ext3") || !strcmp(t, "ext4");
}

int dv_fs_open(const struct dv_layout_vol *lv, struct dv_fs **out, struct dv_err *err)
{
	const struct dv_vol *v = &lv->vol;
	if (!lv->fstype[0])
		return dv_error(err, DV_E_USAGE,
				"volume %s (%s) holds no filesystem the backup recognised; `diskvault mount` shows it "
				"as an image file",
				lv->name, v->name);
	if (!is_ext(lv->fstype))
		return dv_error(err, DV_E_USAGE,
				"volume %s holds %s: ls, cat and extract read ext2/3/4 only; use `diskvault mount` and "
				"loop-mount its image file",
				lv->name, lv->fstype);
	dv_ext2_errors_init();
	struct dv_fs *fs = dv_calloc(1, sizeof *fs);
	fs->v = v;
	char name[64];
	dv_ext_io_name(v, name, sizeof name);
	struct dv_err discard;
	(void)dv_ext_io_take_error(&discard);
	errcode_t r = ext2fs_open2(name, NULL, EXT2_FLAG_64BITS | EXT2_FLAG_IGNORE_CSUM_ERRORS | EXT2_FLAG_SKIP_MMP, 0,
				   0, dv_ext_vol_io_manager, &fs->e);
	if (r) {
		int rc;
		if (dv_ext_io_take_error(err))
			rc = dv_error_prefix(err, "reading the superblock of volume %s: ", lv->name);
		else
			rc = dv_error(err, DV_E_CORRUPT, "volume %s: the %s filesystem cannot be opened: %s", lv->name,
				      lv->fstype, error_message(r));
		free(fs);
		return rc;
	}
	*out = fs;
	return 0;
}

void dv_fs_close(struct dv_fs *fs)
{
	if (!fs)
		return;
	ext2fs_close_free(&fs->e);
	free(fs);
}

/* ---- inodes --------------------------------------------------------- */

static int read_inode(struct dv_fs *fs, uint64_t ino, struct ext2_inode_large *in, struct dv_err *err)
{
	if (ino == 0 || ino > fs->e->super->s_inodes_count)
		return dv_error(err, DV_E_CORRUPT, "%s: inode %llu is out of range", fs->v->name, (unsigned long long)ino);
	memset(in, 0, sizeof *in);
	errcode_t r = ext2fs_read_inode_full(fs->e, (ext2_ino_t)ino, (struct ext2_inode *)in, sizeof *in);
	if (r)
		return ext_err(fs, r, err, "reading", ino);
	return 0;
}

static void xtime(uint32_t base, uint32_t extra, bool has_extra, int64_t *sec, uint32_t *ns)
{
	*sec = (int32_t)base;
	*ns = 0;
	if (has_extra) {
		*sec += (int64_t)(extra & 3) << 32;
		*ns = extra >> 2;
		if (*ns >= 1000000000u)
			*ns = 0;
	}
}

int dv_fs_stat(struct dv_fs *fs, uint64_t ino, struct dv_fs_stat *st, struct dv_err *err)
{
	struct ext2_inode_large in;
	int rc = read_inode(fs, ino, &in, err);
	if (rc < 0)
		return rc;
	memset(st, 0, sizeof *st);
	st->ino = ino;
	st->mode = in.i_mode;
	st->uid = inode_uid(in);
	st->gid = inode_gid(in);
	st->nlink = in.i_links_count;
	st->size = EXT2_I_SIZE(&in);
	size_t isz = EXT2_INODE_SIZE(fs->e->super);
	size_t extra_end = EXT2_GOOD_OLD_INODE_SIZE + (isz > EXT2_GOOD_OLD_INODE_SIZE ? in.i_extra_isize : 0);
#define HAS(field) (isz > EXT2_GOOD_OLD_INODE_SIZE && \
		    extra_end >= offsetof(struct ext2_inode_large, field) + sizeof in.field)
	xtime(in.i_atime, in.i_atime_extra, HAS(i_atime_extra), &st->atime, &st->atime_ns);
	xtime(in.i_mtime, in.i_mtime_extra, HAS(i_mtime_extra), &st->mtime, &st->mtime_ns);
	xtime(in.i_ctime, in.i_ctime_extra, HAS(i_ctime_extra), &st->ctime, &st->ctime_ns);
#undef HAS
	if (S_ISCHR(st->mode) || S_ISBLK(st->mode)) {
		uint32_t b0 = in.i_block[0], b1 = in.i_block[1];
		if (b0) {
			st->rdev_major = (b0 >> 8) & 0xff;
			st->rdev_minor = b0 & 0xff;
		} else {
			st->rdev_major = (b1 & 0xfff00) >> 8;
			st->rdev_minor = (b1 & 0xff) | ((b1 >> 12) & 0xfff00);
		}
	}
	return 0;
}

static int lookup(struct dv_fs *fs, const char *path, bool follow, uint64_t *ino, struct dv_err *err)
{
	if (!path || path[0] != '/')
		return dv_error(err, DV_E_USAGE, "'%s': the path must be absolute", path ? path : "");
	ext2_ino_t out = 0;
	const char *p = path;
	while (*p == '/')
		p++;
	if (!*p) {
		*ino = EXT2_ROOT_INO;
		return 0;
	}
	errcode_t r = follow ? ext2fs_namei_follow(fs->e, EXT2_ROOT_INO, EXT2_ROOT_INO, p, &out)
			     : ext2fs_namei(fs->e, EXT2_ROOT_INO, EXT2_ROOT_INO, p, &out);
	if (r == EXT2_ET_FILE_NOT_FOUND || r == EXT2_ET_NO_DIRECTORY)
		return dv_error(err, DV_E_NOT_FOUND, "%s: no such file or directory on %s", path, fs->v->name);
	if (r)
		return ext_err(fs, r, err, "looking up a path", 0);
	*ino = out;
	return 0;
}

int dv_fs_lookup(struct dv_fs *fs, const char *path, uint64_t *ino, struct dv_err *err)
{
	return lookup(fs, path, false, ino, err);
}

int dv_fs_lookup_follow(struct dv_fs *fs, const char *path, uint64_t *ino, struct dv_err *err)
{
	return lookup(fs, path, true, ino, err);
}

/* ---- directories ---------------------------------------------------- */

struct dir_walk {
	dv_fs_dirent_fn cb;
	void *ctx;
	int rc;
};

static int dir_cb(struct ext2_dir_entry *d, int offset, int blocksize, char *buf, void *priv)
{
	(void)offset, (void)blocksize, (void)buf;
	struct dir_walk *w = priv;
	size_t len = ext2fs_dirent_name_len(d);
	if (d->inode == 0)
		return 0;
	if ((len == 1 && d->name[0] == '.') || (len == 2 && d->name[0] == '.' && d->name[1] == '.'))
		return 0;
	w->rc = w->cb(w->ctx, d->name, len, d->inode);
	return w->rc ? DIRENT_ABORT : 0;
}

int dv_fs_readdir(struct dv_fs *fs, uint64_t dir, dv_fs_dirent_fn cb, void *ctx, struct dv_err *err)
{
	struct ext2_inode_large in;
	int rc = read_inode(fs, dir, &in, err);
	if (rc < 0)
		return rc;
	if (!LINUX_S_ISDIR(in.i_mode))
		return dv_error(err, DV_E_USAGE, "inode %llu is not a directory", (unsigned long long)dir);
	struct dir_walk w = {cb, ctx, 0};
	errcode_t r = ext2fs_dir_iterate(fs->e, (ext2_ino_t)dir, 0, NULL, dir_cb, &w);
	if (w.rc)
		return w.rc;
	if (r)
		return ext_err(fs, r, err, "reading the directory", dir);
	return 0;
}

/* ---- file data ------------------------------------------------------ */

#define RUN_MAX (1u << 20) /* bytes per read of contiguous blocks */

struct reader {
	struct dv_fs *fs;
	uint64_t ino, size;
	dv_fs_data_fn cb;
	void *ctx;
	uint8_t *buf;
	uint64_t lblk, pblk, n; /* pending run of blocks */
	uint64_t next;          /* first byte offset not yet passed on */
	int rc;
	struct dv_err *err;
};

/* Reads n blocks from pblk and passes those below the file's size on. */
static int emit(struct reader *r, uint64_t lblk, uint64_t pblk, uint64_t n)
{
	uint64_t bs = r->fs->e->blocksize;
	uint64_t total = ext2fs_blocks_count(r->fs->e->super);
	if (pblk >= total || n > total - pblk)
		return dv_error(r->err, DV_E_CORRUPT, "%s: inode %llu maps blocks %llu+%llu past the end of the filesystem",
				r->fs->v->name, (unsigned long long)r->ino, (unsigned long long)pblk,
				(unsigned long long)n);
	while (n > 0) {
		if (lblk > UINT64_MAX / bs || lblk * bs >= r->size)
			return 0;
		uint64_t off = lblk * bs;
		if (off < r->next)
			return dv_error(r->err, DV_E_CORRUPT, "%s: inode %llu maps byte %llu twice", r->fs->v->name,
					(unsigned long long)r->ino, (unsigned long long)off);
		uint64_t k = DV_MIN(n, RUN_MAX / bs);
		errcode_t e = io_channel_read_blk64(r->fs->e->io, pblk, (int)k, r->buf);
		if (e)
			return ext_err(r->fs, e, r->err, "reading the data", r->ino);
		uint64_t len = DV_MIN(k * bs, r->size - off);
		int rc = r->cb(r->ctx, off, r->buf, (size_t)len, r->err);
		if (rc < 0)
			return rc;
		r->next = off + len;
		lblk += k, pblk += k, n -= k;
	}
	return 0;
}

static int flush_run(struct reader *r)
{
	int rc = 0;
	if (r->n)
		rc = emit(r, r->lblk, r->pblk, r->n);
	r->n = 0;
	return rc;
}

static int block_cb(ext2_filsys e, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref_blk, int ref_offset,
		    void *priv)
{
	(void)e, (void)ref_blk, (void)ref_offset;
	struct reader *r = priv;
	if (blockcnt < 0 || *blocknr == 0)
		return 0;
	uint64_t l = (uint64_t)blockcnt;
	if (r->n && r->lblk + r->n == l && r->pblk + r->n == *blocknr && r->n < RUN_MAX / r->fs->e->blocksize) {
		r->n++;
		return 0;
	}
	if ((r->rc = flush_run(r)) < 0)
		return BLOCK_ABORT;
	r->lblk = l, r->pblk = *blocknr, r->n = 1;
	return 0;
}

/* Small or inline files: through libext2fs's own file reader. */
static int read_small(struct reader *r, struct ext2_inode_large *in)
{
	ext2_file_t f;
	errcode_t e = ext2fs_file_open2(r->fs->e, (ext2_ino_t)r->ino, (struct ext2_inode *)in, 0, &f);
	if (e)
		return ext_err(r->fs, e, r->err, "opening", r->ino);
	int rc = 0;
	uint64_t off = 0;
	while (off < r->size) {
		unsigned int got = 0;
		e = ext2fs_file_read(f, r->buf, RUN_MAX, &got);
		if (e) {
			rc = ext_err(r->fs, e, r->err, "reading", r->ino);
			break;
		}
		if (got == 0)
			break;
		if ((rc = r->cb(r->ctx, off, r->buf, got, r->err)) < 0)
			break;
		off += got;
	}
	ext2fs_file_close(f);
	return rc;
}

int dv_fs_read(struct dv_fs *fs, uint64_t ino, dv_fs_data_fn cb, void *ctx, struct dv_err *err)
{
	struct ext2_inode_large in;
	int rc = read_inode(fs, ino, &in, err);
	if (rc < 0)
		return rc;
	struct reader r = {.fs = fs, .ino = ino, .size = EXT2_I_SIZE(&in), .cb = cb, .ctx = ctx, .err = err};
	if (r.size == 0)
		return 0;
	r.buf = dv_malloc(RUN_MAX);
	if (in.i_flags & EXT4_INLINE_DATA_FL) {
		rc = read_small(&r, &in);
	} else if (in.i_flags & EXT4_EXTENTS_FL) {
		ext2_extent_handle_t h;
		errcode_t e = ext2fs_extent_open2(fs->e, (ext2_ino_t)ino, (struct ext2_inode *)&in, &h);
		if (e) {
			rc = ext_err(fs, e, err, "reading the extents", ino);
		} else {
			struct ext2fs_extent x;
			e = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &x);
			while (!e) {
				if ((x.e_flags & EXT2_EXTENT_FLAGS_LEAF) && !(x.e_flags & EXT2_EXTENT_FLAGS_UNINIT) &&
				    x.e_len > 0 && (rc = emit(&r, x.e_lblk, x.e_pblk, x.e_len)) < 0)
					break;
				e = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &x);
			}
			if (rc == 0 && e && e != EXT2_ET_EXTENT_NO_NEXT)
				rc = ext_err(fs, e, err, "reading the extents", ino);
			ext2fs_extent_free(h);
		}
	} else {
		errcode_t e = ext2fs_block_iterate3(fs->e, (ext2_ino_t)ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY,
						   NULL, block_cb, &r);
		rc = r.rc;
		if (rc == 0)
			rc = flush_run(&r);
		if (rc == 0 && e)
			rc = ext_err(fs, e, err, "reading the block map", ino);
	}
	free(r.buf);
	return rc;
}

struct link_buf {
	char *buf;
	size_t cap, len;
};

static int link_cb(void *ctx, uint64_t off, const void *data, size_t len, struct dv_err *err)
{
	struct link_buf *b = ctx;
	if (off + len >= b->cap)
		return dv_error(err, DV_E_CORRUPT, "symlink target longer than %zu bytes", b->cap - 1);
	memset(b->buf + b->len, 0, off > b->len ? off - b->len : 0);
	memcpy(b->buf + off, data, len);
	b->len = off + len;
	return 0;
}

int dv_fs_readlink(struct dv_fs *fs, uint64_t ino, char *buf, size_t cap, struct dv_err *err)
{
	struct ext2_inode_large in;
	int rc = read_inode(fs, ino, &in, err);
	if (rc < 0)
		return rc;
	if (!LINUX_S_ISLNK(in.i_mode))
		return dv_error(err, DV_E_USAGE, "inode %llu is not a symlink", (unsigned long long)ino);
	uint64_t size = EXT2_I_SIZE(&in);
	if (size >= cap)
		return dv_error(err, DV_E_CORRUPT, "%s: inode %llu: symlink target of %llu bytes", fs->v->name,
				(unsigned long long)ino, (unsigned long long)size);
	if (ext2fs_is_fast_symlink((struct ext2_inode *)&in)) {
		memcpy(buf, in.i_block, size);
		buf[size] = 0;
	} else {
		struct link_buf b = {buf, cap, 0};
		if ((rc = dv_fs_read(fs, ino, link_cb, &b, err)) < 0)
			return rc;
		memset(buf + b.len, 0, size > b.len ? size - b.len : 0);
		buf[size] = 0;
	}
	if (strlen(buf) != size)
		return dv_error(err, DV_E_CORRUPT, "%s: inode %llu: symlink target holds a NUL byte", fs->v->name,
				(unsigned long long)ino);
	return 0;
}

/* ---- xattrs --------------------------------------------------------- */

struct xa_walk {
	struct ext2_xattr_handle *h;
	dv_fs_xattr_fn cb;
	void *ctx;
	int rc;
};

static int xa_cb(char *name, char *value, size_t value_len, void *data)
{
	(void)value, (void)value_len;
	struct xa_walk *w = data;
	if (!strcmp(name, "system.data")) /* inline data, not an attribute */
		return 0;
	/* Get it again: ext2fs_xattr_get converts ACLs to the Linux format. */
	void *v = NULL;
	size_t n = 0;
	if (ext2fs_xattr_get(w->h, name, &v, &n))
		return 0;
	w->rc = w->cb(w->ctx, name, v, n);
	ext2fs_free_mem(&v);
	return w->rc ? XATTR_ABORT : 0;
}

int dv_fs_xattrs(struct dv_fs *fs, uint64_t ino, dv_fs_xattr_fn cb, void *ctx, struct dv_err *err)
{
	if (!ext2fs_has_feature_xattr(fs->e->super) && EXT2_INODE_SIZE(fs->e->super) <= EXT2_GOOD_OLD_INODE_SIZE)
		return 0;
	struct ext2_xattr_handle *h = NULL;
	errcode_t r = ext2fs_xattrs_open(fs->e, (ext2_ino_t)ino, &h);
	if (r)
		return ext_err(fs, r, err, "reading the xattrs", ino);
	r = ext2fs_xattrs_read(h);
	int rc = 0;
	if (r) {
		rc = ext_err(fs, r, err, "reading the xattrs", ino);
	} else {
		struct xa_walk w = {h, cb, ctx, 0};
		r = ext2fs_xattrs_iterate(h, xa_cb, &w);
		rc = w.rc;
		if (!rc && r)
			rc = ext_err(fs, r, err, "reading the xattrs", ino);
	}
	ext2fs_xattrs_close(&h);
	return rc;
}
