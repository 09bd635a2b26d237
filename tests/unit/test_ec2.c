/*
 * EC2 query client: request encoding and signing against the AWS CLI's
 * captured requests (tests/vectors/aws-wire/ec2-*.txt), the request
 * builders launch uses, the response parsers on real and hostile XML, and
 * endpoint resolution.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/ec2.h"

#define VEC DV_SOURCE_DIR "/tests/vectors/aws-wire/"

static char *slurp(const char *file)
{
	char *path = dv_asprintf("%s%s", VEC, file);
	struct dv_buf b = DV_BUF_INIT;
	struct dv_err err;
	if (dv_read_file(path, 1 << 20, &b, &err) < 0) {
		print_error("%s\n", err.msg);
		fail();
	}
	free(path);
	return (char *)b.data;
}

static char *between(const char *text, const char *start, const char *end)
{
	const char *a = strstr(text, start);
	assert_non_null(a);
	a += strlen(start);
	const char *b = strstr(a, end);
	assert_non_null(b);
	return dv_asprintf("%.*s", (int)(b - a), a);
}

/* Decodes "k=v&k=v" into a form (in order). */
static void decode_form(const char *body, struct dv_ec2_form *f)
{
	memset(f, 0, sizeof *f);
	while (*body) {
		size_t n = strcspn(body, "&");
		const char *eq = memchr(body, '=', n);
		assert_non_null(eq);
		struct dv_buf k = DV_BUF_INIT, v = DV_BUF_INIT;
		dv_aws_uri_decode(&k, body, (size_t)(eq - body));
		dv_aws_uri_decode(&v, eq + 1, n - (size_t)(eq - body) - 1);
		dv_ec2_form_add(f, k.data ? (char *)k.data : "", v.data ? (char *)v.data : "");
		dv_buf_release(&k);
		dv_buf_release(&v);
		body += n;
		if (*body)
			body++;
	}
}

static int64_t amz_time(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	assert_non_null(strptime(s, "%Y%m%dT%H%M%SZ", &tm));
	return (int64_t)timegm(&tm);
}

/* Section 2 of a vector: sign body for host 127.0.0.1:9 at the captured
 * time and compare with botocore's canonical request, string to sign and
 * signature. */
static void check_signature(const char *text, const char *body)
{
	char *creq = between(text, "### CanonicalRequest\n", "\n\n### StringToSign");
	char *sts = between(text, "### StringToSign\n", "\n\n### Signature");
	char *sig = between(text, "### Signature (secret S3RVER)\n", "\n");
	char *date = between(text, "x-amz-date:", "\n");
	struct dv_aws_creds creds = {.access_key_id = "S3RVER", .secret_access_key = "S3RVER"};
	struct dv_sigv4_result res;
	struct dv_err err;
	assert_int_equal(dv_ec2_sign("127.0.0.1:9", body, &creds, "us-east-1", amz_time(date), &res, &err), 0);
	assert_string_equal((char *)res.canonical_request.data, creq);
	assert_string_equal((char *)res.string_to_sign.data, sts);
	assert_string_equal(res.signature, sig);
	assert_non_null(strstr((char *)res.authorization.data, "SignedHeaders=content-type;host;x-amz-date,"));
	dv_sigv4_result_release(&res);
	free(creq);
	free(sts);
	free(sig);
	free(date);
}

/* Section 1: the exact body the CLI sent decodes and re-encodes to itself. */
static char *wire_body(const char *text)
{
	return between(text, "Content-Length: ", "\n\n# --- canned");
}

static void roundtrip_body(const char *text)
{
	char *cl = wire_body(text);
	const char *body = strchr(cl, '\n') + 2;
	assert_int_equal((size_t)atoi(cl), strlen(body));
	struct dv_ec2_form f;
	decode_form(body, &f);
	struct dv_buf out = DV_BUF_INIT;
	dv_ec2_form_encode(&f, &out);
	assert_string_equal((char *)out.data, body);
	dv_buf_release(&out);
	dv_ec2_form_release(&f);
	free(cl);
}

