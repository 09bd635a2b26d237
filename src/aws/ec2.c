/*
 * ec2.c - EC2 query API: forms, response parsing and a small signed,
 * retrying client. Responses are walked by the module's one expat walker
 * (xml.h); signing, credentials, configuration, INI parsing and URI
 * encoding are aws.h's. The S3 client keeps its HTTP layer private to
 * s3.c, so the few lines of curl glue EC2 needs live here.
 */
#include "ec2.h"
#include "xml.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XML_MAX_ITEMS 100000
#define CONTENT_TYPE "application/x-www-form-urlencoded; charset=utf-8"

/* ---- forms -------------------------------------------------------------- */

void dv_ec2_form_add(struct dv_ec2_form *f, const char *key, const char *value)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 16;
		f->keys = dv_realloc(f->keys, f->cap * sizeof *f->keys);
		f->values = dv_realloc(f->values, f->cap * sizeof *f->values);
	}
	f->keys[f->n] = dv_strdup(key);
	f->values[f->n++] = dv_strdup(value ? value : "");
}

void dv_ec2_form_init(struct dv_ec2_form *f, const char *action)
{
	memset(f, 0, sizeof *f);
	dv_ec2_form_add(f, "Action", action);
	dv_ec2_form_add(f, "Version", DV_EC2_API_VERSION);
}

void dv_ec2_form_release(struct dv_ec2_form *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->keys[i]);
		free(f->values[i]);
	}
	free(f->keys);
	free(f->values);
	memset(f, 0, sizeof *f);
}

void dv_ec2_form_addf(struct dv_ec2_form *f, const char *value, const char *keyfmt, ...)
{
	char key[256];
	va_list ap;
	va_start(ap, keyfmt);
	vsnprintf(key, sizeof key, keyfmt, ap);
	va_end(ap);
	dv_ec2_form_add(f, key, value);
}

const char *dv_ec2_form_get(const struct dv_ec2_form *f, const char *key)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->keys[i], key))
			return f->values[i];
	return NULL;
}

void dv_ec2_form_encode(const struct dv_ec2_form *f, struct dv_buf *out)
{
	for (size_t i = 0; i < f->n; i++) {
		if (i)
			dv_buf_add(out, "&", 1);
		dv_aws_uri_encode(out, f->keys[i], false);
		dv_buf_add(out, "=", 1);
		dv_aws_uri_encode(out, f->values[i], false);
	}
	dv_buf_add(out, "", 0);
}

void dv_ec2_form_add_filters(struct dv_ec2_form *f, const struct dv_ec2_filter *filters, size_t n)
{
	size_t base = 0;
	for (size_t i = 0; i < f->n; i++)
		if (!strncmp(f->keys[i], "Filter.", 7) && strstr(f->keys[i], ".Name"))
			base++;
	for (size_t i = 0; i < n; i++) {
		dv_ec2_form_addf(f, filters[i].name, "Filter.%zu.Name", base + i + 1);
		for (size_t k = 0; k < filters[i].nvalues; k++)
			dv_ec2_form_addf(f, filters[i].values[k], "Filter.%zu.Value.%zu", base + i + 1, k + 1);
	}
}

void dv_ec2_form_add_list(struct dv_ec2_form *f, const char *prefix, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dv_ec2_form_addf(f, values[i], "%s.%zu", prefix, i + 1);
}

void dv_ec2_form_register_image(struct dv_ec2_form *f, const struct dv_ec2_image_spec *s)
{
	/* the order of the AWS CLI's request (tests/vectors/aws-wire) */
	dv_ec2_form_init(f, "RegisterImage");
	dv_ec2_form_add(f, "Architecture", s->architecture);
	dv_ec2_form_add(f, "BlockDeviceMapping.1.DeviceName", s->root_device);
	dv_ec2_form_add(f, "BlockDeviceMapping.1.Ebs.SnapshotId", s->snapshot_id);
	if (s->volume_size_gib) {
		char n[24];
		snprintf(n, sizeof n, "%llu", (unsigned long long)s->volume_size_gib);
		dv_ec2_form_add(f, "BlockDeviceMapping.1.Ebs.VolumeSize", n);
	}
	dv_ec2_form_add(f, "BlockDeviceMapping.1.Ebs.VolumeType", s->volume_type ? s->volume_type : "gp3");
	dv_ec2_form_add(f, "BlockDeviceMapping.1.Ebs.DeleteOnTermination", s->delete_on_termination ? "true" : "false");
	if (s->description)
		dv_ec2_form_add(f, "Description", s->description);
	if (s->ena)
		dv_ec2_form_add(f, "EnaSupport", "true");
	dv_ec2_form_add(f, "Name", s->name);
	dv_ec2_form_add(f, "RootDeviceName", s->root_device);
	dv_ec2_form_add(f, "VirtualizationType", "hvm");
	if (s->boot_mode)
		dv_ec2_form_add(f, "BootMode", s->boot_mode);
}

