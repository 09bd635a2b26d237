/*
 * btrfs.c - which bytes of a single-device btrfs are allocated to chunks.
 *
 * btrfs allocates its device in chunks (block groups of data, metadata or
 * system), each recorded twice: a CHUNK_ITEM in the chunk tree (logical
 * address -> stripes on devices) and a DEV_EXTENT in the device tree
 * (device offset -> chunk). Device space that no DEV_EXTENT of this device
 * covers holds nothing btrfs will read: that is what is reported unused.
 * The first MiB (boot area, primary superblock) and the superblock mirrors
 * (64 MiB, 256 GiB) stay read. Free space inside chunks is not mapped.
 *
 * No Debian library reads btrfs structures (libbtrfsutil works on mounted
 * filesystems only), so this is a small parser after the kernel's on-disk
 * format (fs/btrfs/accessors.h, uapi/linux/btrfs_tree.h):
 *   1. the superblock at 64 KiB: magic _BHRfS_M, crc32c over bytes
 *      32..4096, bytenr 65536, sizes sane, csum type crc32c, one device,
 *      only known incompat flags;
 *   2. the sys_chunk_array maps the chunk tree's logical addresses;
 *   3. the chunk tree (every CHUNK_ITEM) maps the other trees';
 *   4. the root tree gives the device tree's root (ROOT_ITEM of objectid 4);
 *   5. the device tree's DEV_EXTENT items of this devid are the allocated
 *      device space.
 * Every tree block is checked (crc32c, its own bytenr, the filesystem's
 * fsid, a level one below its parent's, items inside the block) and the
 * walks are bounded in depth and blocks. Chunks other than SINGLE or DUP
 * (which need several devices) and any failed check make the caller read
 * the filesystem whole.
 */
#include "probe_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SB_OFF 65536u
#define SB_SIZE 4096u
#define MAX_LEVEL 8            /* BTRFS_MAX_LEVEL */
#define MAX_BLOCKS (1u << 18)  /* tree blocks read per walk */
#define MAX_CHUNKS (1u << 20)
#define SYS_ARRAY_OFF 0x32b
#define SYS_ARRAY_MAX 2048u
#define HDR_SIZE 101u          /* struct btrfs_header */
#define ITEM_SIZE 25u          /* struct btrfs_item: key + offset + size */
#define PTR_SIZE 33u           /* struct btrfs_key_ptr: key + blockptr + generation */

#define KEY_ROOT_ITEM 132
#define KEY_DEV_EXTENT 204
#define KEY_CHUNK_ITEM 228
#define DEV_TREE_OBJECTID 4

#define BG_RAID0 (1u << 3)
#define BG_RAID1 (1u << 4)
#define BG_DUP (1u << 5)
#define BG_RAID10 (1u << 6)
#define BG_RAID5 (1u << 7)
#define BG_RAID6 (1u << 8)
#define BG_RAID1C3 (1u << 9)
#define BG_RAID1C4 (1u << 10)

/* incompat flags this map is right for (the rest change what a chunk or
 * extent means, or are unknown): mixed_backref, default_subvol,
 * mixed_groups, lzo, zstd, big_metadata, extended_iref, skinny_metadata,
 * no_holes, metadata_uuid, raid1c34 */
#define INCOMPAT_METADATA_UUID (1ull << 10)
#define INCOMPAT_KNOWN 0xf7full

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static unsigned le16(const uint8_t *p)
{
	return (unsigned)p[0] | (unsigned)p[1] << 8;
}

struct chunk {
	uint64_t logical, length, type, physical; /* physical: stripe 0 on our device */
};

struct bfs {
	const struct dv_vol *v;
	uint64_t devid, nodesize;
	uint8_t fsid[16]; /* the fsid tree blocks carry */
	struct chunk *chunks;
	size_t nchunks, cap;
	uint8_t *blocks[MAX_LEVEL + 1]; /* one buffer per level */
	unsigned nread;
	const char *bad;
	/* the walk's result */
	uint64_t dev_root, dev_level;
	bool dev_found;
	struct dv_ivl_list extents;
};

