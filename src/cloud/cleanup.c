/*
 * cleanup.c - removes what launch created (instances, AMIs, EBS snapshots
 * tagged diskvault:created-by=diskvault and with the given tag) and the EBS
 * snapshots ebs-import made of a snapshot (cloud.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud.h"
#include "cloud_internal.h"

/* Calls form (plus NextToken pages) and collects ids with parse. */
static int describe_all(struct dv_ec2 *ec2, const char *action, const struct dv_ec2_filter *filters, size_t nf,
			bool owner_self, json_t *out, struct dv_err *err)
{
	struct dv_buf resp = DV_BUF_INIT;
	char *token = NULL;
	int r = 0;
	do {
		struct dv_ec2_form f;
		dv_ec2_form_init(&f, action);
		if (owner_self)
			dv_ec2_form_add(&f, "Owner.1", "self");
		dv_ec2_form_add_filters(&f, filters, nf);
		if (token)
			dv_ec2_form_add(&f, "NextToken", token);
		free(token);
		token = NULL;
		r = dv_ec2_call(ec2, &f, &resp, NULL, err);
		dv_ec2_form_release(&f);
		if (r < 0)
			break;
		const char *next = NULL;
		if (!strcmp(action, "DescribeInstances")) {
			struct dv_ec2_instances l;
			if ((r = dv_ec2_parse_instances((char *)resp.data, resp.len, &l, err)) < 0)
				break;
			for (size_t i = 0; i < l.n; i++)
				if (!l.v[i].state || strcmp(l.v[i].state, "terminated"))
					json_array_append_new(out, json_pack("{s:s, s:s}", "id", l.v[i].id, "state",
									     l.v[i].state ? l.v[i].state : "?"));
			next = l.next_token;
			token = next && *next ? dv_strdup(next) : NULL;
			dv_ec2_instances_release(&l);
		} else if (!strcmp(action, "DescribeImages")) {
			struct dv_ec2_images l;
			if ((r = dv_ec2_parse_images((char *)resp.data, resp.len, &l, err)) < 0)
				break;
			for (size_t i = 0; i < l.n; i++)
				json_array_append_new(out, json_pack("{s:s, s:s}", "id", l.v[i].id, "name",
								     l.v[i].name ? l.v[i].name : ""));
			next = l.next_token;
			token = next && *next ? dv_strdup(next) : NULL;
			dv_ec2_images_release(&l);
		} else {
			struct dv_ec2_snapshots l;
			if ((r = dv_ec2_parse_snapshots((char *)resp.data, resp.len, &l, err)) < 0)
				break;
			for (size_t i = 0; i < l.n; i++)
				json_array_append_new(out, json_pack("{s:s, s:s}", "id", l.v[i].id, "state",
								     l.v[i].state ? l.v[i].state : "?"));
			next = l.next_token;
			token = next && *next ? dv_strdup(next) : NULL;
			dv_ec2_snapshots_release(&l);
		}
	} while (token);
	free(token);
	dv_buf_release(&resp);
	return r;
}

static int simple_call(struct dv_ec2 *ec2, const char *action, const char *param, const char *id, struct dv_err *err)
{
	struct dv_ec2_form f;
	struct dv_buf resp = DV_BUF_INIT;
	dv_ec2_form_init(&f, action);
	dv_ec2_form_add(&f, param, id);
	int r = dv_ec2_call(ec2, &f, &resp, NULL, err);
	if (r == 0 && strcmp(action, "TerminateInstances"))
		r = dv_ec2_parse_return((char *)resp.data, resp.len, action, err);
	dv_ec2_form_release(&f);
	dv_buf_release(&resp);
	return r;
}

void dv_cloud_cleanup_result_release(struct dv_cloud_cleanup_result *res)
{
	json_decref(res->instances);
	json_decref(res->images);
	json_decref(res->snapshots);
	memset(res, 0, sizeof *res);
}

