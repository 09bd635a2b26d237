/*
 * libFuzzer target for the source-disk probe (fuzz_disk_image): libblkid's
 * partition-table and filesystem probing through src/disk/probe.c and the
 * ext2/3/4 block bitmaps through src/disk/usedmap.c (libext2fs).
 *
 * The input is the beginning of a DISK_SIZE disk image; the rest reads as
 * zeros (a sparse memfd, probed by its /proc/self/fd path as a source
 * file). Partition tables, superblocks, group descriptors and bitmaps of
 * small filesystems all sit near the start, so seeds stay a few KiB (the
 * GPT backup header at the end is absent: libblkid then trusts the primary
 * one, as it does on a disk cut short).
 *
 * Invariants checked on every successful probe: the region map covers the
 * disk exactly, in order, merged, with no UNUSED run shorter than
 * DV_DISK_MIN_UNUSED_RUN; with a partition table the table areas at both
 * ends are READ; every UNUSED byte lies inside a partition (or the whole-
 * disk filesystem) that carries a filesystem; layout["bytes_unused"] agrees.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "disk/disk.h"
#include "disk/probe.h"

#define DISK_SIZE (4u << 20)
#define TABLE_AREA (1u << 20)  /* as in probe.c */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) ((cond) ? (void)0 : abort())

/* [off, off+len) inside a partition of the layout that has a filesystem
 * (or, without a table, the disk carries one). */
static bool inside_fs(json_t *layout, uint64_t off, uint64_t len)
{
	if (!strcmp(json_string_value(json_object_get(layout, "table")), "none"))
		return json_is_object(json_object_get(layout, "filesystem"));
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(layout, "partitions"), i, p)
	{
		uint64_t s = (uint64_t)json_integer_value(json_object_get(p, "start"));
		uint64_t z = (uint64_t)json_integer_value(json_object_get(p, "size"));
		if (json_is_object(json_object_get(p, "fs")) && off >= s && off + len <= s + z)
			return true;
	}
	return false;
}

static void check(json_t *layout, const struct dv_region_map *m, uint64_t disk)
{
	CHECK(json_is_object(layout) && m->n > 0);
	CHECK((uint64_t)json_integer_value(json_object_get(layout, "size")) == disk);
	bool table = strcmp(json_string_value(json_object_get(layout, "table")), "none") != 0;
	uint64_t pos = 0, unused = 0;
	for (size_t i = 0; i < m->n; i++) {
		const struct dv_region *r = &m->v[i];
		CHECK(r->off == pos && r->len > 0 && r->len <= disk - pos);
		CHECK(r->kind == DV_REGION_READ || r->kind == DV_REGION_UNUSED);
		CHECK(i == 0 || r->kind != m->v[i - 1].kind);
		if (r->kind == DV_REGION_UNUSED) {
			CHECK(r->len >= DV_DISK_MIN_UNUSED_RUN);
			CHECK(!table || (r->off >= TABLE_AREA && r->off + r->len <= disk - TABLE_AREA));
			CHECK(inside_fs(layout, r->off, r->len));
			unused += r->len;
		}
		pos += r->len;
	}
	CHECK(pos == disk);
	CHECK((uint64_t)json_integer_value(json_object_get(layout, "bytes_unused")) == unused);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("dv-fuzz-disk", MFD_CLOEXEC);
		CHECK(fd >= 0);
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (size > DISK_SIZE)
		size = DISK_SIZE;
	CHECK(ftruncate(fd, 0) == 0 && ftruncate(fd, DISK_SIZE) == 0);
	CHECK(size == 0 || pwrite(fd, data, size, 0) == (ssize_t)size);

	struct dv_err err;
	struct dv_source src;
	CHECK(dv_source_open(path, &src, &err) == 0 && src.size == DISK_SIZE);
	json_t *layout = NULL;
	struct dv_region_map regions = {0};
	/* allow_mounted: a journal that needs recovery is read whole rather
	 * than refused, so the probe goes on to the bitmaps */
	if (dv_disk_probe(&src, false, true, &layout, &regions, &err) == 0) {
		check(layout, &regions, src.size);
		json_decref(layout);
	} else {
		CHECK(!layout && regions.n == 0);
	}
	dv_region_map_release(&regions);
	dv_source_close(&src);
	return 0;
}