/* Adds a chunk (length bytes at logical) whose stripe 0 data starts at c
 * (a struct btrfs_chunk of avail bytes). */
static void add_chunk(struct bfs *b, uint64_t logical, const uint8_t *c, size_t avail)
{
	if (b->bad)
		return;
	if (avail < 48 + 32) {
		b->bad = "a chunk item is cut short";
		return;
	}
	uint64_t length = le64(c), type = le64(c + 24);
	unsigned nstripes = le16(c + 44);
	if (!nstripes || avail < 48 + (size_t)nstripes * 32 || !length || logical + length < logical) {
		b->bad = "a chunk item is malformed";
		return;
	}
	if (type & (BG_RAID0 | BG_RAID1 | BG_RAID10 | BG_RAID5 | BG_RAID6 | BG_RAID1C3 | BG_RAID1C4)) {
		b->bad = "it has RAID chunks (a multi-device profile)";
		return;
	}
	if (nstripes != ((type & BG_DUP) ? 2u : 1u)) {
		b->bad = "a chunk item's stripe count does not match its profile";
		return;
	}
	for (unsigned i = 0; i < nstripes; i++)
		if (le64(c + 48 + i * 32) != b->devid) {
			b->bad = "a chunk lies on another device";
			return;
		}
	if (b->nchunks >= MAX_CHUNKS) {
		b->bad = "it has too many chunks";
		return;
	}
	for (size_t i = 0; i < b->nchunks; i++)
		if (b->chunks[i].logical == logical)
			return; /* the sys_chunk_array's chunks are in the chunk tree again */
	if (b->nchunks == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 16;
		b->chunks = dv_realloc(b->chunks, b->cap * sizeof *b->chunks);
	}
	b->chunks[b->nchunks++] = (struct chunk){logical, length, type, le64(c + 48 + 8)};
}

/* The volume offset of nodesize bytes at logical address la, or -1. */
static int64_t map_logical(const struct bfs *b, uint64_t la)
{
	for (size_t i = 0; i < b->nchunks; i++) {
		const struct chunk *c = &b->chunks[i];
		if (la >= c->logical && la - c->logical < c->length && c->length - (la - c->logical) >= b->nodesize) {
			uint64_t p = c->physical + (la - c->logical);
			if (p < c->physical || p > INT64_MAX || p + b->nodesize > b->v->size)
				return -1;
			return (int64_t)p;
		}
	}
	return -1;
}

typedef void (*item_fn)(struct bfs *b, const uint8_t *key, const uint8_t *data, uint32_t size);

/* Walks the tree whose root block is at logical address la, of the given
 * level, calling fn for every leaf item. */
static void walk(struct bfs *b, uint64_t la, unsigned level, item_fn fn)
{
	if (b->bad)
		return;
	if (level > MAX_LEVEL) {
		b->bad = "a tree is deeper than btrfs allows";
		return;
	}
	if (++b->nread > MAX_BLOCKS) {
		b->bad = "a tree has too many blocks";
		return;
	}
	int64_t off = map_logical(b, la);
	if (off < 0) {
		b->bad = "a tree block lies outside every chunk";
		return;
	}
	uint8_t *n = b->blocks[level];
	struct dv_err e;
	if (dv_vol_read(b->v, (uint64_t)off, n, b->nodesize, &e) < 0) {
		b->bad = "a tree block cannot be read";
		return;
	}
	if (dv_crc32c(n + 32, b->nodesize - 32) != le32(n)) {
		b->bad = "a tree block fails its checksum";
		return;
	}
	if (le64(n + 0x30) != la || memcmp(n + 0x20, b->fsid, 16) || n[0x64] != level) {
		b->bad = "a tree block is not the one its parent names";
		return;
	}
	uint32_t nitems = le32(n + 0x60);
	uint64_t room = b->nodesize - HDR_SIZE;
	if ((uint64_t)nitems * (level ? PTR_SIZE : ITEM_SIZE) > room) {
		b->bad = "a tree block holds more items than fit";
		return;
	}
	for (uint32_t i = 0; i < nitems && !b->bad; i++) {
		if (level) {
			const uint8_t *p = n + HDR_SIZE + (size_t)i * PTR_SIZE;
			walk(b, le64(p + 17), level - 1, fn);
			continue;
		}
		const uint8_t *it = n + HDR_SIZE + (size_t)i * ITEM_SIZE;
		uint32_t doff = le32(it + 17), dsize = le32(it + 21);
		if (doff > room || dsize > room - doff) {
			b->bad = "a tree item's data lies outside its block";
			return;
		}
		fn(b, it, n + HDR_SIZE + doff, dsize);
	}
}

