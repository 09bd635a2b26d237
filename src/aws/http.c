/*
 * http.c - the HTTP layer the S3, EBS and EC2 clients share: request
 * buffers and callbacks, SigV4 signing of each attempt (the date is part of
 * the signature, so every attempt is signed afresh), curl handle setup,
 * transport error classification, backoff with full jitter and the retry
 * loop. See http_internal.h.
 */
#include "http_internal.h"

#include <errno.h>
#ifdef DV_STATIC_BUILD
#include <nss.h>
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HTTP_DEFAULT_CAP (16u << 20)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
#ifdef DV_STATIC_BUILD
	/* A static glibc has the files and dns NSS modules built in but would
	 * dlopen any other that the host's nsswitch.conf names for hosts
	 * (myhostname, mdns4_minimal, resolve...), built for the host's glibc:
	 * host names are looked up in /etc/hosts and DNS only. */
	__nss_configure_lookup("hosts", "files dns");
#endif
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void dv_http_global_init(void) { pthread_once(&curl_once, curl_init_once); }

/*
 * The CA bundle TLS peers are verified against: AWS_CA_BUNDLE when set (the
 * AWS convention), else the first that exists of the places Debian/Ubuntu,
 * RHEL/CentOS/Fedora, SUSE and Alpine keep theirs. The static release binary
 * has no compiled-in default that fits every distribution, so it relies on
 * this; NULL leaves libcurl's own default. docs/static-binary.md lists it.
 */
static const char *const ca_bundles[] = {
	"/etc/ssl/certs/ca-certificates.crt",                /* Debian, Ubuntu, Arch */
	"/etc/pki/tls/certs/ca-bundle.crt",                  /* RHEL/CentOS 6+, Fedora */
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", /* RHEL 7+ (the file the above links to) */
	"/etc/ssl/ca-bundle.pem",                            /* SUSE, openSUSE */
	"/etc/ssl/cert.pem",                                 /* Alpine */
};
static pthread_once_t ca_once = PTHREAD_ONCE_INIT;
static const char *ca_bundle;

static void ca_find(void)
{
	const char *e = getenv("AWS_CA_BUNDLE");
	if (e && *e) {
		ca_bundle = e;
		return;
	}
	for (size_t i = 0; i < sizeof ca_bundles / sizeof ca_bundles[0]; i++) {
		if (access(ca_bundles[i], R_OK) == 0) {
			ca_bundle = ca_bundles[i];
			return;
		}
	}
}

const char *dv_http_ca_bundle(void)
{
	pthread_once(&ca_once, ca_find);
	return ca_bundle;
}

CURL *dv_http_easy(void)
{
	CURL *c = curl_easy_init();
	if (!c)
		DV_BUG("curl_easy_init failed");
	return c;
}

static void count(uint64_t *p, uint64_t v)
{
	if (p)
		__atomic_add_fetch(p, v, __ATOMIC_RELAXED);
}

/* ---- requests ------------------------------------------------------------ */

void dv_http_req_init(struct dv_http_req *rq, const char *method, const char *origin, const char *host)
{
	memset(rq, 0, sizeof *rq);
	rq->method = method;
	rq->origin = origin;
	rq->host = host;
	rq->fd = -1;
	rq->resp = &rq->own;
	rq->cap = HTTP_DEFAULT_CAP;
	rq->err_cap = DV_HTTP_ERR_CAP;
	rq->connect_timeout = 10;
	rq->timeout = 120;
}

void dv_http_req_release(struct dv_http_req *rq)
{
	dv_buf_release(&rq->own);
	dv_buf_release(&rq->path);
	curl_slist_free_all(rq->hl);
	rq->hl = NULL;
}

void dv_http_add_query(struct dv_http_req *rq, const char *key, const char *value)
{
	if (rq->nq >= DV_HTTP_MAX_QUERY)
		DV_BUG("too many query parameters");
	rq->query[rq->nq].key = key;
	rq->query[rq->nq++].value = value;
}

void dv_http_add_header(struct dv_http_req *rq, const char *key, const char *value)
{
	if (rq->nh >= DV_HTTP_MAX_HDRS)
		DV_BUG("too many headers");
	rq->hdr[rq->nh].key = key;
	rq->hdr[rq->nh++].value = value;
}

/* ---- callbacks ----------------------------------------------------------- */

