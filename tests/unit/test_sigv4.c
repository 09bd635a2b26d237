/*
 * SigV4 against AWS's published suite and the official CLI's captured S3
 * requests (tests/vectors/), plus the S3 XML parsers on valid and hostile
 * input, the AWS INI parser and the instance-metadata credentials document.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/aws.h"
#include "aws/aws_internal.h"
#include "aws/xml.h"

#define VEC DV_SOURCE_DIR "/tests/vectors"

static char *slurp(const char *path)
{
	struct dv_buf b = DV_BUF_INIT;
	struct dv_err err;
	if (dv_read_file(path, 1 << 20, &b, &err) < 0) {
		print_error("%s: %s\n", path, err.msg);
		fail();
	}
	if (!b.data)
		return dv_strdup("");
	return (char *)b.data;
}

static void assert_text(const char *what, const char *case_name, const char *got, const char *want)
{
	if (strcmp(got, want)) {
		print_error("%s: %s differs\n--- want\n%s\n--- got\n%s\n", case_name, what, want, got);
		fail();
	}
}

/* ---- the aws-c-auth suite ---------------------------------------------- */

struct parsed {
	char *method;
	char *path;
	struct dv_aws_kv q[16];
	size_t nq;
	struct dv_aws_kv h[16];
	size_t nh;
	char *body;
	size_t body_len;
	char *strings[64];
	size_t ns;
};

static char *keep(struct parsed *p, char *s)
{
	assert_true(p->ns < 64);
	p->strings[p->ns++] = s;
	return s;
}

static char *decoded(struct parsed *p, const char *s, size_t n)
{
	struct dv_buf b = DV_BUF_INIT;
	dv_aws_uri_decode(&b, s, n);
	dv_buf_add(&b, "", 0);
	return keep(p, (char *)b.data);
}

static void parse_request(struct parsed *p, char *text)
{
	memset(p, 0, sizeof *p);
	char *nl = strchr(text, '\n');
	assert_non_null(nl);
	*nl = 0;
	char *sp = strchr(text, ' ');
	char *proto = strrchr(text, ' ');
	assert_true(sp && proto && proto > sp);
	p->method = keep(p, dv_asprintf("%.*s", (int)(sp - text), text));
	char *target = keep(p, dv_asprintf("%.*s", (int)(proto - sp - 1), sp + 1));
	char *qm = strchr(target, '?');
	if (qm) {
		*qm = 0;
		char *q = qm + 1;
		while (*q) {
			size_t l = strcspn(q, "&");
			char *eq = memchr(q, '=', l);
			size_t kl = eq ? (size_t)(eq - q) : l;
			p->q[p->nq].key = decoded(p, q, kl);
			p->q[p->nq].value = eq ? decoded(p, eq + 1, l - kl - 1) : "";
			p->nq++;
			q += l;
			if (*q == '&')
				q++;
		}
	}
	p->path = target;
	char *line = nl + 1;
	while (*line) {
		char *e = strchr(line, '\n');
		size_t l = e ? (size_t)(e - line) : strlen(line);
		if (l == 0) {
			p->body = e + 1;
			p->body_len = strlen(e + 1);
			break;
		}
		if (line[0] == ' ' || line[0] == '\t') {
			/* folded continuation of the previous header */
			assert_true(p->nh > 0);
			char *v = dv_asprintf("%s\n%.*s", p->h[p->nh - 1].value, (int)l, line);
			p->h[p->nh - 1].value = keep(p, v);
		} else {
			char *colon = memchr(line, ':', l);
			assert_non_null(colon);
			p->h[p->nh].key = keep(p, dv_asprintf("%.*s", (int)(colon - line), line));
			p->h[p->nh].value = keep(p, dv_asprintf("%.*s", (int)(l - (size_t)(colon - line) - 1), colon + 1));
			p->nh++;
		}
		if (!e)
			break;
		line = e + 1;
	}
}

static void parsed_free(struct parsed *p)
{
	for (size_t i = 0; i < p->ns; i++)
		free(p->strings[i]);
}

/* Returns the "Authorization:" line value of a signed-request file. */
static char *auth_line(const char *signed_req)
{
	const char *a = strstr(signed_req, "\nAuthorization:");
	assert_non_null(a);
	a += strlen("\nAuthorization:");
	return dv_asprintf("%.*s", (int)strcspn(a, "\n"), a);
}

