/*
 * ext_io.h - a read-only libext2fs io_manager over a volume (volume.h), so
 * that libext2fs reads an ext2/3/4 filesystem through dv_vol_read: one in
 * several pieces (an LV of several segments, a striped LV), or one on a
 * snapshot's disk read back from the repository (the file readers of
 * src/files/).
 *
 * Usage: dv_ext_io_name(v, name, sizeof name), then
 * ext2fs_open2(name, NULL, flags, 0, 0, dv_ext_vol_io_manager, &fs);
 * v must stay valid while the filesystem is open. Every write fails with
 * EROFS; a failed read returns EIO to libext2fs, and its own error (for
 * an unreadable region of a snapshot: DV_E_SOURCE naming the bytes) is
 * kept for the thread that made the read: dv_ext_io_take_error.
 */
#ifndef DV_DISK_EXT_IO_H
#define DV_DISK_EXT_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

struct dv_vol;
struct struct_io_manager;

extern struct struct_io_manager *dv_ext_vol_io_manager;
void dv_ext_io_name(const struct dv_vol *v, char *buf, size_t n);
/* true (and the error in *err) when a read of this thread through
 * dv_ext_vol_io_manager failed since the last call; clears it. */
bool dv_ext_io_take_error(struct dv_err *err);
/* Registers libext2fs's error messages once (thread safe). */
void dv_ext2_errors_init(void);

#endif
