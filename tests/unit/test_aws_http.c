/* test_aws_http.c - the HTTP layer the S3, EBS and EC2 clients share
 * (src/aws/http.c): backoff bounds for both policies in use, the retry
 * bounds and their "giving up" prefix, the common error line, and the
 * retry loop against a closed loopback port (a transport failure that is
 * retried, counted and reported with the endpoint). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aws/http_internal.h"

static void test_backoff(void **state)
{
	(void)state;
	/* S3 and EC2: full jitter in [0, min(20, 0.25 * 2^n)) */
	struct dv_http_client s3 = {.backoff_base = 0.25};
	/* EBS: at least a tenth of the ceiling, 0.2 * 2^n */
	struct dv_http_client ebs = {.backoff_base = 0.2, .backoff_floor = 0.1};
	for (unsigned a = 1; a <= 40; a++) {
		double c3 = 0.25 * (double)(1u << (a > 16 ? 16 : a)), ce = 0.2 * (double)(1u << (a > 16 ? 16 : a));
		c3 = c3 > 20 ? 20 : c3;
		ce = ce > 20 ? 20 : ce;
		double lo = 1e9, hi = 0;
		for (int i = 0; i < 200; i++) {
			double p = dv_http_backoff(&s3, a);
			assert_true(p >= 0 && p < c3);
			lo = p < lo ? p : lo;
			hi = p > hi ? p : hi;
			p = dv_http_backoff(&ebs, a);
			assert_true(p >= 0.1 * ce && p < ce);
		}
		/* jitter: 200 draws spread over most of the range */
		assert_true(lo < 0.2 * c3 && hi > 0.8 * c3);
	}
}

static void test_next_attempt(void **state)
{
	(void)state;
	uint64_t retries = 0;
	struct dv_http_client cl = {.backoff_base = 0.001, .max_attempts = 3, .max_retry_seconds = 60,
				    .retries = &retries};
	struct dv_err e;
	double pause, now = dv_now();
	dv_error(&e, DV_E_REMOTE, "X failed");
	assert_true(dv_http_next_attempt(&cl, 1, now, true, &pause, &e));
	assert_true(dv_http_next_attempt(&cl, 2, now, true, &pause, &e));
	assert_true(pause >= 0 && pause < 0.004);
	assert_int_equal(retries, 2);
	assert_string_equal(e.msg, "X failed");
	assert_false(dv_http_next_attempt(&cl, 3, now, false, &pause, &e));
	assert_string_equal(e.msg, "giving up after 3 attempts: X failed");
	assert_int_equal(retries, 2);

	/* the time bound: a pause that would end past it is not taken */
	cl.max_attempts = 100;
	cl.max_retry_seconds = 10;
	dv_error(&e, DV_E_REMOTE, "Y failed");
	assert_false(dv_http_next_attempt(&cl, 5, now - 10, true, &pause, &e));
	assert_string_equal(e.msg, "giving up after 5 attempts in 10 s: Y failed");
	assert_int_equal(e.code, DV_E_REMOTE);
}

static void test_error_line(void **state)
{
	(void)state;
	struct dv_err e;
	dv_http_error(&e, DV_E_REMOTE, "S3 GET s3://b/k", 403, "AccessDenied", "Access Denied", "RID1");
	assert_string_equal(e.msg, "S3 GET s3://b/k: HTTP 403 AccessDenied: Access Denied (request id RID1)");
	assert_int_equal(e.code, DV_E_REMOTE);
	dv_http_error(&e, DV_E_NOT_FOUND, "EC2 DescribeImages", 400, "InvalidAMIID.NotFound", NULL, NULL);
	assert_string_equal(e.msg, "EC2 DescribeImages: HTTP 400 InvalidAMIID.NotFound");
	assert_int_equal(e.code, DV_E_NOT_FOUND);
	dv_http_error(&e, DV_E_REMOTE, "S3 HEAD s3://b/k", 500, "", "", "RID2");
	assert_string_equal(e.msg, "S3 HEAD s3://b/k: HTTP 500 (request id RID2)");
}

/* ---- the retry loop on a port nobody listens on ---- */

struct svc {
	struct dv_http_client cl;
	struct dv_aws_creds creds;
	unsigned prepared;
};

static int t_prepare(void *p, CURL *c, struct dv_http_req *rq, struct dv_err *err)
{
	struct svc *s = p;
	s->prepared++;
	rq->connect_timeout = 2;
	rq->timeout = 5;
	struct dv_http_signer sg = {.creds = &s->creds, .region = "us-east-1", .time = 1440938160};
	return dv_http_setup(&s->cl, c, rq, &sg, err);
}

static enum dv_http_verdict t_classify(void *p, CURL *c, struct dv_http_req *rq, CURLcode cc, struct dv_err *err)
{
	struct svc *s = p;
	enum dv_http_verdict v = dv_http_finish(&s->cl, c, rq, cc, "TEST Op thing", DV_E_REMOTE, err);
	assert_int_not_equal(v, DV_HTTP_OK); /* nothing answers */
	return v;
}

static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	close(fd); /* bound, never listened: connections are refused */
	return ntohs(a.sin_port);
}

static void test_perform_refused(void **state)
{
	(void)state;
	uint64_t requests = 0, retries = 0;
	struct svc s = {.creds = {.access_key_id = (char *)"AKIDEXAMPLE",
				  .secret_access_key = (char *)"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}};
	s.cl = (struct dv_http_client){.backoff_base = 0.001, .max_attempts = 4, .max_retry_seconds = 60,
				       .requests = &requests, .retries = &retries, .prepare = t_prepare,
				       .classify = t_classify, .svc = &s};
	char origin[64], host[32];
	int port = closed_port();
	snprintf(host, sizeof host, "127.0.0.1:%d", port);
	snprintf(origin, sizeof origin, "http://%s", host);
	dv_http_global_init();
	CURL *c = dv_http_easy();
	struct dv_http_req rq;
	dv_http_req_init(&rq, "GET", origin, host);
	rq.service = "s3";
	dv_buf_addf(&rq.path, "/bucket/key");
	struct dv_err e;
	assert_int_equal(dv_http_perform(&s.cl, c, &rq, &e), -DV_E_REMOTE);
	assert_int_equal(s.prepared, 4);
	assert_int_equal(requests, 4);
	assert_int_equal(retries, 3);
	char want[160];
	snprintf(want, sizeof want, "giving up after 4 attempts in 0 s: TEST Op thing on %s: ", origin);
	assert_memory_equal(e.msg, want, strlen(want));
	assert_null(rq.hl); /* headers of the last attempt were released */
	dv_http_req_release(&rq);
	curl_easy_cleanup(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_next_attempt),
		cmocka_unit_test(test_error_line),
		cmocka_unit_test(test_perform_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
