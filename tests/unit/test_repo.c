/* Repository formats: round trips, hostile input, pack files readable by
 * libarchive, manifests that must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/repo_internal.h"

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "%s/dvtest-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void make_id(struct dv_id *id, unsigned n)
{
	char s[32];
	snprintf(s, sizeof s, "chunk-%u", n);
	dv_sha256(s, strlen(s), id);
}

/* Every truncation and many single-byte corruptions of a valid encoding
 * must be refused or decode to something self-consistent: never crash. */
typedef int (*decode_fn)(const uint8_t *p, size_t n);

static void hostile(const struct dv_buf *good, decode_fn decode)
{
	for (size_t len = 0; len < good->len; len++)
		assert_true(decode(good->data, len) < 0);
	uint8_t *copy = malloc(good->len);
	for (size_t i = 0; i < good->len; i++) {
		memcpy(copy, good->data, good->len);
		copy[i] ^= 0xFF;
		(void)decode(copy, good->len);
	}
	free(copy);
}

static int decode_segment(const uint8_t *p, size_t n)
{
	struct dv_index_segment s;
	struct dv_err err;
	int r = dv_index_segment_decode(p, n, &s, "test", &err);
	if (r == 0)
		dv_index_segment_release(&s);
	return r;
}

static void test_index_segment(void **state)
{
	(void)state;
	struct dv_index_segment s = {0};
	s.npacks = 2;
	s.packs = calloc(2, sizeof *s.packs);
	make_id(&s.packs[0].id, 1000);
	s.packs[0].size = 1 << 20;
	s.packs[0].index_offset = 1000;
	s.packs[0].index_len = 64;
	make_id(&s.packs[1].id, 1001);
	s.packs[1].size = 1 << 21;
	s.n = s.cap = 5;
	s.ids = calloc(5, sizeof *s.ids);
	s.locs = calloc(5, sizeof *s.locs);
	for (unsigned i = 0; i < 5; i++) {
		make_id(&s.ids[i], i);
		s.locs[i] = (struct dv_chunk_loc){i % 2, 100 + i, 4096, 512 * (i + 1)};
	}
	struct dv_buf b = DV_BUF_INIT;
	dv_index_segment_encode(&s, &b);
	assert_int_equal(b.len, DV_INDEX_HEADER_SIZE + 2 * DV_INDEX_PACK_SIZE + 5 * DV_INDEX_ENTRY_SIZE);
	struct dv_index_segment d;
	struct dv_err err;
	assert_int_equal(dv_index_segment_decode(b.data, b.len, &d, "seg", &err), 0);
	assert_int_equal(d.n, 5);
	assert_int_equal(d.npacks, 2);
	assert_true(dv_id_eq(&d.packs[1].id, &s.packs[1].id));
	assert_int_equal(d.packs[0].index_offset, 1000);
	for (unsigned i = 0; i < 5; i++) {
		assert_true(dv_id_eq(&d.ids[i], &s.ids[i]));
		assert_int_equal(d.locs[i].pack, s.locs[i].pack);
		assert_int_equal(d.locs[i].stored_len, s.locs[i].stored_len);
		assert_int_equal(d.locs[i].raw_len, s.locs[i].raw_len);
		assert_int_equal(d.locs[i].offset, s.locs[i].offset);
	}
	dv_index_segment_release(&d);
	hostile(&b, decode_segment);
	/* A newer version is refused as such. */
	b.data[8] = 2;
	assert_int_equal(dv_index_segment_decode(b.data, b.len, &d, "seg", &err), -DV_E_VERSION);
	assert_non_null(strstr(err.msg, "version 2"));
	b.data[8] = 1;
	/* An entry pointing past its pack's end is refused. */
	size_t e0 = DV_INDEX_HEADER_SIZE + 2 * DV_INDEX_PACK_SIZE;
	b.data[e0 + 48 + 7] = 0x7f; /* offset huge */
	assert_int_equal(dv_index_segment_decode(b.data, b.len, &d, "seg", &err), -DV_E_CORRUPT);
	assert_non_null(strstr(err.msg, "outside its pack"));
	dv_buf_release(&b);
	dv_index_segment_release(&s);
}

