/*
 * AWS Signature Version 4 (header form). The canonical request is
 *   METHOD \n URI \n QUERY \n HEADERS \n SIGNED-HEADERS \n PAYLOAD-HASH
 * and the signature is an HMAC-SHA256 chain over date, region, service and
 * "aws4_request". For S3 the URI is encoded once and never normalised,
 * which is why the caller passes decoded paths and we encode here: the
 * HTTP layer sends exactly the bytes we signed.
 */
#include "aws.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void dv_aws_creds_release(struct dv_aws_creds *c)
{
	if (!c)
		return;
	if (c->secret_access_key)
		explicit_bzero(c->secret_access_key, strlen(c->secret_access_key));
	if (c->session_token)
		explicit_bzero(c->session_token, strlen(c->session_token));
	free(c->access_key_id);
	free(c->secret_access_key);
	free(c->session_token);
	memset(c, 0, sizeof *c);
}

void dv_aws_sha256_hex(char out[65], const void *data, size_t len)
{
	uint8_t md[32];
	unsigned n = 0;
	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32)
		DV_BUG("EVP_Digest(sha256) failed");
	dv_hex(out, md, 32);
}

static void hmac(uint8_t out[32], const void *key, size_t klen, const void *msg, size_t mlen)
{
	unsigned n = 0;
	if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &n) || n != 32)
		DV_BUG("HMAC-SHA256 failed");
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
	       c == '.' || c == '~';
}

void dv_aws_uri_encode(struct dv_buf *out, const char *s, bool keep_slash)
{
	static const char hexd[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (unreserved(*p) || (keep_slash && *p == '/')) {
			dv_buf_add(out, p, 1);
		} else {
			char e[3] = {'%', hexd[*p >> 4], hexd[*p & 15]};
			dv_buf_add(out, e, 3);
		}
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void dv_aws_uri_decode(struct dv_buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			uint8_t c = (uint8_t)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			dv_buf_add(out, &c, 1);
			i += 2;
		} else {
			dv_buf_add(out, &s[i], 1);
		}
	}
}

/* RFC 3986 remove_dot_segments plus collapsing of empty segments, as the
 * SigV4 suite's "normalize" flag asks (never used for S3). */
static char *normalize_path(const char *path)
{
	size_t n = strlen(path);
	char **seg = dv_calloc(n + 1, sizeof *seg);
	size_t ns = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = p;
		while (*e && *e != '/')
			e++;
		size_t l = (size_t)(e - p);
		if (l == 0)
			break;
		if (l == 1 && p[0] == '.') {
			/* skip */
		} else if (l == 2 && p[0] == '.' && p[1] == '.') {
			if (ns > 0)
				free(seg[--ns]);
		} else {
			seg[ns++] = dv_asprintf("%.*s", (int)l, p);
		}
		p = e;
	}
	/* a trailing slash (or a trailing dot segment) keeps the path a directory */
	bool trailing = n > 0 && (path[n - 1] == '/' || (n >= 2 && path[n - 1] == '.' && path[n - 2] == '/') ||
				  (n >= 3 && !strcmp(path + n - 3, "/..")));
	struct dv_buf b = DV_BUF_INIT;
	for (size_t i = 0; i < ns; i++) {
		dv_buf_addf(&b, "/%s", seg[i]);
		free(seg[i]);
	}
	if (ns == 0 || trailing)
		dv_buf_add(&b, "/", 1);
	free(seg);
	return (char *)b.data;
}

struct hdr {
	char *name;   /* lower case */
	char *value;  /* trimmed, runs of white space collapsed */
	size_t order;
};

static char *canon_value(const char *v)
{
	struct dv_buf b = DV_BUF_INIT;
	bool space = false;
	for (const char *p = v; *p; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
			space = b.len > 0;
			continue;
		}
		if (space)
			dv_buf_add(&b, " ", 1);
		space = false;
		dv_buf_add(&b, p, 1);
	}
	dv_buf_add(&b, "", 0);
	if (!b.data)
		return dv_strdup("");
	return (char *)b.data;
}