static int run_suite_case(const char *name)
{
	char *dir = dv_asprintf("%s/sigv4/%s", VEC, name);
	char *path = dv_asprintf("%s/context.json", dir);
	json_error_t je;
	json_t *ctx = json_load_file(path, 0, &je);
	assert_non_null(ctx);
	free(path);
	json_t *cr = json_object_get(ctx, "credentials");
	struct dv_aws_creds creds = {0};
	creds.access_key_id = dv_strdup(json_string_value(json_object_get(cr, "access_key_id")));
	creds.secret_access_key = dv_strdup(json_string_value(json_object_get(cr, "secret_access_key")));
	if (json_object_get(cr, "token"))
		creds.session_token = dv_strdup(json_string_value(json_object_get(cr, "token")));
	int64_t t;
	assert_int_equal(dv_parse_time(json_string_value(json_object_get(ctx, "timestamp")), &t), 0);

	path = dv_asprintf("%s/request.txt", dir);
	char *reqtext = slurp(path);
	free(path);
	struct parsed p;
	parse_request(&p, reqtext);
	char hash[65];
	dv_aws_sha256_hex(hash, p.body ? p.body : "", p.body ? p.body_len : 0);

	struct dv_sigv4_request rq = {
		.method = p.method, .path = p.path, .query = p.q, .n_query = p.nq, .headers = p.h, .n_headers = p.nh,
		.payload_hash = hash};
	struct dv_sigv4_params prm = {
		.region = json_string_value(json_object_get(ctx, "region")),
		.service = json_string_value(json_object_get(ctx, "service")),
		.time = t,
		.normalize_path = json_is_true(json_object_get(ctx, "normalize")),
		.add_content_sha256 = json_is_true(json_object_get(ctx, "sign_body")),
		.omit_session_token = json_is_true(json_object_get(ctx, "omit_session_token")),
	};
	struct dv_sigv4_result res = {0};
	struct dv_err err;
	assert_int_equal(dv_sigv4_sign(&rq, &creds, &prm, &res, &err), 0);

	char *f;
	path = dv_asprintf("%s/header-canonical-request.txt", dir);
	f = slurp(path);
	assert_text("canonical request", name, (char *)res.canonical_request.data, f);
	free(f);
	free(path);
	path = dv_asprintf("%s/header-string-to-sign.txt", dir);
	f = slurp(path);
	assert_text("string to sign", name, (char *)res.string_to_sign.data, f);
	free(f);
	free(path);
	path = dv_asprintf("%s/header-signature.txt", dir);
	f = slurp(path);
	assert_text("signature", name, res.signature, f);
	free(f);
	free(path);
	path = dv_asprintf("%s/header-signed-request.txt", dir);
	f = slurp(path);
	char *auth = auth_line(f);
	assert_text("authorization", name, (char *)res.authorization.data, auth);
	free(auth);
	free(f);
	free(path);

	dv_sigv4_result_release(&res);
	parsed_free(&p);
	free(reqtext);
	dv_aws_creds_release(&creds);
	json_decref(ctx);
	free(dir);
	return 1;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_suite(void **state)
{
	(void)state;
	DIR *d = opendir(VEC "/sigv4");
	assert_non_null(d);
	char *names[128];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 128)
		if (e->d_name[0] != '.' && strcmp(e->d_name, "LICENSE"))
			names[n++] = dv_strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof *names, name_cmp);
	int ran = 0;
	for (size_t i = 0; i < n; i++) {
		ran += run_suite_case(names[i]);
		free(names[i]);
	}
	print_message("signed %d cases of the SigV4 suite\n", ran);
	assert_int_equal(ran, 38);
}

/* ---- captured AWS CLI S3 requests ------------------------------------- */

static char *section(const char *text, const char *start, const char *end)
{
	const char *a = strstr(text, start);
	assert_non_null(a);
	a += strlen(start);
	const char *b = strstr(a, end);
	assert_non_null(b);
	return dv_asprintf("%.*s", (int)(b - a), a);
}

static void run_wire_case(const char *file)
{
	char *path = dv_asprintf("%s/aws-wire/%s", VEC, file);
	char *text = slurp(path);
	free(path);
	char *creq = section(text, "### CanonicalRequest\n", "\n\n### StringToSign");
	char *sts = section(text, "### StringToSign\n", "\n\n### Signature");
	char *sig = section(text, "### Signature (secret S3RVER)\n", "\n");
	char *auth = section(text, "'Authorization': b'", "'");

	/* rebuild the request from its canonical form: decoded path, query and
	 * the headers the caller supplies (the signer adds date and hash) */
	struct parsed p;
	memset(&p, 0, sizeof p);
	char *lines[32];
	size_t nl = 0;
	char *work = keep(&p, dv_strdup(creq));
	for (char *s = work; nl < 32;) {
		lines[nl++] = s;
		char *e = strchr(s, '\n');
		if (!e)
			break;
		*e = 0;
		s = e + 1;
	}
	assert_true(nl >= 6);
	p.method = lines[0];
	p.path = decoded(&p, lines[1], strlen(lines[1]));
	for (char *q = lines[2]; *q;) {
		size_t l = strcspn(q, "&");
		char *eq = memchr(q, '=', l);
		p.q[p.nq].key = decoded(&p, q, (size_t)(eq - q));
		p.q[p.nq].value = decoded(&p, eq + 1, l - (size_t)(eq - q) - 1);
		p.nq++;
		q += l;
		if (*q)
			q++;
	}
	char *date = NULL;
	for (size_t i = 3; i < nl && lines[i][0]; i++) {
		char *colon = strchr(lines[i], ':');
		*colon = 0;
		if (!strcmp(lines[i], "x-amz-date"))
			date = colon + 1;
		else if (strcmp(lines[i], "x-amz-content-sha256")) {
			p.h[p.nh].key = lines[i];
			p.h[p.nh].value = colon + 1;
			p.nh++;
		}
	}
	assert_non_null(date);
	struct tm tm = {0};
	assert_non_null(strptime(date, "%Y%m%dT%H%M%SZ", &tm));
	struct dv_aws_creds creds = {.access_key_id = "S3RVER", .secret_access_key = "S3RVER"};
	struct dv_sigv4_request rq = {
		.method = p.method, .path = p.path, .query = p.q, .n_query = p.nq, .headers = p.h, .n_headers = p.nh,
		.payload_hash = lines[nl - 1]};
	struct dv_sigv4_params prm = {
		.region = "us-east-1", .service = "s3", .time = (int64_t)timegm(&tm), .add_content_sha256 = true};
	struct dv_sigv4_result res = {0};
	struct dv_err err;
	assert_int_equal(dv_sigv4_sign(&rq, &creds, &prm, &res, &err), 0);
	assert_text("canonical request", file, (char *)res.canonical_request.data, creq);
	assert_text("string to sign", file, (char *)res.string_to_sign.data, sts);
	assert_text("signature", file, res.signature, sig);
	assert_text("authorization", file, (char *)res.authorization.data, auth);
	dv_sigv4_result_release(&res);
	parsed_free(&p);
	free(creq);
	free(sts);
	free(sig);
	free(auth);
	free(text);
}