static int decode_disk(const uint8_t *p, size_t n)
{
	struct dv_disk_index d;
	struct dv_err err;
	int r = dv_disk_index_decode(p, n, &d, "test", &err);
	if (r == 0) {
		uint64_t sum = 0;
		for (size_t i = 0; i < d.n; i++)
			sum += d.v[i].length;
		assert_int_equal(sum, d.disk_size);
		dv_disk_index_release(&d);
	}
	return r;
}

static void test_disk_index(void **state)
{
	(void)state;
	struct dv_disk_index d = {0};
	struct dv_id id;
	make_id(&id, 1);
	dv_disk_index_add(&d, DV_EXTENT_DATA, 300000, &id);
	dv_disk_index_add(&d, DV_EXTENT_ZERO, 65536, NULL);
	dv_disk_index_add(&d, DV_EXTENT_ZERO, 4096, NULL); /* merges */
	dv_disk_index_add(&d, DV_EXTENT_UNUSED, 1 << 30, NULL);
	dv_disk_index_add(&d, DV_EXTENT_DATA, 300000, &id);
	assert_int_equal(d.n, 4);
	d.disk_size = 300000 + 65536 + 4096 + (1ull << 30) + 300000;
	struct dv_buf b = DV_BUF_INIT;
	dv_disk_index_encode(&d, &b);
	struct dv_disk_index e;
	struct dv_err err;
	assert_int_equal(dv_disk_index_decode(b.data, b.len, &e, "dix", &err), 0);
	assert_int_equal(e.n, 4);
	assert_int_equal(e.v[1].length, 69632);
	assert_int_equal(e.v[2].type, DV_EXTENT_UNUSED);
	assert_true(dv_id_eq(&e.v[3].id, &id));
	dv_disk_index_release(&e);
	hostile(&b, decode_disk);
	/* Lengths not summing to the disk size. */
	b.data[16] ^= 1;
	assert_int_equal(dv_disk_index_decode(b.data, b.len, &e, "dix", &err), -DV_E_CORRUPT);
	dv_buf_release(&b);
	dv_disk_index_release(&d);
}

static int decode_packix(const uint8_t *p, size_t n)
{
	struct dv_pack_entry *e;
	size_t k;
	struct dv_err err;
	int r = dv_pack_index_decode(p, n, &e, &k, "test", &err);
	if (r == 0)
		free(e);
	return r;
}

