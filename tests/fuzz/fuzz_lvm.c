/*
 * libFuzzer targets for LVM2 and md RAID (src/disk/lvm.c, md.c):
 *   1 lvm_metadata  the metadata text parser (dv_lvm_parse)
 *   2 lvm_pv        a PV's label, PV header and metadata areas
 *                   (dv_lvm_pv_read), the input being the PV's first bytes
 *                   of a 1 MiB PV (the rest zeros)
 *   3 md            md superblocks (dv_md_read) on a member that is the
 *                   input itself
 * Invariants of a parsed VG: every LV's segments are contiguous from 0,
 * every stripe lies inside its PV, striped segments divide evenly.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "disk/lvm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) ((cond) ? (void)0 : abort())

static void check_vg(const struct dv_lvm_vg *vg) __attribute__((unused));
static void check_vg(const struct dv_lvm_vg *vg)
{
	for (size_t i = 0; i < vg->nlvs; i++) {
		const struct dv_lvm_lv *lv = &vg->lvs[i];
		uint64_t next = 0;
		for (size_t j = 0; j < lv->nsegs; j++) {
			const struct dv_lvm_seg *g = &lv->segs[j];
			CHECK(g->start_extent == next && g->extent_count > 0);
			next += g->extent_count;
			for (uint32_t k = 0; k < g->stripe_count; k++) {
				CHECK(g->extent_count % g->stripe_count == 0);
				CHECK(g->stripes[k].pv < vg->npvs);
				CHECK(g->stripes[k].extent + g->extent_count / g->stripe_count <=
				      vg->pvs[g->stripes[k].pv].pe_count);
			}
		}
		CHECK(next == lv->extents);
	}
}

static int memfd_of(const uint8_t *data, size_t size, uint64_t total) __attribute__((unused));
static int memfd_of(const uint8_t *data, size_t size, uint64_t total)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)total) == 0);
	CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *why = NULL;
#if DV_FUZZ_TARGET == 1
	struct dv_lvm_vg *vg = dv_lvm_parse((const char *)data, size, &why);
	CHECK(vg || why);
	if (vg)
		check_vg(vg);
	dv_lvm_vg_free(vg);
#elif DV_FUZZ_TARGET == 2
	const uint64_t total = 1 << 20;
	if (size > total)
		return 0;
	int fd = memfd_of(data, size, total);
	struct dv_source src = {.fd = fd, .path = "pv", .size = total, .sector_size = 512};
	struct dv_vol v;
	dv_vol_range(&v, &src, 0, total, "PV");
	struct dv_lvm_pv_label lab;
	char *note = NULL;
	if (dv_lvm_pv_read(&v, &lab, &why, &note) == 0) {
		CHECK(lab.mda_ok <= lab.nmda);
		if (lab.text) {
			struct dv_lvm_vg *vg = dv_lvm_parse(lab.text, lab.text_len, &why);
			if (vg)
				check_vg(vg);
			dv_lvm_vg_free(vg);
		}
		dv_lvm_pv_label_release(&lab);
	} else {
		CHECK(why);
	}
	free(note);
	dv_vol_release(&v);
	close(fd);
#elif DV_FUZZ_TARGET == 3
	size_t total = size & ~(size_t)511;
	if (!total)
		return 0;
	int fd = memfd_of(data, total, total);
	struct dv_source src = {.fd = fd, .path = "md", .size = total, .sector_size = 512};
	struct dv_vol v;
	dv_vol_range(&v, &src, 0, total, "member");
	struct dv_md_info md;
	int r = dv_md_read(&v, &md, &why);
	if (r == 0)
		CHECK(md.data_off <= total && md.size <= total - md.data_off);
	else if (r < 0)
		CHECK(why);
	dv_vol_release(&v);
	close(fd);
#else
#error "DV_FUZZ_TARGET must select a parser"
#endif
	free(why);
	return 0;
}
