/*
 * S3 over libcurl. One struct dv_s3 per bucket holds a pool of easy handles
 * (each keeps its connections alive between requests) so several threads
 * can issue requests at once. Signing, the curl setup, the retry loop and
 * the backoff are http.c's; this file prepares S3 requests (addressing
 * style, credentials refresh, clock skew, rate limits) and judges S3's
 * answers. Multipart parts go out through curl multi with a bounded number
 * in flight, each retried on its own.
 *
 * Retry policy: connection errors, timeouts, 5xx, 429, SlowDown and
 * RequestTimeout are retried with exponential backoff and full jitter
 * (sleep uniform in [0, min(20 s, 0.25 s * 2^attempt)]) until max_attempts
 * or max_retry_seconds; everything else fails at once with the server's
 * error code, message and request id.
 */
#include "http_internal.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define S3_XML_CAP (16u << 20)
#define S3_ERR_CAP (64u << 10)
#define S3_POOL_MAX 64

struct dv_s3 {
	struct dv_aws_creds creds;
	char *region;
	char *bucket;
	char *origin;      /* "http://127.0.0.1:4571" */
	char *host;        /* Host header */
	char *base_path;   /* "" or "/bucket" (path style), may carry endpoint path */
	char *desc;
	struct dv_s3_settings set;
	pthread_mutex_t lock;
	CURL *pool[S3_POOL_MAX];
	size_t npool;
	struct dv_s3_stats stats;
	unsigned inflight;  /* transfers running now (rate limits are shared) */
	/* Temporary credentials (instance metadata, session tokens) expire:
	 * they are reloaded from the same sources shortly before, or when the
	 * server says ExpiredToken. creds is guarded by creds_lock. */
	pthread_mutex_t creds_lock;
	struct dv_aws_config cfg;   /* copy, for reloading */
	bool explicit_profile;
	bool refresh_now;
	/* Seconds to add to our clock when signing, learnt from the Date of a
	 * RequestTimeTooSkewed answer (a machine with a wrong clock still works). */
	int64_t clock_offset;
	int64_t test_skew;  /* DISKVAULT_S3_TEST_CLOCK_SKEW: tests only */
	bool no_multi_delete;  /* the endpoint answered DeleteObjects with 501 */
	struct dv_http_client http;  /* retry policy and hooks (http_internal.h) */
};

static void copy_creds(struct dv_aws_creds *dst, const struct dv_aws_creds *src)
{
	dst->access_key_id = dv_strdup(src->access_key_id);
	dst->secret_access_key = dv_strdup(src->secret_access_key);
	dst->session_token = src->session_token ? dv_strdup(src->session_token) : NULL;
	dst->expiration = src->expiration;
	memcpy(dst->source, src->source, sizeof dst->source);
}

/* A private copy of the current credentials, refreshed first when they
 * expire within 5 minutes (or the server rejected them as expired). */
static void current_creds(struct dv_s3 *s3, struct dv_aws_creds *out)
{
	pthread_mutex_lock(&s3->creds_lock);
	if (s3->refresh_now || (s3->creds.expiration && dv_unix_now() > s3->creds.expiration - 300)) {
		struct dv_aws_options o = {.profile = s3->explicit_profile ? s3->cfg.profile : NULL};
		struct dv_aws_creds fresh;
		struct dv_err e;
		if (dv_aws_creds_load(&o, &s3->cfg, &fresh, &e) == 0) {
			dv_aws_creds_release(&s3->creds);
			s3->creds = fresh;
			dv_debug("s3: credentials reloaded from %s", fresh.source);
		} else {
			dv_debug("s3: reloading credentials failed: %s", e.msg);
		}
		s3->refresh_now = false;
	}
	copy_creds(out, &s3->creds);
	pthread_mutex_unlock(&s3->creds_lock);
}

/* Requests are struct dv_http_req (http_internal.h): what is the object
 * key (NULL for the bucket); path, origin and host are filled when each
 * attempt is prepared. */
static void req_init(struct dv_http_req *rq, const char *method, const char *key)
{
	dv_http_req_init(rq, method, NULL, NULL);
	rq->service = "s3";
	rq->op = method;
	rq->what = key;
	rq->cap = S3_XML_CAP;
	rq->err_cap = S3_ERR_CAP;
	rq->content_sha256 = true;
}

static void req_release(struct dv_http_req *rq) { dv_http_req_release(rq); }
static void add_q(struct dv_http_req *rq, const char *k, const char *v) { dv_http_add_query(rq, k, v); }
static void add_h(struct dv_http_req *rq, const char *k, const char *v) { dv_http_add_header(rq, k, v); }

static void stat_add(uint64_t *p, uint64_t v) { __atomic_add_fetch(p, v, __ATOMIC_RELAXED); }

static int s3_prepare(void *svc, CURL *c, struct dv_http_req *rq, struct dv_err *err);
static enum dv_http_verdict s3_classify(void *svc, CURL *c, struct dv_http_req *rq, CURLcode cc, struct dv_err *err);

/* ---- setup ----------------------------------------------------------- */

static char *settings_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? (char *)v : NULL;
}

/* "10M", "512K", "1000000" (bytes per second). */
static uint64_t parse_rate(const char *v)
{
	char *end;
	unsigned long long x = strtoull(v, &end, 10);
	if (*end == 'K' || *end == 'k')
		x *= 1024;
	else if (*end == 'M' || *end == 'm')
		x *= 1024 * 1024;
	else if (*end == 'G' || *end == 'g')
		x *= 1024ull * 1024 * 1024;
	return x;
}

