/*
 * ext_io.c - a libext2fs io_manager over a volume (volume.h), so that
 * libext2fs reads an ext2/3/4 filesystem that lies in several pieces (an
 * LV of several segments, a striped LV) through dv_vol_read.
 *
 * The channel's name is "dvvol:<pointer to a struct dv_vol>" (made by
 * dv_ext_io_name): libext2fs passes the name to open() and nothing else.
 * Read-only: every write fails with EROFS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

#include "probe_internal.h"

struct vol_chan {
	const struct dv_vol *v;
};

/* The error of the last failed read, per thread: libext2fs calls the
 * channel on the caller's thread and passes only an errcode_t back. */
static _Thread_local struct dv_err last_err;
static _Thread_local bool last_failed;

bool dv_ext_io_take_error(struct dv_err *err)
{
	if (!last_failed)
		return false;
	last_failed = false;
	*err = last_err;
	return true;
}

static errcode_t vio_open(const char *name, int flags, io_channel *channel);

static errcode_t vio_close(io_channel ch)
{
	if (--ch->refcount > 0)
		return 0;
	free(ch->private_data);
	free(ch->name);
	free(ch);
	return 0;
}

static errcode_t vio_set_blksize(io_channel ch, int blksize)
{
	if (blksize <= 0)
		return EXT2_ET_INVALID_ARGUMENT;
	ch->block_size = blksize;
	return 0;
}

static errcode_t vio_read64(io_channel ch, unsigned long long block, int count, void *data)
{
	const struct vol_chan *c = ch->private_data;
	uint64_t n = count < 0 ? (uint64_t)(-(int64_t)count) : (uint64_t)count * (uint64_t)ch->block_size;
	uint64_t bs = (uint64_t)ch->block_size;
	if (block > UINT64_MAX / bs)
		return EXT2_ET_LLSEEK_FAILED;
	uint64_t off = block * bs;
	if (off > c->v->size || n > c->v->size - off) {
		/* past the end: what exists, then zeros, as a short read would give */
		memset(data, 0, n);
		if (off >= c->v->size)
			return EXT2_ET_SHORT_READ;
		n = c->v->size - off;
	}
	if (dv_vol_read(c->v, off, data, n, &last_err) < 0) {
		last_failed = true;
		return EIO;
	}
	return 0;
}

static errcode_t vio_read(io_channel ch, unsigned long block, int count, void *data)
{
	return vio_read64(ch, block, count, data);
}

static errcode_t vio_write(io_channel ch, unsigned long block, int count, const void *data)
{
	(void)ch, (void)block, (void)count, (void)data;
	return EROFS;
}

static errcode_t vio_write64(io_channel ch, unsigned long long block, int count, const void *data)
{
	(void)ch, (void)block, (void)count, (void)data;
	return EROFS;
}

static errcode_t vio_write_byte(io_channel ch, unsigned long off, int count, const void *data)
{
	(void)ch, (void)off, (void)count, (void)data;
	return EROFS;
}

static errcode_t vio_flush(io_channel ch)
{
	(void)ch;
	return 0;
}

static errcode_t vio_set_option(io_channel ch, const char *opt, const char *arg)
{
	(void)ch, (void)opt, (void)arg;
	return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager vol_io = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "diskvault volume I/O",
	.open = vio_open,
	.close = vio_close,
	.set_blksize = vio_set_blksize,
	.read_blk = vio_read,
	.write_blk = vio_write,
	.flush = vio_flush,
	.write_byte = vio_write_byte,
	.set_option = vio_set_option,
	.read_blk64 = vio_read64,
	.write_blk64 = vio_write64,
};

io_manager dv_ext_vol_io_manager = &vol_io;

static errcode_t vio_open(const char *name, int flags, io_channel *channel)
{
	void *p = NULL;
	if (!name || sscanf(name, "dvvol:%p", &p) != 1 || !p)
		return EXT2_ET_BAD_DEVICE_NAME;
	if (flags & IO_FLAG_RW)
		return EROFS;
	io_channel ch = dv_calloc(1, sizeof *ch);
	struct vol_chan *c = dv_calloc(1, sizeof *c);
	c->v = p;
	ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	ch->manager = dv_ext_vol_io_manager;
	ch->name = dv_strdup(name);
	ch->block_size = 1024;
	ch->refcount = 1;
	ch->private_data = c;
	*channel = ch;
	return 0;
}

void dv_ext_io_name(const struct dv_vol *v, char *buf, size_t n)
{
	snprintf(buf, n, "dvvol:%p", (const void *)v);
}
