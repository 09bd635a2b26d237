/*
 * cloud.h - the cloud floor: what diskvault does with EC2 and EBS, above
 * repo, aws and sizing and below the CLI (docs/architecture.md).
 *
 *   - setup: region, EC2 client, the instance catalog
 *   - EBS import: a disk of a snapshot into a new EBS snapshot (block
 *     selection, reader pool, resume file formats/ebs-import-state.md, the
 *     record formats/ebs-record.md)
 *   - launch: the plan (architecture, boot mode, Nitro drivers, instance
 *     type, the three EC2 forms) and its execution
 *   - cleanup: what launch and ebs-import created, found by tag
 *   - catalog refresh: DescribeInstanceTypes into the catalog
 *
 * Nothing here prints: progress goes through the callbacks of struct
 * dv_cloud_cb, results come back in structs, errors in struct dv_err.
 */
#ifndef DV_CLOUD_CLOUD_H
#define DV_CLOUD_CLOUD_H

#include <jansson.h>

#include "aws/aws.h"
#include "aws/ec2.h"
#include "chunk/chunk.h"
#include "sizing/sizing.h"
#include "util/util.h"

struct dv_repo;

/* Tags launch puts on every resource it creates (instance, volumes, AMI)
 * and that cleanup requires before it touches anything. */
#define DV_TAG_CREATED_BY "diskvault:created-by"      /* value "diskvault" */
#define DV_TAG_LAUNCHED_FROM "diskvault:launched-from" /* diskvault snapshot id or snap-... */
#define DV_TAG_LAUNCH_ID "diskvault:launch-id"        /* one value per launch */

/* Tags ebs-import gives every EBS snapshot it starts (StartSnapshot), by
 * which a rerun finds a completed one it did not record. */
#define DV_TAG_IMPORT_SNAPSHOT "diskvault:snapshot"     /* diskvault snapshot id */
#define DV_TAG_IMPORT_DISK "diskvault:disk"             /* disk number */
#define DV_TAG_IMPORT_REPOSITORY "diskvault:repository" /* repository id */
#define DV_TAG_IMPORT_PARENT "diskvault:parent"         /* parent snap-..., or "none" */
#define DV_CLOUD_IMPORT_TAGS 4

#define DV_CLOUD_MAX_TAGS 40
#define DV_CLOUD_MAX_SG 16
#define DV_CLOUD_MAX_WARNINGS 8

/* What the long operations tell their caller. Every member may be NULL. */
struct dv_cloud_cb {
	void *ctx;
	/* true to stop (the operation fails with DV_E_INTERRUPTED) */
	bool (*interrupted)(void *ctx);
	/* ebs-import: blocks processed of todo, blocks and bytes sent so far
	 * (called after every finished block, from the calling thread) */
	void (*import_progress)(void *ctx, uint64_t processed, uint64_t todo, uint64_t sent, uint64_t bytes);
	/* launch: the instance runs(-ish); waiting for "running" follows */
	void (*launch_started)(void *ctx, const char *instance_id, const char *instance_type, const char *ami);
	/* catalog refresh: a type whose specs changed; a type not offered */
	void (*catalog_updated)(void *ctx, const char *type);
	void (*catalog_missing)(void *ctx, const char *type, const char *region);
};

/* ---- setup ------------------------------------------------------------- */

/* The region: explicit, else the AWS configuration's (env, profile,
 * "us-east-1"). *region malloc'ed. */
int dv_cloud_region(const char *explicit_region, char **region, struct dv_err *err) DV_WUR;
/* Configuration, credentials and an EC2 client for region (NULL = the
 * configured one). */
int dv_cloud_ec2(const char *region, struct dv_ec2 **out, struct dv_err *err) DV_WUR;
/* Finds and loads the catalog (dv_catalog_locate order). */
int dv_cloud_catalog(const char *explicit_path, struct dv_catalog **out, struct dv_err *err) DV_WUR;
/* Splits "K=V" (K non-empty, at most 128 bytes; V at most 256; no aws: or
 * diskvault: key); pointers into a malloc'ed copy returned in *buf. -1 when
 * malformed. */