static void test_wire(void **state)
{
	(void)state;
	run_wire_case("s3-PutObject.txt");
	run_wire_case("s3-UploadPart.txt");
	run_wire_case("s3-ListParts.txt");
	run_wire_case("s3-CompleteMultipartUpload.txt");
}

/* S3 keys: encoded once, never normalised. */
static void test_s3_rules(void **state)
{
	(void)state;
	struct dv_aws_creds creds = {.access_key_id = "AK", .secret_access_key = "SK"};
	struct dv_aws_kv h[] = {{"Host", "example.com"}};
	struct dv_sigv4_request rq = {.method = "GET", .path = "/b/a b/./../%41+c~", .headers = h, .n_headers = 1,
				      .payload_hash = "UNSIGNED-PAYLOAD"};
	struct dv_sigv4_params prm = {.region = "eu-west-1", .service = "s3", .time = 0, .add_content_sha256 = true};
	struct dv_sigv4_result res = {0};
	struct dv_err err;
	assert_int_equal(dv_sigv4_sign(&rq, &creds, &prm, &res, &err), 0);
	assert_non_null(strstr((char *)res.canonical_request.data, "GET\n/b/a%20b/./../%2541%2Bc~\n"));
	assert_non_null(strstr((char *)res.canonical_request.data, "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"));
	assert_non_null(strstr((char *)res.authorization.data, "/19700101/eu-west-1/s3/aws4_request"));
	dv_sigv4_result_release(&res);
}

/* ---- XML --------------------------------------------------------------- */

#define XML_S(s) s, strlen(s)

static void test_xml_error(void **state)
{
	(void)state;
	struct dv_s3_error e;
	struct dv_err err;
	const char *x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
			"<Message>The specified key does not exist.</Message><Key>a/b&amp;c</Key>"
			"<RequestId>tx123</RequestId></Error>";
	assert_int_equal(dv_s3_parse_error(XML_S(x), &e, &err), 0);
	assert_string_equal(e.code, "NoSuchKey");
	assert_string_equal(e.key, "a/b&c");
	assert_string_equal(e.request_id, "tx123");
	dv_s3_error_release(&e);
	assert_int_equal(dv_s3_parse_error(XML_S("<Error><Message>x</Message></Error>"), &e, &err), -DV_E_REMOTE);
	assert_int_equal(dv_s3_parse_error(XML_S("<Error><Code>x</Code>"), &e, &err), -DV_E_REMOTE);
	assert_int_equal(dv_s3_parse_error(XML_S(""), &e, &err), -DV_E_REMOTE);
}

static void test_xml_hostile(void **state)
{
	(void)state;
	struct dv_s3_error e;
	struct dv_err err;
	const char *laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
			     "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
			     "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
			     "<Error><Code>&lol3;</Code></Error>";
	assert_int_equal(dv_s3_parse_error(XML_S(laughs), &e, &err), -DV_E_REMOTE);
	assert_non_null(strstr(err.msg, "DOCTYPE"));
	const char *xxe = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY f SYSTEM \"file:///etc/passwd\">]>"
			  "<Error><Code>&f;</Code></Error>";
	assert_int_equal(dv_s3_parse_error(XML_S(xxe), &e, &err), -DV_E_REMOTE);
	/* undefined entity without a DOCTYPE */
	assert_int_equal(dv_s3_parse_error(XML_S("<Error><Code>&f;</Code></Error>"), &e, &err), -DV_E_REMOTE);
	/* deep nesting */
	struct dv_buf b = DV_BUF_INIT;
	for (int i = 0; i < 100000; i++)
		dv_buf_add(&b, "<a>", 3);
	assert_int_equal(dv_s3_parse_error((char *)b.data, b.len, &e, &err), -DV_E_REMOTE);
	dv_buf_reset(&b);
	/* a huge text node */
	dv_buf_addf(&b, "<Error><Code>");
	for (int i = 0; i < 200000; i++)
		dv_buf_add(&b, "A", 1);
	dv_buf_addf(&b, "</Code></Error>");
	assert_int_equal(dv_s3_parse_error((char *)b.data, b.len, &e, &err), -DV_E_REMOTE);
	dv_buf_release(&b);
	/* binary garbage and embedded NUL */
	const char garbage[] = "<Error><Code>a\0b</Code></Error>";
	assert_int_equal(dv_s3_parse_error(garbage, sizeof garbage - 1, &e, &err), -DV_E_REMOTE);
	const char bad_utf8[] = "<Error><Code>\xff\xfe</Code></Error>";
	assert_int_equal(dv_s3_parse_error(bad_utf8, sizeof bad_utf8 - 1, &e, &err), -DV_E_REMOTE);
	/* mismatched tags */
	assert_int_equal(dv_s3_parse_error(XML_S("<Error><Code>x</Error></Code>"), &e, &err), -DV_E_REMOTE);
}