int dv_s3_new(const struct dv_aws_config *cfg, const struct dv_aws_creds *creds, const char *bucket,
	      const struct dv_s3_settings *settings, struct dv_s3 **out, struct dv_err *err)
{
	dv_http_global_init();
	if (!bucket || !*bucket || strchr(bucket, '/'))
		return dv_error(err, DV_E_USAGE, "invalid S3 bucket name '%s'", bucket ? bucket : "");
	struct dv_s3 *s3 = dv_calloc(1, sizeof *s3);
	copy_creds(&s3->creds, creds);
	pthread_mutex_init(&s3->creds_lock, NULL);
	s3->cfg.profile = dv_strdup(cfg->profile ? cfg->profile : "default");
	s3->cfg.region = dv_strdup(cfg->region ? cfg->region : "us-east-1");
	s3->cfg.endpoint = cfg->endpoint ? dv_strdup(cfg->endpoint) : NULL;
	s3->cfg.path_style = cfg->path_style;
	s3->cfg.config_path = dv_strdup(cfg->config_path ? cfg->config_path : "");
	s3->cfg.credentials_path = dv_strdup(cfg->credentials_path ? cfg->credentials_path : "");
	s3->region = dv_strdup(cfg->region ? cfg->region : "us-east-1");
	s3->bucket = dv_strdup(bucket);
	pthread_mutex_init(&s3->lock, NULL);
	if (settings)
		s3->set = *settings;
	if (!s3->set.max_attempts)
		s3->set.max_attempts = settings_env("DISKVAULT_S3_MAX_ATTEMPTS")
					       ? (unsigned)atoi(settings_env("DISKVAULT_S3_MAX_ATTEMPTS"))
					       : 10;
	if (s3->set.max_attempts < 1)
		s3->set.max_attempts = 1;
	if (s3->set.max_retry_seconds <= 0)
		s3->set.max_retry_seconds = settings_env("DISKVAULT_S3_RETRY_SECONDS")
						    ? atof(settings_env("DISKVAULT_S3_RETRY_SECONDS"))
						    : 600;
	if (!s3->set.connect_timeout)
		s3->set.connect_timeout = 10;
	if (!s3->set.stall_timeout)
		s3->set.stall_timeout = settings_env("DISKVAULT_S3_STALL_SECONDS")
						? atol(settings_env("DISKVAULT_S3_STALL_SECONDS"))
						: 60;
	if (!s3->set.connections)
		s3->set.connections = settings_env("DISKVAULT_S3_CONNECTIONS")
					      ? (unsigned)atoi(settings_env("DISKVAULT_S3_CONNECTIONS"))
					      : 4;
	if (!s3->set.limit_upload && settings_env("DISKVAULT_S3_LIMIT_UPLOAD"))
		s3->set.limit_upload = parse_rate(settings_env("DISKVAULT_S3_LIMIT_UPLOAD"));
	if (!s3->set.limit_download && settings_env("DISKVAULT_S3_LIMIT_DOWNLOAD"))
		s3->set.limit_download = parse_rate(settings_env("DISKVAULT_S3_LIMIT_DOWNLOAD"));
	if (settings_env("DISKVAULT_S3_TEST_CLOCK_SKEW"))
		s3->test_skew = atoll(settings_env("DISKVAULT_S3_TEST_CLOCK_SKEW"));
	if (s3->set.connections < 1)
		s3->set.connections = 1;
	if (s3->set.connections > 32)
		s3->set.connections = 32;
	s3->http = (struct dv_http_client){
		.retry_curl = DV_HTTP_RETRY_STREAM,
		.backoff_base = 0.25,
		.max_attempts = s3->set.max_attempts,
		.max_retry_seconds = s3->set.max_retry_seconds,
		.expect_from = 1u << 20,
		.requests = &s3->stats.requests,
		.retries = &s3->stats.retries,
		.bytes_sent = &s3->stats.bytes_sent,
		.bytes_received = &s3->stats.bytes_received,
		.inflight = &s3->inflight,
		.prepare = s3_prepare,
		.classify = s3_classify,
		.svc = s3,
	};

	bool path_style = cfg->path_style || strchr(bucket, '.');
	if (cfg->endpoint) {
		const char *ep = cfg->endpoint;
		const char *hs = strstr(ep, "://") + 3;
		const char *pe = strchr(hs, '/');
		size_t hl = pe ? (size_t)(pe - hs) : strlen(hs);
		const char *epath = pe ? pe : "";
		if (hl == 0) {
			dv_s3_free(s3);
			return dv_error(err, DV_E_USAGE, "endpoint '%s' has no host", ep);
		}
		char *scheme = dv_asprintf("%.*s", (int)(hs - ep), ep);
		if (path_style) {
			s3->host = dv_asprintf("%.*s", (int)hl, hs);
			s3->base_path = dv_asprintf("%s/%s", epath, bucket);
		} else {
			s3->host = dv_asprintf("%s.%.*s", bucket, (int)hl, hs);
			s3->base_path = dv_strdup(epath);
		}
		s3->origin = dv_asprintf("%s%s", scheme, s3->host);
		free(scheme);
	} else {
		if (path_style) {
			s3->host = dv_asprintf("s3.%s.amazonaws.com", s3->region);
			s3->base_path = dv_asprintf("/%s", bucket);
		} else {
			s3->host = dv_asprintf("%s.s3.%s.amazonaws.com", bucket, s3->region);
			s3->base_path = dv_strdup("");
		}
		s3->origin = dv_asprintf("https://%s", s3->host);
	}
	s3->desc = dv_asprintf("s3://%s (%s)", bucket, cfg->endpoint ? cfg->endpoint : s3->host);
	*out = s3;
	return 0;
}

void dv_s3_free(struct dv_s3 *s3)
{
	if (!s3)
		return;
	for (size_t i = 0; i < s3->npool; i++)
		curl_easy_cleanup(s3->pool[i]);
	pthread_mutex_destroy(&s3->lock);
	pthread_mutex_destroy(&s3->creds_lock);
	dv_aws_creds_release(&s3->creds);
	dv_aws_config_release(&s3->cfg);
	free(s3->region);
	free(s3->bucket);
	free(s3->origin);
	free(s3->host);
	free(s3->base_path);
	free(s3->desc);
	free(s3);
}

