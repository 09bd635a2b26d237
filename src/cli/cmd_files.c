/* cmd_files.c - `diskvault ls`, `cat` and `extract`: a snapshot's files
 * (src/files/, docs/files.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "files/files.h"
#include "repo/repo.h"

static const char ls_help[] =
	"usage: diskvault --repo PATH ls SNAPSHOT[:VOLUME][/PATH] [-l] [--json]\n"
	"Lists a directory of a snapshot's filesystem (or one file), read straight from the\n"
	"repository (local or S3): no restore, no root, no mount. SNAPSHOT is 'latest' or an id\n"
	"prefix; VOLUME a partition (p2, disk1-p2), an LVM LV (vg/lv) or a disk (disk0), by\n"
	"default the volume holding the OS (else the largest filesystem); PATH starts with '/'.\n"
	"Examples: ls latest:/etc   ls 3fa2:p1/boot   ls latest:centos/root/var/log -l\n"
	"ext2/3/4 only; other filesystems: `diskvault mount`. See docs/files.md.\n"
	"  -l, --long    mode, links, numeric owner and group, size, mtime, symlink target\n"
	"  --json        one JSON object per entry, one per line\n";

static const char cat_help[] =
	"usage: diskvault --repo PATH cat SNAPSHOT[:VOLUME]/PATH\n"
	"Writes a regular file of a snapshot's filesystem to stdout (holes as zeros), read\n"
	"straight from the repository, every chunk verified. Names as for `ls` (docs/files.md).\n";

static const char extract_help[] =
	"usage: diskvault --repo PATH extract SNAPSHOT[:VOLUME]/PATH... --to DIR [--no-xattrs]\n"
	"Copies files and directory trees of a snapshot's filesystem into DIR (created if\n"
	"missing): /etc/nginx becomes DIR/nginx, '/' fills DIR. Keeps modes, times (ns),\n"
	"symlinks, hard links, sparse files (holes stay holes), xattrs and POSIX ACLs, and as\n"
	"root the numeric owner and group. Never writes outside DIR, whatever the image holds.\n"
	"A file already there with the same size and mtime is skipped, so a rerun is cheap.\n"
	"Entries that fail are named on stderr and the run goes on (exit 3). See docs/files.md.\n"
	"  --to DIR      the target directory (required)\n"
	"  --no-xattrs   do not copy xattrs and ACLs\n";

/* What one spec opened: the snapshot's volumes and the filesystem. */
struct opened {
	char id[DV_ID_HEX_LEN + 1];
	struct dv_snapshot_vols sv;
	bool have_sv;
	const struct dv_layout_vol *vol;
	struct dv_fs *fs;
	char path[4096];
};

static void opened_release(struct opened *o)
{
	dv_fs_close(o->fs);
	o->fs = NULL;
	if (o->have_sv)
		dv_snapshot_vols_release(&o->sv);
	o->have_sv = false;
}

/* Opens the snapshot (reusing o when it is the same one), the volume and
 * its filesystem named by spec. */
static int open_spec(struct dv_repo *repo, const char *spec, struct opened *o, struct dv_err *err)
{
	char snap[80];
	const char *rest;
	char id[DV_ID_HEX_LEN + 1];
	int rc = dv_files_split_spec(spec, snap, sizeof snap, &rest, err);
	if (rc == 0)
		rc = dv_snapshot_resolve(repo, snap, id, err);
	if (rc < 0)
		return rc;
	if (!o->have_sv || strcmp(o->id, id)) {
		opened_release(o);
		if ((rc = dv_snapshot_vols_open(repo, id, 64u << 20, &o->sv, err)) < 0)
			return rc;
		o->have_sv = true;
		snprintf(o->id, sizeof o->id, "%s", id);
	}
	const struct dv_layout_vol *v;
	if ((rc = dv_files_resolve(&o->sv.vols, rest, &v, o->path, sizeof o->path, err)) < 0)
		return dv_error_prefix(err, "snapshot %.8s: ", id);
	if (o->fs && o->vol != v) {
		dv_fs_close(o->fs);
		o->fs = NULL;
	}
	o->vol = v;
	if (!o->fs && (rc = dv_fs_open(v, &o->fs, err)) < 0)
		return rc;
	return 0;
}

