/*
 * format.h - byte layouts of the binary repository objects, mirroring
 * formats/pack.md, formats/repository.md and formats/disk-index.md.
 * All integers are little-endian. Every object starts with an 8-byte magic
 * and a 32-bit version; readers refuse a version they do not know.
 *
 *   pack index (last tar member "index" of every pack):
 *     Magic "DVPACKIX" | Version u32 | Count u32 | Count x Entry
 *     Entry: Id[32] Offset u64 Stored_Length u32 Raw_Length u32     (48 B)
 *
 *   index segment (object "index/<id>"):
 *     Magic "DVINDEX1" | Version u32 | Pack_Count u32 | Entry_Count u64
 *     Pack_Count x Pack:  Id[32] Size u64 Index_Offset u64 Index_Length u32 Reserved u32 (56 B)
 *     Entry_Count x Entry: Id[32] Pack u32 Stored_Length u32 Raw_Length u32 Reserved u32 Offset u64 (56 B)
 *
 *   disk index (object "diskindex/<id>"):
 *     Magic "DVDISKIX" | Version u32 | Reserved u32 | Disk_Size u64 | Extent_Count u64
 *     Extent_Count x Extent: Length u64 Type u32 Reserved u32 Id[32]  (48 B)
 */
#ifndef DV_REPO_FORMAT_H
#define DV_REPO_FORMAT_H

#define DV_REPO_VERSION 1
#define DV_SNAPSHOT_VERSION 1

#define DV_PACKIX_MAGIC "DVPACKIX"
#define DV_PACKIX_VERSION 1
#define DV_PACKIX_HEADER_SIZE 16
#define DV_PACKIX_ENTRY_SIZE 48
#define DV_PACK_INDEX_NAME "index"
#define DV_PACK_BLOB_SUFFIX ".zst"
/* The member suffix in encrypted repositories: the data is a sealed zstd
 * frame (formats/encryption.md §3), which zstd alone cannot read. Readers
 * find blobs by offset and never look at member names. */
#define DV_PACK_SEALED_SUFFIX ".zst.gcm"

#define DV_INDEX_MAGIC "DVINDEX1"
#define DV_INDEX_VERSION 1
#define DV_INDEX_HEADER_SIZE 24
#define DV_INDEX_PACK_SIZE 56
#define DV_INDEX_ENTRY_SIZE 56

#define DV_DISKIX_MAGIC "DVDISKIX"
#define DV_DISKIX_VERSION 1
#define DV_DISKIX_HEADER_SIZE 32
#define DV_DISKIX_EXTENT_SIZE 48

/* Extent types in a disk index. */
enum dv_extent_type {
	DV_EXTENT_DATA = 1,       /* Length bytes = the chunk Id */
	DV_EXTENT_ZERO = 2,       /* Length zero bytes, nothing stored */
	DV_EXTENT_UNUSED = 3,     /* free space of a known filesystem, restored as zeros */
	DV_EXTENT_UNREADABLE = 4, /* source sectors that could not be read, restored as zeros */
};

/* Upper bounds a reader enforces before allocating. */
#define DV_MAX_PACK_SIZE (4ull << 30)        /* offsets in a pack index fit u32 lengths */
#define DV_MAX_PACK_ENTRIES (1u << 20)
/* A stored blob is one zstd frame of at most DV_CHUNK_SIZE_LIMIT bytes:
 * ZSTD_compressBound() of that limit is below this. */
#define DV_MAX_BLOB_SIZE (DV_CHUNK_SIZE_LIMIT + DV_CHUNK_SIZE_LIMIT / 128 + 65536)
#define DV_MAX_INDEX_OBJECT (1ull << 31)
#define DV_MAX_MANIFEST (64u << 20)
#define DV_MAX_CONFIG (1u << 20)
#define DV_MAX_DISKIX_OBJECT (1ull << 33)

#endif
