/*
 * EBS direct APIs over libcurl (see ebs.h for the wire facts and the retry
 * policy). One easy handle serves the single calls; PutSnapshotBlock runs
 * through curl multi with a fixed set of slots, each owning an easy handle
 * and one block at a time, so a retry keeps its slot and its backoff while
 * the other slots keep the pipe full.
 *
 * Paths here contain only [A-Za-z0-9/-], so the non-S3 rule (URI-encode
 * the path twice when signing) gives the same text as the signer's single
 * encoding.
 */
#include "ebs.h"
#include "ec2.h"
#include "http_internal.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EBS_JSON_CAP (8u << 20)
#define EBS_ERR_CAP (64u << 10)

struct endpoint {
	char *origin;  /* "http://127.0.0.1:4590" */
	char *host;    /* Host header */
	char *path;    /* "" or a prefix from the endpoint URL */
};

struct dv_ebs {
	struct dv_aws_creds creds;
	char *region;
	struct endpoint ebs, ec2;
	char *desc;
	struct dv_ebs_settings set;
	CURL *easy;
	CURLM *multi;  /* set while dv_ebs_put_blocks runs (for wakeup) */
	pthread_mutex_t lock;
	struct dv_ebs_stats stats;
	struct dv_http_client http;  /* retry policy and hooks (http_internal.h) */
};

static int ebs_prepare(void *svc, CURL *c, struct dv_http_req *rq, struct dv_err *err);
static enum dv_http_verdict ebs_classify(void *svc, CURL *c, struct dv_http_req *rq, CURLcode cc, struct dv_err *err);


/* ---- pure helpers ------------------------------------------------------ */

void dv_ebs_block_checksum(const void *data, size_t len, uint8_t digest[32], char out[45])
{
	uint8_t md[32];
	unsigned n = 0;
	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32)
		DV_BUG("EVP_Digest(sha256) failed");
	if (digest)
		memcpy(digest, md, 32);
	EVP_EncodeBlock((unsigned char *)out, md, 32);
}

void dv_ebs_linear_checksum(const uint8_t (*digests)[32], size_t n, char out[45])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint8_t md[32];
	unsigned ml = 0;
	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL))
		DV_BUG("sha256 init failed");
	for (size_t i = 0; i < n; i++)
		EVP_DigestUpdate(c, digests[i], 32);
	if (!EVP_DigestFinal_ex(c, md, &ml) || ml != 32)
		DV_BUG("sha256 final failed");
	EVP_MD_CTX_free(c);
	EVP_EncodeBlock((unsigned char *)out, md, 32);
}

static void copy_str(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s ? s : "");
}

/* Control characters from a hostile body never reach a terminal. */
static void scrub(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20)
			*s = ' ';
}

int dv_ebs_parse_snapshot(const char *json, size_t len, struct dv_ebs_snapshot_info *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	json_error_t je;
	json_t *j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return dv_error(err, DV_E_REMOTE, "EBS StartSnapshot: malformed answer (%s)", j ? "not an object" : je.text);
	}
	const char *id = json_string_value(json_object_get(j, "SnapshotId"));
	const char *st = json_string_value(json_object_get(j, "Status"));
	const char *parent = json_string_value(json_object_get(j, "ParentSnapshotId"));
	json_t *vs = json_object_get(j, "VolumeSize"), *bs = json_object_get(j, "BlockSize");
	int r = 0;
	if (!id || !*id || strlen(id) >= sizeof out->id)
		r = dv_error(err, DV_E_REMOTE, "EBS StartSnapshot: answer has no valid SnapshotId");
	else if (bs && (!json_is_integer(bs) || json_integer_value(bs) != DV_EBS_BLOCK_SIZE))
		r = dv_error(err, DV_E_REMOTE, "EBS StartSnapshot: unsupported BlockSize (only 524288 is known)");
	else if (vs && (!json_is_integer(vs) || json_integer_value(vs) < 1))
		r = dv_error(err, DV_E_REMOTE, "EBS StartSnapshot: invalid VolumeSize");
	if (r == 0) {
		copy_str(out->id, sizeof out->id, id);
		copy_str(out->status, sizeof out->status, st ? st : "pending");
		if (parent && strlen(parent) < sizeof out->parent)
			copy_str(out->parent, sizeof out->parent, parent);
		out->volume_size = vs ? (uint64_t)json_integer_value(vs) : 0;
		out->block_size = DV_EBS_BLOCK_SIZE;
	}
	json_decref(j);
	return r;
}

