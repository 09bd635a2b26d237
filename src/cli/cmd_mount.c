/* cmd_mount.c - `diskvault mount`: options, output, --background; the
 * filesystem is src/mount/. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mount/mount.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault --repo PATH mount SNAPSHOT DIR [--threads N] [--cache-size SIZE] [--allow-other]\n"
	"                 [--background] [--fuse-debug]\n"
	"Mounts SNAPSHOT ('latest' or an id prefix) read-only at DIR (FUSE): one image file per\n"
	"disk, partition, md RAID1 data area and LVM logical volume (disk0.img, disk0-p2.img,\n"
	"disk0-p1-md.img, lvm/VG/LV.img). Reads fetch only the chunks they need, verified; an\n"
	"unreadable region (backup --skip-bad-sectors) reads as EIO. Loop-mount an image to see\n"
	"its files: mount -o ro,loop,noload DIR/disk0-p2.img /mnt (ext4; XFS: ro,norecovery).\n"
	"Stays in the foreground until `umount DIR` (or fusermount3 -u DIR) or Ctrl-C; exits 0\n"
	"once nothing is mounted. See docs/mount.md.\n"
	"  --threads N        reads served at once (FUSE threads; default 8)\n"
	"  --cache-size SIZE  memory for decompressed chunks, all disks together (default 64M)\n"
	"  --allow-other      let other users read (non-root: user_allow_other in /etc/fuse.conf)\n"
	"  --background       detach once mounted (prints where, then exits 0; the mount stays)\n"
	"  --fuse-debug       libfuse's request trace on stderr\n";

static int size_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	uint64_t *v = o->dest;
	if (!dv_parse_size(arg, v) || *v < (1u << 20))
		return dv_cli_usage(cmd, "--cache-size '%s': expected a size of at least 1M, such as 64M or 1G", arg);
	return 0;
}

struct run {
	const char *id, *dir;
	int pipe_fd;  /* --background: where the child reports (-1 in the foreground) */
};

static void on_ready(void *ctx, const struct dv_mount_image *img, size_t n)
{
	struct run *x = ctx;
	if (dv_cli.json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:I}", "path", img[i].path, "volume",
							   img[i].volume, "fstype", img[i].fstype, "size",
							   (json_int_t)img[i].size));
		dv_cli_print_json(json_pack("{s:s, s:b, s:s, s:s, s:o, s:I}", "command", "mount", "ok", 1, "snapshot",
					    x->id, "mountpoint", x->dir, "images", a, "pid", (json_int_t)getpid()));
	} else if (!dv_cli.quiet) {
		printf("mounted snapshot %.8s read-only at %s: %zu image%s\n", x->id, x->dir, n, n == 1 ? "" : "s");
		for (size_t i = 0; i < n; i++)
			printf("  %-28s %10s  %s\n", img[i].path, dv_cli_size(img[i].size),
			       img[i].fstype[0] ? img[i].fstype : "-");
		if (x->pipe_fd < 0)
			printf("unmount with `umount %s` (or `fusermount3 -u %s`) or Ctrl-C\n", x->dir, x->dir);
		else
			printf("running in the background (pid %d); unmount with `umount %s` (or `fusermount3 -u %s`)\n",
			       (int)getpid(), x->dir, x->dir);
	}
	fflush(stdout);
	if (x->pipe_fd >= 0) {
		/* The parent exits 0 now; nothing is printed from here on. */
		char ok = 0;
		ssize_t w = write(x->pipe_fd, &ok, 1);
		(void)w;
		close(x->pipe_fd);
		x->pipe_fd = -1;
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
		}
	}
}

static void on_problem(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "diskvault mount: %s\n", msg);
}

/* --background: the parent waits until the child has mounted (one 0 byte)
 * or failed (its exit code; the child printed the error), then exits with
 * it. Forks before the repository is opened: the S3 store starts threads. */
static bool background(int *pipe_fd, int *rc)
{
	int p[2];
	if (pipe(p) < 0) {
		*rc = DV_EXIT_FAILURE;
		fprintf(stderr, "diskvault mount: pipe: %s\n", strerror(errno));
		return false;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		*rc = DV_EXIT_FAILURE;
		fprintf(stderr, "diskvault mount: fork: %s\n", strerror(errno));
		return false;
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		*pipe_fd = p[1];
		return true;
	}
	close(p[1]);
	unsigned char code;
	ssize_t n;
	while ((n = read(p[0], &code, 1)) < 0 && errno == EINTR)
		;
	close(p[0]);
	if (n != 1) {
		fprintf(stderr, "diskvault mount: the mount process ended before mounting\n");
		*rc = DV_EXIT_FAILURE;
	} else {
		*rc = code;
	}
	return false;
}

int cmd_mount(int argc, char **argv)
{
	struct dv_mount_opts o;
	memset(&o, 0, sizeof o);
	bool bg = false;
	const struct dv_cli_opt opts[] = {
		DV_OPT_UINT("threads", &o.threads, 1, 256, "--threads must be between 1 and 256"),
		DV_OPT_CALLBACK("cache-size", required_argument, size_opt, &o.cache_bytes),
		DV_OPT_FLAG("allow-other", &o.allow_other),
		DV_OPT_FLAG("background", &bg),
		DV_OPT_FLAG("fuse-debug", &o.debug),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("mount", help, argc, argv, opts, &first, &rc))
		return rc;
	if (argc - first != 2)
		return dv_cli_usage("mount", "give SNAPSHOT and DIR");
	const char *repo_path;
	if ((rc = dv_cli_need_repo("mount", &repo_path)))
		return rc;
	struct run x = {.dir = argv[first + 1], .pipe_fd = -1};
	if (bg && !background(&x.pipe_fd, &rc))
		return rc;
	o.ready = on_ready;
	o.problem = on_problem;
	o.ctx = &x;
	struct dv_err err;
	struct dv_repo *repo = NULL;
	char id[DV_ID_HEX_LEN + 1];
	struct dv_mount_stats st;
	x.id = id;
	if (dv_cli_open_snapshot(repo_path, argv[first], &repo, id, NULL, &err) < 0 ||
	    dv_mount_run(repo, id, x.dir, &o, &st, &err) < 0) {
		rc = dv_cli_fail("mount", &err);
	} else if (!dv_cli.json && !dv_cli.quiet && x.pipe_fd < 0 && !bg) {
		printf("unmounted %s: %llu reads, %s served (%llu chunks fetched, %llu from the cache), %llu failed\n",
		       x.dir, (unsigned long long)st.reads, dv_cli_size(st.bytes_read),
		       (unsigned long long)st.cache_misses, (unsigned long long)st.cache_hits,
		       (unsigned long long)st.read_errors);
	}
	if (x.pipe_fd >= 0) {  /* failed before mounting: tell the waiting parent */
		unsigned char code = (unsigned char)(rc ? rc : DV_EXIT_FAILURE);
		ssize_t w = write(x.pipe_fd, &code, 1);
		(void)w;
		close(x.pipe_fd);
	}
	dv_repo_free(repo);
	return rc;
}
