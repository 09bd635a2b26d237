/* store_internal.h - the backend vtable behind struct dv_store. */
#ifndef DV_STORE_INTERNAL_H
#define DV_STORE_INTERNAL_H

#include "store.h"

struct dv_store_ops {
	int (*put)(struct dv_store *s, const char *name, const void *data, size_t len, struct dv_err *err);
	int (*put_file)(struct dv_store *s, const char *name, const char *spool_path, struct dv_err *err);
	int (*get_range)(struct dv_store *s, const char *name, uint64_t off, size_t len, bool whole, size_t cap,
			 struct dv_buf *out, struct dv_err *err);
	int (*stat)(struct dv_store *s, const char *name, uint64_t *size, struct dv_err *err);
	int (*list)(struct dv_store *s, const char *prefix, dv_store_list_fn fn, void *ctx, struct dv_err *err);
	int (*del)(struct dv_store *s, const char *name, struct dv_err *err);
	int (*del_many)(struct dv_store *s, char *const *names, size_t n, struct dv_err *err);
	void (*set_readahead)(struct dv_store *s, bool on);  /* NULL: nothing to set */
	void (*free)(struct dv_store *s);
};

struct dv_store {
	const struct dv_store_ops *ops;
	char *location;
	char *spool_dir;
	bool local;
	void *impl;
};

int dv_store_local_open(const char *path, bool create, struct dv_store *s, struct dv_err *err);
/* location is "s3://bucket[/prefix]"; settings from the environment (store_s3.c). */
int dv_store_s3_open(const char *location, bool create, struct dv_store *s, struct dv_err *err);

#endif
