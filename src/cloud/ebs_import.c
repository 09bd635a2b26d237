/*
 * ebs_import.c - one disk of a snapshot into a new EBS snapshot with the
 * EBS direct APIs (cloud.h).
 *
 * Pipeline: the disk index gives every 512 KiB block's has-data flag and
 * signature without reading data; the blocks to send are chosen from them
 * (and from the parent import's block table, dv_cloud_block_want); reader
 * threads read, zero-test and checksum those blocks into a bounded set of
 * buffers; the calling thread keeps up to `concurrency` PutSnapshotBlock
 * requests in flight (curl multi, aws/ebs.h) and records each finished
 * block in a local state file (formats/ebs-import-state.md), so a killed
 * import resumes on the same EBS snapshot and sends only what is missing.
 * Then CompleteSnapshot with the LINEAR checksum, a wait for "completed",
 * and the record in the repository (repo/ebs_state.h,
 * formats/ebs-record.md).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/ebs.h"
#include "cloud.h"
#include "repo/ebs_state.h"
#include "repo/repo.h"

#define BS DV_EBS_BLOCK_SIZE
#define STATE_MAGIC "diskvault-ebs-import 1"

enum dv_cloud_want dv_cloud_block_want(bool has_data, uint8_t *e, const uint8_t *p, bool *unchanged)
{
	bool parent_present = p && (p[DV_EBS_SIG_ENTRY - 1] & DV_EBS_SIG_PRESENT);
	*unchanged = false;
	if (p && !memcmp(p, e, DV_EBS_SIG_ENTRY - 1)) {
		e[DV_EBS_SIG_ENTRY - 1] = parent_present ? DV_EBS_SIG_PRESENT : 0;
		*unchanged = true;
		return DV_WANT_SKIP;
	}
	return has_data ? (parent_present ? DV_WANT_DATA_P : DV_WANT_DATA)
			: parent_present ? DV_WANT_ZERO
					 : DV_WANT_SKIP;
}

uint8_t dv_cloud_block_flags(enum dv_cloud_want want, bool written)
{
	if (want == DV_WANT_SAME)
		return DV_EBS_SIG_PRESENT;
	return written && (want == DV_WANT_DATA || want == DV_WANT_DATA_P) ? DV_EBS_SIG_PRESENT : 0;
}

/* ---- blocks and the work shared with the reader threads ---------------- */

#define W_SKIP DV_WANT_SKIP
#define W_DATA DV_WANT_DATA
#define W_DATA_P DV_WANT_DATA_P
#define W_ZERO DV_WANT_ZERO
#define W_SAME DV_WANT_SAME

struct job {
	struct dv_ebs_put_job put;
	uint8_t *buf;
};

struct imp {
	struct dv_block_reader *br;
	struct dv_block_reader *pbr;  /* the parent import's diskvault disk, or NULL */
	uint64_t pn;                  /* its block count */
	struct dv_ebs *ebs;
	uint64_t n;              /* blocks of the disk */
	uint8_t *want;           /* enum want per block */
	uint8_t *sig;            /* new block table, n * DV_EBS_SIG_ENTRY */
	uint8_t (*digest)[32];   /* digest of every block written to the EBS snapshot */
	uint8_t *written;        /* 1 when the EBS snapshot holds our write of the block */
	uint64_t *todo;          /* indexes to process */
	uint64_t ntodo;
	/* reader side */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t next;           /* next todo entry to take */
	uint64_t processed;      /* todo entries fully handled (sent or skipped) */
	struct job *jobs;        /* pool */
	struct job **free_jobs;
	size_t nfree, njobs;
	struct job **ready;      /* queue of jobs to send */
	size_t rhead, rcount;
	unsigned readers_left;
	bool stop;
	int error;
	struct dv_err err;
	/* results */
	uint64_t sent, zero_skipped, same_as_parent, bytes_sent;
	FILE *state;
	const struct dv_cloud_cb *cb;
};

static bool interrupted(const struct dv_cloud_cb *cb)
{
	return cb && cb->interrupted && cb->interrupted(cb->ctx);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	static const uint8_t z[4096];
	for (size_t off = 0; off < n; off += sizeof z)
		if (memcmp(p + off, z, DV_MIN(sizeof z, n - off)))
			return false;
	return true;
}