static void test_register_image_vector(void **state)
{
	(void)state;
	char *text = slurp("ec2-RegisterImage.txt");
	roundtrip_body(text);
	/* the builder produces the CLI's exact bytes for the same request */
	struct dv_ec2_image_spec s = {.name = "img-test",
				      .architecture = "x86_64",
				      .root_device = "/dev/xvda",
				      .snapshot_id = "snap-0123456789abcdef0",
				      .volume_type = "gp3",
				      .delete_on_termination = true,
				      .ena = true,
				      .boot_mode = "uefi-preferred"};
	struct dv_ec2_form f;
	dv_ec2_form_register_image(&f, &s);
	struct dv_buf body = DV_BUF_INIT;
	dv_ec2_form_encode(&f, &body);
	char *cl = wire_body(text);
	assert_string_equal((char *)body.data, strchr(cl, '\n') + 2);
	check_signature(text, (char *)body.data);
	/* and its answer */
	char *xml = between(text, "charset=UTF-8\n", "\n");
	char *ami = NULL;
	struct dv_err err;
	assert_int_equal(dv_ec2_parse_register_image(xml, strlen(xml), &ami, &err), 0);
	assert_string_equal(ami, "ami-0fedcba9876543210");
	free(ami);
	free(xml);
	free(cl);
	dv_buf_release(&body);
	dv_ec2_form_release(&f);
	free(text);
}

static void test_run_instances_vector(void **state)
{
	(void)state;
	char *text = slurp("ec2-RunInstances.txt");
	roundtrip_body(text);
	/* section 2's parameters in its order: encoding and signature */
	struct dv_ec2_form f;
	dv_ec2_form_init(&f, "RunInstances");
	const char *kv[][2] = {{"ImageId", "ami-0123456789abcdef0"},
			       {"InstanceType", "t3.micro"},
			       {"KeyName", "mykey"},
			       {"SubnetId", "subnet-0123"},
			       {"TagSpecification.1.ResourceType", "instance"},
			       {"TagSpecification.1.Tag.1.Key", "Name"},
			       {"TagSpecification.1.Tag.1.Value", "restored"},
			       {"MinCount", "1"},
			       {"MaxCount", "1"},
			       {"ClientToken", "90b6a583-2fcc-4279-8ac9-d9343e47c094"}};
	for (size_t i = 0; i < DV_ARRAY_SIZE(kv); i++)
		dv_ec2_form_add(&f, kv[i][0], kv[i][1]);
	struct dv_buf body = DV_BUF_INIT;
	dv_ec2_form_encode(&f, &body);
	assert_int_equal(body.len, 311); /* Content-Length of the prepared request */
	check_signature(text, (char *)body.data);
	dv_ec2_form_release(&f);

	/* launch's builder: every parameter of the CLI's request, plus IMDSv2
	 * and the volume tags */
	const char *sgs[2] = {"sg-1", "sg-2"};
	struct dv_ec2_tag tags[2] = {{"Name", "restored"}, {"diskvault:created-by", "diskvault"}};
	struct dv_ec2_run_spec rs = {.image_id = "ami-0123456789abcdef0",
				     .instance_type = "t3.micro",
				     .key_name = "mykey",
				     .subnet_id = "subnet-0123",
				     .security_groups = sgs,
				     .nsecurity_groups = 2,
				     .tags = tags,
				     .ntags = 2,
				     .client_token = "90b6a583-2fcc-4279-8ac9-d9343e47c094",
				     .imdsv2_required = true};
	dv_ec2_form_run_instances(&f, &rs);
	for (size_t i = 0; i < DV_ARRAY_SIZE(kv); i++)
		assert_string_equal(dv_ec2_form_get(&f, kv[i][0]), kv[i][1]);
	assert_string_equal(dv_ec2_form_get(&f, "MetadataOptions.HttpTokens"), "required");
	assert_string_equal(dv_ec2_form_get(&f, "SecurityGroupId.2"), "sg-2");
	assert_string_equal(dv_ec2_form_get(&f, "TagSpecification.2.ResourceType"), "volume");
	assert_string_equal(dv_ec2_form_get(&f, "TagSpecification.2.Tag.2.Key"), "diskvault:created-by");
	assert_string_equal(dv_ec2_form_get(&f, "TagSpecification.1.Tag.2.Value"), "diskvault");
	dv_ec2_form_release(&f);

	/* the answer */
	char *xml = between(text, "charset=UTF-8\n", "\n");
	struct dv_ec2_instances l;
	struct dv_err err;
	assert_int_equal(dv_ec2_parse_instances(xml, strlen(xml), &l, &err), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].id, "i-0123456789abcdef0");
	assert_string_equal(l.v[0].state, "pending");
	assert_string_equal(l.v[0].type, "t3.micro");
	assert_null(l.v[0].public_ip);
	dv_ec2_instances_release(&l);
	free(xml);
	dv_buf_release(&body);
	free(text);
}

