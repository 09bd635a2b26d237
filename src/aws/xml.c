/*
 * S3 response bodies, parsed with expat. Every parser walks the document
 * with one small engine that reports each closed element as a path
 * ("ListBucketResult/Contents/Key") and its text. Hostile input is bounded:
 * no DOCTYPE or entity declarations at all (S3 never sends them), depth and
 * text length caps; the caller caps the body size before parsing.
 */
#include "aws.h"
#include "xml.h"

#include <expat.h>
#include <stdlib.h>
#include <string.h>

/* EC2 answers nest deeper than S3's (instances, interfaces, addresses). */
#define XML_MAX_DEPTH 32
#define XML_MAX_TEXT (64 * 1024)
#define XML_MAX_PATH 768
#define XML_MAX_ITEMS 1000000

struct walker {
	XML_Parser p;
	char path[XML_MAX_PATH];
	size_t plen[XML_MAX_DEPTH + 1];
	int depth;
	struct dv_buf text;
	const char *fail;
	dv_xml_end_fn fn;
	void *ctx;
};

static void stop(struct walker *w, const char *why)
{
	if (!w->fail)
		w->fail = why;
	XML_StopParser(w->p, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	(void)attrs;
	struct walker *w = ud;
	if (w->fail)
		return;
	if (w->depth >= XML_MAX_DEPTH)
		return stop(w, "nesting too deep");
	size_t cur = strlen(w->path), n = strlen(name);
	if (cur + n + 2 >= XML_MAX_PATH)
		return stop(w, "element names too long");
	w->plen[w->depth++] = cur;
	if (cur)
		w->path[cur++] = '/';
	memcpy(w->path + cur, name, n + 1);
	dv_buf_reset(&w->text);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	(void)name;
	struct walker *w = ud;
	if (w->fail || w->depth <= 0)
		return;
	w->fn(w->ctx, w->path, w->text.data ? (char *)w->text.data : "");
	dv_buf_reset(&w->text);
	w->path[w->plen[--w->depth]] = 0;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct walker *w = ud;
	if (w->fail)
		return;
	if (w->text.len + (size_t)len > XML_MAX_TEXT)
		return stop(w, "text too long");
	dv_buf_add(&w->text, s, (size_t)len);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
			       int has_internal)
{
	(void)name, (void)sysid, (void)pubid, (void)has_internal;
	stop(ud, "DOCTYPE not allowed");
}

static void XMLCALL on_entity(void *ud, const XML_Char *name, int is_param, const XML_Char *value, int vlen,
			      const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
			      const XML_Char *notation)
{
	(void)name, (void)is_param, (void)value, (void)vlen, (void)base, (void)sysid, (void)pubid, (void)notation;
	stop(ud, "entity declarations not allowed");
}

int dv_xml_walk(const char *xml, size_t len, const char *what, dv_xml_end_fn fn, void *ctx, struct dv_err *err)
{
	if (len > INT32_MAX)
		return dv_error(err, DV_E_REMOTE, "%s: response too large", what);
	struct walker w = {0};
	w.fn = fn;
	w.ctx = ctx;
	w.p = XML_ParserCreate("UTF-8");
	if (!w.p)
		DV_BUG("XML_ParserCreate failed");
	XML_SetUserData(w.p, &w);
	XML_SetElementHandler(w.p, on_start, on_end);
	XML_SetCharacterDataHandler(w.p, on_text);
	XML_SetStartDoctypeDeclHandler(w.p, on_doctype);
	XML_SetEntityDeclHandler(w.p, on_entity);
	XML_SetParamEntityParsing(w.p, XML_PARAM_ENTITY_PARSING_NEVER);
	enum XML_Status st = XML_Parse(w.p, xml, (int)len, XML_TRUE);
	int r = 0;
	if (w.fail)
		r = dv_error(err, DV_E_REMOTE, "%s: malformed response: %s", what, w.fail);
	else if (st != XML_STATUS_OK)
		r = dv_error(err, DV_E_REMOTE, "%s: malformed response: %s at line %lu", what,
			     XML_ErrorString(XML_GetErrorCode(w.p)), (unsigned long)XML_GetCurrentLineNumber(w.p));
	XML_ParserFree(w.p);
	dv_buf_release(&w.text);
	return r;
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = dv_strdup(v);
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;
	if (!*s || *s == '-')
		return false;
	unsigned long long x = strtoull(s, &end, 10);
	if (*end)
		return false;
	*v = x;
	return true;
}

/* ---- Error ----------------------------------------------------------- */

static void error_end(void *ctx, const char *path, const char *text)
{
	struct dv_s3_error *e = ctx;
	if (!strcmp(path, "Error/Code"))
		set_str(&e->code, text);
	else if (!strcmp(path, "Error/Message"))
		set_str(&e->message, text);
	else if (!strcmp(path, "Error/RequestId"))
		set_str(&e->request_id, text);
	else if (!strcmp(path, "Error/Key"))
		set_str(&e->key, text);
}

int dv_s3_parse_error(const char *xml, size_t len, struct dv_s3_error *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	int r = dv_xml_walk(xml, len, "S3 error", error_end, out, err);
	if (r == 0 && !out->code)
		r = dv_error(err, DV_E_REMOTE, "S3 error: response has no <Error><Code>");
	if (r < 0)
		dv_s3_error_release(out);
	return r;
}

void dv_s3_error_release(struct dv_s3_error *e)
{
	free(e->code);
	free(e->message);
	free(e->request_id);
	free(e->key);
	memset(e, 0, sizeof *e);
}

/* ---- ListObjectsV2 ---------------------------------------------------- */

struct list_ctx {
	struct dv_s3_list *l;
	size_t cap;
	struct dv_s3_object cur;
	bool bad;
	bool root_ok;
};

static void list_end(void *ctx, const char *path, const char *text)
{
	struct list_ctx *c = ctx;
	if (!strcmp(path, "ListBucketResult")) {
		c->root_ok = true;
	} else if (!strcmp(path, "ListBucketResult/Contents/Key")) {
		set_str(&c->cur.key, text);
	} else if (!strcmp(path, "ListBucketResult/Contents/Size")) {
		if (!parse_u64(text, &c->cur.size))
			c->bad = true;
	} else if (!strcmp(path, "ListBucketResult/Contents/ETag")) {
		set_str(&c->cur.etag, text);
	} else if (!strcmp(path, "ListBucketResult/Contents")) {
		if (!c->cur.key || c->l->n >= XML_MAX_ITEMS) {
			c->bad = true;
			free(c->cur.key);
			free(c->cur.etag);
		} else {
			if (c->l->n == c->cap) {
				c->cap = c->cap ? 2 * c->cap : 64;
				c->l->objects = dv_realloc(c->l->objects, c->cap * sizeof *c->l->objects);
			}
			c->l->objects[c->l->n++] = c->cur;
		}
		memset(&c->cur, 0, sizeof c->cur);
	} else if (!strcmp(path, "ListBucketResult/IsTruncated")) {
		c->l->truncated = !strcmp(text, "true");
	} else if (!strcmp(path, "ListBucketResult/NextContinuationToken")) {
		set_str(&c->l->next_token, text);
	}
}

int dv_s3_parse_list_objects(const char *xml, size_t len, struct dv_s3_list *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct list_ctx c = {.l = out};
	int r = dv_xml_walk(xml, len, "ListObjectsV2", list_end, &c, err);
	free(c.cur.key);
	free(c.cur.etag);
	if (r == 0 && (c.bad || !c.root_ok))
		r = dv_error(err, DV_E_REMOTE, "ListObjectsV2: malformed response (entry without key or bad size)");
	if (r == 0 && out->truncated && (!out->next_token || !*out->next_token))
		r = dv_error(err, DV_E_REMOTE, "ListObjectsV2: truncated listing without a continuation token");
	if (r < 0)
		dv_s3_list_release(out);
	return r;
}

void dv_s3_list_release(struct dv_s3_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->objects[i].key);
		free(l->objects[i].etag);
	}
	free(l->objects);
	free(l->next_token);
	memset(l, 0, sizeof *l);
}