static void *reader(void *arg)
{
	struct imp *im = arg;
	/* the parent's block, when compared: one per reader, not per job */
	uint8_t *pbuf = im->pbr ? dv_malloc(BS) : NULL;
	for (;;) {
		pthread_mutex_lock(&im->lock);
		while (!im->stop && im->next < im->ntodo && !im->nfree)
			pthread_cond_wait(&im->cond, &im->lock);
		if (im->stop || im->next >= im->ntodo) {
			im->readers_left--;
			pthread_mutex_unlock(&im->lock);
			dv_ebs_wakeup(im->ebs);
			free(pbuf);
			return NULL;
		}
		uint64_t i = im->todo[im->next++];
		struct job *j = im->free_jobs[--im->nfree];
		pthread_mutex_unlock(&im->lock);

		struct dv_err e;
		int rc = 0;
		bool send = true, same = false;
		if (im->want[i] == W_ZERO) {
			memset(j->buf, 0, BS);
		} else {
			rc = dv_block_reader_read(im->br, i, j->buf, &e);
			/* a changed signature usually, not always, means changed bytes:
			 * when the parent's data is at hand, compare */
			struct dv_err pe;
			if (rc == 0 && im->want[i] == W_DATA_P && im->pbr && i < im->pn &&
			    dv_block_reader_read(im->pbr, i, pbuf, &pe) == 0 && !memcmp(j->buf, pbuf, BS)) {
				send = false;
				same = true;
				im->want[i] = W_SAME; /* this thread owns block i */
			} else if (rc == 0 && all_zero(j->buf, BS)) {
				/* a data block whose bytes are zero: nothing to send unless it
				 * must overwrite what the parent holds there */
				if (im->want[i] == W_DATA_P)
					im->want[i] = W_ZERO; /* this thread owns block i */
				else
					send = false;
			}
		}
		if (rc == 0 && send)
			dv_ebs_block_checksum(j->buf, BS, im->digest[i], j->put.checksum);
		pthread_mutex_lock(&im->lock);
		if (rc < 0) {
			if (!im->error) {
				im->error = rc;
				im->err = e;
			}
			im->stop = true;
			im->free_jobs[im->nfree++] = j;
		} else if (!send) {
			if (same)
				im->same_as_parent++;
			else
				im->zero_skipped++;
			im->processed++;
			im->free_jobs[im->nfree++] = j;
		} else {
			j->put.index = i;
			j->put.data = j->buf;
			j->put.progress = (int)(im->ntodo ? 100 * im->processed / im->ntodo : 100);
			j->put.result = 0;
			j->put.user = j;
			im->ready[(im->rhead + im->rcount++) % im->njobs] = j;
		}
		pthread_cond_broadcast(&im->cond);
		pthread_mutex_unlock(&im->lock);
		dv_ebs_wakeup(im->ebs);
	}
}

static int feed(void *ctx, struct dv_ebs_put_job **out)
{
	struct imp *im = ctx;
	int rc;
	pthread_mutex_lock(&im->lock);
	if (!im->error && interrupted(im->cb)) {
		im->error = -DV_E_INTERRUPTED;
		dv_error(&im->err, DV_E_INTERRUPTED, "interrupted");
		im->stop = true;
		pthread_cond_broadcast(&im->cond);
	}
	if (im->error) {
		rc = im->error;
	} else if (im->rcount) {
		struct job *j = im->ready[im->rhead];
		im->rhead = (im->rhead + 1) % im->njobs;
		im->rcount--;
		*out = &j->put;
		rc = 1;
	} else {
		rc = im->readers_left ? 0 : 2;
	}
	pthread_mutex_unlock(&im->lock);
	return rc;
}

static void progress(struct imp *im)
{
	if (im->cb && im->cb->import_progress)
		im->cb->import_progress(im->cb->ctx, im->processed, im->ntodo, im->sent, im->bytes_sent);
}

static int done(void *ctx, struct dv_ebs_put_job *pj, const struct dv_err *e)
{
	struct imp *im = ctx;
	struct job *j = pj->user;
	(void)e;
	if (pj->result == 0) {
		im->written[pj->index] = 1;
		im->sent++;
		im->bytes_sent += BS;
		if (im->state) {
			char hex[65];
			dv_hex(hex, im->digest[pj->index], 32);
			/* one write per block: a killed run loses at most the blocks in flight */
			fprintf(im->state, "B %llu %s\n", (unsigned long long)pj->index, hex);
			fflush(im->state);
		}
	}
	pthread_mutex_lock(&im->lock);
	if (pj->result == 0)
		im->processed++;
	im->free_jobs[im->nfree++] = j;
	pthread_cond_broadcast(&im->cond);
	pthread_mutex_unlock(&im->lock);
	progress(im);
	return 0;
}

