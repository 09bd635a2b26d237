/*
 * prune.c - forget (retention) and prune (garbage collection).
 *
 * Both take the exclusive lock, so no backup, restore or check runs
 * meanwhile (backups hold shared locks and refresh them; see lock.c).
 *
 * Prune, in an order that makes a crash at any point harmless
 * (formats/repository.md, "Prune"):
 *   1. find the chunks the remaining snapshots use (their disk indexes);
 *   2. classify every indexed pack: nothing used (delete); else rewrite
 *      the packs with the most garbage per used byte until the garbage
 *      left is within the budget (--max-unused; dv_prune_select), keep
 *      the rest;
 *   3. copy the used blobs of repacked packs into new packs (ranged reads
 *      of just those blobs, in offset order; each blob verified), publish
 *      them;
 *   4. write one new index segment for every kept and new pack;
 *   5. delete the old index segments - from here the new segment alone
 *      describes the repository;
 *   6. delete the packs no index names (repacked, dead, or left by an
 *      interrupted backup), unreferenced disk indexes and temporary files.
 * Each deleting step is one dv_store_delete_many call (S3: DeleteObjects
 * batches; local: unlinks, then one fsync per directory), finished and
 * durable before the next step starts: batching stays within a step.
 * A crash before 5 leaves old and new segments side by side (both valid:
 * nothing was deleted yet); after 5 only unindexed objects remain, which
 * the next prune deletes and check reports as garbage. Last, the EBS
 * records of snapshots that are gone (ebs_state.h).
 */
#include "repo_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ebs_state.h"

/* ---- forget ------------------------------------------------------------ */

static const char *const bucket_names[DV_KEEP_KINDS] = {"hourly", "daily", "weekly", "monthly", "yearly"};

/* The calendar bucket of t for a rule kind (UTC). */
static long bucket_of(int64_t t, int kind)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	switch (kind) {
	case 0:
		return ((long)(tm.tm_year + 1900) * 1000 + tm.tm_yday) * 100 + tm.tm_hour;
	case 1:
		return (long)(tm.tm_year + 1900) * 1000 + tm.tm_yday;
	case 2: {
		/* ISO week: Thursday of this week decides the year. */
		int wday = (tm.tm_wday + 6) % 7; /* Monday = 0 */
		int64_t thursday = t + (int64_t)(3 - wday) * 86400;
		time_t th = (time_t)thursday;
		struct tm tt2;
		gmtime_r(&th, &tt2);
		return (long)(tt2.tm_year + 1900) * 100 + tt2.tm_yday / 7;
	}
	case 3:
		return (long)(tm.tm_year + 1900) * 100 + tm.tm_mon;
	default:
		return tm.tm_year + 1900;
	}
}

static bool has_tag(const json_t *m, const char *tag)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(m, "tags"), i, t)
		if (json_is_string(t) && !strcmp(json_string_value(t), tag))
			return true;
	return false;
}

/* Group key: host and the ordered list of disk sources (like restic's
 * host+paths), so retention never weighs one server against another. */
static char *group_of(const json_t *m)
{
	struct dv_buf b = DV_BUF_INIT;
	dv_buf_addf(&b, "%s", json_string_value(json_object_get(m, "host")));
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(m, "disks"), i, d)
		dv_buf_addf(&b, "\n%s", json_string_value(json_object_get(d, "source")));
	char *s = dv_strdup((const char *)b.data);
	dv_buf_release(&b);
	return s;
}

bool dv_forget_policy_empty(const struct dv_forget_policy *p)
{
	if (p->keep_last || !dv_duration_is_zero(&p->keep_within) || p->ntags || p->nids)
		return false;
	for (int k = 0; k < DV_KEEP_KINDS; k++)
		if (p->keep[k])
			return false;
	return true;
}

static bool named(const struct dv_forget_policy *p, const char *id)
{
	for (size_t i = 0; i < p->nids; i++)
		if (!strcmp(p->ids[i], id))
			return true;
	return false;
}

static void add_forgotten(struct dv_strlist *l, const char *id)
{
	char name[128];
	snprintf(name, sizeof name, "snapshots/%s", id);
	dv_strlist_add(l, name);
}

void dv_forget_result_release(struct dv_forget_result *res)
{
	dv_strlist_release(&res->unreadable);
	dv_strlist_release(&res->unreadable_msg);
}

