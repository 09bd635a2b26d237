/*
 * repo.h - the repository: configuration, snapshots, backup, restore,
 * verify and check. Layout and byte formats: formats/repository.md.
 *
 * Objects (all immutable, all named by the SHA-256 of their stored bytes
 * except config and locks):
 *   config                 JSON, repository id and parameters
 *   snapshots/<id>         JSON manifest; the snapshot exists iff this does
 *   diskindex/<id>         binary disk index (extents of one disk)
 *   index/<id>             binary chunk-index segment (chunk -> pack)
 *   packs/<xx>/<id>        tar archive of zstd chunk blobs + "index" member
 *   locks/<random>         JSON lock (shared or exclusive)
 *
 * Commit order makes every crash harmless: a manifest is written only after
 * every pack, index segment and disk index it depends on is durable (disk
 * indexes may be written before the last pack). Unreferenced objects are
 * garbage.
 *
 * Thread safety: one struct dv_repo per thread of control; the functions
 * below use worker threads internally.
 */
#ifndef DV_REPO_H
#define DV_REPO_H

#include <jansson.h>

#include "chunk/chunk.h"
#include "disk/disk.h"
#include "disk/layoutvol.h"
#include "util/util.h"

struct dv_repo;

struct dv_repo_init_opts {
	struct dv_chunker_params chunker;
	int zstd_level;          /* 1..19; default 3 */
	uint32_t pack_size;      /* target pack size in bytes; default 32 MiB */
	bool encrypt;            /* client-side encryption (formats/encryption.md) */
	uint64_t scrypt_n;       /* 0: tuned to ~0.5 s on this machine */
	unsigned scrypt_p;       /* 0: tuned with n, or 1 when n is given */
};
void dv_repo_init_opts_default(struct dv_repo_init_opts *o);

/*
 * Where passphrases come from (set once by the CLI): fills buf with a
 * NUL-terminated passphrase for the repository at location; with new_key,
 * one to protect a new key (asking twice when interactive). Returns 0 or a
 * negative dv_code.
 */
typedef int (*dv_passphrase_fn)(const char *location, bool new_key, char *buf, size_t cap, struct dv_err *err);
void dv_repo_set_passphrase_source(dv_passphrase_fn fn);

/* Creates a repository at location (a directory that is missing or empty). */
int dv_repo_init(const char *location, const struct dv_repo_init_opts *o, char id_out[33], struct dv_err *err) DV_WUR;
/* Opens an existing repository: DV_E_NOT_REPO when location holds none,
 * DV_E_VERSION when its format is newer than this build. */
int dv_repo_open(const char *location, struct dv_repo **out, struct dv_err *err) DV_WUR;
void dv_repo_free(struct dv_repo *r);
const char *dv_repo_id(const struct dv_repo *r);
const char *dv_repo_location(const struct dv_repo *r);
/* The parsed config object (borrowed). */
const json_t *dv_repo_config(const struct dv_repo *r);

/* ---- keys (encrypted repositories) ------------------------------------ */

struct dv_key_info {
	char id[17];
	char created[32];
	char host[256];
	bool current; /* the key this process opened the repository with */
};
/* Key slots of the repository (none when unencrypted). */
int dv_repo_keys(struct dv_repo *r, struct dv_key_info **out, size_t *n, struct dv_err *err) DV_WUR;
/* Adds a key slot protected by a new passphrase (from the passphrase
 * source); id_out receives its id. */
int dv_repo_key_add(struct dv_repo *r, char id_out[17], struct dv_err *err) DV_WUR;
/* Removes a key slot; the last one and the current one are refused. */
int dv_repo_key_remove(struct dv_repo *r, const char *id, struct dv_err *err) DV_WUR;
/* Removes the slot in use (key passwd, after adding its successor: the
 * newest slot becomes the one in use). */