static void test_xml_list(void **state)
{
	(void)state;
	struct dv_s3_list l;
	struct dv_err err;
	const char *x = "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>"
			"<Prefix>r/</Prefix><IsTruncated>true</IsTruncated>"
			"<NextContinuationToken>tok/=+</NextContinuationToken>"
			"<Contents><Key>r/config</Key><Size>123</Size><ETag>&quot;abc&quot;</ETag></Contents>"
			"<Contents><Key>r/packs/00/x</Key><Size>18446744073709551615</Size></Contents>"
			"</ListBucketResult>";
	assert_int_equal(dv_s3_parse_list_objects(XML_S(x), &l, &err), 0);
	assert_int_equal(l.n, 2);
	assert_true(l.truncated);
	assert_string_equal(l.next_token, "tok/=+");
	assert_string_equal(l.objects[0].key, "r/config");
	assert_int_equal(l.objects[0].size, 123);
	assert_string_equal(l.objects[0].etag, "\"abc\"");
	assert_true(l.objects[1].size == UINT64_MAX);
	dv_s3_list_release(&l);
	/* truncated without a token, bad sizes, entries without keys, wrong root */
	assert_int_equal(dv_s3_parse_list_objects(XML_S("<ListBucketResult><IsTruncated>true</IsTruncated>"
							"</ListBucketResult>"),
						  &l, &err),
			 -DV_E_REMOTE);
	assert_int_equal(dv_s3_parse_list_objects(XML_S("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size>"
							"</Contents></ListBucketResult>"),
						  &l, &err),
			 -DV_E_REMOTE);
	assert_int_equal(dv_s3_parse_list_objects(XML_S("<ListBucketResult><Contents><Size>1</Size></Contents>"
							"</ListBucketResult>"),
						  &l, &err),
			 -DV_E_REMOTE);
	assert_int_equal(dv_s3_parse_list_objects(XML_S("<Error><Code>AccessDenied</Code></Error>"), &l, &err),
			 -DV_E_REMOTE);
	/* an empty listing */
	assert_int_equal(dv_s3_parse_list_objects(XML_S("<ListBucketResult><IsTruncated>false</IsTruncated>"
							"</ListBucketResult>"),
						  &l, &err),
			 0);
	assert_int_equal(l.n, 0);
	dv_s3_list_release(&l);
}

static void test_xml_multipart(void **state)
{
	(void)state;
	struct dv_err err;
	char *id;
	assert_int_equal(dv_s3_parse_initiate(XML_S("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
						    "<UploadId>u-1</UploadId></InitiateMultipartUploadResult>"),
					      &id, &err),
			 0);
	assert_string_equal(id, "u-1");
	free(id);
	assert_int_equal(dv_s3_parse_initiate(XML_S("<InitiateMultipartUploadResult/>"), &id, &err), -DV_E_REMOTE);
	assert_null(id);

	struct dv_s3_parts p;
	const char *lp = "<ListPartsResult><IsTruncated>true</IsTruncated><NextPartNumberMarker>2"
			 "</NextPartNumberMarker><Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag><Size>8388608"
			 "</Size></Part><Part><PartNumber>2</PartNumber><ETag>\"e2\"</ETag><Size>5</Size></Part>"
			 "</ListPartsResult>";
	assert_int_equal(dv_s3_parse_list_parts(XML_S(lp), &p, &err), 0);
	assert_int_equal(p.n, 2);
	assert_int_equal(p.next_marker, 2);
	assert_int_equal(p.parts[0].size, 8388608);
	assert_string_equal(p.parts[1].etag, "\"e2\"");
	dv_s3_parts_release(&p);
	assert_int_equal(dv_s3_parse_list_parts(XML_S("<ListPartsResult><Part><PartNumber>0</PartNumber><ETag>x"
						      "</ETag><Size>1</Size></Part></ListPartsResult>"),
						&p, &err),
			 -DV_E_REMOTE);
	assert_int_equal(dv_s3_parse_list_parts(XML_S("<ListPartsResult><Part><PartNumber>10001</PartNumber><ETag>x"
						      "</ETag><Size>1</Size></Part></ListPartsResult>"),
						&p, &err),
			 -DV_E_REMOTE);
	assert_int_equal(dv_s3_parse_list_parts(XML_S("<ListPartsResult><IsTruncated>true</IsTruncated>"
						      "</ListPartsResult>"),
						&p, &err),
			 -DV_E_REMOTE);

	struct dv_s3_uploads u;
	const char *lu = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><Upload><Key>r/packs/a</Key>"
			 "<UploadId>U1</UploadId><Initiated>2026-11-25T10:00:00.000Z</Initiated></Upload>"
			 "</ListMultipartUploadsResult>";
	assert_int_equal(dv_s3_parse_list_uploads(XML_S(lu), &u, &err), 0);
	assert_int_equal(u.n, 1);
	assert_string_equal(u.uploads[0].upload_id, "U1");
	dv_s3_uploads_release(&u);
	assert_int_equal(dv_s3_parse_list_uploads(XML_S("<ListMultipartUploadsResult><Upload><Key>k</Key></Upload>"
							"</ListMultipartUploadsResult>"),
						  &u, &err),
			 -DV_E_REMOTE);

	char *etag;
	bool is_err;
	struct dv_s3_error e;
	assert_int_equal(dv_s3_parse_complete(XML_S("<CompleteMultipartUploadResult><ETag>\"x-2\"</ETag>"
						    "</CompleteMultipartUploadResult>"),
					      &etag, &is_err, &e, &err),
			 0);
	assert_false(is_err);
	assert_string_equal(etag, "\"x-2\"");
	free(etag);
	/* 200 OK with an error inside */
	assert_int_equal(dv_s3_parse_complete(XML_S("<Error><Code>InternalError</Code><Message>m</Message></Error>"),
					      &etag, &is_err, &e, &err),
			 0);
	assert_true(is_err);
	assert_string_equal(e.code, "InternalError");
	dv_s3_error_release(&e);
	assert_int_equal(dv_s3_parse_complete(XML_S("<Other/>"), &etag, &is_err, &e, &err), -DV_E_REMOTE);
}

