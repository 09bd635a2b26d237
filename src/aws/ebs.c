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

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EBS_JSON_CAP (8u << 20)
#define EBS_ERR_CAP (64u << 10)
#define EBS_MAX_HDRS 10
#define EBS_MAX_QUERY 4

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
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

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

int dv_aws_service_endpoint(const struct dv_aws_options *opt, const struct dv_aws_config *cfg, const char *service,
			    char **out, struct dv_err *err)
{
	*out = NULL;
	if (opt && opt->endpoint) {
		*out = dv_strdup(opt->endpoint);
		return 0;
	}
	const char *ign = env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	if (ign && !strcasecmp(ign, "true"))
		return 0;
	char envname[64];
	snprintf(envname, sizeof envname, "AWS_ENDPOINT_URL_%s", service);
	for (char *p = envname; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	const char *ep = env(envname);
	if (!ep)
		ep = env("AWS_ENDPOINT_URL");
	if (ep) {
		*out = dv_strdup(ep);
		return 0;
	}
	struct dv_buf b = DV_BUF_INIT;
	struct dv_err e2;
	if (!cfg->config_path || dv_read_file(cfg->config_path, 1u << 20, &b, &e2) < 0) {
		dv_buf_release(&b);
		return 0; /* unreadable files were reported by dv_aws_config_load */
	}
	struct dv_aws_ini *ini = NULL;
	int r = dv_aws_ini_parse(b.data ? (char *)b.data : "", b.len, &ini, &e2);
	dv_buf_release(&b);
	if (r < 0)
		return dv_error(err, DV_E_USAGE, "%s: %s", cfg->config_path, e2.msg);
	char *sec = strcmp(cfg->profile, "default") ? dv_asprintf("profile %s", cfg->profile) : dv_strdup("default");
	const char *services = dv_aws_ini_get(ini, sec, "services");
	char key[64];
	snprintf(key, sizeof key, "%s.endpoint_url", service);
	if (services) {
		char *ss = dv_asprintf("services %s", services);
		ep = dv_aws_ini_get(ini, ss, key);
		free(ss);
	}
	if (!ep)
		ep = dv_aws_ini_get(ini, sec, "endpoint_url");
	if (ep && *ep)
		*out = dv_strdup(ep);
	free(sec);
	dv_aws_ini_free(ini);
	return 0;
}

static int set_endpoint(struct endpoint *ep, const char *url, const char *service, const char *region,
			struct dv_err *err)
{
	if (!url) {
		ep->host = dv_asprintf("%s.%s.amazonaws.com", service, region);
		ep->origin = dv_asprintf("https://%s", ep->host);
		ep->path = dv_strdup("");
		return 0;
	}
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return dv_error(err, DV_E_USAGE, "%s endpoint '%s' must start with http:// or https://", service, url);
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
	pthread_once(&curl_once, curl_init_once);
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
	r = dv_aws_service_endpoint(opt, &cfg, "ebs", &ebs_url, err);
	if (r == 0)
		r = dv_aws_service_endpoint(opt, &cfg, "ec2", &ec2_url, err);
	if (r == 0)
		r = set_endpoint(&e->ebs, ebs_url, "ebs", e->region, err);
	if (r == 0)
		r = set_endpoint(&e->ec2, ec2_url, "ec2", e->region, err);
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
	if (!(e->easy = curl_easy_init()))
		DV_BUG("curl_easy_init failed");
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

struct req {
	const char *op;       /* "PutSnapshotBlock", for messages */
	const char *what;     /* snapshot id or "" */
	const struct endpoint *ep;
	const char *service;
	const char *method;
	char path[256];
	struct dv_aws_kv query[EBS_MAX_QUERY];
	size_t nq;
	struct dv_aws_kv hdr[EBS_MAX_HDRS];
	size_t nh;
	const uint8_t *body;
	size_t body_len, pos;
	bool unsigned_payload;
	/* response */
	struct dv_buf resp;
	size_t cap;
	bool too_big;
	long hdr_status, status;
	char err_type[128];
	char request_id[128];
	char errbuf[CURL_ERROR_SIZE];
	struct curl_slist *hl;
};

static void req_init(struct req *rq, const char *op, const char *what, const struct endpoint *ep, const char *service,
		     const char *method)
{
	memset(rq, 0, sizeof *rq);
	rq->op = op;
	rq->what = what ? what : "";
	rq->ep = ep;
	rq->service = service;
	rq->method = method;
	rq->cap = EBS_JSON_CAP;
}

static void req_release(struct req *rq)
{
	dv_buf_release(&rq->resp);
	curl_slist_free_all(rq->hl);
	rq->hl = NULL;
}

static void add_h(struct req *rq, const char *k, const char *v)
{
	if (rq->nh >= EBS_MAX_HDRS)
		DV_BUG("too many headers");
	rq->hdr[rq->nh].key = k;
	rq->hdr[rq->nh++].value = v;
}

static void add_q(struct req *rq, const char *k, const char *v)
{
	if (rq->nq >= EBS_MAX_QUERY)
		DV_BUG("too many query parameters");
	rq->query[rq->nq].key = k;
	rq->query[rq->nq++].value = v;
}

static size_t read_cb(char *buf, size_t sz, size_t n, void *ud)
{
	struct req *rq = ud;
	size_t want = DV_MIN(sz * n, rq->body_len - rq->pos);
	memcpy(buf, rq->body + rq->pos, want);
	rq->pos += want;
	return want;
}

static int seek_cb(void *ud, curl_off_t off, int origin)
{
	struct req *rq = ud;
	if (origin != SEEK_SET || off < 0 || (size_t)off > rq->body_len)
		return CURL_SEEKFUNC_FAIL;
	rq->pos = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct req *rq = ud;
	size_t len = sz * n;
	size_t cap = rq->hdr_status >= 200 && rq->hdr_status < 300 ? rq->cap : EBS_ERR_CAP;
	if (rq->resp.len + len > cap) {
		rq->too_big = true;
		return 0;
	}
	dv_buf_add(&rq->resp, p, len);
	return len;
}

static void copy_hval(char *dst, size_t cap, const char *v, size_t n)
{
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	while (n && *v == ' ') {
		v++;
		n--;
	}
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)dst[i] < 0x20)
			dst[i] = ' ';
}

