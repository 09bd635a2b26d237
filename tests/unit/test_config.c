/* test_config.c - the config file parser on good and hostile input, the
 * file and secret-file permission rules, and precedence (file < env). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/config.h"

static char tmpdir[64];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/dv-test-config.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	(void)state;
	char *cmd = dv_asprintf("rm -rf '%s'", tmpdir);
	int r = system(cmd);
	free(cmd);
	return r == 0 ? 0 : -1;
}

/* Parses text; returns the result code, err filled. */
static int parse(const char *text, struct dv_config **out, struct dv_err *err)
{
	struct dv_config *c = dv_config_new();
	dv_err_clear(err);
	int r = dv_config_parse(c, "t.conf", text, strlen(text), err);
	if (out)
		*out = c;
	else
		dv_config_free(c);
	return r;
}

/* Asserts that text fails with a message holding want. */
static void expect_fail(const char *text, const char *want)
{
	struct dv_err err;
	int r = parse(text, NULL, &err);
	if (r == 0 || !strstr(err.msg, want))
		fail_msg("input %s\nexpected an error containing '%s', got %d: %s", text, want, r, err.msg);
	assert_int_equal(r, -DV_E_USAGE);
	assert_int_equal(err.code, DV_E_USAGE);
	assert_true(!strncmp(err.msg, "t.conf:", 7)); /* always names file:line */
}

static void test_good_file(void **state)
{
	(void)state;
	const char *text = "\xef\xbb\xbf# diskvault\r\n"
			   "; another comment\n"
			   "\n"
			   "[repository]\r\n"
			   "  path =   /srv/backup/repo   # where\n"
			   "[ backup ]   # spaces inside the brackets\n"
			   "sources = /dev/sda, /dev/sdb \"/srv/img/my disk.img\"\n"
			   "name = \"nightly # not a comment\"\n"
			   "tags=a,b  c\n"
			   "all_blocks = yes\n"
			   "sha256 = off\n"
			   "threads = 008\n"
			   "host = db#1\n"
			   "[retention]\n"
			   "keep_daily = 7\n"
			   "keep_weekly = 0\n"
			   "keep_within = 1d12h\n"
			   "max_unused = 12.5%\n"
			   "max_repack_size = 1.5GiB\n"
			   "[s3]\n"
			   "endpoint = https://minio.local:9000/\n"
			   "sse = aws:kms\n"
			   "storage_class = GLACIER_IR\n"
			   "[paths]\n"
			   "state_dir = /var/lib/diskvault"; /* no final newline */
	struct dv_config *c;
	struct dv_err err;
	assert_int_equal(parse(text, &c, &err), 0);
	unsigned line = 0;
	assert_string_equal(dv_config_file_value(c, "repository", "path", &line), "/srv/backup/repo");
	assert_int_equal(line, 5);
	assert_string_equal(dv_config_file_value(c, "backup", "name", NULL), "nightly # not a comment");
	assert_string_equal(dv_config_file_value(c, "backup", "all_blocks", NULL), "true");
	assert_string_equal(dv_config_file_value(c, "backup", "sha256", NULL), "false");
	assert_string_equal(dv_config_file_value(c, "backup", "threads", NULL), "8");
	assert_string_equal(dv_config_file_value(c, "backup", "host", NULL), "db#1");
	assert_string_equal(dv_config_file_value(c, "retention", "keep_within", NULL), "1d12h");
	assert_string_equal(dv_config_file_value(c, "paths", "state_dir", &line), "/var/lib/diskvault");
	assert_int_equal(line, 25);
	assert_string_equal(dv_config_file_value(c, "retention", "max_unused", NULL), "12.5%");
	assert_null(dv_config_file_value(c, "retention", "keep_last", NULL));
	assert_null(dv_config_file_value(c, "nosuch", "key", NULL));

	char **list;
	assert_int_equal(dv_config_split(dv_config_file_value(c, "backup", "sources", NULL), &list), 3);
	assert_string_equal(list[0], "/dev/sda");
	assert_string_equal(list[1], "/dev/sdb");
	assert_string_equal(list[2], "/srv/img/my disk.img");
	assert_null(list[3]);
	dv_config_list_free(list);
	assert_int_equal(dv_config_split(dv_config_file_value(c, "backup", "tags", NULL), &list), 3);
	assert_string_equal(list[2], "c");
	dv_config_list_free(list);
	dv_config_free(c);
}

