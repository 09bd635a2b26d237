/*
 * parttype.h - partition type names from libfdisk's own type tables (the
 * names fdisk and sfdisk print), for show.
 */
#ifndef DV_CLI_PARTTYPE_H
#define DV_CLI_PARTTYPE_H

/* The name of a partition type as the layout JSON records it: a GPT type
 * GUID ("c12a7328-...") or an MBR type code ("0x83"), for table "gpt" or
 * "dos". Returns type itself when libfdisk does not know it (or the build
 * has no libfdisk: the static binary). The string lives until exit. */
const char *dv_cli_parttype_name(const char *table, const char *type);

#endif
