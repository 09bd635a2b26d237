/*
 * ebs_state.h - what the repository remembers about EBS imports, so a later
 * import of the same disk can name the earlier EBS snapshot as its parent
 * and send only the blocks that changed. Specified in
 * formats/ebs-record.md.
 *
 * Objects (written by ebs-import, read by it and by launch, deleted by
 * forget and prune once their snapshot is gone: dv_ebs_state_purge):
 *   ebs/<snapshot-id>-<disk>       JSON record (schema below), written last
 *   ebs/<snapshot-id>-<disk>.sig   block table: one 16-byte entry per
 *                                  512 KiB block of the disk, in order:
 *                                  bytes 0..14 the first 15 bytes of the
 *                                  block's signature (repo.h block view),
 *                                  byte 15 flags (bit 0: the EBS snapshot
 *                                  may hold non-zero data in this block;
 *                                  other bits zero)
 *
 * Record: {"version": 1, "snapshot": "<64 hex>", "disk": N,
 *   "ebs_snapshot_id": "snap-...", "parent_ebs_snapshot_id": "snap-..."|null,
 *   "region": "...", "endpoint": "https://ebs...", "volume_size_gib": N,
 *   "block_size": 524288, "block_count": N, "blocks_sent": N,
 *   "bytes_sent": N, "host": "...", "source": "/dev/sda", "time": unix}
 * A record is replaced when the same snapshot and disk are imported again
 * (the newest import wins); the .sig object is written before the record,
 * so a record always has its table.
 */
#ifndef DV_REPO_EBS_STATE_H
#define DV_REPO_EBS_STATE_H

#include <jansson.h>

#include "util/util.h"

struct dv_repo;

#define DV_EBS_SIG_ENTRY 16u
#define DV_EBS_SIG_PRESENT 0x01u

/* Stores record (borrowed; must hold "snapshot" and "disk") and its block
 * table sig (n_blocks * DV_EBS_SIG_ENTRY bytes). */
int dv_ebs_state_put(struct dv_repo *r, const json_t *record, const uint8_t *sig, size_t sig_len,
		     struct dv_err *err) DV_WUR;
/* All records (a new JSON array, caller json_decref's), oldest first by
 * "time". Unreadable or malformed records are skipped. */
int dv_ebs_state_list(struct dv_repo *r, json_t **out, struct dv_err *err) DV_WUR;
/* The block table of a record into out (replaced); DV_E_NOT_FOUND when
 * missing, DV_E_CORRUPT when its length is not n_blocks entries. */
int dv_ebs_state_get_sig(struct dv_repo *r, const char *snapshot, unsigned disk, uint64_t n_blocks, struct dv_buf *out,
			 struct dv_err *err) DV_WUR;

/*
 * The lineage of an import: what makes two imports "the same disk", so that
 * ebs-import --parent auto takes the newest completed import of its lineage
 * as parent and prune keeps the newest record of each lineage. One rule for
 * both: host, region and endpoint are compared as strings, and a field
 * missing on one side only differs (missing equals missing); the disk is
 * its source when both sides record one, its number when neither does, and
 * differs when only one side records a source.
 */
struct dv_ebs_lineage {
	const char *host;     /* NULL when not recorded */
	const char *source;   /* the disk's source ("/dev/sda"), NULL when not recorded */
	unsigned disk;        /* the disk's number in its snapshot */
	const char *region;   /* NULL when not recorded */
	const char *endpoint; /* NULL when not recorded */
};
/* The lineage of a record (pointers borrowed from it). */
void dv_ebs_lineage_of(const json_t *record, struct dv_ebs_lineage *out);
/* Whether a and b are the same lineage (the rule above; symmetric,
 * transitive). */
bool dv_ebs_lineage_same(const struct dv_ebs_lineage *a, const struct dv_ebs_lineage *b);

/*
 * Deletes the records and block tables under ebs/ of snapshots not among
 * existing[0..n) (64-hex ids, borrowed), except, for each lineage
 * (dv_ebs_lineage_same), the newest record: it is the parent the next import of
 * that disk diffs against, and the one a killed import started from it
 * resumes with, even when its own snapshot is gone (the parent's table is
 * enough; its data is read only when still there). Records whose snapshot
 * exists are never touched, nor names of another form. Records go in one
 * batch, then their tables in another, so a record never lacks its table.
 * *deleted counts the objects (records and tables) deleted, or that would
 * be with dry_run. Records are read only when some snapshot is missing.
 */
int dv_ebs_state_purge(struct dv_repo *r, const char *const *existing, size_t n, bool dry_run, uint64_t *deleted,
		       struct dv_err *err) DV_WUR;

#endif