int dv_forget(struct dv_repo *r, const struct dv_forget_policy *p, bool dry_run, dv_forget_fn fn, void *ctx,
	      struct dv_forget_result *res, struct dv_err *err)
{
	memset(res, 0, sizeof *res);
	if (dv_forget_policy_empty(p))
		return dv_error(err, DV_E_USAGE, "forget: no keep rule given; refusing to forget every snapshot");
	struct dv_lock *lock = NULL;
	int rc = dry_run ? 0 : dv_lock_acquire(r, true, &lock, err);
	if (rc < 0)
		return rc;
	if (!dry_run && (rc = dv_forgotten_purge(r, &res->replayed, err)) < 0) {
		dv_lock_release(lock);
		return rc;
	}
	struct dv_snapshot_list l;
	rc = dv_snapshot_list_load_readable(r, &l, err);
	if (rc < 0) {
		dv_lock_release(lock);
		return rc;
	}
	struct dv_strlist forgotten = {0}, kept = {0};
	for (size_t i = 0; i < l.unreadable.n; i++) {
		if (named(p, l.unreadable.v[i])) {
			res->removed++;
			if (fn)
				fn(l.unreadable.v[i], NULL, false, "", ctx);
			if (!dry_run)
				add_forgotten(&forgotten, l.unreadable.v[i]);
			continue;
		}
		/* its EBS records stay: the snapshot may yet be repaired */
		dv_strlist_add(&kept, l.unreadable.v[i]);
		dv_strlist_add(&res->unreadable, l.unreadable.v[i]);
		dv_strlist_add(&res->unreadable_msg, l.unreadable_msg.v[i]);
	}
	char **groups = dv_calloc(l.n ? l.n : 1, sizeof *groups);
	bool *done = dv_calloc(l.n ? l.n : 1, sizeof *done);
	for (size_t i = 0; i < l.n; i++)
		groups[i] = group_of(l.v[i].manifest);
	int64_t latest = 0;
	for (size_t i = 0; i < l.n; i++)
		latest = DV_MAX(latest, l.v[i].time);
	bool within = !dv_duration_is_zero(&p->keep_within);
	int64_t cutoff = within ? dv_duration_before(latest, &p->keep_within) : 0;
	for (size_t g = 0; g < l.n; g++) {
		if (done[g])
			continue;
		const char *host = json_string_value(json_object_get(l.v[g].manifest, "host"));
		bool selected = !p->host || !strcmp(p->host, host);
		/* Members of this group, newest first (the list is oldest first). */
		int64_t count_last = p->keep_last;
		int64_t count[DV_KEEP_KINDS];
		long last_bucket[DV_KEEP_KINDS];
		for (int k = 0; k < DV_KEEP_KINDS; k++) {
			count[k] = p->keep[k];
			last_bucket[k] = -1;
		}
		for (size_t j = l.n; j-- > 0;) {
			if (done[j] || strcmp(groups[j], groups[g]))
				continue;
			done[j] = true;
			const json_t *m = l.v[j].manifest;
			char reasons[256] = "";
			size_t rl = 0;
#define REASON(...) rl += (size_t)snprintf(reasons + rl, rl < sizeof reasons ? sizeof reasons - rl : 0, __VA_ARGS__)
			if (p->nids) {
				if (!named(p, l.v[j].id))
					REASON("not named");
			} else if (!selected) {
				REASON("other host");
			} else {
				if (count_last > 0) {
					count_last--;
					REASON("%slast", rl ? ", " : "");
				}
				for (int k = 0; k < DV_KEEP_KINDS; k++) {
					long b = bucket_of(l.v[j].time, k);
					if (count[k] > 0 && b != last_bucket[k]) {
						count[k]--;
						last_bucket[k] = b;
						REASON("%s%s", rl ? ", " : "", bucket_names[k]);
					}
				}
				if (within && l.v[j].time >= cutoff)
					REASON("%swithin", rl ? ", " : "");
				for (size_t t = 0; t < p->ntags; t++)
					if (has_tag(m, p->tags[t])) {
						REASON("%stag %s", rl ? ", " : "", p->tags[t]);
						break;
					}
			}
#undef REASON
			bool keep = reasons[0] != 0;
			if (keep) {
				res->kept++;
				dv_strlist_add(&kept, l.v[j].id);
			} else {
				res->removed++;
			}
			if (fn)
				fn(l.v[j].id, m, keep, reasons, ctx);
			if (!keep && !dry_run)
				add_forgotten(&forgotten, l.v[j].id);
		}
	}
	/* One batch (DeleteObjects on S3): each snapshot object stands alone,
	 * so the order among them does not matter. */
	rc = dv_store_delete_many(r->store, forgotten.v, forgotten.n, err);
	/* Recorded once gone: a forget killed in between leaves those
	 * snapshots unrecorded (a missed detection, never a false alarm). */
	for (size_t i = 0; rc == 0 && i < forgotten.n; i++)
		rc = dv_forgotten_record(r, forgotten.v[i] + strlen("snapshots/"), err);
	/* Then the EBS records of snapshots that are gone: after the
	 * manifests, so a crash in between leaves only records without a
	 * snapshot, which the next forget or prune deletes. */
	if (rc == 0)
		rc = dv_ebs_state_purge(r, (const char *const *)kept.v, kept.n, dry_run, &res->ebs_records_deleted, err);
	dv_strlist_release(&forgotten);
	dv_strlist_release(&kept);
	for (size_t i = 0; i < l.n; i++)
		free(groups[i]);
	free(groups);
	free(done);
	dv_snapshot_list_release(&l);
	dv_lock_release(lock);
	return rc;
}