int dv_repo_key_remove_current(struct dv_repo *r, struct dv_err *err) DV_WUR;
bool dv_repo_encrypted(const struct dv_repo *r);
/*
 * How many threads should read chunks of r one by one at once (ebs-import's
 * block reader): asked (0 = one per CPU), but at most 2 on a remote store.
 * Such reads go through the S3 store's read-ahead, which serves one
 * sequential reader per object well; more workers interleaving chunk by
 * chunk turn its windows into many small ranged GETs (a restore of the
 * 1 GiB benchmark disk with 8 workers, before restore planned its reads:
 * 3,000 requests and 6x the time of 2 workers). Restore and verify plan
 * their reads (restore.c) and are not capped.
 */
unsigned dv_repo_reader_threads(const struct dv_repo *r, unsigned asked);

/* ---- snapshots ------------------------------------------------------- */

struct dv_snapshot_ref {
	char id[DV_ID_HEX_LEN + 1];
	int64_t time;     /* seconds since the epoch */
	int64_t time_us;  /* microseconds, for ordering */
	json_t *manifest; /* owned by the list */
};
struct dv_snapshot_list {
	struct dv_snapshot_ref *v;
	size_t n;
	/* dv_snapshot_list_load_readable: the manifests skipped as unreadable
	 * (damaged: DV_E_CORRUPT), ids and, at the same index, one message each */
	struct dv_strlist unreadable, unreadable_msg;
};
/* All snapshots, oldest first. A manifest that cannot be read or parsed is
 * an error naming it (list is then empty). */
int dv_snapshot_list_load(struct dv_repo *r, struct dv_snapshot_list *out, struct dv_err *err) DV_WUR;
/* The same, but a damaged manifest is skipped and named in out->unreadable
 * (list, forget, repair); other errors (I/O, a wrong key) still fail. */
int dv_snapshot_list_load_readable(struct dv_repo *r, struct dv_snapshot_list *out, struct dv_err *err) DV_WUR;
void dv_snapshot_list_release(struct dv_snapshot_list *l);
/* Resolves "latest", a full id or a unique id prefix (>= 4 hex digits). */
int dv_snapshot_resolve(struct dv_repo *r, const char *spec, char id[DV_ID_HEX_LEN + 1], struct dv_err *err) DV_WUR;
/* Loads and validates one manifest; caller json_decref's *out. */
int dv_snapshot_load(struct dv_repo *r, const char *id, json_t **out, struct dv_err *err) DV_WUR;

/* ---- progress -------------------------------------------------------- */

struct dv_stats {
	uint64_t bytes_total;      /* logical bytes of the disks */
	uint64_t bytes_done;       /* logical bytes processed so far */
	uint64_t bytes_read;       /* bytes read from sources */
	uint64_t bytes_sparse;     /* holes of sparse image files: not read, taken as the zeros they hold */
	uint64_t bytes_zero;       /* in zero extents */
	uint64_t bytes_unused;     /* in unused extents */
	uint64_t bytes_unreadable; /* source sectors that could not be read (--skip-bad-sectors) */
	uint64_t bytes_data;       /* in data extents */
	uint64_t bytes_dedup;      /* data bytes found already stored */
	uint64_t bytes_new_raw;    /* new chunk bytes before compression */
	uint64_t bytes_new_stored; /* new chunk bytes after compression */
	uint64_t bytes_written;    /* bytes written to the repository or target */
	uint64_t chunks;           /* data extents */
	uint64_t chunks_new;
	uint64_t packs;            /* packs written (backup) or read (restore) */
	double seconds;
};

/* The stats as a new JSON object (field names as above). */
json_t *dv_stats_json(const struct dv_stats *s);

/* Called from the calling thread, at most a few times a second, and once
 * at the end with final = true. */
typedef void (*dv_progress_fn)(const struct dv_stats *s, bool final, void *ctx);

/* Polled by long operations; a non-zero value aborts with
 * DV_E_INTERRUPTED (set it from a signal handler). */
extern volatile int *dv_interrupt_flag;

/* ---- backup ---------------------------------------------------------- */

struct dv_backup_source {
	const char *path;           /* device or image file */
};

