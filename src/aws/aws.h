/*
 * aws.h - diskvault's small AWS client: SigV4 signing, credentials and
 * configuration (environment, shared files, instance metadata), an HTTP
 * layer over libcurl with bounded retries, and the S3 calls the store needs.
 *
 * Only this folder includes curl.h and expat.h. Errors follow util.h: 0 or
 * -DV_E_xxx with one line in struct dv_err. Remote failures are
 * DV_E_REMOTE, a missing object is DV_E_NOT_FOUND. Messages name the S3
 * error code, message, request id and the object key; they never contain
 * a secret key, a session token or a signature.
 *
 * Thread safety: dv_sigv4_*, the INI and XML parsers are reentrant. A
 * struct dv_s3 may be used from several threads at once (it keeps a pool of
 * curl handles behind a mutex); configuration loading is not thread-safe
 * (it reads the environment) and is meant to run once at startup.
 */
#ifndef DV_AWS_H
#define DV_AWS_H

#include "util/util.h"

/* ---- credentials ----------------------------------------------------- */

/* Owned strings; release with dv_aws_creds_release() (wipes the secret). */
struct dv_aws_creds {
	char *access_key_id;
	char *secret_access_key;
	char *session_token;  /* NULL when none */
	int64_t expiration;   /* unix time, 0 = does not expire */
	char source[48];      /* "env", "shared-credentials-file", "imds", ... */
};
void dv_aws_creds_release(struct dv_aws_creds *c);

/* ---- SigV4 ----------------------------------------------------------- */

/* A borrowed key/value pair (header or query parameter). */
struct dv_aws_kv {
	const char *key;
	const char *value;
};

/* What is signed. path and query are *decoded*: the signer URI-encodes
 * them once (S3 rule) and the HTTP layer sends the same encoding. headers
 * are all signed and must include "Host". All pointers borrowed. */
struct dv_sigv4_request {
	const char *method;
	const char *path;
	const struct dv_aws_kv *query;
	size_t n_query;
	const struct dv_aws_kv *headers;
	size_t n_headers;
	const char *payload_hash;  /* lowercase hex SHA-256 or "UNSIGNED-PAYLOAD" */
};

struct dv_sigv4_params {
	const char *region;
	const char *service;
	int64_t time;             /* unix seconds of the request */
	bool normalize_path;      /* remove "." / ".." / "//" (never for S3) */
	bool add_content_sha256;  /* sign x-amz-content-sha256: payload_hash */
	bool omit_session_token;  /* token sent but not signed (old STS rule) */
};

/* Owned results; release with dv_sigv4_result_release(). */
struct dv_sigv4_result {
	struct dv_buf canonical_request;
	struct dv_buf string_to_sign;
	struct dv_buf authorization;   /* value of the Authorization header */
	char signature[65];
	char amz_date[17];             /* X-Amz-Date value, "20150830T123600Z" */
};

int dv_sigv4_sign(const struct dv_sigv4_request *req, const struct dv_aws_creds *creds,
		  const struct dv_sigv4_params *params, struct dv_sigv4_result *out, struct dv_err *err) DV_WUR;
void dv_sigv4_result_release(struct dv_sigv4_result *r);
/* Appends the SigV4 URI encoding of s (unreserved bytes kept, '/' kept
 * when keep_slash, everything else %XX upper case). */
void dv_aws_uri_encode(struct dv_buf *out, const char *s, bool keep_slash);
/* Percent-decodes s into out ("%zz" stays literal). */
void dv_aws_uri_decode(struct dv_buf *out, const char *s, size_t n);
/* Lowercase hex SHA-256 of data into out[65]. */
void dv_aws_sha256_hex(char out[65], const void *data, size_t len);

/* ---- shared config/credentials files (AWS INI dialect) ---------------- */

/*
 * Sections "[name]"; "key = value"; '#' and ';' start comment lines;
 * a key with an empty value followed by indented "sub = value" lines
 * stores them as "key.sub" (the nested form used for "s3 =" settings).
 * Keys are matched case-sensitively after trimming; later duplicates win.
 */
