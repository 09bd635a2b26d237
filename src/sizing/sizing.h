/*
 * sizing.h - right-sizing: a machine's inventory (what it is and how much
 * of it was measurably used) plus an EC2 instance catalog gives the
 * cheapest instance type that meets the measured need, with the reasons.
 * The algorithm is documented in docs/rightsizing.md; keep the two in step.
 *
 * Three parts:
 *   - the catalog: a CSV file (data/ec2-catalog.csv, format described in
 *     data/ec2-catalog.md) parsed strictly, kept cell by cell so that a
 *     refresh rewrites it without losing columns it does not know;
 *   - the input: what right-sizing needs, read from any inventory JSON
 *     shape diskvault writes (docs/rightsizing.md, "Input");
 *   - the choice: dv_sizing_choose().
 *
 * Errors follow util.h (0 or -DV_E_xxx with one line in struct dv_err);
 * nothing here prints. Everything is reentrant; a catalog is read-only
 * after loading except through dv_catalog_update().
 */
#ifndef DV_SIZING_H
#define DV_SIZING_H

#include <jansson.h>

#include "util/util.h"

/* ---- catalog ------------------------------------------------------------ */

/* Hard limits of the CSV parser (hostile input is refused, not truncated). */
#define DV_CATALOG_MAX_BYTES (4u << 20)
#define DV_CATALOG_MAX_ROWS 10000
#define DV_CATALOG_MAX_COLUMNS 64
#define DV_CATALOG_MAX_CELL 256

enum dv_arch { DV_ARCH_UNKNOWN = 0, DV_ARCH_X86_64, DV_ARCH_ARM64 };

/* "x86_64" / "arm64" / "unknown". */
const char *dv_arch_name(enum dv_arch a);
/* Accepts the names EC2 and uname(2) use: x86_64, amd64 -> X86_64;
 * arm64, aarch64 -> ARM64; anything else -> UNKNOWN. */
enum dv_arch dv_arch_parse(const char *s);

/* One instance type (a row). Strings are borrowed from the catalog. */
struct dv_catalog_type {
	const char *name;         /* "m6i.large" */
	const char *family;       /* "m6i" (from the name when the column is missing) */
	unsigned generation;      /* 0 when unknown */
	enum dv_arch arch;
	unsigned vcpus;
	double memory_gib;
	bool burstable;
	double baseline_pct;      /* per vCPU; 0 for fixed-performance types */
	bool uefi;                /* boot_modes lists uefi */
	bool legacy_bios;         /* boot_modes lists legacy-bios */
	const double *prices;     /* [nregions], USD per hour; < 0 = not sold/unknown there */
};

struct dv_catalog;

/*
 * Parses catalog text. Lines starting with '#' before the header are kept
 * as comments ("# key: value" lines can be read with
 * dv_catalog_comment()); blank lines are ignored; the header names the
 * columns, and type, arch, vcpus, memory_gib, burstable and at least one
 * price_usd_hour_<region> column are required (region: '_' for '-').
 * Cells may be double-quoted ("" for a quote). Refused as DV_E_CORRUPT,
 * with the line number: a row with the wrong number of cells, a type name
 * outside [a-z0-9.-], duplicates, numbers that are not plain finite
 * non-negative decimals or out of range, an unknown arch, a burstable type
 * without a baseline, NUL bytes, and anything over the limits above.
 * name (borrowed) is used in messages.
 */
int dv_catalog_parse(const char *text, size_t len, const char *name, struct dv_catalog **out,
		     struct dv_err *err) DV_WUR;
/* Reads and parses a file (at most DV_CATALOG_MAX_BYTES). */
int dv_catalog_load(const char *path, struct dv_catalog **out, struct dv_err *err) DV_WUR;
void dv_catalog_free(struct dv_catalog *c);

/*
 * Where the catalog is looked for when none is given explicitly, first
 * readable wins: $DISKVAULT_CATALOG, the user copy written by `catalog
 * refresh` (dv_catalog_user_path()), the installed
 * <prefix>/share/diskvault/ec2-catalog.csv, then data/ec2-catalog.csv of
 * the source tree the binary was built from. explicit (borrowed, may be
 * NULL) overrides all. *path is malloc'ed; DV_E_NOT_FOUND lists the
 * places tried.
 */