struct dv_backup_opts {
	const char *name;           /* may be NULL */
	const char *const *tags;
	size_t ntags;
	const char *host;           /* NULL: gethostname() */
	int64_t time;               /* snapshot time (seconds); 0: now */
	bool all_blocks;            /* read every block (else only what filesystems use) */
	bool allow_mounted;         /* image mounted/unclean filesystems whole, with a warning */
	bool skip_bad_sectors;      /* record unreadable sectors as unreadable extents instead of failing */
	bool sha256;                /* also record the plain SHA-256 of each disk */
	unsigned threads;           /* 0: number of CPUs */
	json_t *inventory;          /* recorded as-is, or NULL (borrowed) */
	dv_progress_fn progress;
	void *progress_ctx;
};

/* Images the sources into one new snapshot. On success id receives the
 * snapshot id and stats the totals. */
int dv_backup(struct dv_repo *r, const struct dv_backup_source *src, size_t nsrc, const struct dv_backup_opts *o,
	      char id[DV_ID_HEX_LEN + 1], struct dv_stats *stats, struct dv_err *err) DV_WUR;

/* ---- restore / verify ------------------------------------------------- */

struct dv_restore_opts {
	unsigned disk;   /* index of the disk in the snapshot (0-based) */
	bool disk_set;   /* disk was given (a stream of a multi-disk snapshot needs it) */
	/* A volume of the recorded layout instead of a whole disk: "p2",
	 * "disk1-p2", "p1-md", "vg/lv" (disk/layoutvol.h); NULL: disk. */
	const char *volume;
	/* >= 0: write to this descriptor in order (a pipe: no seeks, zeros
	 * written as zeros), target is then only a name; -1: open target. */
	int stream_fd;
	bool force;      /* overwrite a non-empty target / one with signatures */
	unsigned threads;
	dv_progress_fn progress;
	void *progress_ctx;
};

/* Writes disk o->disk (or volume o->volume) of snapshot id to target
 * (device or image file; sized and checked by dv_target_open) or, with
 * o->stream_fd >= 0, to that descriptor in order. Every chunk is checked
 * against its id and the disk index against the manifest's digest before
 * anything is written; a mismatch is DV_E_CORRUPT naming the first bad
 * offset. A stream whose reader went away (EPIPE) is DV_E_CLOSED. */
int dv_restore(struct dv_repo *r, const char *id, const char *target, const struct dv_restore_opts *o,
	       struct dv_stats *stats, struct dv_err *err) DV_WUR;

/* Reads and checks every chunk that snapshot id references (all disks). */
int dv_verify(struct dv_repo *r, const char *id, const struct dv_restore_opts *o, struct dv_stats *stats,
	      struct dv_err *err) DV_WUR;

/* ---- forget and prune ------------------------------------------------- */

#define DV_KEEP_KINDS 5 /* hourly, daily, weekly, monthly, yearly */

/* Retention rules with restic's meaning; snapshots are grouped by host and
 * disk sources, and a snapshot is kept when any rule keeps it. */
struct dv_forget_policy {
	int64_t keep_last;
	int64_t keep[DV_KEEP_KINDS];   /* most recent per hour/day/ISO week/month/year (UTC) */
	struct dv_duration keep_within; /* calendar span before the newest snapshot */
	const char *const *tags;       /* keep snapshots carrying any of these */
	size_t ntags;
	const char *host;              /* only snapshots of this host are considered */
	/* forget SNAPSHOT...: exactly these full ids go (readable or not) and
	 * every other snapshot stays; the rules above are then not used */
	const char *const *ids;
	size_t nids;
};
bool dv_forget_policy_empty(const struct dv_forget_policy *p);
struct dv_forget_result {
	uint64_t kept, removed;
	uint64_t ebs_records_deleted; /* ebs/ objects of snapshots no longer there */
	uint64_t replayed; /* forgotten earlier, back again, removed (forgotten.c) */
	/* damaged manifests skipped (neither kept nor forgotten unless named
	 * in ids): ids and one message each; dv_forget_result_release */
	struct dv_strlist unreadable, unreadable_msg;
};
void dv_forget_result_release(struct dv_forget_result *res);
/* Told about every snapshot, newest first per group; reasons is "" when
 * the snapshot is forgotten; manifest is NULL for a damaged one named in
 * ids (told first). */