static void test_split(void **state)
{
	(void)state;
	char **l;
	assert_int_equal(dv_config_split(NULL, &l), 0);
	assert_null(l[0]);
	dv_config_list_free(l);
	assert_int_equal(dv_config_split("  ,, ", &l), 0);
	dv_config_list_free(l);
	assert_int_equal(dv_config_split("\"a \\\"q\\\" \\\\ b\",x", &l), 2);
	assert_string_equal(l[0], "a \"q\" \\ b");
	assert_string_equal(l[1], "x");
	dv_config_list_free(l);
	assert_int_equal(dv_config_split("\"unterminated item", &l), 1); /* never reads past the end */
	assert_string_equal(l[0], "unterminated item");
	dv_config_list_free(l);
	assert_int_equal(dv_config_split("\"\"", &l), 1);
	assert_string_equal(l[0], "");
	dv_config_list_free(l);
	dv_config_list_free(NULL);
}

static void test_syntax_errors(void **state)
{
	(void)state;
	expect_fail("path = /x\n", "t.conf:1: 'path' is outside any [section]");
	expect_fail("[repository]\n\njunk\n", "t.conf:3: expected 'key = value'");
	expect_fail("[repository\n", "t.conf:1: section header without ']'");
	expect_fail("[repository] x\n", "t.conf:1: text after the section header");
	expect_fail("[Repository]\n", "invalid section name");
	expect_fail("[]\n", "invalid section name");
	expect_fail("[global]\n", "t.conf:1: unknown section [global]");
	expect_fail("[repository]\npath2 = /x\n", "t.conf:2: unknown key 'path2' in [repository] (known: path,");
	expect_fail("[backup]\nSources = /x\n", "t.conf:2: invalid key name 'Sources'");
	expect_fail("[backup]\n = /x\n", "invalid key name ''");
	expect_fail("[backup]\nsources\n", "t.conf:2: expected 'key = value'");
	expect_fail("[repository]\npath = /a\n\npath = /b\n", "t.conf:4: repository.path is already set on line 2");
	expect_fail("[backup]\nname =\n", "t.conf:2: backup.name has an empty value");
	expect_fail("[backup]\nname = # only a comment\n", "has an empty value");
	expect_fail("[backup]\nname = \"\"\n", "has an empty value");
	expect_fail("[backup]\nname = \"abc\n", "t.conf:2: backup.name: unterminated quote");
	expect_fail("[backup]\nname = \"abc\" def\n", "text after the closing quote");
	expect_fail("[backup]\nname = a\033[31mred\n", "t.conf:2: control character 0x1b");
	expect_fail("[backup]\nname = a\rb\n", "control character 0x0d");
	expect_fail("[backup]\nname = a\x7f\n", "control character 0x7f");
	/* a NUL byte inside a line */
	struct dv_err err;
	struct dv_config *c = dv_config_new();
	static const char nul[] = "[backup]\nname = a\0b\n";
	assert_int_equal(dv_config_parse(c, "t.conf", nul, sizeof nul - 1, &err), -DV_E_USAGE);
	assert_string_equal(err.msg, "t.conf:2: NUL byte");
	dv_config_free(c);
	/* an overlong line */
	char *big = dv_malloc(DV_CONFIG_MAX_LINE + 64);
	memset(big, 'a', DV_CONFIG_MAX_LINE + 32);
	memcpy(big, "[backup]\nname = ", 16);
	big[DV_CONFIG_MAX_LINE + 32] = 0;
	expect_fail(big, "t.conf:2: line longer than");
	free(big);
}

static void test_secrets_refused(void **state)
{
	(void)state;
	static const char *const keys[] = {"password", "repo_password", "passwd", "passphrase", "secret",
					   "secret_access_key", "aws_secret_access_key", "access_key_id",
					   "session_token", "token", "private_key", "credentials"};
	static const char *const sections[] = {"repository", "s3", "backup"};
	for (size_t s = 0; s < DV_ARRAY_SIZE(sections); s++)
		for (size_t k = 0; k < DV_ARRAY_SIZE(keys); k++) {
			char *t = dv_asprintf("[%s]\n%s = hunter2\n", sections[s], keys[k]);
			expect_fail(t, "secrets are not allowed in the config file");
			struct dv_err err;
			parse(t, NULL, &err);
			assert_null(strstr(err.msg, "hunter2")); /* the secret is never echoed */
			free(t);
		}
	/* file paths of secrets are fine (or merely unknown keys) */
	struct dv_err err;
	assert_int_equal(parse("[repository]\npassword_file = /etc/diskvault/pw\n", NULL, &err), 0);
	assert_int_equal(parse("[s3]\ncredentials_file = /root/.aws/credentials\n", NULL, &err), 0);
	assert_int_equal(parse("[repository]\npassword_command = systemd-creds cat dv-pass\n", NULL, &err), 0);
	expect_fail("[repository]\npassword_cmd = x\n", "secrets are not allowed");
	expect_fail("[s3]\nsecret_file = /x\n", "unknown key 'secret_file'");
	/* credentials inside the endpoint URL */
	expect_fail("[s3]\nendpoint = https://AKIA:hunter2@minio:9000\n", "must not carry user or password");
	expect_fail("[s3]\nendpoint = https://user@minio:9000/path\n", "must not carry user or password");
	assert_int_equal(parse("[s3]\nendpoint = https://minio:9000/a@b\n", NULL, &err), 0);
}