const char *dv_s3_describe(const struct dv_s3 *s3) { return s3->desc; }

void dv_s3_get_stats(struct dv_s3 *s3, struct dv_s3_stats *out)
{
	out->requests = __atomic_load_n(&s3->stats.requests, __ATOMIC_RELAXED);
	out->retries = __atomic_load_n(&s3->stats.retries, __ATOMIC_RELAXED);
	out->bytes_sent = __atomic_load_n(&s3->stats.bytes_sent, __ATOMIC_RELAXED);
	out->bytes_received = __atomic_load_n(&s3->stats.bytes_received, __ATOMIC_RELAXED);
	out->delete_requests = __atomic_load_n(&s3->stats.delete_requests, __ATOMIC_RELAXED);
	out->delete_objects_requests = __atomic_load_n(&s3->stats.delete_objects_requests, __ATOMIC_RELAXED);
	out->keys_deleted = __atomic_load_n(&s3->stats.keys_deleted, __ATOMIC_RELAXED);
}

static CURL *pool_get(struct dv_s3 *s3)
{
	CURL *c = NULL;
	pthread_mutex_lock(&s3->lock);
	if (s3->npool)
		c = s3->pool[--s3->npool];
	pthread_mutex_unlock(&s3->lock);
	if (!c && !(c = curl_easy_init()))
		DV_BUG("curl_easy_init failed");
	return c;
}

static void pool_put(struct dv_s3 *s3, CURL *c)
{
	pthread_mutex_lock(&s3->lock);
	if (s3->npool < S3_POOL_MAX) {
		s3->pool[s3->npool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&s3->lock);
	if (c)
		curl_easy_cleanup(c);
}

/* ---- preparing and classifying one attempt ------------------------------ */

static void key_path(struct dv_s3 *s3, const struct dv_http_req *rq, struct dv_buf *path)
{
	dv_buf_reset(path);
	dv_buf_addf(path, "%s/", s3->base_path);
	if (rq->what)
		dv_buf_addf(path, "%s", rq->what);
	else if (path->len > 1 && *s3->base_path)
		path->data[--path->len] = 0; /* "/bucket" not "/bucket/" */
}

static int s3_prepare(void *svc, CURL *c, struct dv_http_req *rq, struct dv_err *err)
{
	struct dv_s3 *s3 = svc;
	struct dv_aws_creds creds = {0};
	rq->origin = s3->origin;
	rq->host = s3->host;
	key_path(s3, rq, &rq->path);
	rq->connect_timeout = s3->set.connect_timeout;
	rq->stall_timeout = s3->set.stall_timeout;
	/* total bound per attempt: generous for the size, but finite */
	rq->timeout = 300 + (long)((rq->body_len + rq->cap / 4) / (256 * 1024));
	if (rq->cap > S3_XML_CAP)
		rq->timeout = 300 + (long)(rq->cap / (256 * 1024));
	current_creds(s3, &creds);
	struct dv_http_signer sg = {
		.creds = &creds,
		.region = s3->region,
		.time = dv_unix_now() + __atomic_load_n(&s3->clock_offset, __ATOMIC_RELAXED) + s3->test_skew,
	};
	int r = dv_http_setup(&s3->http, c, rq, &sg, err);
	dv_aws_creds_release(&creds);
	if (r < 0)
		return r;
	/* a shared limit, split between the transfers running when this one
	 * starts (libcurl limits each handle on its own) */
	unsigned share = DV_MAX(1u, __atomic_load_n(&s3->inflight, __ATOMIC_RELAXED) + 1);
	if (s3->set.limit_upload && rq->has_body)
		curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE,
				 (curl_off_t)DV_MAX(s3->set.limit_upload / share, (uint64_t)1024));
	if (s3->set.limit_download)
		curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE,
				 (curl_off_t)DV_MAX(s3->set.limit_download / share, (uint64_t)1024));
	return 0;
}

/* "S3 GET s3://bucket/key" for messages, in buf. */
static const char *what_key(const struct dv_s3 *s3, const struct dv_http_req *rq, char *buf, size_t n)
{
	snprintf(buf, n, "S3 %s s3://%s%s%s", rq->method, s3->bucket, rq->what ? "/" : "", rq->what ? rq->what : "");
	return buf;
}

/* Fills err with the one-line description of a failed attempt. */
static enum dv_http_verdict s3_classify(void *svc, CURL *c, struct dv_http_req *rq, CURLcode cc, struct dv_err *err)
{
	struct dv_s3 *s3 = svc;
	char wk[768];
	what_key(s3, rq, wk, sizeof wk);
	enum dv_http_verdict v = dv_http_finish(&s3->http, c, rq, cc, wk, DV_E_CORRUPT, err);
	if (v != DV_HTTP_STATUS)
		return v;