typedef void (*dv_forget_fn)(const char *id, const json_t *manifest, bool keep, const char *reasons, void *ctx);
/* Removes the manifests no rule keeps (exclusive lock). Data is freed by
 * dv_prune. An empty policy is a usage error. */
/* repair snapshots: removes the manifests that cannot be read or parsed
 * (DV_E_CORRUPT; dv_snapshot_list_load_readable) under the exclusive lock,
 * or with dry_run only names them: ids into *ids, one message each into
 * *msgs (caller releases both). Their data goes with the next prune. */
int dv_repair_snapshots(struct dv_repo *r, bool dry_run, struct dv_strlist *ids, struct dv_strlist *msgs,
			struct dv_err *err) DV_WUR;
int dv_forget(struct dv_repo *r, const struct dv_forget_policy *p, bool dry_run, dv_forget_fn fn, void *ctx,
	      struct dv_forget_result *res, struct dv_err *err) DV_WUR;

/*
 * How much unused data (stored blobs no snapshot references) prune may
 * leave in packs that still hold referenced data. Packs with nothing
 * referenced are always deleted; of the others, prune rewrites the ones
 * with the most unused bytes per referenced byte until what remains is
 * within the limit (dv_prune_select).
 */
#define DV_PRUNE_UNLIMITED UINT64_MAX
struct dv_prune_opts {
	/* percent in [0, 100): unused at most this share of the repository
	 * after prune (restic's --max-unused N%); < 0: max_unused_bytes */
	double max_unused_pct;
	uint64_t max_unused_bytes;  /* when max_unused_pct < 0; DV_PRUNE_UNLIMITED: no limit */
	uint64_t max_repack_bytes;  /* referenced bytes rewritten at most; DV_PRUNE_UNLIMITED: no limit */
	bool dry_run;
};
#define DV_PRUNE_DEFAULT_MAX_UNUSED_PCT 5.0
/* Fills o with the defaults: 5 % unused, no repack limit, no dry run. */
void dv_prune_opts_init(struct dv_prune_opts *o);
/* The unused bytes allowed when used bytes are referenced (o borrowed). */
uint64_t dv_prune_unused_limit(const struct dv_prune_opts *o, uint64_t used);

struct dv_prune_result {
	uint64_t snapshots, packs, packs_deleted, packs_repacked, packs_written, packs_unindexed_deleted;
	uint64_t disk_indexes_deleted, tmp_deleted;
	uint64_t ebs_records_deleted;      /* ebs/ objects of snapshots no longer there (ebs_state.h) */
	uint64_t replayed; /* manifests of forgotten snapshots that were back, removed */
	uint64_t bytes_before, bytes_after, bytes_freed, bytes_written, bytes_repacked;
	uint64_t bytes_read, range_reads;  /* fetched from old packs to repack, and in how many reads */
	/* stored blob bytes of indexed packs: referenced; unreferenced before
	 * prune and left after it; the limit (DV_PRUNE_UNLIMITED: none) */
	uint64_t bytes_used, bytes_unused_before, bytes_unused_after, unused_limit;
	double seconds;
};
/* Removes data no snapshot uses (exclusive lock); crash-safe at every step
 * (formats/repository.md). */
int dv_prune(struct dv_repo *r, const struct dv_prune_opts *o, struct dv_prune_result *res, struct dv_err *err) DV_WUR;

/* ---- fixed-size block view (EBS import) -------------------------------- */

/*
 * A snapshot's disk seen as blocks of block_size bytes (EBS: 512 KiB), the
 * last one padded with zeros. Block metadata comes from the disk index
 * alone: whether a block holds any data, and a signature (SHA-256 over the
 * pieces that cover it: extent type, chunk id, offset in the chunk, length)
 * that is equal for two snapshots' blocks whenever the same chunk ranges
 * cover them - so changed blocks are found without reading data. Equal
 * signatures imply equal content; different signatures usually (not
 * always) mean different content.
 *
 * dv_block_reader_read may be called from several threads at once.
 */
struct dv_block_reader;
int dv_block_reader_open(struct dv_repo *r, const char *snapshot_id, unsigned disk, uint32_t block_size,
			 struct dv_block_reader **out, struct dv_err *err) DV_WUR;