void dv_ebs_parse_error(const char *type_header, const char *json, size_t len, struct dv_ebs_error *out)
{
	memset(out, 0, sizeof *out);
	json_t *j = json && len ? json_loadb(json, len, 0, NULL) : NULL;
	const char *type = type_header && *type_header ? type_header : NULL;
	if (!type && json_is_object(j)) {
		type = json_string_value(json_object_get(j, "__type"));
		if (!type)
			type = json_string_value(json_object_get(j, "code"));
		if (!type)
			type = json_string_value(json_object_get(j, "Code"));
	}
	if (type) {
		/* "ThrottlingException:http://internal..." or "aws#Code" forms */
		const char *h = strrchr(type, '#');
		if (h)
			type = h + 1;
		size_t n = strcspn(type, ":");
		if (n >= sizeof out->type)
			n = sizeof out->type - 1;
		memcpy(out->type, type, n);
		out->type[n] = 0;
	}
	if (json_is_object(j)) {
		const char *m = json_string_value(json_object_get(j, "Message"));
		if (!m)
			m = json_string_value(json_object_get(j, "message"));
		copy_str(out->message, sizeof out->message, m);
		copy_str(out->reason, sizeof out->reason, json_string_value(json_object_get(j, "Reason")));
	}
	scrub(out->message);
	json_decref(j);
}

bool dv_ebs_retryable(long status, const char *type)
{
	static const char *const retry_types[] = {
		"ThrottlingException",     "RequestThrottledException", "ConcurrentLimitExceededException",
		"RequestLimitExceeded",    "Throttling",                "InternalServerException",
		"ServiceUnavailableException", "InternalError",          "Unavailable",
		"RequestTimeout",          "RequestTimeoutException",   "SlowDown",
	};
	if (status >= 500 && status != 501)
		return true;
	if (status == 429)
		return true;
	for (size_t i = 0; type && i < DV_ARRAY_SIZE(retry_types); i++)
		if (!strcmp(type, retry_types[i]))
			return true;
	return false;
}

int dv_ebs_parse_block_list(const char *json, size_t len, dv_ebs_block_fn fn, void *ctx, char **next,
			    struct dv_err *err)
{
	*next = NULL;
	json_error_t je;
	json_t *j = json_loadb(json, len, 0, &je);
	if (!json_is_object(j)) {
		json_decref(j);
		return dv_error(err, DV_E_REMOTE, "EBS ListSnapshotBlocks: malformed answer");
	}
	json_t *blocks = json_object_get(j, "Blocks");
	json_t *bs = json_object_get(j, "BlockSize");
	int r = 0;
	if (blocks && !json_is_array(blocks))
		r = dv_error(err, DV_E_REMOTE, "EBS ListSnapshotBlocks: Blocks is not a list");
	else if (bs && (!json_is_integer(bs) || json_integer_value(bs) != DV_EBS_BLOCK_SIZE))
		r = dv_error(err, DV_E_REMOTE, "EBS ListSnapshotBlocks: unsupported BlockSize");
	size_t i;
	json_t *b;
	json_array_foreach(blocks, i, b)
	{
		if (r)
			break;
		json_t *ix = json_object_get(b, "BlockIndex");
		const char *tok = json_string_value(json_object_get(b, "BlockToken"));
		if (!json_is_integer(ix) || json_integer_value(ix) < 0 || !tok || strlen(tok) > 256) {
			r = dv_error(err, DV_E_REMOTE, "EBS ListSnapshotBlocks: invalid block entry %zu", i);
			break;
		}
		r = fn((uint64_t)json_integer_value(ix), tok, ctx);
	}
	const char *nt = json_string_value(json_object_get(j, "NextToken"));
	if (r == 0 && nt && *nt) {
		if (strlen(nt) > 256)
			r = dv_error(err, DV_E_REMOTE, "EBS ListSnapshotBlocks: NextToken too long");
		else
			*next = dv_strdup(nt);
	}
	json_decref(j);
	return r;
}

