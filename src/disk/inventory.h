/*
 * inventory.h - what the running machine is: CPU, memory and their measured
 * use, OS, kernel, boot mode, network interfaces, disks, and whether its
 * kernel carries the drivers an EC2 Nitro instance needs (nvme, ena).
 *
 * The inventory is a json_t (schema in docs/internals/disk.md, "Inventory").
 * Right-sizing wants measured use over days, not one look, so a saved
 * inventory can accumulate samples: dv_inventory_append() folds a new
 * inventory into an accumulated one, keeping the peak and percentiles of
 * CPU busy fraction, memory in use and load (the `inventory --sample 60
 * --append FILE` cron use of issue 3).
 *
 * Library code: nothing is printed. Reads /proc, /sys and /etc (under
 * root, see below); not thread safe only in that it sleeps.
 */
#ifndef DV_DISK_INVENTORY_H
#define DV_DISK_INVENTORY_H

#include <jansson.h>

#include "util/util.h"

/* At most this many samples are kept in an accumulated inventory's
 * history (about two weeks at one a minute); older ones are dropped, the
 * peaks are kept forever. */
#define DV_INVENTORY_HISTORY_MAX 20000

/*
 * Collects the inventory of the running machine. CPU busy fraction is
 * measured from /proc/stat over sample_seconds (>= 0; 0 gives null), during
 * which the call sleeps. root (borrowed) prefixes every /proc, /sys and
 * /etc path read ("" or NULL for the real ones; tests pass a fake tree);
 * hostname, architecture, kernel and network interfaces always come from
 * the running system (uname(2), getifaddrs(3)).
 * Missing facts are null, never an error. On success *out is a new json_t
 * (caller json_decref's it). Fails only when /proc/meminfo or /proc/stat
 * cannot be read (DV_E_IO).
 */
int dv_inventory_collect(const char *root, double sample_seconds, json_t **out, struct dv_err *err) DV_WUR;

/*
 * Folds inventory `sample` (borrowed) into the accumulated inventory acc
 * (borrowed; NULL or json null for the first sample) and returns the new
 * accumulated object in *out (caller json_decref's it):
 *   {"version":1, "first":T, "last":T, "samples":N, "latest":{inventory},
 *    "cpu_busy":{"peak","p50","p95","p99"}, "memory_used":{...}, "load1":{...},
 *    "history":[{"time","cpu_busy","memory_used","load1"}, ...]}
 * Peaks cover every sample ever folded; percentiles cover the history kept.
 * An acc that is not such an object is DV_E_CORRUPT.
 */
int dv_inventory_append(const json_t *acc, const json_t *sample, json_t **out, struct dv_err *err) DV_WUR;

#endif