static void test_bad_values(void **state)
{
	(void)state;
	expect_fail("[backup]\nall_blocks = maybe\n", "t.conf:2: backup.all_blocks = maybe: must be true or false");
	expect_fail("[backup]\nthreads = 0\n", "must be between 1 and 256");
	expect_fail("[backup]\nthreads = 257\n", "must be between 1 and 256");
	expect_fail("[backup]\nthreads = -1\n", "must be a decimal number");
	expect_fail("[backup]\nthreads = 4x\n", "must be a decimal number");
	expect_fail("[backup]\nthreads = 99999999999999999999999\n", "must be between");
	expect_fail("[retention]\nkeep_daily = 1e3\n", "must be a decimal number");
	expect_fail("[retention]\nrepack_threshold = 20\n",
		    "t.conf:2: [retention] repack_threshold was replaced by max_unused (repository-wide budget for "
		    "unused data, default 5%) and max_repack_size");
	expect_fail("[retention]\nmax_unused = 100%\n", "must be a percentage below 100");
	expect_fail("[retention]\nmax_unused = -1%\n", "must be a percentage below 100");
	expect_fail("[retention]\nmax_unused = 5 %\n", "must be a percentage below 100");
	expect_fail("[retention]\nmax_unused = lots\n", "must be a percentage below 100");
	expect_fail("[retention]\nmax_repack_size = 2X\n", "must be a size");
	expect_fail("[retention]\nmax_repack_size = 1.\n", "must be a size");
	/* 1y is valid since issue 16 (restic's units); fractions are not */
	expect_fail("[retention]\nkeep_within = 1.5d\n", "must be a duration");
	expect_fail("[retention]\nkeep_within = 90s\n", "must be a duration");
	expect_fail("[retention]\nkeep_within = inf\n", "must be a duration");
	expect_fail("[repository]\nlock_wait = 1y\n", "must be a duration");
	expect_fail("[retention]\nkeep_within = d\n", "must be a duration");
	expect_fail("[retention]\nkeep_within = 3dd\n", "must be a duration");
	expect_fail("[retention]\nkeep_within = 1.d\n", "must be a duration");
	expect_fail("[repository]\nlock_wait = soon\n", "must be a duration");
	expect_fail("[repository]\npath = relative/repo\n", "absolute path or s3://");
	expect_fail("[repository]\npath = s3://\n", "expected s3://bucket");
	expect_fail("[repository]\npath = s3:///prefix\n", "expected s3://bucket");
	expect_fail("[backup]\nsources = /dev/sda sdb\n", "items must be absolute paths");
	expect_fail("[backup]\nsources = /dev/sda \"\"\n", "has an empty item");
	expect_fail("[backup]\ntags = ,,\n", "is an empty list");
	expect_fail("[backup]\nhost = two words\n", "one word");
	expect_fail("[s3]\nsse = aes256\n", "must be one of: AES256|aws:kms");
	expect_fail("[s3]\naddressing = dns\n", "must be one of: path|virtual");
	expect_fail("[s3]\nendpoint = minio:9000\n", "must start with http:// or https://");
	expect_fail("[s3]\nendpoint = http://\n", "must be a URL");
	expect_fail("[paths]\ncache_dir = ~/.cache\n", "must be an absolute path");
	expect_fail("[repository]\npassword_file = pw.txt\n", "must be an absolute path");
	struct dv_err err;
	assert_int_equal(parse("[repository]\npath = s3://bucket/some/prefix\nlock_wait = 90s\n", NULL, &err), 0);
	assert_int_equal(parse("[retention]\nkeep_within = 36h\nkeep_last = 0\n", NULL, &err), 0);
}