/* ---- CompleteSnapshot and the EC2 snapshot status ---------------------- */

void dv_ebs_parse_complete(const char *json, size_t len, char *status, size_t cap)
{
	json_t *j = json && len ? json_loadb(json, len, 0, NULL) : NULL;
	const char *st = json_string_value(json_object_get(j, "Status"));
	copy_str(status, cap, st && *st ? st : "pending");
	json_decref(j);
}

int dv_ec2_parse_snapshot_status(const char *xml, size_t len, const char *id, char *status, size_t cap,
				 struct dv_err *err)
{
	struct dv_ec2_snapshots l;
	int r = dv_ec2_parse_snapshots(xml, len, &l, err);
	if (r < 0)
		return r;
	r = dv_error(err, DV_E_NOT_FOUND, "EC2 DescribeSnapshots: snapshot %s not listed", id);
	for (size_t i = 0; i < l.n; i++) {
		if (!strcmp(l.v[i].id, id)) {
			copy_str(status, cap, l.v[i].state);
			r = 0;
			break;
		}
	}
	dv_ec2_snapshots_release(&l);
	return r;
}

/* ---- endpoints and setup ---------------------------------------------- */

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* url from dv_aws_endpoint_resolve: http(s)://host[:port][/path] */
static int set_endpoint(struct endpoint *ep, const char *url, const char *service, struct dv_err *err)
{
	const char *hs = strstr(url, "://") + 3;
	const char *pe = strchr(hs, '/');
	size_t hl = pe ? (size_t)(pe - hs) : strlen(hs);
	if (!hl)
		return dv_error(err, DV_E_USAGE, "%s endpoint '%s' has no host", service, url);
	ep->host = dv_asprintf("%.*s", (int)hl, hs);
	ep->origin = dv_asprintf("%.*s%s", (int)(hs - url), url, ep->host);
	size_t pl = pe ? strlen(pe) : 0;
	while (pl && pe[pl - 1] == '/')
		pl--;
	ep->path = dv_asprintf("%.*s", (int)pl, pe ? pe : "");
	return 0;
}

static void endpoint_release(struct endpoint *ep)
{
	free(ep->origin);
	free(ep->host);
	free(ep->path);
}

static double env_num(const char *name, double dflt)
{
	const char *v = env(name);
	return v ? atof(v) : dflt;
}