void dv_block_reader_free(struct dv_block_reader *br);
uint64_t dv_block_reader_count(const struct dv_block_reader *br);
uint64_t dv_block_reader_disk_size(const struct dv_block_reader *br);
/* has_data: some byte of the block comes from a data extent (it may still
 * be zero: callers that must skip zero blocks can test the bytes). */
void dv_block_reader_info(struct dv_block_reader *br, uint64_t block, bool *has_data, struct dv_id *signature);
/* Reads block into buf (block_size bytes), verifying every chunk. */
int dv_block_reader_read(struct dv_block_reader *br, uint64_t block, uint8_t *buf, struct dv_err *err) DV_WUR;
/*
 * Byte-range reads of the same disk (any offset and length inside it),
 * every chunk verified as restore verifies it. Zero and unused extents
 * read as zeros; a range that touches an unreadable extent (backup
 * --skip-bad-sectors) fails with DV_E_SOURCE naming its bytes, never
 * with silent zeros. Thread safe.
 */
int dv_block_reader_pread(struct dv_block_reader *br, uint64_t off, void *buf, size_t len, struct dv_err *err) DV_WUR;
/* The extent at off: its type (enum dv_extent_type) and the bytes from
 * off to its end (neighbouring zero/unused/unreadable extents of the same
 * type joined); *len 0 past the end. For sparse copies and plans. */
void dv_block_reader_extent(struct dv_block_reader *br, uint64_t off, int *type, uint64_t *len);
/*
 * The chunk cache: decompressed chunks the reader keeps, least recently
 * used evicted first, bounded by bytes of memory they hold (default 8 MiB;
 * 0 = none). Threads that want a chunk another thread is fetching wait for
 * it rather than fetch it again. Safe to call at any time.
 */
void dv_block_reader_set_cache(struct dv_block_reader *br, size_t bytes);
struct dv_block_reader_stats {
	uint64_t hits;       /* chunk reads served from the cache */
	uint64_t misses;     /* chunks fetched from the store (one ranged read each) */
	uint64_t waits;      /* reads that waited for another thread's fetch */
	uint64_t evictions;  /* chunks dropped to stay within the bound */
};
void dv_block_reader_get_stats(struct dv_block_reader *br, struct dv_block_reader_stats *out);
/* The disk as a struct dv_source (virtual, read through pread above), so
 * volumes and filesystem readers of src/disk work on a snapshot. br must
 * outlive it; close it with dv_source_close. */
void dv_block_reader_source(struct dv_block_reader *br, const char *name, struct dv_source *out);

/*
 * A snapshot opened for byte-range reads of its disks and volumes: the
 * manifest, one block reader per disk (with a chunk cache of cache_bytes
 * for all disks together), each as a dv_source, and the volumes of the
 * recorded layout over them (disk/layoutvol.h). What the FUSE mount and
 * the file readers (ls, cat, extract) open. The caller holds a shared lock
 * for as long as it reads. Release with dv_snapshot_vols_release (also
 * after a failure, harmless).
 */
struct dv_snapshot_vols {
	json_t *manifest;             /* owned */
	size_t ndisks;
	struct dv_block_reader **br;  /* owned, [ndisks] */
	struct dv_source *src;        /* owned, [ndisks]: br[i] as a source */
	struct dv_layout_vols vols;   /* over src */
};
int dv_snapshot_vols_open(struct dv_repo *r, const char *id, size_t cache_bytes, struct dv_snapshot_vols *out,
			  struct dv_err *err) DV_WUR;
void dv_snapshot_vols_release(struct dv_snapshot_vols *sv);

/* ---- check ----------------------------------------------------------- */