int dv_cloud_cleanup(const struct dv_cloud_cleanup_opts *o, const struct dv_cloud_cb *cb,
		     struct dv_cloud_cleanup_result *res, struct dv_err *err)
{
	struct dv_ec2 *ec2 = NULL;
	json_t *insts = json_array(), *images = json_array(), *snaps = json_array();
	res->instances = insts;
	res->images = images;
	res->snapshots = snaps;
	int r = 0;
	char fname[200];
	snprintf(fname, sizeof fname, "tag:%s", o->tag_key);
	const char *marker[1] = {"diskvault"}, *val[1] = {o->tag_value};
	const char *live[5] = {"pending", "running", "stopping", "stopped", "shutting-down"};
	struct dv_ec2_filter filt[3] = {
		{"tag:" DV_TAG_CREATED_BY, marker, 1},
		{fname, val, 1},
		{"instance-state-name", live, 5},
	};
	if ((r = dv_cloud_ec2(o->region, &ec2, err)) < 0 ||
	    (r = describe_all(ec2, "DescribeInstances", filt, 3, false, insts, err)) < 0 ||
	    (r = describe_all(ec2, "DescribeImages", filt, 2, true, images, err)) < 0 ||
	    (r = describe_all(ec2, "DescribeSnapshots", filt, 2, true, snaps, err)) < 0)
		goto out;
	if (o->imports) {
		/* EBS snapshots ebs-import made of this snapshot (tag diskvault:snapshot),
		 * launched or not: diskvault created them too */
		const char *sid[1] = {o->tag_value};
		struct dv_ec2_filter imp = {"tag:diskvault:snapshot", sid, 1};
		json_t *more = json_array();
		if ((r = describe_all(ec2, "DescribeSnapshots", &imp, 1, true, more, err)) < 0) {
			json_decref(more);
			goto out;
		}
		size_t k;
		json_t *m;
		json_array_foreach(more, k, m) {
			bool dup = false;
			size_t q;
			json_t *s;
			json_array_foreach(snaps, q, s) dup |= json_equal(json_object_get(s, "id"), json_object_get(m, "id"));
			if (!dup)
				json_array_append(snaps, m);
		}
		json_decref(more);
	}
	if (o->dry_run)
		goto out;
	size_t i;
	json_t *e;
	json_array_foreach(insts, i, e) {
		if (!strcmp(json_string_value(json_object_get(e, "state")), "shutting-down"))
			continue;
		if ((r = simple_call(ec2, "TerminateInstances", "InstanceId.1", json_string_value(json_object_get(e, "id")),
				     err)) < 0)
			goto out;
	}
	json_array_foreach(images, i, e)
		if ((r = simple_call(ec2, "DeregisterImage", "ImageId", json_string_value(json_object_get(e, "id")), err)) <
		    0)
			goto out;
	json_array_foreach(snaps, i, e)
		if ((r = simple_call(ec2, "DeleteSnapshot", "SnapshotId", json_string_value(json_object_get(e, "id")),
				     err)) < 0)
			goto out;
	/* wait until the instances are gone, so "nothing left" is true on return */
	double limit = dv_cloud_wait_limit(), start = dv_now();
	while (!o->no_wait && json_array_size(insts)) {
		json_t *left = json_array();
		if ((r = describe_all(ec2, "DescribeInstances", filt, 3, false, left, err)) < 0) {
			json_decref(left);
			goto out;
		}
		size_t n = json_array_size(left);
		json_decref(left);
		if (!n)
			break;
		if (dv_now() - start > limit || dv_cloud_interrupted(cb)) {
			r = dv_error(err, DV_E_REMOTE, "%zu instance(s) not terminated after %.0f s", n, dv_now() - start);
			goto out;
		}
		dv_cloud_pause(dv_cloud_poll_interval());
	}
out:
	dv_ec2_free(ec2);
	return r;
}