int dv_repair_snapshots(struct dv_repo *r, bool dry_run, struct dv_strlist *ids, struct dv_strlist *msgs,
			struct dv_err *err)
{
	struct dv_lock *lock = NULL;
	int rc = dry_run ? 0 : dv_lock_acquire(r, true, &lock, err);
	if (rc < 0)
		return rc;
	struct dv_snapshot_list l;
	rc = dv_snapshot_list_load_readable(r, &l, err);
	struct dv_strlist names = {0};
	for (size_t i = 0; rc == 0 && i < l.unreadable.n; i++) {
		dv_strlist_add(ids, l.unreadable.v[i]);
		dv_strlist_add(msgs, l.unreadable_msg.v[i]);
		add_forgotten(&names, l.unreadable.v[i]);
	}
	if (rc == 0 && !dry_run)
		rc = dv_store_delete_many(r->store, names.v, names.n, err);
	for (size_t i = 0; rc == 0 && !dry_run && i < l.unreadable.n; i++)
		rc = dv_forgotten_record(r, l.unreadable.v[i], err);
	dv_strlist_release(&names);
	dv_snapshot_list_release(&l);
	dv_lock_release(lock);
	return rc;
}

/* ---- prune ------------------------------------------------------------- */

enum pack_action { P_KEEP, P_REPACK, P_DELETE };

struct pruner {
	struct dv_repo *r;
	const struct dv_prune_opts *o;
	struct dv_prune_result *res;
	struct dv_err *err;
	struct dv_index_segment *segs;
	char **seg_names;
	size_t nsegs;
	struct dv_usage u;              /* the packs, the copy kept of each used chunk */
	enum pack_action *action;       /* of each of u.packs */
	struct dv_chunk_index *referenced;
	struct dv_chunk_index *diskixs; /* referenced disk index ids */
	struct dv_strlist snapshots;    /* ids of the snapshots there are */
	struct dv_strlist names;
};

static const char *base_of(const char *name)
{
	const char *s = strrchr(name, '/');
	return s ? s + 1 : name;
}


static int load_segments(struct pruner *p)
{
	int rc = dv_store_list_names(p->r->store, "index/", &p->names, p->err);
	if (rc < 0)
		return rc;
	dv_strlist_sort(&p->names);
	p->segs = dv_calloc(p->names.n ? p->names.n : 1, sizeof *p->segs);
	p->seg_names = dv_calloc(p->names.n ? p->names.n : 1, sizeof *p->seg_names);
	for (size_t i = 0; i < p->names.n; i++) {
		struct dv_id x;
		if (dv_id_parse(&x, base_of(p->names.v[i])) < 0)
			continue;
		rc = dv_index_segment_read(p->r, base_of(p->names.v[i]), &p->segs[p->nsegs], p->err);
		if (rc < 0)
			return dv_error_prefix(p->err, "prune: cannot read the index (run check): ");
		p->seg_names[p->nsegs++] = dv_strdup(p->names.v[i]);
	}
	return 0;
}