/* ---- InitiateMultipartUpload ------------------------------------------ */

static void init_end(void *ctx, const char *path, const char *text)
{
	if (!strcmp(path, "InitiateMultipartUploadResult/UploadId"))
		set_str(ctx, text);
}

int dv_s3_parse_initiate(const char *xml, size_t len, char **upload_id, struct dv_err *err)
{
	*upload_id = NULL;
	int r = dv_xml_walk(xml, len, "CreateMultipartUpload", init_end, upload_id, err);
	if (r == 0 && (!*upload_id || !**upload_id))
		r = dv_error(err, DV_E_REMOTE, "CreateMultipartUpload: response has no UploadId");
	if (r < 0) {
		free(*upload_id);
		*upload_id = NULL;
	}
	return r;
}

/* ---- ListParts --------------------------------------------------------- */

struct parts_ctx {
	struct dv_s3_parts *p;
	size_t cap;
	struct dv_s3_part cur;
	bool have_num, have_size, bad, root_ok;
};

static bool parse_uint(const char *s, unsigned max, unsigned *v)
{
	uint64_t x;
	if (!parse_u64(s, &x) || x > max)
		return false;
	*v = (unsigned)x;
	return true;
}

static void parts_end(void *ctx, const char *path, const char *text)
{
	struct parts_ctx *c = ctx;
	if (!strcmp(path, "ListPartsResult")) {
		c->root_ok = true;
	} else if (!strcmp(path, "ListPartsResult/Part/PartNumber")) {
		c->have_num = parse_uint(text, 10000, &c->cur.number) && c->cur.number >= 1;
		if (!c->have_num)
			c->bad = true;
	} else if (!strcmp(path, "ListPartsResult/Part/Size")) {
		c->have_size = parse_u64(text, &c->cur.size);
		if (!c->have_size)
			c->bad = true;
	} else if (!strcmp(path, "ListPartsResult/Part/ETag")) {
		set_str(&c->cur.etag, text);
	} else if (!strcmp(path, "ListPartsResult/Part")) {
		if (!c->have_num || !c->have_size || !c->cur.etag || c->p->n >= 10000) {
			c->bad = true;
			free(c->cur.etag);
		} else {
			if (c->p->n == c->cap) {
				c->cap = c->cap ? 2 * c->cap : 64;
				c->p->parts = dv_realloc(c->p->parts, c->cap * sizeof *c->p->parts);
			}
			c->p->parts[c->p->n++] = c->cur;
		}
		memset(&c->cur, 0, sizeof c->cur);
		c->have_num = c->have_size = false;
	} else if (!strcmp(path, "ListPartsResult/IsTruncated")) {
		c->p->truncated = !strcmp(text, "true");
	} else if (!strcmp(path, "ListPartsResult/NextPartNumberMarker")) {
		if (*text && !parse_uint(text, 10000, &c->p->next_marker))
			c->bad = true;
	}
}