static void add_tags(struct dv_ec2_form *f, unsigned spec, const struct dv_ec2_tag *tags, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		dv_ec2_form_addf(f, tags[i].key, "TagSpecification.%u.Tag.%zu.Key", spec, i + 1);
		dv_ec2_form_addf(f, tags[i].value, "TagSpecification.%u.Tag.%zu.Value", spec, i + 1);
	}
}

void dv_ec2_form_run_instances(struct dv_ec2_form *f, const struct dv_ec2_run_spec *s)
{
	dv_ec2_form_init(f, "RunInstances");
	dv_ec2_form_add(f, "ImageId", s->image_id);
	dv_ec2_form_add(f, "InstanceType", s->instance_type);
	if (s->key_name)
		dv_ec2_form_add(f, "KeyName", s->key_name);
	if (s->subnet_id)
		dv_ec2_form_add(f, "SubnetId", s->subnet_id);
	dv_ec2_form_add_list(f, "SecurityGroupId", s->security_groups, s->nsecurity_groups);
	if (s->ntags) {
		dv_ec2_form_add(f, "TagSpecification.1.ResourceType", "instance");
		add_tags(f, 1, s->tags, s->ntags);
		dv_ec2_form_add(f, "TagSpecification.2.ResourceType", "volume");
		add_tags(f, 2, s->tags, s->ntags);
	}
	dv_ec2_form_add(f, "MinCount", "1");
	dv_ec2_form_add(f, "MaxCount", "1");
	if (s->client_token)
		dv_ec2_form_add(f, "ClientToken", s->client_token);
	if (s->imdsv2_required) {
		dv_ec2_form_add(f, "MetadataOptions.HttpTokens", "required");
		dv_ec2_form_add(f, "MetadataOptions.HttpEndpoint", "enabled");
	}
}

void dv_ec2_form_create_tags(struct dv_ec2_form *f, const char *const *resources, size_t nresources,
			     const struct dv_ec2_tag *tags, size_t ntags)
{
	dv_ec2_form_init(f, "CreateTags");
	dv_ec2_form_add_list(f, "ResourceId", resources, nresources);
	for (size_t i = 0; i < ntags; i++) {
		dv_ec2_form_addf(f, tags[i].key, "Tag.%zu.Key", i + 1);
		dv_ec2_form_addf(f, tags[i].value, "Tag.%zu.Value", i + 1);
	}
}

/* ---- XML ------------------------------------------------------------------- */

/* Bounds the body, then walks it with the module's one expat walker. */
static int walk(const char *xml, size_t len, const char *what, dv_xml_end_fn fn, void *ctx, struct dv_err *err)
{
	if (len > DV_EC2_MAX_RESPONSE)
		return dv_error(err, DV_E_REMOTE, "%s: response larger than %u bytes", what, DV_EC2_MAX_RESPONSE);
	return dv_xml_walk(xml, len, what, fn, ctx, err);
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = dv_strdup(v);
}

/* path == prefix + "/" + rest: returns rest, else NULL. */
static const char *under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);
	if (strncmp(path, prefix, n) || path[n] != '/')
		return NULL;
	return path + n + 1;
}

/* ---- errors ---- */

static void error_end(void *ctx, const char *path, const char *text)
{
	struct dv_ec2_error *e = ctx;
	if (!strcmp(path, "Response/Errors/Error/Code") || !strcmp(path, "ErrorResponse/Error/Code"))
		set_str(&e->code, text);
	else if (!strcmp(path, "Response/Errors/Error/Message") || !strcmp(path, "ErrorResponse/Error/Message"))
		set_str(&e->message, text);
	else if (!strcmp(path, "Response/RequestID") || !strcmp(path, "Response/RequestId") ||
		 !strcmp(path, "ErrorResponse/RequestId"))
		set_str(&e->request_id, text);
}

int dv_ec2_parse_error(const char *xml, size_t len, struct dv_ec2_error *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	int r = walk(xml, len, "EC2 error", error_end, out, err);
	if (r == 0 && !out->code)
		r = dv_error(err, DV_E_REMOTE, "EC2 error: response has no <Errors><Error><Code>");
	if (r < 0)
		dv_ec2_error_release(out);
	return r;
}

