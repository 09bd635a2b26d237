#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dv_buf_release(struct dv_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void dv_buf_reset(struct dv_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = 0;
}

void dv_buf_reserve(struct dv_buf *b, size_t extra)
{
	if (extra > SIZE_MAX / 2 - b->len)
		DV_BUG("buffer size overflow");
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->data = dv_realloc(b->data, cap);
	b->cap = cap;
}

void dv_buf_add(struct dv_buf *b, const void *p, size_t n)
{
	dv_buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
}

void dv_buf_addf(struct dv_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		DV_BUG("bad format %s", fmt);
	dv_buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void dv_buf_add_le16(struct dv_buf *b, uint16_t v)
{
	uint8_t p[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	dv_buf_add(b, p, 2);
}

void dv_buf_add_le32(struct dv_buf *b, uint32_t v)
{
	uint8_t p[4];
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	dv_buf_add(b, p, 4);
}

void dv_buf_add_le64(struct dv_buf *b, uint64_t v)
{
	uint8_t p[8];
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	dv_buf_add(b, p, 8);
}

void dv_strlist_add(struct dv_strlist *l, const char *s)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->v = dv_realloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n++] = dv_strdup(s);
}

void dv_strlist_clear(struct dv_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

void dv_strlist_release(struct dv_strlist *l)
{
	dv_strlist_clear(l);
	free(l->v);
	l->v = NULL;
	l->cap = 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void dv_strlist_sort(struct dv_strlist *l)
{
	if (l->n)
		qsort(l->v, l->n, sizeof *l->v, cmp_str);
}