static void test_pack_roundtrip(void **state)
{
	(void)state;
	char repo_path[300];
	snprintf(repo_path, sizeof repo_path, "%s/repo", tmpdir);
	struct dv_repo_init_opts io;
	dv_repo_init_opts_default(&io);
	struct dv_err err;
	assert_int_equal(dv_repo_init(repo_path, &io, NULL, &err), 0);
	struct dv_repo *r;
	assert_int_equal(dv_repo_open(repo_path, &r, &err), 0);
	struct dv_pack_writer *w;
	assert_int_equal(dv_pack_writer_new(r, &w, &err), 0);
	enum { N = 20 };
	struct dv_id ids[N];
	uint64_t offs[N];
	struct dv_buf raw[N], comp = DV_BUF_INIT;
	for (unsigned i = 0; i < N; i++) {
		memset(&raw[i], 0, sizeof raw[i]);
		for (unsigned k = 0; k < 1000 + i * 777; k++)
			dv_buf_addf(&raw[i], "%u-%u ", i, k);
		dv_sha256(raw[i].data, raw[i].len, &ids[i]);
		dv_compress(raw[i].data, raw[i].len, 3, &comp);
		assert_int_equal(dv_pack_writer_add(w, &ids[i], comp.data, (uint32_t)comp.len, (uint32_t)raw[i].len,
						    &offs[i], &err),
				 0);
		assert_int_equal(offs[i] % 512, 0); /* ustar: data after a 512-byte header */
	}
	struct dv_pack_info info;
	assert_int_equal(dv_pack_writer_finish(w, &info, &err), 0);
	char name[128], path[512];
	dv_pack_name(name, sizeof name, &info.id);
	snprintf(path, sizeof path, "%s/%s", repo_path, name);
	/* The pack id is the SHA-256 of the file. */
	struct dv_buf file = DV_BUF_INIT;
	assert_int_equal(dv_read_file(path, 1 << 30, &file, &err), 0);
	assert_int_equal(file.len, info.size);
	struct dv_id fid;
	dv_sha256(file.data, file.len, &fid);
	assert_true(dv_id_eq(&fid, &info.id));
	/* libarchive reads it as a tar with the expected members in order. */
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, file.data, file.len), ARCHIVE_OK);
	struct archive_entry *e;
	unsigned i = 0;
	struct dv_buf out = DV_BUF_INIT;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		char hex[DV_ID_HEX_LEN + 1];
		if (i < N) {
			dv_id_hex(hex, &ids[i]);
			assert_int_equal(strncmp(archive_entry_pathname(e), hex, DV_ID_HEX_LEN), 0);
			assert_string_equal(archive_entry_pathname(e) + DV_ID_HEX_LEN, ".zst");
			size_t sz = (size_t)archive_entry_size(e);
			uint8_t *blob = malloc(sz);
			assert_int_equal(archive_read_data(a, blob, sz), (la_ssize_t)sz);
			/* Same bytes at the recorded offset. */
			assert_memory_equal(blob, file.data + offs[i], sz);
			assert_int_equal(dv_decompress(blob, sz, raw[i].len, &out, "blob", &err), 0);
			assert_memory_equal(out.data, raw[i].data, raw[i].len);
			free(blob);
		} else {
			assert_string_equal(archive_entry_pathname(e), DV_PACK_INDEX_NAME);
		}
		i++;
	}
	assert_int_equal(i, N + 1);
	archive_read_free(a);
	/* The pack index member, read by range. */
	struct dv_pack_entry *pe;
	size_t pn;
	assert_int_equal(dv_pack_read_index(r, &info, &pe, &pn, &err), 0);
	assert_int_equal(pn, N);
	for (unsigned k = 0; k < N; k++) {
		assert_true(dv_id_eq(&pe[k].id, &ids[k]));
		assert_int_equal(pe[k].offset, offs[k]);
		assert_int_equal(pe[k].raw_len, raw[k].len);
	}
	struct dv_buf ixb = DV_BUF_INIT;
	dv_pack_index_encode(pe, pn, &ixb);
	hostile(&ixb, decode_packix);
	dv_buf_release(&ixb);
	free(pe);
	/* Reading a chunk through the index verifies it; a flipped bit is caught. */
	struct dv_chunk_index *ix = dv_chunk_index_new();
	uint32_t pno = dv_chunk_index_add_pack(ix, &info);
	for (unsigned k = 0; k < N; k++) {
		dv_compress(raw[k].data, raw[k].len, 3, &comp);
		struct dv_chunk_loc loc = {pno, (uint32_t)comp.len, (uint32_t)raw[k].len, offs[k]};
		dv_chunk_index_insert(ix, &ids[k], &loc);
	}
	struct dv_buf scratch = DV_BUF_INIT;
	assert_int_equal(dv_chunk_read(r, ix, &ids[3], &scratch, &out, &err), 0);
	assert_memory_equal(out.data, raw[3].data, raw[3].len);
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, (long)offs[3] + 20, SEEK_SET);
	int c = fgetc(f);
	fseek(f, (long)offs[3] + 20, SEEK_SET);
	fputc(c ^ 0x10, f);
	fclose(f);
	assert_int_equal(dv_chunk_read(r, ix, &ids[3], &scratch, &out, &err), -DV_E_CORRUPT);
	assert_non_null(strstr(err.msg, "chunk"));
	dv_chunk_index_free(ix);
	dv_buf_release(&scratch);
	for (unsigned k = 0; k < N; k++)
		dv_buf_release(&raw[k]);
	dv_buf_release(&comp);
	dv_buf_release(&out);
	dv_buf_release(&file);
	dv_repo_free(r);
}

static void put_manifest(const char *repo_path, const char *text, char id[DV_ID_HEX_LEN + 1])
{
	struct dv_repo *r;
	struct dv_err err;
	assert_int_equal(dv_repo_open(repo_path, &r, &err), 0);
	assert_int_equal(dv_repo_put_content(r, "snapshots", text, strlen(text), id, &err), 0);
	dv_repo_free(r);
}