/* ---- the local resume state (formats/ebs-import-state.md) ---------------- */

struct state {
	char path[4096];
	char token[48];
	char ebs_id[80];
	char parent[80];  /* "" = none */
	bool completing;
};

/* Reads the state file: header, then "B index digest" lines, "C". A file
 * of another version or another snapshot or disk is ignored (a fresh start). */
static bool state_load(struct state *s, const char *snap, unsigned disk, struct imp *im)
{
	FILE *f = fopen(s->path, "r");
	if (!f)
		return false;
	char line[512], sn[80], tok[48], eid[80], par[80];
	unsigned d;
	bool ok = fgets(line, sizeof line, f) && !strncmp(line, STATE_MAGIC " ", strlen(STATE_MAGIC) + 1) &&
		  sscanf(line + strlen(STATE_MAGIC) + 1, "%79s %u %47s %79s %79s", sn, &d, tok, par, eid) == 5 &&
		  !strcmp(sn, snap) && d == disk;
	if (ok) {
		snprintf(s->token, sizeof s->token, "%s", tok);
		snprintf(s->parent, sizeof s->parent, "%s", strcmp(par, "-") ? par : "");
		snprintf(s->ebs_id, sizeof s->ebs_id, "%s", strcmp(eid, "-") ? eid : "");
		while (fgets(line, sizeof line, f)) {
			unsigned long long ix;
			char hex[80];
			if (!strcmp(line, "C\n"))
				s->completing = true;
			else if (sscanf(line, "B %llu %79s", &ix, hex) == 2 && ix < im->n && strlen(hex) == 64 &&
				 dv_unhex(im->digest[ix], hex, 32) == 0)
				im->written[ix] = 1;
		}
	}
	fclose(f);
	return ok;
}

static int state_write_header(struct state *s, const char *snap, unsigned disk, struct dv_err *err)
{
	char *text = dv_asprintf(STATE_MAGIC " %s %u %s %s %s\n", snap, disk, s->token, s->parent[0] ? s->parent : "-",
				 s->ebs_id[0] ? s->ebs_id : "-");
	int r = dv_write_file_atomic(s->path, text, strlen(text), 0600, err);
	free(text);
	return r;
}

/* ---- choosing the parent ------------------------------------------------- */

static const char *disk_field(const json_t *manifest, unsigned disk, const char *field)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(manifest, "disks"), disk), field));
}

/* Finds the record of EBS snapshot want (or, with want NULL, the newest
 * completed import of the same lineage, dv_ebs_lineage_same). */
static int find_parent(struct dv_repo *repo, struct dv_ebs *ebs, const char *snap, unsigned disk, const json_t *manifest,
		       const char *want, json_t **rec, struct dv_err *err)
{
	*rec = NULL;
	json_t *all = NULL;
	int rc = dv_ebs_state_list(repo, &all, err);
	if (rc < 0)
		return rc;
	struct dv_ebs_lineage mine = {
		.host = json_string_value(json_object_get(manifest, "host")),
		.source = disk_field(manifest, disk, "source"),
		.disk = disk,
		.region = dv_ebs_region(ebs),
		.endpoint = dv_ebs_endpoint(ebs),
	};
	for (size_t k = json_array_size(all); k-- > 0;) {
		json_t *r = json_array_get(all, k);
		const char *eid = json_string_value(json_object_get(r, "ebs_snapshot_id"));
		if (want) {
			if (!strcmp(eid, want)) {
				*rec = json_incref(r);
				break;
			}
			continue;
		}
		if (!strcmp(json_string_value(json_object_get(r, "snapshot")), snap))
			continue;
		struct dv_ebs_lineage theirs;
		dv_ebs_lineage_of(r, &theirs);
		if (!dv_ebs_lineage_same(&mine, &theirs))
			continue;
		char st[16];
		struct dv_err e2;
		int src = dv_ebs_snapshot_status(ebs, eid, st, &e2);
		if (src == -DV_E_NOT_FOUND)
			continue; /* deleted since */
		if (src < 0) {
			*err = e2;
			json_decref(all);
			return src;
		}
		if (!strcmp(st, "completed")) {
			*rec = json_incref(r);
			break;
		}
	}
	json_decref(all);
	if (want && !*rec)
		return dv_error(err, DV_E_USAGE,
				"--parent %s: this repository has no record of importing it (use --parent none or auto)",
				want);
	return 0;
}

