#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int dv_write_all(int fd, const void *p, size_t n, struct dv_err *err, const char *what)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return dv_error_errno(err, errno, "writing %s", what);
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int dv_pwrite_all(int fd, const void *p, size_t n, off_t off, struct dv_err *err, const char *what)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = pwrite(fd, b, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return dv_error_errno(err, errno, "writing %s at offset %lld", what, (long long)off);
		}
		b += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int dv_pread_all(int fd, void *p, size_t n, off_t off, struct dv_err *err, const char *what)
{
	uint8_t *b = p;
	while (n) {
		ssize_t r = pread(fd, b, n, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return dv_error_errno(err, errno, "reading %s at offset %lld", what, (long long)off);
		}
		if (r == 0)
			return dv_error(err, DV_E_CORRUPT, "%s: truncated (ends before offset %lld)", what,
					(long long)(off + (off_t)n));
		b += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

int dv_read_file(const char *path, size_t cap, struct dv_buf *out, struct dv_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dv_error_errno(err, errno, "%s", path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return dv_error_errno(err, e, "%s", path);
	}
	if ((uint64_t)st.st_size > cap) {
		close(fd);
		return dv_error(err, DV_E_CORRUPT, "%s: %lld bytes, larger than the limit of %zu", path,
				(long long)st.st_size, cap);
	}
	dv_buf_reset(out);
	dv_buf_reserve(out, (size_t)st.st_size);
	int r = dv_pread_all(fd, out->data, (size_t)st.st_size, 0, err, path);
	close(fd);
	if (r < 0)
		return r;
	out->len = (size_t)st.st_size;
	out->data[out->len] = 0;
	return 0;
}

int dv_fsync_dir(const char *dir, struct dv_err *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return dv_error_errno(err, errno, "opening directory %s", dir);
	int r = fsync(fd);
	int e = errno;
	close(fd);
	if (r < 0 && e != EINVAL)
		return dv_error_errno(err, e, "fsync of directory %s", dir);
	return 0;
}

int dv_mkdir_p(const char *path, mode_t mode, struct dv_err *err)
{
	char *p = dv_strdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			int r = dv_error_errno(err, errno, "creating directory %s", p);
			free(p);
			return r;
		}
		*s = '/';
	}
	int r = 0;
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		r = dv_error_errno(err, errno, "creating directory %s", p);
	free(p);
	return r;
}

/*
 * getrandom(2) came with Linux 3.17; on older kernels (CentOS 7's 3.10) glibc's
 * wrapper fails with ENOSYS, and the same bytes are read from /dev/urandom,
 * which those kernels seed at boot. docs/static-binary.md lists this fallback.
 */
#ifdef DV_TEST_HOOKS
#define DV_TEST_HOOK_NO_GETRANDOM() (getenv("DISKVAULT_TEST_NO_GETRANDOM") != NULL)
#else
#define DV_TEST_HOOK_NO_GETRANDOM() 0
#endif

static void urandom_bytes(uint8_t *b, size_t n)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		DV_BUG("getrandom is missing (kernel < 3.17) and /dev/urandom cannot be opened: %s", strerror(errno));
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			DV_BUG("reading /dev/urandom failed: %s", r < 0 ? strerror(errno) : "end of file");
		b += r;
		n -= (size_t)r;
	}
	close(fd);
}

void dv_random_bytes(void *p, size_t n)
{
	static int no_getrandom;
	uint8_t *b = p;
	while (n) {
		if (__atomic_load_n(&no_getrandom, __ATOMIC_RELAXED) || DV_TEST_HOOK_NO_GETRANDOM()) {
			urandom_bytes(b, n);
			return;
		}
		ssize_t r = getrandom(b, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOSYS) {
				__atomic_store_n(&no_getrandom, 1, __ATOMIC_RELAXED);
				continue;
			}
			DV_BUG("getrandom failed: %s", strerror(errno));
		}
		b += r;
		n -= (size_t)r;
	}
}

void dv_random_hex(char *out, size_t n)
{
	uint8_t raw[64];
	if (n > sizeof raw)
		DV_BUG("random name too long");
	dv_random_bytes(raw, n);
	dv_hex(out, raw, n);
}

char *dv_state_dir(void)
{
	const char *v = getenv("DISKVAULT_STATE_DIR");
	if (v && *v)
		return dv_strdup(v);
	v = getenv("XDG_STATE_HOME");
	if (v && *v)
		return dv_asprintf("%s/diskvault", v);
	v = getenv("HOME");
	return dv_asprintf("%s/.local/state/diskvault", v && *v ? v : "/tmp");
}

int dv_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, struct dv_err *err)
{
	/* A fixed name: what a killed writer left is overwritten by the next
	 * write instead of piling up. */
	char *tmp = dv_asprintf("%s.tmp", path);
	int r = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		r = dv_error_errno(err, errno, "creating %s", tmp);
		goto out;
	}
	r = dv_write_all(fd, data, len, err, tmp);
	if (r == 0 && fsync(fd) < 0)
		r = dv_error_errno(err, errno, "fsync of %s", tmp);
	if (close(fd) < 0 && r == 0)
		r = dv_error_errno(err, errno, "closing %s", tmp);
	if (r == 0 && rename(tmp, path) < 0)
		r = dv_error_errno(err, errno, "renaming %s to %s", tmp, path);
	if (r == 0) {
		const char *slash = strrchr(path, '/');
		char *dir = slash ? dv_asprintf("%.*s", (int)(slash - path), path) : dv_strdup(".");
		r = dv_fsync_dir(*dir ? dir : "/", err);
		free(dir);
	}
	if (r < 0)
		unlink(tmp);
out:
	free(tmp);
	return r;
}
