/* mount.c - a snapshot as a read-only FUSE filesystem (see mount.h). */
#define FUSE_USE_VERSION 312
#include <fuse.h>

#include "mount/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "disk/layoutvol.h"
#include "repo/repo.h"

extern char **environ;

/* A file or directory of the mount. */
struct node {
	char path[200];  /* "/", "/lvm", "/lvm/vg/lv.img" */
	size_t parent;   /* index of its directory (the root: itself) */
	bool dir;
	const struct dv_layout_vol *v;  /* files */
	struct dv_mount_image img;
};

struct mnt {
	struct dv_mount_opts o;
	struct node *nodes;
	size_t n, cap;
	time_t mtime;
	uid_t uid;
	gid_t gid;
	uint64_t reads, bytes, errors;  /* __atomic counters */
};

/* ---- the tree ---------------------------------------------------------- */

static size_t node_find(const struct mnt *m, const char *path)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->nodes[i].path, path))
			return i;
	return SIZE_MAX;
}

static size_t node_add(struct mnt *m, const char *path, bool dir, size_t parent)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->nodes = dv_realloc(m->nodes, m->cap * sizeof *m->nodes);
	}
	struct node *nd = &m->nodes[m->n];
	memset(nd, 0, sizeof *nd);
	snprintf(nd->path, sizeof nd->path, "%s", path);
	nd->dir = dir;
	nd->parent = parent;
	return m->n++;
}

/* The directory path (with its parents) holding path, created as needed. */
static size_t dir_of(struct mnt *m, const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == path)
		return 0;
	char d[200];
	snprintf(d, sizeof d, "%.*s", (int)(slash - path), path);
	size_t i = node_find(m, d);
	if (i != SIZE_MAX)
		return i;
	size_t parent = dir_of(m, d);
	return node_add(m, d, true, parent);
}

/* "/disk0-p2.img" and so on (mount.h). */
static void image_path(const struct dv_layout_vol *v, char *out, size_t cap)
{
	switch (v->kind) {
	case DV_LV_LVM:
		snprintf(out, cap, "/lvm/%s.img", v->name);
		break;
	case DV_LV_PARTITION:
	case DV_LV_MD:
		if (!strncmp(v->name, "disk", 4))
			snprintf(out, cap, "/%s.img", v->name);
		else
			snprintf(out, cap, "/disk%u-%s.img", v->disk, v->name);
		break;
	default:
		snprintf(out, cap, "/%s.img", v->name);
	}
}

static void build_tree(struct mnt *m, const struct dv_layout_vols *vols)
{
	node_add(m, "/", true, 0);
	for (size_t i = 0; i < vols->n; i++) {
		char p[200];
		image_path(&vols->v[i], p, sizeof p);
		if (node_find(m, p) != SIZE_MAX)
			continue;  /* cannot happen with layoutvol's names; never two files of one name */
		size_t parent = dir_of(m, p);
		size_t k = node_add(m, p, false, parent);
		struct node *nd = &m->nodes[k];
		nd->v = &vols->v[i];
		nd->img.path = nd->path + 1;
		nd->img.volume = vols->v[i].name;
		nd->img.fstype = vols->v[i].fstype;
		nd->img.size = vols->v[i].vol.size;
	}
}

/* ---- FUSE operations --------------------------------------------------- */