static int load_references(struct pruner *p)
{
	struct dv_snapshot_list l;
	int rc = dv_snapshot_list_load(p->r, &l, p->err);
	if (rc < 0 && p->err->code == DV_E_CORRUPT)
		return dv_error_prefix(p->err, "prune: cannot tell which data is in use ('diskvault repair snapshots' "
					       "removes damaged manifests): ");
	if (rc < 0)
		return dv_error_prefix(p->err, "prune: ");
	for (size_t i = 0; i < l.n; i++)
		dv_strlist_add(&p->snapshots, l.v[i].id);
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		size_t k;
		json_t *d;
		json_array_foreach(json_object_get(l.v[i].manifest, "disks"), k, d) {
			struct dv_disk_index di = {0};
			rc = dv_repo_load_disk(p->r, d, &di, p->err);
			if (rc < 0) {
				dv_disk_index_release(&di);
				dv_error_prefix(p->err, "prune: snapshot %.16s: ", l.v[i].id);
				break;
			}
			struct dv_id ixid;
			if (dv_id_parse(&ixid, json_string_value(json_object_get(d, "index"))) == 0)
				dv_chunk_index_insert(p->diskixs, &ixid, &(struct dv_chunk_loc){0});
			for (size_t j = 0; j < di.n; j++)
				if (di.v[j].type == DV_EXTENT_DATA)
					dv_chunk_index_insert(p->referenced, &di.v[j].id, &(struct dv_chunk_loc){0});
			dv_disk_index_release(&di);
		}
	}
	p->res->snapshots = l.n;
	dv_snapshot_list_release(&l);
	return rc;
}

struct cand {
	double ratio;    /* unused per used byte */
	uint64_t unused;
	size_t i;
};

/* Highest ratio first; ties: more unused bytes first, then the earlier. */
static int by_ratio(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->ratio != y->ratio)
		return x->ratio > y->ratio ? -1 : 1;
	if (x->unused != y->unused)
		return x->unused > y->unused ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

uint64_t dv_prune_select(struct dv_prune_pack *v, size_t n, uint64_t limit, uint64_t max_repack)
{
	struct cand *c = dv_malloc((n ? n : 1) * sizeof *c);
	size_t nc = 0;
	uint64_t left = 0, rewritten = 0;
	for (size_t i = 0; i < n; i++) {
		v[i].repack = false;
		if (v[i].used && v[i].unused) {
			c[nc++] = (struct cand){(double)v[i].unused / (double)v[i].used, v[i].unused, i};
			left += v[i].unused;
		}
	}
	if (nc)
		qsort(c, nc, sizeof *c, by_ratio);
	for (size_t k = 0; k < nc && left > limit; k++) {
		struct dv_prune_pack *pk = &v[c[k].i];
		if (max_repack != DV_PRUNE_UNLIMITED && pk->used > max_repack - rewritten)
			continue;
		pk->repack = true;
		rewritten += pk->used;
		left -= pk->unused;
	}
	free(c);
	return left;
}

void dv_prune_opts_init(struct dv_prune_opts *o)
{
	*o = (struct dv_prune_opts){.max_unused_pct = DV_PRUNE_DEFAULT_MAX_UNUSED_PCT,
				    .max_unused_bytes = DV_PRUNE_UNLIMITED,
				    .max_repack_bytes = DV_PRUNE_UNLIMITED};
}

uint64_t dv_prune_unused_limit(const struct dv_prune_opts *o, uint64_t used)
{
	if (o->max_unused_pct < 0)
		return o->max_unused_bytes;
	if (!(o->max_unused_pct < 100))
		return DV_PRUNE_UNLIMITED;
	/* unused <= pct % of (used + unused), as restic counts it */
	double lim = o->max_unused_pct * (double)used / (100 - o->max_unused_pct);
	return lim >= 18446744073709551615.0 ? DV_PRUNE_UNLIMITED : (uint64_t)lim; /* rounded down */
}

/* ---- which stored bytes are used (shared with check) -------------------- */