struct dv_aws_ini;
int dv_aws_ini_parse(const char *text, size_t len, struct dv_aws_ini **out, struct dv_err *err) DV_WUR;
/* Borrowed value, or NULL. */
const char *dv_aws_ini_get(const struct dv_aws_ini *ini, const char *section, const char *key);
bool dv_aws_ini_has_section(const struct dv_aws_ini *ini, const char *section);
void dv_aws_ini_free(struct dv_aws_ini *ini);

/* ---- resolved configuration ------------------------------------------ */

/* Explicit settings from the command line; NULL = not given. Borrowed. */
struct dv_aws_options {
	const char *profile;
	const char *region;
	const char *endpoint;
};

/* Owned strings; release with dv_aws_config_release(). */
struct dv_aws_config {
	char *profile;       /* profile used for files ("default") */
	char *region;        /* never NULL after load ("us-east-1" fallback) */
	char *endpoint;      /* custom endpoint URL, or NULL for AWS */
	bool path_style;     /* true for custom endpoints unless configured */
	char *config_path;   /* where they were looked for (messages) */
	char *credentials_path;
};

/*
 * Resolves region, endpoint and addressing style with the AWS CLI's
 * precedence: explicit option, then environment (AWS_REGION,
 * AWS_DEFAULT_REGION), then the profile in AWS_CONFIG_FILE or
 * ~/.aws/config ("region", "s3.addressing_style"). The endpoint is
 * dv_aws_endpoint_resolve(cfg, "s3", opt->endpoint), kept only when it is
 * a custom one.
 */
int dv_aws_config_load(const struct dv_aws_options *opt, struct dv_aws_config *cfg, struct dv_err *err) DV_WUR;
void dv_aws_config_release(struct dv_aws_config *cfg);

/*
 * The endpoint URL of one service for cfg's profile and region, the one
 * resolver for S3, EBS and EC2. service is the service id ("s3", "ebs",
 * "ec2"), explicit_url an endpoint given on the command line (borrowed,
 * may be NULL). Precedence, first found wins:
 *   1. explicit_url;
 *   2. AWS_ENDPOINT_URL_<ID> (the id upper-cased, spaces as underscores);
 *   3. AWS_ENDPOINT_URL;
 *   4. the profile's "services = NAME" section: "<id> =" / "endpoint_url =";
 *   5. the profile's nested "<id> =" / "endpoint_url =";
 *   6. the profile's "endpoint_url";
 *   7. https://<id>.<region>.amazonaws.com (".cn" appended in cn-* regions).
 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true skips 2 to 6. A URL not starting
 * with http:// or https:// is DV_E_USAGE naming the service; a malformed
 * config file is DV_E_USAGE naming the file. *url is malloc'ed without
 * trailing '/' (NULL on error); *custom (may be NULL) is false for the
 * default of 7.
 */
int dv_aws_endpoint_resolve(const struct dv_aws_config *cfg, const char *service, const char *explicit_url,
			    char **url, bool *custom, struct dv_err *err) DV_WUR;

/*
 * Finds credentials: environment (skipped when a profile was given as an
 * option), then the profile in the shared credentials file, then the
 * profile in the config file, then EC2 instance metadata (IMDSv2; skipped
 * when AWS_EC2_METADATA_DISABLED=true; endpoint overridable with
 * AWS_EC2_METADATA_SERVICE_ENDPOINT). Missing credentials are DV_E_USAGE.
 */
int dv_aws_creds_load(const struct dv_aws_options *opt, const struct dv_aws_config *cfg, struct dv_aws_creds *out,
		      struct dv_err *err) DV_WUR;

/* ---- S3 response parsing (expat) -------------------------------------- */

/* All strings owned; each *_release frees. Parsers reject DOCTYPEs,
 * entity declarations, nesting deeper than 16 and text longer than 64 KiB
 * (DV_E_REMOTE "malformed response"). */
