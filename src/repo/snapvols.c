/* snapvols.c - a snapshot's disks and volumes, opened for byte-range reads
 * (see repo.h, dv_snapshot_vols_open): what the FUSE mount and the file
 * readers (ls, cat, extract) share. */
#include "repo_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dv_snapshot_vols_open(struct dv_repo *r, const char *id, size_t cache_bytes, struct dv_snapshot_vols *out,
			  struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	int rc = dv_snapshot_load(r, id, &out->manifest, err);
	if (rc < 0)
		return rc;
	json_t *disks = json_object_get(out->manifest, "disks");
	size_t nd = json_array_size(disks);
	out->br = dv_calloc(nd ? nd : 1, sizeof *out->br);
	out->src = dv_calloc(nd ? nd : 1, sizeof *out->src);
	const json_t **layouts = dv_calloc(nd ? nd : 1, sizeof *layouts);
	const struct dv_source **srcs = dv_calloc(nd ? nd : 1, sizeof *srcs);
	for (size_t d = 0; d < nd; d++) {
		if ((rc = dv_block_reader_open(r, id, (unsigned)d, 1u << 20, &out->br[d], err)) < 0)
			break;
		out->ndisks = d + 1;
		dv_block_reader_set_cache(out->br[d], cache_bytes / nd);
		char name[64];
		snprintf(name, sizeof name, "disk %zu of snapshot %.8s", d, id);
		dv_block_reader_source(out->br[d], name, &out->src[d]);
		srcs[d] = &out->src[d];
		layouts[d] = json_object_get(json_array_get(disks, d), "layout");
	}
	if (rc == 0)
		dv_layout_volumes(layouts, srcs, nd, &out->vols);
	free(layouts);
	free(srcs);
	if (rc < 0)
		dv_snapshot_vols_release(out);
	return rc;
}

void dv_snapshot_vols_release(struct dv_snapshot_vols *sv)
{
	dv_layout_vols_release(&sv->vols);
	for (size_t d = 0; d < sv->ndisks; d++) {
		dv_source_close(&sv->src[d]);
		dv_block_reader_free(sv->br[d]);
	}
	free(sv->src);
	free(sv->br);
	json_decref(sv->manifest);
	memset(sv, 0, sizeof *sv);
}