void dv_usage_count(struct dv_usage *u, const struct dv_index_segment *segs, size_t nsegs,
		    struct dv_chunk_index *referenced)
{
	memset(u, 0, sizeof *u);
	u->packmap = dv_chunk_index_new();
	u->chosen = dv_chunk_index_new();
	for (size_t s = 0; s < nsegs; s++) {
		const struct dv_index_segment *seg = &segs[s];
		for (size_t k = 0; k < seg->n; k++) {
			size_t pn, before = u->npacks;
			u->packs = dv_pack_table_find(u->packmap, u->packs, sizeof *u->packs, &u->npacks, &u->cap,
						      &seg->packs[seg->locs[k].pack], &pn);
			struct dv_usage_pack *pk = &u->packs[pn];
			if (u->npacks > before)
				pk->seg = s;
			/* A pack named by several segments (a crashed prune, a
			 * copy) is listed whole by each: count it once. */
			if (pk->seg == s) {
				pk->total++;
				pk->total_bytes += seg->locs[k].stored_len;
			}
			struct dv_chunk_loc loc = seg->locs[k];
			loc.pack = (uint32_t)pn;
			if (!dv_chunk_index_lookup(referenced, &seg->ids[k], NULL))
				continue;
			if (dv_chunk_index_insert(u->chosen, &seg->ids[k], &loc)) {
				pk->used++;
				pk->used_bytes += loc.stored_len;
			} else if (pk->seg == s) {
				struct dv_chunk_loc kept;
				if (dv_chunk_index_lookup(u->chosen, &seg->ids[k], &kept) && kept.pack != pn) {
					u->duplicates++;
					u->duplicate_bytes += loc.stored_len;
				}
			}
		}
	}
	for (size_t i = 0; i < u->npacks; i++) {
		struct dv_usage_pack *pk = &u->packs[i];
		pk->unused_bytes = pk->total_bytes > pk->used_bytes ? pk->total_bytes - pk->used_bytes : 0;
		u->used_bytes += pk->used_bytes;
		u->unused_bytes += pk->unused_bytes;
	}
}

void dv_usage_release(struct dv_usage *u)
{
	free(u->packs);
	dv_chunk_index_free(u->packmap);
	dv_chunk_index_free(u->chosen);
	memset(u, 0, sizeof *u);
}

/* Decides which copy of each referenced chunk survives and what happens to
 * each pack. Every referenced chunk must be found, or prune stops. */
static int classify(struct pruner *p)
{
	struct dv_usage *u = &p->u;
	dv_usage_count(u, p->segs, p->nsegs, p->referenced);
	if (dv_chunk_index_count(u->chosen) != dv_chunk_index_count(p->referenced))
		return dv_error(p->err, DV_E_CORRUPT,
				"prune: %zu chunk(s) that snapshots use are in no pack; nothing was deleted (run check)",
				dv_chunk_index_count(p->referenced) - dv_chunk_index_count(u->chosen));
	struct dv_prune_pack *v = dv_calloc(u->npacks ? u->npacks : 1, sizeof *v);
	struct dv_prune_result *res = p->res;
	for (size_t i = 0; i < u->npacks; i++) {
		v[i].used = u->packs[i].used_bytes;
		v[i].unused = u->packs[i].unused_bytes;
	}
	res->bytes_used = u->used_bytes;
	res->bytes_unused_before = u->unused_bytes;
	res->unused_limit = dv_prune_unused_limit(p->o, res->bytes_used);
	res->bytes_unused_after = dv_prune_select(v, u->npacks, res->unused_limit, p->o->max_repack_bytes);
	p->action = dv_calloc(u->npacks ? u->npacks : 1, sizeof *p->action);
	for (size_t i = 0; i < u->npacks; i++)
		p->action[i] = u->packs[i].used == 0 ? P_DELETE : v[i].repack ? P_REPACK : P_KEEP;
	free(v);
	return 0;
}

struct repack_state {
	struct pruner *p;
	struct dv_pack_writer *w;
	uint32_t w_no;
	struct dv_index_segment *out; /* the new segment */
	size_t first_entry;           /* of the open pack in out */
};

static int repack_flush(struct repack_state *st)
{
	if (!st->w)
		return 0;
	struct dv_pack_info info;
	int rc = dv_pack_writer_finish(st->w, &info, st->p->err);
	st->w = NULL;
	if (rc < 0)
		return rc;
	struct dv_index_segment *s = st->out;
	s->packs[st->w_no] = info;
	st->p->res->packs_written++;
	st->p->res->bytes_written += info.size;
	return 0;
}

static uint32_t add_seg_pack(struct dv_index_segment *s, const struct dv_pack_info *info)
{
	s->packs = dv_realloc(s->packs, (s->npacks + 1) * sizeof *s->packs);
	s->packs[s->npacks] = *info;
	return (uint32_t)s->npacks++;
}

static void add_seg_entry(struct dv_index_segment *s, const struct dv_id *id, const struct dv_chunk_loc *loc)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 1024;
		s->ids = dv_realloc(s->ids, s->cap * sizeof *s->ids);
		s->locs = dv_realloc(s->locs, s->cap * sizeof *s->locs);
	}
	s->ids[s->n] = *id;
	s->locs[s->n] = *loc;
	s->n++;
}

/* A kept chunk of a pack being repacked. */
struct rblob {
	struct dv_id id;
	struct dv_chunk_loc loc;  /* loc.pack: number in u.packs */
};