/* What every command here holds: the repository, its shared lock and the
 * snapshot, volume and filesystem last opened. */
struct session {
	struct dv_repo *repo;
	struct dv_lock *lock;
	struct opened o;
	struct dv_err err;
};

/* Opens the repository and takes the shared lock; 0 or the exit code
 * (printed). session_close in either case. */
static int session_open(const char *cmd, struct session *ss)
{
	memset(ss, 0, sizeof *ss);
	dv_err_clear(&ss->err);
	const char *repo_path;
	int rc = dv_cli_need_repo(cmd, &repo_path);
	if (rc)
		return rc;
	if (dv_cli_open_repo(repo_path, &ss->repo, &ss->err) < 0 ||
	    dv_lock_acquire(ss->repo, false, &ss->lock, &ss->err) < 0)
		return dv_cli_fail(cmd, &ss->err);
	return 0;
}

/* open_spec in the session. */
static int session_spec(struct session *ss, const char *spec)
{
	return open_spec(ss->repo, spec, &ss->o, &ss->err);
}

static void session_close(struct session *ss)
{
	opened_release(&ss->o);
	dv_lock_release(ss->lock);
	dv_repo_free(ss->repo);
}

/* ---- ls ---------------------------------------------------------------- */

int cmd_ls(int argc, char **argv)
{
	bool lng = false;
	const struct dv_cli_opt opts[] = {
		DV_OPT_FLAG("long", &lng),
		DV_OPT_END,
	};
	/* -l: the table has long names only */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "-l"))
			argv[i] = "--long";
	int first, rc;
	if (!dv_cli_parse("ls", ls_help, argc, argv, opts, &first, &rc))
		return rc;
	if (argc - first != 1)
		return dv_cli_usage("ls", "give one SNAPSHOT[:VOLUME][/PATH]");
	struct session ss;
	if ((rc = session_open("ls", &ss)))
		goto out;
	struct dv_files_entry *e = NULL;
	size_t n = 0;
	if (session_spec(&ss, argv[first]) < 0 || dv_files_list(ss.o.fs, ss.o.path, &e, &n, &ss.err) < 0) {
		rc = dv_cli_fail("ls", &ss.err);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (dv_cli.json) {
			dv_cli_print_json(dv_files_entry_json(&e[i]));
		} else if (lng) {
			char line[6000];
			dv_files_long_line(&e[i], line, sizeof line);
			puts(line);
		} else {
			char name[1100];
			dv_files_escape(e[i].name, e[i].name_len, name, sizeof name);
			puts(name);
		}
	}
	dv_files_entries_free(e, n);
	if (fflush(stdout) != 0 && errno != EPIPE)
		rc = DV_EXIT_FAILURE;
out:
	session_close(&ss);
	return rc;
}

/* ---- cat --------------------------------------------------------------- */

int cmd_cat(int argc, char **argv)
{
	int first, rc;
	if (!dv_cli_parse("cat", cat_help, argc, argv, NULL, &first, &rc))
		return rc;
	if (argc - first != 1)
		return dv_cli_usage("cat", "give one SNAPSHOT[:VOLUME]/PATH");
	struct session ss;
	uint64_t bytes;
	if ((rc = session_open("cat", &ss)) == 0 &&
	    (session_spec(&ss, argv[first]) < 0 ||
	     dv_files_cat(ss.o.fs, ss.o.path, STDOUT_FILENO, &bytes, &ss.err) < 0))
		rc = dv_cli_fail("cat", &ss.err);
	session_close(&ss);
	return rc;
}

/* ---- extract ----------------------------------------------------------- */

struct xrun {
	double last;
	bool progress;
};

static void x_warn(void *ctx, const struct dv_err *e)
{
	(void)ctx;
	dv_cli_progress_done();
	fprintf(stderr, "diskvault extract: %s\n", e->msg);
}