static void collect_key(void *ctx, const char *path, const char *text)
{
	if (!strcmp(path, "Delete/Object/Key"))
		dv_strlist_add(ctx, text);
}

/* DeleteObjects: the request body (escaping, what XML cannot carry) and the
 * answer (quiet: only failures; verbose; an <Error> document; malformed). */
static void test_xml_delete(void **state)
{
	(void)state;
	struct dv_err err;
	struct dv_buf b = DV_BUF_INIT;
	char k1[] = "p/packs/ab/cd", k2[] = "a&b<c>\"d'e\tf\ng\rh \xc3\xa9", bad[] = "x\001y";
	char *keys[] = {k1, k2};
	assert_true(dv_s3_delete_body(&b, keys, 2));
	assert_string_equal((char *)b.data,
			    "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
			    "<Object><Key>p/packs/ab/cd</Key></Object>"
			    "<Object><Key>a&amp;b&lt;c&gt;&quot;d&apos;e&#9;f&#10;g&#13;h \xc3\xa9</Key></Object></Delete>");
	/* an XML parser reads back exactly the keys (CR and LF survive) */
	struct dv_strlist got = {0};
	assert_int_equal(dv_xml_walk((char *)b.data, b.len, "body", collect_key, &got, &err), 0);
	assert_int_equal(got.n, 2);
	assert_string_equal(got.v[0], k1);
	assert_string_equal(got.v[1], k2);
	dv_strlist_release(&got);
	struct dv_s3_delete_result d;
	size_t len = b.len;
	assert_true(dv_s3_delete_body(&b, keys, 0)); /* appends an empty request */
	assert_true(b.len > len);
	char *badk[] = {k1, bad};
	len = b.len;
	assert_false(dv_s3_delete_body(&b, badk, 2));
	assert_int_equal(b.len, len); /* left as it was */
	dv_buf_release(&b);

	const char *quiet = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			    "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			    "<Error><Key>a&amp;b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
			    "<Error><Key>gone</Key><Code>NoSuchKey</Code></Error></DeleteResult>";
	assert_int_equal(dv_s3_parse_delete_result(XML_S(quiet), &d, &err), 0);
	assert_false(d.is_error);
	assert_int_equal(d.n_failures, 2);
	assert_int_equal(d.n_deleted, 0);
	assert_string_equal(d.failures[0].key, "a&b");
	assert_string_equal(d.failures[0].code, "AccessDenied");
	assert_string_equal(d.failures[0].message, "Access Denied");
	assert_string_equal(d.failures[1].code, "NoSuchKey");
	assert_null(d.failures[1].message);
	dv_s3_delete_result_release(&d);

	assert_int_equal(dv_s3_parse_delete_result(XML_S("<DeleteResult/>"), &d, &err), 0);
	assert_int_equal(d.n_failures, 0);
	dv_s3_delete_result_release(&d);
	assert_int_equal(dv_s3_parse_delete_result(XML_S("<DeleteResult><Deleted><Key>a</Key></Deleted>"
							 "<Deleted><Key>b</Key></Deleted></DeleteResult>"),
						   &d, &err),
			 0);
	assert_int_equal(d.n_deleted, 2);
	dv_s3_delete_result_release(&d);
	/* 200 with an <Error> document */
	assert_int_equal(dv_s3_parse_delete_result(XML_S("<Error><Code>SlowDown</Code><Message>m</Message></Error>"),
						   &d, &err),
			 0);
	assert_true(d.is_error);
	assert_string_equal(d.e.code, "SlowDown");
	dv_s3_delete_result_release(&d);
	/* an error entry without a key, another root, broken XML */
	assert_int_equal(dv_s3_parse_delete_result(XML_S("<DeleteResult><Error><Code>X</Code></Error></DeleteResult>"),
						   &d, &err),
			 -DV_E_REMOTE);
	assert_int_equal(dv_s3_parse_delete_result(XML_S("<ListBucketResult/>"), &d, &err), -DV_E_REMOTE);
	assert_int_equal(dv_s3_parse_delete_result(XML_S("<DeleteResult><Error>"), &d, &err), -DV_E_REMOTE);
	assert_int_equal(dv_s3_parse_delete_result(XML_S(""), &d, &err), -DV_E_REMOTE);
}

/* ---- INI ---------------------------------------------------------------- */

static void test_ini(void **state)
{
	(void)state;
	const char *cfg = "# comment\n; other\n[default]\nregion = eu-west-1\n  \n"
			  "[profile dev]\r\nregion=us-west-2\r\ns3 =\n  endpoint_url = http://127.0.0.1:9000\n"
			  "  addressing_style = path\nendpoint_url = http://x\nservices = local\n"
			  "[services local]\ns3 =\n    endpoint_url = http://127.0.0.1:4571\n"
			  "[ spaced ]\nkey = a = b\nkey = later\n";
	struct dv_aws_ini *ini;
	struct dv_err err;
	assert_int_equal(dv_aws_ini_parse(XML_S(cfg), &ini, &err), 0);
	assert_string_equal(dv_aws_ini_get(ini, "default", "region"), "eu-west-1");
	assert_string_equal(dv_aws_ini_get(ini, "profile dev", "region"), "us-west-2");
	assert_string_equal(dv_aws_ini_get(ini, "profile dev", "s3.endpoint_url"), "http://127.0.0.1:9000");
	assert_string_equal(dv_aws_ini_get(ini, "profile dev", "s3.addressing_style"), "path");
	assert_string_equal(dv_aws_ini_get(ini, "profile dev", "endpoint_url"), "http://x");
	assert_string_equal(dv_aws_ini_get(ini, "services local", "s3.endpoint_url"), "http://127.0.0.1:4571");
	assert_string_equal(dv_aws_ini_get(ini, "spaced", "key"), "later");
	assert_null(dv_aws_ini_get(ini, "default", "missing"));
	assert_true(dv_aws_ini_has_section(ini, "profile dev"));
	dv_aws_ini_free(ini);
	assert_int_equal(dv_aws_ini_parse(XML_S("key = before any section\n"), &ini, &err), -DV_E_USAGE);
	assert_int_equal(dv_aws_ini_parse(XML_S("[broken\n"), &ini, &err), -DV_E_USAGE);
	assert_int_equal(dv_aws_ini_parse(XML_S("[a]\nnovalue\n"), &ini, &err), -DV_E_USAGE);
	const char nul[] = "[a]\nk = v\0x\n";
	assert_int_equal(dv_aws_ini_parse(nul, sizeof nul - 1, &ini, &err), -DV_E_USAGE);
	/* secrets never appear in the parser's messages */
	assert_int_equal(dv_aws_ini_parse(XML_S("[a]\naws_secret_access_key = SECRETX\n[b\n"), &ini, &err),
			 -DV_E_USAGE);
	assert_null(strstr(err.msg, "SECRETX"));
}

