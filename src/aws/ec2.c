/*
 * ec2.c - EC2 query API: forms, response parsing and a small signed,
 * retrying client. Responses are walked by the module's one expat walker
 * (xml.h); signing, credentials, configuration, INI parsing and URI
 * encoding are aws.h's; signing each attempt, curl, the backoff and the
 * retry loop are http.c's, so the client here only judges EC2's answers.
 */
#include "ec2.h"
#include "http_internal.h"
#include "xml.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void dv_ec2_form_set(struct dv_ec2_form *f, const char *key, const char *value)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->keys[i], key)) {
			free(f->values[i]);
			f->values[i] = dv_strdup(value ? value : "");
			return;
		}
	DV_BUG("EC2 form without the key to set");
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

/*
 * The list answers share one shape: <Root> holds a set of <item> elements
 * (one vector entry each, which must carry its id) and maybe <nextToken>.
 * A table per answer says where those are and how an item's fields are
 * read; list_end walks any of them.
 */
struct list_kind {
	const char *what;             /* "EC2 DescribeImages", for messages */
	const char *const *roots;     /* NULL-terminated root elements ... */
	const char *const *items;     /* ... and the item path under each */
	const char *token;            /* path of nextToken, or NULL */
	const char *unexpected;       /* appended to "unexpected response" */
	const char *malformed;        /* why an answer is "malformed" */
	size_t size;                  /* of one item */
	size_t key;                   /* offset of the char * every item needs */
	void (*field)(void *item, const char *f, const char *text, bool *bad);
	void (*free_item)(void *item);
	void (*reset)(void *item);    /* after memset 0; or NULL */
};

struct list_ctx {
	const struct list_kind *k;
	void *v;
	size_t n;
	char **next_token;
	void *cur;
	bool bad, root_ok;
};

static void item_reset(const struct list_kind *k, void *item)
{
	memset(item, 0, k->size);
	if (k->reset)
		k->reset(item);
}

/* The finished item joins the vector (refusing absurd counts). */
static void list_push(struct list_ctx *c)
{
	const struct list_kind *k = c->k;
	if (!*(char **)((char *)c->cur + k->key) || c->n >= XML_MAX_ITEMS) {
		c->bad = true;
		k->free_item(c->cur);
	} else {
		c->v = dv_realloc(c->v, (c->n + 1) * k->size);
		memcpy((char *)c->v + c->n++ * k->size, c->cur, k->size);
	}
	item_reset(k, c->cur);
}

static void list_end(void *ctx, const char *path, const char *text)
{
	struct list_ctx *c = ctx;
	const struct list_kind *k = c->k;
	if (k->token && !strcmp(path, k->token)) {
		set_str(c->next_token, text);
		return;
	}
	for (size_t i = 0; k->roots[i]; i++) {
		const char *f;
		if (!strcmp(path, k->roots[i]))
			c->root_ok = true;
		else if (!strcmp(path, k->items[i]))
			list_push(c);
		else if ((f = under(path, k->items[i])))
			k->field(c->cur, f, text, &c->bad);
		else
			continue;
		return;
	}
}

/* Walks xml into a vector of k->size items (*v, *n; freed by the caller on
 * failure too) and *next_token. cur: room for one item. */
static int parse_list(const char *xml, size_t len, const struct list_kind *k, void **v, size_t *n, char **next_token,
		      void *cur, struct dv_err *err)
{
	struct list_ctx c = {.k = k, .next_token = next_token, .cur = cur};
	item_reset(k, cur);
	int r = walk(xml, len, k->what, list_end, &c, err);
	k->free_item(cur);
	*v = c.v;
	*n = c.n;
	if (r == 0 && !c.root_ok)
		r = dv_error(err, DV_E_REMOTE, "%s: unexpected response%s", k->what, k->unexpected);
	if (r == 0 && c.bad)
		r = dv_error(err, DV_E_REMOTE, "%s: malformed response (%s)", k->what, k->malformed);
	return r;
}

