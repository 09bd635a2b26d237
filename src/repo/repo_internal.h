/* repo_internal.h - shared by the files of src/repo only. */
#ifndef DV_REPO_INTERNAL_H
#define DV_REPO_INTERNAL_H

#include <pthread.h>

#include "format.h"
#include "repo.h"
#include "store/store.h"

struct dv_repo {
	struct dv_store *store;
	json_t *config;
	char id[33];
	struct dv_chunker_params chunker;
	int zstd_level;
	uint32_t pack_size;
	double lock_wait;
	bool encrypted;
	bool kdf_parallel;   /* key slots use scrypt-parallel, not scrypt */
	uint8_t enc_key[32]; /* AES-256-GCM key for every sealed object */
	uint8_t mac_key[32]; /* HMAC-SHA256 key for chunk ids */
	int key_slot;        /* the key slot the passphrase opened, or -1 */
	struct dv_strlist forgotten; /* ledger lines "<id> <time>", sorted (forgotten.c) */
	char *ledger_path;
};

/* ---- forgotten-snapshot ledger (forgotten.c) ----------------------------
 * Snapshots that forget removed from this repository (this id at this
 * location), remembered on this machine so that a manifest that comes
 * back is reported as replayed. */

/* Reads the ledger (missing = empty); dv_repo_open calls it. */
int dv_forgotten_load(struct dv_repo *r, struct dv_err *err) DV_WUR;
/* When id was forgotten (RFC 3339), or NULL when it was not. */
const char *dv_forgotten_when(const struct dv_repo *r, const char *id);
/* Appends id to the ledger (fsync'ed), once its manifest is deleted. */
int dv_forgotten_record(struct dv_repo *r, const char *id, struct dv_err *err) DV_WUR;
/* Drops id from the ledger (copy re-adding a snapshot on purpose). */
int dv_forgotten_unrecord(struct dv_repo *r, const char *id, struct dv_err *err) DV_WUR;
/* Deletes the manifests of forgotten snapshots that are back; *removed
 * counts them. Callers hold the exclusive lock. */
int dv_forgotten_purge(struct dv_repo *r, uint64_t *removed, struct dv_err *err) DV_WUR;

/* ---- encryption hooks (repo.c) ------------------------------------------
 * With an unencrypted repository these are the identity (seal/open return
 * their input) and plain SHA-256; with an encrypted one every stored
 * object is an AES-256-GCM blob whose associated data names its role. */

struct dv_pack_entry;

/* Chunk id of data: SHA-256, or HMAC-SHA256 under the MAC key. */
void dv_repo_chunk_id(const struct dv_repo *r, const void *p, size_t n, struct dv_id *out);
/* Returns the bytes to store for in[0..n) (in itself, or scratch's data)
 * and their length in *out_len. */
const uint8_t *dv_repo_seal(const struct dv_repo *r, const void *aad, size_t aad_len, const void *in, size_t n,
			    struct dv_buf *scratch, size_t *out_len);
/* The inverse: the plaintext of a stored blob, or DV_E_CORRUPT naming what. */
int dv_repo_unseal(const struct dv_repo *r, const void *aad, size_t aad_len, const void *in, size_t n,
		   struct dv_buf *scratch, const uint8_t **out, size_t *out_len, const char *what,
		   struct dv_err *err) DV_WUR;
/* A stored chunk blob (sealed or not) to raw bytes in out, checked against
 * id and raw_len. scratch is reused between calls. */
int dv_repo_blob_to_chunk(const struct dv_repo *r, const struct dv_id *id, const void *blob, size_t n, size_t raw_len,
			  struct dv_buf *scratch, struct dv_buf *out, const char *what, struct dv_err *err) DV_WUR;
/* The bytes of a pack's index member to entries (unsealing first). */
int dv_pack_index_parse(const struct dv_repo *r, const uint8_t *p, size_t n, struct dv_pack_entry **out,
			size_t *count, const char *what, struct dv_err *err) DV_WUR;

/* ---- compression (compress.c) ---------------------------------------- */

/* Compresses src into out (replacing its content) at level; thread safe
 * (one context per thread). */
void dv_compress(const void *src, size_t n, int level, struct dv_buf *out);
/* true when p starts with a zstd frame's magic number. */
bool dv_is_zstd_frame(const void *p, size_t n);
/* Decompresses one zstd frame that records its content size (at most
 * cap bytes) into out. */
int dv_decompress_frame(const void *src, size_t n, size_t cap, struct dv_buf *out, const char *what,
			struct dv_err *err) DV_WUR;