/* ---- an import that is already done ------------------------------------- */

/* Whether a finished import from parent have ("" = none) is what o asks
 * for: auto takes any, none and an id must match. */
static bool parent_matches(const struct dv_cloud_import_opts *o, const char *have)
{
	return o->parent == DV_PARENT_AUTO || (o->parent == DV_PARENT_NONE && !have[0]) ||
	       (o->parent == DV_PARENT_ID && !strcmp(o->parent_id, have));
}

static bool str_eq(const char *a, const char *b)
{
	return a && b ? !strcmp(a, b) : !a && !b;
}

/* The newest record of an import of this very disk, made here (region and
 * endpoint) with the parent o asks for, whose EBS snapshot is still
 * completed: a rerun then has nothing to send. *rec NULL when none. */
static int find_recorded(struct dv_repo *repo, struct dv_ebs *ebs, const char *snap, unsigned disk,
			 const struct dv_cloud_import_opts *o, json_t **rec, struct dv_err *err)
{
	*rec = NULL;
	json_t *all = NULL;
	int rc = dv_ebs_state_list(repo, &all, err);
	for (size_t k = json_array_size(all); rc == 0 && k-- > 0;) {
		json_t *r = json_array_get(all, k);
		const char *par = json_string_value(json_object_get(r, "parent_ebs_snapshot_id"));
		if (strcmp(json_string_value(json_object_get(r, "snapshot")), snap) ||
		    json_integer_value(json_object_get(r, "disk")) != (json_int_t)disk ||
		    !str_eq(json_string_value(json_object_get(r, "region")), dv_ebs_region(ebs)) ||
		    !str_eq(json_string_value(json_object_get(r, "endpoint")), dv_ebs_endpoint(ebs)) ||
		    !parent_matches(o, par ? par : ""))
			continue;
		char st[16];
		struct dv_err e2;
		int src = dv_ebs_snapshot_status(ebs, json_string_value(json_object_get(r, "ebs_snapshot_id")), st, &e2);
		if (src == -DV_E_NOT_FOUND)
			continue; /* deleted since */
		if (src < 0) {
			*err = e2;
			rc = src;
		} else if (!strcmp(st, "completed")) {
			*rec = json_incref(r);
			break;
		}
	}
	json_decref(all);
	return rc;
}

/* A completed EBS snapshot an earlier run of this import made but did not
 * record (killed in between, its state file lost): found by the tags every
 * import gives StartSnapshot, including the parent it chose. id "" when
 * none. */
static int find_tagged(struct dv_ebs *ebs, const char *repo_id, const char *snap, unsigned disk, const char *parent,
		       uint64_t gib, char id[72], struct dv_err *err)
{
	char disk_s[16], gib_s[24];
	snprintf(disk_s, sizeof disk_s, "%u", disk);
	snprintf(gib_s, sizeof gib_s, "%llu", (unsigned long long)gib);
	const char *v_snap[] = {snap}, *v_disk[] = {disk_s}, *v_repo[] = {repo_id}, *v_par[] = {parent[0] ? parent : "none"},
		   *v_st[] = {"completed"}, *v_gib[] = {gib_s};
	const struct dv_ec2_filter f[] = {
		{"tag:" DV_TAG_IMPORT_SNAPSHOT, v_snap, 1}, {"tag:" DV_TAG_IMPORT_DISK, v_disk, 1},
		{"tag:" DV_TAG_IMPORT_REPOSITORY, v_repo, 1}, {"tag:" DV_TAG_IMPORT_PARENT, v_par, 1},
		{"status", v_st, 1}, {"volume-size", v_gib, 1},
	};
	return dv_ebs_find_snapshot(ebs, f, sizeof f / sizeof *f, id, err);
}

/* ---- the import ------------------------------------------------------------ */

