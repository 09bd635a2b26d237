/*
 * fat.c - which clusters of a FAT12/16/32 filesystem are allocated.
 *
 * libblkid recognises FAT (TYPE vfat, VERSION FAT12/16/32) but says nothing
 * about allocation, and no library on the build machines reads a FAT, so
 * this is a small parser of the boot sector (BPB) and the allocation table,
 * after Microsoft's "FAT: General Overview of On-Disk Format" (v1.03):
 *
 *   [reserved sectors, boot sector first][FAT 1]...[FAT n][root dir (12/16)][data: clusters 2..N+1]
 *
 * A cluster whose FAT entry is 0 is free; anything else (a next-cluster
 * pointer, end of chain, bad cluster) is kept. Everything is read through
 * dv_vol_read with bounds checked before each read; the table is
 * streamed in 1 MiB pieces, so its size needs no allocation.
 *
 * The free-space map is trusted only when every check below passes;
 * otherwise the caller reads the filesystem whole:
 *   - the BPB is self-consistent (sector size 512..4096, power-of-two
 *     cluster size, FATs large enough for every cluster, data area after
 *     the metadata, FAT32 fields only on FAT32) and fits the partition;
 *   - the volume was cleanly unmounted (boot sector "dirty" bit clear and,
 *     on FAT16/32, the clean-shutdown bit of FAT entry 1 set);
 *   - FAT entry 0 carries the BPB's media byte;
 *   - every entry is free, a cluster number in range, bad, reserved or end
 *     of chain (no pointer past the last cluster);
 *   - all FAT copies are identical;
 *   - on FAT32, the root directory's first cluster is allocated.
 */
#include "probe_internal.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK (1024 * 1024) /* a multiple of 2 and 4: FAT16/32 entries never straddle it */