struct dv_check_report {
	uint64_t snapshots, packs, index_segments, disk_indexes, chunks;
	uint64_t errors;               /* problems found (each also passed to problem()) */
	uint64_t unreferenced_chunks;  /* garbage: stored but no snapshot uses them */
	uint64_t unreferenced_bytes;   /* (one copy of each) */
	uint64_t duplicate_chunks;     /* further copies of used chunks in other packs */
	uint64_t duplicate_bytes;
	uint64_t used_bytes;           /* as prune counts them (bytes_used): one copy of each used chunk */
	uint64_t unused_bytes;         /* all else in indexed packs (prune's bytes_unused_before) */
	uint64_t unindexed_packs;      /* packs no index segment lists (interrupted backup) */
	uint64_t stray_objects;        /* leftover temporary files, unknown names */
	uint64_t packs_read;           /* --read-data: packs read and verified */
	uint64_t bytes_read;
};
/* Checks the repository's structure; every problem is reported through
 * problem(msg, is_error, ctx). Returns 0 when no error was found, else
 * DV_E_CORRUPT (garbage alone is not an error). */
typedef void (*dv_check_problem_fn)(const char *msg, bool is_error, void *ctx);
struct dv_check_opts {
	double read_data;  /* fraction of packs (chosen at random) whose data is read and verified: 0..1 */
};
int dv_check(struct dv_repo *r, const struct dv_check_opts *o, dv_check_problem_fn problem, void *ctx,
	     struct dv_check_report *rep, struct dv_err *err) DV_WUR;

struct dv_rebuild_result {
	uint64_t packs, chunks, packs_skipped, segments_replaced;
};
/* Rebuilds index/ from the packs' own indexes (exclusive lock): reads and
 * verifies every pack; damaged packs are reported through fn and left out. */
int dv_rebuild_index(struct dv_repo *r, dv_check_problem_fn fn, void *ctx, struct dv_rebuild_result *res,
		     struct dv_err *err) DV_WUR;

struct dv_copy_result {
	uint64_t objects_copied, objects_skipped, bytes_copied;
};
/* Copies the repository r to location `to` (local or S3), objects the
 * destination lacks only, data before manifests and config last, so it is
 * resumable and a snapshot visible there is complete. With nsnaps > 0 only
 * the snapshots snaps (borrowed; ids, unique prefixes or "latest") and the
 * packs, disk indexes and EBS records they need are copied, plus one new
 * index segment for copied packs the destination does not index yet
 * (formats/repository.md, section 11). A destination that holds another
 * repository is refused (DV_E_EXISTS). */
int dv_copy(struct dv_repo *r, const char *to, const char *const *snaps, size_t nsnaps, struct dv_copy_result *res,
	    struct dv_err *err) DV_WUR;

/* ---- locks ----------------------------------------------------------- */

#define DV_LOCK_REFRESH 300 /* seconds between refreshes of a held lock */
#define DV_LOCK_STALE 1800  /* a lock not refreshed for this long is stale */

struct dv_lock;
/* Takes a shared (backup, restore, verify, check) or exclusive (forget,
 * prune) lock. DV_E_LOCKED names the holder when a conflicting lock exists
 * (after waiting up to the repository's lock wait); stale locks are
 * ignored. */
int dv_lock_acquire(struct dv_repo *r, bool exclusive, struct dv_lock **out, struct dv_err *err) DV_WUR;
/* Rewrites the lock when DV_LOCK_REFRESH seconds have passed (cheap to call
 * often). l may be NULL. */
int dv_lock_refresh(struct dv_lock *l, struct dv_err *err) DV_WUR;
void dv_lock_release(struct dv_lock *l);
/* How long dv_lock_acquire waits for a conflicting lock (default 0). */
void dv_repo_set_lock_wait(struct dv_repo *r, double seconds);

struct dv_lock_info {
	char name[64];
	bool exclusive, stale, unreadable;
	char host[256];
	int64_t pid;
	int64_t time;
};
/* Reads one lock object; DV_E_NOT_FOUND when it vanished. */
int dv_lock_describe(struct dv_repo *r, const char *name, struct dv_lock_info *info) DV_WUR;
/* Removes stale locks (all locks with all); fn is told about each lock. */
typedef void (*dv_lock_fn)(const struct dv_lock_info *li, bool removed, void *ctx);
int dv_lock_remove(struct dv_repo *r, bool all, dv_lock_fn fn, void *ctx, struct dv_err *err) DV_WUR;

#endif