static int wait_completed(struct dv_ebs *ebs, const char *id, const struct dv_cloud_cb *cb, struct dv_err *err)
{
	const char *v = getenv("DISKVAULT_EBS_WAIT_SECONDS");
	double limit = v && *v ? atof(v) : 6 * 3600;
	double start = dv_now(), pause = 0.5;
	for (;;) {
		char st[16];
		int rc = dv_ebs_snapshot_status(ebs, id, st, err);
		if (rc < 0)
			return rc;
		if (!strcmp(st, "completed"))
			return 0;
		if (strcmp(st, "pending"))
			return dv_error(err, DV_E_REMOTE, "EBS snapshot %s ended in state '%s'", id, st);
		if (interrupted(cb))
			return dv_error(err, DV_E_INTERRUPTED, "interrupted while waiting for %s", id);
		if (dv_now() - start > limit)
			return dv_error(err, DV_E_REMOTE, "EBS snapshot %s still pending after %.0f s", id, limit);
		struct timespec ts = {(time_t)pause, (long)((pause - (double)(time_t)pause) * 1e9)};
		nanosleep(&ts, NULL);
		pause = DV_MIN(pause * 1.5, 10.0);
	}
}

void dv_cloud_import_result_release(struct dv_cloud_import_result *res)
{
	json_decref(res->record);
	res->record = NULL;
}

int dv_cloud_ebs_import(struct dv_repo *repo, const char *id, const json_t *manifest,
			const struct dv_cloud_import_opts *o, const struct dv_cloud_cb *cb,
			struct dv_cloud_import_result *res, struct dv_err *err)
{
	memset(res, 0, sizeof *res);
	dv_err_clear(err);
	struct dv_ebs *ebs = NULL;
	json_t *prec = NULL;
	struct imp im;
	memset(&im, 0, sizeof im);
	im.cb = cb;
	pthread_mutex_init(&im.lock, NULL);
	pthread_cond_init(&im.cond, NULL);
	struct dv_buf psig = DV_BUF_INIT;
	struct state st;
	memset(&st, 0, sizeof st);
	char *sdir = NULL;
	pthread_t *threads = NULL;
	unsigned nthreads = 0;
	uint64_t n_written_before = 0, unchanged = 0;
	const unsigned disk = o->disk;
	int r;

	if (o->ntags > DV_CLOUD_MAX_TAGS - DV_CLOUD_IMPORT_TAGS)
		DV_BUG("too many EBS snapshot tags");
	struct dv_aws_options ao = {.region = o->region};
	struct dv_ebs_settings es = {.concurrency = o->concurrency};
	if (disk >= json_array_size(json_object_get(manifest, "disks"))) {
		r = dv_error(err, DV_E_USAGE, "snapshot %.8s has no disk %u", id, disk);
		goto fail;
	}
	if ((r = dv_block_reader_open(repo, id, disk, BS, &im.br, err)) < 0)
		goto fail;
	if ((r = dv_ebs_new(&ao, &es, &ebs, err)) < 0)
		goto fail;
	im.ebs = ebs;
	im.n = dv_block_reader_count(im.br);
	uint64_t disk_size = dv_block_reader_disk_size(im.br);
	uint64_t gib = (disk_size + (1ull << 30) - 1) >> 30;
	if (!gib)
		gib = 1;
	res->volume_gib = gib;
	im.want = dv_calloc(im.n ? im.n : 1, 1);
	im.sig = dv_calloc(im.n ? im.n : 1, DV_EBS_SIG_ENTRY);
	im.digest = dv_calloc(im.n ? im.n : 1, 32);
	im.written = dv_calloc(im.n ? im.n : 1, 1);
	im.todo = dv_calloc(im.n ? im.n : 1, sizeof *im.todo);