static void list_release(const struct list_kind *k, void *v, size_t n, char *next_token)
{
	for (size_t i = 0; i < n; i++)
		k->free_item((char *)v + i * k->size);
	free(v);
	free(next_token);
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

/* ---- instances ---- */

static void inst_free(void *p)
{
	struct dv_ec2_instance *i = p;
	free(i->id);
	free(i->type);
	free(i->state);
	free(i->image_id);
	free(i->private_ip);
	free(i->public_ip);
	memset(i, 0, sizeof *i);
}

static void inst_field(void *p, const char *f, const char *text, bool *bad)
{
	struct dv_ec2_instance *i = p;
	(void)bad;
	if (!strcmp(f, "instanceId"))
		set_str(&i->id, text);
	else if (!strcmp(f, "instanceType"))
		set_str(&i->type, text);
	else if (!strcmp(f, "instanceState/name") || !strcmp(f, "currentState/name"))
		set_str(&i->state, text);
	else if (!strcmp(f, "imageId"))
		set_str(&i->image_id, text);
	else if (!strcmp(f, "privateIpAddress"))
		set_str(&i->private_ip, text);
	else if (!strcmp(f, "ipAddress"))
		set_str(&i->public_ip, text);
}

static const char *const inst_roots[] = {"RunInstancesResponse", "DescribeInstancesResponse",
					 "TerminateInstancesResponse", NULL};
static const char *const inst_items[] = {"RunInstancesResponse/instancesSet/item",
					 "DescribeInstancesResponse/reservationSet/item/instancesSet/item",
					 "TerminateInstancesResponse/instancesSet/item"};
static const struct list_kind inst_kind = {
	.what = "EC2 instances",
	.roots = inst_roots,
	.items = inst_items,
	.token = "DescribeInstancesResponse/nextToken",
	.unexpected = " (not Run/Describe/TerminateInstances)",
	.malformed = "an instance without an id, or too many",
	.size = sizeof(struct dv_ec2_instance),
	.key = offsetof(struct dv_ec2_instance, id),
	.field = inst_field,
	.free_item = inst_free,
};

void dv_ec2_instances_release(struct dv_ec2_instances *l)
{
	list_release(&inst_kind, l->v, l->n, l->next_token);
	memset(l, 0, sizeof *l);
}

int dv_ec2_parse_instances(const char *xml, size_t len, struct dv_ec2_instances *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct dv_ec2_instance cur;
	void *v;
	int r = parse_list(xml, len, &inst_kind, &v, &out->n, &out->next_token, &cur, err);
	out->v = v;
	if (r < 0)
		dv_ec2_instances_release(out);
	return r;
}

/* ---- images ---- */

static void img_free(void *p)
{
	struct dv_ec2_image *i = p;
	free(i->id);
	free(i->name);
	free(i->state);
	for (size_t k = 0; k < i->nsnapshots; k++)
		free(i->snapshots[k]);
	free(i->snapshots);
	memset(i, 0, sizeof *i);
}

static void img_field(void *p, const char *f, const char *text, bool *bad)
{
	struct dv_ec2_image *i = p;
	if (!strcmp(f, "imageId")) {
		set_str(&i->id, text);
	} else if (!strcmp(f, "name")) {
		set_str(&i->name, text);
	} else if (!strcmp(f, "imageState")) {
		set_str(&i->state, text);
	} else if (!strcmp(f, "blockDeviceMapping/item/ebs/snapshotId") && *text) {
		if (i->nsnapshots >= 64) {
			*bad = true;
			return;
		}
		i->snapshots = dv_realloc(i->snapshots, (i->nsnapshots + 1) * sizeof(char *));
		i->snapshots[i->nsnapshots++] = dv_strdup(text);
	}
}

static const char *const img_roots[] = {"DescribeImagesResponse", NULL};
static const char *const img_items[] = {"DescribeImagesResponse/imagesSet/item"};
static const struct list_kind img_kind = {
	.what = "EC2 DescribeImages",
	.roots = img_roots,
	.items = img_items,
	.token = "DescribeImagesResponse/nextToken",
	.unexpected = "",
	.malformed = "an image without an id, or too many",
	.size = sizeof(struct dv_ec2_image),
	.key = offsetof(struct dv_ec2_image, id),
	.field = img_field,
	.free_item = img_free,
};

void dv_ec2_images_release(struct dv_ec2_images *l)
{
	list_release(&img_kind, l->v, l->n, l->next_token);
	memset(l, 0, sizeof *l);
}

int dv_ec2_parse_images(const char *xml, size_t len, struct dv_ec2_images *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct dv_ec2_image cur;
	void *v;
	int r = parse_list(xml, len, &img_kind, &v, &out->n, &out->next_token, &cur, err);
	out->v = v;
	if (r < 0)
		dv_ec2_images_release(out);
	return r;
}

/* ---- snapshots ---- */

static void snap_free(void *p)
{
	struct dv_ec2_snapshot *s = p;
	free(s->id);
	free(s->state);
	free(s->description);
	for (size_t i = 0; i < s->ntags; i++) {
		free(s->tag_keys[i]);
		free(s->tag_values[i]);
	}
	free(s->tag_keys);
	free(s->tag_values);
	memset(s, 0, sizeof *s);
}

/* EC2 allows 50 tags per resource. */
#define SNAP_MAX_TAGS 64

const char *dv_ec2_snapshot_tag(const struct dv_ec2_snapshot *s, const char *key)
{
	for (size_t i = 0; i < s->ntags; i++)
		if (!strcmp(s->tag_keys[i], key))
			return s->tag_values[i];
	return NULL;
}

static void snap_field(void *p, const char *f, const char *text, bool *bad)
{
	struct dv_ec2_snapshot *s = p;
	if (!strcmp(f, "snapshotId"))
		set_str(&s->id, text);
	else if (!strcmp(f, "status"))
		set_str(&s->state, text);
	else if (!strcmp(f, "description"))
		set_str(&s->description, text);
	else if (!strcmp(f, "volumeSize") && !parse_u64(text, 1u << 20, &s->volume_size_gib))
		*bad = true;
	else if (!strcmp(f, "tagSet/item/key")) {
		/* a key starts a tag; its value (the next field) fills it in */
		if (s->ntags >= SNAP_MAX_TAGS) {
			*bad = true;
			return;
		}
		s->tag_keys = dv_realloc(s->tag_keys, (s->ntags + 1) * sizeof(char *));
		s->tag_values = dv_realloc(s->tag_values, (s->ntags + 1) * sizeof(char *));
		s->tag_keys[s->ntags] = dv_strdup(text);
		s->tag_values[s->ntags++] = dv_strdup("");
	} else if (!strcmp(f, "tagSet/item/value") && s->ntags) {
		free(s->tag_values[s->ntags - 1]);
		s->tag_values[s->ntags - 1] = dv_strdup(text);
	}
}

static const char *const snap_roots[] = {"DescribeSnapshotsResponse", NULL};
static const char *const snap_items[] = {"DescribeSnapshotsResponse/snapshotSet/item"};
static const struct list_kind snap_kind = {
	.what = "EC2 DescribeSnapshots",
	.roots = snap_roots,
	.items = snap_items,
	.token = "DescribeSnapshotsResponse/nextToken",
	.unexpected = "",
	.malformed = "bad snapshot id or size",
	.size = sizeof(struct dv_ec2_snapshot),
	.key = offsetof(struct dv_ec2_snapshot, id),
	.field = snap_field,
	.free_item = snap_free,
};

void dv_ec2_snapshots_release(struct dv_ec2_snapshots *l)
{
	list_release(&snap_kind, l->v, l->n, l->next_token);
	memset(l, 0, sizeof *l);
}

int dv_ec2_parse_snapshots(const char *xml, size_t len, struct dv_ec2_snapshots *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct dv_ec2_snapshot cur;
	void *v;
	int r = parse_list(xml, len, &snap_kind, &v, &out->n, &out->next_token, &cur, err);
	out->v = v;
	if (r < 0)
		dv_ec2_snapshots_release(out);
	return r;
}

/* ---- instance types ---- */

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

static void type_free(void *p)
{
	struct dv_ec2_type_info *t = p;
	free(t->type);
	t->type = NULL;
}

static void type_reset(void *p)
{
	struct dv_ec2_type_info *t = p;
	t->burstable = -1;
}

static void type_field(void *p, const char *f, const char *text, bool *bad)
{
	struct dv_ec2_type_info *t = p;
	uint64_t v;
	if (!strcmp(f, "instanceType")) {
		set_str(&t->type, text);
	} else if (!strcmp(f, "processorInfo/supportedArchitectures/item")) {
		list_add(t->architectures, sizeof t->architectures, text, bad);
	} else if (!strcmp(f, "vCpuInfo/defaultVCpus")) {
		if (parse_u64(text, 4096, &v) && v)
			t->vcpus = (unsigned)v;
		else
			*bad = true;
	} else if (!strcmp(f, "memoryInfo/sizeInMiB")) {
		if (parse_u64(text, 1ull << 36, &v) && v)
			t->memory_mib = v;
		else
			*bad = true;
	} else if (!strcmp(f, "burstablePerformanceSupported")) {
		if (!strcmp(text, "true"))
			t->burstable = 1;
		else if (!strcmp(text, "false"))
			t->burstable = 0;
		else
			*bad = true;
	} else if (!strcmp(f, "networkInfo/enaSupport")) {
		copy_short(t->ena, sizeof t->ena, text, bad);
	} else if (!strcmp(f, "ebsInfo/nvmeSupport")) {
		copy_short(t->nvme, sizeof t->nvme, text, bad);
	} else if (!strcmp(f, "supportedBootModes/item")) {
		list_add(t->boot_modes, sizeof t->boot_modes, text, bad);
	}
}

static const char *const type_roots[] = {"DescribeInstanceTypesResponse", NULL};
static const char *const type_items[] = {"DescribeInstanceTypesResponse/instanceTypeSet/item"};
static const struct list_kind type_kind = {
	.what = "EC2 DescribeInstanceTypes",
	.roots = type_roots,
	.items = type_items,
	.token = "DescribeInstanceTypesResponse/nextToken",
	.unexpected = "",
	.malformed = "bad or missing values",
	.size = sizeof(struct dv_ec2_type_info),
	.key = offsetof(struct dv_ec2_type_info, type),
	.field = type_field,
	.free_item = type_free,
	.reset = type_reset,
};

void dv_ec2_type_infos_release(struct dv_ec2_type_infos *l)
{
	list_release(&type_kind, l->v, l->n, l->next_token);
	memset(l, 0, sizeof *l);
}

int dv_ec2_parse_instance_types(const char *xml, size_t len, struct dv_ec2_type_infos *out, struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	struct dv_ec2_type_info cur;
	void *v;
	int r = parse_list(xml, len, &type_kind, &v, &out->n, &out->next_token, &cur, err);
	out->v = v;
	if (r < 0)
		dv_ec2_type_infos_release(out);
	return r;
}

/* ---- signing -------------------------------------------------------------- */

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
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
	CURL *curl;
	struct dv_http_client http;  /* retry policy and hooks (http_internal.h) */
};

