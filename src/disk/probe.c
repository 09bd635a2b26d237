/*
 * probe.c - dv_disk_probe(): libblkid probing of a source disk, boot mode,
 * the mounted-filesystem check, and the assembly of the layout JSON and the
 * region map. The per-filesystem used-block logic lives in usedmap.c.
 *
 * libblkid reports partition starts and sizes in 512-byte units whatever
 * the logical sector size; everything here is converted to bytes at once.
 */
#include "probe_internal.h"

#include "disk/lvm.h"

#include <blkid/blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define GUID_ESP "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
#define GUID_BIOS_BOOT "21686148-6449-6e6f-744e-656564454649"
#define MBR_ESP 0xef
#define MBR_BOOTABLE 0x80
/* Kept READ at both ends of a disk with a partition table: the tables
 * (GPT primary and backup, MBR) and the usual boot-loader gap. */
#define TABLE_AREA (1024 * 1024)

struct part {
	json_t *j;        /* this partition's object in layout["partitions"] */
	int number;
	uint64_t start;   /* bytes, as in the table */
	uint64_t size;    /* bytes, as in the table */
	uint64_t len;     /* bytes that exist on the disk (clipped) */
	bool data;        /* takes part in the region map (not a container or nested) */
	bool whole;       /* must be read whole (past the end, overlapping, ...) */
};

/* ---- mounts --------------------------------------------------------------- */

struct mount_hit {
	uint64_t off;    /* byte offset on the source where the mounted device starts */
	bool rw;         /* superblock mounted read-write */
	char *where;     /* mount point; NULL for a holder that is not mounted */
	char via[64];    /* "" or the stacked device (dm-0) that is mounted */
};

struct mounts {
	struct mount_hit *v;
	size_t n;
};

static void mounts_release(struct mounts *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].where);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

/* Reads a small sysfs file into buf (trailing newline stripped). */
static bool read_sys(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool ok = fgets(buf, (int)n, f) != NULL;
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = 0;
	return ok;
}

/*
 * Where device `dev` starts on a device `base` (both device numbers):
 * 0 when equal, the partition start when dev is a partition of base.
 * Returns false when dev is unrelated to base.
 */
static bool dev_offset_on(dev_t dev, dev_t base, uint64_t *off)
{
	if (dev == base) {
		*off = 0;
		return true;
	}
	char p[PATH_MAX], buf[64];
	snprintf(p, sizeof p, "/sys/dev/block/%u:%u/partition", major(dev), minor(dev));
	if (!read_sys(p, buf, sizeof buf))
		return false;
	snprintf(p, sizeof p, "/sys/dev/block/%u:%u/../dev", major(dev), minor(dev));
	unsigned ma, mi;
	if (!read_sys(p, buf, sizeof buf) || sscanf(buf, "%u:%u", &ma, &mi) != 2 || makedev(ma, mi) != base)
		return false;
	snprintf(p, sizeof p, "/sys/dev/block/%u:%u/start", major(dev), minor(dev));
	unsigned long long start;
	if (!read_sys(p, buf, sizeof buf) || sscanf(buf, "%llu", &start) != 1)
		return false;
	*off = start * 512;
	return true;
}

/* true when the superblock options (comma list) contain "rw". */
static bool opts_rw(const char *opts)
{
	size_t len = strlen(opts);
	for (const char *p = opts; p < opts + len;) {
		size_t k = strcspn(p, ",");
		if (k == 2 && memcmp(p, "rw", 2) == 0)
			return true;
		p += k + 1;
	}
	return false;
}

/* Calls fn(device, mount point, read-write?, ctx) for every entry of a
 * mountinfo file (the superblock's options decide read-write). */
typedef void (*mount_fn)(dev_t dev, const char *where, bool rw, void *ctx);
static void each_mount(const char *mountinfo, mount_fn fn, void *ctx)
{
	FILE *f = fopen(mountinfo, "re");
	char *line = NULL;
	size_t cap = 0;
	while (f && getline(&line, &cap, f) > 0) {
		unsigned ma, mi;
		char where[4096];
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &ma, &mi, where) != 3)
			continue;
		const char *sep = strstr(line, " - ");
		char super_opts[1024] = "";
		if (!sep || sscanf(sep + 3, "%*s %*s %1023s", super_opts) != 1)
			continue;
		fn(makedev(ma, mi), where, opts_rw(super_opts), ctx);
	}
	free(line);
	if (f)
		fclose(f);
}

size_t dv_disk_holders(const char *sysroot, const char *name, struct dv_holder *out, size_t n, size_t max,
		       unsigned depth)
{
	if (depth >= DV_HOLDER_DEPTH || n >= max)
		return n;
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/sys/class/block/%s/holders", sysroot, name);
	DIR *d = opendir(p);
	if (!d)
		return n;
	struct dirent *de;
	while ((de = readdir(d)) && n < max) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof out[0].name)
			continue;
		bool seen = false;
		for (size_t i = 0; i < n; i++)
			seen |= !strcmp(out[i].name, de->d_name);
		if (seen) /* a loop in a (fake or broken) sysfs */
			continue;
		char buf[64];
		unsigned ma, mi;
		snprintf(p, sizeof p, "%s/sys/class/block/%s/dev", sysroot, de->d_name);
		if (!read_sys(p, buf, sizeof buf) || sscanf(buf, "%u:%u", &ma, &mi) != 2)
			continue;
		size_t nl = strlen(de->d_name);
		if (nl >= sizeof out[n].name) /* no kernel names a device so long */
			continue;
		out[n].dev = makedev(ma, mi);
		memcpy(out[n].name, de->d_name, nl + 1);
		n++;
		n = dv_disk_holders(sysroot, out[n - 1].name, out, n, max, depth + 1);
	}
	closedir(d);
	return n;
}

struct stacked_ctx {
	const struct dv_holder *h;
	struct dv_stacked *out;
	size_t n;
};

static void stacked_hit(dev_t dev, const char *where, bool rw, void *ctx)
{
	struct stacked_ctx *c = ctx;
	for (size_t i = 0; i < c->n; i++) {
		struct dv_stacked *o = &c->out[i];
		if (c->h[i].dev != dev)
			continue;
		/* a read-write mount wins over read-only ones (bind mounts) */
		if (o->mounted && (o->rw || !rw))
			continue;
		o->mounted = true;
		o->rw = rw;
		snprintf(o->where, sizeof o->where, "%s", where);
	}
}

/* The sysfs name (sda, loop3) of block device dev, or false. */
static bool dev_name(dev_t dev, char *name, size_t n)
{
	char p[PATH_MAX], target[PATH_MAX];
	snprintf(p, sizeof p, "/sys/dev/block/%u:%u", major(dev), minor(dev));
	ssize_t l = readlink(p, target, sizeof target - 1);
	if (l <= 0)
		return false;
	target[l] = 0;
	const char *base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (!*base || strlen(base) >= n)
		return false;
	snprintf(name, n, "%s", base);
	return true;
}