	struct dv_s3_error e = {0};
	struct dv_err e2;
	bool parsed = rq->resp->len && !rq->head &&
		      dv_s3_parse_error((char *)rq->resp->data, DV_MIN(rq->resp->len, (size_t)S3_ERR_CAP), &e, &e2) == 0;
	const char *code = parsed ? e.code : "";
	snprintf(rq->code, sizeof rq->code, "%s", code);
	const char *rid = parsed && e.request_id ? e.request_id : rq->request_id;
	enum dv_code dc = rq->status == 404 ? DV_E_NOT_FOUND : DV_E_REMOTE;
	if (rq->status == 416)
		dc = DV_E_CORRUPT;
	dv_http_error(err, dc, wk, rq->status, code, parsed ? e.message : NULL, rid);
	bool renewed = false;
	if (!strcmp(code, "ExpiredToken") || !strcmp(code, "TokenRefreshRequired")) {
		/* worth another attempt only if the sources now give other
		 * credentials (a refreshed instance role); static keys fail now */
		struct dv_aws_creds before, after;
		pthread_mutex_lock(&s3->creds_lock);
		copy_creds(&before, &s3->creds);
		s3->refresh_now = true;
		pthread_mutex_unlock(&s3->creds_lock);
		current_creds(s3, &after);
		renewed = strcmp(before.access_key_id, after.access_key_id) ||
			  strcmp(before.session_token ? before.session_token : "",
				 after.session_token ? after.session_token : "");
		dv_aws_creds_release(&before);
		dv_aws_creds_release(&after);
	}
	bool skewed = false;
	if (!strcmp(code, "RequestTimeTooSkewed") && rq->server_date) {
		int64_t off = rq->server_date - (dv_unix_now() + s3->test_skew);
		skewed = off != __atomic_load_n(&s3->clock_offset, __ATOMIC_RELAXED);
		__atomic_store_n(&s3->clock_offset, off, __ATOMIC_RELAXED);
		dv_debug("s3: clock differs from the server's by %lld s; correcting", (long long)off);
	}
	bool retry = rq->status >= 500 || rq->status == 429 || !strcmp(code, "SlowDown") || renewed || skewed ||
		     !strcmp(code, "RequestTimeout") || !strcmp(code, "InternalError") ||
		     /* the body did not match its signed SHA-256 (or Content-MD5):
		      * damaged in transit; the retry sends it again from the source */
		     !strcmp(code, "XAmzContentSHA256Mismatch") || !strcmp(code, "BadDigest");
	if (rq->status == 501)
		retry = false;
	dv_s3_error_release(&e);
	return retry ? DV_HTTP_RETRY : DV_HTTP_FAIL;
}

static int perform(struct dv_s3 *s3, struct dv_http_req *rq, struct dv_err *err)
{
	CURL *c = pool_get(s3);
	int r = dv_http_perform(&s3->http, c, rq, err);
	pool_put(s3, c);
	return r;
}
/* ---- simple object calls ---------------------------------------------- */

static void add_put_opts(struct dv_http_req *rq, const struct dv_s3_put_opts *o)
{
	if (!o)
		return;
	if (o->storage_class && *o->storage_class)
		add_h(rq, "x-amz-storage-class", o->storage_class);
	if (o->sse && *o->sse)
		add_h(rq, "x-amz-server-side-encryption", o->sse);
	if (o->sse_kms_key_id && *o->sse_kms_key_id)
		add_h(rq, "x-amz-server-side-encryption-aws-kms-key-id", o->sse_kms_key_id);
}

static void md5_b64(char out[25], const void *data, size_t len)
{
	uint8_t md[16];
	unsigned n = 0;
	if (!EVP_Digest(data, len, md, &n, EVP_md5(), NULL) || n != 16)
		DV_BUG("EVP_Digest(md5) failed");
	EVP_EncodeBlock((unsigned char *)out, md, 16);
}

int dv_s3_check_bucket(struct dv_s3 *s3, const char *prefix, struct dv_err *err)
{
	struct dv_http_req rq;
	req_init(&rq, "GET", NULL);
	add_q(&rq, "list-type", "2");
	add_q(&rq, "max-keys", "1");
	if (prefix && *prefix)
		add_q(&rq, "prefix", prefix);
	int r = perform(s3, &rq, err);
	struct dv_s3_list l = {0};
	if (r == 0)
		r = dv_s3_parse_list_objects((char *)rq.own.data, rq.own.len, &l, err);
	dv_s3_list_release(&l);
	req_release(&rq);
	if (r == -DV_E_NOT_FOUND)
		r = dv_error(err, DV_E_NOT_FOUND, "S3 bucket '%s' does not exist at %s", s3->bucket, s3->origin);
	return r;
}

static int put_req(struct dv_s3 *s3, struct dv_http_req *rq, const char *md5_b64, const struct dv_s3_put_opts *opts,
		   struct dv_err *err)
{
	if (md5_b64)
		add_h(rq, "Content-MD5", md5_b64);
	add_put_opts(rq, opts);
	rq->has_body = true;
	rq->cap = S3_ERR_CAP;
	int r = perform(s3, rq, err);
	req_release(rq);
	return r;
}

int dv_s3_put_object(struct dv_s3 *s3, const char *key, const void *data, size_t len,
		     const struct dv_s3_put_opts *opts, struct dv_err *err)
{
	struct dv_http_req rq;
	req_init(&rq, "PUT", key);
	rq.body = data ? data : (const uint8_t *)"";
	rq.body_len = len;
	char md5[25];
	bool want_md5 = opts && opts->content_md5;
	if (want_md5)
		md5_b64(md5, rq.body, len);
	return put_req(s3, &rq, want_md5 ? md5 : NULL, opts, err);
}

int dv_s3_put_fd(struct dv_s3 *s3, const char *key, int fd, uint64_t len, const char *sha256_hex,
		 const char *md5_b64, const struct dv_s3_put_opts *opts, struct dv_err *err)
{
	struct dv_http_req rq;
	req_init(&rq, "PUT", key);
	rq.fd = fd;
	rq.body_off = 0;
	rq.body_len = len;
	rq.payload_hash = sha256_hex;
	return put_req(s3, &rq, md5_b64 && *md5_b64 ? md5_b64 : NULL, opts, err);
}

