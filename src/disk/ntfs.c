/*
 * ntfs.c - which clusters of an NTFS filesystem are allocated.
 *
 * libntfs-3g (the library partclone and ntfsclone use) reads the volume
 * through a table of device operations; ours read the dv_vol and refuse
 * every write, so the volume is mounted read-only (NTFS_MNT_RDONLY) without
 * a file descriptor, a FUSE mount or the kernel. $Bitmap (the unnamed $DATA
 * attribute of inode 6, vol->lcnbmp_na) has one bit per cluster, set when
 * the cluster is allocated; every run of clear bits is unused. What lies
 * past the last cluster (the backup boot sector in the volume's last
 * sector, any slack up to the partition's end) stays used.
 *
 * The map is trusted only when libntfs-3g mounts the volume and the volume
 * was shut down cleanly: the volume's dirty flag ($Volume's
 * VOLUME_IS_DIRTY) is clear, $LogFile is clean (no transactions to
 * replay), and Windows is not hibernated on it (hiberfil.sys, which also
 * covers "fast startup"). Otherwise the caller reads the volume whole, with
 * the reason.
 *
 * libntfs-3g reports through ntfs_log_*; its handler is set to the null
 * one once, so nothing is printed. The library keeps some process-wide
 * state, so calls are serialised by a mutex.
 */
#include "probe_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <ntfs-3g/types.h>
#include <ntfs-3g/attrib.h>
#include <ntfs-3g/device.h>
#include <ntfs-3g/inode.h>
#include <ntfs-3g/layout.h>
#include <ntfs-3g/logfile.h>
#include <ntfs-3g/logging.h>
#include <ntfs-3g/volume.h>

#define CHUNK (1024 * 1024) /* bytes of $Bitmap read at once */

struct ntdev {
	const struct dv_vol *vol;
	s64 pos;
	bool failed; /* a read of the volume failed (not just past its end) */
};

static struct ntdev *priv(struct ntfs_device *dev)
{
	return dev->d_private;
}

static int op_open(struct ntfs_device *dev, int flags)
{
	if ((flags & O_ACCMODE) != O_RDONLY) {
		errno = EROFS;
		return -1;
	}
	NDevSetOpen(dev);
	NDevSetReadOnly(dev);
	priv(dev)->pos = 0;
	return 0;
}

static int op_close(struct ntfs_device *dev)
{
	NDevClearOpen(dev);
	return 0;
}

static s64 op_seek(struct ntfs_device *dev, s64 offset, int whence)
{
	struct ntdev *d = priv(dev);
	s64 base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? d->pos : whence == SEEK_END ? (s64)d->vol->size : -1;
	if (base < 0 || (offset < 0 && -offset > base) || (offset > 0 && offset > INT64_MAX - base)) {
		errno = EINVAL;
		return -1;
	}
	d->pos = base + offset;
	return d->pos;
}

static s64 op_pread(struct ntfs_device *dev, void *buf, s64 count, s64 offset)
{
	struct ntdev *d = priv(dev);
	if (count < 0 || offset < 0) {
		errno = EINVAL;
		return -1;
	}
	uint64_t size = d->vol->size;
	if ((uint64_t)offset >= size || !count)
		return 0;
	uint64_t n = (uint64_t)count;
	if (n > size - (uint64_t)offset)
		n = size - (uint64_t)offset;
	struct dv_err e;
	if (dv_vol_read(d->vol, (uint64_t)offset, buf, (size_t)n, &e) < 0) {
		d->failed = true;
		errno = EIO;
		return -1;
	}
	return (s64)n;
}

static s64 op_read(struct ntfs_device *dev, void *buf, s64 count)
{
	s64 n = op_pread(dev, buf, count, priv(dev)->pos);
	if (n > 0)
		priv(dev)->pos += n;
	return n;
}

static s64 op_write(struct ntfs_device *dev, const void *buf, s64 count)
{
	(void)dev, (void)buf, (void)count;
	errno = EROFS;
	return -1;
}