/* Decompresses a blob that must expand to exactly raw_len bytes. */
int dv_decompress(const void *src, size_t n, size_t raw_len, struct dv_buf *out, const char *what,
		  struct dv_err *err) DV_WUR;

/* ---- chunk index (chunkindex.c) --------------------------------------- */

/* Where a chunk is stored. */
struct dv_chunk_loc {
	uint32_t pack;        /* number in the index's pack table */
	uint32_t stored_len;  /* compressed blob length */
	uint32_t raw_len;     /* chunk length */
	uint64_t offset;      /* of the blob in the pack */
};

struct dv_pack_info {
	struct dv_id id;
	uint64_t size;
	uint64_t index_offset;
	uint32_t index_len;
	bool known;           /* id is final (pack published) */
};

/*
 * In-memory chunk index: a dense entry array plus an open-addressing table
 * of 32-bit entry numbers keyed by the id's first bytes. 56 bytes an entry
 * (array grown by 1.5x) plus 8-16 bytes of table (load 0.25..0.5): 64-100
 * bytes per chunk: 1.0-1.6 GiB per TiB of unique data at the default
 * 64 KiB average chunk, 4x less with init --chunk-size 256. Lookups may run
 * concurrently with one inserting thread (rwlock).
 */
struct dv_chunk_index;
struct dv_chunk_index *dv_chunk_index_new(void);
void dv_chunk_index_free(struct dv_chunk_index *ix);
/* Loads every index/ segment of the repository (checking each one's name
 * against its content); duplicates keep the first location. Into an empty
 * index only. Past DV_CHUNK_CACHE_MIN entries the segments are merged into
 * a local sorted file (chunkcache.h) instead of memory, or that file is
 * reused when it was built from the same segments: then only a fence
 * table (~0.1 byte a chunk) and the pack table stay in memory, and
 * lookups cost one pread of 4 KiB from the page cache. */
int dv_chunk_index_load(struct dv_chunk_index *ix, struct dv_repo *r, struct dv_err *err) DV_WUR;
/* The names of the segments the last dv_chunk_index_load read (borrowed,
 * sorted), so a writer can tell later whether a prune replaced them. */
const char *const *dv_chunk_index_segments(const struct dv_chunk_index *ix, size_t *n);
/* true and *loc filled when present (loc may be NULL). */
bool dv_chunk_index_lookup(struct dv_chunk_index *ix, const struct dv_id *id, struct dv_chunk_loc *loc);
/* Adds a chunk; returns false when it was already present. */
bool dv_chunk_index_insert(struct dv_chunk_index *ix, const struct dv_id *id, const struct dv_chunk_loc *loc);
/* Pack table. */
uint32_t dv_chunk_index_add_pack(struct dv_chunk_index *ix, const struct dv_pack_info *p);
void dv_chunk_index_set_pack(struct dv_chunk_index *ix, uint32_t n, const struct dv_pack_info *p);
const struct dv_pack_info *dv_chunk_index_pack(struct dv_chunk_index *ix, uint32_t n);
/*
 * A table of per-pack records v[0..*n) (elem bytes each, the first member a
 * struct dv_pack_info) with map (pack id -> record number in loc.pack):
 * *no receives the number of info's pack; a pack not in the table yet gets
 * a new zeroed record holding info (v grown, *cap its capacity). Returns v,
 * possibly moved; the caller frees it.
 */
void *dv_pack_table_find(struct dv_chunk_index *map, void *v, size_t elem, size_t *n, size_t *cap,
			 const struct dv_pack_info *info, size_t *no);
uint32_t dv_chunk_index_pack_count(struct dv_chunk_index *ix);
size_t dv_chunk_index_count(struct dv_chunk_index *ix);
/* true when dv_chunk_index_load left the loaded entries in the local
 * sorted cache file (formats/index-cache.md) rather than in memory. */
bool dv_chunk_index_on_disk(const struct dv_chunk_index *ix);
/* Calls fn for every entry (no concurrent inserts allowed meanwhile). */
typedef int (*dv_chunk_index_fn)(const struct dv_id *id, const struct dv_chunk_loc *loc, void *ctx);
int dv_chunk_index_each(struct dv_chunk_index *ix, dv_chunk_index_fn fn, void *ctx);

/* Object names. */
void dv_pack_name(char *out, size_t n, const struct dv_id *pack);

/* Index segment (de)serialisation. */
struct dv_index_segment {
	struct dv_pack_info *packs;
	size_t npacks;
	struct dv_id *ids;
	struct dv_chunk_loc *locs; /* loc.pack indexes packs[] */
	size_t n, cap;
};
void dv_index_segment_release(struct dv_index_segment *s);
void dv_index_segment_encode(const struct dv_index_segment *s, struct dv_buf *out);
int dv_index_segment_decode(const uint8_t *p, size_t n, struct dv_index_segment *s, const char *what,
			    struct dv_err *err) DV_WUR;