static size_t read_cb(char *buf, size_t sz, size_t n, void *ud)
{
	struct dv_http_req *rq = ud;
	size_t want = sz * n;
	uint64_t left = rq->body_len - rq->pos;
	if (want > left)
		want = (size_t)left;
	if (!want)
		return 0;
	if (rq->body) {
		memcpy(buf, rq->body + rq->pos, want);
	} else {
		ssize_t got;
		do
			got = pread(rq->fd, buf, want, (off_t)(rq->body_off + rq->pos));
		while (got < 0 && errno == EINTR);
		if (got <= 0)
			return CURL_READFUNC_ABORT;
		want = (size_t)got;
	}
	rq->pos += want;
	return want;
}

static int seek_cb(void *ud, curl_off_t off, int origin)
{
	struct dv_http_req *rq = ud;
	if (origin != SEEK_SET || off < 0 || (uint64_t)off > rq->body_len)
		return CURL_SEEKFUNC_FAIL;
	rq->pos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct dv_http_req *rq = ud;
	size_t len = sz * n;
	size_t cap = rq->hdr_status >= 200 && rq->hdr_status < 300 ? rq->cap : rq->err_cap;
	if (rq->resp->len + len > cap) {
		rq->too_big = true;
		return 0;
	}
	dv_buf_add(rq->resp, p, len);
	return len;
}

/* Copies a header value without the surrounding blanks and line end;
 * scrub: control characters become spaces (the value goes into messages). */
static void copy_hval(char *dst, size_t cap, const char *v, size_t n, bool scrub)
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
	for (size_t i = 0; scrub && i < n; i++)
		if ((unsigned char)dst[i] < 0x20)
			dst[i] = ' ';
}

static bool is_header(const char *p, size_t kl, const char *name)
{
	return kl == strlen(name) && !strncasecmp(p, name, kl);
}

static size_t header_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct dv_http_req *rq = ud;
	size_t len = sz * n;
	if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
		/* a new response (after 100 Continue) */
		const char *sp = memchr(p, ' ', len);
		rq->hdr_status = sp ? strtol(sp + 1, NULL, 10) : 0;
		rq->etag[0] = rq->err_type[0] = 0;
		rq->have_cl = false;
		return len;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon)
		return len;
	size_t kl = (size_t)(colon - p);
	const char *v = colon + 1;
	size_t vl = len - kl - 1;
	if (is_header(p, kl, "etag")) {
		copy_hval(rq->etag, sizeof rq->etag, v, vl, false);
	} else if (is_header(p, kl, "x-amz-request-id") || is_header(p, kl, "x-amzn-requestid")) {
		copy_hval(rq->request_id, sizeof rq->request_id, v, vl, true);
	} else if (is_header(p, kl, "x-amzn-errortype")) {
		copy_hval(rq->err_type, sizeof rq->err_type, v, vl, true);
	} else if (is_header(p, kl, "date")) {
		char d[128];
		copy_hval(d, sizeof d, v, vl, false);
		time_t t = curl_getdate(d, NULL);
		rq->server_date = t > 0 ? (int64_t)t : 0;
	} else if (is_header(p, kl, "content-length")) {
		char tmp[64], *end;
		copy_hval(tmp, sizeof tmp, v, vl, false);
		unsigned long long x = strtoull(tmp, &end, 10);
		if (*tmp && !*end) {
			rq->content_length = x;
			rq->have_cl = true;
		}
	}
	return len;
}

/* ---- one attempt --------------------------------------------------------- */

static bool is_method(const struct dv_http_req *rq, const char *m) { return !strcmp(rq->method, m); }

int dv_http_setup(const struct dv_http_client *cl, CURL *c, struct dv_http_req *rq, const struct dv_http_signer *s,
		  struct dv_err *err)
{
	struct dv_buf url = DV_BUF_INIT, line = DV_BUF_INIT;
	struct dv_sigv4_result sig = {0};

	rq->pos = 0;
	rq->too_big = false;
	rq->status = rq->hdr_status = 0;
	rq->etag[0] = rq->request_id[0] = rq->err_type[0] = rq->code[0] = rq->errbuf[0] = 0;
	rq->have_cl = false;
	rq->server_date = 0;
	dv_buf_reset(rq->resp);
	curl_slist_free_all(rq->hl);
	rq->hl = NULL;
	if (!rq->payload_hash) {
		dv_aws_sha256_hex(rq->body_hash, rq->body ? (const void *)rq->body : "", rq->body ? rq->body_len : 0);
		rq->payload_hash = rq->body_hash;
	}
	if (!rq->path.len)
		dv_buf_addf(&rq->path, "/");