static int get_object(struct dv_s3 *s3, const char *key, uint64_t off, size_t len, bool whole, size_t cap,
		      bool allow_short, struct dv_buf *out, struct dv_err *err)
{
	struct dv_http_req rq;
	char range[64];
	req_init(&rq, "GET", key);
	dv_buf_reset(out);
	if (!whole && len == 0)
		return 0;
	if (!whole) {
		snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)off,
			 (unsigned long long)(off + len - 1));
		add_h(&rq, "Range", range);
	}
	rq.resp = out;
	rq.cap = whole ? cap : len;
	int r = perform(s3, &rq, err);
	if (r == -DV_E_CORRUPT && rq.status == 416)
		r = dv_error(err, DV_E_CORRUPT, "%s: truncated (no bytes at offset %llu)", key, (unsigned long long)off);
	else if (r == 0 && !whole && (allow_short ? out->len == 0 || out->len > len : out->len != len))
		r = dv_error(err, DV_E_CORRUPT, "%s: truncated (asked %zu bytes at offset %llu, got %zu)", key, len,
			     (unsigned long long)off, out->len);
	else if (r == 0 && !whole && rq.status != 206 && off != 0)
		r = dv_error(err, DV_E_REMOTE, "%s: server ignored the Range header", key);
	if (r < 0)
		dv_buf_reset(out);
	req_release(&rq);
	return r;
}

int dv_s3_get_object(struct dv_s3 *s3, const char *key, uint64_t off, size_t len, bool whole, size_t cap,
		     struct dv_buf *out, struct dv_err *err)
{
	return get_object(s3, key, off, len, whole, cap, false, out, err);
}

int dv_s3_get_object_upto(struct dv_s3 *s3, const char *key, uint64_t off, size_t len, struct dv_buf *out,
			  struct dv_err *err)
{
	return get_object(s3, key, off, len, false, 0, true, out, err);
}

int dv_s3_head_object(struct dv_s3 *s3, const char *key, uint64_t *size, struct dv_err *err)
{
	struct dv_http_req rq;
	req_init(&rq, "HEAD", key);
	rq.head = true;
	int r = perform(s3, &rq, err);
	if (r == -DV_E_NOT_FOUND)
		r = dv_error(err, DV_E_NOT_FOUND, "%s: object is missing", key);
	else if (r == 0 && !rq.have_cl)
		r = dv_error(err, DV_E_REMOTE, "S3 HEAD %s: no Content-Length in the answer", key);
	else if (r == 0)
		*size = rq.content_length;
	req_release(&rq);
	return r;
}

int dv_s3_list_objects(struct dv_s3 *s3, const char *prefix, dv_s3_list_fn fn, void *ctx, struct dv_err *err)
{
	char *token = NULL;
	int r = 0;
	for (;;) {
		struct dv_http_req rq;
		req_init(&rq, "GET", NULL);
		add_q(&rq, "list-type", "2");
		if (prefix && *prefix)
			add_q(&rq, "prefix", prefix);
		if (token)
			add_q(&rq, "continuation-token", token);
		r = perform(s3, &rq, err);
		struct dv_s3_list l = {0};
		if (r == 0)
			r = dv_s3_parse_list_objects((char *)rq.own.data, rq.own.len, &l, err);
		req_release(&rq);
		for (size_t i = 0; r == 0 && i < l.n; i++)
			r = fn(l.objects[i].key, l.objects[i].size, ctx);
		free(token);
		token = NULL;
		if (r == 0 && l.truncated)
			token = dv_strdup(l.next_token);
		dv_s3_list_release(&l);
		if (r != 0 || !token)
			break;
	}
	free(token);
	if (r == -DV_E_NOT_FOUND)
		r = dv_error(err, DV_E_NOT_FOUND, "S3 bucket '%s' does not exist at %s", s3->bucket, s3->origin);
	return r;
}

int dv_s3_delete_object(struct dv_s3 *s3, const char *key, struct dv_err *err)
{
	struct dv_http_req rq;
	req_init(&rq, "DELETE", key);
	rq.op_counter = &s3->stats.delete_requests;
	int r = perform(s3, &rq, err);
	req_release(&rq);
	if (r == -DV_E_NOT_FOUND)
		r = 0;
	if (r == 0)
		stat_add(&s3->stats.keys_deleted, 1);
	return r;
}

static int delete_singly(struct dv_s3 *s3, char *const *keys, size_t n, struct dv_err *err)
{
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = dv_s3_delete_object(s3, keys[i], err);
	return r;
}

static bool delete_retryable(const char *code)
{
	return !strcmp(code, "InternalError") || !strcmp(code, "SlowDown") || !strcmp(code, "ServiceUnavailable");
}

/*
 * One DeleteObjects batch. Keys refused with a passing error are sent again
 * (alone) after a backoff; *unsupported is set when the endpoint has no
 * multi-object delete (nothing was deleted then).
 */