void dv_ec2_error_release(struct dv_ec2_error *e)
{
	free(e->code);
	free(e->message);
	free(e->request_id);
	memset(e, 0, sizeof *e);
}

/* ---- single values ---- */

struct one_ctx {
	const char *want;   /* full path */
	const char *root;
	char *value;
	bool root_ok;
};

static void one_end(void *ctx, const char *path, const char *text)
{
	struct one_ctx *c = ctx;
	if (!strcmp(path, c->want))
		set_str(&c->value, text);
	else if (!strcmp(path, c->root))
		c->root_ok = true;
}

static int parse_one(const char *xml, size_t len, const char *action, const char *field, char **out,
		     struct dv_err *err)
{
	char root[96], want[160], what[96];
	snprintf(root, sizeof root, "%sResponse", action);
	snprintf(want, sizeof want, "%s/%s", root, field);
	snprintf(what, sizeof what, "EC2 %s", action);
	struct one_ctx c = {want, root, NULL, false};
	int r = walk(xml, len, what, one_end, &c, err);
	if (r == 0 && (!c.root_ok || !c.value || !*c.value))
		r = dv_error(err, DV_E_REMOTE, "%s: response has no <%s>", what, field);
	if (r < 0) {
		free(c.value);
		return r;
	}
	*out = c.value;
	return 0;
}

int dv_ec2_parse_register_image(const char *xml, size_t len, char **image_id, struct dv_err *err)
{
	*image_id = NULL;
	return parse_one(xml, len, "RegisterImage", "imageId", image_id, err);
}

int dv_ec2_parse_return(const char *xml, size_t len, const char *action, struct dv_err *err)
{
	char *v = NULL;
	int r = parse_one(xml, len, action, "return", &v, err);
	if (r == 0 && strcmp(v, "true"))
		r = dv_error(err, DV_E_REMOTE, "EC2 %s: the answer was <return>%.20s</return>", action, v);
	free(v);
	return r;
}

/* ---- lists ---- */

/* Grows a vector of items (each `size` bytes) by one zeroed element,
 * refusing absurd counts. */
static void *grow(void *v, size_t *n, size_t size, bool *bad)
{
	if (*n >= XML_MAX_ITEMS) {
		*bad = true;
		return v;
	}
	v = dv_realloc(v, (*n + 1) * size);
	memset((char *)v + *n * size, 0, size);
	(*n)++;
	return v;
}

struct inst_ctx {
	struct dv_ec2_instances *l;
	struct dv_ec2_instance cur;
	bool bad, root_ok;
	const char *root;
};

static void inst_free(struct dv_ec2_instance *i)
{
	free(i->id);
	free(i->type);
	free(i->state);
	free(i->image_id);
	free(i->private_ip);
	free(i->public_ip);
	memset(i, 0, sizeof *i);
}

static void inst_end(void *ctx, const char *path, const char *text)
{
	struct inst_ctx *c = ctx;
	const char *f = NULL;
	if (!strcmp(path, "RunInstancesResponse") || !strcmp(path, "DescribeInstancesResponse") ||
	    !strcmp(path, "TerminateInstancesResponse")) {
		c->root_ok = true;
		return;
	}
	if (!strcmp(path, "DescribeInstancesResponse/nextToken")) {
		set_str(&c->l->next_token, text);
		return;
	}
	const char *item = NULL;
	if ((f = under(path, "RunInstancesResponse/instancesSet/item")))
		item = f;
	else if ((f = under(path, "DescribeInstancesResponse/reservationSet/item/instancesSet/item")))
		item = f;
	else if ((f = under(path, "TerminateInstancesResponse/instancesSet/item")))
		item = f;
	if (!strcmp(path, "RunInstancesResponse/instancesSet/item") ||
	    !strcmp(path, "DescribeInstancesResponse/reservationSet/item/instancesSet/item") ||
	    !strcmp(path, "TerminateInstancesResponse/instancesSet/item")) {
		if (!c->cur.id) {
			c->bad = true;
			inst_free(&c->cur);
			return;
		}
		c->l->v = grow(c->l->v, &c->l->n, sizeof *c->l->v, &c->bad);
		if (c->bad) {
			inst_free(&c->cur);
			return;
		}
		c->l->v[c->l->n - 1] = c->cur;
		memset(&c->cur, 0, sizeof c->cur);
		return;
	}
	if (!item)
		return;
	if (!strcmp(item, "instanceId"))
		set_str(&c->cur.id, text);
	else if (!strcmp(item, "instanceType"))
		set_str(&c->cur.type, text);
	else if (!strcmp(item, "instanceState/name") || !strcmp(item, "currentState/name"))
		set_str(&c->cur.state, text);
	else if (!strcmp(item, "imageId"))
		set_str(&c->cur.image_id, text);
	else if (!strcmp(item, "privateIpAddress"))
		set_str(&c->cur.private_ip, text);
	else if (!strcmp(item, "ipAddress"))
		set_str(&c->cur.public_ip, text);
}

