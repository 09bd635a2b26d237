/*
 * faultinject.c - an LD_PRELOAD library for the fault-injection tests: it
 * makes reads or writes of chosen files fail the way a dying disk or a full
 * filesystem does, without root or device-mapper.
 *
 *   DV_FAULT_READ_PATH=substr   pread()s of a file whose path contains substr
 *   DV_FAULT_READ_OFFSET=N      ... that touch [N, N + LENGTH) fail with EIO
 *   DV_FAULT_READ_LENGTH=N
 *   DV_FAULT_WRITE_PATH=substr  write()/pwrite()s to such files fail with
 *   DV_FAULT_WRITE_ERRNO=name   ENOSPC or EIO (default ENOSPC)
 *   DV_FAULT_WRITE_AFTER=N      once N bytes have been written to them
 *   DV_FAULT_NOHOLES_PATH=substr lseek(SEEK_DATA/SEEK_HOLE) on such files
 *                               fails with EINVAL, as on a filesystem that
 *                               cannot report holes
 */
/* Both the plain and the 64-bit names are defined below. */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static off_t (*real_lseek)(int, off_t, int);
static unsigned long long written;

static int path_matches(int fd, const char *env)
{
	const char *want = getenv(env);
	if (!want || !*want)
		return 0;
	char link[64], path[4096];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	if (n <= 0)
		return 0;
	path[n] = 0;
	return strstr(path, want) != NULL;
}

static unsigned long long env_ull(const char *name, unsigned long long def)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 0) : def;
}

static int read_fails(int fd, size_t n, off_t off)
{
	if (!path_matches(fd, "DV_FAULT_READ_PATH"))
		return 0;
	unsigned long long a = env_ull("DV_FAULT_READ_OFFSET", 0), len = env_ull("DV_FAULT_READ_LENGTH", 0);
	unsigned long long s = (unsigned long long)off, e = s + n;
	return s < a + len && a < e;
}

static int write_fails(int fd, size_t n)
{
	if (!path_matches(fd, "DV_FAULT_WRITE_PATH"))
		return 0;
	if (written + n <= env_ull("DV_FAULT_WRITE_AFTER", 0)) {
		written += n;
		return 0;
	}
	const char *e = getenv("DV_FAULT_WRITE_ERRNO");
	errno = e && !strcmp(e, "EIO") ? EIO : ENOSPC;
	return 1;
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	if (!real_pread)
		real_pread = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
	if (read_fails(fd, n, off)) {
		errno = EIO;
		return -1;
	}
	return real_pread(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) { return pread(fd, buf, n, off); }

ssize_t write(int fd, const void *buf, size_t n)
{
	if (!real_write)
		real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (write_fails(fd, n))
		return -1;
	return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (!real_pwrite)
		real_pwrite = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
	if (write_fails(fd, n))
		return -1;
	return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

off_t lseek(int fd, off_t off, int whence)
{
	if (!real_lseek)
		real_lseek = (off_t (*)(int, off_t, int))dlsym(RTLD_NEXT, "lseek");
	if ((whence == SEEK_DATA || whence == SEEK_HOLE) && path_matches(fd, "DV_FAULT_NOHOLES_PATH")) {
		errno = EINVAL;
		return -1;
	}
	return real_lseek(fd, off, whence);
}

off_t lseek64(int fd, off_t off, int whence) { return lseek(fd, off, whence); }
