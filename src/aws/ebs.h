/*
 * ebs.h - EBS direct APIs (StartSnapshot, PutSnapshotBlock, CompleteSnapshot,
 * ListSnapshotBlocks) over libcurl, plus the one EC2 call an import needs
 * (DescribeSnapshots, to wait for "completed"). Built on aws.h: SigV4,
 * configuration and credentials come from there.
 *
 * Wire facts (EBS direct API 2019-11-02, rest-json, signing name "ebs"):
 * blocks are 524288 bytes; every PutSnapshotBlock carries the base64 SHA-256
 * of its body in x-amz-Checksum and is signed with UNSIGNED-PAYLOAD (the
 * checksum protects the body); CompleteSnapshot may carry the LINEAR
 * aggregate: base64 SHA-256 over the concatenated raw 32-byte block digests
 * in ascending block-index order (AWS EBS user guide, "Use EBS direct APIs
 * checksums"). Errors name their type in x-amzn-ErrorType and a JSON body
 * {"Message"|"message", "Reason"}.
 *
 * Endpoints: dv_aws_endpoint_resolve() for "ebs" and for "ec2" (aws.h: the
 * option, AWS_ENDPOINT_URL_EBS / _EC2, AWS_ENDPOINT_URL, the profile, else
 * https://ebs.REGION.amazonaws.com and https://ec2.REGION.amazonaws.com).
 *
 * Retries: connection errors, timeouts, 5xx, 429, ThrottlingException,
 * RequestThrottledException, ConcurrentLimitExceededException,
 * RequestLimitExceeded (EC2) and - for PutSnapshotBlock within a grace
 * period after StartSnapshot - ResourceNotFoundException (a fresh snapshot
 * may not be visible yet) are retried with exponential backoff and full
 * jitter; anything else fails at once with the service's error code,
 * message and request id. Messages never contain secrets or signatures.
 *
 * Thread safety: a struct dv_ebs is used from one thread, except
 * dv_ebs_wakeup() which any thread may call.
 */
#ifndef DV_AWS_EBS_H
#define DV_AWS_EBS_H

#include "aws.h"
#include "ec2.h"

#define DV_EBS_BLOCK_SIZE 524288u

/* ---- pure helpers (no network; unit tested) --------------------------- */

/* Base64 of the SHA-256 of data into out (45 bytes with NUL); raw digest
 * into digest when not NULL. */
void dv_ebs_block_checksum(const void *data, size_t len, uint8_t digest[32], char out[45]);
/* LINEAR aggregate of n raw block digests given in ascending block-index
 * order, base64 into out. */
void dv_ebs_linear_checksum(const uint8_t (*digests)[32], size_t n, char out[45]);

/* What StartSnapshot answers (and what the import remembers). */
struct dv_ebs_snapshot_info {
	char id[72];
	char status[16];         /* "pending", "completed", "error" */
	char parent[72];         /* "" when none */
	uint64_t volume_size;    /* GiB */
	uint32_t block_size;
};
/* Parses a StartSnapshot answer. Missing SnapshotId or a block size other
 * than 524288 is DV_E_REMOTE. */
int dv_ebs_parse_snapshot(const char *json, size_t len, struct dv_ebs_snapshot_info *out, struct dv_err *err) DV_WUR;

/* An EBS error answer: type from the x-amzn-ErrorType header (text after
 * ':' dropped) or the body's "__type"/"code"; message and reason from the
 * body. Strings are copied, truncated to fit. */
struct dv_ebs_error {
	char type[96];
	char message[384];
	char reason[64];
};
void dv_ebs_parse_error(const char *type_header, const char *json, size_t len, struct dv_ebs_error *out);
/* true when an answer with this HTTP status and error type is worth
 * retrying (throttling, 5xx, 429). */
bool dv_ebs_retryable(long status, const char *type);

/* One page of ListSnapshotBlocks: fn(index, token, ctx) per block; a
 * non-zero return stops and is returned. *next receives a malloc'ed
 * NextToken or NULL. Hostile input (wrong types, negative indexes, tokens
 * longer than 256) is DV_E_REMOTE. */
typedef int (*dv_ebs_block_fn)(uint64_t index, const char *token, void *ctx);
int dv_ebs_parse_block_list(const char *json, size_t len, dv_ebs_block_fn fn, void *ctx, char **next,
			    struct dv_err *err) DV_WUR;

/* The Status of a CompleteSnapshot answer into status (cap bytes,
 * truncated); "pending" when the body is empty, not JSON or has none. */
void dv_ebs_parse_complete(const char *json, size_t len, char *status, size_t cap);

/* The <status> of snapshot id in a DescribeSnapshots answer (EC2 XML, parsed
 * by dv_ec2_parse_snapshots) into status (cap bytes, truncated);
 * DV_E_NOT_FOUND when the answer does not list it, DV_E_REMOTE when it is
 * malformed. */
int dv_ec2_parse_snapshot_status(const char *xml, size_t len, const char *id, char *status, size_t cap,
				 struct dv_err *err) DV_WUR;

/* ---- client ------------------------------------------------------------ */