/* Region/endpoint/credential precedence through the environment. */
static void test_config(void **state)
{
	(void)state;
	char dir[] = "/tmp/dv-aws-cfg-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *cfgp = dv_asprintf("%s/config", dir), *credp = dv_asprintf("%s/credentials", dir);
	FILE *f = fopen(cfgp, "w");
	fputs("[default]\nregion = ap-northeast-2\n[profile p2]\nregion = eu-central-1\n"
	      "endpoint_url = http://127.0.0.1:1/\n",
	      f);
	fclose(f);
	f = fopen(credp, "w");
	fputs("[default]\naws_access_key_id = AKFILE\naws_secret_access_key = SKFILE\n"
	      "[p2]\naws_access_key_id = AKP2\naws_secret_access_key = SKP2\naws_session_token = TOK\n",
	      f);
	fclose(f);
	setenv("AWS_CONFIG_FILE", cfgp, 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", credp, 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ENDPOINT_URL_S3");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");

	struct dv_aws_config c;
	struct dv_aws_creds k;
	struct dv_err err;
	assert_int_equal(dv_aws_config_load(NULL, &c, &err), 0);
	assert_string_equal(c.region, "ap-northeast-2");
	assert_null(c.endpoint);
	assert_false(c.path_style);
	assert_int_equal(dv_aws_creds_load(NULL, &c, &k, &err), 0);
	assert_string_equal(k.access_key_id, "AKFILE");
	dv_aws_creds_release(&k);
	dv_aws_config_release(&c);

	setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
	setenv("AWS_PROFILE", "p2", 1);
	assert_int_equal(dv_aws_config_load(NULL, &c, &err), 0);
	assert_string_equal(c.region, "eu-central-1");
	assert_string_equal(c.endpoint, "http://127.0.0.1:1");
	assert_true(c.path_style);
	/* AWS_PROFILE does not outrank env credentials ... */
	assert_int_equal(dv_aws_creds_load(NULL, &c, &k, &err), 0);
	assert_string_equal(k.access_key_id, "AKENV");
	dv_aws_creds_release(&k);
	dv_aws_config_release(&c);
	/* ... an explicit profile option does */
	struct dv_aws_options o = {.profile = "p2", .region = "sa-east-1", .endpoint = "https://s3.example"};
	assert_int_equal(dv_aws_config_load(&o, &c, &err), 0);
	assert_string_equal(c.region, "sa-east-1");
	assert_string_equal(c.endpoint, "https://s3.example");
	assert_int_equal(dv_aws_creds_load(&o, &c, &k, &err), 0);
	assert_string_equal(k.access_key_id, "AKP2");
	assert_string_equal(k.session_token, "TOK");
	dv_aws_creds_release(&k);
	dv_aws_config_release(&c);
	/* env endpoint beats the profile's */
	setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2", 1);
	setenv("AWS_REGION", "us-west-1", 1);
	assert_int_equal(dv_aws_config_load(NULL, &c, &err), 0);
	assert_string_equal(c.endpoint, "http://127.0.0.1:2");
	assert_string_equal(c.region, "us-west-1");
	dv_aws_config_release(&c);
	/* a missing profile is a clear error */
	setenv("AWS_PROFILE", "nope", 1);
	assert_int_equal(dv_aws_config_load(NULL, &c, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "nope"));
	/* no credentials anywhere: message names no secret */
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unlink(credp);
	assert_int_equal(dv_aws_config_load(NULL, &c, &err), 0);
	assert_int_equal(dv_aws_creds_load(NULL, &c, &k, &err), -DV_E_USAGE);
	dv_aws_config_release(&c);
	unsetenv("AWS_ENDPOINT_URL_S3");
	unsetenv("AWS_REGION");
	unlink(cfgp);
	rmdir(dir);
	free(cfgp);
	free(credp);
}

/* dv_aws_endpoint_resolve: each step of the precedence, for S3, EBS and EC2,
 * removed one at a time from the top. */
static char *resolved(const struct dv_aws_config *cfg, const char *service, const char *explicit_url, bool *custom)
{
	char *url = NULL;
	struct dv_err err;
	assert_int_equal(dv_aws_endpoint_resolve(cfg, service, explicit_url, &url, custom, &err), 0);
	assert_non_null(url);
	return url;
}

#define assert_endpoint(cfg, service, explicit_url, want, want_custom)                                            \
	do {                                                                                                      \
		bool c_ = !(want_custom);                                                                         \
		char *u_ = resolved(cfg, service, explicit_url, &c_);                                             \
		assert_string_equal(u_, want);                                                                    \
		assert_int_equal(c_, want_custom);                                                                \
		free(u_);                                                                                         \
	} while (0)