/* Random and mutated input: no crash, no read past the end (ASan), and
 * every failure names t.conf:LINE. */
/* The sizes and limits of prune's --max-unused / --max-repack-size. */
static void test_sizes(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{"0", 0}, {"4096", 4096}, {"4096B", 4096}, {"1k", 1024}, {"1K", 1024}, {"200M", 200ull << 20},
		{"1.5G", 3ull << 29}, {"1.5GiB", 3ull << 29}, {"2TB", 2ull << 40}, {"0.5m", 512ull << 10},
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		uint64_t v = 1;
		assert_true(dv_parse_size(good[i].s, &v));
		assert_int_equal(v, good[i].v);
	}
	static const char *const bad[] = {"", "M", "-1", "1.", ".5", "1X", "1MM", "1 M", "1Mi", "1e3", "9000000T",
					  "5%", "unlimited", "1234567890123456", "1.5", "1.5B"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint64_t v = 7;
		assert_false(dv_parse_size(bad[i], &v));
		assert_int_equal(v, 7);
	}
	double pct;
	uint64_t bytes;
	assert_true(dv_config_parse_unused("5%", &pct, &bytes));
	assert_true(pct == 5.0 && bytes == UINT64_MAX);
	assert_true(dv_config_parse_unused("0%", &pct, &bytes));
	assert_true(pct == 0.0);
	assert_true(dv_config_parse_unused("99.5%", &pct, &bytes));
	assert_true(pct == 99.5);
	assert_true(dv_config_parse_unused("0", &pct, &bytes));
	assert_true(pct < 0 && bytes == 0);
	assert_true(dv_config_parse_unused("200M", &pct, &bytes));
	assert_true(pct < 0 && bytes == 200ull << 20);
	assert_true(dv_config_parse_unused("unlimited", &pct, &bytes));
	assert_true(pct < 0 && bytes == UINT64_MAX);
	static const char *const badu[] = {"100%", "150%", "-5%", "%", "5%%", "5 %", "1.%", "Unlimited", "none", ""};
	for (size_t i = 0; i < sizeof badu / sizeof badu[0]; i++)
		assert_false(dv_config_parse_unused(badu[i], &pct, &bytes));
}

static void test_hostile_random(void **state)
{
	(void)state;
	static const char seed_text[] = "[repository]\npath = /r\n[backup]\nsources = \"/a b\", /c\ntags = x\n"
					"[retention]\nkeep_daily = 7\n[s3]\nendpoint = http://h:1\n";
	static const char alphabet[] = "[]=#;\" \t\n\r,\\/ab_19sdkeep_daily\x01\xff";
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int iter = 0; iter < 20000; iter++) {
		char buf[256];
		size_t n = sizeof seed_text - 1;
		memcpy(buf, seed_text, n);
		int edits = 1 + iter % 8;
		for (int e = 0; e < edits; e++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			size_t pos = (size_t)(x % n);
			int op = (int)((x >> 20) % 3);
			char ch = iter % 5 == 0 ? (char)(x >> 32) : alphabet[(x >> 32) % (sizeof alphabet - 1)];
			if (op == 0)
				buf[pos] = ch;
			else if (op == 1 && n > 1) {
				memmove(buf + pos, buf + pos + 1, n - pos - 1);
				n--;
			} else if (n < sizeof buf - 1) {
				memmove(buf + pos + 1, buf + pos, n - pos);
				buf[pos] = ch;
				n++;
			}
		}
		/* parse exactly n bytes from a heap copy so ASan sees overreads */
		char *copy = dv_malloc(n ? n : 1);
		memcpy(copy, buf, n);
		struct dv_config *c = dv_config_new();
		struct dv_err err;
		dv_err_clear(&err);
		int r = dv_config_parse(c, "t.conf", copy, n, &err);
		if (r < 0) {
			assert_int_equal(r, -DV_E_USAGE);
			if (strncmp(err.msg, "t.conf:", 7))
				fail_msg("error without file:line: %s", err.msg);
		}
		dv_config_free(c);
		free(copy);
	}
}

static char *write_file(const char *name, const char *text, mode_t mode)
{
	char *p = dv_asprintf("%s/%s", tmpdir, name);
	unlink(p);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(p, mode), 0);
	return p;
}

static int load(const char *path, struct dv_err *err)
{
	struct dv_config *c = dv_config_new();
	dv_err_clear(err);
	int r = dv_config_load_file(c, path, err);
	dv_config_free(c);
	return r;
}