static size_t header_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct req *rq = ud;
	size_t len = sz * n;
	if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
		const char *sp = memchr(p, ' ', len);
		rq->hdr_status = sp ? strtol(sp + 1, NULL, 10) : 0;
		rq->err_type[0] = 0;
		return len;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon)
		return len;
	size_t kl = (size_t)(colon - p);
	if (kl == 16 && !strncasecmp(p, "x-amzn-ErrorType", 16))
		copy_hval(rq->err_type, sizeof rq->err_type, colon + 1, len - kl - 1);
	else if ((kl == 16 && !strncasecmp(p, "x-amzn-RequestId", 16)) ||
		 (kl == 16 && !strncasecmp(p, "x-amz-request-id", 16)))
		copy_hval(rq->request_id, sizeof rq->request_id, colon + 1, len - kl - 1);
	return len;
}

/* Signs one attempt and prepares handle c. */
static int setup(struct dv_ebs *e, CURL *c, struct req *rq, struct dv_err *err)
{
	struct dv_buf path = DV_BUF_INIT, url = DV_BUF_INIT, line = DV_BUF_INIT;
	struct dv_sigv4_result sig = {0};
	char body_hash[65];
	rq->pos = 0;
	rq->too_big = false;
	rq->status = rq->hdr_status = 0;
	rq->err_type[0] = rq->request_id[0] = rq->errbuf[0] = 0;
	dv_buf_reset(&rq->resp);
	curl_slist_free_all(rq->hl);
	rq->hl = NULL;
	if (rq->unsigned_payload)
		snprintf(body_hash, sizeof body_hash, "UNSIGNED-PAYLOAD");
	else
		dv_aws_sha256_hex(body_hash, rq->body ? (const void *)rq->body : "", rq->body ? rq->body_len : 0);

	dv_buf_addf(&path, "%s%s", rq->ep->path, rq->path);
	struct dv_aws_kv hdrs[EBS_MAX_HDRS + 1];
	hdrs[0].key = "Host";
	hdrs[0].value = rq->ep->host;
	memcpy(hdrs + 1, rq->hdr, rq->nh * sizeof *hdrs);
	struct dv_sigv4_request sr = {
		.method = rq->method,
		.path = (char *)path.data,
		.query = rq->query,
		.n_query = rq->nq,
		.headers = hdrs,
		.n_headers = rq->nh + 1,
		.payload_hash = body_hash,
	};
	struct dv_sigv4_params sp = {
		.region = e->region,
		.service = rq->service,
		.time = dv_unix_now(),
		.add_content_sha256 = rq->unsigned_payload,
	};
	int r = dv_sigv4_sign(&sr, &e->creds, &sp, &sig, err);
	if (r < 0)
		goto out;
	dv_buf_addf(&url, "%s", rq->ep->origin);
	dv_aws_uri_encode(&url, (char *)path.data, true);
	for (size_t i = 0; i < rq->nq; i++) {
		dv_buf_add(&url, i ? "&" : "?", 1);
		dv_aws_uri_encode(&url, rq->query[i].key, false);
		dv_buf_add(&url, "=", 1);
		dv_aws_uri_encode(&url, rq->query[i].value, false);
	}
	struct curl_slist *h = NULL;
#define ADDH(...)                                             \
	do {                                                  \
		dv_buf_reset(&line);                          \
		dv_buf_addf(&line, __VA_ARGS__);              \
		h = curl_slist_append(h, (char *)line.data); \
	} while (0)
	ADDH("Host: %s", rq->ep->host);
	for (size_t i = 0; i < rq->nh; i++)
		ADDH("%s: %s", rq->hdr[i].key, rq->hdr[i].value);
	ADDH("X-Amz-Date: %s", sig.amz_date);
	if (rq->unsigned_payload)
		ADDH("X-Amz-Content-SHA256: UNSIGNED-PAYLOAD");
	if (e->creds.session_token)
		ADDH("X-Amz-Security-Token: %s", e->creds.session_token);
	ADDH("Authorization: %s", (char *)sig.authorization.data);
	h = curl_slist_append(h, "Expect:");
	if (!rq->body && strcmp(rq->method, "GET"))
		h = curl_slist_append(h, "Content-Length: 0");
#undef ADDH
	if (line.data)
		explicit_bzero(line.data, line.len);
	rq->hl = h;

	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, (char *)url.data);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "diskvault/" DV_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, rq->errbuf);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, e->set.connect_timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, e->set.request_timeout);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, DV_MIN(60L, e->set.request_timeout));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, rq);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, rq);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (rq->body) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(c, CURLOPT_READDATA, rq);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, rq);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
		if (strcmp(rq->method, "PUT"))
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	} else if (!strcmp(rq->method, "POST")) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	} else if (strcmp(rq->method, "GET")) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	}
out:
	dv_sigv4_result_release(&sig);
	dv_buf_release(&path);
	dv_buf_release(&url);
	dv_buf_release(&line);
	return r;
}