static int hdr_cmp(const void *a, const void *b)
{
	const struct hdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

struct qp {
	char *k;
	char *v;
};

static int qp_cmp(const void *a, const void *b)
{
	const struct qp *x = a, *y = b;
	int c = strcmp(x->k, y->k);
	return c ? c : strcmp(x->v, y->v);
}

static void add_hdr(struct hdr *h, size_t *n, const char *name, const char *value)
{
	char *lname = dv_strdup(name);
	for (char *p = lname; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	h[*n].name = lname;
	h[*n].value = canon_value(value);
	h[*n].order = *n;
	(*n)++;
}

void dv_sigv4_result_release(struct dv_sigv4_result *r)
{
	dv_buf_release(&r->canonical_request);
	dv_buf_release(&r->string_to_sign);
	dv_buf_release(&r->authorization);
	memset(r->signature, 0, sizeof r->signature);
}

int dv_sigv4_sign(const struct dv_sigv4_request *req, const struct dv_aws_creds *creds,
		  const struct dv_sigv4_params *p, struct dv_sigv4_result *out, struct dv_err *err)
{
	if (!creds || !creds->access_key_id || !creds->secret_access_key)
		return dv_error(err, DV_E_USAGE, "SigV4: no credentials");
	struct tm tm;
	time_t t = (time_t)p->time;
	if (!gmtime_r(&t, &tm))
		return dv_error(err, DV_E_USAGE, "SigV4: bad time");
	char date[9];
	strftime(out->amz_date, sizeof out->amz_date, "%Y%m%dT%H%M%SZ", &tm);
	strftime(date, sizeof date, "%Y%m%d", &tm);

	/* headers */
	size_t nh = 0;
	struct hdr *h = dv_calloc(req->n_headers + 3, sizeof *h);
	for (size_t i = 0; i < req->n_headers; i++)
		add_hdr(h, &nh, req->headers[i].key, req->headers[i].value);
	add_hdr(h, &nh, "X-Amz-Date", out->amz_date);
	if (p->add_content_sha256)
		add_hdr(h, &nh, "X-Amz-Content-Sha256", req->payload_hash);
	if (creds->session_token && !p->omit_session_token)
		add_hdr(h, &nh, "X-Amz-Security-Token", creds->session_token);
	qsort(h, nh, sizeof *h, hdr_cmp);

	struct dv_buf *cr = &out->canonical_request;
	struct dv_buf signed_hdrs = DV_BUF_INIT;
	dv_buf_reset(cr);
	dv_buf_addf(cr, "%s\n", req->method);
	if (p->normalize_path) {
		char *np = normalize_path(req->path);
		dv_aws_uri_encode(cr, np, true);
		free(np);
	} else {
		dv_aws_uri_encode(cr, req->path, true);
	}
	dv_buf_add(cr, "\n", 1);

	/* query: encode, then sort by key and value */
	struct qp *q = dv_calloc(req->n_query + 1, sizeof *q);
	for (size_t i = 0; i < req->n_query; i++) {
		struct dv_buf k = DV_BUF_INIT, v = DV_BUF_INIT;
		dv_aws_uri_encode(&k, req->query[i].key, false);
		dv_aws_uri_encode(&v, req->query[i].value ? req->query[i].value : "", false);
		q[i].k = k.data ? (char *)k.data : dv_strdup("");
		q[i].v = v.data ? (char *)v.data : dv_strdup("");
	}
	qsort(q, req->n_query, sizeof *q, qp_cmp);
	for (size_t i = 0; i < req->n_query; i++) {
		dv_buf_addf(cr, "%s%s=%s", i ? "&" : "", q[i].k, q[i].v);
		free(q[i].k);
		free(q[i].v);
	}
	free(q);
	dv_buf_add(cr, "\n", 1);

	for (size_t i = 0; i < nh; i++) {
		bool first = i == 0 || strcmp(h[i].name, h[i - 1].name);
		bool last = i + 1 == nh || strcmp(h[i].name, h[i + 1].name);
		if (first) {
			dv_buf_addf(cr, "%s:%s", h[i].name, h[i].value);
			dv_buf_addf(&signed_hdrs, "%s%s", signed_hdrs.len ? ";" : "", h[i].name);
		} else {
			dv_buf_addf(cr, ",%s", h[i].value);
		}
		if (last)
			dv_buf_add(cr, "\n", 1);
	}
	for (size_t i = 0; i < nh; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
	dv_buf_addf(cr, "\n%s\n%s", signed_hdrs.data ? (char *)signed_hdrs.data : "", req->payload_hash);

	char crhash[65];
	dv_aws_sha256_hex(crhash, cr->data, cr->len);
	struct dv_buf *sts = &out->string_to_sign;
	dv_buf_reset(sts);
	dv_buf_addf(sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", out->amz_date, date, p->region, p->service,
		    crhash);

	uint8_t k[32];
	char *kinit = dv_asprintf("AWS4%s", creds->secret_access_key);
	hmac(k, kinit, strlen(kinit), date, strlen(date));
	explicit_bzero(kinit, strlen(kinit));
	free(kinit);
	hmac(k, k, 32, p->region, strlen(p->region));
	hmac(k, k, 32, p->service, strlen(p->service));
	hmac(k, k, 32, "aws4_request", 12);
	uint8_t sig[32];
	hmac(sig, k, 32, sts->data, sts->len);
	explicit_bzero(k, sizeof k);
	dv_hex(out->signature, sig, 32);

	dv_buf_reset(&out->authorization);
	dv_buf_addf(&out->authorization,
		    "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
		    creds->access_key_id, date, p->region, p->service, (char *)signed_hdrs.data, out->signature);
	dv_buf_release(&signed_hdrs);
	return 0;
}
