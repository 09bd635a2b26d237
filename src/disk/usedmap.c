/*
 * usedmap.c - which bytes of a filesystem hold data: ext2/3/4 block bitmaps
 * through libext2fs, and the composition of per-partition free ranges into
 * the disk's region map.
 *
 * The rule everywhere: a block is only left out when the filesystem says,
 * in a way we could check, that it is free. Any doubt makes the caller read
 * the partition whole.
 */
#include "probe_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

void dv_ivl_add(struct dv_ivl_list *l, uint64_t off, uint64_t len)
{
	if (!len)
		return;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = dv_realloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n++] = (struct dv_ivl){off, len};
}

void dv_ivl_release(struct dv_ivl_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static int ivl_cmp(const void *a, const void *b)
{
	const struct dv_ivl *x = a, *y = b;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* Sorts l and merges overlapping or touching ranges, in place. */
static void ivl_normalise(struct dv_ivl_list *l)
{
	if (!l->n)
		return;
	qsort(l->v, l->n, sizeof *l->v, ivl_cmp);
	size_t w = 0;
	for (size_t i = 1; i < l->n; i++) {
		struct dv_ivl *last = &l->v[w];
		uint64_t last_end = last->off + last->len;
		if (l->v[i].off <= last_end) {
			uint64_t end = l->v[i].off + l->v[i].len;
			if (end > last_end)
				last->len = end - last->off;
		} else {
			l->v[++w] = l->v[i];
		}
	}
	l->n = w + 1;
}

void dv_usedmap_compose(uint64_t disk_size, const struct dv_ivl_list *unused, const struct dv_ivl_list *protect,
			uint64_t min_run, struct dv_region_map *out)
{
	struct dv_ivl_list u = {0}, p = {0};
	for (size_t i = 0; i < unused->n; i++)
		dv_ivl_add(&u, unused->v[i].off, unused->v[i].len);
	if (protect)
		for (size_t i = 0; i < protect->n; i++)
			dv_ivl_add(&p, protect->v[i].off, protect->v[i].len);
	ivl_normalise(&u);
	ivl_normalise(&p);

	out->n = 0;
	uint64_t pos = 0; /* everything before pos has been emitted */
	size_t j = 0;     /* first protect range that may still matter */
	for (size_t i = 0; i < u.n; i++) {
		uint64_t a = u.v[i].off, b = u.v[i].off + u.v[i].len;
		if (b > disk_size)
			b = disk_size;
		/* Cut [a, b) by the protected ranges; each piece left is a candidate. */
		while (a < b) {
			while (j < p.n && p.v[j].off + p.v[j].len <= a)
				j++;
			uint64_t piece_end = b;
			if (j < p.n && p.v[j].off < b) {
				if (p.v[j].off <= a) {
					a = p.v[j].off + p.v[j].len; /* inside protection: skip */
					continue;
				}
				piece_end = p.v[j].off;
			}
			if (piece_end - a >= min_run && a >= pos) {
				dv_region_map_add(out, pos, a - pos, DV_REGION_READ);
				dv_region_map_add(out, a, piece_end - a, DV_REGION_UNUSED);
				pos = piece_end;
			}
			a = piece_end;
		}
	}
	if (pos < disk_size)
		dv_region_map_add(out, pos, disk_size - pos, DV_REGION_READ);
	dv_ivl_release(&u);
	dv_ivl_release(&p);
}

/* ---- ext2/3/4 ------------------------------------------------------------ */

static pthread_once_t ext2_err_once = PTHREAD_ONCE_INIT;

static void ext2_err_init(void)
{
	initialize_ext2_error_table();
}

void dv_ext2_errors_init(void)
{
	pthread_once(&ext2_err_once, ext2_err_init);
}

/* true when every block of [blk, blk+n) is marked in use. */
static bool all_set(ext2fs_block_bitmap bm, blk64_t blk, blk64_t n, blk64_t last)
{
	if (!n)
		return true;
	if (blk > last || n - 1 > last - blk)
		return false;
	blk64_t z;
	return ext2fs_find_first_zero_block_bitmap2(bm, blk, blk + n - 1, &z) == ENOENT;
}

/*
 * Superblock values libext2fs (1.47) does not guard against, checked before
 * it sees them (the superblock is read into libext2fs's own struct; on-disk
 * little-endian, as the host):
 *  - ext2fs_open2 allocates and reads the group descriptors of whatever size
 *    the superblock claims before it returns: a filesystem claiming to be
 *    larger than its partition could make it allocate gigabytes;
 *  - a first data block other than the one mke2fs writes (1 for 1 KiB
 *    blocks without bigalloc, else 0) makes ext2fs_read_block_bitmap write
 *    past a buffer (found by tests/fuzz, regression seed
 *    corpus/disk_image/regress-heap-overflow-first-data-block); e2fsck
 *    refuses such a filesystem too (PR_0_FIRST_DATA_BLOCK).
 * Anything else wrong with the superblock is left for ext2fs_open2 to say.
 */
static int check_sb(const struct ext2_super_block *sbp, bool got, uint64_t part_len, struct dv_ext_info *info,
		    char **why)
{
	struct ext2_super_block sb = *sbp;
	if (!got || sb.s_magic != EXT2_SUPER_MAGIC ||
	    sb.s_log_block_size > EXT2_MAX_BLOCK_LOG_SIZE - EXT2_MIN_BLOCK_LOG_SIZE)
		return 0;
	uint64_t bs = EXT2_BLOCK_SIZE(&sb);
	blk64_t nblocks = ext2fs_blocks_count(&sb);
	info->needs_recovery = ext2fs_has_feature_journal_needs_recovery(&sb);
	if (nblocks == 0 || nblocks > UINT64_MAX / bs || nblocks * bs > part_len) {
		info->fs_bytes = nblocks <= UINT64_MAX / bs ? nblocks * bs : UINT64_MAX;
		*why = dv_asprintf("the filesystem (%llu bytes) is larger than its partition (%llu bytes)",
				   (unsigned long long)info->fs_bytes, (unsigned long long)part_len);
		return -1;
	}
	bool clusters = ext2fs_has_feature_bigalloc(&sb) && sb.s_log_cluster_size != sb.s_log_block_size;
	uint32_t first = sb.s_log_block_size == 0 && !clusters ? 1 : 0;
	if (sb.s_first_data_block != first) {
		*why = dv_asprintf("its superblock gives block %u as the first data block instead of %u (run e2fsck)",
				   (unsigned)sb.s_first_data_block, (unsigned)first);
		return -1;
	}
	return 0;
}

static int check_super(const char *path, uint64_t part_off, uint64_t part_len, struct dv_ext_info *info, char **why)
{
	struct ext2_super_block sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*why = dv_asprintf("cannot open it (%s)", strerror(errno));
		return -1;
	}
	ssize_t n = pread(fd, &sb, sizeof sb, (off_t)(part_off + SUPERBLOCK_OFFSET));
	close(fd);
	return check_sb(&sb, n == (ssize_t)sizeof sb, part_len, info, why);
}

bool dv_ext_super_safe(const char *path, uint64_t part_off, uint64_t part_len)
{
	struct dv_ext_info info;
	char *why = NULL;
	memset(&info, 0, sizeof info);
	int r = check_super(path, part_off, part_len, &info, &why);
	free(why);
	return r == 0;
}

/* The bitmaps of the filesystem libext2fs opens as name through mgr
 * (opts: its options); free runs are appended at base + their offset. */
static int ext_map(const char *name, const char *opts, io_manager mgr, uint64_t base, uint64_t part_len,
		   struct dv_ext_info *info, struct dv_ivl_list *unused, char **why)
{
	const uint64_t part_off = base;
	ext2_filsys fs = NULL;
	errcode_t e = ext2fs_open2(name, opts, EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0, 0, mgr, &fs);
	if (e) {
		*why = dv_asprintf("libext2fs cannot open it (%s)", error_message(e));
		return -1;
	}
	info->opened = true;
	struct ext2_super_block *sb = fs->super;
	uint64_t bs = EXT2_BLOCK_SIZE(sb);
	blk64_t nblocks = ext2fs_blocks_count(sb);
	info->needs_recovery = ext2fs_has_feature_journal_needs_recovery(sb);
	info->fs_bytes = (uint64_t)nblocks * bs;

	struct dv_ivl_list runs = {0};
	uint64_t *group_free = NULL;
	int ret = -1;

	if (nblocks == 0 || nblocks > UINT64_MAX / bs || info->fs_bytes > part_len) {
		*why = dv_asprintf("the filesystem (%llu bytes) is larger than its partition (%llu bytes)",
				   (unsigned long long)info->fs_bytes, (unsigned long long)part_len);
		goto out;
	}
	if (sb->s_state & EXT2_ERROR_FS) {
		*why = dv_strdup("the filesystem is marked as having errors (run e2fsck)");
		goto out;
	}
	if (!ext2fs_has_feature_journal(sb) && !(sb->s_state & EXT2_VALID_FS)) {
		*why = dv_strdup("the filesystem has no journal and was not cleanly unmounted");
		goto out;
	}
	/* A flat bit array: fast to scan, 32 MiB per TiB of 4 KiB blocks. */
	fs->default_bitmap_type = EXT2FS_BMAP64_BITARRAY;
	e = ext2fs_read_block_bitmap(fs);
	if (e) {
		*why = dv_asprintf("its block bitmaps cannot be read (%s)", error_message(e));
		goto out;
	}
	ext2fs_block_bitmap bm = fs->block_map;
	blk64_t first = sb->s_first_data_block;
	blk64_t last = nblocks - 1;
	if (ext2fs_get_block_bitmap_end2(bm) < last)
		last = ext2fs_get_block_bitmap_end2(bm);
	if (first > last) {
		*why = dv_strdup("its superblock describes no data blocks");
		goto out;
	}

	/* The metadata of every group must be marked in use; if not, the
	 * bitmaps are not what the filesystem uses and cannot be trusted. */
	if (!all_set(bm, first, 1, last)) {
		*why = dv_strdup("its block bitmap does not mark the superblock in use");
		goto out;
	}
	for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
		if (!all_set(bm, ext2fs_block_bitmap_loc(fs, g), 1, last) ||
		    !all_set(bm, ext2fs_inode_bitmap_loc(fs, g), 1, last) ||
		    !all_set(bm, ext2fs_inode_table_loc(fs, g), fs->inode_blocks_per_group, last)) {
			*why = dv_asprintf("its block bitmap does not mark the metadata of block group %u in use",
					   (unsigned)g);
			goto out;
		}
	}

	/* Free runs, and per-group free counts to check the bitmaps against
	 * the group descriptors (skipped for bigalloc, which counts clusters). */
	bool check_counts = !ext2fs_has_feature_bigalloc(sb) && sb->s_blocks_per_group > 0;
	if (check_counts)
		group_free = dv_calloc(fs->group_desc_count, sizeof *group_free);
	uint64_t total_free = 0;
	blk64_t pos = first;
	while (pos <= last) {
		blk64_t z, s;
		if (ext2fs_find_first_zero_block_bitmap2(bm, pos, last, &z) != 0)
			break;
		if (ext2fs_find_first_set_block_bitmap2(bm, z, last, &s) != 0)
			s = last + 1;
		dv_ivl_add(&runs, part_off + (uint64_t)z * bs, (uint64_t)(s - z) * bs);
		total_free += s - z;
		if (check_counts) {
			for (blk64_t b = z; b < s;) {
				uint64_t g = (b - first) / sb->s_blocks_per_group;
				blk64_t gend = first + (g + 1) * sb->s_blocks_per_group;
				blk64_t stop = DV_MIN(gend, s);
				if (g < fs->group_desc_count)
					group_free[g] += stop - b;
				b = stop;
			}
		}
		pos = s;
	}
	if (check_counts) {
		for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
			uint64_t want = ext2fs_bg_free_blocks_count(fs, g);
			if (group_free[g] != want) {
				*why = dv_asprintf("block group %u: the bitmap shows %llu free blocks but the group "
						   "descriptor says %llu",
						   (unsigned)g, (unsigned long long)group_free[g],
						   (unsigned long long)want);
				goto out;
			}
		}
	}
	info->has_used = true;
	info->used_bytes = (uint64_t)(nblocks - total_free) * bs;
	for (size_t i = 0; i < runs.n; i++)
		dv_ivl_add(unused, runs.v[i].off, runs.v[i].len);
	ret = 0;
