/* table.c - see table.h. */
#include "cli/table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void dv_table_init(struct dv_table *t, size_t ncols, const char *const *heads, const char *align)
{
	memset(t, 0, sizeof *t);
	t->ncols = ncols;
	t->heads = heads;
	t->align = align;
}

int dv_table_add(struct dv_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **v = realloc(t->cells, cap * t->ncols * sizeof *v);
		if (!v)
			return -ENOMEM;
		t->cells = v;
		bool *nv = realloc(t->note, cap * sizeof *nv);
		if (!nv)
			return -ENOMEM;
		t->note = nv;
		t->cap = cap;
	}
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t c = 0; c < t->ncols; c++) {
		row[c] = strdup(cells[c] ? cells[c] : "-");
		if (!row[c]) {
			while (c--)
				free(row[c]);
			return -ENOMEM;
		}
	}
	t->note[t->nrows++] = false;
	return 0;
}

int dv_table_note(struct dv_table *t, const char *text)
{
	const char *cells[32] = {text};
	if (t->ncols > DV_ARRAY_SIZE(cells))
		return -EINVAL;
	for (size_t c = 1; c < t->ncols; c++)
		cells[c] = "";
	int r = dv_table_add(t, cells);
	if (!r)
		t->note[t->nrows - 1] = true;
	return r;
}

size_t dv_table_width(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static void print_row(FILE *out, const struct dv_table *t, const char *const *row, const size_t *w,
		      const char *indent)
{
	if (indent)
		fputs(indent, out);
	for (size_t c = 0; c < t->ncols; c++) {
		size_t pad = w[c] - dv_table_width(row[c]);
		bool last = c + 1 == t->ncols;
		bool right = t->align && t->align[c] == 'r';
		if (c)
			fputs("  ", out);
		if (right)
			fprintf(out, "%*s", (int)pad, "");
		fputs(row[c], out);
		if (!right && !last)
			fprintf(out, "%*s", (int)pad, "");
	}
	fputc('\n', out);
}

void dv_table_print(FILE *out, const struct dv_table *t, const char *indent)
{
	size_t w[32] = {0};
	if (t->ncols > DV_ARRAY_SIZE(w))
		return;
	for (size_t c = 0; c < t->ncols; c++) {
		if (t->heads)
			w[c] = dv_table_width(t->heads[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			if (t->note[r])
				continue;
			size_t x = dv_table_width(t->cells[r * t->ncols + c]);
			if (x > w[c])
				w[c] = x;
		}
	}
	if (t->heads)
		print_row(out, t, t->heads, w, indent);
	for (size_t r = 0; r < t->nrows; r++)
		if (t->note[r])
			fprintf(out, "%s%s\n", indent ? indent : "", t->cells[r * t->ncols]);
		else
			print_row(out, t, (const char *const *)t->cells + r * t->ncols, w, indent);
}

void dv_table_release(struct dv_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->note);
	t->cells = NULL;
	t->note = NULL;
	t->nrows = t->cap = 0;
}