static void test_describe_instance_types_vector(void **state)
{
	(void)state;
	char *text = slurp("ec2-DescribeInstanceTypes.txt");
	roundtrip_body(text);
	struct dv_ec2_form f;
	dv_ec2_form_init(&f, "DescribeInstanceTypes");
	const char *types[2] = {"t3.micro", "m5.large"};
	dv_ec2_form_add_list(&f, "InstanceType", types, 2);
	const char *arch[1] = {"x86_64"};
	struct dv_ec2_filter flt = {"processor-info.supported-architecture", arch, 1};
	dv_ec2_form_add_filters(&f, &flt, 1);
	struct dv_buf body = DV_BUF_INIT;
	dv_ec2_form_encode(&f, &body);
	assert_int_equal(body.len, 171);
	check_signature(text, (char *)body.data);
	/* a second filter is numbered after the first */
	dv_ec2_form_add_filters(&f, &flt, 1);
	assert_non_null(dv_ec2_form_get(&f, "Filter.2.Value.1"));
	dv_ec2_form_release(&f);
	dv_buf_release(&body);

	char *xml = between(text, "charset=UTF-8\n", "\n");
	struct dv_ec2_type_infos ti;
	struct dv_err err;
	assert_int_equal(dv_ec2_parse_instance_types(xml, strlen(xml), &ti, &err), 0);
	assert_int_equal(ti.n, 1);
	assert_string_equal(ti.v[0].type, "t3.micro");
	assert_string_equal(ti.v[0].architectures, "x86_64");
	assert_int_equal(ti.v[0].vcpus, 2);
	assert_int_equal(ti.v[0].memory_mib, 1024);
	assert_int_equal(ti.v[0].burstable, -1);
	assert_string_equal(ti.v[0].ena, "required");
	assert_string_equal(ti.v[0].nvme, "required");
	assert_string_equal(ti.v[0].boot_modes, "legacy-bios;uefi");
	dv_ec2_type_infos_release(&ti);
	free(xml);
	free(text);
}

static void test_encoding_and_token(void **state)
{
	(void)state;
	struct dv_ec2_form f;
	dv_ec2_form_init(&f, "CreateTags");
	dv_ec2_form_add(&f, "Tag.1.Value", "a b/c+d=e&f~g\xc3\xa9*");
	struct dv_buf out = DV_BUF_INIT;
	dv_ec2_form_encode(&f, &out);
	assert_string_equal((char *)out.data,
			    "Action=CreateTags&Version=2016-11-15&Tag.1.Value=a%20b%2Fc%2Bd%3De%26f~g%C3%A9%2A");
	dv_buf_release(&out);
	dv_ec2_form_release(&f);
	const char *res[2] = {"ami-1", "snap-2"};
	struct dv_ec2_tag tags[1] = {{"k", "v"}};
	dv_ec2_form_create_tags(&f, res, 2, tags, 1);
	assert_string_equal(dv_ec2_form_get(&f, "ResourceId.2"), "snap-2");
	assert_string_equal(dv_ec2_form_get(&f, "Tag.1.Key"), "k");
	dv_ec2_form_release(&f);
	/* a session token is signed */
	struct dv_aws_creds creds = {.access_key_id = "AK", .secret_access_key = "SK", .session_token = "TOK"};
	struct dv_sigv4_result sr;
	struct dv_err err;
	assert_int_equal(dv_ec2_sign("ec2.us-east-1.amazonaws.com", "Action=X", &creds, "us-east-1", 0, &sr, &err), 0);
	assert_non_null(strstr((char *)sr.authorization.data, "content-type;host;x-amz-date;x-amz-security-token"));
	assert_null(strstr((char *)sr.authorization.data, "SK"));
	dv_sigv4_result_release(&sr);
}