enum verdict { V_OK, V_RETRY, V_FAIL };

static bool curl_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_UPLOAD_FAILED:
	case CURLE_READ_ERROR:
	case CURLE_COULDNT_RESOLVE_HOST:
		return true;
	default:
		return false;
	}
}

/* Classifies a finished attempt; err gets the one-line description of a
 * failure. not_found_ok: a 404 ResourceNotFoundException is retried. */
static enum verdict classify(struct dv_ebs *e, CURL *c, struct req *rq, CURLcode cc, bool not_found_ok,
			     struct dv_err *err)
{
	const char *svc = !strcmp(rq->service, "ec2") ? "EC2" : "EBS";
	if (cc != CURLE_OK) {
		if (rq->too_big) {
			dv_error(err, DV_E_REMOTE, "%s %s %s: answer larger than %zu bytes", svc, rq->op, rq->what, rq->cap);
			return V_FAIL;
		}
		dv_error(err, DV_E_REMOTE, "%s %s %s on %s: %s", svc, rq->op, rq->what, rq->ep->origin,
			 rq->errbuf[0] ? rq->errbuf : curl_easy_strerror(cc));
		return curl_retryable(cc) ? V_RETRY : V_FAIL;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rq->status);
	curl_off_t up = 0;
	curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &up);
	stat_add(&e->stats.bytes_sent, (uint64_t)up);
	if (rq->status >= 200 && rq->status < 300)
		return V_OK;
	struct dv_ebs_error ee;
	if (!strcmp(rq->service, "ec2")) {
		struct dv_ec2_error x;
		struct dv_err e2;
		memset(&ee, 0, sizeof ee);
		if (rq->resp.len && dv_ec2_parse_error((char *)rq->resp.data, rq->resp.len, &x, &e2) == 0) {
			copy_str(ee.type, sizeof ee.type, x.code);
			copy_str(ee.message, sizeof ee.message, x.message);
			scrub(ee.message);
			dv_ec2_error_release(&x);
		}
	} else {
		dv_ebs_parse_error(rq->err_type, (char *)rq->resp.data, rq->resp.len, &ee);
	}
	enum dv_code dc = rq->status == 404 ? DV_E_NOT_FOUND : DV_E_REMOTE;
	dv_error(err, dc, "%s %s %s: HTTP %ld %s%s%s%s%s%s%s%s", svc, rq->op, rq->what, rq->status,
		 ee.type[0] ? ee.type : "error", ee.message[0] ? ": " : "", ee.message, ee.reason[0] ? " (" : "",
		 ee.reason, ee.reason[0] ? ")" : "", rq->request_id[0] ? " request id " : "", rq->request_id);
	if (strstr(ee.type, "Throttl") || !strcmp(ee.type, "RequestLimitExceeded"))
		stat_add(&e->stats.throttled, 1);
	if (dv_ebs_retryable(rq->status, ee.type))
		return V_RETRY;
	if (not_found_ok && rq->status == 404 && !strcmp(ee.type, "ResourceNotFoundException"))
		return V_RETRY;
	return V_FAIL;
}

