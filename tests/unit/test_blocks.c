/* The fixed-size block view of a snapshot: bytes equal the source disk,
 * and signatures find exactly the changed blocks between two snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/repo_internal.h"

#define BS (512u * 1024)
#define DISK (24u * 1024 * 1024 + 12345) /* not a multiple of the block size */

static char dir[256];

static void write_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static void backup(struct dv_repo *r, const char *img, char id[DV_ID_HEX_LEN + 1])
{
	struct dv_backup_source src = {img};
	struct dv_backup_opts o;
	memset(&o, 0, sizeof o);
	o.all_blocks = true;
	o.threads = 2;
	struct dv_stats st;
	struct dv_err err;
	int rc = dv_backup(r, &src, 1, &o, id, &st, &err);
	if (rc < 0)
		fail_msg("backup: %s", err.msg);
}

static void test_blocks(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/dvblocks-XXXXXX");
	assert_non_null(mkdtemp(dir));
	char repo_path[300], img[300];
	snprintf(repo_path, sizeof repo_path, "%s/repo", dir);
	snprintf(img, sizeof img, "%s/disk.img", dir);
	uint8_t *disk = calloc(1, DISK);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < DISK; i++) {
		/* Data, then a long zero run (blocks 8..15), then more data. */
		if (i >= 8 * BS && i < 16 * BS)
			continue;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		disk[i] = (uint8_t)(i % 7 ? x : i);
	}
	write_file(img, disk, DISK);
	struct dv_repo_init_opts io;
	dv_repo_init_opts_default(&io);
	struct dv_err err;
	assert_int_equal(dv_repo_init(repo_path, &io, NULL, &err), 0);
	struct dv_repo *r;
	assert_int_equal(dv_repo_open(repo_path, &r, &err), 0);
	char a[DV_ID_HEX_LEN + 1], b[DV_ID_HEX_LEN + 1];
	backup(r, img, a);
	/* Change 3 bytes in block 3 and one in the last block. */
	disk[3 * BS + 1000] ^= 1;
	disk[3 * BS + 1001] ^= 1;
	disk[DISK - 5] ^= 0x55;
	write_file(img, disk, DISK);
	backup(r, img, b);

	struct dv_block_reader *ra, *rb;
	assert_int_equal(dv_block_reader_open(r, a, 0, BS, &ra, &err), 0);
	assert_int_equal(dv_block_reader_open(r, b, 0, BS, &rb, &err), 0);
	uint64_t n = dv_block_reader_count(rb);
	assert_int_equal(n, (DISK + BS - 1) / BS);
	assert_int_equal(dv_block_reader_disk_size(rb), DISK);
	uint8_t *buf = malloc(BS);
	size_t changed = 0, empty = 0;
	for (uint64_t i = 0; i < n; i++) {
		assert_int_equal(dv_block_reader_read(rb, i, buf, &err), 0);
		size_t len = i + 1 < n ? BS : DISK - i * BS;
		assert_memory_equal(buf, disk + i * BS, len);
		for (size_t k = len; k < BS; k++)
			assert_int_equal(buf[k], 0); /* padding */
		bool da, db;
		struct dv_id sa, sb;
		dv_block_reader_info(ra, i, &da, &sa);
		dv_block_reader_info(rb, i, &db, &sb);
		if (!db)
			empty++;
		if (!dv_id_eq(&sa, &sb))
			changed++;
	}
	/* The zero run is blocks 8..15: no data there. */
	assert_int_equal(empty, 8);
	/* Changed blocks: those covered by the changed chunks. A chunk is at
	 * most 1 MiB, so each edit touches at most 3 blocks. */
	assert_true(changed >= 2 && changed <= 6);
	bool d3;
	struct dv_id s3a, s3b;
	dv_block_reader_info(ra, 3, &d3, &s3a);
	dv_block_reader_info(rb, 3, &d3, &s3b);
	assert_false(dv_id_eq(&s3a, &s3b));
	assert_int_equal(dv_block_reader_read(rb, n, buf, &err), -DV_E_USAGE);

	/* Byte ranges at odd offsets, across chunks and the zero run, and the
	 * same through the reader's dv_source. */
	struct dv_source vs;
	dv_block_reader_source(rb, "snapshot b", &vs);
	assert_int_equal(vs.size, DISK);
	uint64_t y = 1;
	for (int k = 0; k < 200; k++) {
		y = y * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t off = (y >> 11) % DISK;
		size_t len = (size_t)DV_MIN((y >> 40) % (3 * BS), DISK - off);
		uint8_t *big = malloc(len + 1);
		assert_int_equal(k % 2 ? dv_block_reader_pread(rb, off, big, len, &err)
				       : dv_source_read(&vs, off, big, len, &err),
				 0);
		assert_memory_equal(big, disk + off, len);
		free(big);
	}
	uint8_t one;
	assert_int_equal(dv_block_reader_pread(rb, DISK - 1, &one, 1, &err), 0);
	assert_int_equal(one, disk[DISK - 1]);
	assert_int_equal(dv_block_reader_pread(rb, DISK - 1, buf, 2, &err), -DV_E_USAGE);
	dv_source_close(&vs);
	/* The zero run is one zero extent that ends where the data resumes
	 * (the chunker finds zeros at its own granularity inside it). */
	int type;
	uint64_t run;
	dv_block_reader_extent(rb, 10 * BS, &type, &run);
	assert_int_equal(type, DV_EXTENT_ZERO);
	assert_true(10 * BS + run <= 16 * BS && 10 * BS + run > 15 * BS);
	dv_block_reader_extent(rb, 3 * BS, &type, &run);
	assert_int_equal(type, DV_EXTENT_DATA);
	assert_true(run > 0 && run <= (1u << 20));
	dv_block_reader_extent(rb, DISK, &type, &run);
	assert_int_equal(run, 0);
	free(buf);
	dv_block_reader_free(ra);
	dv_block_reader_free(rb);
	dv_repo_free(r);
	free(disk);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_blocks)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