void dv_ec2_instances_release(struct dv_ec2_instances *l)
{
	for (size_t i = 0; i < l->n; i++)
		inst_free(&l->v[i]);
	free(l->v);
	free(l->next_token);
	memset(l, 0, sizeof *l);
}

int dv_ec2_parse_instances(const char *xml, size_t len, struct dv_ec2_instances *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct inst_ctx c = {.l = out};
	int r = walk(xml, len, "EC2 instances", inst_end, &c, err);
	inst_free(&c.cur);
	if (r == 0 && !c.root_ok)
		r = dv_error(err, DV_E_REMOTE, "EC2 instances: unexpected response (not Run/Describe/TerminateInstances)");
	if (r == 0 && c.bad)
		r = dv_error(err, DV_E_REMOTE, "EC2 instances: malformed response (an instance without an id, or too many)");
	if (r < 0)
		dv_ec2_instances_release(out);
	return r;
}

struct img_ctx {
	struct dv_ec2_images *l;
	struct dv_ec2_image cur;
	bool bad, root_ok;
};

static void img_free(struct dv_ec2_image *i)
{
	free(i->id);
	free(i->name);
	free(i->state);
	for (size_t k = 0; k < i->nsnapshots; k++)
		free(i->snapshots[k]);
	free(i->snapshots);
	memset(i, 0, sizeof *i);
}

static void img_end(void *ctx, const char *path, const char *text)
{
	struct img_ctx *c = ctx;
	static const char item_path[] = "DescribeImagesResponse/imagesSet/item";
	if (!strcmp(path, "DescribeImagesResponse")) {
		c->root_ok = true;
	} else if (!strcmp(path, "DescribeImagesResponse/nextToken")) {
		set_str(&c->l->next_token, text);
	} else if (!strcmp(path, item_path)) {
		if (!c->cur.id) {
			c->bad = true;
			img_free(&c->cur);
			return;
		}
		c->l->v = grow(c->l->v, &c->l->n, sizeof *c->l->v, &c->bad);
		if (c->bad) {
			img_free(&c->cur);
			return;
		}
		c->l->v[c->l->n - 1] = c->cur;
		memset(&c->cur, 0, sizeof c->cur);
	} else {
		const char *f = under(path, item_path);
		if (!f)
			return;
		if (!strcmp(f, "imageId"))
			set_str(&c->cur.id, text);
		else if (!strcmp(f, "name"))
			set_str(&c->cur.name, text);
		else if (!strcmp(f, "imageState"))
			set_str(&c->cur.state, text);
		else if (!strcmp(f, "blockDeviceMapping/item/ebs/snapshotId") && *text) {
			if (c->cur.nsnapshots >= 64) {
				c->bad = true;
				return;
			}
			c->cur.snapshots = dv_realloc(c->cur.snapshots, (c->cur.nsnapshots + 1) * sizeof(char *));
			c->cur.snapshots[c->cur.nsnapshots++] = dv_strdup(text);
		}
	}
}

void dv_ec2_images_release(struct dv_ec2_images *l)
{
	for (size_t i = 0; i < l->n; i++)
		img_free(&l->v[i]);
	free(l->v);
	free(l->next_token);
	memset(l, 0, sizeof *l);
}

int dv_ec2_parse_images(const char *xml, size_t len, struct dv_ec2_images *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct img_ctx c = {.l = out};
	int r = walk(xml, len, "EC2 DescribeImages", img_end, &c, err);
	img_free(&c.cur);
	if (r == 0 && !c.root_ok)
		r = dv_error(err, DV_E_REMOTE, "EC2 DescribeImages: unexpected response");
	if (r == 0 && c.bad)
		r = dv_error(err, DV_E_REMOTE, "EC2 DescribeImages: malformed response (an image without an id, or too many)");
	if (r < 0)
		dv_ec2_images_release(out);
	return r;
}

struct snap_ctx {
	struct dv_ec2_snapshots *l;
	struct dv_ec2_snapshot cur;
	bool bad, root_ok;
};