int dv_s3_parse_list_parts(const char *xml, size_t len, struct dv_s3_parts *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct parts_ctx c = {.p = out};
	int r = dv_xml_walk(xml, len, "ListParts", parts_end, &c, err);
	free(c.cur.etag);
	if (r == 0 && (c.bad || !c.root_ok))
		r = dv_error(err, DV_E_REMOTE, "ListParts: malformed response (bad part entry)");
	if (r == 0 && out->truncated && out->next_marker == 0)
		r = dv_error(err, DV_E_REMOTE, "ListParts: truncated listing without NextPartNumberMarker");
	if (r < 0)
		dv_s3_parts_release(out);
	return r;
}

void dv_s3_parts_release(struct dv_s3_parts *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->parts[i].etag);
	free(p->parts);
	memset(p, 0, sizeof *p);
}

/* ---- ListMultipartUploads ---------------------------------------------- */

struct uploads_ctx {
	struct dv_s3_uploads *u;
	size_t cap;
	struct dv_s3_upload cur;
	bool bad, root_ok;
};

static void uploads_end(void *ctx, const char *path, const char *text)
{
	struct uploads_ctx *c = ctx;
	if (!strcmp(path, "ListMultipartUploadsResult")) {
		c->root_ok = true;
	} else if (!strcmp(path, "ListMultipartUploadsResult/Upload/Key")) {
		set_str(&c->cur.key, text);
	} else if (!strcmp(path, "ListMultipartUploadsResult/Upload/UploadId")) {
		set_str(&c->cur.upload_id, text);
	} else if (!strcmp(path, "ListMultipartUploadsResult/Upload/Initiated")) {
		set_str(&c->cur.initiated, text);
	} else if (!strcmp(path, "ListMultipartUploadsResult/Upload")) {
		if (!c->cur.key || !c->cur.upload_id || c->u->n >= XML_MAX_ITEMS) {
			c->bad = true;
			free(c->cur.key);
			free(c->cur.upload_id);
			free(c->cur.initiated);
		} else {
			if (c->u->n == c->cap) {
				c->cap = c->cap ? 2 * c->cap : 16;
				c->u->uploads = dv_realloc(c->u->uploads, c->cap * sizeof *c->u->uploads);
			}
			c->u->uploads[c->u->n++] = c->cur;
		}
		memset(&c->cur, 0, sizeof c->cur);
	} else if (!strcmp(path, "ListMultipartUploadsResult/IsTruncated")) {
		c->u->truncated = !strcmp(text, "true");
	} else if (!strcmp(path, "ListMultipartUploadsResult/NextKeyMarker")) {
		set_str(&c->u->next_key_marker, text);
	} else if (!strcmp(path, "ListMultipartUploadsResult/NextUploadIdMarker")) {
		set_str(&c->u->next_upload_id_marker, text);
	}
}