size_t dv_disk_stacked_mounts(const char *sysroot, const char *mountinfo, const char *name,
			      struct dv_stacked *out, size_t max)
{
	struct dv_holder h[64];
	uint64_t off[64];
	size_t n = dv_disk_holders(sysroot, name, h, 0, DV_ARRAY_SIZE(h), 0);
	for (size_t i = 0; i < n; i++)
		off[i] = 0;
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/sys/class/block/%s", sysroot, name);
	DIR *d = opendir(p);
	struct dirent *de;
	while (d && (de = readdir(d)) && n < DV_ARRAY_SIZE(h)) {
		char buf[64];
		unsigned long long start;
		if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof h[0].name)
			continue;
		snprintf(p, sizeof p, "%s/sys/class/block/%s/%s/start", sysroot, name, de->d_name);
		if (!read_sys(p, buf, sizeof buf) || sscanf(buf, "%llu", &start) != 1 || start > UINT64_MAX / 512)
			continue;
		size_t n0 = n;
		n = dv_disk_holders(sysroot, de->d_name, h, n, DV_ARRAY_SIZE(h), 0);
		for (size_t i = n0; i < n; i++)
			off[i] = start * 512;
	}
	if (d)
		closedir(d);
	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof out[i]);
		out[i].off = off[i];
		snprintf(out[i].via, sizeof out[i].via, "%s", h[i].name);
	}
	struct stacked_ctx c = {h, out, n};
	if (n)
		each_mount(mountinfo, stacked_hit, &c);
	return n;
}

/* The loop devices whose backing file is `path`: their device numbers and
 * offsets into the file. */
/* The loop devices backed by the file at path, found by the backing file's
 * device and inode (LOOP_GET_STATUS64), not its name: the image may be
 * reached by another path (a bind mount, a symlinked directory). Without
 * the right to open /dev/loopN, sysfs's backing_file is stat'ed and
 * compared the same way. */
static size_t loops_of(const char *path, dev_t *devs, uint64_t *offs, size_t max)
{
	struct stat img;
	if (stat(path, &img) < 0 || !S_ISREG(img.st_mode))
		return 0;
	DIR *d = opendir("/sys/block");
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *e;
	while (n < max && (e = readdir(d))) {
		unsigned num;
		char tail;
		if (sscanf(e->d_name, "loop%u%c", &num, &tail) != 1)
			continue;
		char p[PATH_MAX], buf[PATH_MAX];
		unsigned ma, mi;
		snprintf(p, sizeof p, "/sys/block/loop%u/dev", num);
		if (!read_sys(p, buf, sizeof buf) || sscanf(buf, "%u:%u", &ma, &mi) != 2)
			continue;
		struct loop_info64 li;
		bool match = false, known = false;
		unsigned long long off = 0;
		snprintf(p, sizeof p, "/dev/loop%u", num);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		struct stat dst;
		if (fd >= 0 && fstat(fd, &dst) == 0 && S_ISBLK(dst.st_mode) && dst.st_rdev == makedev(ma, mi) &&
		    ioctl(fd, LOOP_GET_STATUS64, &li) == 0) {
			known = true;
			match = li.lo_device == (uint64_t)img.st_dev && li.lo_inode == (uint64_t)img.st_ino;
			off = li.lo_offset;
		}
		if (fd >= 0)
			close(fd);
		if (!known) {
			struct stat b;
			snprintf(p, sizeof p, "/sys/block/loop%u/loop/backing_file", num);
			match = read_sys(p, buf, sizeof buf) && stat(buf, &b) == 0 && b.st_dev == img.st_dev &&
				b.st_ino == img.st_ino;
			snprintf(p, sizeof p, "/sys/block/loop%u/loop/offset", num);
			if (match && read_sys(p, buf, sizeof buf))
				sscanf(buf, "%llu", &off);
		}
		if (!match)
			continue;
		devs[n] = makedev(ma, mi);
		offs[n] = off;
		n++;
	}
	closedir(d);
	return n;
}

struct direct_ctx {
	const dev_t *bases;
	const uint64_t *base_off;
	size_t nb;
	struct mounts *out;
};

static void direct_hit(dev_t dev, const char *where, bool rw, void *ctx)
{
	struct direct_ctx *c = ctx;
	struct mounts *out = c->out;
	for (size_t b = 0; b < c->nb; b++) {
		uint64_t off;
		if (!dev_offset_on(dev, c->bases[b], &off))
			continue;
		out->v = dv_realloc(out->v, (out->n + 1) * sizeof *out->v);
		out->v[out->n++] = (struct mount_hit){c->base_off[b] + off, rw, dv_strdup(where), ""};
	}
}

/*
 * Collects the mounts of filesystems that live on src: directly on the block
 * device or one of its partitions, or on a loop device backed by the image
 * file (and its partitions). /proc/self/mountinfo carries the device number
 * of each mount and the superblock's rw/ro state, which is what decides
 * whether the filesystem can change under us.
 */
static void find_mounts(const struct dv_source *src, struct mounts *out)
{
	dev_t bases[16];
	uint64_t base_off[16];
	size_t nb = 0;
	struct stat sb;
	if (fstat(src->fd, &sb) < 0)
		return;
	if (src->is_block) {
		bases[0] = sb.st_rdev;
		base_off[0] = 0;
		nb = 1;
	} else {
		nb = loops_of(src->path, bases, base_off, DV_ARRAY_SIZE(bases));
	}
	if (!nb)
		return;

	struct direct_ctx c = {bases, base_off, nb, out};
	each_mount("/proc/self/mountinfo", direct_hit, &c);

	/* device-mapper devices (LVM, dm-crypt, ...) stacked on the disk or
	 * its partitions, mounted or merely in use */
	struct dv_stacked *sk = dv_calloc(64, sizeof *sk);
	for (size_t b = 0; b < nb; b++) {
		char name[64];
		if (!dev_name(bases[b], name, sizeof name))
			continue;
		size_t n = dv_disk_stacked_mounts("", "/proc/self/mountinfo", name, sk, 64);
		for (size_t i = 0; i < n; i++) {
			out->v = dv_realloc(out->v, (out->n + 1) * sizeof *out->v);
			struct mount_hit *m = &out->v[out->n++];
			*m = (struct mount_hit){base_off[b] + sk[i].off, sk[i].rw, sk[i].mounted ? dv_strdup(sk[i].where) : NULL,
						""};
			snprintf(m->via, sizeof m->via, "%s", sk[i].via);
		}
	}
	free(sk);
}

/* ---- small helpers -------------------------------------------------------- */

static void warn(json_t *warnings, const char *fmt, ...) DV_PRINTF(2, 3);
static void warn(json_t *warnings, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		DV_BUG("out of memory");
	va_end(ap);
	json_array_append_new(warnings, json_string(s));
	free(s);
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

uint64_t dv_region_map_bytes(const struct dv_region_map *m, enum dv_region_kind kind)
{
	uint64_t n = 0;
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].kind == kind)
			n += m->v[i].len;
	return n;
}