int dv_catalog_locate(const char *explicit_path, char **path, struct dv_err *err) DV_WUR;
/* $XDG_DATA_HOME/diskvault/ec2-catalog.csv or ~/.local/share/...;
 * malloc'ed, NULL when neither variable is set. */
char *dv_catalog_user_path(void);

size_t dv_catalog_count(const struct dv_catalog *c);
/* i < count; borrowed. */
const struct dv_catalog_type *dv_catalog_at(const struct dv_catalog *c, size_t i);
const struct dv_catalog_type *dv_catalog_find(const struct dv_catalog *c, const char *type);
/* Regions with a price column ("us-east-1"), in column order. */
size_t dv_catalog_region_count(const struct dv_catalog *c);
const char *dv_catalog_region(const struct dv_catalog *c, size_t i);
/* Index of region, or -1. */
int dv_catalog_region_index(const struct dv_catalog *c, const char *region);
/* Value of the first "# key: value" comment line, or NULL. Borrowed. */
const char *dv_catalog_comment(const struct dv_catalog *c, const char *key);
/* Where it was loaded from ("<memory>" for parsed text). Borrowed. */
const char *dv_catalog_source(const struct dv_catalog *c);

/* Facts DescribeInstanceTypes gives for one type (catalog refresh).
 * Strings borrowed; NULL/0 members leave the catalog's value alone. */
struct dv_catalog_spec {
	const char *type;
	enum dv_arch arch;
	unsigned vcpus;
	uint64_t memory_mib;
	int burstable;             /* -1 unknown, 0, 1 */
	const char *ena;           /* "required", "supported", "unsupported" */
	const char *nvme;
	const char *boot_modes;    /* "legacy-bios;uefi" */
};
/* Updates the row of spec->type (DV_E_NOT_FOUND when there is none). A
 * type that stops being burstable loses its baseline; one that becomes
 * burstable without a known baseline is DV_E_CORRUPT (the baseline comes
 * from documentation, not from the API). *changed tells whether any cell
 * changed. */
int dv_catalog_update(struct dv_catalog *c, const struct dv_catalog_spec *spec, bool *changed,
		      struct dv_err *err) DV_WUR;
/* Sets (or adds) the "# key: value" comment. */
void dv_catalog_set_comment(struct dv_catalog *c, const char *key, const char *value);
/* The catalog as CSV text (comments, header, rows), parseable again. */
void dv_catalog_format(const struct dv_catalog *c, struct dv_buf *out);
/* Writes dv_catalog_format() to path atomically: a temporary file in the
 * same directory, fsync, rename, fsync of the directory. */
int dv_catalog_save(const struct dv_catalog *c, const char *path, struct dv_err *err) DV_WUR;

/* ---- input: measured use --------------------------------------------------- */

/* What right-sizing reads from an inventory. Unknown numbers are < 0. */
struct dv_sizing_input {
	char hostname[256];
	char arch_raw[32];            /* as recorded ("aarch64") */
	enum dv_arch arch;
	int logical_cpus;             /* cpu.logical; < 0 unknown */
	double mem_total;             /* bytes (MemTotal) */
	/* utilisation samples */
	long samples;                 /* samples that measured CPU busy time; 0 = none */
	bool have_history;            /* per-sample history was available */
	double history_hours;         /* time the history spans */
	double cpu_peak, cpu_p95, cpu_p99;  /* busy fraction 0..1 */
	double cpu_avg;               /* average busy fraction (see avg_basis) */
	char avg_basis[96];           /* "highest 24-hour mean", "mean of 12 samples", "p50" ... */
	double mem_peak, mem_p95;     /* bytes in use (MemTotal - MemAvailable) */
	double load_peak, load_p95;   /* 1-minute load average */
	char first[32], last[32];     /* time span of the samples, "" when unknown */
	/* for launch warnings */
	char boot_mode[16];           /* of the running system: "uefi", "bios", "" */
	int nvme, ena;                /* 1 present, 0 missing, -1 unknown */
};