#define HMR "\"host\":\"h\",\"mode\":\"all-blocks\",\"repository\":\"r\","

static void test_hostile_manifests(void **state)
{
	(void)state;
	char repo_path[300];
	snprintf(repo_path, sizeof repo_path, "%s/repo2", tmpdir);
	struct dv_repo_init_opts io;
	dv_repo_init_opts_default(&io);
	struct dv_err err;
	assert_int_equal(dv_repo_init(repo_path, &io, NULL, &err), 0);
	static const struct {
		const char *text;
		int code;
		const char *msg;
	} cases[] = {
		{"not json at all", -DV_E_CORRUPT, "not valid JSON"},
		{"[1,2,3]", -DV_E_CORRUPT, "not valid JSON"},
		{"{\"format\":\"diskvault-snapshot\"}", -DV_E_CORRUPT, "version"},
		{"{\"format\":\"diskvault-snapshot\",\"version\":2,\"time\":\"2026-01-01T00:00:00Z\"}", -DV_E_VERSION,
		 "version 2"},
		{"{\"format\":\"other\",\"version\":1}", -DV_E_CORRUPT, "not a snapshot"},
		{"{\"format\":\"diskvault-snapshot\",\"version\":1,\"time\":\"yesterday\",\"disks\":[]}", -DV_E_CORRUPT,
		 "time"},
		{"{\"format\":\"diskvault-snapshot\",\"version\":1,\"time\":\"2026-01-01T00:00:00Z\",\"disks\":[]}",
		 -DV_E_CORRUPT, "'host'"},
		{"{\"format\":\"diskvault-snapshot\",\"version\":1,\"time\":\"2026-01-01T00:00:00Z\"," HMR "\"disks\":[]}",
		 -DV_E_CORRUPT, "no disks"},
		{"{\"format\":\"diskvault-snapshot\",\"version\":1,\"time\":\"2026-01-01T00:00:00Z\"," HMR "\"disks\":[{"
		 "\"index\":\"xyz\",\"digest\":\"00\",\"size\":-1}]}",
		 -DV_E_CORRUPT, "disk 0"},
		{"{\"format\":\"diskvault-snapshot\",\"format\":\"diskvault-snapshot\",\"version\":1}", -DV_E_CORRUPT,
		 "JSON"},
	};
	struct dv_repo *r;
	assert_int_equal(dv_repo_open(repo_path, &r, &err), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char id[DV_ID_HEX_LEN + 1];
		put_manifest(repo_path, cases[i].text, id);
		json_t *m = NULL;
		int rc = dv_snapshot_load(r, id, &m, &err);
		assert_int_equal(rc, cases[i].code);
		assert_non_null(strstr(err.msg, cases[i].msg));
		assert_non_null(strstr(err.msg, "snapshot"));
		assert_null(m);
		/* Remove it again so the next case starts clean. */
		char name[128];
		snprintf(name, sizeof name, "snapshots/%s", id);
		assert_int_equal(dv_store_delete(r->store, name, &err), 0);
	}
	/* Content that does not match its name (bit rot) is refused. */
	char id[DV_ID_HEX_LEN + 1], path[512];
	put_manifest(repo_path, "{\"a\":1}", id);
	snprintf(path, sizeof path, "%s/snapshots/%s", repo_path, id);
	FILE *f = fopen(path, "w");
	fputs("{\"a\":2}", f);
	fclose(f);
	json_t *m = NULL;
	assert_int_equal(dv_snapshot_load(r, id, &m, &err), -DV_E_CORRUPT);
	assert_non_null(strstr(err.msg, "does not match"));
	dv_repo_free(r);
}

