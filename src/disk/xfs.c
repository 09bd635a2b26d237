/*
 * xfs.c - which blocks of an XFS filesystem are free.
 *
 * libblkid recognises XFS but says nothing about allocation, and no Debian
 * library reads XFS metadata (xfsprogs ships programs, not a library), so
 * this is a small parser of the on-disk structures described in the XFS
 * Algorithms & Data Structures document (big-endian throughout):
 *
 *   AG 0: [sb][AGF][AGI][AGFL] ... btree blocks, inodes, data, (log) ...
 *   AG 1..n-1: the same, each agblocks long; the last may be shorter
 *
 * The free space of each allocation group is the by-block-number free
 * space B+tree rooted in its AGF (short-form btree blocks, magic ABTB on
 * v4, AB3B on v5). Its leaf records [startblock, blockcount] are the free
 * extents. Everything else - the AG headers, the AGFL's reserved blocks,
 * inodes, btree blocks, the internal log - is not in that tree, so it
 * counts as used by construction.
 *
 * CRC32c (v5 metadata): dv_crc32c (src/util/crc32c.c says why it is ours).
 *
 * The map is trusted only when every check passes; otherwise the caller
 * reads the filesystem whole, with the reason:
 *   - the primary superblock: magic XFSB, version 4 or 5, sane and
 *     self-consistent geometry that fits the volume, not "in progress",
 *     v5 CRC correct, no unknown incompat feature, no needsrepair flag;
 *     on v4, no unknown versionnum/features2 bits;
 *   - the internal log is clean: its head (where the cycle numbers drop)
 *     directly follows a record that holds only an unmount record. An
 *     external log cannot be checked, so such a filesystem is read whole;
 *     a log that is not clean also sets info->needs_recovery;
 *   - each AGF: magic XAGF, version 1, its seqno, its AG's length, sane
 *     free list indexes, bnolevel 1..DV_XFS_MAXLEVELS, v5 UUID and CRC;
 *   - each btree block: magic, level, record count within the block, v5
 *     CRC, UUID, owner (the AG) and own address; every non-root block has
 *     records, so a block reached twice repeats records and is caught by
 *     the order check; no more blocks visited than the AG has;
 *   - records within the AG, clear of the AG headers and the internal log,
 *     sorted and not overlapping, node keys sorted;
 *   - the free blocks of each AG add up to its agf_freeblks.
 */
#include "probe_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DV_XFS_MAXLEVELS 9 /* XFS_BTREE_MAXLEVELS */
#define SB_CRC_OFF 224
#define AGF_CRC_OFF 216
#define SBLOCK_CRC_OFF 52 /* short-form btree block, v5 */
#define BBSIZE 512
#define LOG_MAGIC 0xfeedbabeu
#define LOG_HDR_CYCLE_SIZE 32768
#define LOG_UNMOUNT_TRANS 0x20

/* v5 incompat features that do not change where free space is kept:
 * ftype, sparse inodes, meta_uuid, bigtime, nrext64, exchange-range,
 * parent pointers. NEEDSREPAIR (0x10) gets its own reason. */
#define INCOMPAT_KNOWN (0x1u | 0x2u | 0x4u | 0x8u | 0x20u | 0x40u | 0x80u)
#define INCOMPAT_NEEDSREPAIR 0x10u
#define V4_FEATURES2_KNOWN (0x2u | 0x8u | 0x80u | 0x200u) /* lazysbcount, attr2, projid32, ftype */
#define FEATURES2_CRC 0x100u

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The CRC32c of buf[0..n) with the 4 bytes at crc_off taken as zero, as
 * XFS computes it; true when it equals the little-endian value stored there. */
static bool xfs_crc_ok(const uint8_t *buf, size_t n, size_t crc_off)
{
	static const uint8_t zero[4];
	uint32_t c = dv_crc32c_update(0xffffffffu, buf, crc_off);
	c = dv_crc32c_update(c, zero, 4);
	c = dv_crc32c_update(c, buf + crc_off + 4, n - crc_off - 4);
	return ~c == le32(buf + crc_off);
}


struct xfs {
	const struct dv_vol *vol;
	bool v5;
	uint32_t blocksize, sectsize, agblocks, agcount, agblklog, logblocks;
	uint64_t dblocks, logstart; /* logstart: linear block number, 0 when external */
	uint8_t uuid[16];           /* the metadata UUID (meta_uuid when that feature is on) */
	uint8_t *blk;               /* one block, per btree level */
	uint8_t *lvl[DV_XFS_MAXLEVELS];
	/* the AG being walked */
	uint32_t agno, aglen;
	uint64_t prev_end, freeblks, visited;
	bool any;
	char *why;
};