static void test_parsers(void **state)
{
	(void)state;
	struct dv_err err;
	static const char e[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>"
				"<Code>InvalidAMIID.NotFound</Code><Message>The image id '[ami-1]' does not exist"
				"</Message></Error></Errors><RequestID>req-1</RequestID></Response>";
	struct dv_ec2_error ee;
	assert_int_equal(dv_ec2_parse_error(e, sizeof e - 1, &ee, &err), 0);
	assert_string_equal(ee.code, "InvalidAMIID.NotFound");
	assert_string_equal(ee.request_id, "req-1");
	assert_non_null(strstr(ee.message, "ami-1"));
	dv_ec2_error_release(&ee);

	static const char di[] =
		"<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId>"
		"<reservationSet><item><reservationId>r-1</reservationId><instancesSet>"
		"<item><instanceId>i-1</instanceId><instanceState><code>16</code><name>running</name></instanceState>"
		"<instanceType>m6i.large</instanceType><privateIpAddress>10.0.0.5</privateIpAddress>"
		"<ipAddress>203.0.113.9</ipAddress><tagSet><item><key>instanceId</key><value>bogus</value></item></tagSet>"
		"<networkInterfaceSet><item><privateIpAddress>10.9.9.9</privateIpAddress></item></networkInterfaceSet>"
		"</item></instancesSet></item><item><instancesSet><item><instanceId>i-2</instanceId>"
		"<instanceState><name>terminated</name></instanceState></item></instancesSet></item></reservationSet>"
		"<nextToken>tok</nextToken></DescribeInstancesResponse>";
	struct dv_ec2_instances l;
	assert_int_equal(dv_ec2_parse_instances(di, sizeof di - 1, &l, &err), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].id, "i-1");
	assert_string_equal(l.v[0].private_ip, "10.0.0.5");
	assert_string_equal(l.v[0].public_ip, "203.0.113.9");
	assert_string_equal(l.v[1].state, "terminated");
	assert_string_equal(l.next_token, "tok");
	dv_ec2_instances_release(&l);

	static const char ti[] = "<TerminateInstancesResponse><instancesSet><item><instanceId>i-1</instanceId>"
				 "<currentState><name>shutting-down</name></currentState><previousState><name>running"
				 "</name></previousState></item></instancesSet></TerminateInstancesResponse>";
	assert_int_equal(dv_ec2_parse_instances(ti, sizeof ti - 1, &l, &err), 0);
	assert_string_equal(l.v[0].state, "shutting-down");
	dv_ec2_instances_release(&l);

	static const char img[] = "<DescribeImagesResponse><imagesSet><item><imageId>ami-1</imageId><name>n</name>"
				  "<imageState>available</imageState><blockDeviceMapping><item><deviceName>/dev/xvda"
				  "</deviceName><ebs><snapshotId>snap-1</snapshotId></ebs></item><item><deviceName>"
				  "/dev/sdb</deviceName><ebs><snapshotId>snap-2</snapshotId></ebs></item>"
				  "</blockDeviceMapping></item></imagesSet></DescribeImagesResponse>";
	struct dv_ec2_images il;
	assert_int_equal(dv_ec2_parse_images(img, sizeof img - 1, &il, &err), 0);
	assert_int_equal(il.n, 1);
	assert_int_equal(il.v[0].nsnapshots, 2);
	assert_string_equal(il.v[0].snapshots[1], "snap-2");
	dv_ec2_images_release(&il);

	static const char sn[] = "<DescribeSnapshotsResponse><snapshotSet><item><snapshotId>snap-1</snapshotId>"
				 "<status>completed</status><volumeSize>8</volumeSize><tagSet>"
				 "<item><key>diskvault:snapshot</key><value>ab12</value></item>"
				 "<item><key>empty</key><value></value></item>"
				 "<item><key>diskvault:disk</key><value>3</value></item></tagSet></item>"
				 "<item><snapshotId>snap-2</snapshotId><volumeSize>1</volumeSize></item></snapshotSet>"
				 "</DescribeSnapshotsResponse>";
	struct dv_ec2_snapshots sl;
	assert_int_equal(dv_ec2_parse_snapshots(sn, sizeof sn - 1, &sl, &err), 0);
	assert_int_equal(sl.n, 2);
	assert_int_equal(sl.v[0].volume_size_gib, 8);
	assert_int_equal(sl.v[0].ntags, 3);
	assert_string_equal(dv_ec2_snapshot_tag(&sl.v[0], "diskvault:snapshot"), "ab12");
	assert_string_equal(dv_ec2_snapshot_tag(&sl.v[0], "diskvault:disk"), "3");
	assert_string_equal(dv_ec2_snapshot_tag(&sl.v[0], "empty"), "");
	assert_null(dv_ec2_snapshot_tag(&sl.v[0], "diskvault:repository"));
	assert_int_equal(sl.v[1].ntags, 0); /* tags do not leak into the next item */
	assert_null(dv_ec2_snapshot_tag(&sl.v[1], "diskvault:disk"));
	dv_ec2_snapshots_release(&sl);

	static const char ret[] = "<DeleteSnapshotResponse><return>true</return></DeleteSnapshotResponse>";
	assert_int_equal(dv_ec2_parse_return(ret, sizeof ret - 1, "DeleteSnapshot", &err), 0);
	static const char retf[] = "<DeleteSnapshotResponse><return>false</return></DeleteSnapshotResponse>";
	assert_int_equal(dv_ec2_parse_return(retf, sizeof retf - 1, "DeleteSnapshot", &err), -DV_E_REMOTE);
	assert_int_equal(dv_ec2_parse_return(ret, sizeof ret - 1, "CreateTags", &err), -DV_E_REMOTE);
}

