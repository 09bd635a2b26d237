/*
 * ec2.h - the EC2 query API calls diskvault makes (launch, cleanup,
 * catalog refresh): form-encoded POST to "/", API version 2016-11-15,
 * SigV4 with service "ec2", XML answers parsed with expat.
 *
 * Three layers, each usable alone (the unit tests use the first two
 * without a network):
 *   - forms: an ordered list of parameters, builders for the requests
 *     diskvault sends, and the encoding botocore uses (RFC 3986 unreserved
 *     characters kept, everything else %XX);
 *   - parsers for the responses and for EC2's error shape
 *     (Response/Errors/Error/Code + Message, RequestID);
 *   - a client that signs, sends and retries (connection errors, 5xx,
 *     throttling: RequestLimitExceeded, Throttling, ...), failing at once on
 *     other 4xx with one line "EC2 <Action>: HTTP <n> <Code>: <Message>
 *     (request id <id>)".
 *
 * Errors follow util.h; messages never contain secrets or signatures. A
 * struct dv_ec2 is for one thread; forms and parsers are reentrant.
 */
#ifndef DV_AWS_EC2_H
#define DV_AWS_EC2_H

#include "aws/aws.h"

#define DV_EC2_API_VERSION "2016-11-15"

/* ---- forms ------------------------------------------------------------- */

/* Ordered parameters; keys and values owned. */
struct dv_ec2_form {
	char **keys;
	char **values;
	size_t n, cap;
};
/* Starts a form with Action=action and Version=DV_EC2_API_VERSION. */
void dv_ec2_form_init(struct dv_ec2_form *f, const char *action);
void dv_ec2_form_release(struct dv_ec2_form *f);
void dv_ec2_form_add(struct dv_ec2_form *f, const char *key, const char *value);
/* Adds value under the key printf'ed from keyfmt ("Filter.%zu.Name"). */
void dv_ec2_form_addf(struct dv_ec2_form *f, const char *value, const char *keyfmt, ...) DV_PRINTF(3, 4);
/* Replaces the value of key (its first occurrence), which the form must
 * hold (a bug otherwise): the AMI id into a planned RunInstances' ImageId. */
void dv_ec2_form_set(struct dv_ec2_form *f, const char *key, const char *value);
/* First value of key, or NULL. Borrowed. */
const char *dv_ec2_form_get(const struct dv_ec2_form *f, const char *key);
/* "k=v&k=v" with both sides percent-encoded; appended to out. */
void dv_ec2_form_encode(const struct dv_ec2_form *f, struct dv_buf *out);

/* Borrowed pairs and lists for the builders. */
struct dv_ec2_tag {
	const char *key;
	const char *value;
};
struct dv_ec2_filter {
	const char *name;               /* "tag:diskvault:launched-from", "instance-state-name" */
	const char *const *values;
	size_t nvalues;
};
/* Filter.N.Name / Filter.N.Value.M, numbering after existing filters. */
void dv_ec2_form_add_filters(struct dv_ec2_form *f, const struct dv_ec2_filter *filters, size_t n);
/* "<prefix>.1=v1&<prefix>.2=v2..." (InstanceId.N, Owner.N, ...). */
void dv_ec2_form_add_list(struct dv_ec2_form *f, const char *prefix, const char *const *values, size_t n);

/* RegisterImage of an EBS snapshot as an HVM image. */
struct dv_ec2_image_spec {
	const char *name;            /* required, unique per account and region */
	const char *description;     /* NULL = none */
	const char *architecture;    /* "x86_64" | "arm64" */
	const char *root_device;     /* "/dev/xvda" */
	const char *snapshot_id;     /* "snap-..." */
	const char *volume_type;     /* "gp3" */
	uint64_t volume_size_gib;    /* 0 = the snapshot's size */
	bool delete_on_termination;
	bool ena;                    /* EnaSupport=true */
	const char *boot_mode;       /* "legacy-bios" | "uefi" | "uefi-preferred" | NULL (EC2's default) */
};
void dv_ec2_form_register_image(struct dv_ec2_form *f, const struct dv_ec2_image_spec *s);

/* RunInstances of exactly one instance. */
struct dv_ec2_run_spec {
	const char *image_id;
	const char *instance_type;
	const char *key_name;             /* NULL = none */
	const char *subnet_id;            /* NULL = default VPC */
	const char *const *security_groups;  /* SecurityGroupId.N */
	size_t nsecurity_groups;
	const struct dv_ec2_tag *tags;    /* put on the instance and its volumes */
	size_t ntags;
	const char *client_token;         /* idempotency (retries cannot start two) */
	bool imdsv2_required;             /* MetadataOptions.HttpTokens=required */
};
void dv_ec2_form_run_instances(struct dv_ec2_form *f, const struct dv_ec2_run_spec *s);
/* CreateTags: ResourceId.N and Tag.N.Key/Value. */
void dv_ec2_form_create_tags(struct dv_ec2_form *f, const char *const *resources, size_t nresources,
			     const struct dv_ec2_tag *tags, size_t ntags);

/* ---- responses ----------------------------------------------------------- */

/* Parsers accept a body of at most DV_EC2_MAX_RESPONSE bytes, reject
 * DOCTYPEs and entity declarations, nesting deeper than 32, text longer
 * than 64 KiB and more than 100000 items (DV_E_REMOTE "malformed"), and
 * check the root element. All strings owned; *_release frees (and accepts
 * a zeroed struct). */