int dv_s3_parse_list_uploads(const char *xml, size_t len, struct dv_s3_uploads *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct uploads_ctx c = {.u = out};
	int r = dv_xml_walk(xml, len, "ListMultipartUploads", uploads_end, &c, err);
	free(c.cur.key);
	free(c.cur.upload_id);
	free(c.cur.initiated);
	if (r == 0 && (c.bad || !c.root_ok))
		r = dv_error(err, DV_E_REMOTE, "ListMultipartUploads: malformed response (bad upload entry)");
	if (r < 0)
		dv_s3_uploads_release(out);
	return r;
}

void dv_s3_uploads_release(struct dv_s3_uploads *u)
{
	for (size_t i = 0; i < u->n; i++) {
		free(u->uploads[i].key);
		free(u->uploads[i].upload_id);
		free(u->uploads[i].initiated);
	}
	free(u->uploads);
	free(u->next_key_marker);
	free(u->next_upload_id_marker);
	memset(u, 0, sizeof *u);
}

/* ---- CompleteMultipartUpload -------------------------------------------- */

struct complete_ctx {
	char *etag;
	bool ok_root;
	struct dv_s3_error e;
	bool is_error;
};

static void complete_end(void *ctx, const char *path, const char *text)
{
	struct complete_ctx *c = ctx;
	if (!strcmp(path, "CompleteMultipartUploadResult"))
		c->ok_root = true;
	else if (!strcmp(path, "CompleteMultipartUploadResult/ETag"))
		set_str(&c->etag, text);
	else if (!strncmp(path, "Error", 5)) {
		c->is_error = true;
		error_end(&c->e, path, text);
	}
}

int dv_s3_parse_complete(const char *xml, size_t len, char **etag, bool *is_error, struct dv_s3_error *e,
			 struct dv_err *err)
{
	struct complete_ctx c = {0};
	*etag = NULL;
	*is_error = false;
	memset(e, 0, sizeof *e);
	int r = dv_xml_walk(xml, len, "CompleteMultipartUpload", complete_end, &c, err);
	if (r == 0 && c.is_error) {
		*is_error = true;
		*e = c.e;
		memset(&c.e, 0, sizeof c.e);
		if (!e->code)
			e->code = dv_strdup("InternalError");
	} else if (r == 0 && !c.ok_root) {
		r = dv_error(err, DV_E_REMOTE, "CompleteMultipartUpload: unexpected response");
	} else if (r == 0) {
		*etag = c.etag ? c.etag : dv_strdup("");
		c.etag = NULL;
	}
	free(c.etag);
	dv_s3_error_release(&c.e);
	return r;
}

/* ---- DeleteObjects ------------------------------------------------------- */