static struct mnt *ctx(void) { return fuse_get_context()->private_data; }

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	/* Nothing ever changes: the kernel may cache pages and attributes for
	 * as long as it likes, across opens. */
	cfg->kernel_cache = 1;
	cfg->entry_timeout = cfg->attr_timeout = cfg->negative_timeout = 3600;
	return fuse_get_context()->private_data;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	struct mnt *m = ctx();
	size_t i = node_find(m, path);
	if (i == SIZE_MAX)
		return -ENOENT;
	memset(st, 0, sizeof *st);
	const struct node *nd = &m->nodes[i];
	st->st_ino = i + 1;
	st->st_uid = m->uid;
	st->st_gid = m->gid;
	st->st_atime = st->st_mtime = st->st_ctime = m->mtime;
	if (nd->dir) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)nd->img.size;
		st->st_blksize = 65536;
		st->st_blocks = (blkcnt_t)((nd->img.size + 511) / 512);
	}
	return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	struct mnt *m = ctx();
	size_t d = node_find(m, path);
	if (d == SIZE_MAX)
		return -ENOENT;
	if (!m->nodes[d].dir)
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	for (size_t i = 1; i < m->n; i++)
		if (m->nodes[i].parent == d)
			fill(buf, strrchr(m->nodes[i].path, '/') + 1, NULL, 0, 0);
	return 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	struct mnt *m = ctx();
	size_t i = node_find(m, path);
	if (i == SIZE_MAX)
		return -ENOENT;
	if (m->nodes[i].dir)
		return -EISDIR;
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	fi->fh = i;
	fi->keep_cache = 1;
	return 0;
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)path;
	struct mnt *m = ctx();
	if (fi->fh >= m->n || m->nodes[fi->fh].dir)
		return -EBADF;
	const struct node *nd = &m->nodes[fi->fh];
	__atomic_fetch_add(&m->reads, 1, __ATOMIC_RELAXED);
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= nd->img.size)
		return 0;
	size_t n = (size_t)DV_MIN((uint64_t)size, nd->img.size - (uint64_t)off);
	struct dv_err err;
	dv_err_clear(&err);
	if (dv_vol_read(&nd->v->vol, (uint64_t)off, buf, n, &err) < 0) {
		__atomic_fetch_add(&m->errors, 1, __ATOMIC_RELAXED);
		if (m->o.problem) {
			char msg[1200];
			snprintf(msg, sizeof msg, "read of %s, bytes %llu-%llu: %s", nd->img.path,
				 (unsigned long long)off, (unsigned long long)off + n - 1, err.msg);
			m->o.problem(m->o.ctx, msg);
		}
		return -EIO;
	}
	__atomic_fetch_add(&m->bytes, n, __ATOMIC_RELAXED);
	return (int)n;
}

static int op_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	struct mnt *m = ctx();
	memset(sv, 0, sizeof *sv);
	uint64_t total = 0;
	for (size_t i = 0; i < m->n; i++)
		total += m->nodes[i].dir ? 0 : m->nodes[i].img.size;
	sv->f_bsize = sv->f_frsize = 4096;
	sv->f_blocks = (fsblkcnt_t)((total + 4095) / 4096);
	sv->f_files = m->n;
	sv->f_namemax = 255;
	sv->f_flag = ST_RDONLY;
	return 0;
}

static const struct fuse_operations ops = {
	.init = op_init,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.statfs = op_statfs,
};

/* ---- the mount point --------------------------------------------------- */

/* dir as an absolute path without "." or ".." components or repeated
 * slashes (lexically: a stale mount point cannot be resolved). */
static void abs_path(const char *dir, char *out, size_t cap)
{
	char tmp[4096] = "";
	if (dir[0] != '/' && !getcwd(tmp, sizeof tmp - 1))
		tmp[0] = 0;
	size_t tl = strlen(tmp);
	snprintf(tmp + tl, sizeof tmp - tl, "/%s", dir);
	size_t o = 0;
	out[0] = 0;
	for (char *save = NULL, *c = strtok_r(tmp, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			char *s = strrchr(out, '/');
			o = s ? (size_t)(s - out) : 0;
			out[o] = 0;
			continue;
		}
		o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "/%s", c);
		if (o >= cap)
			o = cap - 1;
	}
	if (!o)
		snprintf(out, cap, "/");
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *d = s;
	for (; *s; s++)
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	*d = 0;
}

/* The filesystem type mounted at path ("fuse.diskvault"), "" when none. */
static void mounted_type(const char *path, char *type, size_t cap)
{
	type[0] = 0;
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return;
	char line[8192];
	while (fgets(line, sizeof line, f)) {
		/* id parent major:minor root mount-point options [optional...] - type source super */
		char *save = NULL, *field[5] = {0};
		char *t = strtok_r(line, " ", &save);
		for (int i = 0; i < 5 && t; i++, t = strtok_r(NULL, " ", &save))
			field[i] = t;
		if (!field[4])
			continue;
		unescape(field[4]);
		while (t && strcmp(t, "-"))
			t = strtok_r(NULL, " ", &save);
		char *fstype = t ? strtok_r(NULL, " ", &save) : NULL;
		if (fstype && !strcmp(field[4], path))
			snprintf(type, cap, "%s", fstype);  /* the last mount on path is the visible one */
	}
	fclose(f);
}