static void snap_free(struct dv_ec2_snapshot *s)
{
	free(s->id);
	free(s->state);
	free(s->description);
	memset(s, 0, sizeof *s);
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	if (!*s || strlen(s) > 19)
		return false;
	uint64_t x = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	if (x > max)
		return false;
	*v = x;
	return true;
}

static void snap_end(void *ctx, const char *path, const char *text)
{
	struct snap_ctx *c = ctx;
	static const char item_path[] = "DescribeSnapshotsResponse/snapshotSet/item";
	if (!strcmp(path, "DescribeSnapshotsResponse")) {
		c->root_ok = true;
	} else if (!strcmp(path, "DescribeSnapshotsResponse/nextToken")) {
		set_str(&c->l->next_token, text);
	} else if (!strcmp(path, item_path)) {
		if (!c->cur.id) {
			c->bad = true;
			snap_free(&c->cur);
			return;
		}
		c->l->v = grow(c->l->v, &c->l->n, sizeof *c->l->v, &c->bad);
		if (c->bad) {
			snap_free(&c->cur);
			return;
		}
		c->l->v[c->l->n - 1] = c->cur;
		memset(&c->cur, 0, sizeof c->cur);
	} else {
		const char *f = under(path, item_path);
		if (!f)
			return;
		if (!strcmp(f, "snapshotId"))
			set_str(&c->cur.id, text);
		else if (!strcmp(f, "status"))
			set_str(&c->cur.state, text);
		else if (!strcmp(f, "description"))
			set_str(&c->cur.description, text);
		else if (!strcmp(f, "volumeSize") && !parse_u64(text, 1u << 20, &c->cur.volume_size_gib))
			c->bad = true;
	}
}

void dv_ec2_snapshots_release(struct dv_ec2_snapshots *l)
{
	for (size_t i = 0; i < l->n; i++)
		snap_free(&l->v[i]);
	free(l->v);
	free(l->next_token);
	memset(l, 0, sizeof *l);
}

int dv_ec2_parse_snapshots(const char *xml, size_t len, struct dv_ec2_snapshots *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct snap_ctx c = {.l = out};
	int r = walk(xml, len, "EC2 DescribeSnapshots", snap_end, &c, err);
	snap_free(&c.cur);
	if (r == 0 && !c.root_ok)
		r = dv_error(err, DV_E_REMOTE, "EC2 DescribeSnapshots: unexpected response");
	if (r == 0 && c.bad)
		r = dv_error(err, DV_E_REMOTE, "EC2 DescribeSnapshots: malformed response (bad snapshot id or size)");
	if (r < 0)
		dv_ec2_snapshots_release(out);
	return r;
}

struct type_ctx {
	struct dv_ec2_type_infos *l;
	struct dv_ec2_type_info cur;
	bool bad, root_ok;
};

static void list_add(char *dst, size_t cap, const char *v, bool *bad)
{
	size_t n = strlen(dst);
	if (n + strlen(v) + 2 > cap) {
		*bad = true;
		return;
	}
	snprintf(dst + n, cap - n, "%s%s", n ? ";" : "", v);
}

static void copy_short(char *dst, size_t cap, const char *v, bool *bad)
{
	if (strlen(v) >= cap)
		*bad = true;
	else
		snprintf(dst, cap, "%s", v);
}

static void type_end(void *ctx, const char *path, const char *text)
{
	struct type_ctx *c = ctx;
	static const char item_path[] = "DescribeInstanceTypesResponse/instanceTypeSet/item";
	if (!strcmp(path, "DescribeInstanceTypesResponse")) {
		c->root_ok = true;
	} else if (!strcmp(path, "DescribeInstanceTypesResponse/nextToken")) {
		set_str(&c->l->next_token, text);
	} else if (!strcmp(path, item_path)) {
		if (!c->cur.type) {
			c->bad = true;
			return;
		}
		c->l->v = grow(c->l->v, &c->l->n, sizeof *c->l->v, &c->bad);
		if (c->bad) {
			free(c->cur.type);
		} else {
			c->l->v[c->l->n - 1] = c->cur;
		}
		memset(&c->cur, 0, sizeof c->cur);
		c->cur.burstable = -1;
	} else {
		const char *f = under(path, item_path);
		uint64_t v;
		if (!f)
			return;
		if (!strcmp(f, "instanceType"))
			set_str(&c->cur.type, text);
		else if (!strcmp(f, "processorInfo/supportedArchitectures/item"))
			list_add(c->cur.architectures, sizeof c->cur.architectures, text, &c->bad);
		else if (!strcmp(f, "vCpuInfo/defaultVCpus")) {
			if (parse_u64(text, 4096, &v) && v)
				c->cur.vcpus = (unsigned)v;
			else
				c->bad = true;
		} else if (!strcmp(f, "memoryInfo/sizeInMiB")) {
			if (parse_u64(text, 1ull << 36, &v) && v)
				c->cur.memory_mib = v;
			else
				c->bad = true;
		} else if (!strcmp(f, "burstablePerformanceSupported")) {
			if (!strcmp(text, "true"))
				c->cur.burstable = 1;
			else if (!strcmp(text, "false"))
				c->cur.burstable = 0;
			else
				c->bad = true;
		} else if (!strcmp(f, "networkInfo/enaSupport"))
			copy_short(c->cur.ena, sizeof c->cur.ena, text, &c->bad);
		else if (!strcmp(f, "ebsInfo/nvmeSupport"))
			copy_short(c->cur.nvme, sizeof c->cur.nvme, text, &c->bad);
		else if (!strcmp(f, "supportedBootModes/item"))
			list_add(c->cur.boot_modes, sizeof c->cur.boot_modes, text, &c->bad);
	}
}