struct dv_s3_error {
	char *code;
	char *message;
	char *request_id;
	char *key;
};
int dv_s3_parse_error(const char *xml, size_t len, struct dv_s3_error *out, struct dv_err *err) DV_WUR;
void dv_s3_error_release(struct dv_s3_error *e);

struct dv_s3_object {
	char *key;
	uint64_t size;
	char *etag;
};
struct dv_s3_list {
	struct dv_s3_object *objects;
	size_t n;
	bool truncated;
	char *next_token;  /* NextContinuationToken */
};
int dv_s3_parse_list_objects(const char *xml, size_t len, struct dv_s3_list *out, struct dv_err *err) DV_WUR;
void dv_s3_list_release(struct dv_s3_list *l);

/* InitiateMultipartUploadResult: *upload_id is malloc'ed. */
int dv_s3_parse_initiate(const char *xml, size_t len, char **upload_id, struct dv_err *err) DV_WUR;

struct dv_s3_part {
	unsigned number;
	uint64_t size;
	char *etag;   /* with the quotes S3 sends */
};
struct dv_s3_parts {
	struct dv_s3_part *parts;
	size_t n;
	bool truncated;
	unsigned next_marker;  /* NextPartNumberMarker */
};
int dv_s3_parse_list_parts(const char *xml, size_t len, struct dv_s3_parts *out, struct dv_err *err) DV_WUR;
void dv_s3_parts_release(struct dv_s3_parts *p);

struct dv_s3_upload {
	char *key;
	char *upload_id;
	char *initiated;
};
struct dv_s3_uploads {
	struct dv_s3_upload *uploads;
	size_t n;
	bool truncated;
	char *next_key_marker;
	char *next_upload_id_marker;
};
int dv_s3_parse_list_uploads(const char *xml, size_t len, struct dv_s3_uploads *out, struct dv_err *err) DV_WUR;
void dv_s3_uploads_release(struct dv_s3_uploads *u);

/* CompleteMultipartUploadResult. S3 may answer 200 with an <Error> body:
 * then *is_error is set and e is filled. *etag is malloc'ed otherwise. */
int dv_s3_parse_complete(const char *xml, size_t len, char **etag, bool *is_error, struct dv_s3_error *e,
			 struct dv_err *err) DV_WUR;

/* DeleteObjects (POST /?delete). With <Quiet>true</Quiet> the answer lists
 * only the keys that could not be deleted. A 200 whose body is an <Error>
 * document sets is_error and e (as for CompleteMultipartUpload). */
struct dv_s3_delete_failure {
	char *key;
	char *code;
	char *message;  /* may be NULL */
};
struct dv_s3_delete_result {
	struct dv_s3_delete_failure *failures;
	size_t n_failures;
	size_t n_deleted;  /* <Deleted> entries (none in quiet mode) */
	bool is_error;
	struct dv_s3_error e;
};
int dv_s3_parse_delete_result(const char *xml, size_t len, struct dv_s3_delete_result *out,
			      struct dv_err *err) DV_WUR;
void dv_s3_delete_result_release(struct dv_s3_delete_result *d);
/* Appends the quiet DeleteObjects request body for keys[0..n) to out, each
 * key XML-escaped (& < > " ' and CR, LF, tab as character references).
 * Returns false, leaving out as it was, when a key holds a character XML
 * 1.0 cannot carry (other control characters): such a key needs a plain
 * DELETE. */
bool dv_s3_delete_body(struct dv_buf *out, char *const *keys, size_t n);

/* ---- S3 client -------------------------------------------------------- */

/*
 * One bucket on one endpoint. Requests are signed, reuse connections and
 * are retried with exponential backoff and full jitter on connection
 * errors, timeouts, 500/502/503/504, 429, SlowDown and RequestTimeout, for
 * at most max_attempts and max_retry_seconds; other 4xx fail at once.
 */
struct dv_s3;

