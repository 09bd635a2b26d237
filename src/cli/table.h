/*
 * table.h - a text table with columns as wide as their widest cell, the
 * way lsblk and restic print theirs: nothing is cut, so a long host name
 * widens its column instead of being truncated. (Why this is ours and not
 * libsmartcols: docs/internals/tables.md.)
 */
#ifndef DV_CLI_TABLE_H
#define DV_CLI_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/util.h"

struct dv_table {
	size_t ncols;
	const char *const *heads; /* borrowed; NULL: no header line */
	const char *align;        /* one char per column: 'l' or 'r'; borrowed */
	char **cells;             /* nrows * ncols, owned */
	bool *note;               /* per row: a line of text in cells[0], not in columns */
	size_t nrows, cap;
};

/* heads (ncols strings, or NULL for no header) and align are borrowed. */
void dv_table_init(struct dv_table *t, size_t ncols, const char *const *heads, const char *align);
/* Appends a row of ncols cells (copied; NULL prints as "-"). -ENOMEM. */
int dv_table_add(struct dv_table *t, const char *const *cells) DV_WUR;
/* Appends a line of text printed as it is between the rows (e.g. a
 * detail line under a partition), not counted in the column widths. */
int dv_table_note(struct dv_table *t, const char *text) DV_WUR;
/* Prints the header and rows, each line prefixed by indent (may be NULL);
 * columns are separated by two spaces and the last one is not padded. A
 * cell's width counts UTF-8 characters (the tree lines are one column
 * each). */
void dv_table_print(FILE *out, const struct dv_table *t, const char *indent);
void dv_table_release(struct dv_table *t);
/* Columns a UTF-8 string takes (code points; no wide characters here). */
size_t dv_table_width(const char *s);

#endif