void dv_ec2_type_infos_release(struct dv_ec2_type_infos *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].type);
	free(l->v);
	free(l->next_token);
	memset(l, 0, sizeof *l);
}

int dv_ec2_parse_instance_types(const char *xml, size_t len, struct dv_ec2_type_infos *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct type_ctx c = {.l = out};
	c.cur.burstable = -1;
	int r = walk(xml, len, "EC2 DescribeInstanceTypes", type_end, &c, err);
	free(c.cur.type);
	if (r == 0 && !c.root_ok)
		r = dv_error(err, DV_E_REMOTE, "EC2 DescribeInstanceTypes: unexpected response");
	if (r == 0 && c.bad)
		r = dv_error(err, DV_E_REMOTE, "EC2 DescribeInstanceTypes: malformed response (bad or missing values)");
	if (r < 0)
		dv_ec2_type_infos_release(out);
	return r;
}

/* ---- endpoint, signing ------------------------------------------------------ */

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static bool env_true(const char *name)
{
	const char *v = env(name);
	return v && !strcasecmp(v, "true");
}

int dv_ec2_resolve_endpoint(const struct dv_aws_config *cfg, const char *explicit_endpoint, char **endpoint,
			    struct dv_err *err)
{
	*endpoint = NULL;
	const char *ep = explicit_endpoint;
	struct dv_aws_ini *ini = NULL;
	char *sec = NULL;
	if (!ep && !env_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
		ep = env("AWS_ENDPOINT_URL_EC2");
		if (!ep)
			ep = env("AWS_ENDPOINT_URL");
		if (!ep && cfg->config_path) {
			struct dv_buf b = DV_BUF_INIT;
			struct dv_err e2;
			if (dv_read_file(cfg->config_path, 1u << 20, &b, &e2) == 0 &&
			    dv_aws_ini_parse(b.data ? (char *)b.data : "", b.len, &ini, &e2) == 0) {
				sec = strcmp(cfg->profile, "default") ? dv_asprintf("profile %s", cfg->profile)
								      : dv_strdup("default");
				const char *services = dv_aws_ini_get(ini, sec, "services");
				if (services) {
					char *ss = dv_asprintf("services %s", services);
					ep = dv_aws_ini_get(ini, ss, "ec2.endpoint_url");
					free(ss);
				}
				if (!ep)
					ep = dv_aws_ini_get(ini, sec, "ec2.endpoint_url");
				if (!ep)
					ep = dv_aws_ini_get(ini, sec, "endpoint_url");
			}
			dv_buf_release(&b);
		}
	}
	int r = 0;
	if (ep && *ep) {
		size_t n = strlen(ep);
		while (n > 0 && ep[n - 1] == '/')
			n--;
		*endpoint = dv_asprintf("%.*s", (int)n, ep);
		if (strncmp(*endpoint, "http://", 7) && strncmp(*endpoint, "https://", 8)) {
			r = dv_error(err, DV_E_USAGE, "EC2 endpoint '%s' must start with http:// or https://", *endpoint);
			free(*endpoint);
			*endpoint = NULL;
		}
	} else {
		*endpoint = dv_asprintf("https://ec2.%s.amazonaws.com%s", cfg->region,
					!strncmp(cfg->region, "cn-", 3) ? ".cn" : "");
	}
	free(sec);
	dv_aws_ini_free(ini);
	return r;
}