struct dv_s3_settings {
	unsigned max_attempts;       /* default 10 (DISKVAULT_S3_MAX_ATTEMPTS) */
	double max_retry_seconds;    /* default 600 (DISKVAULT_S3_RETRY_SECONDS) */
	long connect_timeout;        /* seconds, default 10 */
	long stall_timeout;          /* seconds below 1 KiB/s, default 60 */
	unsigned connections;        /* parallel requests for multipart, default 4 */
	uint64_t limit_upload;       /* bytes/s over all transfers, 0 = none (DISKVAULT_S3_LIMIT_UPLOAD) */
	uint64_t limit_download;     /* bytes/s over all transfers, 0 = none (DISKVAULT_S3_LIMIT_DOWNLOAD) */
};

/* cfg and creds are copied. Caller frees with dv_s3_free(). */
int dv_s3_new(const struct dv_aws_config *cfg, const struct dv_aws_creds *creds, const char *bucket,
	      const struct dv_s3_settings *settings, struct dv_s3 **out, struct dv_err *err) DV_WUR;
void dv_s3_free(struct dv_s3 *s3);
/*
 * Opens the bucket of url ("s3://bucket[/prefix]") the way the S3 store
 * does: explicit settings DISKVAULT_S3_ENDPOINT/PROFILE/REGION, then the
 * AWS_* environment and files (dv_aws_config_load), credentials by
 * dv_aws_creds_load. *prefix is malloc'ed: "" or "prefix/". For commands
 * that work on the bucket itself (listing or aborting multipart uploads).
 */
int dv_s3_open_url(const char *url, const struct dv_s3_settings *settings, struct dv_s3 **out, char **prefix,
		   struct dv_err *err) DV_WUR;
/* "endpoint/bucket" for messages and state keys. Borrowed. */
const char *dv_s3_describe(const struct dv_s3 *s3);

/* Per-object write options (borrowed; NULL members = server default). */
struct dv_s3_put_opts {
	const char *storage_class;
	const char *sse;          /* "AES256" or "aws:kms" */
	const char *sse_kms_key_id;
	/* also send Content-MD5 (the signed x-amz-content-sha256, which S3
	 * verifies, already covers the body) */
	bool content_md5;
};

/* Checks that the bucket exists and the credentials may list prefix (one
 * ListObjectsV2 with max-keys=1, so a refusal comes with the server's error
 * code). DV_E_NOT_FOUND when the bucket does not exist. */
int dv_s3_check_bucket(struct dv_s3 *s3, const char *prefix, struct dv_err *err) DV_WUR;
int dv_s3_put_object(struct dv_s3 *s3, const char *key, const void *data, size_t len,
		     const struct dv_s3_put_opts *opts, struct dv_err *err) DV_WUR;
/* PUT of len bytes of fd from offset 0, streamed (the file is read again on
 * a retry); sha256_hex is the body's SHA-256 (signed), md5_b64 its
 * Content-MD5 or NULL/"" for none. */
int dv_s3_put_fd(struct dv_s3 *s3, const char *key, int fd, uint64_t len, const char *sha256_hex,
		 const char *md5_b64, const struct dv_s3_put_opts *opts, struct dv_err *err) DV_WUR;
/* whole: reads all (more than cap is DV_E_CORRUPT); else exactly len bytes
 * at off (short is DV_E_CORRUPT "truncated"). out is replaced. */
int dv_s3_get_object(struct dv_s3 *s3, const char *key, uint64_t off, size_t len, bool whole, size_t cap,
		     struct dv_buf *out, struct dv_err *err) DV_WUR;
/* Ranged read that may come back short: up to len bytes at off (at least
 * one; a range past the end returns the bytes up to the end). */
int dv_s3_get_object_upto(struct dv_s3 *s3, const char *key, uint64_t off, size_t len, struct dv_buf *out,
			  struct dv_err *err) DV_WUR;