/*
 * Reads any of: the output of `diskvault inventory --json` ({"command":
 * "inventory","inventory":{...},"accumulated":{...}}), a bare inventory
 * object (dv_inventory_collect), an accumulated file written by
 * `inventory --append` ({"samples":N,"latest":{...},"cpu_busy":{...},
 * "history":[...]}), or a snapshot manifest whose "inventory" is one of
 * these. Field names: docs/rightsizing.md, "Input". Values of the wrong
 * type or out of range are DV_E_CORRUPT; a missing inventory (manifest
 * with "inventory": null) is DV_E_NOT_FOUND.
 */
int dv_sizing_input_from_json(const json_t *j, struct dv_sizing_input *in, struct dv_err *err) DV_WUR;
/* Parses text and calls dv_sizing_input_from_json (name for messages). */
int dv_sizing_input_parse(const char *text, size_t len, const char *name, struct dv_sizing_input *in,
			  struct dv_err *err) DV_WUR;

/* ---- the choice ------------------------------------------------------------ */

struct dv_sizing_opts {
	const char *region;           /* price column; required */
	double headroom;              /* fraction added to the measured need (0.30) */
	enum dv_arch arch;            /* override the inventory's; UNKNOWN = use it */
	const char *boot_mode;        /* snapshot's probed boot mode ("uefi", "bios",
					 "uefi+bios", "unknown" or NULL): types that
					 cannot boot it are left out */
	long percentile_min_samples;  /* p95 is used from this many samples on (20) */
};
void dv_sizing_opts_default(struct dv_sizing_opts *o);

/* Why a type that is cheaper than the choice was not taken. */
struct dv_sizing_reject {
	const struct dv_catalog_type *type;
	double price;
	char why[160];
};

struct dv_sizing_result {
	bool from_spec;               /* no samples: sized on the spec */
	enum dv_arch arch;
	double cpu_measured;          /* vCPU-equivalents before headroom */
	char cpu_basis[160];          /* how cpu_measured was derived */
	double cpu_need;              /* vCPUs after headroom */
	double avg_vcpus;             /* average use in vCPU-equivalents (< 0 unknown) */
	double mem_measured;          /* bytes before headroom */
	char mem_basis[160];
	double mem_need;              /* bytes after headroom */
	const struct dv_catalog_type *chosen;
	double chosen_price;          /* USD per hour in the region */
	const struct dv_catalog_type *spec_match;  /* cheapest type with the source's
						      logical CPUs and MemTotal; NULL if none */
	double spec_price;
	struct dv_sizing_reject *rejected;  /* cheaper types and why not, by price */
	size_t nrejected;
	char notes[4][256];           /* warnings ("single sample", ...) */
	size_t nnotes;
};

/* Hours per month used for monthly prices (AWS's convention). */
#define DV_SIZING_HOURS_PER_MONTH 730.0

/*
 * Chooses the cheapest catalog type, priced in o->region, whose
 * architecture matches, whose vCPUs and memory cover the need, that can
 * boot o->boot_mode, and, when burstable, whose baseline covers the
 * average use with headroom (docs/rightsizing.md). DV_E_NOT_FOUND when no
 * type qualifies (the message gives the need); DV_E_USAGE for an unknown
 * region or architecture. res is owned by the caller: release with
 * dv_sizing_result_release(). cat must outlive res.
 */
int dv_sizing_choose(const struct dv_catalog *cat, const struct dv_sizing_input *in,
		     const struct dv_sizing_opts *o, struct dv_sizing_result *res, struct dv_err *err) DV_WUR;
void dv_sizing_result_release(struct dv_sizing_result *res);
/* The result as a new JSON object (schema in docs/rightsizing.md). */
json_t *dv_sizing_result_json(const struct dv_sizing_result *res, const struct dv_sizing_input *in,
			      const struct dv_sizing_opts *o, const struct dv_catalog *cat);

#endif
