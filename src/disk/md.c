/*
 * md.c - Linux md RAID superblocks (lvm.h, dv_md_read).
 *
 * 1.x (little-endian, struct mdp_superblock_1 of the kernel's md_p.h):
 *   0 magic 0xa92b4efc  4 major_version (1)  8 feature_map  16 set_uuid[16]
 *   32 set_name[32]  72 level (s32)  80 size (sectors per member)
 *   92 raid_disks  128 data_offset  136 data_size  144 super_offset
 *   (sectors)  216 sb_csum  220 max_dev  256 dev_roles[max_dev] (u16)
 *   The checksum is the sum of the little-endian 32-bit words of the first
 *   256 + 2 * max_dev bytes (sb_csum counted as 0), folded to 32 bits.
 *   1.1 lies at byte 0, 1.2 at 4 KiB, 1.0 at ((sectors - 16) & ~7) sectors.
 * 0.90 (host-endian 32-bit words; little-endian here, as on x86 and arm64):
 *   4096 bytes at ((sectors & ~127) - 128) sectors. Words: 0 magic,
 *   1 major (0), 2 minor (90), 5 uuid0, 7 level, 8 size (KiB), 10 raid_disks,
 *   13-15 uuid1-3, 38 sb_csum (sum of the 1024 words, folded). Data at 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk/lvm.h"

#define MD_MAGIC 0xa92b4efcu
#define MD_FEATURE_RESHAPE_ACTIVE 4u

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint32_t fold_sum(const uint8_t *b, size_t n, size_t skip)
{
	uint64_t s = 0;
	for (size_t i = 0; i + 4 <= n; i += 4)
		if (i != skip)
			s += le32(b + i);
	if (n % 4 == 2)
		s += (uint32_t)b[n - 2] | (uint32_t)b[n - 1] << 8;
	return (uint32_t)((s & 0xffffffffu) + (s >> 32));
}

static int try_v1(const struct dv_vol *m, uint64_t at, const char *ver, struct dv_md_info *out, char **why)
{
	uint8_t b[1024];
	struct dv_err e;
	if (at > m->size || m->size - at < sizeof b || dv_vol_read(m, at, b, sizeof b, &e) < 0)
		return 1;
	if (le32(b) != MD_MAGIC)
		return 1;
	if (le32(b + 4) != 1) {
		*why = dv_asprintf("its md superblock (%s) has major version %u", ver, le32(b + 4));
		return -1;
	}
	uint32_t max_dev = le32(b + 220);
	if (max_dev > (sizeof b - 256) / 2) {
		*why = dv_asprintf("its md superblock (%s) lists %u devices, more than read", ver, max_dev);
		return -1;
	}
	if (fold_sum(b, 256 + 2 * (size_t)max_dev, 216) != le32(b + 216)) {
		*why = dv_asprintf("its md superblock (%s) fails its checksum", ver);
		return -1;
	}
	if (le64(b + 144) * 512 != at) {
		*why = dv_asprintf("its md superblock (%s) is not where it says it is", ver);
		return -1;
	}
	snprintf(out->metadata, sizeof out->metadata, "%s", ver);
	out->level = (int32_t)le32(b + 72);
	const uint8_t *u = b + 16;
	snprintf(out->uuid, sizeof out->uuid, "%02x%02x%02x%02x:%02x%02x%02x%02x:%02x%02x%02x%02x:%02x%02x%02x%02x", u[0],
		 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
	size_t k = 0;
	for (; k < 32 && k < sizeof out->name - 1 && b[32 + k]; k++)
		out->name[k] = (b[32 + k] >= 0x20 && b[32 + k] < 0x7f) ? (char)b[32 + k] : '?';
	out->name[k] = 0;
	out->sb_off = at;
	out->raid_disks = le32(b + 92);
	uint64_t doff = le64(b + 128), size = le64(b + 80);
	if (doff > m->size / 512 || size > m->size / 512 - doff) {
		*why = dv_asprintf("its md superblock (%s) puts the data (%llu sectors at sector %llu) past the end of "
				   "the member",
				   ver, (unsigned long long)size, (unsigned long long)doff);
		return -1;
	}
	out->data_off = doff * 512;
	out->size = size * 512;
	/* the data must not cover the superblock */
	if (at < out->data_off + out->size && at + 4096 > out->data_off) {
		*why = dv_asprintf("its md superblock (%s) lies inside its own data area", ver);
		return -1;
	}
	if (le32(b + 8) & MD_FEATURE_RESHAPE_ACTIVE) {
		*why = dv_asprintf("its md array (%s) is being reshaped", ver);
		return -1;
	}
	return 0;
}

static int try_v090(const struct dv_vol *m, struct dv_md_info *out, char **why)
{
	uint64_t sectors = m->size / 512;
	if (sectors < 256)
		return 1;
	uint64_t at = ((sectors & ~127ull) - 128) * 512;
	uint8_t *b = dv_malloc(4096);
	struct dv_err e;
	int r = 1;
	if (dv_vol_read(m, at, b, 4096, &e) < 0 || le32(b) != MD_MAGIC)
		goto out;
	r = -1;
	if (le32(b + 4) != 0 || le32(b + 8) != 90) {
		*why = dv_asprintf("its md superblock (0.90 place) has version %u.%u", le32(b + 4), le32(b + 8));
		goto out;
	}
	if (fold_sum(b, 4096, 38 * 4) != le32(b + 38 * 4)) {
		*why = dv_strdup("its md superblock (0.90) fails its checksum");
		goto out;
	}
	snprintf(out->metadata, sizeof out->metadata, "0.90");
	out->level = (int32_t)le32(b + 7 * 4);
	snprintf(out->uuid, sizeof out->uuid, "%08x:%08x:%08x:%08x", le32(b + 5 * 4), le32(b + 13 * 4), le32(b + 14 * 4),
		 le32(b + 15 * 4));
	out->name[0] = 0;
	out->sb_off = at;
	out->data_off = 0;
	out->raid_disks = le32(b + 10 * 4);
	out->size = (uint64_t)le32(b + 8 * 4) * 1024;
	if (out->size > at) {
		*why = dv_strdup("its md superblock (0.90) gives a size past the superblock");
		goto out;
	}
	r = 0;
out:
	free(b);
	return r;
}

int dv_md_read(const struct dv_vol *m, struct dv_md_info *out, char **why)
{
	memset(out, 0, sizeof *out);
	*why = NULL;
	int r = try_v1(m, 0, "1.1", out, why);
	if (r != 1)
		return r;
	r = try_v1(m, 4096, "1.2", out, why);
	if (r != 1)
		return r;
	uint64_t sectors = m->size / 512;
	if (sectors >= 16) {
		r = try_v1(m, ((sectors - 16) & ~7ull) * 512, "1.0", out, why);
		if (r != 1)
			return r;
	}
	return try_v090(m, out, why);
}