struct delete_ctx {
	struct dv_s3_delete_result *d;
	size_t cap;
	struct dv_s3_delete_failure cur;
	bool root_ok, bad;
};

static void delete_end(void *ctx, const char *path, const char *text)
{
	struct delete_ctx *c = ctx;
	if (!strcmp(path, "DeleteResult")) {
		c->root_ok = true;
	} else if (!strcmp(path, "DeleteResult/Deleted")) {
		c->d->n_deleted++;
	} else if (!strcmp(path, "DeleteResult/Error/Key")) {
		set_str(&c->cur.key, text);
	} else if (!strcmp(path, "DeleteResult/Error/Code")) {
		set_str(&c->cur.code, text);
	} else if (!strcmp(path, "DeleteResult/Error/Message")) {
		set_str(&c->cur.message, text);
	} else if (!strcmp(path, "DeleteResult/Error")) {
		if (!c->cur.key || !c->cur.code || c->d->n_failures >= XML_MAX_ITEMS) {
			c->bad = true;
			free(c->cur.key);
			free(c->cur.code);
			free(c->cur.message);
		} else {
			if (c->d->n_failures == c->cap) {
				c->cap = c->cap ? 2 * c->cap : 16;
				c->d->failures = dv_realloc(c->d->failures, c->cap * sizeof *c->d->failures);
			}
			c->d->failures[c->d->n_failures++] = c->cur;
		}
		memset(&c->cur, 0, sizeof c->cur);
	} else if (!strncmp(path, "Error", 5) && (path[5] == 0 || path[5] == '/')) {
		c->d->is_error = true;
		error_end(&c->d->e, path, text);
	}
}

int dv_s3_parse_delete_result(const char *xml, size_t len, struct dv_s3_delete_result *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct delete_ctx c = {.d = out};
	int r = dv_xml_walk(xml, len, "DeleteObjects", delete_end, &c, err);
	free(c.cur.key);
	free(c.cur.code);
	free(c.cur.message);
	if (r == 0 && out->is_error) {
		if (!out->e.code)
			out->e.code = dv_strdup("InternalError");
	} else if (r == 0 && (c.bad || !c.root_ok)) {
		r = dv_error(err, DV_E_REMOTE, "DeleteObjects: malformed response (%s)",
			     c.root_ok ? "an <Error> entry without Key or Code" : "no <DeleteResult>");
	}
	if (r < 0)
		dv_s3_delete_result_release(out);
	return r;
}

void dv_s3_delete_result_release(struct dv_s3_delete_result *d)
{
	for (size_t i = 0; i < d->n_failures; i++) {
		free(d->failures[i].key);
		free(d->failures[i].code);
		free(d->failures[i].message);
	}
	free(d->failures);
	dv_s3_error_release(&d->e);
	memset(d, 0, sizeof *d);
}

/* Appends s with the five XML special characters and CR, LF, tab as
 * references (a literal CR or LF would be normalised by the server's
 * parser). false for other control characters, which XML 1.0 forbids. */
static bool xml_escape(struct dv_buf *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '&': dv_buf_add(out, "&amp;", 5); break;
		case '<': dv_buf_add(out, "&lt;", 4); break;
		case '>': dv_buf_add(out, "&gt;", 4); break;
		case '"': dv_buf_add(out, "&quot;", 6); break;
		case '\'': dv_buf_add(out, "&apos;", 6); break;
		case '\t': case '\n': case '\r': dv_buf_addf(out, "&#%d;", *p); break;
		default:
			if (*p < 0x20)
				return false;
			dv_buf_add(out, p, 1);
		}
	}
	return true;
}

bool dv_s3_delete_body(struct dv_buf *out, char *const *keys, size_t n)
{
	size_t start = out->len;
	dv_buf_addf(out, "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
	for (size_t i = 0; i < n; i++) {
		dv_buf_addf(out, "<Object><Key>");
		if (!xml_escape(out, keys[i])) {
			out->len = start;
			if (out->data)
				out->data[start] = 0;
			return false;
		}
		dv_buf_addf(out, "</Key></Object>");
	}
	dv_buf_addf(out, "</Delete>");
	return true;
}