	/* resume state */
	sdir = dv_state_dir();
	if ((r = dv_mkdir_p(sdir, 0700, err)) < 0)
		goto fail;
	snprintf(st.path, sizeof st.path, "%s/ebs-import-%s-%.16s-%u.state", sdir, dv_repo_id(repo), id, disk);
	bool resumed = false;
	bool same_parent_choice;
	if (state_load(&st, id, disk, &im) && st.ebs_id[0]) {
		/* resume only what the user asks for again: auto takes the recorded
		 * parent, an explicit choice must match it */
		same_parent_choice = parent_matches(o, st.parent);
	} else {
		same_parent_choice = false;
	}
	if (same_parent_choice) {
		char s2[16];
		struct dv_err e2;
		int sr = dv_ebs_snapshot_status(ebs, st.ebs_id, s2, &e2);
		if (sr == 0 && (!strcmp(s2, "pending") || !strcmp(s2, "completed")))
			resumed = true;
		else if (sr < 0 && sr != -DV_E_NOT_FOUND) {
			*err = e2;
			r = sr;
			goto fail;
		}
	}
	if (!resumed) {
		/* imported already (a rerun after a kill that came once the record
		 * was written): report that snapshot, send nothing */
		json_t *done_rec = NULL;
		if ((r = find_recorded(repo, ebs, id, disk, o, &done_rec, err)) < 0)
			goto fail;
		if (done_rec) {
			const char *par = json_string_value(json_object_get(done_rec, "parent_ebs_snapshot_id"));
			snprintf(st.ebs_id, sizeof st.ebs_id, "%s",
				 json_string_value(json_object_get(done_rec, "ebs_snapshot_id")));
			snprintf(st.parent, sizeof st.parent, "%s", par ? par : "");
			json_t *bw = json_object_get(done_rec, "blocks_written");
			res->written_known = json_is_integer(bw);
			res->written_total = (uint64_t)json_integer_value(bw);
			res->existing = DV_IMPORT_RECORDED;
			res->record = done_rec;
			r = 0;
			goto out;
		}
		/* a fresh start: forget written blocks of an abandoned attempt, keep its token
		 * only when no snapshot id was recorded yet (StartSnapshot may have run) */
		memset(im.written, 0, im.n);
		bool keep_token = st.token[0] && !st.ebs_id[0];
		if (!keep_token)
			dv_random_hex(st.token, 16);
		st.ebs_id[0] = 0;
		st.completing = false;
		st.parent[0] = 0;
		if (o->parent != DV_PARENT_NONE) {
			r = find_parent(repo, ebs, id, disk, manifest, o->parent == DV_PARENT_ID ? o->parent_id : NULL,
					&prec, err);
			if (r < 0)
				goto fail;
			if (prec)
				snprintf(st.parent, sizeof st.parent, "%s",
					 json_string_value(json_object_get(prec, "ebs_snapshot_id")));
		}
	} else if (st.parent[0]) {
		if ((r = find_parent(repo, ebs, id, disk, manifest, st.parent, &prec, err)) < 0) {
			if (r == -DV_E_USAGE) /* forget/prune delete older records of snapshots that are gone */
				r = dv_error(err, DV_E_USAGE,
					     "cannot resume the import into %s: the repository no longer has the record of "
					     "its parent %s (deleted with a forgotten snapshot); --parent none starts anew",
					     st.ebs_id, st.parent);
			goto fail;
		}
	}
	uint64_t pn = 0;
	if (prec) {
		if ((uint64_t)json_integer_value(json_object_get(prec, "volume_size_gib")) > gib) {
			/* a smaller disk cannot have a larger parent */
			json_decref(prec);
			prec = NULL;
			st.parent[0] = 0;
		} else {
			pn = (uint64_t)json_integer_value(json_object_get(prec, "block_count"));
			const char *psnap = json_string_value(json_object_get(prec, "snapshot"));
			unsigned pdisk = (unsigned)json_integer_value(json_object_get(prec, "disk"));
			r = dv_ebs_state_get_sig(repo, psnap, pdisk, pn, &psig, err);
			if (r < 0)
				goto fail;
			struct dv_err e2;
			if (dv_block_reader_open(repo, psnap, pdisk, BS, &im.pbr, &e2) < 0) {
				dv_debug("parent's snapshot not readable, comparing signatures only: %s", e2.msg);
				im.pbr = NULL;
			}
			im.pn = im.pbr ? DV_MIN(pn, dv_block_reader_count(im.pbr)) : 0;
		}
	}

	/* what to send, from the disk indexes alone */
	for (uint64_t i = 0; i < im.n; i++) {
		bool has, same;
		struct dv_id s;
		dv_block_reader_info(im.br, i, &has, &s);
		uint8_t *e = im.sig + i * DV_EBS_SIG_ENTRY;
		memcpy(e, s.b, DV_EBS_SIG_ENTRY - 1);
		const uint8_t *p = prec && i < pn ? psig.data + i * DV_EBS_SIG_ENTRY : NULL;
		im.want[i] = (uint8_t)dv_cloud_block_want(has, e, p, &same);
		if (same)
			unchanged++;
		if (im.want[i] == W_SKIP)
			continue;
		if (im.written[i]) {
			n_written_before++;
			continue;
		}
		im.todo[im.ntodo++] = i;
	}