struct dv_ebs_settings {
	unsigned concurrency;      /* PutSnapshotBlock in flight, default 64 (DISKVAULT_EBS_CONCURRENCY) */
	unsigned max_attempts;     /* per request, default 12 (DISKVAULT_EBS_MAX_ATTEMPTS) */
	double max_retry_seconds;  /* per request, default 600 (DISKVAULT_EBS_RETRY_SECONDS) */
	long connect_timeout;      /* seconds, default 10 */
	long request_timeout;      /* whole attempt, seconds, default 120 (DISKVAULT_EBS_REQUEST_TIMEOUT) */
	double not_found_grace;    /* seconds after start, default 120 */
};

struct dv_ebs;
/* Loads configuration and credentials (aws.h) for opt; settings may be
 * NULL. Caller frees with dv_ebs_free(). */
int dv_ebs_new(const struct dv_aws_options *opt, const struct dv_ebs_settings *settings, struct dv_ebs **out,
	       struct dv_err *err) DV_WUR;
void dv_ebs_free(struct dv_ebs *e);
/* Borrowed strings for messages and records. */
const char *dv_ebs_endpoint(const struct dv_ebs *e);
const char *dv_ebs_region(const struct dv_ebs *e);
unsigned dv_ebs_concurrency(const struct dv_ebs *e);

/* StartSnapshot. All pointers borrowed; NULL/0 members are left out. */
struct dv_ebs_start {
	uint64_t volume_size;      /* GiB, required */
	const char *parent;
	const char *description;
	const char *client_token;
	int timeout_minutes;       /* 10..4320, 0 = service default */
	bool encrypted;
	const char *kms_key_arn;
	const struct dv_aws_kv *tags;
	size_t ntags;
};
int dv_ebs_start_snapshot(struct dv_ebs *e, const struct dv_ebs_start *s, struct dv_ebs_snapshot_info *out,
			  struct dv_err *err) DV_WUR;

/*
 * PutSnapshotBlock for many blocks with up to concurrency requests in
 * flight (curl multi). feed(ctx, &job) is called from this thread when a
 * request slot is free: it returns 1 with a job, 0 when none is ready yet
 * (the loop sleeps until dv_ebs_wakeup() or 50 ms), or 2 when there are no
 * more. done(ctx, job) is called for every finished job (job->result 0 or
 * the error); a negative return stops the upload. Returns the first error.
 * started is the dv_now() time of StartSnapshot (for the not-found grace).
 */
struct dv_ebs_put_job {
	uint64_t index;
	const uint8_t *data;      /* DV_EBS_BLOCK_SIZE bytes, borrowed until done */
	char checksum[45];        /* base64 SHA-256 of data */
	int progress;             /* 0..100, or -1 to leave out */
	int result;               /* out */
	unsigned attempts;        /* out */
	void *user;
};
typedef int (*dv_ebs_feed_fn)(void *ctx, struct dv_ebs_put_job **job);
typedef int (*dv_ebs_done_fn)(void *ctx, struct dv_ebs_put_job *job, const struct dv_err *err);
int dv_ebs_put_blocks(struct dv_ebs *e, const char *snapshot_id, double started, dv_ebs_feed_fn feed,
		      dv_ebs_done_fn done, void *ctx, struct dv_err *err) DV_WUR;
/* Wakes a dv_ebs_put_blocks() waiting for feed (any thread). */
void dv_ebs_wakeup(struct dv_ebs *e);

/* CompleteSnapshot with the changed-blocks count and (when not NULL) the
 * LINEAR checksum; status receives the answer's Status. */
int dv_ebs_complete_snapshot(struct dv_ebs *e, const char *snapshot_id, uint64_t changed_blocks, const char *linear,
			     char status[16], struct dv_err *err) DV_WUR;

/* Every block of a completed snapshot (follows NextToken). */
int dv_ebs_list_blocks(struct dv_ebs *e, const char *snapshot_id, dv_ebs_block_fn fn, void *ctx,
		       struct dv_err *err) DV_WUR;

/* EC2 DescribeSnapshots for one id: status into status (16 bytes);
 * DV_E_NOT_FOUND when the snapshot does not exist (the answer's error code
 * is InvalidSnapshot.NotFound, or it does not list the id), with the
 * service's error line in err. */
int dv_ebs_snapshot_status(struct dv_ebs *e, const char *snapshot_id, char status[16], struct dv_err *err) DV_WUR;

/* EC2 DescribeSnapshots of the account's own snapshots (Owner self) that
 * match every filter ("tag:K", "status", ...), following NextToken: the id
 * of the first one listed into id, "" when none matches. */
int dv_ebs_find_snapshot(struct dv_ebs *e, const struct dv_ec2_filter *filters, size_t nfilters, char id[72],
			 struct dv_err *err) DV_WUR;

/* Counters since dv_ebs_new (requests include retries). */
struct dv_ebs_stats {
	uint64_t requests;
	uint64_t retries;
	uint64_t throttled;
	uint64_t bytes_sent;
};
void dv_ebs_get_stats(const struct dv_ebs *e, struct dv_ebs_stats *out);

#endif