	struct dv_aws_kv hdrs[DV_HTTP_MAX_HDRS + 1];
	hdrs[0].key = "Host";
	hdrs[0].value = rq->host;
	memcpy(hdrs + 1, rq->hdr, rq->nh * sizeof *hdrs);
	struct dv_sigv4_request sr = {
		.method = rq->method,
		.path = (char *)rq->path.data,
		.query = rq->query,
		.n_query = rq->nq,
		.headers = hdrs,
		.n_headers = rq->nh + 1,
		.payload_hash = rq->payload_hash,
	};
	struct dv_sigv4_params sp = {
		.region = s->region,
		.service = rq->service,
		.time = s->time,
		.normalize_path = s->normalize_path,
		.add_content_sha256 = rq->content_sha256,
	};
	int r = dv_sigv4_sign(&sr, s->creds, &sp, &sig, err);
	if (r < 0)
		goto out;

	dv_buf_addf(&url, "%s", rq->origin);
	dv_aws_uri_encode(&url, (char *)rq->path.data, true);
	for (size_t i = 0; i < rq->nq; i++) {
		dv_buf_add(&url, i ? "&" : "?", 1);
		dv_aws_uri_encode(&url, rq->query[i].key, false);
		if (rq->query[i].value) {
			dv_buf_add(&url, "=", 1);
			dv_aws_uri_encode(&url, rq->query[i].value, false);
		}
	}

	struct curl_slist *h = NULL;
#define ADDH(...)                                             \
	do {                                                  \
		dv_buf_reset(&line);                          \
		dv_buf_addf(&line, __VA_ARGS__);              \
		h = curl_slist_append(h, (char *)line.data); \
	} while (0)
	ADDH("Host: %s", rq->host);
	for (size_t i = 0; i < rq->nh; i++)
		ADDH("%s: %s", rq->hdr[i].key, rq->hdr[i].value);
	ADDH("X-Amz-Date: %s", sig.amz_date);
	if (rq->content_sha256)
		ADDH("X-Amz-Content-SHA256: %s", rq->payload_hash);
	if (s->creds->session_token)
		ADDH("X-Amz-Security-Token: %s", s->creds->session_token);
	ADDH("Authorization: %s", (char *)sig.authorization.data);
	if (!cl->expect_from || !rq->has_body || rq->body_len < cl->expect_from)
		h = curl_slist_append(h, "Expect:");
	if (!rq->has_body && !is_method(rq, "GET") && !is_method(rq, "HEAD") && !is_method(rq, "DELETE"))
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
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, rq->connect_timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, rq->timeout);
	if (rq->stall_timeout) {
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, rq->stall_timeout);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, rq);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, rq);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (dv_http_ca_bundle())
		curl_easy_setopt(c, CURLOPT_CAINFO, dv_http_ca_bundle());
	if (rq->head) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (rq->has_body) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(c, CURLOPT_READDATA, rq);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, rq);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
		if (!is_method(rq, "PUT"))
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	} else if (cl->empty_post_form && is_method(rq, "POST")) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	} else if (!is_method(rq, "GET")) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	}
out:
	dv_sigv4_result_release(&sig);
	dv_buf_release(&url);
	dv_buf_release(&line);
	return r;
}

/* ---- classifying --------------------------------------------------------- */

static bool curl_retryable(unsigned classes, CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_UPLOAD_FAILED:
	case CURLE_READ_ERROR:
		return classes & DV_HTTP_RETRY_STREAM;
	case CURLE_COULDNT_RESOLVE_HOST:
		return classes & DV_HTTP_RETRY_RESOLVE;
	default:
		return false;
	}
}

enum dv_http_verdict dv_http_finish(const struct dv_http_client *cl, CURL *c, struct dv_http_req *rq, CURLcode cc,
				    const char *what, enum dv_code too_big_code, struct dv_err *err)
{
	if (cc != CURLE_OK) {
		if (rq->too_big) {
			dv_error(err, too_big_code, "%s: response larger than the limit of %zu bytes", what, rq->cap);
			return DV_HTTP_FAIL;
		}
		dv_error(err, DV_E_REMOTE, "%s on %s: %s", what, rq->origin,
			 rq->errbuf[0] ? rq->errbuf : curl_easy_strerror(cc));
		return curl_retryable(cl->retry_curl, cc) ? DV_HTTP_RETRY : DV_HTTP_FAIL;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rq->status);
	curl_off_t up = 0, down = 0;
	curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &up);
	curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &down);
	count(cl->bytes_sent, (uint64_t)up);
	count(cl->bytes_received, (uint64_t)down);
	return rq->status >= 200 && rq->status < 300 ? DV_HTTP_OK : DV_HTTP_STATUS;
}