int dv_ec2_sign(const char *host, const char *body, const struct dv_aws_creds *creds, const char *region,
		int64_t time, struct dv_sigv4_result *out, struct dv_err *err)
{
	char hash[65];
	dv_aws_sha256_hex(hash, body, strlen(body));
	struct dv_aws_kv hdrs[2] = {{"Content-Type", CONTENT_TYPE}, {"Host", host}};
	struct dv_sigv4_request rq = {
		.method = "POST", .path = "/", .headers = hdrs, .n_headers = 2, .payload_hash = hash};
	struct dv_sigv4_params p = {.region = region, .service = "ec2", .time = time, .normalize_path = true};
	memset(out, 0, sizeof *out);
	return dv_sigv4_sign(&rq, creds, &p, out, err);
}

/* ---- client ------------------------------------------------------------------ */

struct dv_ec2 {
	char *endpoint;
	char *host;
	char *region;
	struct dv_aws_creds creds;
	unsigned max_attempts;
	double max_retry_seconds;
	CURL *curl;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static char *xstrdup(const char *s) { return s ? dv_strdup(s) : NULL; }

int dv_ec2_new(const struct dv_aws_config *cfg, const struct dv_aws_creds *creds, const char *endpoint,
	       struct dv_ec2 **out, struct dv_err *err)
{
	*out = NULL;
	char *ep = NULL;
	int r = dv_ec2_resolve_endpoint(cfg, endpoint, &ep, err);
	if (r < 0)
		return r;
	const char *h = strstr(ep, "://") + 3;
	size_t hn = strcspn(h, "/?#");
	if (!hn || h[hn]) {
		r = dv_error(err, DV_E_USAGE, "EC2 endpoint '%s' must be scheme://host[:port] without a path", ep);
		free(ep);
		return r;
	}
	pthread_once(&curl_once, curl_init_once);
	struct dv_ec2 *e = dv_calloc(1, sizeof *e);
	e->endpoint = ep;
	e->host = dv_asprintf("%.*s", (int)hn, h);
	e->region = dv_strdup(cfg->region);
	e->creds.access_key_id = xstrdup(creds->access_key_id);
	e->creds.secret_access_key = xstrdup(creds->secret_access_key);
	e->creds.session_token = xstrdup(creds->session_token);
	e->creds.expiration = creds->expiration;
	memcpy(e->creds.source, creds->source, sizeof e->creds.source);
	const char *v = env("DISKVAULT_EC2_MAX_ATTEMPTS");
	e->max_attempts = v && atoi(v) > 0 ? (unsigned)atoi(v) : 8;
	v = env("DISKVAULT_EC2_RETRY_SECONDS");
	e->max_retry_seconds = v && atof(v) > 0 ? atof(v) : 120;
	e->curl = curl_easy_init();
	if (!e->curl)
		DV_BUG("curl_easy_init failed");
	*out = e;
	return 0;
}

void dv_ec2_free(struct dv_ec2 *e)
{
	if (!e)
		return;
	if (e->curl)
		curl_easy_cleanup(e->curl);
	dv_aws_creds_release(&e->creds);
	free(e->endpoint);
	free(e->host);
	free(e->region);
	free(e);
}

const char *dv_ec2_endpoint(const struct dv_ec2 *e) { return e->endpoint; }
const char *dv_ec2_region(const struct dv_ec2 *e) { return e->region; }

struct sink {
	struct dv_buf *b;
	bool too_big;
};

static size_t sink_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct sink *s = ud;
	if (s->b->len + sz * n > DV_EC2_MAX_RESPONSE) {
		s->too_big = true;
		return 0;
	}
	dv_buf_add(s->b, p, sz * n);
	return sz * n;
}

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
		return true;
	default:
		return false;
	}
}

static bool code_retryable(const char *code)
{
	static const char *const codes[] = {"RequestLimitExceeded", "Throttling", "ThrottlingException",
					     "RequestThrottled", "InternalError", "InternalFailure", "Unavailable",
					     "ServiceUnavailable", "InsufficientInstanceCapacity"};
	for (size_t i = 0; i < DV_ARRAY_SIZE(codes); i++)
		if (!strcmp(code, codes[i]))
			return true;
	return false;
}