/* Reads index/<name> and verifies its content hash. */
int dv_index_segment_read(struct dv_repo *r, const char *name, struct dv_index_segment *s, struct dv_err *err) DV_WUR;

/* ---- packs (pack.c) --------------------------------------------------- */

struct dv_pack_entry {
	struct dv_id id;
	uint64_t offset;
	uint32_t stored_len, raw_len;
};

/* Builds one pack in the store's spool directory. */
struct dv_pack_writer;
int dv_pack_writer_new(struct dv_repo *r, struct dv_pack_writer **out, struct dv_err *err) DV_WUR;
/* Appends a blob; *offset receives its data offset in the pack. */
int dv_pack_writer_add(struct dv_pack_writer *w, const struct dv_id *id, const void *blob, uint32_t stored_len,
		       uint32_t raw_len, uint64_t *offset, struct dv_err *err) DV_WUR;
uint64_t dv_pack_writer_size(const struct dv_pack_writer *w);
size_t dv_pack_writer_count(const struct dv_pack_writer *w);
/* Writes the pack index member and closes the archive; fills info (the id
 * is final). On failure w is freed. */
int dv_pack_writer_seal(struct dv_pack_writer *w, struct dv_pack_info *info, struct dv_err *err) DV_WUR;
/* fsyncs a sealed pack and publishes it as packs/<xx>/<id>. May run on
 * another thread than the writer. Frees w in every case. */
int dv_pack_writer_publish(struct dv_pack_writer *w, struct dv_err *err) DV_WUR;
/* seal + publish. */
int dv_pack_writer_finish(struct dv_pack_writer *w, struct dv_pack_info *info, struct dv_err *err) DV_WUR;
/* Discards an unfinished pack (removes its spool file). */
void dv_pack_writer_abort(struct dv_pack_writer *w);

/* Pack index member (de)serialisation and reading. */
void dv_pack_index_encode(const struct dv_pack_entry *e, size_t n, struct dv_buf *out);
int dv_pack_index_decode(const uint8_t *p, size_t len, struct dv_pack_entry **out, size_t *n, const char *what,
			 struct dv_err *err) DV_WUR;
int dv_pack_read_index(struct dv_repo *r, const struct dv_pack_info *p, struct dv_pack_entry **out, size_t *n,
		       struct dv_err *err) DV_WUR;

/* Checks a whole pack held in memory (pack[0..len)): its index member at
 * info's position and every blob it lists (unseal, decompress, id). bad()
 * is called once per damaged blob with a message naming it. Returns the
 * number of damaged blobs, or a negative code when the index member cannot
 * be read; *ents and *n receive the entries (caller frees *ents). */
int dv_pack_verify(const struct dv_repo *r, const uint8_t *pack, size_t len, const struct dv_pack_info *info,
		   const char *name, struct dv_pack_entry **ents, size_t *n, void (*bad)(const char *msg, void *ctx),
		   void *ctx, struct dv_err *err) DV_WUR;

/* Reads, decompresses and verifies one chunk; out receives raw bytes. */
int dv_chunk_read(struct dv_repo *r, struct dv_chunk_index *ix, const struct dv_id *id, struct dv_buf *scratch,
		  struct dv_buf *out, struct dv_err *err) DV_WUR;

/* ---- disk index (diskindex.c) ------------------------------------------ */

struct dv_extent {
	uint64_t length;
	uint32_t type; /* enum dv_extent_type */
	struct dv_id id;
};

struct dv_disk_index {
	uint64_t disk_size;
	struct dv_extent *v;
	size_t n, cap;
};
void dv_disk_index_release(struct dv_disk_index *d);
/* The first extent that ends after off, given start[i] = the disk offset
 * of extent i of n and start[n] = the disk size (n when off is past it). */
size_t dv_extent_find(const uint64_t *start, size_t n, uint64_t off);
/* That start[] table of d (n + 1 entries, malloc'd). */
uint64_t *dv_extent_starts(const struct dv_disk_index *d);
/* Appends an extent, merging adjacent zero/unused extents of one type. */
void dv_disk_index_add(struct dv_disk_index *d, uint32_t type, uint64_t length, const struct dv_id *id);
void dv_disk_index_encode(const struct dv_disk_index *d, struct dv_buf *out);
int dv_disk_index_decode(const uint8_t *p, size_t n, struct dv_disk_index *d, const char *what,
			 struct dv_err *err) DV_WUR;