int dv_s3_head_object(struct dv_s3 *s3, const char *key, uint64_t *size, struct dv_err *err) DV_WUR;
/* fn(key, size, ctx) for every key under prefix, ListObjectsV2 pages. */
typedef int (*dv_s3_list_fn)(const char *key, uint64_t size, void *ctx);
int dv_s3_list_objects(struct dv_s3 *s3, const char *prefix, dv_s3_list_fn fn, void *ctx, struct dv_err *err) DV_WUR;
/* Deleting a missing key is not an error. */
int dv_s3_delete_object(struct dv_s3 *s3, const char *key, struct dv_err *err) DV_WUR;
/*
 * Deletes keys[0..n) (borrowed) with DeleteObjects requests of at most
 * DV_S3_DELETE_BATCH keys (DISKVAULT_S3_DELETE_BATCH may lower it, for
 * tests), each with Content-MD5 and the payload's SHA-256, in quiet mode.
 * A key the answer lists with NoSuchKey counts as deleted; keys refused
 * with InternalError or SlowDown are sent again (same backoff and bounds
 * as other requests); any other refusal fails with DV_E_REMOTE naming the
 * first such key, its code and message (the other keys of the batch are
 * gone). An endpoint without multi-object delete (HTTP 501 or
 * NotImplemented) gets one DELETE per key from then on, as do keys that
 * XML cannot carry. On failure some keys may have been deleted.
 */
#define DV_S3_DELETE_BATCH 1000
int dv_s3_delete_objects(struct dv_s3 *s3, char *const *keys, size_t n, struct dv_err *err) DV_WUR;

/* Multipart. *upload_id is malloc'ed. */
int dv_s3_create_multipart(struct dv_s3 *s3, const char *key, const struct dv_s3_put_opts *opts, char **upload_id,
			   struct dv_err *err) DV_WUR;
/* All parts of an upload (follows NextPartNumberMarker). out owned. */
int dv_s3_list_parts(struct dv_s3 *s3, const char *key, const char *upload_id, struct dv_s3_parts *out,
		     struct dv_err *err) DV_WUR;

/* One part to send from a file: filled by the caller except etag. */
struct dv_s3_part_job {
	unsigned number;
	uint64_t offset;
	uint64_t size;
	char md5_b64[25];      /* Content-MD5, or "" to send none */
	char sha256_hex[65];   /* x-amz-content-sha256 (signed) */
	char *etag;            /* out: malloc'ed ETag on success */
	int result;            /* out: 0 or -DV_E_xxx */
};
/* Called (from the calling thread) after each finished part, in completion
 * order; a negative return stops the upload. */
typedef int (*dv_s3_part_done_fn)(struct dv_s3_part_job *job, void *ctx);
/* Uploads jobs from fd with up to settings.connections requests in flight
 * (curl multi); each part is retried on its own. Returns the first error. */
int dv_s3_upload_parts(struct dv_s3 *s3, const char *key, const char *upload_id, int fd, struct dv_s3_part_job *jobs,
		       size_t n, dv_s3_part_done_fn done, void *ctx, struct dv_err *err) DV_WUR;
/* parts in ascending number order with their ETags. */
int dv_s3_complete_multipart(struct dv_s3 *s3, const char *key, const char *upload_id,
			     const struct dv_s3_part *parts, size_t n, struct dv_err *err) DV_WUR;
int dv_s3_abort_multipart(struct dv_s3 *s3, const char *key, const char *upload_id, struct dv_err *err) DV_WUR;
/* fn for every unfinished upload under prefix (follows markers). */
typedef int (*dv_s3_upload_fn)(const struct dv_s3_upload *u, void *ctx);
int dv_s3_list_uploads(struct dv_s3 *s3, const char *prefix, dv_s3_upload_fn fn, void *ctx, struct dv_err *err) DV_WUR;

/* Counters since dv_s3_new (requests include retries). */
struct dv_s3_stats {
	uint64_t requests;
	uint64_t retries;
	uint64_t bytes_sent;
	uint64_t bytes_received;
	uint64_t delete_requests;        /* DeleteObject (DELETE /key), with retries */
	uint64_t delete_objects_requests; /* DeleteObjects (POST /?delete), with retries */
	uint64_t keys_deleted;           /* keys the server confirmed deleted by either */
};
void dv_s3_get_stats(struct dv_s3 *s3, struct dv_s3_stats *out);

#endif