int dv_cloud_parse_tag(const char *arg, char **buf, const char **key, const char **value);
/* "snap-" and hex digits. */
bool dv_cloud_is_ebs_snapshot_id(const char *s);

/* ---- what a manifest says about a disk -------------------------------- */

/* Boot mode of disk `disk` of a manifest ("uefi", "bios", "uefi+bios",
 * "unknown"); borrowed from the manifest or a constant. */
const char *dv_cloud_boot_mode(const json_t *manifest, unsigned disk);
/* Architecture of the OS installed on disk `disk` (layout.os.architecture:
 * "x86_64", "arm64", "i386", ...), or NULL when not recorded or "unknown".
 * Borrowed. */
const char *dv_cloud_disk_arch(const json_t *manifest, unsigned disk);
/* Nitro drivers of the newest kernel installed on disk `disk`
 * (layout.os.nitro_drivers): *nvme, *ena 1 present, 0 missing, -1 unknown;
 * *kernel borrowed. Returns false when the probe recorded no kernel. */
bool dv_cloud_disk_nitro(const json_t *manifest, unsigned disk, int *nvme, int *ena, const char **kernel,
			 const char **initramfs);
/* The configuration lines (fstab, grub) on disk `disk` that name a
 * controller-dependent device such as /dev/sda1 (layout.os.device_names:
 * {file, line, device, text}), or NULL. Borrowed. */
const json_t *dv_cloud_disk_device_names(const json_t *manifest, unsigned disk);

/* ---- EBS import -------------------------------------------------------- */

/* What to do with one 512 KiB block. DATA_P: data over a block the parent
 * holds (zeros must be written when the bytes turn out zero). SAME: found
 * equal to the parent's bytes while reading. */
enum dv_cloud_want { DV_WANT_SKIP, DV_WANT_DATA, DV_WANT_DATA_P, DV_WANT_ZERO, DV_WANT_SAME };

/* Decides a block from the disk index alone. has_data: the block holds a
 * data piece; entry: its new table entry (repo/ebs_state.h; bytes 0..14 set
 * by the caller, the flags byte set here when unchanged); parent: the parent
 * import's entry of the same block, or NULL. *unchanged is set when the
 * signatures match the parent's (the block is then skipped). */
enum dv_cloud_want dv_cloud_block_want(bool has_data, uint8_t *entry, const uint8_t *parent, bool *unchanged);
/* The flags byte of a block's entry once the import is done: present when
 * the EBS snapshot may hold non-zero data there (our write, or the
 * parent's). For SKIP the caller keeps what dv_cloud_block_want set. */
uint8_t dv_cloud_block_flags(enum dv_cloud_want want, bool written);

enum dv_cloud_parent { DV_PARENT_AUTO, DV_PARENT_NONE, DV_PARENT_ID };

struct dv_cloud_import_opts {
	unsigned disk;
	const char *region;       /* NULL: the configured one */
	const char *description;  /* NULL: names the snapshot and host */
	const char *kms_key_id;   /* NULL: not encrypted */
	enum dv_cloud_parent parent;
	const char *parent_id;    /* snap-... with DV_PARENT_ID */
	unsigned concurrency;     /* 0: dv_ebs default */
	const struct dv_aws_kv *tags; /* borrowed, at most DV_CLOUD_MAX_TAGS - DV_CLOUD_IMPORT_TAGS */
	size_t ntags;
};

/* How an import found its EBS snapshot done already (nothing sent). */
enum dv_cloud_import_existing {
	DV_IMPORT_NEW,       /* this run imported (or resumed) it */
	DV_IMPORT_RECORDED,  /* the repository records it: the record is reported as it is */
	DV_IMPORT_TAGGED,    /* a completed snapshot with this import's tags, recorded now */
};

