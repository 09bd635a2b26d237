/*
 * libFuzzer targets for every parser of what AWS (or something pretending
 * to be it) sends back. One source, one binary per target: DV_FUZZ_TARGET
 * selects the area at compile time (tests/CMakeLists.txt builds fuzz_s3_xml,
 * fuzz_ec2_xml, fuzz_ebs_json and fuzz_aws_ini). Each target feeds the same
 * input to every parser of its area (the seeds of one call exercise the
 * others' error paths) and aborts when a parser that said "ok" hands back
 * something its contract rules out.
 */
#include <stdlib.h>
#include <string.h>

#include "aws/aws.h"
#include "aws/aws_internal.h"
#include "aws/ebs.h"
#include "aws/ec2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) ((cond) ? (void)0 : abort())

#if DV_FUZZ_TARGET == 1
/* S3 XML answers: ListObjectsV2, InitiateMultipartUpload, ListParts, DeleteObjects,
 * ListMultipartUploads, CompleteMultipartUpload, Error. */
static void fuzz(const char *x, size_t n)
{
	struct dv_err err;

	struct dv_s3_error e;
	if (dv_s3_parse_error(x, n, &e, &err) == 0) {
		CHECK(e.code);
		dv_s3_error_release(&e);
	}

	struct dv_s3_list l;
	if (dv_s3_parse_list_objects(x, n, &l, &err) == 0) {
		for (size_t i = 0; i < l.n; i++)
			CHECK(l.objects[i].key);
		/* the listing loop relies on it to terminate */
		CHECK(!l.truncated || (l.next_token && *l.next_token));
		dv_s3_list_release(&l);
	}

	char *id;
	if (dv_s3_parse_initiate(x, n, &id, &err) == 0) {
		CHECK(id && *id);
		free(id);
	} else {
		CHECK(!id);
	}

	struct dv_s3_parts p;
	if (dv_s3_parse_list_parts(x, n, &p, &err) == 0) {
		CHECK(p.n <= 10000);
		for (size_t i = 0; i < p.n; i++)
			CHECK(p.parts[i].number >= 1 && p.parts[i].number <= 10000 && p.parts[i].etag);
		CHECK(!p.truncated || p.next_marker > 0);
		dv_s3_parts_release(&p);
	}

	struct dv_s3_uploads u;
	if (dv_s3_parse_list_uploads(x, n, &u, &err) == 0) {
		for (size_t i = 0; i < u.n; i++)
			CHECK(u.uploads[i].key && u.uploads[i].upload_id);
		dv_s3_uploads_release(&u);
	}

	char *etag;
	bool is_error;
	if (dv_s3_parse_complete(x, n, &etag, &is_error, &e, &err) == 0) {
		/* exactly one of: an ETag, or an <Error> with a code */
		CHECK(is_error ? !etag && e.code : etag && !e.code);
		free(etag);
		dv_s3_error_release(&e);
	}

	struct dv_s3_delete_result d;
	if (dv_s3_parse_delete_result(x, n, &d, &err) == 0) {
		/* every refused key is named with its code */
		for (size_t i = 0; i < d.n_failures; i++)
			CHECK(d.failures[i].key && d.failures[i].code);
		CHECK(!d.is_error || d.e.code);
		dv_s3_delete_result_release(&d);
	}
}

#elif DV_FUZZ_TARGET == 2
/* EC2 query-API XML answers: error shapes, RegisterImage, <return>,
 * Run/Describe/TerminateInstances, DescribeImages, DescribeSnapshots (and
 * the snapshot status the EBS import polls), DescribeInstanceTypes. */
static void fuzz(const char *x, size_t n)
{
	struct dv_err err;

	struct dv_ec2_error e;
	if (dv_ec2_parse_error(x, n, &e, &err) == 0) {
		CHECK(e.code);
		dv_ec2_error_release(&e);
	}

	char *id = NULL;
	if (dv_ec2_parse_register_image(x, n, &id, &err) == 0)
		CHECK(id && *id);
	else
		CHECK(!id);
	free(id);
	(void)dv_ec2_parse_return(x, n, "CreateTags", &err);

	struct dv_ec2_instances in;
	if (dv_ec2_parse_instances(x, n, &in, &err) == 0) {
		for (size_t i = 0; i < in.n; i++)
			CHECK(in.v[i].id);
		dv_ec2_instances_release(&in);
	}

	struct dv_ec2_images im;
	if (dv_ec2_parse_images(x, n, &im, &err) == 0) {
		for (size_t i = 0; i < im.n; i++) {
			CHECK(im.v[i].id && im.v[i].nsnapshots <= 64);
			for (size_t k = 0; k < im.v[i].nsnapshots; k++)
				CHECK(im.v[i].snapshots[k] && *im.v[i].snapshots[k]);
		}
		dv_ec2_images_release(&im);
	}

	struct dv_ec2_snapshots sn;
	char st[16];
	if (dv_ec2_parse_snapshots(x, n, &sn, &err) == 0) {
		for (size_t i = 0; i < sn.n; i++)
			CHECK(sn.v[i].id && sn.v[i].volume_size_gib <= (1u << 20));
		/* the status poll must see what the listing sees */
		if (sn.n) {
			CHECK(dv_ec2_parse_snapshot_status(x, n, sn.v[0].id, st, sizeof st, &err) == 0);
			CHECK(!strncmp(st, sn.v[0].state ? sn.v[0].state : "", sizeof st - 1));
		}
		dv_ec2_snapshots_release(&sn);
	} else {
		CHECK(dv_ec2_parse_snapshot_status(x, n, "snap-0", st, sizeof st, &err) == -DV_E_REMOTE);
	}

	struct dv_ec2_type_infos ti;
	if (dv_ec2_parse_instance_types(x, n, &ti, &err) == 0) {
		for (size_t i = 0; i < ti.n; i++)
			CHECK(ti.v[i].type && ti.v[i].burstable >= -1 && ti.v[i].burstable <= 1 &&
			      memchr(ti.v[i].architectures, 0, sizeof ti.v[i].architectures) &&
			      memchr(ti.v[i].boot_modes, 0, sizeof ti.v[i].boot_modes));
		dv_ec2_type_infos_release(&ti);
	}
}