struct repack_ctx {
	struct repack_state *st;
	struct rblob *v;
	size_t n, cap;
	struct dv_buf range, raw, scratch;
};

static int gather_blob(const struct dv_id *id, const struct dv_chunk_loc *loc, void *arg)
{
	struct repack_ctx *c = arg;
	if (c->st->p->action[loc->pack] != P_REPACK)
		return 0;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 1024;
		c->v = dv_realloc(c->v, c->cap * sizeof *c->v);
	}
	c->v[c->n++] = (struct rblob){*id, *loc};
	return 0;
}

static int cmp_rblob(const void *a, const void *b)
{
	const struct dv_chunk_loc *x = &((const struct rblob *)a)->loc, *y = &((const struct rblob *)b)->loc;
	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Copies one blob (verified first: prune must not spread a damaged blob)
 * into the open new pack. */
static int repack_blob(struct repack_ctx *c, const struct rblob *b, const uint8_t *blob, const char *pack_name)
{
	struct repack_state *st = c->st;
	struct pruner *p = st->p;
	char hex[DV_ID_HEX_LEN + 1], what[256];
	dv_id_hex(hex, &b->id);
	snprintf(what, sizeof what, "chunk %.16s in %s", hex, pack_name);
	int rc = dv_repo_blob_to_chunk(p->r, &b->id, blob, b->loc.stored_len, b->loc.raw_len, &c->scratch, &c->raw,
				       what, p->err);
	if (rc < 0)
		return dv_error_prefix(p->err, "prune stopped before deleting anything: ");
	if (!st->w) {
		rc = dv_pack_writer_new(p->r, &st->w, p->err);
		if (rc < 0)
			return rc;
		struct dv_pack_info pending = {0};
		st->w_no = add_seg_pack(st->out, &pending);
	}
	uint64_t off = 0;
	rc = dv_pack_writer_add(st->w, &b->id, blob, b->loc.stored_len, b->loc.raw_len, &off, p->err);
	if (rc < 0)
		return rc;
	struct dv_chunk_loc nl = {st->w_no, b->loc.stored_len, b->loc.raw_len, off};
	add_seg_entry(st->out, &b->id, &nl);
	p->res->bytes_repacked += b->loc.stored_len;
	if (dv_pack_writer_size(st->w) >= p->r->pack_size)
		rc = repack_flush(st);
	return rc;
}

/*
 * The kept blobs of one pack (v sorted by offset), read with ranged reads
 * of just what is needed: neighbours less than REPACK_GAP apart (pack
 * member headers, a small dead blob) share one read of at most
 * REPACK_MAX_READ bytes; a larger dead stretch is skipped. Never the whole
 * pack unless everything in it is kept.
 */
#define REPACK_GAP (16u << 10)
#define REPACK_MAX_READ (8u << 20)

static int repack_pack(struct repack_ctx *c, const struct rblob *v, size_t n)
{
	struct pruner *p = c->st->p;
	char name[128];
	dv_pack_name(name, sizeof name, &p->u.packs[v[0].loc.pack].info.id);
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n;) {
		uint64_t start = v[i].loc.offset, end = start + v[i].loc.stored_len;
		size_t j = i + 1;
		while (j < n && v[j].loc.offset <= end + REPACK_GAP &&
		       v[j].loc.offset + v[j].loc.stored_len - start <= REPACK_MAX_READ) {
			end = DV_MAX(end, v[j].loc.offset + v[j].loc.stored_len);
			j++;
		}
		rc = dv_store_get_range(p->r->store, name, start, (size_t)(end - start), &c->range, p->err);
		if (rc < 0)
			return dv_error_prefix(p->err, "prune stopped before deleting anything: ");
		dv_debug("prune: %s: blobs %zu..%zu of %zu, bytes [%llu, %llu)", name, i, j, n, (unsigned long long)start,
			 (unsigned long long)end);
		p->res->bytes_read += end - start;
		p->res->range_reads++;
		for (; rc == 0 && i < j; i++)
			rc = repack_blob(c, &v[i], c->range.data + (v[i].loc.offset - start), name);
	}
	return rc;
}

struct unlisted_ctx {
	struct dv_chunk_index *keep;
	struct dv_strlist *out;
	uint64_t *bytes;
};

static int unlisted_cb(const char *name, uint64_t size, void *arg)
{
	struct unlisted_ctx *u = arg;
	struct dv_id id;
	if (dv_id_parse(&id, base_of(name)) < 0)
		return 0; /* not ours: leave it */
	if (u->keep && dv_chunk_index_lookup(u->keep, &id, NULL))
		return 0;
	if (u->bytes)
		*u->bytes += size;
	dv_strlist_add(u->out, name);
	return 0;
}