static void test_hostile(void **state)
{
	(void)state;
	struct dv_err err;
	struct dv_buf deep = DV_BUF_INIT, longtext = DV_BUF_INIT;
	dv_buf_addf(&deep, "<RunInstancesResponse>");
	for (int i = 0; i < 40; i++)
		dv_buf_addf(&deep, "<a>");
	for (int i = 0; i < 40; i++)
		dv_buf_addf(&deep, "</a>");
	dv_buf_addf(&deep, "</RunInstancesResponse>");
	dv_buf_addf(&longtext, "<RegisterImageResponse><imageId>");
	for (int i = 0; i < 70000; i++)
		dv_buf_add(&longtext, "a", 1);
	dv_buf_addf(&longtext, "</imageId></RegisterImageResponse>");
	const char *bad[] = {
		"",
		"<",
		"<RegisterImageResponse><imageId>ami-1</imageId>",                     /* truncated */
		"<!DOCTYPE x [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><RegisterImageResponse>"
		"<imageId>&b;</imageId></RegisterImageResponse>",                        /* entity expansion */
		"<?xml version=\"1.0\"?><!DOCTYPE x SYSTEM \"file:///etc/passwd\"><RegisterImageResponse/>",
		"<RegisterImageResponse><imageId></imageId></RegisterImageResponse>", /* empty */
		"<OtherResponse><imageId>ami-1</imageId></OtherResponse>",             /* wrong root */
		(char *)deep.data,
		(char *)longtext.data,
	};
	for (size_t i = 0; i < DV_ARRAY_SIZE(bad); i++) {
		char *ami = NULL;
		int r = dv_ec2_parse_register_image(bad[i], strlen(bad[i]), &ami, &err);
		if (r != -DV_E_REMOTE) {
			print_error("case %zu accepted\n", i);
			fail();
		}
		assert_null(ami);
	}
	struct dv_ec2_instances l;
	static const char noid[] = "<RunInstancesResponse><instancesSet><item><instanceType>t3.micro</instanceType>"
				   "</item></instancesSet></RunInstancesResponse>";
	assert_int_equal(dv_ec2_parse_instances(noid, sizeof noid - 1, &l, &err), -DV_E_REMOTE);
	static const char images[] = "<DescribeImagesResponse><imagesSet/></DescribeImagesResponse>";
	assert_int_equal(dv_ec2_parse_instances(images, sizeof images - 1, &l, &err), -DV_E_REMOTE);
	assert_int_equal(dv_ec2_parse_instances((char *)deep.data, deep.len, &l, &err), -DV_E_REMOTE);
	struct dv_ec2_type_infos ti;
	static const char vcpu[] = "<DescribeInstanceTypesResponse><instanceTypeSet><item><instanceType>x.y"
				   "</instanceType><vCpuInfo><defaultVCpus>-4</defaultVCpus></vCpuInfo></item>"
				   "</instanceTypeSet></DescribeInstanceTypesResponse>";
	assert_int_equal(dv_ec2_parse_instance_types(vcpu, sizeof vcpu - 1, &ti, &err), -DV_E_REMOTE);
	static const char mem[] = "<DescribeInstanceTypesResponse><instanceTypeSet><item><instanceType>x.y"
				  "</instanceType><memoryInfo><sizeInMiB>99999999999999999999</sizeInMiB></memoryInfo>"
				  "</item></instanceTypeSet></DescribeInstanceTypesResponse>";
	assert_int_equal(dv_ec2_parse_instance_types(mem, sizeof mem - 1, &ti, &err), -DV_E_REMOTE);
	struct dv_ec2_snapshots sl;
	static const char sz[] = "<DescribeSnapshotsResponse><snapshotSet><item><snapshotId>snap-1</snapshotId>"
				 "<volumeSize>1e9</volumeSize></item></snapshotSet></DescribeSnapshotsResponse>";
	assert_int_equal(dv_ec2_parse_snapshots(sz, sizeof sz - 1, &sl, &err), -DV_E_REMOTE);
	struct dv_ec2_error ee;
	assert_int_equal(dv_ec2_parse_error("<html>502</html>", 16, &ee, &err), -DV_E_REMOTE);
	char *ami = NULL;
	assert_int_equal(dv_ec2_parse_register_image("x", DV_EC2_MAX_RESPONSE + 1, &ami, &err), -DV_E_REMOTE);
	dv_buf_release(&deep);
	dv_buf_release(&longtext);
}