/* Lazy unmount of a dead diskvault mount: umount2 as root, else
 * fusermount3 -u -z (what unprivileged FUSE mounts are unmounted with). */
static void detach(const char *path)
{
	if (umount2(path, MNT_DETACH) == 0)
		return;
	pid_t pid;
	char *argv[] = {"fusermount3", "-u", "-z", "-q", (char *)path, NULL};
	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) == 0) {
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
}

static int check_mountpoint(const char *dir, struct dv_err *err)
{
	/* statfs first: the kernel may answer stat of a dead FUSE mount's
	 * root from its attribute cache, but statfs always asks the server. */
	struct statfs sfs;
	struct stat st;
	bool dead = statfs(dir, &sfs) < 0 && errno == ENOTCONN;
	if (!dead && stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return dv_error(err, DV_E_USAGE, "mount point %s is not a directory", dir);
		return 0;
	}
	if (!dead && errno != ENOTCONN)
		return dv_error_errno(err, errno, "mount point %s", dir);
	/* A FUSE mount whose process died: the kernel keeps the mount until
	 * it is unmounted, and every access fails with ENOTCONN. */
	char path[4096], type[128];
	abs_path(dir, path, sizeof path);
	mounted_type(path, type, sizeof type);
	if (strcmp(type, "fuse.diskvault"))
		return dv_error(err, DV_E_BUSY,
				"mount point %s: a FUSE filesystem (%s) whose process is gone is still mounted there "
				"(Transport endpoint is not connected); unmount it with `fusermount3 -u -z %s` "
				"(or `umount -l %s` as root)",
				dir, type[0] ? type : "unknown", dir, dir);
	detach(path);
	if (statfs(dir, &sfs) == 0 && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return dv_error(err, DV_E_BUSY,
			"mount point %s: a killed diskvault mount is still attached and could not be detached; "
			"run `fusermount3 -u -z %s` (or `umount -l %s` as root)",
			dir, dir, dir);
}

/* ---- the lock refresher ------------------------------------------------ */

struct refresher {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct dv_lock *lock;
	struct mnt *m;
};

static void *refresh_main(void *arg)
{
	struct refresher *rf = arg;
	pthread_mutex_lock(&rf->mu);
	while (!rf->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 30;
		pthread_cond_timedwait(&rf->cv, &rf->mu, &ts);
		if (rf->stop)
			break;
		pthread_mutex_unlock(&rf->mu);
		struct dv_err e;
		dv_err_clear(&e);
		if (dv_lock_refresh(rf->lock, &e) < 0 && rf->m->o.problem) {
			char msg[1200];
			snprintf(msg, sizeof msg, "refreshing the repository lock: %s", e.msg);
			rf->m->o.problem(rf->m->o.ctx, msg);
		}
		pthread_mutex_lock(&rf->mu);
	}
	pthread_mutex_unlock(&rf->mu);
	return NULL;
}

/* ---- the whole run ----------------------------------------------------- */

int dv_mount_run(struct dv_repo *r, const char *snapshot_id, const char *dir, const struct dv_mount_opts *o,
		 struct dv_mount_stats *st, struct dv_err *err)
{
	struct mnt m;
	memset(&m, 0, sizeof m);
	m.o = *o;
	if (!m.o.threads)
		m.o.threads = DV_MOUNT_THREADS_DEFAULT;
	if (!m.o.cache_bytes)
		m.o.cache_bytes = DV_MOUNT_CACHE_DEFAULT;
	m.uid = getuid();
	m.gid = getgid();

	struct dv_snapshot_vols sv;
	memset(&sv, 0, sizeof sv);
	struct dv_lock *lock = NULL;
	struct fuse *f = NULL;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	bool mounted = false, refreshing = false;
	struct refresher rf = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .m = &m};
	pthread_t rt;
	struct sigaction old[3];
	static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
	bool signals = false;

	int rc = check_mountpoint(dir, err);
	if (rc < 0)
		return rc;
	if ((rc = dv_lock_acquire(r, false, &lock, err)) < 0)
		return rc;
	if ((rc = dv_snapshot_vols_open(r, snapshot_id, (size_t)m.o.cache_bytes, &sv, err)) < 0)
		goto out;
	int64_t t;
	const char *ts = json_string_value(json_object_get(sv.manifest, "time"));
	m.mtime = ts && dv_parse_time(ts, &t) == 0 ? (time_t)t : time(NULL);
	build_tree(&m, &sv.vols);

	/* libfuse's options: read-only, named after the snapshot, with the
	 * kernel checking permissions (0444 files), and auto_unmount: a
	 * fusermount3 child unmounts when this process dies, even by SIGKILL. */
	char opt[512];
	snprintf(opt, sizeof opt, "ro,fsname=diskvault:%.16s,subtype=diskvault,default_permissions,auto_unmount%s",
		 snapshot_id, m.o.allow_other ? ",allow_other" : "");
	if (fuse_opt_add_arg(&args, "diskvault") || fuse_opt_add_arg(&args, "-o") || fuse_opt_add_arg(&args, opt) ||
	    (m.o.debug && fuse_opt_add_arg(&args, "-d"))) {
		rc = dv_error(err, DV_E_NOMEM, "FUSE options");
		goto out;
	}
	f = fuse_new(&args, &ops, sizeof ops, &m);
	if (!f) {
		rc = dv_error(err, DV_E_FAIL, "FUSE: cannot set up the filesystem (libfuse rejected its options)");
		goto out;
	}
	if (fuse_mount(f, dir) != 0) {
		rc = dv_error(err, access("/dev/fuse", R_OK | W_OK) ? DV_E_IO : DV_E_BUSY,
			      "cannot mount at %s: %s", dir,
			      access("/dev/fuse", R_OK | W_OK)
				      ? "/dev/fuse is missing or not accessible (modprobe fuse; in a container, pass "
					"the device in)"
				      : "FUSE refused it (message above; without root, fusermount3 from the fuse3 "
					"package must be installed and the directory owned by you)");
		goto out;
	}
	mounted = true;

	/* Ctrl-C, SIGTERM and SIGHUP end the loop; libfuse installs its
	 * handlers only where the action is SIG_DFL. */
	for (int i = 0; i < 3; i++) {
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		sigaction(sigs[i], &dfl, &old[i]);
	}
	signals = true;
	if (fuse_set_signal_handlers(fuse_get_session(f)) != 0) {
		rc = dv_error(err, DV_E_FAIL, "FUSE: cannot install the signal handlers");
		goto out;
	}

	rf.lock = lock;
	if (pthread_create(&rt, NULL, refresh_main, &rf) == 0)
		refreshing = true;

	if (m.o.ready) {
		size_t n = 0;
		struct dv_mount_image *imgs = dv_calloc(m.n ? m.n : 1, sizeof *imgs);
		for (size_t i = 0; i < m.n; i++)
			if (!m.nodes[i].dir)
				imgs[n++] = m.nodes[i].img;
		m.o.ready(m.o.ctx, imgs, n);
		free(imgs);
	}

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(lc, m.o.threads);
	fuse_loop_cfg_set_idle_threads(lc, m.o.threads);
	int lr = fuse_loop_mt(f, lc);
	fuse_loop_cfg_destroy(lc);
	/* > 0: ended by a signal; 0: unmounted from outside. */
	if (lr < 0)
		rc = dv_error_errno(err, -lr, "FUSE: the request loop failed");

out:
	if (refreshing) {
		pthread_mutex_lock(&rf.mu);
		rf.stop = true;
		pthread_cond_signal(&rf.cv);
		pthread_mutex_unlock(&rf.mu);
		pthread_join(rt, NULL);
	}
	if (f) {
		if (signals)
			fuse_remove_signal_handlers(fuse_get_session(f));
		if (mounted)
			fuse_unmount(f);
		fuse_destroy(f);
	}
	if (signals)
		for (int i = 0; i < 3; i++)
			sigaction(sigs[i], &old[i], NULL);
	fuse_opt_free_args(&args);
	if (st) {
		memset(st, 0, sizeof *st);
		st->reads = m.reads;
		st->bytes_read = m.bytes;
		st->read_errors = m.errors;
		for (size_t d = 0; d < sv.ndisks; d++) {
			struct dv_block_reader_stats bs;
			dv_block_reader_get_stats(sv.br[d], &bs);
			st->cache_hits += bs.hits;
			st->cache_misses += bs.misses;
		}
	}
	dv_snapshot_vols_release(&sv);
	free(m.nodes);
	dv_lock_release(lock);
	return rc;
}