static int delete_batch(struct dv_s3 *s3, char *const *keys, size_t n, bool *unsupported, struct dv_err *err)
{
	char **todo = dv_malloc(n * sizeof *todo);
	memcpy(todo, keys, n * sizeof *todo);
	struct dv_buf body = DV_BUF_INIT;
	double start = dv_now();
	int r = 0;
	for (unsigned attempt = 1;; attempt++) {
		dv_buf_reset(&body);
		if (!dv_s3_delete_body(&body, todo, n))
			DV_BUG("caller passed a key XML cannot carry");
		char md5[25];
		md5_b64(md5, body.data, body.len);
		struct dv_http_req rq;
		req_init(&rq, "POST", NULL);
		add_q(&rq, "delete", NULL);
		add_h(&rq, "Content-MD5", md5);
		add_h(&rq, "Content-Type", "application/xml");
		rq.has_body = true;
		rq.body = body.data;
		rq.body_len = body.len;
		rq.op_counter = &s3->stats.delete_objects_requests;
		r = perform(s3, &rq, err);
		if (r < 0) {
			*unsupported = rq.status == 501 || (rq.status >= 400 && !strcmp(rq.code, "NotImplemented"));
			req_release(&rq);
			break;
		}
		struct dv_s3_delete_result d;
		r = dv_s3_parse_delete_result((char *)rq.own.data, rq.own.len, &d, err);
		req_release(&rq);
		if (r < 0)
			break;
		if (d.is_error) {
			/* a 200 carrying an <Error> document: nothing is known deleted */
			r = dv_error(err, DV_E_REMOTE, "S3 DeleteObjects s3://%s (%zu keys from %s): %s: %s", s3->bucket, n,
				     todo[0], d.e.code, d.e.message ? d.e.message : "");
			bool again = delete_retryable(d.e.code);
			dv_s3_delete_result_release(&d);
			if (!again || attempt >= s3->set.max_attempts || dv_now() - start > s3->set.max_retry_seconds)
				break;
			stat_add(&s3->stats.retries, 1);
			dv_http_sleep(dv_http_backoff(&s3->http, attempt));
			continue;
		}
		/* Keys refused for good, and keys worth another request. */
		size_t fatal = 0, again = 0, missing = 0;
		const struct dv_s3_delete_failure *first = NULL;
		for (size_t i = 0; i < d.n_failures; i++) {
			const struct dv_s3_delete_failure *f = &d.failures[i];
			if (!strcmp(f->code, "NoSuchKey")) {
				missing++;
			} else if (delete_retryable(f->code)) {
				/* f->key is one we sent: resend our own pointer */
				for (size_t k = again; k < n; k++)
					if (!strcmp(todo[k], f->key)) {
						char *t = todo[again];
						todo[again++] = todo[k];
						todo[k] = t;
						break;
					}
			} else if (!fatal++) {
				first = f;
			}
		}
		stat_add(&s3->stats.keys_deleted, n - DV_MIN(n, d.n_failures - missing));
		if (fatal) {
			char more[64] = "";
			if (fatal > 1)
				snprintf(more, sizeof more, " (%zu keys refused in all)", fatal);
			r = dv_error(err, DV_E_REMOTE, "S3 DeleteObjects s3://%s/%s: %s%s%s%s", s3->bucket, first->key,
				     first->code, first->message ? ": " : "", first->message ? first->message : "", more);
		}
		bool retry_left = attempt < s3->set.max_attempts && dv_now() - start <= s3->set.max_retry_seconds;
		if (!fatal && again && !retry_left)
			r = dv_error(err, DV_E_REMOTE, "S3 DeleteObjects s3://%s/%s: giving up after %u attempts: %s",
				     s3->bucket, todo[0], attempt, "the server kept refusing it as busy");
		dv_s3_delete_result_release(&d);
		if (r < 0 || !again)
			break;
		n = again;
		stat_add(&s3->stats.retries, 1);
		dv_http_sleep(dv_http_backoff(&s3->http, attempt));
	}
	dv_buf_release(&body);
	free(todo);
	return r;
}

int dv_s3_delete_objects(struct dv_s3 *s3, char *const *keys, size_t n, struct dv_err *err)
{
	size_t batch = DV_S3_DELETE_BATCH;
	const char *b = settings_env("DISKVAULT_S3_DELETE_BATCH");
	if (b && atoi(b) > 0 && atoi(b) < DV_S3_DELETE_BATCH)
		batch = (size_t)atoi(b);
	/* keys XML cannot carry go one by one; the rest in batches */
	char **ok = dv_malloc((n ? n : 1) * sizeof *ok);
	size_t nok = 0;
	struct dv_buf probe = DV_BUF_INIT;
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		dv_buf_reset(&probe);
		if (dv_s3_delete_body(&probe, &keys[i], 1))
			ok[nok++] = keys[i];
		else
			r = dv_s3_delete_object(s3, keys[i], err);
	}
	dv_buf_release(&probe);
	for (size_t i = 0; r == 0 && i < nok; i += batch) {
		size_t k = DV_MIN(batch, nok - i);
		if (__atomic_load_n(&s3->no_multi_delete, __ATOMIC_RELAXED)) {
			r = delete_singly(s3, ok + i, k, err);
			continue;
		}
		bool unsupported = false;
		r = delete_batch(s3, ok + i, k, &unsupported, err);
		if (r < 0 && unsupported) {
			dv_debug("s3: %s has no DeleteObjects (%s); deleting one key per request", s3->desc, err->msg);
			__atomic_store_n(&s3->no_multi_delete, true, __ATOMIC_RELAXED);
			r = delete_singly(s3, ok + i, k, err);
		}
	}
	free(ok);
	return r;
}

/* ---- multipart --------------------------------------------------------- */

int dv_s3_create_multipart(struct dv_s3 *s3, const char *key, const struct dv_s3_put_opts *opts, char **upload_id,
			   struct dv_err *err)
{
	struct dv_http_req rq;
	req_init(&rq, "POST", key);
	add_q(&rq, "uploads", NULL);
	add_put_opts(&rq, opts);
	int r = perform(s3, &rq, err);
	if (r == 0)
		r = dv_s3_parse_initiate((char *)rq.own.data, rq.own.len, upload_id, err);
	req_release(&rq);
	return r;
}

int dv_s3_list_parts(struct dv_s3 *s3, const char *key, const char *upload_id, struct dv_s3_parts *out,
		     struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	unsigned marker = 0;
	int r = 0;
	size_t cap = 0;
	for (;;) {
		struct dv_http_req rq;
		char mk[16];
		req_init(&rq, "GET", key);
		add_q(&rq, "uploadId", upload_id);
		if (marker) {
			snprintf(mk, sizeof mk, "%u", marker);
			add_q(&rq, "part-number-marker", mk);
		}
		r = perform(s3, &rq, err);
		struct dv_s3_parts page = {0};
		if (r == 0)
			r = dv_s3_parse_list_parts((char *)rq.own.data, rq.own.len, &page, err);
		req_release(&rq);
		if (r < 0)
			break;
		for (size_t i = 0; i < page.n; i++) {
			if (out->n == cap) {
				cap = cap ? 2 * cap : 64;
				out->parts = dv_realloc(out->parts, cap * sizeof *out->parts);
			}
			out->parts[out->n++] = page.parts[i];
			page.parts[i].etag = NULL;
		}
		bool more = page.truncated && page.next_marker > marker && out->n < 10000;
		marker = page.next_marker;
		dv_s3_parts_release(&page);
		if (!more)
			break;
	}
	if (r < 0)
		dv_s3_parts_release(out);
	return r;
}