	char found[72] = "";
	if (!resumed && (r = find_tagged(ebs, dv_repo_id(repo), id, disk, st.parent, gib, found, err)) < 0)
		goto fail;
	if (found[0]) {
		/* it holds the disk's bytes: non-zero data only where the disk has data */
		snprintf(st.ebs_id, sizeof st.ebs_id, "%s", found);
		for (uint64_t i = 0; i < im.n; i++) {
			bool has;
			struct dv_id s;
			dv_block_reader_info(im.br, i, &has, &s);
			im.sig[i * DV_EBS_SIG_ENTRY + DV_EBS_SIG_ENTRY - 1] = has ? DV_EBS_SIG_PRESENT : 0;
		}
		res->existing = DV_IMPORT_TAGGED;
		goto record;
	}
	if (!resumed || !st.ebs_id[0]) {
		if ((r = state_write_header(&st, id, disk, err)) < 0)
			goto fail;
		char desc[256];
		const char *host = json_string_value(json_object_get(manifest, "host"));
		if (!o->description)
			snprintf(desc, sizeof desc, "diskvault snapshot %.12s disk %u%s%s", id, disk, host ? " of " : "",
				 host ? host : "");
		char disk_s[16];
		snprintf(disk_s, sizeof disk_s, "%u", disk);
		struct dv_aws_kv tags[DV_CLOUD_MAX_TAGS];
		size_t ntags = o->ntags;
		if (ntags)
			memcpy(tags, o->tags, ntags * sizeof *tags);
		tags[ntags++] = (struct dv_aws_kv){DV_TAG_IMPORT_SNAPSHOT, id};
		tags[ntags++] = (struct dv_aws_kv){DV_TAG_IMPORT_DISK, disk_s};
		tags[ntags++] = (struct dv_aws_kv){DV_TAG_IMPORT_REPOSITORY, dv_repo_id(repo)};
		tags[ntags++] = (struct dv_aws_kv){DV_TAG_IMPORT_PARENT, st.parent[0] ? st.parent : "none"};
		struct dv_ebs_start ss = {
			.volume_size = gib,
			.parent = st.parent[0] ? st.parent : NULL,
			.description = o->description ? o->description : desc,
			.client_token = st.token,
			.timeout_minutes = 1440,
			.encrypted = o->kms_key_id != NULL,
			.kms_key_arn = o->kms_key_id,
			.tags = tags,
			.ntags = ntags,
		};
		struct dv_ebs_snapshot_info info;
		if ((r = dv_ebs_start_snapshot(ebs, &ss, &info, err)) < 0)
			goto fail;
		snprintf(st.ebs_id, sizeof st.ebs_id, "%s", info.id);
		if ((r = state_write_header(&st, id, disk, err)) < 0)
			goto fail;
	}
	double started = dv_now();
	if (resumed)
		started -= 1e6; /* an old snapshot: a 404 is real */
	im.state = fopen(st.path, "a");
	if (!im.state) {
		r = dv_error_errno(err, errno, "%s", st.path);
		goto fail;
	}

	if (!st.completing && im.ntodo) {
		unsigned conc = dv_ebs_concurrency(ebs);
		nthreads = DV_MAX(1u, DV_MIN(dv_repo_reader_threads(repo, 0), 8u));
		im.njobs = conc + nthreads * 2;
		im.jobs = dv_calloc(im.njobs, sizeof *im.jobs);
		im.free_jobs = dv_calloc(im.njobs, sizeof *im.free_jobs);
		im.ready = dv_calloc(im.njobs, sizeof *im.ready);
		for (size_t k = 0; k < im.njobs; k++) {
			im.jobs[k].buf = dv_malloc(BS);
			im.free_jobs[im.nfree++] = &im.jobs[k];
		}
		im.readers_left = nthreads;
		threads = dv_calloc(nthreads, sizeof *threads);
		for (unsigned k = 0; k < nthreads; k++)
			if (pthread_create(&threads[k], NULL, reader, &im))
				DV_BUG("pthread_create failed");
		r = dv_ebs_put_blocks(ebs, st.ebs_id, started, feed, done, &im, err);
		pthread_mutex_lock(&im.lock);
		im.stop = true;
		pthread_cond_broadcast(&im.cond);
		pthread_mutex_unlock(&im.lock);
		for (unsigned k = 0; k < nthreads; k++)
			pthread_join(threads[k], NULL);
		if (r == 0 && im.error) {
			r = im.error;
			*err = im.err;
		}
		if (r < 0 && im.error && err->code == DV_OK)
			*err = im.err;
		fflush(im.state);
		if (r < 0)
			goto fail;
	}