static void test_file_rules(void **state)
{
	(void)state;
	struct dv_err err;
	char *pw = write_file("pw", "hunter2\n", 0600);
	char *text = dv_asprintf("[repository]\npath = /srv/r\npassword_file = %s\n", pw);

	/* a config naming a secret file: 0600 ok, 0640/0604 refused */
	char *conf = write_file("a.conf", text, 0600);
	assert_int_equal(load(conf, &err), 0);
	assert_int_equal(chmod(conf, 0640), 0);
	assert_int_equal(load(conf, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "names a secret file (repository.password_file on line 3)"));
	assert_non_null(strstr(err.msg, "readable by group or others (mode 0640)"));
	assert_non_null(strstr(err.msg, "chmod 600"));
	assert_int_equal(chmod(conf, 0604), 0);
	assert_int_equal(load(conf, &err), -DV_E_USAGE);
	assert_int_equal(chmod(conf, 0400), 0);
	assert_int_equal(load(conf, &err), 0);

	/* the secret file itself must be 0600 or 0400 */
	assert_int_equal(chmod(pw, 0644), 0);
	assert_int_equal(load(conf, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, ":3: secret file"));
	assert_non_null(strstr(err.msg, "has mode 0644"));
	assert_null(strstr(err.msg, "hunter2"));
	assert_int_equal(chmod(pw, 0660), 0);
	assert_int_equal(load(conf, &err), -DV_E_USAGE);
	assert_int_equal(chmod(pw, 0400), 0);
	assert_int_equal(load(conf, &err), 0);

	/* missing or not a regular file */
	char *t2 = dv_asprintf("[s3]\ncredentials_file = %s/nope\n", tmpdir);
	char *conf2 = write_file("b.conf", t2, 0600);
	assert_int_equal(load(conf2, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "b.conf:2: s3.credentials_file"));
	assert_non_null(strstr(err.msg, "No such file"));
	free(t2);
	t2 = dv_asprintf("[s3]\ncredentials_file = %s\n", tmpdir);
	free(write_file("b.conf", t2, 0600));
	assert_int_equal(load(conf2, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "not a regular file"));

	/* a config without secret files may be world-readable, never
	 * world-writable */
	char *conf3 = write_file("c.conf", "[repository]\npath = /srv/r\n", 0644);
	assert_int_equal(load(conf3, &err), 0);
	assert_int_equal(chmod(conf3, 0646), 0);
	assert_int_equal(load(conf3, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "writable by others"));

	/* not a file, missing, /dev/null, too large */
	assert_int_equal(load(tmpdir, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "not a regular file"));
	char *missing = dv_asprintf("%s/missing.conf", tmpdir);
	assert_int_equal(load(missing, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "No such file"));
	assert_int_equal(load("/dev/null", &err), 0);
	char *huge = dv_malloc(DV_CONFIG_MAX_SIZE + 2);
	memset(huge, '#', DV_CONFIG_MAX_SIZE + 1);
	huge[DV_CONFIG_MAX_SIZE + 1] = 0;
	char *conf4 = write_file("d.conf", huge, 0600);
	assert_int_equal(load(conf4, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "larger than"));
	/* an error inside a loaded file names the file and line */
	char *conf5 = write_file("e.conf", "[repository]\n\npath = rel\n", 0600);
	assert_int_equal(load(conf5, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "e.conf:3: repository.path"));

	free(huge);
	free(missing);
	free(t2);
	free(text);
	free(pw);
	free(conf);
	free(conf2);
	free(conf3);
	free(conf4);
	free(conf5);
}