int dv_s3_complete_multipart(struct dv_s3 *s3, const char *key, const char *upload_id,
			     const struct dv_s3_part *parts, size_t n, struct dv_err *err)
{
	struct dv_buf body = DV_BUF_INIT;
	dv_buf_addf(&body, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (size_t i = 0; i < n; i++)
		dv_buf_addf(&body, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", parts[i].number,
			    parts[i].etag);
	dv_buf_addf(&body, "</CompleteMultipartUpload>");
	int r = 0;
	double start = dv_now();
	for (unsigned attempt = 1;; attempt++) {
		struct dv_http_req rq;
		req_init(&rq, "POST", key);
		add_q(&rq, "uploadId", upload_id);
		rq.has_body = true;
		rq.body = body.data;
		rq.body_len = body.len;
		add_h(&rq, "Content-Type", "application/xml");
		r = perform(s3, &rq, err);
		bool again = false;
		if (r == 0) {
			/* a 200 may still carry an <Error> */
			char *etag = NULL;
			bool is_err = false;
			struct dv_s3_error e;
			r = dv_s3_parse_complete((char *)rq.own.data, rq.own.len, &etag, &is_err, &e, err);
			if (r == 0 && is_err) {
				r = dv_error(err, DV_E_REMOTE, "S3 CompleteMultipartUpload %s: %s: %s (request id %s)",
					     key, e.code, e.message ? e.message : "",
					     e.request_id ? e.request_id : rq.request_id);
				again = !strcmp(e.code, "InternalError") || !strcmp(e.code, "SlowDown");
				dv_s3_error_release(&e);
			}
			free(etag);
		}
		req_release(&rq);
		if (!again || attempt >= s3->set.max_attempts || dv_now() - start > s3->set.max_retry_seconds)
			break;
		stat_add(&s3->stats.retries, 1);
		dv_http_sleep(dv_http_backoff(&s3->http, attempt));
	}
	dv_buf_release(&body);
	return r;
}

int dv_s3_abort_multipart(struct dv_s3 *s3, const char *key, const char *upload_id, struct dv_err *err)
{
	struct dv_http_req rq;
	req_init(&rq, "DELETE", key);
	add_q(&rq, "uploadId", upload_id);
	int r = perform(s3, &rq, err);
	req_release(&rq);
	return r;
}

int dv_s3_list_uploads(struct dv_s3 *s3, const char *prefix, dv_s3_upload_fn fn, void *ctx, struct dv_err *err)
{
	char *km = NULL, *um = NULL;
	int r = 0;
	for (;;) {
		struct dv_http_req rq;
		req_init(&rq, "GET", NULL);
		add_q(&rq, "uploads", NULL);
		if (prefix && *prefix)
			add_q(&rq, "prefix", prefix);
		if (km)
			add_q(&rq, "key-marker", km);
		if (um)
			add_q(&rq, "upload-id-marker", um);
		r = perform(s3, &rq, err);
		struct dv_s3_uploads u = {0};
		if (r == 0)
			r = dv_s3_parse_list_uploads((char *)rq.own.data, rq.own.len, &u, err);
		req_release(&rq);
		for (size_t i = 0; r == 0 && i < u.n; i++)
			r = fn(&u.uploads[i], ctx);
		free(km);
		free(um);
		km = um = NULL;
		bool more = r == 0 && u.truncated && u.next_key_marker && *u.next_key_marker;
		if (more) {
			km = dv_strdup(u.next_key_marker);
			um = u.next_upload_id_marker ? dv_strdup(u.next_upload_id_marker) : NULL;
		}
		dv_s3_uploads_release(&u);
		if (!more)
			break;
	}
	free(km);
	free(um);
	return r;
}

/* Parts through curl multi: a few slots, each owning one easy handle and
 * one job at a time, so a retry keeps its slot and its backoff. */
struct slot {
	CURL *c;
	struct dv_http_req rq;
	struct dv_s3_part_job *job;
	char part_q[16];
	unsigned attempt;
	double first, ready_at;
	bool active;
};

static void part_req(struct slot *sl, const char *key, const char *upload_id, int fd)
{
	struct dv_s3_part_job *j = sl->job;
	req_init(&sl->rq, "PUT", key);
	snprintf(sl->part_q, sizeof sl->part_q, "%u", j->number);
	add_q(&sl->rq, "partNumber", sl->part_q);
	add_q(&sl->rq, "uploadId", upload_id);
	if (j->md5_b64[0])
		add_h(&sl->rq, "Content-MD5", j->md5_b64);
	sl->rq.has_body = true;
	sl->rq.fd = fd;
	sl->rq.body_off = j->offset;
	sl->rq.body_len = j->size;
	sl->rq.payload_hash = j->sha256_hex;
	sl->rq.cap = S3_ERR_CAP;
}

int dv_s3_upload_parts(struct dv_s3 *s3, const char *key, const char *upload_id, int fd, struct dv_s3_part_job *jobs,
		       size_t n, dv_s3_part_done_fn done, void *ctx, struct dv_err *err)
{
	struct dv_err scratch;
	if (!err)
		err = &scratch;
	dv_err_clear(err);
	CURLM *m = curl_multi_init();
	if (!m)
		DV_BUG("curl_multi_init failed");
	size_t nslots = DV_MIN((size_t)s3->set.connections, n);
	struct slot *slots = dv_calloc(nslots ? nslots : 1, sizeof *slots);
	size_t next = 0, finished = 0;
	int r = 0;
	for (size_t i = 0; i < nslots; i++)
		slots[i].c = pool_get(s3);

	while (finished < n && r == 0) {
		double now = dv_now();
		double wait = 1.0;
		for (size_t i = 0; i < nslots && r == 0; i++) {
			struct slot *sl = &slots[i];
			if (sl->active)
				continue;
			if (!sl->job) {
				if (next >= n)
					continue;
				sl->job = &jobs[next++];
				sl->attempt = 0;
				sl->first = now;
				sl->ready_at = now;
				part_req(sl, key, upload_id, fd);
			}
			if (sl->ready_at > now) {
				wait = DV_MIN(wait, sl->ready_at - now);
				continue;
			}
			sl->attempt++;
			r = dv_http_multi_add(&s3->http, m, sl->c, &sl->rq, sl, err);
			if (r < 0)
				break;
			sl->active = true;
		}
		if (r < 0)
			break;
		int running = 0;
		curl_multi_perform(m, &running);
		CURLcode cc;
		for (struct slot *sl; (sl = dv_http_multi_done(&s3->http, m, &cc));) {
			sl->active = false;
			struct dv_err e;
			dv_err_clear(&e);
			enum dv_http_verdict v = s3_classify(s3, sl->c, &sl->rq, cc, &e);
			if (v == DV_HTTP_OK && !sl->rq.etag[0]) {
				dv_error(&e, DV_E_REMOTE, "S3 UploadPart %s part %u: no ETag in the answer", key,
					 sl->job->number);
				v = DV_HTTP_FAIL;
			}
			if (v == DV_HTTP_RETRY) {
				double pause;
				if (dv_http_next_attempt(&s3->http, sl->attempt, sl->first, false, &pause, &e)) {
					dv_debug("part %u: retrying in %.2f s: %s", sl->job->number, pause, e.msg);
					sl->ready_at = dv_now() + pause;
					continue;
				}
				v = DV_HTTP_FAIL;
			}
			struct dv_s3_part_job *j = sl->job;
			sl->job = NULL;
			finished++;
			if (v == DV_HTTP_OK) {
				j->etag = dv_strdup(sl->rq.etag);
				j->result = 0;
			} else {
				j->result = -(int)e.code;
				if (r == 0) {
					*err = e;
					r = j->result;
				}
			}
			req_release(&sl->rq);
			if (r == 0 && done) {
				int dr = done(j, ctx);
				if (dr < 0) {
					r = dr;
					if (err->code == DV_OK)
						dv_error(err, (enum dv_code)-dr, "part upload stopped");
				}
			}
		}
		/* A slot freed just now takes its next part at once: polling
		 * first would wait for the other transfers, or for the whole
		 * timeout when none is left running. */
		bool startable = false;
		double t = dv_now();
		for (size_t i = 0; i < nslots && !startable; i++) {
			const struct slot *sl = &slots[i];
			startable = !sl->active && (sl->job ? sl->ready_at <= t : next < n);
			if (!sl->active && sl->job && sl->ready_at > t)
				wait = DV_MIN(wait, sl->ready_at - t); /* a retry backing off */
		}
		if (r == 0 && finished < n && !startable) {
			int waitms = (int)(wait * 1000);
			curl_multi_poll(m, NULL, 0, DV_MAX(waitms, 1), NULL);
		}
	}
	for (size_t i = 0; i < nslots; i++) {
		if (slots[i].active)
			dv_http_multi_remove(&s3->http, m, slots[i].c);
		if (slots[i].job)
			req_release(&slots[i].rq);
		pool_put(s3, slots[i].c);
	}
	free(slots);
	curl_multi_cleanup(m);
	return r;
}

int dv_s3_open_url(const char *url, const struct dv_s3_settings *settings, struct dv_s3 **out, char **prefix,
		   struct dv_err *err)
{
	if (strncmp(url, "s3://", 5))
		return dv_error(err, DV_E_USAGE, "%s: expected s3://bucket[/prefix]", url);
	const char *b = url + 5;
	size_t bl = strcspn(b, "/");
	if (bl == 0)
		return dv_error(err, DV_E_USAGE, "%s: expected s3://bucket[/prefix]", url);
	const char *p = b + bl;
	while (*p == '/')
		p++;
	size_t pl = strlen(p);
	while (pl && p[pl - 1] == '/')
		pl--;
	if (memmem(p, pl, "//", 2) || memmem(p, pl, "..", 2))
		return dv_error(err, DV_E_USAGE, "%s: invalid prefix", url);
	struct dv_aws_options ao = {
		.profile = settings_env("DISKVAULT_S3_PROFILE"),
		.region = settings_env("DISKVAULT_S3_REGION"),
		.endpoint = settings_env("DISKVAULT_S3_ENDPOINT"),
	};
	struct dv_aws_config cfg;
	struct dv_aws_creds creds = {0};
	int r = dv_aws_config_load(&ao, &cfg, err);
	if (r < 0)
		return r;
	r = dv_aws_creds_load(&ao, &cfg, &creds, err);
	char *bucket = dv_asprintf("%.*s", (int)bl, b);
	if (r == 0)
		r = dv_s3_new(&cfg, &creds, bucket, settings, out, err);
	if (r == 0)
		(*out)->explicit_profile = ao.profile != NULL;
	free(bucket);
	dv_aws_creds_release(&creds);
	dv_aws_config_release(&cfg);
	if (r == 0)
		*prefix = pl ? dv_asprintf("%.*s/", (int)pl, p) : dv_strdup("");
	return r;
}