static double backoff(unsigned attempt)
{
	double cap = 20, base = 0.2;
	double ceil = base * (double)(1u << (attempt > 16 ? 16 : attempt));
	if (ceil > cap)
		ceil = cap;
	uint32_t rnd;
	dv_random_bytes(&rnd, sizeof rnd);
	/* never less than a tenth of the ceiling: a throttled service needs air */
	return ceil * (0.1 + 0.9 * ((double)rnd / 4294967296.0));
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int perform(struct dv_ebs *e, struct req *rq, struct dv_err *err)
{
	double start = dv_now();
	int r = 0;
	for (unsigned attempt = 1;; attempt++) {
		r = setup(e, e->easy, rq, err);
		if (r < 0)
			break;
		stat_add(&e->stats.requests, 1);
		CURLcode cc = curl_easy_perform(e->easy);
		enum verdict v = classify(e, e->easy, rq, cc, false, err);
		if (v == V_OK) {
			r = 0;
			break;
		}
		r = -(int)err->code;
		if (v == V_FAIL)
			break;
		double pause = backoff(attempt);
		if (attempt >= e->set.max_attempts || dv_now() - start + pause > e->set.max_retry_seconds) {
			dv_error_prefix(err, "giving up after %u attempts in %.0f s: ", attempt, dv_now() - start);
			break;
		}
		dv_debug("retrying in %.2f s: %s", pause, err->msg);
		stat_add(&e->stats.retries, 1);
		sleep_s(pause);
	}
	return r;
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
	struct req rq;
	req_init(&rq, "StartSnapshot", "", &e->ebs, "ebs", "POST");
	snprintf(rq.path, sizeof rq.path, "/snapshots");
	add_h(&rq, "Content-Type", "application/json");
	rq.body = (const uint8_t *)body;
	rq.body_len = strlen(body);
	int r = perform(e, &rq, err);
	if (r == 0)
		r = dv_ebs_parse_snapshot((char *)rq.resp.data, rq.resp.len, out, err);
	req_release(&rq);
	free(body);
	return r;
}

int dv_ebs_complete_snapshot(struct dv_ebs *e, const char *snapshot_id, uint64_t changed_blocks, const char *linear,
			     char status[16], struct dv_err *err)
{
	char cnt[24];
	snprintf(cnt, sizeof cnt, "%llu", (unsigned long long)changed_blocks);
	struct req rq;
	req_init(&rq, "CompleteSnapshot", snapshot_id, &e->ebs, "ebs", "POST");
	snprintf(rq.path, sizeof rq.path, "/snapshots/completion/%s", snapshot_id);
	add_h(&rq, "x-amz-ChangedBlocksCount", cnt);
	if (linear) {
		add_h(&rq, "x-amz-Checksum", linear);
		add_h(&rq, "x-amz-Checksum-Algorithm", "SHA256");
		add_h(&rq, "x-amz-Checksum-Aggregation-Method", "LINEAR");
	}
	int r = perform(e, &rq, err);
	if (r == 0) {
		dv_ebs_parse_complete((char *)rq.resp.data, rq.resp.len, status, 16);
	}
	req_release(&rq);
	return r;
}

int dv_ebs_list_blocks(struct dv_ebs *e, const char *snapshot_id, dv_ebs_block_fn fn, void *ctx, struct dv_err *err)
{
	char *token = NULL;
	int r = 0;
	do {
		struct req rq;
		req_init(&rq, "ListSnapshotBlocks", snapshot_id, &e->ebs, "ebs", "GET");
		snprintf(rq.path, sizeof rq.path, "/snapshots/%s/blocks", snapshot_id);
		add_q(&rq, "maxResults", "10000");
		if (token)
			add_q(&rq, "pageToken", token);
		r = perform(e, &rq, err);
		char *next = NULL;
		if (r == 0)
			r = dv_ebs_parse_block_list((char *)rq.resp.data, rq.resp.len, fn, ctx, &next, err);
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
	struct req rq;
	req_init(&rq, "DescribeSnapshots", snapshot_id, &e->ec2, "ec2", "POST");
	snprintf(rq.path, sizeof rq.path, "/");
	add_h(&rq, "Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
	rq.body = body.data;
	rq.body_len = body.len;
	int r = perform(e, &rq, err);
	if (r == 0)
		r = dv_ec2_parse_snapshot_status((char *)rq.resp.data, rq.resp.len, snapshot_id, status, 16, err);
	else if (rq.status == 400 && strstr(err->msg, "InvalidSnapshot.NotFound"))
		err->code = DV_E_NOT_FOUND, r = -DV_E_NOT_FOUND;
	req_release(&rq);
	dv_buf_release(&body);
	return r;
}

/* ---- many blocks through curl multi -------------------------------------- */

struct slot {
	CURL *c;
	struct req rq;
	struct dv_ebs_put_job *job;
	char path_idx[32];
	char len_hdr[16];
	char prog_hdr[8];
	unsigned attempt;
	double first, ready_at;
	bool active;
};

static void slot_request(struct slot *sl, struct dv_ebs *e, const char *snapshot_id)
{
	struct dv_ebs_put_job *j = sl->job;
	req_init(&sl->rq, "PutSnapshotBlock", snapshot_id, &e->ebs, "ebs", "PUT");
	snprintf(sl->rq.path, sizeof sl->rq.path, "/snapshots/%s/blocks/%llu", snapshot_id,
		 (unsigned long long)j->index);
	snprintf(sl->len_hdr, sizeof sl->len_hdr, "%u", DV_EBS_BLOCK_SIZE);
	add_h(&sl->rq, "x-amz-Data-Length", sl->len_hdr);
	if (j->progress >= 0) {
		snprintf(sl->prog_hdr, sizeof sl->prog_hdr, "%d", DV_MIN(j->progress, 100));
		add_h(&sl->rq, "x-amz-Progress", sl->prog_hdr);
	}
	add_h(&sl->rq, "x-amz-Checksum", j->checksum);
	add_h(&sl->rq, "x-amz-Checksum-Algorithm", "SHA256");
	add_h(&sl->rq, "Content-Type", "application/octet-stream");
	sl->rq.body = j->data;
	sl->rq.body_len = DV_EBS_BLOCK_SIZE;
	sl->rq.unsigned_payload = true;
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
		if (!(slots[i].c = curl_easy_init()))
			DV_BUG("curl_easy_init failed");
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
			r = setup(e, sl->c, &sl->rq, err);
			if (r < 0)
				break;
			curl_easy_setopt(sl->c, CURLOPT_PRIVATE, sl);
			stat_add(&e->stats.requests, 1);
			curl_multi_add_handle(m, sl->c);
			sl->active = true;
		}
		if (r < 0)
			break;
		int running = 0;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct slot *sl = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
			CURLcode cc = msg->data.result;
			curl_multi_remove_handle(m, sl->c);
			sl->active = false;
			struct dv_err e1;
			dv_err_clear(&e1);
			bool grace = dv_now() - started < e->set.not_found_grace;
			enum verdict v = classify(e, sl->c, &sl->rq, cc, grace, &e1);
			if (v == V_RETRY) {
				double pause = backoff(sl->attempt);
				if (sl->attempt < e->set.max_attempts &&
				    dv_now() - sl->first + pause <= e->set.max_retry_seconds) {
					dv_debug("block %llu: retrying in %.2f s: %s",
						 (unsigned long long)sl->job->index, pause, e1.msg);
					stat_add(&e->stats.retries, 1);
					sl->ready_at = dv_now() + pause;
					continue;
				}
				dv_error_prefix(&e1, "giving up after %u attempts: ", sl->attempt);
				v = V_FAIL;
			}
			struct dv_ebs_put_job *j = sl->job;
			sl->job = NULL;
			busy--;
			j->attempts = sl->attempt;
			j->result = v == V_OK ? 0 : -(int)e1.code;
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
			curl_multi_remove_handle(m, slots[i].c);
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