#define DV_EC2_MAX_RESPONSE (16u << 20)

struct dv_ec2_error {
	char *code;
	char *message;
	char *request_id;
};
int dv_ec2_parse_error(const char *xml, size_t len, struct dv_ec2_error *out, struct dv_err *err) DV_WUR;
void dv_ec2_error_release(struct dv_ec2_error *e);

/* RegisterImageResponse/imageId; *image_id malloc'ed. */
int dv_ec2_parse_register_image(const char *xml, size_t len, char **image_id, struct dv_err *err) DV_WUR;
/* <Action>Response/return must be "true" (CreateTags, DeregisterImage,
 * DeleteSnapshot). */
int dv_ec2_parse_return(const char *xml, size_t len, const char *action, struct dv_err *err) DV_WUR;

struct dv_ec2_instance {
	char *id;
	char *type;
	char *state;        /* pending, running, shutting-down, terminated, ... */
	char *image_id;
	char *private_ip;
	char *public_ip;
};
struct dv_ec2_instances {
	struct dv_ec2_instance *v;
	size_t n;
	char *next_token;
};
/* RunInstancesResponse, DescribeInstancesResponse (every reservation) or
 * TerminateInstancesResponse (instanceId and currentState/name). */
int dv_ec2_parse_instances(const char *xml, size_t len, struct dv_ec2_instances *out, struct dv_err *err) DV_WUR;
void dv_ec2_instances_release(struct dv_ec2_instances *l);

struct dv_ec2_image {
	char *id;
	char *name;
	char *state;
	char **snapshots;   /* EBS snapshots of its block device mappings */
	size_t nsnapshots;
};
struct dv_ec2_images {
	struct dv_ec2_image *v;
	size_t n;
	char *next_token;
};
int dv_ec2_parse_images(const char *xml, size_t len, struct dv_ec2_images *out, struct dv_err *err) DV_WUR;
void dv_ec2_images_release(struct dv_ec2_images *l);

struct dv_ec2_snapshot {
	char *id;
	char *state;        /* pending, completed, error */
	char *description;
	uint64_t volume_size_gib;
	char **tag_keys, **tag_values; /* its tagSet, in order (values "" when absent) */
	size_t ntags;
};
/* The value of tag key of s, NULL when it has none. */
const char *dv_ec2_snapshot_tag(const struct dv_ec2_snapshot *s, const char *key);
struct dv_ec2_snapshots {
	struct dv_ec2_snapshot *v;
	size_t n;
	char *next_token;
};
int dv_ec2_parse_snapshots(const char *xml, size_t len, struct dv_ec2_snapshots *out, struct dv_err *err) DV_WUR;
void dv_ec2_snapshots_release(struct dv_ec2_snapshots *l);

struct dv_ec2_type_info {
	char *type;
	char architectures[64];   /* "i386;x86_64" as listed */
	unsigned vcpus;           /* 0 = not given */
	uint64_t memory_mib;
	int burstable;            /* -1 not given */
	char ena[24];
	char nvme[24];
	char boot_modes[64];      /* "legacy-bios;uefi" */
};
struct dv_ec2_type_infos {
	struct dv_ec2_type_info *v;
	size_t n;
	char *next_token;
};
int dv_ec2_parse_instance_types(const char *xml, size_t len, struct dv_ec2_type_infos *out,
				struct dv_err *err) DV_WUR;
void dv_ec2_type_infos_release(struct dv_ec2_type_infos *l);

/* ---- client ---------------------------------------------------------------- */

/* Signs body for POST / on host (SigV4, service ec2, headers content-type,
 * host, x-amz-date and the session token when there is one). For tests. */
int dv_ec2_sign(const char *host, const char *body, const struct dv_aws_creds *creds, const char *region,
		int64_t time, struct dv_sigv4_result *out, struct dv_err *err) DV_WUR;

struct dv_ec2;
/* cfg and creds are copied; the endpoint is dv_aws_endpoint_resolve(cfg,
 * "ec2", endpoint) (endpoint borrowed, NULL = the configured or AWS one)
 * and must have no path. Retries: DISKVAULT_EC2_MAX_ATTEMPTS (default 8)
 * within DISKVAULT_EC2_RETRY_SECONDS (default 120). Caller frees with
 * dv_ec2_free(). */
int dv_ec2_new(const struct dv_aws_config *cfg, const struct dv_aws_creds *creds, const char *endpoint,
	       struct dv_ec2 **out, struct dv_err *err) DV_WUR;
void dv_ec2_free(struct dv_ec2 *ec2);
const char *dv_ec2_endpoint(const struct dv_ec2 *ec2);
const char *dv_ec2_region(const struct dv_ec2 *ec2);

/* Sends the form; on HTTP 2xx the body is in resp (replaced). EC2 error
 * codes ending in ".NotFound" are DV_E_NOT_FOUND, the rest DV_E_REMOTE;
 * err->msg then names the action, HTTP status, code, message and request
 * id. The code alone is copied to code_out (may be NULL) for callers that
 * handle one (e.g. InvalidAMIName.Duplicate). */
int dv_ec2_call(struct dv_ec2 *ec2, const struct dv_ec2_form *f, struct dv_buf *resp, char code_out[64],
		struct dv_err *err) DV_WUR;

#endif
