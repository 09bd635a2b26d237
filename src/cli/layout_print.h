/*
 * layout_print.h - human-readable rendering of a disk layout (the json_t
 * produced by dv_disk_probe(), schema in docs/internals/disk.md).
 */
#ifndef DV_CLI_LAYOUT_PRINT_H
#define DV_CLI_LAYOUT_PRINT_H

#include <jansson.h>
#include <stdio.h>

/*
 * Prints layout to out as an `lsblk -f`-like tree: one line for the disk
 * (table, identifier, size, boot mode, imaging mode, bytes not read), one
 * line per partition (number, start, size, type, filesystem type, label,
 * UUID, bytes used, how it was imaged), then the warnings. layout is
 * borrowed. Missing or mistyped members print as "-"; never fails.
 */
void dv_cli_print_layout(FILE *out, const json_t *layout);

#endif