static void test_repo_open_errors(void **state)
{
	(void)state;
	struct dv_repo *r;
	struct dv_err err;
	char p[300], cmd[700];
	snprintf(p, sizeof p, "%s/nothing", tmpdir);
	assert_int_equal(dv_repo_open(p, &r, &err), -DV_E_NOT_REPO);
	assert_non_null(strstr(err.msg, p));
	snprintf(p, sizeof p, "%s/v2", tmpdir);
	struct dv_repo_init_opts io;
	dv_repo_init_opts_default(&io);
	assert_int_equal(dv_repo_init(p, &io, NULL, &err), 0);
	/* Rewrite the config with a newer version. */
	snprintf(cmd, sizeof cmd, "sed -i 's/\"version\": 1/\"version\": 7/' '%s/config'", p);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(dv_repo_open(p, &r, &err), -DV_E_VERSION);
	assert_non_null(strstr(err.msg, "version 7"));
	/* init refuses an existing repository. */
	assert_int_equal(dv_repo_init(p, &io, NULL, &err), -DV_E_EXISTS);
}

struct wq_job {
	unsigned n;
	unsigned result;
};

static void wq_work(void *job, void *ctx)
{
	(void)ctx;
	struct wq_job *j = job;
	if (j->n % 3 == 0)
		usleep(200);
	j->result = j->n * 2 + 1;
}

static int count_names(const char *name, uint64_t size, void *ctx)
{
	(void)name, (void)size;
	(*(int *)ctx)++;
	return 0;
}

/* dv_store_delete_many on a local store: objects in several directories
 * go, missing ones (even in a missing directory) are fine, and a bad name
 * is refused before anything is deleted. */
static void test_store_delete_many(void **state)
{
	(void)state;
	char *loc = dv_asprintf("%s/store", tmpdir);
	struct dv_store *s;
	struct dv_err err;
	assert_int_equal(dv_store_open(loc, true, &s, &err), 0);
	assert_int_equal(dv_mkdir_p(dv_store_spool_dir(s), 0700, &err), 0); /* init makes it in a repository */
	const char *put[] = {"packs/aa/1", "packs/aa/2", "packs/bb/3", "index/4", "snapshots/5"};
	for (size_t i = 0; i < DV_ARRAY_SIZE(put); i++)
		assert_int_equal(dv_store_put(s, put[i], "x", 1, &err), 0);
	char a[] = "packs/aa/1", b[] = "packs/bb/3", c[] = "index/4", missing[] = "packs/cc/none", bad[] = "../x";
	char *with_bad[] = {a, bad};
	assert_int_equal(dv_store_delete_many(s, with_bad, 2, &err), -DV_E_USAGE);
	int n = 0;
	assert_int_equal(dv_store_list(s, "packs/", count_names, &n, &err), 0);
	assert_int_equal(n, 3); /* nothing deleted */
	char *names[] = {a, b, c, missing};
	assert_int_equal(dv_store_delete_many(s, names, 4, &err), 0);
	assert_int_equal(dv_store_delete_many(s, names, 0, &err), 0);
	uint64_t size;
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(dv_store_stat(s, names[i], &size, &err), -DV_E_NOT_FOUND);
	assert_int_equal(dv_store_stat(s, "packs/aa/2", &size, &err), 0);
	assert_int_equal(dv_store_stat(s, "snapshots/5", &size, &err), 0);
	/* again: all missing now */
	assert_int_equal(dv_store_delete_many(s, names, 4, &err), 0);
	dv_store_free(s);
	free(loc);
}

static void test_workq_order(void **state)
{
	(void)state;
	struct dv_workq *q = dv_workq_new(3, 5, wq_work, NULL);
	struct wq_job jobs[200];
	unsigned next = 0;
	for (unsigned i = 0; i < 200; i++) {
		jobs[i].n = i;
		void *done;
		dv_workq_submit(q, &jobs[i], &done);
		if (done) {
			struct wq_job *j = done;
			assert_int_equal(j->n, next);
			assert_int_equal(j->result, next * 2 + 1);
			next++;
		}
		assert_true(dv_workq_outstanding(q) <= 5);
	}
	struct wq_job *j;
	while ((j = dv_workq_collect(q))) {
		assert_int_equal(j->n, next);
		next++;
	}
	assert_int_equal(next, 200);
	dv_workq_free(q);
}

/* prune's choice: most unused bytes per used byte first, until what is left
 * is within the limit; the repack cap passes over packs that do not fit. */