struct dv_cloud_import_result {
	json_t *record;           /* the record stored in the repository (owned) */
	enum dv_cloud_import_existing existing;
	bool written_known;       /* written_total known (not after DV_IMPORT_TAGGED, nor for old records) */
	char ebs_id[80];          /* set once StartSnapshot answered (also on failure) */
	char parent[80];          /* "" = none */
	uint64_t volume_gib;
	bool resumed;
	uint64_t sent, bytes_sent;
	uint64_t written_total, resumed_blocks, unchanged, zero_skipped, same_as_parent;
	uint64_t requests, retries, throttled;
};

/*
 * Imports disk o->disk of snapshot id (64 hex; manifest its manifest,
 * borrowed) into a new EBS snapshot, resuming a killed import of the same
 * disk (state in dv_state_dir()), and stores the record (repo/ebs_state.h).
 * On failure after StartSnapshot, the message names the EBS snapshot and
 * says that running again resumes. res->record is NULL on failure;
 * dv_cloud_import_result_release frees it.
 */
int dv_cloud_ebs_import(struct dv_repo *repo, const char *id, const json_t *manifest,
			const struct dv_cloud_import_opts *o, const struct dv_cloud_cb *cb,
			struct dv_cloud_import_result *res, struct dv_err *err) DV_WUR;
void dv_cloud_import_result_release(struct dv_cloud_import_result *res);

/* ---- launch ------------------------------------------------------------ */

struct dv_cloud_launch_opts {
	unsigned disk;
	const char *instance_type; /* "auto" or a type */
	const char *subnet, *key_name, *name;
	const char *const *security_groups;
	size_t nsecurity_groups;
	const char *const *tag_args; /* "K=V" */
	size_t ntags;
	const char *region, *inventory, *catalog;
	double headroom;          /* < 0: the default */
	enum dv_arch arch;        /* DV_ARCH_UNKNOWN: decide */
	const char *boot_mode;    /* NULL: from the manifest */
	const char *root_device;  /* NULL: /dev/xvda */
};

struct dv_cloud_warnings {
	char v[DV_CLOUD_MAX_WARNINGS][320];
	size_t n;
};

/* The decisions from what the backup recorded (no network). */
struct dv_cloud_decision {
	enum dv_arch arch;
	const char *arch_from;   /* "--arch", "the inventory", "the installed OS", "assumed" */
	const char *boot;        /* "uefi", "bios", "uefi+bios", "unknown" */
	const char *ec2_boot;    /* RegisterImage BootMode, NULL = EC2's default */
	struct dv_cloud_warnings w;
};

/* Architecture, boot mode and the Nitro driver checks for disk `disk` of
 * manifest (NULL: an EBS snapshot id was named), with in the inventory
 * (NULL: none), arch and boot_mode forced by the user (DV_ARCH_UNKNOWN,
 * NULL: decide). DV_E_USAGE when the OS is built for an architecture EC2
 * does not run and no --arch was given. */
int dv_cloud_launch_decide(const json_t *manifest, unsigned disk, const struct dv_sizing_input *in, enum dv_arch arch,
			   const char *boot_mode, struct dv_cloud_decision *d, struct dv_err *err) DV_WUR;

struct dv_cloud_plan {
	char id[DV_ID_HEX_LEN + 1]; /* diskvault snapshot, "" when an EBS id was named */
	char *ebs_id, *region;
	struct dv_cloud_decision d;
	const char *instance_type;  /* o->instance_type or the chosen one */
	char launch_id[17], ami_name[160];
	const char *from;           /* id or ebs_id */
	/* right-sizing, when the type was auto */
	bool sized;
	struct dv_sizing_input in;
	struct dv_sizing_opts so;
	struct dv_sizing_result res;
	struct dv_catalog *cat;
	json_t *sizing_json;        /* NULL unless sized */
	/* the requests: RegisterImage, CreateTags (AMI and, when diskvault made
	 * it, the EBS snapshot), RunInstances; the AMI id is set by name */
	struct dv_ec2_form reg, tags, run;
	char *tagbufs[DV_CLOUD_MAX_TAGS];
};