out:
	free(group_free);
	dv_ivl_release(&runs);
	ext2fs_close_free(&fs);
	return ret;
}

int dv_usedmap_ext(const char *path, uint64_t part_off, uint64_t part_len, struct dv_ext_info *info,
		   struct dv_ivl_list *unused, char **why)
{
	memset(info, 0, sizeof *info);
	*why = NULL;
	dv_ext2_errors_init();
	if (check_super(path, part_off, part_len, info, why) < 0)
		return -1;
	char opts[64];
	snprintf(opts, sizeof opts, "offset=%llu", (unsigned long long)part_off);
	return ext_map(path, opts, unix_io_manager, part_off, part_len, info, unused, why);
}

int dv_usedmap_ext_vol(const struct dv_vol *v, struct dv_ext_info *info, struct dv_ivl_list *unused, char **why)
{
	memset(info, 0, sizeof *info);
	*why = NULL;
	dv_ext2_errors_init();
	struct ext2_super_block sb;
	struct dv_err e;
	bool got = v->size >= SUPERBLOCK_OFFSET + sizeof sb &&
		   dv_vol_read(v, SUPERBLOCK_OFFSET, &sb, sizeof sb, &e) == 0;
	if (check_sb(&sb, got, v->size, info, why) < 0)
		return -1;
	char name[64];
	dv_ext_io_name(v, name, sizeof name);
	return ext_map(name, NULL, dv_ext_vol_io_manager, 0, v->size, info, unused, why);
}