static unsigned le16(const uint8_t *p)
{
	return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

struct fat_geom {
	unsigned bits;          /* 12, 16, 32 */
	uint64_t bps;           /* bytes per sector */
	uint64_t cluster;       /* bytes per cluster */
	uint64_t fat_off;       /* byte offset of FAT 1 in the filesystem */
	uint64_t fat_bytes;     /* bytes of one FAT (as the BPB sizes it) */
	unsigned nfats;
	uint64_t data_off;      /* byte offset of cluster 2 */
	uint64_t clusters;      /* data clusters (numbered 2..clusters+1) */
	uint64_t fs_bytes;      /* total sectors x bps */
	uint32_t root_cluster;  /* FAT32 */
	uint8_t media;
	bool dirty;             /* boot sector state bit */
};

/* Checks the BPB; returns NULL or a reason. */
static const char *parse_bpb(const uint8_t *b, uint64_t part_len, struct fat_geom *g)
{
	memset(g, 0, sizeof *g);
	if (b[510] != 0x55 || b[511] != 0xaa)
		return "its boot sector has no 55aa signature";
	unsigned bps = le16(b + 11), spc = b[13], reserved = le16(b + 14), nfats = b[16], root_ents = le16(b + 17);
	unsigned ts16 = le16(b + 19), fat16 = le16(b + 22);
	uint32_t ts32 = le32(b + 32), fat32 = le32(b + 36);
	g->media = b[21];
	if (bps < 512 || bps > 4096 || (bps & (bps - 1)))
		return "its boot sector gives an invalid sector size";
	if (!spc || (spc & (spc - 1)))
		return "its boot sector gives an invalid cluster size";
	if (!reserved || !nfats || nfats > 4)
		return "its boot sector gives no reserved sectors or an odd number of FATs";
	uint64_t total = ts16 ? ts16 : ts32;
	uint64_t fatsz = fat16 ? fat16 : fat32;
	if (!total || !fatsz)
		return "its boot sector gives no size";
	uint64_t root_sectors = ((uint64_t)root_ents * 32 + bps - 1) / bps;
	uint64_t data_start = reserved + nfats * fatsz + root_sectors;
	if (data_start >= total)
		return "its boot sector puts the data area past the end of the filesystem";
	g->bps = bps;
	g->cluster = (uint64_t)bps * spc;
	g->fs_bytes = total * bps;
	if (g->fs_bytes > part_len)
		return "the filesystem is larger than its partition";
	g->clusters = (total - data_start) / spc;
	g->bits = g->clusters < 4085 ? 12 : g->clusters < 65525 ? 16 : 32;
	if (g->bits == 32) {
		if (fat16 || root_ents || g->clusters > 0x0ffffff5)
			return "its boot sector mixes FAT32 and FAT12/16 fields";
		g->root_cluster = le32(b + 44);
		g->dirty = b[65] & 1;
	} else {
		if (!fat16 || !root_ents)
			return "its boot sector mixes FAT32 and FAT12/16 fields";
		g->dirty = b[37] & 1;
	}
	uint64_t need = g->bits == 12 ? ((g->clusters + 2) * 3 + 1) / 2 : (g->clusters + 2) * (g->bits / 8);
	g->fat_bytes = fatsz * bps;
	if (need > g->fat_bytes)
		return "its FATs are too small for its clusters";
	g->nfats = nfats;
	g->fat_off = (uint64_t)reserved * bps;
	g->data_off = data_start * bps;
	return NULL;
}

/* Entry k of a FAT held whole in t (FAT12 only). */
static uint32_t fat12_entry(const uint8_t *t, uint64_t k)
{
	uint64_t o = k + k / 2;
	unsigned v = le16(t + o);
	return k & 1 ? v >> 4 : v & 0xfff;
}

int dv_usedmap_fat(const struct dv_vol *vol, struct dv_ext_info *info, struct dv_ivl_list *unused, char **why)
{
	const uint64_t part_len = vol->size;
	memset(info, 0, sizeof *info);
	*why = NULL;
	uint8_t bs[512];
	struct dv_err e;
	if (part_len < 512 || dv_vol_read(vol, 0, bs, 512, &e) < 0) {
		*why = dv_strdup("its boot sector cannot be read");
		return -1;
	}
	struct fat_geom g;
	const char *bad = parse_bpb(bs, part_len, &g);
	if (bad) {
		*why = dv_strdup(bad);
		return -1;
	}
	info->opened = true;
	info->fs_bytes = g.fs_bytes;

	const uint32_t mask = g.bits == 12 ? 0xfff : g.bits == 16 ? 0xffff : 0x0fffffff;
	const uint32_t min_reserved = mask - 15; /* 0x?ff0 and up: reserved, bad, end of chain */
	const uint64_t ebytes = g.bits / 8;      /* FAT16/32 entry size */
	/* bytes of the table that hold entries 0..clusters+1 */
	const uint64_t tbytes = g.bits == 12 ? ((g.clusters + 2) * 3 + 1) / 2 : (g.clusters + 2) * ebytes;
	uint8_t *t = dv_malloc(g.bits == 12 ? (size_t)tbytes + 2 : CHUNK);
	uint8_t *c = dv_malloc(g.bits == 12 ? (size_t)tbytes + 2 : CHUNK);
	struct dv_ivl_list runs = {0};
	uint64_t used = 0, run_start = 0;
	bool in_run = false, root_used = g.bits != 32;
	int ret = -1;

	for (uint64_t pos = 0; pos < tbytes;) {
		size_t n = g.bits == 12 ? (size_t)tbytes : (size_t)DV_MIN((uint64_t)CHUNK, tbytes - pos);
		if (dv_vol_read(vol, g.fat_off + pos, t, n, &e) < 0) {
			*why = dv_strdup("its FAT cannot be read");
			goto out;
		}
		for (unsigned k = 1; k < g.nfats; k++) {
			if (dv_vol_read(vol, g.fat_off + k * g.fat_bytes + pos, c, n, &e) < 0) {
				*why = dv_asprintf("its FAT %u cannot be read", k + 1);
				goto out;
			}
			if (memcmp(t, c, n)) {
				*why = dv_asprintf("its FAT copies 1 and %u differ", k + 1);
				goto out;
			}
		}
		uint64_t first = pos / (g.bits == 12 ? 1 : ebytes), count = g.bits == 12 ? g.clusters + 2 : n / ebytes;
		if (g.bits == 12)
			t[n] = t[n + 1] = 0; /* the last odd entry reads one byte past the table */
		for (uint64_t i = 0; i < count; i++) {
			uint64_t k = first + i;
			uint32_t v = g.bits == 12 ? fat12_entry(t, k) : g.bits == 16 ? le16(t + i * 2) : le32(t + i * 4) & mask;
			if (k == 0) {
				if ((v & 0xff) != g.media) {
					*why = dv_strdup("its first FAT entry does not carry the media byte");
					goto out;
				}
				continue;
			}
			if (k == 1) {
				uint32_t clean = g.bits == 16 ? 0x8000 : g.bits == 32 ? 0x08000000 : 0;
				if (clean && !(v & clean))
					g.dirty = true;
				continue;
			}
			if (v && v < min_reserved && (v < 2 || v > g.clusters + 1)) {
				*why = dv_asprintf("FAT entry %llu points to cluster %lu, past the last one (%llu)",
						   (unsigned long long)k, (unsigned long)v,
						   (unsigned long long)(g.clusters + 1));
				goto out;
			}
			if (v) {
				used++;
				if (k == g.root_cluster)
					root_used = true;
				if (in_run)
					dv_ivl_add(&runs, g.data_off + (run_start - 2) * g.cluster,
						   (k - run_start) * g.cluster);
				in_run = false;
			} else if (!in_run) {
				in_run = true;
				run_start = k;
			}
		}
		pos += n;
	}
	if (in_run)
		dv_ivl_add(&runs, g.data_off + (run_start - 2) * g.cluster,
			   (g.clusters + 2 - run_start) * g.cluster);
	info->has_used = true;
	info->used_bytes = g.data_off + used * g.cluster;
	if (g.dirty) {
		*why = dv_strdup("it was not cleanly unmounted (its dirty flag is set)");
		goto out;
	}
	if (g.bits == 32 && (!root_used || g.root_cluster < 2 || g.root_cluster > g.clusters + 1)) {
		*why = dv_strdup("its root directory cluster is not allocated");
		goto out;
	}
	for (size_t i = 0; i < runs.n; i++)
		dv_ivl_add(unused, runs.v[i].off, runs.v[i].len);
	ret = 0;
out:
	free(t);
	free(c);
	dv_ivl_release(&runs);
	return ret;
}