int dv_ebs_new(const struct dv_aws_options *opt, const struct dv_ebs_settings *settings, struct dv_ebs **out,
	       struct dv_err *err)
{
	dv_http_global_init();
	struct dv_aws_options o = {0};
	if (opt)
		o = *opt;
	o.endpoint = NULL; /* resolved per service below */
	struct dv_aws_config cfg;
	int r = dv_aws_config_load(&o, &cfg, err);
	if (r < 0)
		return r;
	struct dv_ebs *e = dv_calloc(1, sizeof *e);
	pthread_mutex_init(&e->lock, NULL);
	e->region = dv_strdup(cfg.region);
	char *ebs_url = NULL, *ec2_url = NULL;
	const char *explicit_url = opt ? opt->endpoint : NULL;
	r = dv_aws_endpoint_resolve(&cfg, "ebs", explicit_url, &ebs_url, NULL, err);
	if (r == 0)
		r = dv_aws_endpoint_resolve(&cfg, "ec2", explicit_url, &ec2_url, NULL, err);
	if (r == 0)
		r = set_endpoint(&e->ebs, ebs_url, "EBS", err);
	if (r == 0)
		r = set_endpoint(&e->ec2, ec2_url, "EC2", err);
	free(ebs_url);
	free(ec2_url);
	if (r == 0)
		r = dv_aws_creds_load(opt, &cfg, &e->creds, err);
	dv_aws_config_release(&cfg);
	if (r < 0) {
		dv_ebs_free(e);
		return r;
	}
	if (settings)
		e->set = *settings;
	if (!e->set.concurrency)
		e->set.concurrency = (unsigned)env_num("DISKVAULT_EBS_CONCURRENCY", 64);
	e->set.concurrency = DV_MAX(1u, DV_MIN(e->set.concurrency, 512u));
	if (!e->set.max_attempts)
		e->set.max_attempts = (unsigned)env_num("DISKVAULT_EBS_MAX_ATTEMPTS", 12);
	if (e->set.max_attempts < 1)
		e->set.max_attempts = 1;
	if (e->set.max_retry_seconds <= 0)
		e->set.max_retry_seconds = env_num("DISKVAULT_EBS_RETRY_SECONDS", 600);
	if (!e->set.connect_timeout)
		e->set.connect_timeout = 10;
	if (!e->set.request_timeout)
		e->set.request_timeout = (long)env_num("DISKVAULT_EBS_REQUEST_TIMEOUT", 120);
	if (e->set.not_found_grace <= 0)
		e->set.not_found_grace = 120;
	e->desc = dv_strdup(e->ebs.origin);
	e->easy = dv_http_easy();
	e->http = (struct dv_http_client){
		.retry_curl = DV_HTTP_RETRY_STREAM | DV_HTTP_RETRY_RESOLVE,
		.backoff_base = 0.2,
		.backoff_floor = 0.1, /* a throttled service needs air */
		.max_attempts = e->set.max_attempts,
		.max_retry_seconds = e->set.max_retry_seconds,
		.empty_post_form = true,
		.requests = &e->stats.requests,
		.retries = &e->stats.retries,
		.bytes_sent = &e->stats.bytes_sent,
		.prepare = ebs_prepare,
		.classify = ebs_classify,
		.svc = e,
	};
	*out = e;
	return 0;
}