static bool fail(struct xfs *x, char *why)
{
	if (!x->why)
		x->why = why;
	else
		free(why);
	return false;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static const char *check_sb(struct xfs *x, const uint8_t *sb, uint64_t vol_size)
{
	if (be32(sb) != 0x58465342u)
		return "its superblock has no XFSB magic";
	unsigned ver = be16(sb + 100) & 0xf;
	if (ver != 4 && ver != 5)
		return "its superblock version is neither 4 nor 5";
	x->v5 = ver == 5;
	x->blocksize = be32(sb + 4);
	x->dblocks = be64(sb + 8);
	x->sectsize = be16(sb + 102);
	x->agblocks = be32(sb + 84);
	x->agcount = be32(sb + 88);
	x->logblocks = be32(sb + 96);
	x->agblklog = sb[124];
	if (x->blocksize < 512 || x->blocksize > 65536 || !is_pow2(x->blocksize) ||
	    sb[120] > 16 || (1u << sb[120]) != x->blocksize)
		return "its superblock gives an invalid block size";
	if (x->sectsize < 512 || x->sectsize > 32768 || !is_pow2(x->sectsize) || sb[121] > 15 ||
	    (1u << sb[121]) != x->sectsize ||
	    x->sectsize > x->blocksize)
		return "its superblock gives an invalid sector size";
	if (x->agblocks < 16 || x->agblocks > 0x7fffffffu || x->agblklog > 31 ||
	    (1ull << x->agblklog) < x->agblocks || (x->agblklog && (1ull << (x->agblklog - 1)) >= x->agblocks))
		return "its superblock gives an invalid allocation group size";
	if (!x->agcount || x->dblocks <= (uint64_t)(x->agcount - 1) * x->agblocks ||
	    x->dblocks > (uint64_t)x->agcount * x->agblocks)
		return "its superblock's block count does not match its allocation groups";
	if (x->dblocks > vol_size / x->blocksize)
		return "the filesystem is larger than its volume";
	if (sb[126])
		return "its superblock says mkfs did not finish (sb_inprogress)";
	if (x->v5) {
		if (!xfs_crc_ok(sb, x->sectsize, SB_CRC_OFF))
			return "its superblock's CRC is wrong";
		uint32_t inc = be32(sb + 216);
		if (inc & INCOMPAT_NEEDSREPAIR)
			return "it is marked as needing xfs_repair (incompat feature needsrepair)";
		if (inc & ~INCOMPAT_KNOWN)
			return "its superblock has an unknown incompatible feature flag";
		memcpy(x->uuid, sb + ((inc & 0x4u) ? 248 : 32), 16);
	} else {
		uint32_t f2 = be32(sb + 200);
		if ((be16(sb + 100) & 0x8000) && (f2 & ~V4_FEATURES2_KNOWN))
			return "its superblock has an unknown features2 flag";
	}
	uint64_t ls = be64(sb + 48);
	if (ls) {
		uint64_t agno = ls >> x->agblklog, agbno = ls & ((1ull << x->agblklog) - 1);
		if (agno >= x->agcount || agbno >= x->agblocks)
			return "its superblock puts the log outside the filesystem";
		x->logstart = agno * x->agblocks + agbno;
		if (!x->logblocks || x->logstart + x->logblocks > x->dblocks)
			return "its superblock puts the log outside the filesystem";
		if ((uint64_t)x->logblocks * x->blocksize > (2ull << 30))
			return "its superblock gives a log larger than XFS allows (2 GiB)";
	}
	return NULL;
}

/* The cycle number of log basic block b of buf. */
static uint32_t log_cycle(const uint8_t *b)
{
	return be32(b) == LOG_MAGIC ? be32(b + 4) : be32(b);
}

/*
 * Whether the internal log is clean. Reads the first word of every basic
 * block (the log is logblocks blocks, at most 2 GiB), finds the head where
 * the cycle number drops from C to C-1, and checks that the record just
 * before it holds one operation, an unmount record, and ends at the head.
 * Returns NULL when clean, or a reason.
 */
static const char *check_log(struct xfs *x)
{
	const uint64_t nbb = (uint64_t)x->logblocks * (x->blocksize / BBSIZE);
	const uint64_t base = x->logstart * x->blocksize;
	uint32_t *cyc = calloc(nbb ? nbb : 1, sizeof *cyc);
	uint8_t *buf = malloc(1 << 20);
	bool *hdr = calloc(nbb ? nbb : 1, 1);
	const char *why = NULL;
	struct dv_err e;
	if (!nbb || !cyc || !buf || !hdr) {
		why = "its log is too large to check";
		goto out;
	}
	for (uint64_t bb = 0; bb < nbb;) {
		uint64_t n = DV_MIN((uint64_t)(1 << 20) / BBSIZE, nbb - bb);
		if (dv_vol_read(x->vol, base + bb * BBSIZE, buf, n * BBSIZE, &e) < 0) {
			why = "its log cannot be read";
			goto out;
		}
		for (uint64_t i = 0; i < n; i++) {
			cyc[bb + i] = log_cycle(buf + i * BBSIZE);
			hdr[bb + i] = be32(buf + i * BBSIZE) == LOG_MAGIC;
		}
		bb += n;
	}
	uint32_t c = cyc[0];
	uint64_t head = 0;
	while (head < nbb && cyc[head] == c)
		head++;
	for (uint64_t i = head; i < nbb; i++)
		if (cyc[i] != c - 1) {
			why = "its log's cycle numbers do not show one head (it needs recovery)";
			goto out;
		}
	if (!c) {
		why = "its log was never written";
		goto out;
	}
	if (head == nbb)
		head = 0;
	/* the last record header before the head */
	uint64_t rec = head;
	for (uint64_t k = 0; k < nbb; k++) {
		rec = rec ? rec - 1 : nbb - 1;
		if (hdr[rec])
			break;
		if (k == nbb - 1) {
			why = "its log has no record header";
			goto out;
		}
	}
	uint8_t h[2 * BBSIZE];
	if (dv_vol_read(x->vol, base + rec * BBSIZE, h, BBSIZE, &e) < 0) {
		why = "its log cannot be read";
		goto out;
	}
	uint32_t version = be32(h + 8), len = be32(h + 12), ops = be32(h + 40), size = be32(h + 320);
	uint64_t hbbs = 1;
	if (version == 2 && size > LOG_HDR_CYCLE_SIZE)
		hbbs = (size + LOG_HDR_CYCLE_SIZE - 1) / LOG_HDR_CYCLE_SIZE;
	if ((version != 1 && version != 2) || len > (1u << 30) || be64(h + 16) != ((uint64_t)cyc[rec] << 32 | rec)) {
		why = "its last log record header is not valid (it needs recovery)";
		goto out;
	}
	uint64_t end = (rec + hbbs + (len + BBSIZE - 1) / BBSIZE) % nbb;
	if (end != head || ops != 1 || len < 12) {
		why = "its log does not end with an unmount record (it was not cleanly unmounted, or is mounted)";
		goto out;
	}
	/* the op header opens the record's first data block */
	if (dv_vol_read(x->vol, base + ((rec + hbbs) % nbb) * BBSIZE, h + BBSIZE, BBSIZE, &e) < 0) {
		why = "its log cannot be read";
		goto out;
	}
	if (!(h[BBSIZE + 9] & LOG_UNMOUNT_TRANS))
		why = "its log does not end with an unmount record (it was not cleanly unmounted, or is mounted)";
out:
	free(cyc);
	free(buf);
	free(hdr);
	return why;
}

/* Reads AG block agbno into b. */
static bool read_agblock(struct xfs *x, uint32_t agbno, uint8_t *b)
{
	struct dv_err e;
	uint64_t off = ((uint64_t)x->agno * x->agblocks + agbno) * x->blocksize;
	if (dv_vol_read(x->vol, off, b, x->blocksize, &e) < 0)
		return fail(x, dv_asprintf("block %lu of allocation group %lu cannot be read", (unsigned long)agbno,
					   (unsigned long)x->agno));
	return true;
}

/* A free extent found in a leaf: checked and appended. */
static bool take_rec(struct xfs *x, uint32_t start, uint32_t count, struct dv_ivl_list *runs)
{
	uint64_t s = start, n = count;
	uint64_t first_ok = (4ull * x->sectsize + x->blocksize - 1) / x->blocksize; /* past sb, AGF, AGI, AGFL */
	if (!n || s + n > x->aglen || s < first_ok)
		return fail(x, dv_asprintf("allocation group %lu has a free extent outside its usable blocks",
					   (unsigned long)x->agno));
	if (x->any && s < x->prev_end)
		return fail(x, dv_asprintf("allocation group %lu has free extents out of order or overlapping",
					   (unsigned long)x->agno));
	uint64_t abs = (uint64_t)x->agno * x->agblocks + s;
	if (x->logstart && abs < x->logstart + x->logblocks && x->logstart < abs + n)
		return fail(x, dv_asprintf("allocation group %lu has a free extent inside the log",
					   (unsigned long)x->agno));
	x->any = true;
	x->prev_end = s + n;
	x->freeblks += n;
	dv_ivl_add(runs, abs * x->blocksize, n * x->blocksize);
	return true;
}

/* Walks the subtree at agbno, expected at level; root: the AGF's root. */
static bool walk(struct xfs *x, uint32_t agbno, unsigned level, bool root, struct dv_ivl_list *runs)
{
	const unsigned long ag = x->agno;
	if (agbno == 0 || agbno >= x->aglen)
		return fail(x, dv_asprintf("allocation group %lu's free-space btree points outside it", ag));
	if (++x->visited > x->aglen)
		return fail(x, dv_asprintf("allocation group %lu's free-space btree has more blocks than the group",
					   ag));
	uint8_t *b = x->lvl[level];
	if (!read_agblock(x, agbno, b))
		return false;
	const size_t hdr = x->v5 ? 56 : 16;
	if (be32(b) != (x->v5 ? 0x41423342u : 0x41425442u))
		return fail(x, dv_asprintf("allocation group %lu has a free-space btree block without its magic", ag));
	if (x->v5) {
		if (!xfs_crc_ok(b, x->blocksize, SBLOCK_CRC_OFF))
			return fail(x, dv_asprintf("allocation group %lu has a free-space btree block with a wrong CRC",
						   ag));
		uint64_t daddr = ((uint64_t)x->agno * x->agblocks + agbno) * (x->blocksize / BBSIZE);
		if (be64(b + 16) != daddr || memcmp(b + 32, x->uuid, 16) || be32(b + 48) != x->agno)
			return fail(x, dv_asprintf("allocation group %lu has a free-space btree block that belongs "
						   "elsewhere (address, UUID or owner)",
						   ag));
	}
	unsigned lv = be16(b + 4), nrec = be16(b + 6);
	if (lv != level)
		return fail(x, dv_asprintf("allocation group %lu's free-space btree has a block at the wrong level",
					   ag));
	if (!nrec && !(root && level == 0))
		return fail(x, dv_asprintf("allocation group %lu's free-space btree has an empty block", ag));
	if (level == 0) {
		if (nrec > (x->blocksize - hdr) / 8)
			return fail(x, dv_asprintf("allocation group %lu has a free-space btree leaf with too many "
						   "records",
						   ag));
		for (unsigned i = 0; i < nrec; i++)
			if (!take_rec(x, be32(b + hdr + 8 * i), be32(b + hdr + 8 * i + 4), runs))
				return false;
		return true;
	}
	size_t maxr = (x->blocksize - hdr) / 12;
	if (nrec > maxr)
		return fail(x, dv_asprintf("allocation group %lu has a free-space btree node with too many keys", ag));
	for (unsigned i = 0; i < nrec; i++) {
		uint32_t key = be32(b + hdr + 8 * i);
		if (i && key <= be32(b + hdr + 8 * (i - 1)))
			return fail(x, dv_asprintf("allocation group %lu has a free-space btree node with keys out of "
						   "order",
						   ag));
		if (key < x->prev_end && x->any)
			return fail(x, dv_asprintf("allocation group %lu has free extents out of order", ag));
		uint32_t ptr = be32(b + hdr + maxr * 8 + 4 * i);
		if (!walk(x, ptr, level - 1, false, runs))
			return false;
	}
	return true;
}

static bool do_ag(struct xfs *x, uint32_t agno, struct dv_ivl_list *runs)
{
	struct dv_err e;
	const unsigned long ag = agno;
	x->agno = agno;
	x->aglen = agno == x->agcount - 1 ? (uint32_t)(x->dblocks - (uint64_t)agno * x->agblocks) : x->agblocks;
	x->prev_end = x->freeblks = x->visited = 0;
	x->any = false;
	uint8_t *agf = x->blk;
	if (dv_vol_read(x->vol, (uint64_t)agno * x->agblocks * x->blocksize + x->sectsize, agf, x->sectsize, &e) < 0)
		return fail(x, dv_asprintf("the AGF of allocation group %lu cannot be read", ag));
	if (be32(agf) != 0x58414746u)
		return fail(x, dv_asprintf("the AGF of allocation group %lu has no XAGF magic", ag));
	if (x->v5 && !xfs_crc_ok(agf, x->sectsize, AGF_CRC_OFF))
		return fail(x, dv_asprintf("the AGF of allocation group %lu has a wrong CRC", ag));
	if (x->v5 && memcmp(agf + 64, x->uuid, 16))
		return fail(x, dv_asprintf("the AGF of allocation group %lu has another filesystem's UUID", ag));
	if (be32(agf + 4) != 1 || be32(agf + 8) != agno || be32(agf + 12) != x->aglen)
		return fail(x, dv_asprintf("the AGF of allocation group %lu gives a wrong version, number or length",
					   ag));
	uint32_t root = be32(agf + 16), levels = be32(agf + 28), freeblks = be32(agf + 52);
	uint32_t flfirst = be32(agf + 40), fllast = be32(agf + 44), flcount = be32(agf + 48);
	uint32_t agfl_slots = (x->sectsize - (x->v5 ? 36 : 0)) / 4;
	if (flcount > agfl_slots || (flcount && (flfirst >= agfl_slots || fllast >= agfl_slots)))
		return fail(x, dv_asprintf("the AGF of allocation group %lu has an invalid free list", ag));
	if (!levels || levels > DV_XFS_MAXLEVELS)
		return fail(x, dv_asprintf("the AGF of allocation group %lu gives an invalid btree depth", ag));
	if (!walk(x, root, levels - 1, true, runs))
		return false;
	if (x->freeblks != freeblks)
		return fail(x, dv_asprintf("allocation group %lu's free-space btree holds %llu free blocks, its AGF "
					   "says %lu",
					   ag, (unsigned long long)x->freeblks, (unsigned long)freeblks));
	return true;
}

int dv_usedmap_xfs(const struct dv_vol *vol, struct dv_ext_info *info, struct dv_ivl_list *unused, char **why)
{
	memset(info, 0, sizeof *info);
	*why = NULL;
	struct xfs x = {.vol = vol};
	struct dv_ivl_list runs = {0};
	uint8_t sb[32768];
	struct dv_err e;
	int ret = -1;
	if (vol->size < 512 || dv_vol_read(vol, 0, sb, 512, &e) < 0) {
		*why = dv_strdup("its superblock cannot be read");
		return -1;
	}
	unsigned ss = be16(sb + 102);
	if (be32(sb) == 0x58465342u && ss > 512 && ss <= sizeof sb && is_pow2(ss) &&
	    (ss > vol->size || dv_vol_read(vol, 0, sb, ss, &e) < 0)) {
		*why = dv_strdup("its superblock cannot be read");
		return -1;
	}
	const char *bad = check_sb(&x, sb, vol->size);
	if (bad) {
		*why = dv_strdup(bad);
		return -1;
	}
	info->opened = true;
	info->fs_bytes = x.dblocks * x.blocksize;
	if (!x.logstart) {
		*why = dv_strdup("its log is on another device, so whether it is clean cannot be told");
		return -1;
	}
	bad = check_log(&x);
	if (bad) {
		info->needs_recovery = true;
		*why = dv_strdup(bad);
		return -1;
	}
	x.blk = dv_malloc(x.blocksize);
	for (unsigned i = 0; i < DV_XFS_MAXLEVELS; i++)
		x.lvl[i] = dv_malloc(x.blocksize);
	uint64_t total_free = 0;
	for (uint32_t ag = 0; ag < x.agcount; ag++) {
		if (!do_ag(&x, ag, &runs))
			goto out;
		total_free += x.freeblks;
	}
	info->has_used = true;
	info->used_bytes = (x.dblocks - total_free) * x.blocksize;
	for (size_t i = 0; i < runs.n; i++)
		dv_ivl_add(unused, runs.v[i].off, runs.v[i].len);
	ret = 0;
out:
	if (ret < 0)
		*why = x.why ? x.why : dv_strdup("its free-space btrees cannot be read");
	else
		free(x.why);
	free(x.blk);
	for (unsigned i = 0; i < DV_XFS_MAXLEVELS; i++)
		free(x.lvl[i]);
	dv_ivl_release(&runs);
	return ret;
}