static void test_endpoint_precedence(void **state)
{
	(void)state;
	char path[] = "/tmp/dv-aws-ep-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static const char ini[] = "[profile p]\nservices = loc\nendpoint_url = http://profile:6/\n"
				  "s3 =\n  endpoint_url = http://nested-s3:5\n  addressing_style = path\n"
				  "ec2 =\n  endpoint_url = http://nested-ec2:5\n"
				  "[services loc]\nebs =\n  endpoint_url = http://services-ebs:4\n"
				  "s3 =\n  endpoint_url = http://services-s3:4\n";
	assert_int_equal(write(fd, ini, sizeof ini - 1), (ssize_t)(sizeof ini - 1));
	close(fd);
	struct dv_aws_config cfg = {.profile = "p", .region = "eu-west-1", .config_path = path};
	unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	setenv("AWS_ENDPOINT_URL", "http://all:3", 1);
	setenv("AWS_ENDPOINT_URL_S3", "http://env-s3:2", 1);
	setenv("AWS_ENDPOINT_URL_EBS", "http://env-ebs:2", 1);
	setenv("AWS_ENDPOINT_URL_EC2", "http://env-ec2:2", 1);
	setenv("AWS_ENDPOINT_URL_ELASTIC_BEANSTALK", "http://env-eb:2", 1);

	/* 1. the option */
	assert_endpoint(&cfg, "s3", "http://opt:1//", "http://opt:1", true);
	assert_endpoint(&cfg, "ebs", "https://opt:1/p", "https://opt:1/p", true);
	/* 2. AWS_ENDPOINT_URL_<ID>: upper case, spaces as underscores */
	assert_endpoint(&cfg, "s3", NULL, "http://env-s3:2", true);
	assert_endpoint(&cfg, "ebs", NULL, "http://env-ebs:2", true);
	assert_endpoint(&cfg, "ec2", NULL, "http://env-ec2:2", true);
	assert_endpoint(&cfg, "elastic beanstalk", NULL, "http://env-eb:2", true);
	/* 3. AWS_ENDPOINT_URL */
	unsetenv("AWS_ENDPOINT_URL_S3");
	unsetenv("AWS_ENDPOINT_URL_EBS");
	unsetenv("AWS_ENDPOINT_URL_EC2");
	unsetenv("AWS_ENDPOINT_URL_ELASTIC_BEANSTALK");
	assert_endpoint(&cfg, "s3", NULL, "http://all:3", true);
	assert_endpoint(&cfg, "ec2", NULL, "http://all:3", true);
	/* the option still wins, the ignore switch leaves only it and the default */
	assert_endpoint(&cfg, "ec2", "http://opt:1", "http://opt:1", true);
	setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE", 1);
	assert_endpoint(&cfg, "ec2", NULL, "https://ec2.eu-west-1.amazonaws.com", false);
	assert_endpoint(&cfg, "s3", "http://opt:1", "http://opt:1", true);
	unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	unsetenv("AWS_ENDPOINT_URL");
	/* 4. the services section, 5. the profile's nested block, 6. its endpoint_url */
	assert_endpoint(&cfg, "ebs", NULL, "http://services-ebs:4", true);
	assert_endpoint(&cfg, "s3", NULL, "http://services-s3:4", true);
	assert_endpoint(&cfg, "ec2", NULL, "http://nested-ec2:5", true);
	assert_endpoint(&cfg, "sts", NULL, "http://profile:6", true);
	/* 7. the default, also for a profile without a config file */
	cfg.profile = "other";
	assert_endpoint(&cfg, "ebs", NULL, "https://ebs.eu-west-1.amazonaws.com", false);
	cfg.config_path = "/nonexistent/config";
	cfg.region = "cn-north-1";
	assert_endpoint(&cfg, "ec2", NULL, "https://ec2.cn-north-1.amazonaws.com.cn", false);

	/* a URL without http(s):// names the service and is a usage error */
	char *url = (char *)"x";
	struct dv_err err;
	assert_int_equal(dv_aws_endpoint_resolve(&cfg, "ebs", "ftp://h", &url, NULL, &err), -DV_E_USAGE);
	assert_null(url);
	assert_string_equal(err.msg, "EBS endpoint 'ftp://h' must start with http:// or https://");
	setenv("AWS_ENDPOINT_URL_S3", "minio:9000/", 1);
	assert_int_equal(dv_aws_endpoint_resolve(&cfg, "s3", NULL, &url, NULL, &err), -DV_E_USAGE);
	assert_string_equal(err.msg, "S3 endpoint 'minio:9000' must start with http:// or https://");
	unsetenv("AWS_ENDPOINT_URL_S3");
	/* a malformed config file names the file */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[profile p\n", 11), 11);
	close(fd);
	cfg.config_path = path;
	assert_int_equal(dv_aws_endpoint_resolve(&cfg, "ec2", NULL, &url, NULL, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, path));
	unlink(path);
}

static void test_imds_creds(void **state)
{
	(void)state;
	struct dv_aws_creds c;
	struct dv_err e;
	memset(&c, 0, sizeof c);
	const char *doc = "{\n  \"Code\" : \"Success\",\n  \"Type\" : \"AWS-HMAC\",\n"
			  "  \"AccessKeyId\" : \"ASIAIOSFODNN7EXAMPLE\",\n"
			  "  \"SecretAccessKey\" : \"wJalr/EXAMPLEKEY\",\n"
			  "  \"Token\" : \"tok\",\n  \"Expiration\" : \"2026-11-26T00:00:00Z\"\n}";
	assert_int_equal(dv_aws_parse_imds_creds(doc, strlen(doc), &c, &e), 0);
	assert_string_equal(c.access_key_id, "ASIAIOSFODNN7EXAMPLE");
	assert_string_equal(c.secret_access_key, "wJalr/EXAMPLEKEY");
	assert_string_equal(c.session_token, "tok");
	assert_string_equal(c.source, "imds");
	assert_int_equal(c.expiration, 1795651200); /* 2026-11-26T00:00:00Z */
	dv_aws_creds_release(&c);

	const char *bad[] = {"",
			     "not json",
			     "[]",
			     "{\"AccessKeyId\": \"A\"}",
			     "{\"AccessKeyId\": \"A\", \"SecretAccessKey\": 1}",
			     "{\"AccessKeyId\": \"\", \"SecretAccessKey\": \"s\"}"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		memset(&c, 0, sizeof c);
		assert_int_equal(dv_aws_parse_imds_creds(bad[i], strlen(bad[i]), &c, &e), -DV_E_REMOTE);
		assert_string_equal(e.msg, "instance metadata: malformed credentials document");
		assert_null(c.access_key_id);
		assert_null(c.secret_access_key);
	}
	/* no Token, unparseable Expiration: static keys that do not expire */
	const char *plain = "{\"AccessKeyId\": \"A\", \"SecretAccessKey\": \"s\", \"Expiration\": \"soon\"}";
	memset(&c, 0, sizeof c);
	assert_int_equal(dv_aws_parse_imds_creds(plain, strlen(plain), &c, &e), 0);
	assert_null(c.session_token);
	assert_int_equal(c.expiration, 0);
	dv_aws_creds_release(&c);
}

/* The IMDSv2 token goes into a header and the role name into a URL path:
 * both are checked before use. */
static void test_imds_token_role(void **state)
{
	(void)state;
	struct dv_err e;
	const char *tok = "AQAEAFh1c2VyLWRhdGEtdG9rZW4tdmFsdWU=";
	assert_int_equal(dv_aws_imds_check_token(tok, strlen(tok), &e), 0);
	char big[DV_IMDS_TOKEN_MAX + 1];
	memset(big, 'A', sizeof big);
	assert_int_equal(dv_aws_imds_check_token(big, DV_IMDS_TOKEN_MAX, &e), 0);
	const struct {
		const char *t;
		size_t n;
	} badtok[] = {
		{"tok\r\nX-Evil: 1", 16}, {"tok\n", 4}, {"tok\r", 4}, {"to k", 4}, {"tok\t", 4},
		{"tok\0x", 5},          {"tok\x7f", 4}, {"t\xc3\xa9", 3}, {"", 0},
		{big, DV_IMDS_TOKEN_MAX + 1},
	};
	for (size_t i = 0; i < sizeof badtok / sizeof *badtok; i++) {
		dv_err_clear(&e);
		assert_int_equal(dv_aws_imds_check_token(badtok[i].t, badtok[i].n, &e), -DV_E_REMOTE);
		assert_int_equal(e.code, DV_E_REMOTE);
		assert_string_equal(e.msg, "instance metadata (IMDS): the session token is not 1 to 1024 printable "
					   "characters (control characters or line breaks?)");
	}

	char *role = NULL;
	const char *good[][2] = {
		{"diskvault-role\n", "diskvault-role"},
		{"r+=,.@_-9\r\nsecond-role\n", "r+=,.@_-9"},
		{"x", "x"},
		{"...", "..."},
		{"a234567890123456789012345678901234567890123456789012345678901234",
		 "a234567890123456789012345678901234567890123456789012345678901234"},
	};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		assert_int_equal(dv_aws_imds_role(good[i][0], strlen(good[i][0]), &role, &e), 0);
		assert_string_equal(role, good[i][1]);
		free(role);
	}
	const char *badrole[] = {
		"a/../b",  "/../",       "../admin", "..",     ".",         "my role", " role", "role\t",
		"",        "\nrole",     "r%2F",     "r?x=1",  "r#frag",    "r\x01",
		"a2345678901234567890123456789012345678901234567890123456789012345", /* 65 */
	};
	for (size_t i = 0; i < sizeof badrole / sizeof *badrole; i++) {
		role = (char *)"untouched";
		dv_err_clear(&e);
		assert_int_equal(dv_aws_imds_role(badrole[i], strlen(badrole[i]), &role, &e), -DV_E_REMOTE);
		assert_null(role);
		assert_string_equal(e.msg, "instance metadata (IMDS): the role name under iam/security-credentials/ is "
					   "not a valid IAM role name (1 to 64 of A-Z a-z 0-9 + = , . @ _ -)");
	}
	/* the length bounds the first line, not a NUL */
	assert_int_equal(dv_aws_imds_role("ab\0cd", 5, &role, &e), -DV_E_REMOTE);
	assert_int_equal(dv_aws_imds_role("abcd", 2, &role, &e), 0);
	assert_string_equal(role, "ab");
	free(role);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suite),        cmocka_unit_test(test_wire),
		cmocka_unit_test(test_s3_rules),     cmocka_unit_test(test_xml_error),
		cmocka_unit_test(test_xml_hostile),  cmocka_unit_test(test_xml_list),
		cmocka_unit_test(test_xml_multipart), cmocka_unit_test(test_xml_delete),
		cmocka_unit_test(test_ini),           cmocka_unit_test(test_config),
		cmocka_unit_test(test_endpoint_precedence),
		cmocka_unit_test(test_imds_creds),    cmocka_unit_test(test_imds_token_role),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