static s64 op_pwrite(struct ntfs_device *dev, const void *buf, s64 count, s64 offset)
{
	(void)dev, (void)buf, (void)count, (void)offset;
	errno = EROFS;
	return -1;
}

static int op_sync(struct ntfs_device *dev)
{
	(void)dev;
	return 0;
}

static int op_stat(struct ntfs_device *dev, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_mode = S_IFREG | 0400;
	st->st_size = (off_t)priv(dev)->vol->size;
	return 0;
}

static int op_ioctl(struct ntfs_device *dev, unsigned long request, void *argp)
{
	if (request == BLKGETSIZE64) {
		*(uint64_t *)argp = priv(dev)->vol->size;
		return 0;
	}
	if (request == BLKSSZGET || request == BLKBSZGET) {
		*(int *)argp = 512;
		return 0;
	}
	errno = ENOTTY;
	return -1;
}

static struct ntfs_device_operations dv_ntfs_ops = {
	.open = op_open,
	.close = op_close,
	.seek = op_seek,
	.read = op_read,
	.write = op_write,
	.pread = op_pread,
	.pwrite = op_pwrite,
	.sync = op_sync,
	.stat = op_stat,
	.ioctl = op_ioctl,
};

static pthread_mutex_t ntfs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ntfs_once = PTHREAD_ONCE_INIT;

static void ntfs_quiet(void)
{
	ntfs_log_set_handler(ntfs_log_handler_null);
	ntfs_log_clear_levels(UINT32_MAX);
}

/* NULL when $LogFile holds nothing to replay, else a reason. */
static const char *logfile_state(ntfs_volume *nv)
{
	ntfs_inode *ni = ntfs_inode_open(nv, FILE_LogFile);
	if (!ni)
		return "its $LogFile cannot be opened";
	const char *bad = NULL;
	ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
	if (!na) {
		bad = "its $LogFile cannot be opened";
	} else {
		RESTART_PAGE_HEADER *rp = NULL;
		if (!ntfs_check_logfile(na, &rp))
			bad = "its $LogFile is damaged";
		else if (!ntfs_is_logfile_clean(na, rp))
			bad = "its $LogFile holds transactions to replay (it was not shut down cleanly; boot Windows and "
			      "shut it down, or run ntfsfix on a copy)";
		free(rp);
		ntfs_attr_close(na);
	}
	ntfs_inode_close(ni);
	return bad;
}

#define NTFS_BOOT_BYTES 8192u

/* Appends the free runs of $Bitmap; NULL or a reason. *used counts set bits. */
static const char *read_bitmap(ntfs_volume *nv, struct dv_ivl_list *out, uint64_t *used)
{
	const uint64_t nclusters = (uint64_t)nv->nr_clusters, csize = nv->cluster_size;
	uint64_t need = (nclusters + 7) / 8;
	if (!nv->lcnbmp_na || nv->lcnbmp_na->data_size < 0 || (uint64_t)nv->lcnbmp_na->data_size < need)
		return "its $Bitmap is smaller than its clusters";
	uint8_t *buf = malloc(CHUNK);
	if (!buf)
		return "there is not enough memory to read its $Bitmap";
	/* $Boot (the boot sector and its loader code) fills the first 8 KiB, or
	 * the first cluster where clusters are larger. A $Bitmap that says those
	 * clusters are free is wrong, and trusting it would lose the boot sector
	 * (the fuzzer found one): they always count as used. */
	const uint64_t boot_clusters = (NTFS_BOOT_BYTES + csize - 1) / csize;
	uint64_t run_start = 0, free_total = 0;
	bool in_run = false;
	for (uint64_t pos = 0; pos < need; pos += CHUNK) {
		uint64_t n = need - pos < CHUNK ? need - pos : CHUNK;
		if (ntfs_attr_pread(nv->lcnbmp_na, (s64)pos, (s64)n, buf) != (s64)n) {
			free(buf);
			return "its $Bitmap cannot be read";
		}
		for (uint64_t i = 0; i < n; i++) {
			uint64_t c0 = (pos + i) * 8;
			uint8_t byte = buf[i];
			if (!in_run && byte == 0xff)
				continue;
			for (unsigned b = 0; b < 8 && c0 + b < nclusters; b++) {
				bool set = (byte >> b & 1) || c0 + b < boot_clusters;
				if (!set && !in_run) {
					run_start = c0 + b;
					in_run = true;
				} else if (set && in_run) {
					dv_ivl_add(out, run_start * csize, (c0 + b - run_start) * csize);
					free_total += c0 + b - run_start;
					in_run = false;
				}
			}
		}
	}
	free(buf);
	if (in_run) {
		dv_ivl_add(out, run_start * csize, (nclusters - run_start) * csize);
		free_total += nclusters - run_start;
	}
	*used = (nclusters - free_total) * csize;
	return NULL;
}

