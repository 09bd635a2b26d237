#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* Names are relative, slash-separated, and never escape the store. */
static int check_name(const char *name, struct dv_err *err)
{
	if (!*name || name[0] == '/' || strstr(name, "..") || strlen(name) > 512)
		return dv_error(err, DV_E_USAGE, "invalid object name '%s'", name);
	return 0;
}

int dv_store_open(const char *location, bool create, struct dv_store **out, struct dv_err *err)
{
	struct dv_store *s = dv_calloc(1, sizeof *s);
	s->location = dv_strdup(location);
	int r = !strncmp(location, "s3://", 5) ? dv_store_s3_open(location, create, s, err)
					       : dv_store_local_open(location, create, s, err);
	if (r < 0) {
		free(s->location);
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

void dv_store_free(struct dv_store *s)
{
	if (!s)
		return;
	s->ops->free(s);
	free(s->location);
	free(s->spool_dir);
	free(s);
}

const char *dv_store_location(const struct dv_store *s) { return s->location; }
const char *dv_store_spool_dir(const struct dv_store *s) { return s->spool_dir; }
bool dv_store_is_local(const struct dv_store *s) { return s->local; }

int dv_store_put(struct dv_store *s, const char *name, const void *data, size_t len, struct dv_err *err)
{
	int r = check_name(name, err);
	return r < 0 ? r : s->ops->put(s, name, data, len, err);
}

int dv_store_put_file(struct dv_store *s, const char *name, const char *spool_path, struct dv_err *err)
{
	int r = check_name(name, err);
	return r < 0 ? r : s->ops->put_file(s, name, spool_path, err);
}

int dv_store_get(struct dv_store *s, const char *name, size_t cap, struct dv_buf *out, struct dv_err *err)
{
	int r = check_name(name, err);
	return r < 0 ? r : s->ops->get_range(s, name, 0, 0, true, cap, out, err);
}

int dv_store_get_range(struct dv_store *s, const char *name, uint64_t off, size_t len, struct dv_buf *out,
		       struct dv_err *err)
{
	int r = check_name(name, err);
	return r < 0 ? r : s->ops->get_range(s, name, off, len, false, 0, out, err);
}

int dv_store_stat(struct dv_store *s, const char *name, uint64_t *size, struct dv_err *err)
{
	int r = check_name(name, err);
	return r < 0 ? r : s->ops->stat(s, name, size, err);
}

int dv_store_list(struct dv_store *s, const char *prefix, dv_store_list_fn fn, void *ctx, struct dv_err *err)
{
	return s->ops->list(s, prefix, fn, ctx, err);
}

static int add_name(const char *name, uint64_t size, void *ctx)
{
	(void)size;
	dv_strlist_add(ctx, name);
	return 0;
}

int dv_store_list_names(struct dv_store *s, const char *prefix, struct dv_strlist *out, struct dv_err *err)
{
	dv_strlist_clear(out);
	return dv_store_list(s, prefix, add_name, out, err);
}

int dv_store_delete(struct dv_store *s, const char *name, struct dv_err *err)
{
	int r = check_name(name, err);
	return r < 0 ? r : s->ops->del(s, name, err);
}

int dv_store_delete_many(struct dv_store *s, char *const *names, size_t n, struct dv_err *err)
{
	for (size_t i = 0; i < n; i++) {
		int r = check_name(names[i], err);
		if (r < 0)
			return r;
	}
	return n ? s->ops->del_many(s, names, n, err) : 0;
}

void dv_store_set_readahead(struct dv_store *s, bool on)
{
	if (s->ops->set_readahead)
		s->ops->set_readahead(s, on);
}