/* Reads diskindex/<name>, verifies content hash and the sum of lengths. */
int dv_disk_index_read(struct dv_repo *r, const char *name, struct dv_disk_index *d, struct dv_err *err) DV_WUR;

/* The object ids (64 lowercase hex) under dir ("snapshots", "index", ...),
 * sorted, replacing out's content; other names are skipped. */
int dv_repo_list_ids(struct dv_repo *r, const char *dir, struct dv_strlist *out, struct dv_err *err) DV_WUR;

/* Parses and validates a manifest (plaintext); what names it in errors. */
int dv_manifest_parse(const uint8_t *p, size_t n, json_t **out, const char *what, struct dv_err *err) DV_WUR;
/* Parses a config object's bytes for the repository r (whose store names
 * it in messages); exposed for the fuzz target. */
int dv_repo_parse_config(struct dv_repo *r, const uint8_t *p, size_t n, struct dv_err *err) DV_WUR;

/* Loads the disk index a manifest's disk entry names and checks it against
 * the entry's digest and size. */
int dv_repo_load_disk(struct dv_repo *r, const json_t *disk, struct dv_disk_index *d, struct dv_err *err) DV_WUR;

/* ---- objects ------------------------------------------------------------ */

/* Stores data as <dir>/<sha256 of data>; id_hex receives the name. */
int dv_repo_put_content(struct dv_repo *r, const char *dir, const void *data, size_t len,
			char id_hex[DV_ID_HEX_LEN + 1], struct dv_err *err) DV_WUR;
/* Reads <dir>/<id_hex> (at most cap bytes) and checks its SHA-256. */
int dv_repo_get_content(struct dv_repo *r, const char *dir, const char *id_hex, size_t cap, struct dv_buf *out,
			struct dv_err *err) DV_WUR;
bool dv_repo_interrupted(void);

/* ---- which stored bytes are used: prune's accounting, shared with check -- */

/* One pack that index segments name. */
struct dv_usage_pack {
	struct dv_pack_info info;
	size_t seg;            /* the first segment that names it */
	uint64_t used_bytes;   /* stored bytes of the copies kept */
	uint64_t total_bytes;  /* stored bytes of all its blobs */
	uint64_t unused_bytes; /* total_bytes - used_bytes */
	size_t used, total;    /* blob counts */
};

struct dv_usage {
	struct dv_chunk_index *packmap; /* pack id -> number in packs (loc.pack) */
	struct dv_chunk_index *chosen;  /* used chunk id -> the copy kept (loc.pack: number in packs) */
	struct dv_usage_pack *packs;
	size_t npacks, cap;
	uint64_t used_bytes, unused_bytes;   /* sums over packs */
	uint64_t duplicates, duplicate_bytes; /* further copies of used chunks in other packs */
};
/*
 * Splits the stored bytes of the packs that segs[0..nsegs) name (in the
 * order of their names) into used and unused, the way prune decides what
 * to keep: of each chunk in referenced (the chunks snapshots use) the first
 * copy in segment order is kept and used; everything else is unused -
 * chunks no snapshot uses, and every further copy of a used chunk stored in
 * another pack (a duplicate: two backups that ran concurrently, a copy into
 * a repository that had the data already; counted in duplicates too). A
 * pack that several segments name is counted once, from the first. A used
 * chunk in no pack is not in chosen (prune refuses to run, check reports
 * it). u is initialised here (borrows nothing); release with
 * dv_usage_release().
 */
void dv_usage_count(struct dv_usage *u, const struct dv_index_segment *segs, size_t nsegs,
		    struct dv_chunk_index *referenced);
void dv_usage_release(struct dv_usage *u);

/* ---- prune's choice of packs to rewrite (prune.c) ----------------------- */

struct dv_prune_pack {
	uint64_t used;    /* stored bytes of the blobs kept */
	uint64_t unused;  /* stored bytes of the others */
	bool repack;      /* set by dv_prune_select */
};
/*
 * Marks the packs to rewrite, v[0..n) (in place; the order is kept). Only
 * packs holding both used and unused blobs are candidates (a pack with
 * nothing used is deleted, one with nothing unused kept). They are taken
 * in order of unused bytes per used byte, highest first - the most space
 * freed per byte written; nearly empty packs come first - until the
 * unused bytes of the candidates not taken are at most limit. A candidate
 * whose used bytes would take the total rewritten above max_repack is
 * passed over (DV_PRUNE_UNLIMITED: no cap). Returns the unused bytes left
 * in packs that are kept.
 */
uint64_t dv_prune_select(struct dv_prune_pack *v, size_t n, uint64_t limit, uint64_t max_repack);

#endif