static void on_chunk(struct bfs *b, const uint8_t *key, const uint8_t *data, uint32_t size)
{
	if (key[8] == KEY_CHUNK_ITEM)
		add_chunk(b, le64(key + 9), data, size);
}

static void on_root(struct bfs *b, const uint8_t *key, const uint8_t *data, uint32_t size)
{
	if (key[8] != KEY_ROOT_ITEM || le64(key) != DEV_TREE_OBJECTID)
		return;
	if (size < 239) {
		b->bad = "the device tree's root item is cut short";
		return;
	}
	b->dev_root = le64(data + 176);
	b->dev_level = data[238];
	b->dev_found = true;
}

static void on_dev_extent(struct bfs *b, const uint8_t *key, const uint8_t *data, uint32_t size)
{
	if (key[8] != KEY_DEV_EXTENT || le64(key) != b->devid)
		return;
	if (size < 32) {
		b->bad = "a device extent item is cut short";
		return;
	}
	uint64_t start = le64(key + 9), len = le64(data + 24);
	if (!len || start + len < start || start + len > b->v->size) {
		b->bad = "a device extent lies past the end of the device";
		return;
	}
	dv_ivl_add(&b->extents, start, len);
}

static int cmp_ivl(const void *a, const void *b)
{
	const struct dv_ivl *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Appends [lo, hi) minus the sorted ranges in ex[] to out; returns bytes added. */
static uint64_t add_gaps(uint64_t lo, uint64_t hi, const struct dv_ivl_list *ex, struct dv_ivl_list *out)
{
	uint64_t pos = lo, added = 0;
	for (size_t i = 0; i < ex->n && pos < hi; i++) {
		uint64_t s = ex->v[i].off, e = ex->v[i].off + ex->v[i].len;
		if (e <= pos)
			continue;
		if (s > pos) {
			uint64_t end = s < hi ? s : hi;
			dv_ivl_add(out, pos, end - pos);
			added += end - pos;
		}
		pos = e;
	}
	if (pos < hi) {
		dv_ivl_add(out, pos, hi - pos);
		added += hi - pos;
	}
	return added;
}

static const char *parse(struct bfs *b, struct dv_ext_info *info, struct dv_ivl_list *unused)
{
	const struct dv_vol *v = b->v;
	uint8_t sb[SB_SIZE];
	struct dv_err e;
	if (v->size < SB_OFF + SB_SIZE || dv_vol_read(v, SB_OFF, sb, SB_SIZE, &e) < 0)
		return "its superblock cannot be read";
	if (memcmp(sb + 0x40, "_BHRfS_M", 8))
		return "its superblock has no btrfs magic";
	if (le16(sb + 0xc4) != 0)
		return "its checksums are not crc32c (xxhash, sha256 and blake2 are not checked here)";
	if (dv_crc32c(sb + 32, SB_SIZE - 32) != le32(sb))
		return "its superblock fails its checksum";
	if (le64(sb + 0x30) != SB_OFF)
		return "its superblock is not the primary one";
	uint64_t incompat = le64(sb + 0xbc);
	if (incompat & ~INCOMPAT_KNOWN)
		return "it has incompat features this map does not know (zoned, extent tree v2, raid stripe tree or newer)";
	if (le64(sb + 0x88) != 1)
		return "it spans several devices (each device must be imaged with the others)";
	uint32_t sectorsize = le32(sb + 0x90), nodesize = le32(sb + 0x94);
	if (sectorsize < 4096 || sectorsize > 65536 || (sectorsize & (sectorsize - 1)) || nodesize < sectorsize ||
	    nodesize > 65536 || (nodesize & (nodesize - 1)))
		return "its superblock gives invalid sector or node sizes";
	b->nodesize = nodesize;
	b->devid = le64(sb + 0xc9);
	uint64_t dev_bytes = le64(sb + 0xc9 + 8);
	info->opened = true;
	info->fs_bytes = dev_bytes;
	if (dev_bytes > v->size)
		return "the filesystem is larger than its partition";
	if (dev_bytes < 1024 * 1024)
		return "its device is smaller than 1 MiB";
	memcpy(b->fsid, sb + ((incompat & INCOMPAT_METADATA_UUID) ? 0x23b : 0x20), 16);

	uint32_t sys_size = le32(sb + 0xa0);
	if (sys_size > SYS_ARRAY_MAX)
		return "its sys_chunk_array is too large";
	for (uint32_t p = 0; p < sys_size && !b->bad;) {
		if (sys_size - p < 17 + 48)
			return "its sys_chunk_array is cut short";
		const uint8_t *k = sb + SYS_ARRAY_OFF + p;
		if (k[8] != KEY_CHUNK_ITEM)
			return "its sys_chunk_array holds something other than chunks";
		unsigned ns = le16(k + 17 + 44);
		size_t len = 48 + (size_t)ns * 32;
		if (!ns || len > sys_size - p - 17)
			return "its sys_chunk_array is cut short";
		add_chunk(b, le64(k + 9), k + 17, len);
		p += 17 + (uint32_t)len;
	}
	if (b->bad)
		return b->bad;
	for (unsigned l = 0; l <= MAX_LEVEL; l++)
		b->blocks[l] = dv_malloc(nodesize);
	walk(b, le64(sb + 0x58), sb[0xc7], on_chunk); /* chunk tree */
	walk(b, le64(sb + 0x50), sb[0xc6], on_root);  /* root tree */
	if (b->bad)
		return b->bad;
	if (!b->dev_found)
		return "its root tree has no device tree";
	walk(b, b->dev_root, (unsigned)b->dev_level, on_dev_extent);
	if (b->bad)
		return b->bad;

	/* allocated = dev extents, the first MiB and the superblock mirrors */
	struct dv_ivl_list *ex = &b->extents;
	dv_ivl_add(ex, 0, 1024 * 1024);
	for (uint64_t m = 64ull << 20; m <= (256ull << 30); m <<= 12)
		dv_ivl_add(ex, m, SB_SIZE);
	qsort(ex->v, ex->n, sizeof *ex->v, cmp_ivl);
	uint64_t free_bytes = add_gaps(0, dev_bytes, ex, unused);
	info->has_used = true;
	info->used_bytes = dev_bytes - free_bytes;
	return NULL;
}


int dv_usedmap_btrfs(const struct dv_vol *v, struct dv_ext_info *info, struct dv_ivl_list *unused, char **why)
{
	memset(info, 0, sizeof *info);
	*why = NULL;
	struct bfs b = {.v = v};
	struct dv_ivl_list runs = {0};
	const char *bad = parse(&b, info, &runs);
	for (unsigned l = 0; l <= MAX_LEVEL; l++)
		free(b.blocks[l]);
	free(b.chunks);
	dv_ivl_release(&b.extents);
	if (bad) {
		info->has_used = false;
		dv_ivl_release(&runs);
		*why = dv_strdup(bad);
		return -1;
	}
	for (size_t i = 0; i < runs.n; i++)
		dv_ivl_add(unused, runs.v[i].off, runs.v[i].len);
	dv_ivl_release(&runs);
	return 0;
}