	/* the table of the new snapshot and the LINEAR checksum */
	uint64_t nw = 0;
	for (uint64_t i = 0; i < im.n; i++)
		nw += im.written[i];
	uint8_t(*dg)[32] = dv_calloc(nw ? nw : 1, 32);
	uint64_t k = 0;
	for (uint64_t i = 0; i < im.n; i++) {
		if (im.written[i])
			memcpy(dg[k++], im.digest[i], 32);
		if (im.want[i] != W_SKIP)
			im.sig[i * DV_EBS_SIG_ENTRY + DV_EBS_SIG_ENTRY - 1] =
				dv_cloud_block_flags((enum dv_cloud_want)im.want[i], im.written[i]);
	}
	char linear[45];
	dv_ebs_linear_checksum((const uint8_t(*)[32])dg, nw, linear);
	free(dg);
	fputs("C\n", im.state);
	fflush(im.state);
	char status[16];
	if ((r = dv_ebs_complete_snapshot(ebs, st.ebs_id, nw, linear, status, err)) < 0)
		goto fail;
	if ((r = wait_completed(ebs, st.ebs_id, cb, err)) < 0)
		goto fail;

	res->written_known = true;
	res->written_total = nw;

	/* remember it in the repository */
record:;
	struct dv_ebs_stats stats;
	dv_ebs_get_stats(ebs, &stats);
	json_t *rec = json_pack("{s:i, s:s, s:i, s:s, s:o, s:s, s:s, s:I, s:i, s:I, s:I, s:I, s:I}", "version", 1,
				"snapshot", id, "disk", (int)disk, "ebs_snapshot_id", st.ebs_id, "parent_ebs_snapshot_id",
				st.parent[0] ? json_string(st.parent) : json_null(), "region", dv_ebs_region(ebs),
				"endpoint", dv_ebs_endpoint(ebs), "volume_size_gib", (json_int_t)gib, "block_size",
				(int)BS, "block_count", (json_int_t)im.n, "blocks_sent", (json_int_t)im.sent,
				"bytes_sent", (json_int_t)im.bytes_sent, "time", (json_int_t)dv_unix_now());
	const char *host = json_string_value(json_object_get(manifest, "host"));
	const char *source = disk_field(manifest, disk, "source");
	if (host)
		json_object_set_new(rec, "host", json_string(host));
	if (source)
		json_object_set_new(rec, "source", json_string(source));
	if (res->written_known)
		json_object_set_new(rec, "blocks_written", json_integer((json_int_t)res->written_total));
	r = dv_ebs_state_put(repo, rec, im.sig, im.n * DV_EBS_SIG_ENTRY, err);
	if (r < 0) {
		json_decref(rec);
		goto fail;
	}
	if (im.state) {
		fclose(im.state);
		im.state = NULL;
		unlink(st.path);
	}

	res->record = rec;
	res->resumed = resumed;
	res->sent = im.sent;
	res->bytes_sent = im.bytes_sent;
	res->resumed_blocks = n_written_before;
	res->unchanged = unchanged;
	res->zero_skipped = im.zero_skipped;
	res->same_as_parent = im.same_as_parent;
	res->requests = stats.requests;
	res->retries = stats.retries;
	res->throttled = stats.throttled;
	r = 0;
	goto out;
fail:
	if (st.ebs_id[0] && err->code != DV_E_USAGE)
		dv_error_prefix(err, "EBS snapshot %s (run again to resume): ", st.ebs_id);
out:
	snprintf(res->ebs_id, sizeof res->ebs_id, "%s", st.ebs_id);
	snprintf(res->parent, sizeof res->parent, "%s", st.parent);
	if (im.state)
		fclose(im.state);
	if (im.jobs)
		for (size_t q = 0; q < im.njobs; q++)
			free(im.jobs[q].buf);
	free(im.jobs);
	free(im.free_jobs);
	free(im.ready);
	free(threads);
	free(im.want);
	free(im.sig);
	free(im.digest);
	free(im.written);
	free(im.todo);
	free(sdir);
	dv_buf_release(&psig);
	json_decref(prec);
	dv_block_reader_free(im.br);
	dv_block_reader_free(im.pbr);
	dv_ebs_free(ebs);
	pthread_mutex_destroy(&im.lock);
	pthread_cond_destroy(&im.cond);
	return r;
}