static void test_precedence(void **state)
{
	(void)state;
	struct dv_err err;
	char *conf = write_file("p.conf",
				"[repository]\npath = /from/file\n[backup]\nsources = /dev/sda /dev/sdb\n"
				"[s3]\nregion = eu-west-1\nstorage_class = STANDARD_IA\nprofile = backup\n"
				"[paths]\ncache_dir = /var/cache/dv\n",
				0600);
	unsetenv("DISKVAULT_REPO");
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("DISKVAULT_S3_STORAGE_CLASS");
	unsetenv("DISKVAULT_CACHE_DIR");
	unsetenv("AWS_PROFILE");
	setenv("AWS_DEFAULT_PROFILE", "envprofile", 1);
	setenv("DISKVAULT_S3_STORAGE_CLASS", "GLACIER_IR", 1);
	char *argv[] = {"diskvault", "backup", "--config", conf, NULL};
	assert_int_equal(dv_config_setup(4, argv, &err), 0);
	assert_string_equal(dv_config_path(), conf);
	/* file values, exported for the store where the env had none */
	assert_string_equal(dv_config_get("repository", "path"), "/from/file");
	assert_string_equal(dv_config_get("s3", "region"), "eu-west-1");
	assert_string_equal(getenv("AWS_REGION"), "eu-west-1");
	assert_string_equal(getenv("DISKVAULT_CACHE_DIR"), "/var/cache/dv");
	/* the environment wins, also through an alternative variable */
	assert_string_equal(dv_config_get("s3", "storage_class"), "GLACIER_IR");
	assert_string_equal(getenv("DISKVAULT_S3_STORAGE_CLASS"), "GLACIER_IR");
	assert_string_equal(dv_config_get("s3", "profile"), "envprofile");
	assert_null(getenv("AWS_PROFILE"));
	/* defaults and lists */
	assert_false(dv_config_get_bool("backup", "all_blocks", true));
	assert_string_equal(dv_config_get("backup", "all_blocks"), "false");
	size_t n;
	const char *const *src = dv_config_get_list("backup", "sources", &n);
	assert_int_equal(n, 2);
	assert_string_equal(src[1], "/dev/sdb");
	assert_null(src[2]);
	assert_int_equal(dv_config_get_list("backup", "tags", &n)[0] == NULL, 1);
	assert_int_equal(n, 0);
	/* sources of each setting */
	for (size_t i = 0; i < dv_config_count(); i++) {
		struct dv_config_setting s;
		dv_config_setting_at(i, &s);
		if (!strcmp(s.key, "region")) {
			assert_int_equal(s.source, DV_CONFIG_SRC_FILE);
			assert_int_equal(s.line, 6);
		} else if (!strcmp(s.key, "storage_class")) {
			assert_int_equal(s.source, DV_CONFIG_SRC_ENV);
			assert_string_equal(s.env_used, "DISKVAULT_S3_STORAGE_CLASS");
		} else if (!strcmp(s.key, "profile")) {
			assert_string_equal(s.env_used, "AWS_DEFAULT_PROFILE");
		} else if (!strcmp(s.key, "sha256")) {
			assert_int_equal(s.source, DV_CONFIG_SRC_DEFAULT);
		} else if (!strcmp(s.key, "password_file")) {
			assert_true(s.secret_file);
			assert_null(s.value);
		}
	}
	/* DISKVAULT_S3_REGION outranks AWS_REGION (which holds the file's value) */
	setenv("DISKVAULT_S3_REGION", "ap-south-1", 1);
	assert_string_equal(dv_config_get("s3", "region"), "ap-south-1");
	unsetenv("DISKVAULT_S3_REGION");
	assert_string_equal(dv_config_get("s3", "region"), "eu-west-1");
	/* the environment's DISKVAULT_REPO beats the file */
	setenv("DISKVAULT_REPO", "/from/env", 1);
	assert_string_equal(dv_config_get("repository", "path"), "/from/env");
	unsetenv("DISKVAULT_REPO");

	/* --config=FILE form, "--" ends the scan, a bad file is an error */
	char *bad = write_file("bad.conf", "[nope]\n", 0600);
	char *eq = dv_asprintf("--config=%s", bad);
	char *argv2[] = {"diskvault", eq, "list", "--", "--config", conf, NULL};
	assert_int_equal(dv_config_setup(6, argv2, &err), -DV_E_USAGE);
	assert_non_null(strstr(err.msg, "bad.conf:1: unknown section [nope]"));
	char *argv3[] = {"diskvault", "--config=", "list", NULL};
	assert_int_equal(dv_config_setup(3, argv3, &err), -DV_E_USAGE);
	/* DISKVAULT_CONFIG, then no file at all */
	setenv("DISKVAULT_CONFIG", "/dev/null", 1);
	char *argv4[] = {"diskvault", "list", NULL};
	assert_int_equal(dv_config_setup(2, argv4, &err), 0);
	assert_string_equal(dv_config_path(), "/dev/null");
	assert_null(dv_config_get("backup", "sources"));
	unsetenv("DISKVAULT_CONFIG");
	unsetenv("AWS_DEFAULT_PROFILE");
	free(eq);
	free(bad);
	free(conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_secrets_refused),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_hostile_random),
		cmocka_unit_test(test_file_rules),
		cmocka_unit_test(test_precedence),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
