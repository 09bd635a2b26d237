/*
 * volume.c - piece maps: reading a volume, and mapping its ranges back to
 * the disks it lies on (volume.h).
 */
#include "disk/volume.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_internal.h"

static void vname(struct dv_vol *v, const char *fmt, va_list ap) DV_PRINTF(2, 0);
static void vname(struct dv_vol *v, const char *fmt, va_list ap)
{
	vsnprintf(v->name, sizeof v->name, fmt, ap);
}

void dv_vol_init(struct dv_vol *v, const char *fmt, ...)
{
	memset(v, 0, sizeof *v);
	va_list ap;
	va_start(ap, fmt);
	vname(v, fmt, ap);
	va_end(ap);
}

static struct dv_vol_seg *new_seg(struct dv_vol *v, uint64_t len)
{
	if (v->nsegs == v->cap) {
		v->cap = v->cap ? 2 * v->cap : 4;
		v->segs = dv_realloc(v->segs, v->cap * sizeof *v->segs);
	}
	struct dv_vol_seg *s = &v->segs[v->nsegs++];
	memset(s, 0, sizeof *s);
	s->vol_off = v->size;
	s->len = len;
	v->size += len;
	return s;
}

void dv_vol_add_linear(struct dv_vol *v, const struct dv_source *src, uint64_t off, uint64_t len)
{
	if (!len)
		return;
	struct dv_vol_seg *s = new_seg(v, len);
	s->nareas = 1;
	s->areas = dv_calloc(1, sizeof *s->areas);
	s->areas[0] = (struct dv_vol_area){src, off};
}

int dv_vol_add_striped(struct dv_vol *v, const struct dv_vol_area *areas, uint32_t nareas, uint64_t stripe_size,
		       uint64_t len)
{
	if (!nareas || !stripe_size || stripe_size > UINT64_MAX / nareas || len % (stripe_size * nareas))
		return -1;
	if (nareas == 1) {
		dv_vol_add_linear(v, areas[0].src, areas[0].off, len);
		return 0;
	}
	if (!len)
		return 0;
	struct dv_vol_seg *s = new_seg(v, len);
	s->nareas = nareas;
	s->stripe_size = stripe_size;
	s->areas = dv_calloc(nareas, sizeof *s->areas);
	memcpy(s->areas, areas, nareas * sizeof *areas);
	return 0;
}

void dv_vol_range(struct dv_vol *v, const struct dv_source *src, uint64_t off, uint64_t len, const char *fmt, ...)
{
	memset(v, 0, sizeof *v);
	va_list ap;
	va_start(ap, fmt);
	vname(v, fmt, ap);
	va_end(ap);
	dv_vol_add_linear(v, src, off, len);
}

void dv_vol_release(struct dv_vol *v)
{
	for (size_t i = 0; i < v->nsegs; i++)
		free(v->segs[i].areas);
	free(v->segs);
	v->segs = NULL;
	v->nsegs = v->cap = 0;
	v->size = 0;
}

/* The segment holding volume byte off (off < v->size). */
static const struct dv_vol_seg *seg_at(const struct dv_vol *v, uint64_t off)
{
	size_t lo = 0, hi = v->nsegs;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->segs[mid].vol_off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return &v->segs[lo];
}

/*
 * Where byte rel of segment s lies: its area and the offset on that area's
 * disk; *run is how many bytes from there stay contiguous on that disk
 * (to the end of the stripe or segment).
 */
static const struct dv_vol_area *locate(const struct dv_vol_seg *s, uint64_t rel, uint64_t *disk_off, uint64_t *run)
{
	if (s->nareas == 1) {
		*disk_off = s->areas[0].off + rel;
		*run = s->len - rel;
		return &s->areas[0];
	}
	uint64_t stripe = rel / s->stripe_size, in = rel % s->stripe_size;
	const struct dv_vol_area *a = &s->areas[stripe % s->nareas];
	*disk_off = a->off + (stripe / s->nareas) * s->stripe_size + in;
	*run = s->stripe_size - in;
	return a;
}

const struct dv_source *dv_vol_locate(const struct dv_vol *v, uint64_t off, uint64_t *disk_off, uint64_t *run)
{
	const struct dv_vol_seg *s = seg_at(v, off);
	return locate(s, off - s->vol_off, disk_off, run)->src;
}

int dv_vol_read(const struct dv_vol *v, uint64_t off, void *buf, size_t n, struct dv_err *err)
{
	if (off > v->size || n > v->size - off)
		return dv_error(err, DV_E_CORRUPT, "a read of %zu bytes at byte %llu reads past the end of %s (%llu bytes)",
				n, (unsigned long long)off, v->name, (unsigned long long)v->size);
	uint8_t *p = buf;
	while (n) {
		const struct dv_vol_seg *s = seg_at(v, off);
		uint64_t doff, run;
		const struct dv_vol_area *a = locate(s, off - s->vol_off, &doff, &run);
		size_t k = (size_t)DV_MIN((uint64_t)n, run);
		int r = dv_source_read(a->src, doff, p, k, err);
		if (r < 0)
			return r;
		p += k;
		off += k;
		n -= k;
	}
	return 0;
}

void dv_vol_to_disk(const struct dv_vol *v, const struct dv_source *src, const struct dv_ivl_list *in,
		    struct dv_ivl_list *out)
{
	for (size_t i = 0; i < in->n; i++) {
		uint64_t off = in->v[i].off, end = in->v[i].off + in->v[i].len;
		if (off >= v->size)
			continue;
		end = DV_MIN(end, v->size);
		while (off < end) {
			const struct dv_vol_seg *s = seg_at(v, off);
			uint64_t doff, run;
			const struct dv_vol_area *a = locate(s, off - s->vol_off, &doff, &run);
			uint64_t k = DV_MIN(end - off, run);
			if (a->src == src)
				dv_ivl_add(out, doff, k);
			off += k;
		}
	}
}