/* Probes [off, off+len) of src for a filesystem (or other superblock:
 * swap, LVM PV, RAID member). Returns a new {"type","uuid","label"} object,
 * or NULL when nothing was recognised. *magic_end is set to the end of the
 * signature (for swap), 0 when unknown. */
static json_t *probe_fs(const struct dv_source *src, uint64_t off, uint64_t len, uint64_t *magic_end,
			bool *ambiguous)
{
	*magic_end = 0;
	*ambiguous = false;
	blkid_probe pr = blkid_new_probe();
	if (!pr)
		return NULL;
	json_t *fs = NULL;
	if (blkid_probe_set_device(pr, src->fd, (blkid_loff_t)off, (blkid_loff_t)len) != 0)
		goto out;
	blkid_probe_set_sectorsize(pr, src->sector_size);
	blkid_probe_enable_partitions(pr, 0);
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL |
						      BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_VERSION);
	int r = blkid_do_safeprobe(pr);
	if (r == -2)
		*ambiguous = true;
	if (r != 0)
		goto out;
	const char *type = NULL, *uuid = NULL, *label = NULL, *moff = NULL, *magic = NULL;
	size_t mlen = 0;
	blkid_probe_lookup_value(pr, "TYPE", &type, NULL);
	if (!type)
		goto out;
	blkid_probe_lookup_value(pr, "UUID", &uuid, NULL);
	blkid_probe_lookup_value(pr, "LABEL", &label, NULL);
	if (blkid_probe_lookup_value(pr, "SBMAGIC_OFFSET", &moff, NULL) == 0 &&
	    blkid_probe_lookup_value(pr, "SBMAGIC", &magic, &mlen) == 0 && moff) {
		unsigned long long mo = strtoull(moff, NULL, 10);
		*magic_end = mo + mlen; /* SBMAGIC is the raw magic, no NUL */
	}
	fs = json_object();
	json_object_set_new(fs, "type", json_string(type));
	json_object_set_new(fs, "uuid", str_or_null(uuid));
	json_object_set_new(fs, "label", str_or_null(label));
out:
	blkid_free_probe(pr);
	return fs;
}

static bool is_ext(const char *type)
{
	return type && (!strcmp(type, "ext2") || !strcmp(type, "ext3") || !strcmp(type, "ext4") ||
			!strcmp(type, "ext4dev"));
}

/* The used-block parsers that read a filesystem through a volume
 * (probe_internal.h), by libblkid TYPE. One line per filesystem. */
static const struct {
	const char *type;
	dv_usedmap_fn fn;
} fs_maps[] = {
	{"vfat", dv_usedmap_fat},
	{"xfs", dv_usedmap_xfs},
	{"ntfs", dv_usedmap_ntfs},
	{"btrfs", dv_usedmap_btrfs},
};

static dv_usedmap_fn fs_map(const char *type)
{
	for (size_t i = 0; type && i < sizeof fs_maps / sizeof fs_maps[0]; i++)
		if (!strcmp(type, fs_maps[i].type))
			return fs_maps[i].fn;
	return NULL;
}

/* The filesystem's unused runs become the partition's unused extents. */
static void take_unused(const struct dv_ivl_list *runs, struct dv_ivl_list *unused, const char **imaged)
{
	for (size_t i = 0; i < runs->n; i++)
		dv_ivl_add(unused, runs->v[i].off, runs->v[i].len);
	*imaged = "used-blocks";
}

/* PVs found on the disk, assembled into VGs once every partition is seen
 * (lvm_finish). */
struct found_pv {
	uint64_t start, len;     /* bytes on the disk */
	json_t *j;               /* the object that gets its "lvm" member (borrowed) */
	char what[48];
	struct dv_lvm_pv_label lab;
	struct dv_lvm_vg *vg;    /* parsed from lab.text */
	bool done;
};
struct stack {
	struct found_pv *pv;
	size_t n;
	json_t *vgs;             /* layout["volume_groups"] */
};

static json_t *probe_fs(const struct dv_source *src, uint64_t off, uint64_t len, uint64_t *magic_end,
			bool *ambiguous);

/* Probes the filesystem at the start of volume v: in place when it is one
 * piece; otherwise through a sparse memfd holding its first and last MiB,
 * which is where libblkid looks. */