/* Deletes every object under prefix whose id is not in keep, in one batch
 * (the listing carries the sizes: no request per object). */
static int delete_unlisted(struct pruner *p, const char *prefix, struct dv_chunk_index *keep, uint64_t *count,
			   uint64_t *bytes)
{
	dv_strlist_clear(&p->names);
	struct unlisted_ctx u = {keep, &p->names, bytes};
	int rc = dv_store_list(p->r->store, prefix, unlisted_cb, &u, p->err);
	if (rc < 0)
		return rc;
	*count += p->names.n;
	if (!p->o->dry_run)
		rc = dv_store_delete_many(p->r->store, p->names.v, p->names.n, p->err);
	return rc;
}

int dv_prune(struct dv_repo *r, const struct dv_prune_opts *o, struct dv_prune_result *res, struct dv_err *err)
{
	memset(res, 0, sizeof *res);
	double t0 = dv_now();
	struct dv_lock *lock = NULL;
	int rc = dv_lock_acquire(r, true, &lock, err);
	if (rc < 0)
		return rc;
	struct pruner p = {.r = r, .o = o, .res = res, .err = err};
	p.referenced = dv_chunk_index_new();
	p.diskixs = dv_chunk_index_new();
	struct dv_index_segment out = {0};
	struct repack_state st = {.p = &p, .out = &out};
	struct dv_chunk_index *live = dv_chunk_index_new(); /* pack ids to keep */
	if (!o->dry_run)
		rc = dv_forgotten_purge(r, &res->replayed, err);
	if (rc == 0)
		rc = load_segments(&p);
	if (rc == 0)
		rc = load_references(&p);
	if (rc == 0)
		rc = classify(&p);
	for (size_t i = 0; rc == 0 && i < p.u.npacks; i++) {
		const struct dv_usage_pack *pk = &p.u.packs[i];
		res->packs++;
		res->bytes_before += pk->info.size;
		if (p.action[i] == P_DELETE) {
			res->packs_deleted++;
			res->bytes_freed += pk->info.size;
		} else if (p.action[i] == P_REPACK) {
			res->packs_repacked++;
			res->bytes_freed += pk->info.size;
		} else {
			dv_chunk_index_insert(live, &pk->info.id, &(struct dv_chunk_loc){0});
		}
	}
	if (rc == 0 && !o->dry_run) {
		/* 3. Repack: the kept blobs of every repacked pack, gathered in
		 * one pass over the chosen copies, pack by pack in offset order. */
		struct repack_ctx c = {.st = &st};
		dv_chunk_index_each(p.u.chosen, gather_blob, &c);
		if (c.n)
			qsort(c.v, c.n, sizeof *c.v, cmp_rblob);
		/* exactly the merged ranges: no read-ahead window on top */
		dv_store_set_readahead(r->store, false);
		for (size_t i = 0; rc == 0 && i < c.n;) {
			size_t j = i + 1;
			while (j < c.n && c.v[j].loc.pack == c.v[i].loc.pack)
				j++;
			rc = repack_pack(&c, c.v + i, j - i);
			if (rc == 0)
				rc = dv_lock_refresh(lock, err);
			i = j;
		}
		dv_store_set_readahead(r->store, true);
		if (rc == 0)
			rc = repack_flush(&st);
		free(c.v);
		dv_buf_release(&c.range);
		dv_buf_release(&c.raw);
		dv_buf_release(&c.scratch);
		for (size_t i = 0; i < out.npacks; i++)
			dv_chunk_index_insert(live, &out.packs[i].id, &(struct dv_chunk_loc){0});
		/* 4. One segment for every kept pack (all its entries: check
		 * compares them with the pack's own index) and the new packs.
		 * A pack listed by two old segments (a crashed earlier prune)
		 * contributes each of its entries once. */
		uint32_t *outno = dv_malloc((p.u.npacks ? p.u.npacks : 1) * sizeof *outno);
		for (size_t i = 0; i < p.u.npacks; i++)
			outno[i] = UINT32_MAX;
		struct dv_chunk_index *placed = dv_chunk_index_new();
		for (size_t sg = 0; rc == 0 && sg < p.nsegs; sg++) {
			struct dv_index_segment *seg = &p.segs[sg];
			for (size_t e = 0; e < seg->n; e++) {
				const struct dv_pack_info *pi = &seg->packs[seg->locs[e].pack];
				struct dv_chunk_loc pl;
				if (!dv_chunk_index_lookup(p.u.packmap, &pi->id, &pl) || p.action[pl.pack] != P_KEEP)
					continue;
				uint8_t both[2 * DV_ID_LEN];
				struct dv_id key;
				memcpy(both, pi->id.b, DV_ID_LEN);
				memcpy(both + DV_ID_LEN, seg->ids[e].b, DV_ID_LEN);
				dv_sha256(both, sizeof both, &key);
				if (!dv_chunk_index_insert(placed, &key, &(struct dv_chunk_loc){0}))
					continue;
				if (outno[pl.pack] == UINT32_MAX)
					outno[pl.pack] = add_seg_pack(&out, pi);
				struct dv_chunk_loc l = seg->locs[e];
				l.pack = outno[pl.pack];
				add_seg_entry(&out, &seg->ids[e], &l);
			}
		}
		dv_chunk_index_free(placed);
		free(outno);
		if (rc == 0 && out.npacks) {
			struct dv_buf enc = DV_BUF_INIT;
			dv_index_segment_encode(&out, &enc);
			char id[DV_ID_HEX_LEN + 1];
			rc = dv_repo_put_content(r, "index", enc.data, enc.len, id, err);
			dv_buf_release(&enc);
			char name[128];
			snprintf(name, sizeof name, "index/%s", id);
			/* 5. The old segments go (not the one just written, should
			 * it have the same content as an old one), in one batch that
			 * completes before step 6 starts. */
			dv_strlist_clear(&p.names);
			for (size_t s = 0; rc == 0 && s < p.nsegs; s++)
				if (strcmp(p.seg_names[s], name))
					dv_strlist_add(&p.names, p.seg_names[s]);
			if (rc == 0)
				rc = dv_store_delete_many(r->store, p.names.v, p.names.n, err);
		} else if (rc == 0) {
			rc = dv_store_delete_many(r->store, p.seg_names, p.nsegs, err);
		}
	}
	/* 6. Everything no index names any more. */
	uint64_t unused_bytes = 0;
	if (rc == 0)
		rc = delete_unlisted(&p, "packs/", live, &res->packs_unindexed_deleted, &unused_bytes);
	/* Dead and repacked packs are among those just removed. */
	if (rc == 0)
		res->packs_unindexed_deleted -= res->packs_deleted + res->packs_repacked;
	if (rc == 0)
		rc = delete_unlisted(&p, "diskindex/", p.diskixs, &res->disk_indexes_deleted, NULL);
	if (rc == 0)
		rc = dv_ebs_state_purge(r, (const char *const *)p.snapshots.v, p.snapshots.n, o->dry_run,
					&res->ebs_records_deleted, err);
	if (rc == 0 && dv_store_is_local(r->store)) {
		/* Temporary files older than an hour: younger ones may belong to
		 * a process that is just writing its lock to wait for ours. */
		rc = dv_store_list_names(p.r->store, "tmp/", &p.names, p.err);
		struct dv_strlist old_tmp = {0};
		for (size_t i = 0; rc == 0 && i < p.names.n; i++) {
			char *path = dv_asprintf("%s/%s", dv_store_spool_dir(r->store), base_of(p.names.v[i]));
			struct stat fst;
			bool old = stat(path, &fst) == 0 && dv_unix_now() - (int64_t)fst.st_mtime > 3600;
			free(path);
			if (old)
				dv_strlist_add(&old_tmp, p.names.v[i]);
		}
		res->tmp_deleted += old_tmp.n;
		if (rc == 0 && !o->dry_run)
			rc = dv_store_delete_many(r->store, old_tmp.v, old_tmp.n, err);
		dv_strlist_release(&old_tmp);
	}
	res->bytes_after = res->bytes_before - res->bytes_freed + res->bytes_written;
	res->seconds = dv_now() - t0;
	if (st.w)
		dv_pack_writer_abort(st.w);
	dv_index_segment_release(&out);
	for (size_t s = 0; s < p.nsegs; s++) {
		dv_index_segment_release(&p.segs[s]);
		free(p.seg_names[s]);
	}
	free(p.segs);
	free(p.seg_names);
	dv_strlist_release(&p.names);
	dv_strlist_release(&p.snapshots);
	dv_usage_release(&p.u);
	free(p.action);
	dv_chunk_index_free(live);
	dv_chunk_index_free(p.referenced);
	dv_chunk_index_free(p.diskixs);
	dv_lock_release(lock);
	return rc;
}