/*
 * The snapshot of repo that EBS snapshot ebs_id was imported from: its
 * import record (ebs/), else the EBS snapshot's diskvault tags
 * (DescribeSnapshots in region, NULL: the record's or the configured one;
 * diskvault:repository must be repo's id). 0 with id, *disk and *region
 * (malloc'ed: where it was found) set; 0 with id "" when neither names a
 * snapshot of repo that still exists (err->msg then says why: launch goes
 * on without one); errors (EC2 refusing the id) as they are.
 */
int dv_cloud_find_imported(struct dv_repo *repo, const char *ebs_id, const char *region,
			   char id[DV_ID_HEX_LEN + 1], unsigned *disk, char **found_region, struct dv_err *err) DV_WUR;

/* Plans the launch of EBS snapshot ebs_id (with repo, id and manifest NULL)
 * or of the EBS snapshot ebs-import made of disk o->disk of snapshot id
 * (repo, id and manifest given, borrowed; with ebs_id too: that EBS
 * snapshot, an import of that disk, dv_cloud_find_imported). No request is
 * sent. */
int dv_cloud_launch_plan(struct dv_repo *repo, const char *id, const json_t *manifest, const char *ebs_id,
			 const struct dv_cloud_launch_opts *o, struct dv_cloud_plan *p, struct dv_err *err) DV_WUR;
void dv_cloud_plan_release(struct dv_cloud_plan *p);

struct dv_cloud_launched {
	char *ami;
	struct dv_ec2_instances inst; /* inst.v[0] */
};

/* Executes the plan: RegisterImage, CreateTags, RunInstances, then (unless
 * no_wait) DescribeInstances until it runs. */
int dv_cloud_launch_run(struct dv_cloud_plan *p, bool no_wait, const struct dv_cloud_cb *cb,
			struct dv_cloud_launched *out, struct dv_err *err) DV_WUR;
void dv_cloud_launched_release(struct dv_cloud_launched *l);

/* ---- cleanup ----------------------------------------------------------- */

struct dv_cloud_cleanup_opts {
	const char *tag_key, *tag_value; /* what to match besides diskvault:created-by */
	bool imports;                    /* also EBS snapshots tagged diskvault:snapshot=tag_value */
	const char *region;
	bool dry_run, no_wait;
};

struct dv_cloud_cleanup_result {
	/* arrays of {"id", "state"|"name"} (owned) */
	json_t *instances, *images, *snapshots;
};

/* Finds (and unless dry_run terminates, deregisters, deletes, then waits
 * until the instances are gone) what diskvault created with the tag. */
int dv_cloud_cleanup(const struct dv_cloud_cleanup_opts *o, const struct dv_cloud_cb *cb,
		     struct dv_cloud_cleanup_result *res, struct dv_err *err) DV_WUR;
void dv_cloud_cleanup_result_release(struct dv_cloud_cleanup_result *res);

/* ---- catalog refresh --------------------------------------------------- */

struct dv_cloud_refresh_result {
	char *region;      /* owned */
	size_t n, found, changed;
	json_t *missing;   /* array of type names (owned) */
};

/* DescribeInstanceTypes for every type of cat (100 per request, following
 * NextToken), cat updated (prices and baselines kept) and written to output
 * atomically. */
int dv_cloud_catalog_refresh(struct dv_catalog *cat, const char *region, const char *output,
			     const struct dv_cloud_cb *cb, struct dv_cloud_refresh_result *res,
			     struct dv_err *err) DV_WUR;
void dv_cloud_refresh_result_release(struct dv_cloud_refresh_result *res);

#endif