void dv_ebs_free(struct dv_ebs *e)
{
	if (!e)
		return;
	if (e->easy)
		curl_easy_cleanup(e->easy);
	dv_aws_creds_release(&e->creds);
	endpoint_release(&e->ebs);
	endpoint_release(&e->ec2);
	free(e->region);
	free(e->desc);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

const char *dv_ebs_endpoint(const struct dv_ebs *e) { return e->ebs.origin; }
const char *dv_ebs_region(const struct dv_ebs *e) { return e->region; }
unsigned dv_ebs_concurrency(const struct dv_ebs *e) { return e->set.concurrency; }

void dv_ebs_get_stats(const struct dv_ebs *e, struct dv_ebs_stats *out)
{
	out->requests = __atomic_load_n(&e->stats.requests, __ATOMIC_RELAXED);
	out->retries = __atomic_load_n(&e->stats.retries, __ATOMIC_RELAXED);
	out->throttled = __atomic_load_n(&e->stats.throttled, __ATOMIC_RELAXED);
	out->bytes_sent = __atomic_load_n(&e->stats.bytes_sent, __ATOMIC_RELAXED);
}

static void stat_add(uint64_t *p, uint64_t v) { __atomic_add_fetch(p, v, __ATOMIC_RELAXED); }


void dv_ebs_wakeup(struct dv_ebs *e)
{
	pthread_mutex_lock(&e->lock);
	if (e->multi)
		curl_multi_wakeup(e->multi);
	pthread_mutex_unlock(&e->lock);
}

/* ---- one request --------------------------------------------------------- */

/* Requests are struct dv_http_req (http_internal.h); path starts with the
 * endpoint's prefix and the caller appends the rest. */
static void req_init(struct dv_http_req *rq, const char *op, const char *what, const struct endpoint *ep,
		     const char *service, const char *method)
{
	dv_http_req_init(rq, method, ep->origin, ep->host);
	rq->op = op;
	rq->what = what ? what : "";
	rq->service = service;
	rq->cap = EBS_JSON_CAP;
	rq->err_cap = EBS_ERR_CAP;
	dv_buf_addf(&rq->path, "%s", ep->path);
}

static void req_release(struct dv_http_req *rq) { dv_http_req_release(rq); }
static void add_h(struct dv_http_req *rq, const char *k, const char *v) { dv_http_add_header(rq, k, v); }
static void add_q(struct dv_http_req *rq, const char *k, const char *v) { dv_http_add_query(rq, k, v); }

static void set_body(struct dv_http_req *rq, const void *body, size_t len)
{
	rq->has_body = true;
	rq->body = body;
	rq->body_len = len;
}

/* Signs one attempt and prepares handle c. */
static int ebs_prepare(void *svc, CURL *c, struct dv_http_req *rq, struct dv_err *err)
{
	struct dv_ebs *e = svc;
	rq->connect_timeout = e->set.connect_timeout;
	rq->timeout = e->set.request_timeout;
	rq->stall_timeout = DV_MIN(60L, e->set.request_timeout);
	struct dv_http_signer sg = {.creds = &e->creds, .region = e->region, .time = dv_unix_now()};
	return dv_http_setup(&e->http, c, rq, &sg, err);
}

/* Classifies a finished attempt; err gets the one-line description of a
 * failure. not_found_ok: a 404 ResourceNotFoundException is retried. */
static enum dv_http_verdict classify(struct dv_ebs *e, CURL *c, struct dv_http_req *rq, CURLcode cc,
				     bool not_found_ok, struct dv_err *err)
{
	const char *svc = !strcmp(rq->service, "ec2") ? "EC2" : "EBS";
	char wk[320];
	snprintf(wk, sizeof wk, "%s %s %s", svc, rq->op, rq->what);
	enum dv_http_verdict v = dv_http_finish(&e->http, c, rq, cc, wk, DV_E_REMOTE, err);
	if (v != DV_HTTP_STATUS)
		return v;
	struct dv_ebs_error ee;
	if (!strcmp(rq->service, "ec2")) {
		struct dv_ec2_error x;
		struct dv_err e2;
		memset(&ee, 0, sizeof ee);
		if (rq->resp->len && dv_ec2_parse_error((char *)rq->resp->data, rq->resp->len, &x, &e2) == 0) {
			copy_str(ee.type, sizeof ee.type, x.code);
			copy_str(ee.message, sizeof ee.message, x.message);
			scrub(ee.message);
			dv_ec2_error_release(&x);
		}
	} else {
		dv_ebs_parse_error(rq->err_type, (char *)rq->resp->data, rq->resp->len, &ee);
	}
	copy_str(rq->code, sizeof rq->code, ee.type);
	enum dv_code dc = rq->status == 404 ? DV_E_NOT_FOUND : DV_E_REMOTE;
	dv_error(err, dc, "%s: HTTP %ld %s%s%s%s%s%s%s%s", wk, rq->status, ee.type[0] ? ee.type : "error",
		 ee.message[0] ? ": " : "", ee.message, ee.reason[0] ? " (" : "", ee.reason, ee.reason[0] ? ")" : "",
		 rq->request_id[0] ? " request id " : "", rq->request_id);
	if (strstr(ee.type, "Throttl") || !strcmp(ee.type, "RequestLimitExceeded"))
		stat_add(&e->stats.throttled, 1);
	if (dv_ebs_retryable(rq->status, ee.type))
		return DV_HTTP_RETRY;
	if (not_found_ok && rq->status == 404 && !strcmp(ee.type, "ResourceNotFoundException"))
		return DV_HTTP_RETRY;
	return DV_HTTP_FAIL;
}

static enum dv_http_verdict ebs_classify(void *svc, CURL *c, struct dv_http_req *rq, CURLcode cc, struct dv_err *err)
{
	return classify(svc, c, rq, cc, false, err);
}

static int perform(struct dv_ebs *e, struct dv_http_req *rq, struct dv_err *err)
{
	return dv_http_perform(&e->http, e->easy, rq, err);
}
/* ---- calls -------------------------------------------------------------- */

int dv_ebs_start_snapshot(struct dv_ebs *e, const struct dv_ebs_start *s, struct dv_ebs_snapshot_info *out,
			  struct dv_err *err)
{
	json_t *j = json_object();
	json_object_set_new(j, "VolumeSize", json_integer((json_int_t)s->volume_size));
	if (s->parent && *s->parent)
		json_object_set_new(j, "ParentSnapshotId", json_string(s->parent));
	if (s->ntags) {
		json_t *tags = json_array();
		for (size_t i = 0; i < s->ntags; i++)
			json_array_append_new(tags, json_pack("{s:s, s:s}", "Key", s->tags[i].key, "Value",
							      s->tags[i].value ? s->tags[i].value : ""));
		json_object_set_new(j, "Tags", tags);
	}
	if (s->description)
		json_object_set_new(j, "Description", json_string(s->description));
	if (s->client_token)
		json_object_set_new(j, "ClientToken", json_string(s->client_token));
	if (s->encrypted)
		json_object_set_new(j, "Encrypted", json_true());
	if (s->kms_key_arn)
		json_object_set_new(j, "KmsKeyArn", json_string(s->kms_key_arn));
	if (s->timeout_minutes)
		json_object_set_new(j, "Timeout", json_integer(s->timeout_minutes));
	char *body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!body)
		return dv_error(err, DV_E_USAGE, "EBS StartSnapshot: a description or tag is not valid UTF-8");
	struct dv_http_req rq;
	req_init(&rq, "StartSnapshot", "", &e->ebs, "ebs", "POST");
	dv_buf_addf(&rq.path, "/snapshots");
	add_h(&rq, "Content-Type", "application/json");
	set_body(&rq, body, strlen(body));
	int r = perform(e, &rq, err);
	if (r == 0)
		r = dv_ebs_parse_snapshot((char *)rq.own.data, rq.own.len, out, err);
	req_release(&rq);
	free(body);
	return r;
}