static void test_prune_select(void **state)
{
	(void)state;
	static const struct {
		uint64_t used, unused;
	} packs[] = {
		{100, 0},   /* nothing unused: never rewritten */
		{0, 500},   /* nothing used: deleted, not rewritten */
		{10, 90},   /* ratio 9 */
		{50, 50},   /* ratio 1 */
		{100, 300}, /* ratio 3 */
		{1000, 100} /* ratio 0.1 */
	};
	static const struct {
		uint64_t limit, max_repack, left;
		const char *marked; /* '1' per pack rewritten */
	} cases[] = {
		{0, DV_PRUNE_UNLIMITED, 0, "001111"},
		{DV_PRUNE_UNLIMITED, DV_PRUNE_UNLIMITED, 540, "000000"},
		{540, DV_PRUNE_UNLIMITED, 540, "000000"},
		{539, DV_PRUNE_UNLIMITED, 450, "001000"},
		{450, DV_PRUNE_UNLIMITED, 450, "001000"},
		{200, DV_PRUNE_UNLIMITED, 150, "001010"},
		{100, DV_PRUNE_UNLIMITED, 100, "001110"},
		{99, DV_PRUNE_UNLIMITED, 0, "001111"},
		{0, 60, 400, "001100"},  /* 100 used of pack 4 do not fit after 10 */
		{0, 0, 540, "000000"},
		{0, 1160, 0, "001111"},
	};
	enum { N = sizeof packs / sizeof packs[0] };
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct dv_prune_pack v[N];
		for (size_t i = 0; i < N; i++)
			v[i] = (struct dv_prune_pack){packs[i].used, packs[i].unused, i % 2 == 0};
		assert_int_equal(dv_prune_select(v, N, cases[c].limit, cases[c].max_repack), cases[c].left);
		char got[N + 1];
		for (size_t i = 0; i < N; i++)
			got[i] = v[i].repack ? '1' : '0';
		got[N] = 0;
		assert_string_equal(got, cases[c].marked);
	}
	/* equal ratios: the pack with more unused bytes first */
	struct dv_prune_pack t[3] = {{10, 20, false}, {20, 40, false}, {5, 10, false}};
	assert_int_equal(dv_prune_select(t, 3, 30, DV_PRUNE_UNLIMITED), 30);
	assert_true(!t[0].repack && t[1].repack && !t[2].repack);
	assert_int_equal(dv_prune_select(NULL, 0, 0, DV_PRUNE_UNLIMITED), 0);

	struct dv_prune_opts o;
	dv_prune_opts_init(&o);
	assert_true(o.max_unused_pct == 5.0 && o.max_repack_bytes == DV_PRUNE_UNLIMITED && !o.dry_run);
	assert_int_equal(dv_prune_unused_limit(&o, 950), 50); /* 50 of 1000 after prune */
	assert_int_equal(dv_prune_unused_limit(&o, 0), 0);
	o.max_unused_pct = 0;
	assert_int_equal(dv_prune_unused_limit(&o, 1u << 30), 0);
	o.max_unused_pct = 50;
	assert_int_equal(dv_prune_unused_limit(&o, 1234), 1234);
	o.max_unused_pct = 99.999999;
	assert_true(dv_prune_unused_limit(&o, UINT64_MAX / 2) == DV_PRUNE_UNLIMITED);
	o.max_unused_pct = -1;
	o.max_unused_bytes = 200u << 20;
	assert_int_equal(dv_prune_unused_limit(&o, 1), 200u << 20);
	o.max_unused_bytes = DV_PRUNE_UNLIMITED;
	assert_true(dv_prune_unused_limit(&o, 1) == DV_PRUNE_UNLIMITED);
}

/* The accounting prune and check share: one copy of each used chunk (the
 * first in segment order) is used, every further copy in another pack and
 * every unused chunk is unused; a pack two segments name counts once. */