#elif DV_FUZZ_TARGET == 3
/* EBS direct JSON answers (StartSnapshot, ListSnapshotBlocks /
 * ListChangedBlocks, CompleteSnapshot, error bodies) and the instance
 * metadata credentials document. */
static int on_block(uint64_t index, const char *token, void *ctx)
{
	(void)ctx;
	CHECK(index <= (uint64_t)INT64_MAX && token && strlen(token) <= 256);
	return 0;
}

static bool terminated(const char *s, size_t cap) { return memchr(s, 0, cap) != NULL; }

static void fuzz(const char *x, size_t n)
{
	struct dv_err err;

	struct dv_ebs_snapshot_info si;
	if (dv_ebs_parse_snapshot(x, n, &si, &err) == 0)
		CHECK(si.id[0] && terminated(si.id, sizeof si.id) && terminated(si.status, sizeof si.status) &&
		      terminated(si.parent, sizeof si.parent) && si.block_size == DV_EBS_BLOCK_SIZE);

	struct dv_ebs_error ee;
	dv_ebs_parse_error(NULL, x, n, &ee);
	CHECK(terminated(ee.type, sizeof ee.type) && terminated(ee.message, sizeof ee.message) &&
	      terminated(ee.reason, sizeof ee.reason) && !strchr(ee.type, ':'));
	for (const char *p = ee.message; *p; p++)
		CHECK((unsigned char)*p >= 0x20); /* no control characters reach a terminal */
	dv_ebs_parse_error("ThrottlingException:http://internal.amazon.com/", x, n, &ee);
	CHECK(!strcmp(ee.type, "ThrottlingException"));

	char *next = NULL;
	if (dv_ebs_parse_block_list(x, n, on_block, NULL, &next, &err) == 0)
		CHECK(!next || (*next && strlen(next) <= 256));
	else
		CHECK(!next);
	free(next);

	char status[16];
	dv_ebs_parse_complete(x, n, status, sizeof status);
	CHECK(status[0] && terminated(status, sizeof status));

	struct dv_aws_creds c;
	memset(&c, 0, sizeof c);
	if (dv_aws_parse_imds_creds(x, n, &c, &err) == 0) {
		CHECK(c.access_key_id && *c.access_key_id && c.secret_access_key && *c.secret_access_key);
		CHECK(!c.session_token || *c.session_token);
		CHECK(!strcmp(c.source, "imds"));
	} else {
		CHECK(!c.access_key_id && !c.secret_access_key && !c.session_token);
	}
	dv_aws_creds_release(&c);

	/* IMDS session token (goes into a header) and role listing (goes
	 * into a URL path): what is accepted cannot split either */
	if (dv_aws_imds_check_token(x, n, &err) == 0) {
		CHECK(n >= 1 && n <= DV_IMDS_TOKEN_MAX);
		for (size_t i = 0; i < n; i++)
			CHECK(x[i] > 0x20 && x[i] < 0x7f);
	} else {
		CHECK(strstr(err.msg, "IMDS"));
	}
	char *role = NULL;
	if (dv_aws_imds_role(x, n, &role, &err) == 0) {
		size_t rl = strlen(role);
		CHECK(rl >= 1 && rl <= 64 && rl <= n && !memcmp(role, x, rl));
		CHECK(strcmp(role, ".") && strcmp(role, ".."));
		CHECK(strspn(role, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=,.@_-") == rl);
		free(role);
	} else {
		CHECK(!role && strstr(err.msg, "IMDS"));
	}
}

#elif DV_FUZZ_TARGET == 4
/* ~/.aws/config and ~/.aws/credentials (the AWS INI dialect). */
static void fuzz(const char *x, size_t n)
{
	struct dv_err err;
	struct dv_aws_ini *ini = NULL;
	if (dv_aws_ini_parse(x, n, &ini, &err) < 0) {
		CHECK(!ini);
		return;
	}
	CHECK(ini);
	static const char *const sections[] = {"default", "profile dv", "dv", "services dv"};
	static const char *const keys[] = {"region", "aws_access_key_id", "aws_secret_access_key", "endpoint_url",
					   "s3.endpoint_url", "ebs.endpoint_url"};
	for (size_t s = 0; s < DV_ARRAY_SIZE(sections); s++) {
		bool has = dv_aws_ini_has_section(ini, sections[s]);
		for (size_t k = 0; k < DV_ARRAY_SIZE(keys); k++) {
			const char *v = dv_aws_ini_get(ini, sections[s], keys[k]);
			/* a value belongs to a section; values are trimmed */
			CHECK(!v || has);
			CHECK(!v || !*v || (v[0] != ' ' && v[0] != '\t' && v[strlen(v) - 1] != ' '));
		}
	}
	dv_aws_ini_free(ini);
}

#else
#error "DV_FUZZ_TARGET must select an area"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz((const char *)data, size);
	return 0;
}
