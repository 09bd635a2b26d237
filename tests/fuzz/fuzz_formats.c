/*
 * libFuzzer targets for every parser of repository data. One source, one
 * binary per target: DV_FUZZ_TARGET selects the parser at compile time
 * (tests/CMakeLists.txt builds fuzz_index_segment, fuzz_disk_index,
 * fuzz_pack_index, fuzz_manifest, fuzz_config, fuzz_sealed, and for the
 * disk probe's parsers of what is on a source disk: fuzz_initramfs,
 * fuzz_fat, fuzz_elf, fuzz_ntfs).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crypt/crypt.h"
#include "disk/probe_internal.h"
#include "repo/repo_internal.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if DV_FUZZ_TARGET == 7
struct membuf {
	const uint8_t *p;
	size_t n;
};

static ssize_t mem_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	const struct membuf *m = ctx;
	if (off >= m->n)
		return 0;
	if (n > m->n - off)
		n = m->n - (size_t)off;
	memcpy(buf, m->p + off, n);
	return (ssize_t)n;
}
#endif

#if DV_FUZZ_TARGET == 10
#include <sys/stat.h> /* before ntfs-3g's headers, which otherwise define struct timespec */

#include <ntfs-3g/types.h>
#include <ntfs-3g/volume.h>
#include <ntfs-3g/unistr.h>

/*
 * An NTFS volume is at least 1 MiB and its $UpCase alone is 128 KiB, so the
 * ntfs target's input is a sparse image: le32 image size (at most 4 MiB),
 * then records of le32 offset, le32 length, u8 kind: 0 = length bytes of
 * data follow, 1 = one byte follows and fills the range, 2 = the default
 * upcase table (128 KiB, libntfs-3g's ntfs_upcase_table_build) is written
 * there. The rest is zeros; writes are cut at the image's end.
 * tests/fuzz/ntfs_seed.py turns a small mkntfs image into a seed.
 */
static void put(uint8_t *img, size_t size, uint64_t off, const uint8_t *src, uint64_t n, int fill)
{
	if (off >= size)
		return;
	if (n > size - off)
		n = size - off;
	if (src)
		memcpy(img + off, src, n);
	else
		memset(img + off, fill, n);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dv_err err;
#if DV_FUZZ_TARGET == 1
	struct dv_index_segment s;
	if (dv_index_segment_decode(data, size, &s, "fuzz", &err) == 0)
		dv_index_segment_release(&s);
#elif DV_FUZZ_TARGET == 2
	struct dv_disk_index d;
	if (dv_disk_index_decode(data, size, &d, "fuzz", &err) == 0) {
		uint64_t sum = 0;
		for (size_t i = 0; i < d.n; i++)
			sum += d.v[i].length;
		if (sum != d.disk_size)
			abort(); /* a decoded index must cover the disk exactly */
		dv_disk_index_release(&d);
	}
#elif DV_FUZZ_TARGET == 3
	struct dv_pack_entry *e;
	size_t n;
	if (dv_pack_index_decode(data, size, &e, &n, "fuzz", &err) == 0)
		free(e);
#elif DV_FUZZ_TARGET == 4
	json_t *m;
	if (dv_manifest_parse(data, size, &m, "fuzz", &err) == 0)
		json_decref(m);
#elif DV_FUZZ_TARGET == 5
	static struct dv_store *store;
	if (!store && dv_store_open("/tmp", false, &store, &err) < 0)
		abort();
	struct dv_repo r;
	memset(&r, 0, sizeof r);
	r.store = store;
	(void)dv_repo_parse_config(&r, data, size, &err);
	json_decref(r.config);
#elif DV_FUZZ_TARGET == 6
	static const uint8_t key[32] = {1, 2, 3};
	struct dv_buf out = DV_BUF_INIT;
	(void)dv_crypt_open(key, "snapshots", 9, data, size, &out, "fuzz", &err);
	dv_buf_release(&out);
#elif DV_FUZZ_TARGET == 7
	struct membuf m = {data, size};
	struct dv_initramfs_result res;
	(void)dv_initramfs_scan(mem_read, &m, size, &res);
	(void)err;
#elif DV_FUZZ_TARGET == 8
	/* a FAT filesystem as a whole-disk source, in a memfd */
	static int fd = -1;
	if (fd < 0 && (fd = memfd_create("fat", 0)) < 0)
		abort();
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	struct dv_source src = {.fd = fd, .path = "fuzz", .size = size, .sector_size = 512};
	struct dv_ext_info info;
	struct dv_ivl_list unused = {0};
	char *why = NULL;
	struct dv_vol vol;
	dv_vol_range(&vol, &src, 0, size, "fuzz");
	if (dv_usedmap_fat(&vol, &info, &unused, &why) == 0) {
		for (size_t i = 0; i < unused.n; i++)
			if (unused.v[i].off + unused.v[i].len > size)
				abort(); /* free space past the filesystem */
	}
	free(why);
	dv_vol_release(&vol);
	dv_ivl_release(&unused);
	(void)err;
#elif DV_FUZZ_TARGET == 9
	(void)dv_elf_arch(data, size);
	(void)err;
#elif DV_FUZZ_TARGET == 10
	/* an NTFS filesystem (sparse image, above) as a whole-disk source */
	static int fd = -1;
	static uint8_t *img, *upcase;
	enum { MAX = 4 << 20, UPCASE = 65536 * 2 };
	if (fd < 0) {
		if ((fd = memfd_create("ntfs", 0)) < 0 || !(img = malloc(MAX)) || !(upcase = malloc(UPCASE)))
			abort();
		ntfs_upcase_table_build((ntfschar *)upcase, UPCASE);
	}
	if (size < 4)
		return 0;
	uint32_t isize = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
	if (isize > MAX)
		isize = MAX;
	memset(img, 0, isize);
	for (size_t p = 4; p + 9 <= size;) {
		const uint8_t *r = data + p;
		uint64_t off = (uint32_t)r[0] | (uint32_t)r[1] << 8 | (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24;
		uint64_t len = (uint32_t)r[4] | (uint32_t)r[5] << 8 | (uint32_t)r[6] << 16 | (uint32_t)r[7] << 24;
		p += 9;
		if (r[8] == 0) {
			if (len > size - p)
				len = size - p;
			put(img, isize, off, data + p, len, 0);
			p += len;
		} else if (r[8] == 1) {
			if (p >= size)
				break;
			put(img, isize, off, NULL, len, data[p++]);
		} else {
			put(img, isize, off, upcase, UPCASE, 0);
		}
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, img, isize, 0) != (ssize_t)isize)
		abort();
	struct dv_source src = {.fd = fd, .path = "fuzz", .size = isize, .sector_size = 512};
	struct dv_ext_info info;
	struct dv_ivl_list unused = {0};
	char *why = NULL;
	struct dv_vol vol;
	dv_vol_range(&vol, &src, 0, isize, "fuzz");
	if (dv_usedmap_ntfs(&vol, &info, &unused, &why) == 0) {
		for (size_t i = 0; i < unused.n; i++)
			if (unused.v[i].off + unused.v[i].len > isize || unused.v[i].off < 512)
				abort(); /* free space past the filesystem, or the boot sector */
	} else if (!why || unused.n) {
		abort(); /* refused without a reason, or with ranges */
	}
	free(why);
	dv_vol_release(&vol);
	dv_ivl_release(&unused);
	(void)err;
#else
#error "DV_FUZZ_TARGET must select a parser"
#endif
	return 0;
}
