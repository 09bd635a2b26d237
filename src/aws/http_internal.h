/*
 * http_internal.h - the signed, retrying HTTP layer under the S3, EBS and
 * EC2 clients (http.c). Not for other modules.
 *
 * A service describes itself once in a struct dv_http_client (retry policy,
 * wire quirks, counters, and two hooks: prepare signs and sets up one
 * attempt, classify judges its outcome), then runs requests with
 * dv_http_perform() on an easy handle it owns. The multipart paths (S3
 * UploadPart, EBS PutSnapshotBlock) keep several requests in flight with
 * dv_http_multi_add/done, their own classify and dv_http_next_attempt().
 *
 * Thread safety: a struct dv_http_client is read-only once set up (its
 * counters are updated atomically); a request and an easy handle belong
 * to one thread at a time.
 *
 * What stays in each service: its endpoint and credentials, which HTTP
 * answers and error codes are worth another attempt, and how its error
 * documents are parsed (S3 XML, EBS JSON, EC2 XML).
 */
#ifndef DV_AWS_HTTP_INTERNAL_H
#define DV_AWS_HTTP_INTERNAL_H

#include "aws.h"

#include <curl/curl.h>

#define DV_HTTP_MAX_QUERY 8
#define DV_HTTP_MAX_HDRS 10
#define DV_HTTP_ERR_CAP (64u << 10) /* default cap of a non-2xx body */

/* Transport failures (CURLcode) retried: connection refused, timeout,
 * send/receive errors, an empty or cut answer and a failed TLS handshake
 * always; these classes when the client asks. */
enum {
	DV_HTTP_RETRY_STREAM = 1,  /* HTTP/2 stream errors, upload aborted, body read error */
	DV_HTTP_RETRY_RESOLVE = 2, /* host name did not resolve */
};

enum dv_http_verdict { DV_HTTP_OK, DV_HTTP_RETRY, DV_HTTP_FAIL, DV_HTTP_STATUS };

/* One request and its outcome. Everything borrowed unless said. */
struct dv_http_req {
	const char *method;
	const char *service;  /* signing name: "s3", "ebs", "ec2" */
	const char *op;       /* for messages: the operation ... */
	const char *what;     /* ... and its object (S3: the key), or NULL */
	const char *origin;  /* "https://host[:port]" */
	const char *host;    /* Host header (signed) */
	struct dv_buf path;  /* owned; decoded (the signer and the URL encode it) */
	struct dv_aws_kv query[DV_HTTP_MAX_QUERY];  /* value NULL: "key" alone */
	size_t nq;
	struct dv_aws_kv hdr[DV_HTTP_MAX_HDRS];     /* all signed */
	size_t nh;
	/* body: memory (body) or a range of fd */
	bool has_body;
	const uint8_t *body;
	int fd;
	uint64_t body_off, body_len, pos;
	const char *payload_hash;  /* hex or "UNSIGNED-PAYLOAD"; NULL = SHA-256 of the memory body */
	bool content_sha256;       /* sign and send X-Amz-Content-SHA256 */
	bool head;                 /* HEAD: no body expected */
	uint64_t *op_counter;      /* counted like requests, or NULL */
	/* limits of one attempt, seconds (stall: below 1 KiB/s; 0 = none) */
	long connect_timeout, timeout, stall_timeout;
	/* response */
	struct dv_buf *resp;  /* where the body goes: own unless set */
	struct dv_buf own;
	size_t cap;       /* of a 2xx body */
	size_t err_cap;   /* of any other body */
	bool too_big;
	long hdr_status;  /* status line seen so far (picks the cap) */
	long status;      /* final status of a completed attempt */
	char etag[256];
	char request_id[128];  /* x-amz-request-id or x-amzn-RequestId */
	char err_type[128];    /* x-amzn-ErrorType */
	char code[128];        /* the service's error code, set by its classify */
	uint64_t content_length;
	bool have_cl;
	int64_t server_date;  /* Date header (unix), 0 if none */
	char errbuf[CURL_ERROR_SIZE];
	char body_hash[65];
	struct curl_slist *hl;  /* owned headers of the attempt in flight */
};

/* fd = -1, resp = &own, caps 16 MiB / DV_HTTP_ERR_CAP, timeouts 10/120/0. */
void dv_http_req_init(struct dv_http_req *rq, const char *method, const char *origin, const char *host);
void dv_http_req_release(struct dv_http_req *rq);
void dv_http_add_query(struct dv_http_req *rq, const char *key, const char *value);
void dv_http_add_header(struct dv_http_req *rq, const char *key, const char *value);