int dv_usedmap_ntfs(const struct dv_vol *v, struct dv_ext_info *info, struct dv_ivl_list *unused, char **why)
{
	memset(info, 0, sizeof *info);
	*why = NULL;
	pthread_once(&ntfs_once, ntfs_quiet);
	struct ntdev d = {.vol = v};
	const char *bad = NULL;
	struct dv_ivl_list runs = {0};
	uint64_t used = 0;

	pthread_mutex_lock(&ntfs_lock);
	struct ntfs_device *dev = ntfs_device_alloc(v->name, 0, &dv_ntfs_ops, &d);
	if (!dev) {
		pthread_mutex_unlock(&ntfs_lock);
		*why = dv_strdup("there is not enough memory to open it with libntfs-3g");
		return -1;
	}
	errno = 0;
	ntfs_volume *nv = ntfs_device_mount(dev, NTFS_MNT_RDONLY | NTFS_MNT_IGNORE_HIBERFILE);
	if (!nv) {
		int e = errno;
		if (NDevOpen(dev))
			dev->d_ops->close(dev);
		ntfs_device_free(dev);
		pthread_mutex_unlock(&ntfs_lock);
		if (d.failed)
			*why = dv_strdup("it cannot be read");
		else
			*why = dv_asprintf("libntfs-3g cannot mount it (%s)", e ? strerror(e) : "no reason given");
		return -1;
	}
	info->opened = true;
	uint64_t fs_bytes = (uint64_t)nv->nr_clusters * nv->cluster_size;
	info->fs_bytes = fs_bytes;
	if (nv->nr_clusters <= 0 || fs_bytes / nv->cluster_size != (uint64_t)nv->nr_clusters || fs_bytes > v->size)
		bad = "the filesystem is larger than its partition";
	else if (nv->flags & VOLUME_IS_DIRTY)
		bad = "it is marked dirty (not shut down cleanly, or chkdsk is due); boot Windows and shut it down, or "
		      "run chkdsk";
	if (!bad)
		bad = logfile_state(nv);
	if (!bad) {
		errno = 0;
		if (ntfs_volume_check_hiberfile(nv, 0) < 0)
			bad = errno == EPERM ? "Windows is hibernated on it (or was shut down with fast startup); boot "
					       "Windows and shut it down fully (shutdown /s /t 0)"
					     : "its hiberfil.sys cannot be checked";
	}
	if (!bad)
		bad = read_bitmap(nv, &runs, &used);
	if (!bad && d.failed)
		bad = "it cannot be read";
	ntfs_umount(nv, FALSE);
	pthread_mutex_unlock(&ntfs_lock);
	if (bad) {
		dv_ivl_release(&runs);
		*why = dv_strdup(bad);
		return -1;
	}
	info->has_used = true;
	info->used_bytes = used;
	for (size_t i = 0; i < runs.n; i++)
		dv_ivl_add(unused, runs.v[i].off, runs.v[i].len);
	dv_ivl_release(&runs);
	return 0;
}