void dv_http_error(struct dv_err *err, enum dv_code code, const char *what, long status, const char *err_code,
		   const char *message, const char *request_id)
{
	bool c = err_code && *err_code, m = message && *message, rid = request_id && *request_id;
	dv_error(err, code, "%s: HTTP %ld%s%s%s%s%s%s%s", what, status, c ? " " : "", c ? err_code : "", m ? ": " : "",
		 m ? message : "", rid ? " (request id " : "", rid ? request_id : "", rid ? ")" : "");
}

/* ---- retrying ------------------------------------------------------------ */

double dv_http_backoff(const struct dv_http_client *cl, unsigned attempt)
{
	double ceil = cl->backoff_base * (double)(1u << (attempt > 16 ? 16 : attempt));
	if (ceil > 20)
		ceil = 20;
	uint32_t rnd;
	dv_random_bytes(&rnd, sizeof rnd);
	return ceil * (cl->backoff_floor + (1 - cl->backoff_floor) * ((double)rnd / 4294967296.0));
}

bool dv_http_next_attempt(const struct dv_http_client *cl, unsigned attempt, double first, bool say_time,
			  double *pause, struct dv_err *err)
{
	*pause = dv_http_backoff(cl, attempt);
	if (attempt < cl->max_attempts && dv_now() - first + *pause <= cl->max_retry_seconds) {
		count(cl->retries, 1);
		return true;
	}
	if (say_time)
		dv_error_prefix(err, "giving up after %u attempts in %.0f s: ", attempt, dv_now() - first);
	else
		dv_error_prefix(err, "giving up after %u attempts: ", attempt);
	return false;
}

void dv_http_sleep(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int dv_http_perform(const struct dv_http_client *cl, CURL *c, struct dv_http_req *rq, struct dv_err *err)
{
	struct dv_err scratch;
	if (!err)
		err = &scratch;
	double start = dv_now();
	int r = 0;
	for (unsigned attempt = 1;; attempt++) {
		r = cl->prepare(cl->svc, c, rq, err);
		if (r < 0)
			break;
		count(cl->requests, 1);
		count(rq->op_counter, 1);
		if (cl->inflight)
			__atomic_add_fetch(cl->inflight, 1, __ATOMIC_RELAXED);
		CURLcode cc = curl_easy_perform(c);
		if (cl->inflight)
			__atomic_sub_fetch(cl->inflight, 1, __ATOMIC_RELAXED);
		curl_slist_free_all(rq->hl);
		rq->hl = NULL;
		enum dv_http_verdict v = cl->classify(cl->svc, c, rq, cc, err);
		if (v == DV_HTTP_OK) {
			r = 0;
			break;
		}
		r = -(int)err->code;
		double pause;
		if (v != DV_HTTP_RETRY || !dv_http_next_attempt(cl, attempt, start, true, &pause, err))
			break;
		dv_debug("retrying in %.2f s: %s", pause, err->msg);
		dv_http_sleep(pause);
	}
	return r;
}

/* ---- curl multi ---------------------------------------------------------- */

int dv_http_multi_add(const struct dv_http_client *cl, CURLM *m, CURL *c, struct dv_http_req *rq, void *priv,
		      struct dv_err *err)
{
	int r = cl->prepare(cl->svc, c, rq, err);
	if (r < 0)
		return r;
	curl_easy_setopt(c, CURLOPT_PRIVATE, priv);
	count(cl->requests, 1);
	count(rq->op_counter, 1);
	if (cl->inflight)
		__atomic_add_fetch(cl->inflight, 1, __ATOMIC_RELAXED);
	curl_multi_add_handle(m, c);
	return 0;
}

void dv_http_multi_remove(const struct dv_http_client *cl, CURLM *m, CURL *c)
{
	curl_multi_remove_handle(m, c);
	if (cl->inflight)
		__atomic_sub_fetch(cl->inflight, 1, __ATOMIC_RELAXED);
}

void *dv_http_multi_done(const struct dv_http_client *cl, CURLM *m, CURLcode *cc)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(m, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		void *priv = NULL;
		CURL *c = msg->easy_handle;
		*cc = msg->data.result;
		curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&priv);
		dv_http_multi_remove(cl, m, c);
		return priv;
	}
	return NULL;
}