static double backoff(unsigned attempt)
{
	double ceil = 0.25 * (double)(1u << (attempt > 10 ? 10 : attempt));
	if (ceil > 20)
		ceil = 20;
	uint32_t rnd;
	dv_random_bytes(&rnd, sizeof rnd);
	return ceil * ((double)rnd / 4294967296.0);
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* One attempt; returns 0, or an error with *retry telling whether another
 * attempt may succeed. */
static int attempt(struct dv_ec2 *e, const char *action, const char *body, struct dv_buf *resp, char code_out[64],
		   bool *retry, struct dv_err *err)
{
	*retry = false;
	struct dv_sigv4_result sig;
	int r = dv_ec2_sign(e->host, body, &e->creds, e->region, dv_unix_now(), &sig, err);
	if (r < 0) {
		dv_sigv4_result_release(&sig);
		return r;
	}
	struct curl_slist *h = NULL;
	struct dv_buf line = DV_BUF_INIT;
	dv_buf_addf(&line, "Content-Type: %s", CONTENT_TYPE);
	h = curl_slist_append(h, (char *)line.data);
	dv_buf_reset(&line);
	dv_buf_addf(&line, "X-Amz-Date: %s", sig.amz_date);
	h = curl_slist_append(h, (char *)line.data);
	if (e->creds.session_token) {
		dv_buf_reset(&line);
		dv_buf_addf(&line, "X-Amz-Security-Token: %s", e->creds.session_token);
		h = curl_slist_append(h, (char *)line.data);
	}
	dv_buf_reset(&line);
	dv_buf_addf(&line, "Authorization: %s", (char *)sig.authorization.data);
	h = curl_slist_append(h, (char *)line.data);
	h = curl_slist_append(h, "Expect:");
	explicit_bzero(line.data, line.len);
	dv_buf_release(&line);
	dv_sigv4_result_release(&sig);

	char url[1024], errbuf[CURL_ERROR_SIZE] = "";
	snprintf(url, sizeof url, "%s/", e->endpoint);
	dv_buf_reset(resp);
	struct sink s = {resp, false};
	CURL *c = e->curl;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "diskvault/" DV_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	CURLcode cc = curl_easy_perform(c);
	curl_slist_free_all(h);
	if (cc != CURLE_OK) {
		if (s.too_big)
			return dv_error(err, DV_E_REMOTE, "EC2 %s: response larger than %u bytes", action,
					DV_EC2_MAX_RESPONSE);
		*retry = curl_retryable(cc);
		return dv_error(err, DV_E_REMOTE, "EC2 %s on %s: %s", action, e->endpoint,
				errbuf[0] ? errbuf : curl_easy_strerror(cc));
	}
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300)
		return 0;
	struct dv_ec2_error ee;
	struct dv_err e2;
	bool parsed = resp->len && dv_ec2_parse_error((char *)resp->data, resp->len, &ee, &e2) == 0;
	const char *code = parsed ? ee.code : "";
	if (code_out)
		snprintf(code_out, 64, "%s", code);
	size_t cl = strlen(code);
	enum dv_code dc = cl > 9 && !strcmp(code + cl - 9, ".NotFound") ? DV_E_NOT_FOUND : DV_E_REMOTE;
	r = dv_error(err, dc, "EC2 %s: HTTP %ld%s%s%s%s%s%s%s", action, status, parsed ? " " : "", code,
		     parsed && ee.message ? ": " : "", parsed && ee.message ? ee.message : "",
		     parsed && ee.request_id ? " (request id " : "", parsed && ee.request_id ? ee.request_id : "",
		     parsed && ee.request_id ? ")" : "");
	*retry = (status >= 500 && status != 501) || status == 429 || code_retryable(code);
	if (parsed)
		dv_ec2_error_release(&ee);
	return r;
}

int dv_ec2_call(struct dv_ec2 *e, const struct dv_ec2_form *f, struct dv_buf *resp, char code_out[64],
		struct dv_err *err)
{
	const char *action = dv_ec2_form_get(f, "Action");
	if (!action)
		DV_BUG("EC2 form without an Action");
	if (code_out)
		code_out[0] = 0;
	struct dv_buf body = DV_BUF_INIT;
	dv_ec2_form_encode(f, &body);
	double start = dv_now();
	int r = 0;
	for (unsigned n = 1;; n++) {
		bool retry;
		r = attempt(e, action, (char *)body.data, resp, code_out, &retry, err);
		if (r == 0 || !retry)
			break;
		double pause = backoff(n);
		if (n >= e->max_attempts || dv_now() - start + pause > e->max_retry_seconds) {
			dv_error_prefix(err, "giving up after %u attempts in %.0f s: ", n, dv_now() - start);
			break;
		}
		dv_debug("retrying in %.2f s: %s", pause, err->msg);
		sleep_s(pause);
	}
	dv_buf_release(&body);
	return r;
}