/* Who signs an attempt (borrowed). */
struct dv_http_signer {
	const struct dv_aws_creds *creds;
	const char *region;
	int64_t time;         /* unix seconds to sign with */
	bool normalize_path;
};

struct dv_http_client {
	/* retry policy: full jitter, pause in [floor, 1] * min(20 s,
	 * backoff_base * 2^attempt), at most max_attempts attempts and
	 * max_retry_seconds from the first */
	unsigned retry_curl;  /* DV_HTTP_RETRY_* */
	double backoff_base;
	double backoff_floor;
	unsigned max_attempts;
	double max_retry_seconds;
	/* wire */
	uint64_t expect_from;  /* a body this large may wait for 100-continue; 0 = never */
	bool empty_post_form;  /* a POST without a body goes as an empty form */
	/* counters (atomic adds; NULL = not kept) */
	uint64_t *requests, *retries, *bytes_sent, *bytes_received;
	unsigned *inflight;
	/* hooks: prepare signs and sets up c for one attempt (usually through
	 * dv_http_setup); classify judges a finished one, filling err with the
	 * one-line failure (usually through dv_http_finish first) */
	int (*prepare)(void *svc, CURL *c, struct dv_http_req *rq, struct dv_err *err);
	enum dv_http_verdict (*classify)(void *svc, CURL *c, struct dv_http_req *rq, CURLcode cc, struct dv_err *err);
	void *svc;
};

/* curl_global_init, once per process. */
void dv_http_global_init(void);
/* The CA bundle file set as CURLOPT_CAINFO, or NULL (see http.c). */
const char *dv_http_ca_bundle(void);
/* curl_easy_init or DV_BUG. */
CURL *dv_http_easy(void);

/* Resets the response, signs, and sets up c for one attempt of rq. */
int dv_http_setup(const struct dv_http_client *cl, CURL *c, struct dv_http_req *rq, const struct dv_http_signer *s,
		  struct dv_err *err) DV_WUR;

/*
 * The transport part of classifying: a curl failure is DV_HTTP_RETRY or
 * DV_HTTP_FAIL with "<what> on <origin>: <curl message>" in err (a body
 * over its cap: too_big_code, "<what>: response larger than the limit of N
 * bytes"); a 2xx is DV_HTTP_OK; any other status is DV_HTTP_STATUS, for the
 * service to judge (rq->status is set, byte counters are updated).
 */
enum dv_http_verdict dv_http_finish(const struct dv_http_client *cl, CURL *c, struct dv_http_req *rq, CURLcode cc,
				    const char *what, enum dv_code too_big_code, struct dv_err *err);

/* "<what>: HTTP <status>[ <code>][: <message>][ (request id <rid>)]". */
void dv_http_error(struct dv_err *err, enum dv_code code, const char *what, long status, const char *err_code,
		   const char *message, const char *request_id);

/* Pause before the attempt after attempt (1-based). */
double dv_http_backoff(const struct dv_http_client *cl, unsigned attempt);
/*
 * After failed attempt number attempt of a request begun at first
 * (dv_now()): true when another one fits the bounds (*pause is the wait,
 * the retry is counted), else false with err prefixed "giving up after N
 * attempts[ in S s]: " (the time with say_time).
 */
bool dv_http_next_attempt(const struct dv_http_client *cl, unsigned attempt, double first, bool say_time,
			  double *pause, struct dv_err *err);
void dv_http_sleep(double seconds);

/* Runs rq on c until success, a failure that is not retried, or the
 * bounds: 0 or -DV_E_xxx with err filled (err may be NULL). */
int dv_http_perform(const struct dv_http_client *cl, CURL *c, struct dv_http_req *rq, struct dv_err *err) DV_WUR;

/*
 * curl multi, for services that keep several requests in flight, each
 * with its own easy handle and retries: dv_http_multi_add prepares an
 * attempt (prepare hook, counters) and adds c to m, tagged with priv;
 * dv_http_multi_done takes the next finished transfer off m and returns its
 * priv and result (NULL when none is finished); dv_http_multi_remove takes a
 * transfer off m unfinished. The caller classifies with its own hook.
 */
int dv_http_multi_add(const struct dv_http_client *cl, CURLM *m, CURL *c, struct dv_http_req *rq, void *priv,
		      struct dv_err *err) DV_WUR;
void *dv_http_multi_done(const struct dv_http_client *cl, CURLM *m, CURLcode *cc);
void dv_http_multi_remove(const struct dv_http_client *cl, CURLM *m, CURL *c);

#endif