static char *xstrdup(const char *s) { return s ? dv_strdup(s) : NULL; }

static int ec2_prepare(void *svc, CURL *c, struct dv_http_req *rq, struct dv_err *err)
{
	struct dv_ec2 *e = svc;
	struct dv_http_signer sg = {
		.creds = &e->creds, .region = e->region, .time = dv_unix_now(), .normalize_path = true};
	return dv_http_setup(&e->http, c, rq, &sg, err);
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

static enum dv_http_verdict ec2_classify(void *svc, CURL *c, struct dv_http_req *rq, CURLcode cc, struct dv_err *err)
{
	struct dv_ec2 *e = svc;
	char what[96];
	snprintf(what, sizeof what, "EC2 %s", rq->op);
	enum dv_http_verdict v = dv_http_finish(&e->http, c, rq, cc, what, DV_E_REMOTE, err);
	if (v != DV_HTTP_STATUS)
		return v;
	struct dv_ec2_error ee;
	struct dv_err e2;
	bool parsed = rq->resp->len && dv_ec2_parse_error((char *)rq->resp->data, rq->resp->len, &ee, &e2) == 0;
	const char *code = parsed ? ee.code : "";
	snprintf(rq->code, sizeof rq->code, "%s", code);
	size_t cl = strlen(code);
	enum dv_code dc = cl > 9 && !strcmp(code + cl - 9, ".NotFound") ? DV_E_NOT_FOUND : DV_E_REMOTE;
	dv_http_error(err, dc, what, rq->status, code, parsed ? ee.message : NULL, parsed ? ee.request_id : NULL);
	bool retry = (rq->status >= 500 && rq->status != 501) || rq->status == 429 || code_retryable(code);
	if (parsed)
		dv_ec2_error_release(&ee);
	return retry ? DV_HTTP_RETRY : DV_HTTP_FAIL;
}

int dv_ec2_new(const struct dv_aws_config *cfg, const struct dv_aws_creds *creds, const char *endpoint,
	       struct dv_ec2 **out, struct dv_err *err)
{
	*out = NULL;
	char *ep = NULL;
	int r = dv_aws_endpoint_resolve(cfg, "ec2", endpoint, &ep, NULL, err);
	if (r < 0)
		return r;
	const char *h = strstr(ep, "://") + 3;
	size_t hn = strcspn(h, "/?#");
	if (!hn || h[hn]) {
		r = dv_error(err, DV_E_USAGE, "EC2 endpoint '%s' must be scheme://host[:port] without a path", ep);
		free(ep);
		return r;
	}
	dv_http_global_init();
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
	e->http = (struct dv_http_client){
		.backoff_base = 0.25,
		.max_attempts = v && atoi(v) > 0 ? (unsigned)atoi(v) : 8,
		.prepare = ec2_prepare,
		.classify = ec2_classify,
		.svc = e,
	};
	v = env("DISKVAULT_EC2_RETRY_SECONDS");
	e->http.max_retry_seconds = v && atof(v) > 0 ? atof(v) : 120;
	e->curl = dv_http_easy();
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
	struct dv_http_req rq;
	dv_http_req_init(&rq, "POST", e->endpoint, e->host);
	rq.service = "ec2";
	rq.op = action;
	dv_http_add_header(&rq, "Content-Type", CONTENT_TYPE);
	rq.has_body = true;
	rq.body = body.data;
	rq.body_len = body.len;
	rq.resp = resp;
	rq.cap = rq.err_cap = DV_EC2_MAX_RESPONSE;
	int r = dv_http_perform(&e->http, e->curl, &rq, err);
	if (r < 0 && code_out)
		snprintf(code_out, 64, "%.63s", rq.code);
	dv_http_req_release(&rq);
	dv_buf_release(&body);
	return r;
}