int dv_ebs_complete_snapshot(struct dv_ebs *e, const char *snapshot_id, uint64_t changed_blocks, const char *linear,
			     char status[16], struct dv_err *err)
{
	char cnt[24];
	snprintf(cnt, sizeof cnt, "%llu", (unsigned long long)changed_blocks);
	struct dv_http_req rq;
	req_init(&rq, "CompleteSnapshot", snapshot_id, &e->ebs, "ebs", "POST");
	dv_buf_addf(&rq.path, "/snapshots/completion/%s", snapshot_id);
	add_h(&rq, "x-amz-ChangedBlocksCount", cnt);
	if (linear) {
		add_h(&rq, "x-amz-Checksum", linear);
		add_h(&rq, "x-amz-Checksum-Algorithm", "SHA256");
		add_h(&rq, "x-amz-Checksum-Aggregation-Method", "LINEAR");
	}
	int r = perform(e, &rq, err);
	if (r == 0) {
		dv_ebs_parse_complete((char *)rq.own.data, rq.own.len, status, 16);
	}
	req_release(&rq);
	return r;
}

int dv_ebs_list_blocks(struct dv_ebs *e, const char *snapshot_id, dv_ebs_block_fn fn, void *ctx, struct dv_err *err)
{
	char *token = NULL;
	int r = 0;
	do {
		struct dv_http_req rq;
		req_init(&rq, "ListSnapshotBlocks", snapshot_id, &e->ebs, "ebs", "GET");
		dv_buf_addf(&rq.path, "/snapshots/%s/blocks", snapshot_id);
		add_q(&rq, "maxResults", "10000");
		if (token)
			add_q(&rq, "pageToken", token);
		r = perform(e, &rq, err);
		char *next = NULL;
		if (r == 0)
			r = dv_ebs_parse_block_list((char *)rq.own.data, rq.own.len, fn, ctx, &next, err);
		req_release(&rq);
		free(token);
		token = next;
	} while (r == 0 && token);
	free(token);
	return r;
}