static void x_progress(void *ctx, const struct dv_extract_stats *st, const char *path)
{
	struct xrun *x = ctx;
	if (!x->progress)
		return;
	double now = dv_now();
	if (now - x->last < 0.2)
		return;
	x->last = now;
	dv_cli_progress_line("extract: %llu files, %s, %llu skipped: %s",
			     (unsigned long long)(st->files + st->dirs + st->symlinks + st->hardlinks + st->specials),
			     dv_cli_size(st->bytes), (unsigned long long)st->skipped, path);
}

int cmd_extract(int argc, char **argv)
{
	const char *to = NULL;
	bool no_xattrs = false;
	const struct dv_cli_opt opts[] = {
		DV_OPT_STRING("to", &to),
		DV_OPT_FLAG("no-xattrs", &no_xattrs),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("extract", extract_help, argc, argv, opts, &first, &rc))
		return rc;
	if (argc - first < 1)
		return dv_cli_usage("extract", "give at least one SNAPSHOT[:VOLUME]/PATH");
	if (!to || !*to)
		return dv_cli_usage("extract", "give the target directory with --to DIR");
	struct session ss;
	struct dv_extract *x = NULL;
	struct dv_err *err = &ss.err;
	int dirfd = -1;
	if ((rc = session_open("extract", &ss)))
		goto out;
	if (mkdir(to, 0755) < 0 && errno != EEXIST) {
		dv_error_errno(err, errno, "target directory %s: cannot create", to);
		rc = dv_cli_fail("extract", err);
		goto out;
	}
	dirfd = open(to, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		dv_error_errno(err, errno, "target directory %s", to);
		rc = dv_cli_fail("extract", err);
		goto out;
	}
	struct xrun xr = {.progress = dv_cli_progress_enabled()};
	struct dv_extract_opts xo = {.owner = geteuid() == 0,
				     .xattrs = !no_xattrs,
				     .warn = x_warn,
				     .progress = x_progress,
				     .ctx = &xr,
				     .interrupted = &dv_cli_interrupted};
	x = dv_extract_new(dirfd, &xo);
	for (int i = first; i < argc; i++) {
		if (session_spec(&ss, argv[i]) < 0 || dv_extract_path(x, ss.o.fs, ss.o.path, err) < 0) {
			rc = dv_cli_fail("extract", err);
			goto out;
		}
	}
	dv_cli_progress_done();
	const struct dv_extract_stats *s = dv_extract_stats(x);
	rc = s->failed ? DV_EXIT_PARTIAL : DV_EXIT_OK;
	if (dv_cli.json) {
		dv_cli_print_json(json_pack("{s:s, s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "command",
					    "extract", "ok", 1, "to", to, "files", (json_int_t)s->files, "dirs",
					    (json_int_t)s->dirs, "symlinks", (json_int_t)s->symlinks, "hardlinks",
					    (json_int_t)s->hardlinks, "specials", (json_int_t)s->specials, "skipped",
					    (json_int_t)s->skipped, "bytes", (json_int_t)s->bytes, "xattrs",
					    (json_int_t)s->xattrs, "failed", (json_int_t)s->failed, "exit_code", rc));
	} else if (!dv_cli.quiet) {
		printf("extracted into %s: %llu files (%s), %llu directories, %llu symlinks, %llu hard links, "
		       "%llu special files, %llu xattrs; %llu skipped (already there), %llu failed\n",
		       to, (unsigned long long)s->files, dv_cli_size(s->bytes), (unsigned long long)s->dirs,
		       (unsigned long long)s->symlinks, (unsigned long long)s->hardlinks,
		       (unsigned long long)s->specials, (unsigned long long)s->xattrs, (unsigned long long)s->skipped,
		       (unsigned long long)s->failed);
	}
out:
	dv_extract_free(x);
	if (dirfd >= 0)
		close(dirfd);
	session_close(&ss);
	return rc;
}
