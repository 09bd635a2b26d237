/*
 * libFuzzer targets for every parser of repository data. One source, one
 * binary per target: DV_FUZZ_TARGET selects the parser at compile time
 * (tests/CMakeLists.txt builds fuzz_index_segment, fuzz_disk_index,
 * fuzz_pack_index, fuzz_manifest, fuzz_config, fuzz_sealed, and for the
 * disk probe's parsers of what is on a source disk: fuzz_initramfs,
 * fuzz_fat, fuzz_elf, fuzz_xfs).
 *
 * fuzz_xfs input: a sparse volume, as a 4-byte big-endian size in KiB
 * (capped at 256 MiB) then pieces [8-byte big-endian offset][2-byte
 * big-endian length][bytes] written over zeros; the seeds are the sectors
 * xfs.c reads of small real filesystems (made by tests/fuzz/mkseed_xfs.py:
 * v4, v5, and a v5 with a two-level free-space btree).
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
	static int fd = -1;
	if (fd < 0 && (fd = memfd_create("xfs", 0)) < 0)
		abort();
	if (size < 4)
		return 0;
	uint64_t vsize = ((uint64_t)data[0] << 24 | (uint64_t)data[1] << 16 | (uint64_t)data[2] << 8 | data[3]) * 1024;
	if (vsize > 256u << 20)
		vsize = 256u << 20;
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)vsize) < 0)
		abort();
	for (size_t i = 4; i + 10 <= size;) {
		uint64_t off = 0;
		for (int k = 0; k < 8; k++)
			off = off << 8 | data[i + k];
		size_t n = (size_t)data[i + 8] << 8 | data[i + 9];
		i += 10;
		if (n > size - i)
			n = size - i;
		if (off < vsize && n) {
			size_t w = off + n > vsize ? (size_t)(vsize - off) : n;
			if (pwrite(fd, data + i, w, (off_t)off) != (ssize_t)w)
				abort();
		}
		i += n;
	}
	struct dv_source src = {.fd = fd, .path = "fuzz", .size = vsize, .sector_size = 512};
	struct dv_ext_info info;
	struct dv_ivl_list unused = {0};
	char *why = NULL;
	struct dv_vol vol;
	dv_vol_range(&vol, &src, 0, vsize, "fuzz");
	int r = dv_usedmap_xfs(&vol, &info, &unused, &why);
	if ((r == 0) != (why == NULL))
		abort(); /* a reason exactly when read whole */
	for (size_t i = 0; i < unused.n; i++)
		if (unused.v[i].off + unused.v[i].len > vsize || (r && unused.n))
			abort(); /* free space past the volume, or a map with a refusal */
	free(why);
	dv_vol_release(&vol);
	dv_ivl_release(&unused);
	(void)err;
#else
#error "DV_FUZZ_TARGET must select a parser"
#endif
	return 0;
}
