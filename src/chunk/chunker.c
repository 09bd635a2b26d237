#include <stdio.h>
#include "chunk.h"

#include <stdlib.h>
#include <string.h>

struct dv_chunker {
	uint64_t gear[256];
	uint64_t mask_small, mask_large; /* stricter before avg, looser after */
	uint32_t min, avg, max;
	uint32_t len; /* bytes of the current chunk seen so far */
	uint64_t h;
};

void dv_chunker_params_default(struct dv_chunker_params *p)
{
	memset(p, 0, sizeof *p);
	p->min = DV_CHUNK_MIN_DEFAULT;
	p->avg = DV_CHUNK_AVG_DEFAULT;
	p->max = DV_CHUNK_MAX_DEFAULT;
}

static unsigned log2u(uint32_t v)
{
	unsigned b = 0;
	while (v > 1) {
		v >>= 1;
		b++;
	}
	return b;
}

int dv_chunker_params_check(const struct dv_chunker_params *p, struct dv_err *err)
{
	if (p->avg < 1024 || (p->avg & (p->avg - 1)))
		return dv_error(err, DV_E_USAGE, "chunker: average size %u is not a power of two >= 1024", p->avg);
	if (p->min < 64 || p->min >= p->avg || p->max <= p->avg)
		return dv_error(err, DV_E_USAGE, "chunker: sizes must satisfy 64 <= min < avg < max (got %u/%u/%u)",
				p->min, p->avg, p->max);
	if (p->max > DV_CHUNK_SIZE_LIMIT)
		return dv_error(err, DV_E_USAGE, "chunker: maximum size %u exceeds the limit of %u", p->max,
				DV_CHUNK_SIZE_LIMIT);
	return 0;
}

static uint64_t high_bits(unsigned n) { return n == 0 ? 0 : ~UINT64_C(0) << (64 - n); }

struct dv_chunker *dv_chunker_new(const struct dv_chunker_params *p)
{
	struct dv_chunker *c = dv_calloc(1, sizeof *c);
	uint8_t in[36];
	memcpy(in, p->seed, 32);
	for (uint32_t i = 0; i < 256; i++) {
		struct dv_id d;
		in[32] = (uint8_t)i;
		in[33] = in[34] = in[35] = 0;
		dv_sha256(in, sizeof in, &d);
		c->gear[i] = dv_le64(d.b);
	}
	unsigned bits = log2u(p->avg);
	c->mask_small = high_bits(bits + 2);
	c->mask_large = high_bits(bits - 2);
	c->min = p->min;
	c->avg = p->avg;
	c->max = p->max;
	return c;
}

void dv_chunker_free(struct dv_chunker *c) { free(c); }

void dv_chunker_reset(struct dv_chunker *c)
{
	c->len = 0;
	c->h = 0;
}

/* Hashes p[*i..end) under mask; returns the cut position (index + 1) or 0. */
static inline size_t scan_phase(struct dv_chunker *c, const uint8_t *p, size_t *i, size_t end, uint64_t mask)
{
	uint64_t h = c->h;
	size_t start = *i;
	for (size_t k = start; k < end; k++) {
		h = (h << 1) + c->gear[p[k]];
		if (!(h & mask)) {
			dv_chunker_reset(c);
			return k + 1;
		}
	}
	c->h = h;
	c->len += (uint32_t)(end - start);
	*i = end;
	return 0;
}

size_t dv_chunker_scan(struct dv_chunker *c, const uint8_t *p, size_t n)
{
	size_t i = 0, cut;
	/* Below min nothing is tested; the hash starts fresh at min. */
	if (c->len < c->min) {
		size_t skip = DV_MIN((size_t)(c->min - c->len), n);
		c->len += (uint32_t)skip;
		i = skip;
	}
	/* Phase 1: min <= len < avg, strict mask. */
	if (i < n && c->len < c->avg &&
	    (cut = scan_phase(c, p, &i, DV_MIN(n, i + (size_t)(c->avg - c->len)), c->mask_small)))
		return cut;
	/* Phase 2: avg <= len < max, loose mask; cut at max. */
	if (i < n) {
		if ((cut = scan_phase(c, p, &i, DV_MIN(n, i + (size_t)(c->max - c->len)), c->mask_large)))
			return cut;
		if (c->len >= c->max) {
			dv_chunker_reset(c);
			return i;
		}
	}
	return 0;
}