static json_t *probe_vol_fs(const struct dv_source *src, const struct dv_vol *v, uint64_t *magic_end, bool *ambiguous)
{
	*magic_end = 0;
	*ambiguous = false;
	if (v->nsegs == 1 && v->segs[0].nareas == 1)
		return probe_fs(src, v->segs[0].areas[0].off, v->size, magic_end, ambiguous);
	int fd = memfd_create("dv-volume", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	json_t *fs = NULL;
	uint64_t head = DV_MIN(v->size, (uint64_t)1 << 20);
	uint64_t toff = v->size > head ? DV_MAX(head, v->size - ((uint64_t)1 << 20)) : v->size;
	uint8_t *b = dv_malloc(1 << 20);
	struct dv_err e;
	bool ok = ftruncate(fd, (off_t)v->size) == 0 && dv_vol_read(v, 0, b, head, &e) == 0 &&
		  pwrite(fd, b, head, 0) == (ssize_t)head;
	if (ok && toff < v->size)
		ok = dv_vol_read(v, toff, b, v->size - toff, &e) == 0 &&
		     pwrite(fd, b, v->size - toff, (off_t)toff) == (ssize_t)(v->size - toff);
	free(b);
	if (ok) {
		struct dv_source m = *src;
		m.fd = fd;
		m.size = v->size;
		fs = probe_fs(&m, 0, v->size, magic_end, ambiguous);
	}
	close(fd);
	return fs;
}

/* The fs part of analyse(), on a volume (a partition, an LV, an md data
 * area). */
static int analyse_fs(const struct dv_source *src, const char *what, json_t *fs, const struct dv_vol *vol,
		      uint64_t magic_end, bool whole, bool all_blocks, bool allow_mounted, bool inconsistent,
		      json_t *warnings, struct dv_ivl_list *unused, const char **imaged, struct dv_err *err)
{
	const char *type = json_string_value(json_object_get(fs, "type"));
	bool one_piece = vol->nsegs == 1 && vol->segs[0].nareas == 1 && vol->segs[0].areas[0].src == src;
	uint64_t start = one_piece ? vol->segs[0].areas[0].off : 0, len = vol->size;
	if (is_ext(type)) {
		/* one piece: through the path, as osinfo.c reads it; several
		 * pieces: through the volume (ext_io.c), in volume offsets */
		struct dv_ext_info info;
		struct dv_ivl_list runs = {0}, vruns = {0};
		char *why = NULL;
		int r;
		if (one_piece) {
			r = dv_usedmap_ext(src->path, start, len, &info, &runs, &why);
		} else {
			r = dv_usedmap_ext_vol(vol, &info, &vruns, &why);
			dv_vol_to_disk(vol, src, &vruns, &runs);
			dv_ivl_release(&vruns);
		}
		if (info.has_used)
			json_object_set_new(fs, "used_bytes", json_integer((json_int_t)info.used_bytes));
		if (info.needs_recovery) {
			if (!allow_mounted) {
				free(why);
				dv_ivl_release(&runs);
				return dv_error(err, DV_E_BUSY,
						"source %s: %s (%s) has a journal that needs recovery (it is mounted, or "
						"was not cleanly unmounted), so its bitmaps are not to be trusted; "
						"unmount it cleanly, or mount and unmount (or e2fsck) a copy of it, or "
						"back up an LVM/dm snapshot (or pass --allow-mounted to image it anyway)",
						src->path, what, type);
			}
			if (!inconsistent)
				warn(warnings, "%s (%s) has a journal that needs recovery: it was read whole, and its "
					       "image holds the unreplayed journal",
				     what, type);
			inconsistent = true;
		}
		if (r < 0 && !inconsistent && !whole)
			warn(warnings, "%s (%s): %s; it was read whole", what, type, why);
		if (one_piece)
			dv_osinfo_ext(src->path, start, len, fs);
		if (r == 0 && !whole && !inconsistent && !all_blocks)
			take_unused(&runs, unused, imaged);
		free(why);
		dv_ivl_release(&runs);
		return 0;
	}
	dv_usedmap_fn map = fs_map(type);
	if (map) {
		struct dv_ext_info info;
		struct dv_ivl_list runs = {0};
		char *why = NULL;
		int r = map(vol, &info, &runs, &why);
		if (info.has_used)
			json_object_set_new(fs, "used_bytes", json_integer((json_int_t)info.used_bytes));
		if (info.needs_recovery) {
			/* as ext's journal above: a log to replay (XFS) */
			if (!allow_mounted) {
				int rc = dv_error(err, DV_E_BUSY,
						  "source %s: %s (%s): %s, so its free-space map is not to be trusted; "
						  "unmount it cleanly, or mount and unmount a copy of it, or back up an "
						  "LVM/dm snapshot (or pass --allow-mounted to image it anyway)",
						  src->path, what, type, why);
				free(why);
				dv_ivl_release(&runs);
				return rc;
			}
			if (!inconsistent)
				warn(warnings, "%s (%s): %s; it was read whole, and its image holds the unreplayed log",
				     what, type, why);
			inconsistent = true;
		}
		if (r < 0 && !inconsistent && !whole)
			warn(warnings, "%s (%s): %s; it was read whole", what, type, why);
		if (r == 0 && !whole && !inconsistent && !all_blocks) {
			struct dv_ivl_list on_disk = {0};
			dv_vol_to_disk(vol, src, &runs, &on_disk);
			take_unused(&on_disk, unused, imaged);
			dv_ivl_release(&on_disk);
		}
		free(why);
		dv_ivl_release(&runs);
		return 0;
	}
	if (type && !strcmp(type, "swap") && !whole && !inconsistent && !all_blocks) {
		/* The swap signature ends its first page; everything after is
		 * pages that mean nothing once the machine is off. */
		if (magic_end >= 4096 && magic_end <= len && magic_end <= 1024 * 1024) {
			struct dv_ivl_list runs = {0}, on_disk = {0};
			dv_ivl_add(&runs, magic_end, len - magic_end);
			dv_vol_to_disk(vol, src, &runs, &on_disk);
			take_unused(&on_disk, unused, imaged);
			*imaged = "header-only";
			dv_ivl_release(&runs);
			dv_ivl_release(&on_disk);
		} else {
			warn(warnings, "%s (swap): its signature is at an unexpected place; it was read whole", what);
		}
	}
	return 0;
}

static void stack_add_pv(const struct dv_source *src, struct stack *st, const char *what, json_t *j, uint64_t start,
			 uint64_t len, json_t *warnings)
{
	struct dv_vol vol;
	dv_vol_range(&vol, src, start, len, "%s", what);
	struct dv_lvm_pv_label lab;
	char *why = NULL, *note = NULL;
	int r = dv_lvm_pv_read(&vol, &lab, &why, &note);
	dv_vol_release(&vol);
	if (note)
		warn(warnings, "%s (LVM2_member): %s (another metadata copy was used)", what, note);
	free(note);
	if (r < 0) {
		warn(warnings, "%s (LVM2_member): %s; it was read whole", what, why);
		free(why);
		return;
	}
	if (!lab.text) {
		warn(warnings, "%s (LVM2_member) holds no metadata copy of its own (pvcreate --metadatacopies 0), "
			       "so its VG is not known from it; it was read whole",
		     what);
		dv_lvm_pv_label_release(&lab);
		return;
	}
	struct dv_lvm_vg *vg = dv_lvm_parse(lab.text, lab.text_len, &why);
	if (!vg) {
		warn(warnings, "%s (LVM2_member): %s; it was read whole", what, why);
		free(why);
		dv_lvm_pv_label_release(&lab);
		return;
	}
	st->pv = dv_realloc(st->pv, (st->n + 1) * sizeof *st->pv);
	struct found_pv *f = &st->pv[st->n++];
	memset(f, 0, sizeof *f);
	f->start = start;
	f->len = len;
	f->j = j;
	snprintf(f->what, sizeof f->what, "%s", what);
	f->lab = lab;
	f->vg = vg;
}

/*
 * Decides how one partition (or a whole-disk filesystem) is imaged, adds
 * its free ranges to unused, and records fs details and warnings. what
 * names it in messages ("partition 2", "the disk"). An LVM PV is only
 * noted in st (lvm_finish maps it); an md RAID1 member's data area is
 * probed in turn. j is the object that gets "lvm" / "md" members.
 * Returns 0 or -DV_E_BUSY.
 */
static int analyse(const struct dv_source *src, const char *what, json_t *fs, uint64_t start, uint64_t len,
		   uint64_t magic_end, bool whole, bool all_blocks, bool allow_mounted, const struct mounts *mounts,
		   json_t *warnings, struct dv_ivl_list *unused, const char **imaged, struct stack *st, json_t *j,
		   struct dv_err *err)
{
	*imaged = "whole";
	if (!fs)
		return 0;
	const char *type = json_string_value(json_object_get(fs, "type"));
	bool inconsistent = false;

	bool stacked_warned = false;
	for (size_t i = 0; i < mounts->n; i++) {
		const struct mount_hit *h = &mounts->v[i];
		if (h->off != start)
			continue;
		if (!h->where) {
			/* in use through device-mapper, not mounted */
			if (!stacked_warned)
				warn(warnings, "%s (%s) is in use by %s (device-mapper), which is not mounted: if something "
					       "writes to it while it is imaged, its image may be inconsistent",
				     what, type, h->via);
			stacked_warned = true;
			continue;
		}
		if (!h->rw)
			continue;
		char through[96] = "";
		if (h->via[0])
			snprintf(through, sizeof through, ", through %s (device-mapper),", h->via);
		if (!allow_mounted)
			return dv_error(err, DV_E_BUSY,
					"source %s: %s (%s) is mounted read-write%s on %s, so its blocks may change while "
					"they are read; unmount it, remount it read-only (mount -o remount,ro %s), or "
					"back up an LVM/dm snapshot of it (or pass --allow-mounted to image it anyway, "
					"possibly inconsistent)",
					src->path, what, type, through, h->where, h->where);
		warn(warnings, "%s (%s) was mounted read-write%s on %s while it was imaged: its image may be "
			       "inconsistent; it was read whole",
		     what, type, through, h->where);
		inconsistent = true;
	}

	if (type && !strcmp(type, "LVM2_member")) {
		if (!whole && !inconsistent)
			stack_add_pv(src, st, what, j, start, len, warnings);
		return 0;
	}
	if (type && !strcmp(type, "linux_raid_member")) {
		if (whole || inconsistent)
			return 0;
		struct dv_vol mv;
		dv_vol_range(&mv, src, start, len, "%s", what);
		struct dv_md_info md;
		char *why = NULL;
		int r = dv_md_read(&mv, &md, &why);
		dv_vol_release(&mv);
		if (r != 0) {
			warn(warnings, "%s (linux_raid_member): %s; it was read whole", what,
			     r > 0 ? "no md superblock passing its checks was found" : why);
			free(why);
			return 0;
		}
		json_t *mj = json_object();
		json_object_set_new(mj, "level", json_integer(md.level));
		json_object_set_new(mj, "metadata", json_string(md.metadata));
		json_object_set_new(mj, "uuid", json_string(md.uuid));
		json_object_set_new(mj, "name", str_or_null(md.name));
		json_object_set_new(mj, "data_offset", json_integer((json_int_t)md.data_off));
		json_object_set_new(mj, "size", json_integer((json_int_t)md.size));
		json_object_set_new(mj, "raid_disks", json_integer(md.raid_disks));
		json_object_set_new(mj, "fs", json_null());
		json_object_set_new(mj, "imaged", json_string("whole"));
		json_object_set_new(j, "md", mj);
		if (md.level != 1) {
			warn(warnings, "%s (linux_raid_member): md RAID level %d is not mapped (only RAID1 is); it was "
				       "read whole",
			     what, md.level);
			return 0;
		}
		char inner[64];
		snprintf(inner, sizeof inner, "%s (md RAID1 data)", what);
		uint64_t me;
		bool amb;
		json_t *ifs = probe_fs(src, start + md.data_off, md.size, &me, &amb);
		if (amb)
			warn(warnings, "%s carries several conflicting filesystem signatures: it was read whole", inner);
		if (!ifs)
			return 0;
		json_object_set(mj, "fs", ifs);
		const char *im = "whole";
		const char *it = json_string_value(json_object_get(ifs, "type"));
		int ret = 0;
		if (it && (!strcmp(it, "LVM2_member") || !strcmp(it, "linux_raid_member"))) {
			if (!strcmp(it, "LVM2_member"))
				stack_add_pv(src, st, inner, mj, start + md.data_off, md.size, warnings);
		} else {
			struct dv_vol dv;
			dv_vol_range(&dv, src, start + md.data_off, md.size, "%s", inner);
			ret = analyse_fs(src, inner, ifs, &dv, me, false, all_blocks, allow_mounted, false, warnings,
					 unused, &im, err);
			dv_vol_release(&dv);
		}
		json_object_set_new(mj, "imaged", json_string(im));
		json_decref(ifs);
		/* the superblock and whatever lies outside the data area stay READ */
		*imaged = strcmp(im, "whole") ? "md-data" : "whole";
		return ret;
	}

	struct dv_vol vol;
	dv_vol_range(&vol, src, start, len, "%s", what);
	int r = analyse_fs(src, what, fs, &vol, magic_end, whole, all_blocks, allow_mounted, inconsistent, warnings,
			   unused, imaged, err);
	dv_vol_release(&vol);
	return r;
}

/* ---- LVM volume groups ---------------------------------------------------- */

/* The PV extents no LV segment uses become UNUSED. */
static void pv_free_extents(const struct dv_lvm_vg *vg, size_t p, const struct found_pv *f, struct dv_ivl_list *unused)
{
	struct dv_lvm_use *all;
	size_t n = dv_lvm_uses(vg, &all), k = 0;
	while (k < n && all[k].pv < p)
		k++;
	const struct dv_lvm_use *u = all + k; /* this PV's runs, by start */
	k = 0;
	while (u + k < all + n && u[k].pv == p)
		k++;
	uint64_t es = vg->extent_size * 512, base = f->start + vg->pvs[p].pe_start * 512, next = 0;
	for (size_t i = 0; i <= k; i++) {
		uint64_t at = i < k ? u[i].start : vg->pvs[p].pe_count;
		if (at > next)
			dv_ivl_add(unused, base + next * es, (at - next) * es);
		if (i < k)
			next = DV_MAX(next, u[i].start + u[i].len);
	}
	free(all);
}

/* One LV: its segments in the layout, and its filesystem mapped when it
 * can be. */
static int lvm_lv(const struct dv_source *src, const struct dv_lvm_vg *vg, const struct dv_lvm_lv *lv,
		  const struct found_pv *const *on, bool all_blocks, bool allow_mounted, json_t *warnings,
		  struct dv_ivl_list *unused, json_t *lj, struct dv_err *err)
{
	uint64_t es = vg->extent_size * 512;
	json_t *segs = json_array();
	const char *missing = NULL;
	for (size_t j = 0; j < lv->nsegs; j++) {
		const struct dv_lvm_seg *g = &lv->segs[j];
		json_t *sj = json_object();
		json_object_set_new(sj, "start_extent", json_integer((json_int_t)g->start_extent));
		json_object_set_new(sj, "extent_count", json_integer((json_int_t)g->extent_count));
		json_object_set_new(sj, "type", json_string(g->type));
		if (g->stripe_count) {
			json_object_set_new(sj, "stripe_count", json_integer(g->stripe_count));
			json_object_set_new(sj, "stripe_size", json_integer((json_int_t)(g->stripe_size * 512)));
			json_t *st = json_array();
			for (uint32_t k = 0; k < g->stripe_count; k++) {
				const struct dv_lvm_stripe *s = &g->stripes[k];
				json_t *x = json_object();
				json_object_set_new(x, "pv", json_string(vg->pvs[s->pv].name));
				json_object_set_new(x, "start_extent", json_integer((json_int_t)s->extent));
				const struct found_pv *f = on[s->pv];
				json_object_set_new(x, "on", f ? json_string(f->what) : json_null());
				json_object_set_new(x, "offset",
						    f ? json_integer((json_int_t)(f->start + vg->pvs[s->pv].pe_start * 512 +
										  s->extent * es))
						      : json_null());
				json_array_append_new(st, x);
				if (!f)
					missing = vg->pvs[s->pv].name;
			}
			json_object_set_new(sj, "stripes", st);
		}
		json_array_append_new(segs, sj);
	}
	json_object_set_new(lj, "segments", segs);
	json_object_set_new(lj, "fs", json_null());
	json_object_set_new(lj, "imaged", json_string("whole"));
	if (lv->whole_why) {
		warn(warnings, "LV %s/%s: %s; its extents were read whole", vg->name, lv->name, lv->whole_why);
		return 0;
	}
	if (missing) {
		warn(warnings, "LV %s/%s: it lies partly on PV %s, which is not on this disk; its extents here were "
			       "read whole",
		     vg->name, lv->name, missing);
		return 0;
	}
	struct dv_vol vol;
	dv_vol_init(&vol, "LV %s/%s", vg->name, lv->name);
	for (size_t j = 0; j < lv->nsegs; j++) {
		const struct dv_lvm_seg *g = &lv->segs[j];
		struct dv_vol_area a[DV_LVM_STRIPES_MAX];
		for (uint32_t k = 0; k < g->stripe_count; k++)
			a[k] = (struct dv_vol_area){src, on[g->stripes[k].pv]->start +
								 vg->pvs[g->stripes[k].pv].pe_start * 512 +
								 g->stripes[k].extent * es};
		uint64_t len = g->extent_count * es;
		if (g->stripe_count == 1) {
			dv_vol_add_linear(&vol, src, a[0].off, len);
		} else if (dv_vol_add_striped(&vol, a, g->stripe_count, g->stripe_size * 512, len) < 0) {
			warn(warnings, "LV %s/%s: its striped segment at extent %llu is not a whole number of stripes; "
				       "its extents were read whole",
			     vg->name, lv->name, (unsigned long long)g->start_extent);
			dv_vol_release(&vol);
			return 0;
		}
	}
	uint64_t me;
	bool amb;
	json_t *fs = probe_vol_fs(src, &vol, &me, &amb);
	if (amb)
		warn(warnings, "%s carries several conflicting filesystem signatures: it was read whole", vol.name);
	int ret = 0;
	if (fs) {
		json_object_set(lj, "fs", fs);
		const char *im = "whole";
		const char *t = json_string_value(json_object_get(fs, "type"));
		if (t && (!strcmp(t, "LVM2_member") || !strcmp(t, "linux_raid_member")))
			warn(warnings, "%s holds a %s: nested volumes are read whole", vol.name, t);
		else
			ret = analyse_fs(src, vol.name, fs, &vol, me, false, all_blocks, allow_mounted, false, warnings,
					 unused, &im, err);
		json_object_set_new(lj, "imaged", json_string(im));
		json_decref(fs);
	}
	dv_vol_release(&vol);
	return ret;
}

/* Assembles the VGs of the PVs found on the disk: the newest metadata of
 * each VG, its LVs mapped, its unallocated extents unused. */
static int lvm_finish(const struct dv_source *src, struct stack *st, bool all_blocks, bool allow_mounted,
		      json_t *warnings, struct dv_ivl_list *unused, struct dv_err *err)
{
	for (size_t i = 0; i < st->n; i++) {
		if (st->pv[i].done)
			continue;
		/* the PVs of this VG, and the newest metadata among them */
		struct found_pv *best = &st->pv[i];
		for (size_t j = i; j < st->n; j++)
			if (!strcmp(st->pv[j].vg->uuid, best->vg->uuid) && st->pv[j].vg->seqno > best->vg->seqno)
				best = &st->pv[j];
		const struct dv_lvm_vg *vg = best->vg;
		for (size_t j = i; j < st->n; j++)
			if (!strcmp(st->pv[j].vg->uuid, vg->uuid)) {
				st->pv[j].done = true;
				if (st->pv[j].vg->seqno != vg->seqno)
					warn(warnings, "%s (LVM2_member) has older metadata of VG %s (seqno %llu) than %s "
						       "(seqno %llu); the newest was used",
					     st->pv[j].what, vg->name, (unsigned long long)st->pv[j].vg->seqno, best->what,
					     (unsigned long long)vg->seqno);
			}
		const struct found_pv **on = dv_calloc(vg->npvs, sizeof *on);
		bool bad = false;
		uint64_t es = vg->extent_size * 512;
		for (size_t k = 0; k < vg->npvs; k++) {
			char plain[33];
			dv_lvm_uuid_plain(vg->pvs[k].uuid, plain);
			for (size_t j = i; j < st->n; j++)
				if (!strcmp(st->pv[j].vg->uuid, vg->uuid) && !strcmp(st->pv[j].lab.uuid, plain))
					on[k] = &st->pv[j];
			const struct found_pv *f = on[k];
			if (f && f->lab.data_off != vg->pvs[k].pe_start * 512) {
				warn(warnings, "%s (LVM2_member): its label puts the data area at byte %llu but VG %s "
					       "says %llu; the VG was read whole",
				     f->what, (unsigned long long)f->lab.data_off, vg->name,
				     (unsigned long long)(vg->pvs[k].pe_start * 512));
				bad = true;
			}
			if (f && (vg->pvs[k].pe_start * 512 > f->len ||
				  vg->pvs[k].pe_count > (f->len - vg->pvs[k].pe_start * 512) / es)) {
				warn(warnings, "%s (LVM2_member): VG %s puts its extents (%llu of %llu bytes from byte %llu) "
					       "past the end of it; the VG was read whole",
				     f->what, vg->name, (unsigned long long)vg->pvs[k].pe_count,
				     (unsigned long long)es, (unsigned long long)(vg->pvs[k].pe_start * 512));
				bad = true;
			}
		}
		json_t *vj = json_object();
		json_object_set_new(vj, "name", json_string(vg->name));
		json_object_set_new(vj, "uuid", json_string(vg->uuid));
		json_object_set_new(vj, "seqno", json_integer((json_int_t)vg->seqno));
		json_object_set_new(vj, "extent_size", json_integer((json_int_t)es));
		json_t *pvs = json_array();
		for (size_t k = 0; k < vg->npvs; k++) {
			const struct found_pv *f = on[k];
			json_t *pj = json_object();
			json_object_set_new(pj, "name", json_string(vg->pvs[k].name));
			json_object_set_new(pj, "uuid", json_string(vg->pvs[k].uuid));
			json_object_set_new(pj, "pe_start", json_integer((json_int_t)(vg->pvs[k].pe_start * 512)));
			json_object_set_new(pj, "pe_count", json_integer((json_int_t)vg->pvs[k].pe_count));
			json_object_set_new(pj, "on", f ? json_string(f->what) : json_null());
			json_object_set_new(pj, "offset", f ? json_integer((json_int_t)f->start) : json_null());
			json_array_append_new(pvs, pj);
			if (f) {
				json_t *l = json_object();
				json_object_set_new(l, "vg", json_string(vg->name));
				json_object_set_new(l, "vg_uuid", json_string(vg->uuid));
				json_object_set_new(l, "pv", json_string(vg->pvs[k].name));
				json_object_set_new(l, "pv_uuid", json_string(vg->pvs[k].uuid));
				json_object_set_new(l, "pe_start", json_integer((json_int_t)(vg->pvs[k].pe_start * 512)));
				json_object_set_new(l, "pe_count", json_integer((json_int_t)vg->pvs[k].pe_count));
				json_object_set_new(l, "extent_size", json_integer((json_int_t)es));
				json_object_set_new(l, "seqno", json_integer((json_int_t)f->vg->seqno));
				json_object_set_new(l, "metadata_areas", json_integer(f->lab.nmda));
				json_object_set_new(l, "metadata_areas_valid", json_integer(f->lab.mda_ok));
				json_object_set_new(f->j, "lvm", l);
			}
		}
		json_object_set_new(vj, "pvs", pvs);
		json_t *lvs = json_array();
		int ret = 0;
		for (size_t l = 0; l < vg->nlvs && ret == 0; l++) {
			const struct dv_lvm_lv *lv = &vg->lvs[l];
			json_t *lj = json_object();
			json_object_set_new(lj, "name", json_string(lv->name));
			json_object_set_new(lj, "uuid", json_string(lv->uuid));
			json_object_set_new(lj, "size", json_integer((json_int_t)(lv->extents * es)));
			json_object_set_new(lj, "visible", json_boolean(lv->visible));
			json_array_append_new(lvs, lj);
			if (bad) {
				json_object_set_new(lj, "imaged", json_string("whole"));
				continue;
			}
			ret = lvm_lv(src, vg, lv, on, all_blocks, allow_mounted, warnings, unused, lj, err);
		}
		json_object_set_new(vj, "lvs", lvs);
		json_array_append_new(st->vgs, vj);
		if (!bad && !all_blocks)
			for (size_t k = 0; k < vg->npvs; k++)
				if (on[k]) {
					pv_free_extents(vg, k, on[k], unused);
					json_object_set_new(on[k]->j, "imaged", json_string("lvm"));
				}
		free(on);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static void stack_release(struct stack *st)
{
	for (size_t i = 0; i < st->n; i++) {
		dv_lvm_pv_label_release(&st->pv[i].lab);
		dv_lvm_vg_free(st->pv[i].vg);
	}
	free(st->pv);
	json_decref(st->vgs);
}


/* ---- the probe ------------------------------------------------------------ */

static bool mbr_has_boot_code(const struct dv_source *src)
{
	uint8_t s[512];
	struct dv_err e;
	if (src->size < 512 || dv_source_read(src, 0, s, sizeof s, &e) < 0)
		return false;
	for (size_t i = 0; i < 440; i++)
		if (s[i])
			return true;
	return false;
}

int dv_disk_probe(const struct dv_source *src, bool all_blocks, bool allow_mounted, json_t **layout,
		  struct dv_region_map *regions, struct dv_err *err)
{
	*layout = NULL;
	regions->n = 0;
	int ret = 0;
	json_t *lay = json_object();
	json_t *warnings = json_array();
	json_t *parts_j = json_array();
	struct part *parts = NULL;
	size_t nparts = 0;
	struct dv_ivl_list unused = {0}, protect = {0};
	struct mounts mounts = {0};
	blkid_probe pr = NULL;
	const char *table = "none";
	bool uefi = false, bios = false;
	struct stack stack = {NULL, 0, json_array()};

	find_mounts(src, &mounts);

	pr = blkid_new_probe();
	if (!pr) {
		ret = dv_error(err, DV_E_NOMEM, "source %s: libblkid: cannot create a probe", src->path);
		goto out;
	}
	if (blkid_probe_set_device(pr, src->fd, 0, (blkid_loff_t)src->size) != 0) {
		ret = dv_error(err, DV_E_SOURCE, "source %s: libblkid cannot probe it", src->path);
		goto out;
	}
	blkid_probe_set_sectorsize(pr, src->sector_size);
	blkid_probe_enable_superblocks(pr, 0);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	blkid_partlist ls = blkid_probe_get_partitions(pr);
	blkid_parttable root = ls ? blkid_partlist_get_table(ls) : NULL;

	json_object_set_new(lay, "table", json_null()); /* keeps the key order */
	json_object_set_new(lay, "id", json_null());
	json_object_set_new(lay, "size", json_integer((json_int_t)src->size));
	json_object_set_new(lay, "sector_size", json_integer(src->sector_size));
	json_object_set_new(lay, "boot_mode", json_null());
	json_object_set_new(lay, "mode", json_string(all_blocks ? "all-blocks" : "used-blocks"));
	json_object_set_new(lay, "filesystem", json_null());

	if (root) {
		const char *t = blkid_parttable_get_type(root);
		table = t ? t : "unknown";
		json_object_set_new(lay, "id", str_or_null(blkid_parttable_get_id(root)));
		bool gpt = !strcmp(table, "gpt");
		bool dos = !strcmp(table, "dos");
		bool any_active = false;
		dv_ivl_add(&protect, 0, DV_MIN((uint64_t)TABLE_AREA, src->size));
		if (src->size > TABLE_AREA)
			dv_ivl_add(&protect, src->size - TABLE_AREA, TABLE_AREA);

		int n = blkid_partlist_numof_partitions(ls);
		parts = dv_calloc(n > 0 ? (size_t)n : 1, sizeof *parts);
		for (int i = 0; i < n; i++) {
			blkid_partition par = blkid_partlist_get_partition(ls, i);
			if (!par)
				continue;
			struct part *p = &parts[nparts++];
			blkid_parttable tab = blkid_partition_get_table(par);
			bool nested = tab && blkid_parttable_get_parent(tab) != NULL;
			bool extended = blkid_partition_is_extended(par);
			p->number = blkid_partition_get_partno(par);
			blkid_loff_t s0 = blkid_partition_get_start(par), z0 = blkid_partition_get_size(par);
			p->start = s0 > 0 ? (uint64_t)s0 * 512 : 0;
			p->size = z0 > 0 ? (uint64_t)z0 * 512 : 0;
			p->data = !nested && !extended;

			char type[64];
			const char *ts = blkid_partition_get_type_string(par);
			int tn = blkid_partition_get_type(par);
			if (ts && *ts)
				snprintf(type, sizeof type, "%s", ts);
			else
				snprintf(type, sizeof type, "0x%x", (unsigned)tn);
			unsigned long long flags = blkid_partition_get_flags(par);
			bool bootable = gpt ? (flags & (1ULL << 2)) != 0 : (flags & MBR_BOOTABLE) != 0;
			if (dos && (flags & MBR_BOOTABLE))
				any_active = true;
			if ((ts && !strcasecmp(ts, GUID_ESP)) || (!ts && dos && tn == MBR_ESP))
				uefi = true;
			if (gpt && ts && !strcasecmp(ts, GUID_BIOS_BOOT))
				bios = true;

			p->j = json_object();
			json_object_set_new(p->j, "number", json_integer(p->number));
			json_object_set_new(p->j, "start", json_integer((json_int_t)p->start));
			json_object_set_new(p->j, "size", json_integer((json_int_t)p->size));
			json_object_set_new(p->j, "type", json_string(type));
			json_object_set_new(p->j, "name", str_or_null(blkid_partition_get_name(par)));
			json_object_set_new(p->j, "uuid", str_or_null(blkid_partition_get_uuid(par)));
			json_object_set_new(p->j, "bootable", json_boolean(bootable));
			json_object_set_new(p->j, "fs", json_null());
			json_object_set_new(p->j, "imaged", json_string("whole"));
			if (extended)
				json_object_set_new(p->j, "extended", json_true());
			json_array_append(parts_j, p->j);

			if (p->start >= src->size) {
				p->len = 0;
				p->whole = true;
				if (p->size)
					warn(warnings,
					     "partition %d starts at byte %llu, past the end of the disk (%llu bytes): "
					     "nothing of it exists to read",
					     p->number, (unsigned long long)p->start, (unsigned long long)src->size);
			} else if (p->size > src->size - p->start) {
				p->len = src->size - p->start;
				p->whole = true;
				warn(warnings,
				     "partition %d (bytes %llu-%llu) runs past the end of the disk (%llu bytes): the "
				     "%llu bytes that exist were read whole",
				     p->number, (unsigned long long)p->start,
				     (unsigned long long)(p->start + p->size - 1), (unsigned long long)src->size,
				     (unsigned long long)p->len);
			} else {
				p->len = p->size;
			}
		}
		if (dos && any_active && mbr_has_boot_code(src))
			bios = true;

		/* A filesystem signature on the whole disk as well as a table:
		 * one of them is stale (mkfs on the whole disk over an old
		 * table, or the reverse), and a stale filesystem's bitmaps
		 * must not decide what is skipped. Believe neither. */
		uint64_t me;
		bool amb;
		json_t *wfs = probe_fs(src, 0, src->size, &me, &amb);
		if (wfs) {
			warn(warnings,
			     "the disk carries a %s partition table and also a %s signature on the whole disk; one of "
			     "them is stale, so every partition was read whole",
			     table, json_string_value(json_object_get(wfs, "type")));
			for (size_t i = 0; i < nparts; i++)
				parts[i].whole = true;
			json_decref(wfs);
		}

		/* Overlapping data partitions: neither's free-space claim can be
		 * believed, since the other may keep data there. */
		for (size_t a = 0; a < nparts; a++) {
			for (size_t b = a + 1; b < nparts; b++) {
				struct part *x = &parts[a], *y = &parts[b];
				if (!x->data || !y->data || !x->len || !y->len)
					continue;
				uint64_t lo = DV_MAX(x->start, y->start);
				uint64_t hi = DV_MIN(x->start + x->len, y->start + y->len);
				if (lo >= hi)
					continue;
				x->whole = y->whole = true;
				warn(warnings, "partitions %d and %d overlap (bytes %llu-%llu): both were read whole",
				     x->number, y->number, (unsigned long long)lo, (unsigned long long)(hi - 1));
			}
		}

		for (size_t i = 0; i < nparts; i++) {
			struct part *p = &parts[i];
			if (json_is_true(json_object_get(p->j, "extended")) || !p->len)
				continue;
			uint64_t magic_end;
			bool ambiguous;
			json_t *fs = probe_fs(src, p->start, p->len, &magic_end, &ambiguous);
			char what[32];
			snprintf(what, sizeof what, "partition %d", p->number);
			if (ambiguous)
				warn(warnings, "%s carries several conflicting filesystem signatures: it was read whole",
				     what);
			if (!fs)
				continue;
			json_object_set(p->j, "fs", fs);
			const char *imaged;
			ret = analyse(src, what, fs, p->start, p->len, magic_end, p->whole || !p->data, all_blocks,
				      allow_mounted, &mounts, warnings, &unused, &imaged, &stack, p->j, err);
			json_decref(fs);
			if (ret < 0)
				goto out;
			json_object_set_new(p->j, "imaged", json_string(imaged));
		}
	} else {
		/* No partition table: a filesystem, swap or LVM PV on the whole disk. */
		uint64_t magic_end;
		bool ambiguous;
		json_t *fs = probe_fs(src, 0, src->size, &magic_end, &ambiguous);
		if (ambiguous)
			warn(warnings, "the disk carries several conflicting filesystem signatures: it was read whole");
		if (fs) {
			const char *imaged;
			ret = analyse(src, "the disk", fs, 0, src->size, magic_end, false, all_blocks, allow_mounted,
				      &mounts, warnings, &unused, &imaged, &stack, fs, err);
			if (ret < 0) {
				json_decref(fs);
				goto out;
			}
			json_object_set_new(fs, "imaged", json_string(imaged));
			json_object_set_new(lay, "filesystem", fs);
		} else if (!ambiguous) {
			/* A boot signature but no table libblkid accepts: say so, since
			 * the usual cause is a damaged or truncated disk. */
			uint8_t s0[512];
			struct dv_err e2;
			if (src->size >= 512 && dv_source_read(src, 0, s0, sizeof s0, &e2) == 0 && s0[510] == 0x55 &&
			    s0[511] == 0xaa)
				warn(warnings, "sector 0 carries %s but no partition table could be read (damaged or "
					       "cut short?): the disk was read whole",
				     s0[446 + 4] == 0xee ? "a GPT protective MBR" : "an MBR boot signature");
		}
	}

	ret = lvm_finish(src, &stack, all_blocks, allow_mounted, warnings, &unused, err);
	if (ret < 0)
		goto out;
	if (json_array_size(stack.vgs))
		json_object_set(lay, "volume_groups", stack.vgs);

	json_object_set_new(lay, "table", json_string(table));
	json_object_set_new(lay, "boot_mode", json_string(uefi && bios ? "uefi+bios"
							  : uefi        ? "uefi"
							  : bios        ? "bios"
									: "unknown"));
	json_object_set_new(lay, "partitions", parts_j);
	parts_j = NULL;
	dv_osinfo_disk(lay);

	if (all_blocks)
		dv_region_map_whole(regions, src->size);
	else
		dv_usedmap_compose(src->size, &unused, &protect, DV_DISK_MIN_UNUSED_RUN, regions);
	json_object_set_new(lay, "bytes_unused", json_integer((json_int_t)dv_region_map_bytes(regions, DV_REGION_UNUSED)));
	json_object_set_new(lay, "warnings", warnings);
	warnings = NULL;
	*layout = lay;
	lay = NULL;
out:
	if (pr)
		blkid_free_probe(pr);
	for (size_t i = 0; i < nparts; i++)
		json_decref(parts[i].j);
	free(parts);
	json_decref(parts_j);
	json_decref(warnings);
	json_decref(lay);
	dv_ivl_release(&unused);
	dv_ivl_release(&protect);
	mounts_release(&mounts);
	stack_release(&stack);
	if (ret < 0)
		regions->n = 0;
	return ret;
}