static void test_usage_count(void **state)
{
	(void)state;
	struct dv_pack_info pk[3];
	struct dv_id ch[5]; /* chunks 0..2 used, 3..4 not */
	memset(pk, 0, sizeof pk);
	for (int i = 0; i < 3; i++)
		pk[i].id.b[0] = (uint8_t)(0x10 + i);
	memset(ch, 0, sizeof ch);
	for (int i = 0; i < 5; i++)
		ch[i].b[0] = (uint8_t)(0x20 + i);
	/* segment 0: pack A {0:100, 1:200, 3:50}, pack B {1:210, 2:300}
	 * segment 1: pack B again (the same entries), pack C {0:105, 4:70, 2:300} */
	static const struct {
		int seg, pack, chunk;
		uint32_t len;
	} e[] = {{0, 0, 0, 100}, {0, 0, 1, 200}, {0, 0, 3, 50}, {0, 1, 1, 210}, {0, 1, 2, 300},
		 {1, 1, 1, 210}, {1, 1, 2, 300}, {1, 2, 0, 105}, {1, 2, 4, 70},  {1, 2, 2, 300}};
	struct dv_index_segment segs[2];
	memset(segs, 0, sizeof segs);
	for (int s = 0; s < 2; s++) {
		segs[s].npacks = 3;
		segs[s].packs = dv_calloc(3, sizeof *segs[s].packs);
		memcpy(segs[s].packs, pk, sizeof pk);
		segs[s].ids = dv_calloc(DV_ARRAY_SIZE(e), sizeof *segs[s].ids);
		segs[s].locs = dv_calloc(DV_ARRAY_SIZE(e), sizeof *segs[s].locs);
	}
	for (size_t i = 0; i < DV_ARRAY_SIZE(e); i++) {
		struct dv_index_segment *sg = &segs[e[i].seg];
		sg->ids[sg->n] = ch[e[i].chunk];
		sg->locs[sg->n] = (struct dv_chunk_loc){.pack = (uint32_t)e[i].pack, .stored_len = e[i].len};
		sg->n++;
	}
	struct dv_chunk_index *ref = dv_chunk_index_new();
	for (int i = 0; i < 3; i++)
		assert_true(dv_chunk_index_insert(ref, &ch[i], &(struct dv_chunk_loc){0}));
	struct dv_usage u;
	dv_usage_count(&u, segs, 2, ref);
	assert_int_equal(u.npacks, 3);
	/* A: 0 and 1 kept, 3 unused; B: 2 kept, 1 a duplicate; C: all unused */
	static const uint64_t used[3] = {300, 300, 0}, unused[3] = {50, 210, 475};
	for (int i = 0; i < 3; i++) {
		assert_true(dv_id_eq(&u.packs[i].info.id, &pk[i].id));
		assert_int_equal(u.packs[i].used_bytes, used[i]);
		assert_int_equal(u.packs[i].unused_bytes, unused[i]);
	}
	assert_int_equal(u.packs[1].seg, 0);
	assert_int_equal(u.packs[2].seg, 1);
	assert_int_equal(u.used_bytes, 600);
	assert_int_equal(u.unused_bytes, 735);
	/* further copies of used chunks: 1 in B, 0 and 2 in C */
	assert_int_equal(u.duplicates, 3);
	assert_int_equal(u.duplicate_bytes, 210 + 105 + 300);
	struct dv_chunk_loc kept;
	assert_true(dv_chunk_index_lookup(u.chosen, &ch[1], &kept));
	assert_int_equal(kept.pack, 0);
	assert_false(dv_chunk_index_lookup(u.chosen, &ch[3], NULL));
	dv_usage_release(&u);
	/* nothing used: all unused, no duplicates */
	struct dv_chunk_index *none = dv_chunk_index_new();
	dv_usage_count(&u, segs, 2, none);
	assert_int_equal(u.used_bytes, 0);
	assert_int_equal(u.unused_bytes, 100 + 200 + 50 + 210 + 300 + 105 + 70 + 300);
	assert_int_equal(u.duplicates, 0);
	dv_usage_release(&u);
	dv_chunk_index_free(none);
	dv_chunk_index_free(ref);
	for (int s = 0; s < 2; s++)
		dv_index_segment_release(&segs[s]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_segment),
		cmocka_unit_test(test_disk_index),
		cmocka_unit_test(test_pack_roundtrip),
		cmocka_unit_test(test_hostile_manifests),
		cmocka_unit_test(test_repo_open_errors),
		cmocka_unit_test(test_store_delete_many),
		cmocka_unit_test(test_workq_order),
		cmocka_unit_test(test_prune_select),
		cmocka_unit_test(test_usage_count),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