int dv_ebs_snapshot_status(struct dv_ebs *e, const char *snapshot_id, char status[16], struct dv_err *err)
{
	struct dv_buf body = DV_BUF_INIT;
	dv_buf_addf(&body, "Action=DescribeSnapshots&Version=2016-11-15&SnapshotId.1=");
	dv_aws_uri_encode(&body, snapshot_id, false);
	struct dv_http_req rq;
	req_init(&rq, "DescribeSnapshots", snapshot_id, &e->ec2, "ec2", "POST");
	dv_buf_addf(&rq.path, "/");
	add_h(&rq, "Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
	set_body(&rq, body.data, body.len);
	int r = perform(e, &rq, err);
	if (r == 0)
		r = dv_ec2_parse_snapshot_status((char *)rq.own.data, rq.own.len, snapshot_id, status, 16, err);
	else if (rq.status == 400 && !strcmp(rq.code, "InvalidSnapshot.NotFound")) /* the parsed code */
		err->code = DV_E_NOT_FOUND, r = -DV_E_NOT_FOUND;
	req_release(&rq);
	dv_buf_release(&body);
	return r;
}

int dv_ebs_find_snapshot(struct dv_ebs *e, const struct dv_ec2_filter *filters, size_t nfilters, char id[72],
			 struct dv_err *err)
{
	id[0] = 0;
	char *token = NULL;
	int r;
	do {
		struct dv_ec2_form f;
		dv_ec2_form_init(&f, "DescribeSnapshots");
		dv_ec2_form_add(&f, "Owner.1", "self");
		dv_ec2_form_add_filters(&f, filters, nfilters);
		if (token)
			dv_ec2_form_add(&f, "NextToken", token);
		free(token);
		token = NULL;
		struct dv_buf body = DV_BUF_INIT;
		dv_ec2_form_encode(&f, &body);
		dv_ec2_form_release(&f);
		struct dv_http_req rq;
		req_init(&rq, "DescribeSnapshots", "", &e->ec2, "ec2", "POST");
		dv_buf_addf(&rq.path, "/");
		add_h(&rq, "Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
		set_body(&rq, body.data, body.len);
		r = perform(e, &rq, err);
		struct dv_ec2_snapshots l;
		if (r == 0 && (r = dv_ec2_parse_snapshots((char *)rq.own.data, rq.own.len, &l, err)) == 0) {
			if (l.n)
				copy_str(id, 72, l.v[0].id);
			else if (l.next_token && *l.next_token)
				token = dv_strdup(l.next_token);
			dv_ec2_snapshots_release(&l);
		}
		req_release(&rq);
		dv_buf_release(&body);
	} while (r == 0 && token);
	free(token);
	return r;
}

/* ---- many blocks through curl multi -------------------------------------- */

struct slot {
	CURL *c;
	struct dv_http_req rq;
	struct dv_ebs_put_job *job;
	char path_idx[32];
	char len_hdr[16];
	char prog_hdr[12];
	unsigned attempt;
	double first, ready_at;
	bool active;
};

static void slot_request(struct slot *sl, struct dv_ebs *e, const char *snapshot_id)
{
	struct dv_ebs_put_job *j = sl->job;
	req_init(&sl->rq, "PutSnapshotBlock", snapshot_id, &e->ebs, "ebs", "PUT");
	dv_buf_addf(&sl->rq.path, "/snapshots/%s/blocks/%llu", snapshot_id, (unsigned long long)j->index);
	snprintf(sl->len_hdr, sizeof sl->len_hdr, "%u", DV_EBS_BLOCK_SIZE);
	add_h(&sl->rq, "x-amz-Data-Length", sl->len_hdr);
	if (j->progress >= 0) {
		snprintf(sl->prog_hdr, sizeof sl->prog_hdr, "%d", DV_MIN(j->progress, 100));
		add_h(&sl->rq, "x-amz-Progress", sl->prog_hdr);
	}
	add_h(&sl->rq, "x-amz-Checksum", j->checksum);
	add_h(&sl->rq, "x-amz-Checksum-Algorithm", "SHA256");
	add_h(&sl->rq, "Content-Type", "application/octet-stream");
	set_body(&sl->rq, j->data, DV_EBS_BLOCK_SIZE);
	sl->rq.payload_hash = "UNSIGNED-PAYLOAD";
	sl->rq.content_sha256 = true;
	sl->rq.cap = EBS_ERR_CAP;
}

int dv_ebs_put_blocks(struct dv_ebs *e, const char *snapshot_id, double started, dv_ebs_feed_fn feed,
		      dv_ebs_done_fn done, void *ctx, struct dv_err *err)
{
	CURLM *m = curl_multi_init();
	if (!m)
		DV_BUG("curl_multi_init failed");
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)e->set.concurrency);
	pthread_mutex_lock(&e->lock);
	e->multi = m;
	pthread_mutex_unlock(&e->lock);
	size_t nslots = e->set.concurrency;
	struct slot *slots = dv_calloc(nslots, sizeof *slots);
	for (size_t i = 0; i < nslots; i++)
		slots[i].c = dv_http_easy();
	bool feed_end = false;
	size_t busy = 0; /* slots holding a job */
	int r = 0;

	while (r == 0 && (!feed_end || busy)) {
		double now = dv_now();
		double wait = 0.05;
		bool starved = false;
		for (size_t i = 0; i < nslots && r == 0; i++) {
			struct slot *sl = &slots[i];
			if (sl->active)
				continue;
			if (!sl->job) {
				if (feed_end || starved)
					continue;
				struct dv_ebs_put_job *j = NULL;
				int f = feed(ctx, &j);
				if (f < 0) {
					r = f;
					if (err->code == DV_OK)
						dv_error(err, (enum dv_code)-f, "reading blocks failed");
					break;
				}
				if (f == 2) {
					feed_end = true;
					continue;
				}
				if (f == 0) {
					starved = true;
					continue;
				}
				sl->job = j;
				sl->attempt = 0;
				sl->first = sl->ready_at = now;
				busy++;
				slot_request(sl, e, snapshot_id);
			}
			if (sl->ready_at > now) {
				wait = DV_MIN(wait, sl->ready_at - now);
				continue;
			}
			sl->attempt++;
			r = dv_http_multi_add(&e->http, m, sl->c, &sl->rq, sl, err);
			if (r < 0)
				break;
			sl->active = true;
		}
		if (r < 0)
			break;
		int running = 0;
		curl_multi_perform(m, &running);
		CURLcode cc;
		for (struct slot *sl; (sl = dv_http_multi_done(&e->http, m, &cc));) {
			sl->active = false;
			struct dv_err e1;
			dv_err_clear(&e1);
			bool grace = dv_now() - started < e->set.not_found_grace;
			enum dv_http_verdict v = classify(e, sl->c, &sl->rq, cc, grace, &e1);
			if (v == DV_HTTP_RETRY) {
				double pause;
				if (dv_http_next_attempt(&e->http, sl->attempt, sl->first, false, &pause, &e1)) {
					dv_debug("block %llu: retrying in %.2f s: %s",
						 (unsigned long long)sl->job->index, pause, e1.msg);
					sl->ready_at = dv_now() + pause;
					continue;
				}
				v = DV_HTTP_FAIL;
			}
			struct dv_ebs_put_job *j = sl->job;
			sl->job = NULL;
			busy--;
			j->attempts = sl->attempt;
			j->result = v == DV_HTTP_OK ? 0 : -(int)e1.code;
			req_release(&sl->rq);
			if (j->result < 0 && r == 0) {
				*err = e1;
				r = j->result;
			}
			int dr = done(ctx, j, j->result < 0 ? &e1 : NULL);
			if (dr < 0 && r == 0) {
				r = dr;
				if (err->code == DV_OK)
					dv_error(err, (enum dv_code)-dr, "block upload stopped");
			}
		}
		if (r == 0 && (!feed_end || busy)) {
			int ms = (int)(wait * 1000);
			curl_multi_poll(m, NULL, 0, DV_MAX(ms, 1), NULL);
		}
	}
	pthread_mutex_lock(&e->lock);
	e->multi = NULL;
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i < nslots; i++) {
		if (slots[i].active)
			dv_http_multi_remove(&e->http, m, slots[i].c);
		if (slots[i].job) {
			slots[i].job->result = r ? r : -DV_E_INTERRUPTED;
			req_release(&slots[i].rq);
			(void)done(ctx, slots[i].job, NULL);
		}
		curl_easy_cleanup(slots[i].c);
	}
	free(slots);
	curl_multi_cleanup(m);
	return r;
}