static void test_endpoint(void **state)
{
	(void)state;
	struct dv_aws_config cfg = {.profile = "p", .region = "eu-west-1", .config_path = "/nonexistent"};
	char *ep = NULL;
	struct dv_err err;
	unsetenv("AWS_ENDPOINT_URL_EC2");
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	assert_int_equal(dv_aws_endpoint_resolve(&cfg, "ec2", NULL, &ep, NULL, &err), 0);
	assert_string_equal(ep, "https://ec2.eu-west-1.amazonaws.com");
	free(ep);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1/", 1);
	assert_int_equal(dv_aws_endpoint_resolve(&cfg, "ec2", NULL, &ep, NULL, &err), 0);
	assert_string_equal(ep, "http://127.0.0.1:1");
	free(ep);
	setenv("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:2", 1);
	assert_int_equal(dv_aws_endpoint_resolve(&cfg, "ec2", NULL, &ep, NULL, &err), 0);
	assert_string_equal(ep, "http://127.0.0.1:2");
	free(ep);
	assert_int_equal(dv_aws_endpoint_resolve(&cfg, "ec2", "http://x:3", &ep, NULL, &err), 0);
	assert_string_equal(ep, "http://x:3");
	free(ep);
	setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
	assert_int_equal(dv_aws_endpoint_resolve(&cfg, "ec2", NULL, &ep, NULL, &err), 0);
	assert_string_equal(ep, "https://ec2.eu-west-1.amazonaws.com");
	free(ep);
	unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	unsetenv("AWS_ENDPOINT_URL_EC2");
	unsetenv("AWS_ENDPOINT_URL");
	/* the profile's services section */
	char path[] = "/tmp/dv-test-ec2-XXXXXX";
	int fd = mkstemp(path);
	static const char ini[] = "[profile p]\nservices = loc\n[services loc]\nec2 =\n  endpoint_url = http://127.0.0.1:4\n";
	assert_int_equal(write(fd, ini, sizeof ini - 1), (ssize_t)(sizeof ini - 1));
	close(fd);
	cfg.config_path = path;
	assert_int_equal(dv_aws_endpoint_resolve(&cfg, "ec2", NULL, &ep, NULL, &err), 0);
	assert_string_equal(ep, "http://127.0.0.1:4");
	free(ep);
	unlink(path);
	assert_int_equal(dv_aws_endpoint_resolve(&cfg, "ec2", "ftp://x", &ep, NULL, &err), -DV_E_USAGE);
	/* a path in the endpoint is refused by the client */
	struct dv_aws_creds creds = {.access_key_id = "A", .secret_access_key = "S"};
	struct dv_ec2 *ec2 = NULL;
	assert_int_equal(dv_ec2_new(&cfg, &creds, "http://127.0.0.1:5/x", &ec2, &err), -DV_E_USAGE);
	assert_int_equal(dv_ec2_new(&cfg, &creds, "http://127.0.0.1:5", &ec2, &err), 0);
	assert_string_equal(dv_ec2_endpoint(ec2), "http://127.0.0.1:5");
	dv_ec2_free(ec2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_image_vector),
		cmocka_unit_test(test_run_instances_vector),
		cmocka_unit_test(test_describe_instance_types_vector),
		cmocka_unit_test(test_encoding_and_token),
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_endpoint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
