/*
 * inventory.c - dv_inventory_collect() and dv_inventory_append().
 *
 * Everything comes from the kernel's text interfaces: /proc/stat (CPU time,
 * sampled twice), /proc/meminfo, /proc/loadavg, /proc/cpuinfo and CPU
 * topology in /sys, /etc/os-release, /sys/firmware/efi (boot mode),
 * /sys/block (disks), getifaddrs (interfaces), and the kernel's module
 * lists for the Nitro drivers.
 */
#include "disk/inventory.h"
#include "probe_internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <math.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

struct ctx {
	const char *root;
};

static char *path_of(const struct ctx *c, const char *p)
{
	return dv_asprintf("%s%s", c->root, p);
}

/* A whole small text file, or NULL. Read with stdio until EOF: /proc and
 * /sys files report a size of 0. At most 4 MiB. */
static char *slurp(const struct ctx *c, const char *p)
{
	char *full = path_of(c, p);
	FILE *f = fopen(full, "re");
	free(full);
	if (!f)
		return NULL;
	struct dv_buf b = DV_BUF_INIT;
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < (4u << 20))
		dv_buf_add(&b, chunk, n);
	bool bad = ferror(f);
	fclose(f);
	if (bad) {
		dv_buf_release(&b);
		return NULL;
	}
	dv_buf_add(&b, "", 0);
	return (char *)b.data;
}

/* First line of a file, newline stripped, or NULL. */
static char *first_line(const struct ctx *c, const char *p)
{
	char *s = slurp(c, p);
	if (s)
		s[strcspn(s, "\n")] = 0;
	return s;
}

static bool exists(const struct ctx *c, const char *p)
{
	char *full = path_of(c, p);
	bool r = access(full, F_OK) == 0;
	free(full);
	return r;
}

/* The value after "key:" on a line of a /proc-style "key: value" text. */
static bool kv(const char *text, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, kl) != 0)
			continue;
		const char *p = l + kl;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != ':')
			continue;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		size_t len = strcspn(p, "\n");
		if (len >= n)
			len = n - 1;
		memcpy(out, p, len);
		out[len] = 0;
		return true;
	}
	return false;
}

/* ---- CPU -------------------------------------------------------------------- */

struct cpu_times {
	unsigned long long busy, total;
};

static int read_cpu_times(const struct ctx *c, struct cpu_times *t, struct dv_err *err)
{
	char *s = slurp(c, "/proc/stat");
	if (!s)
		return dv_error(err, DV_E_IO, "inventory: cannot read %s/proc/stat", c->root);
	unsigned long long v[10] = {0};
	int n = sscanf(s, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
		       &v[5], &v[6], &v[7], &v[8], &v[9]);
	free(s);
	if (n < 4)
		return dv_error(err, DV_E_IO, "inventory: %s/proc/stat has no cpu line", c->root);
	/* guest and guest_nice are already counted in user and nice. */
	unsigned long long total = 0;
	for (int i = 0; i < n && i < 8; i++)
		total += v[i];
	unsigned long long idle = v[3] + (n > 4 ? v[4] : 0); /* idle + iowait */
	t->total = total;
	t->busy = total - idle;
	return 0;
}

static json_t *cpu_json(const struct ctx *c)
{
	json_t *j = json_object();
	char *info = slurp(c, "/proc/cpuinfo");
	char model[256] = "";
	if (info && !kv(info, "model name", model, sizeof model) && !kv(info, "Model", model, sizeof model))
		kv(info, "cpu model", model, sizeof model);
	json_object_set_new(j, "model", model[0] ? json_string(model) : json_null());

	/* Topology from sysfs: distinct packages, distinct (package, core). */
	long logical = 0;
	unsigned long long pkgs[1024], cores[4096];
	size_t npk = 0, nco = 0;
	char *dirp = path_of(c, "/sys/devices/system/cpu");
	DIR *d = opendir(dirp);
	free(dirp);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		unsigned idx;
		char tail;
		if (sscanf(de->d_name, "cpu%u%c", &idx, &tail) != 1)
			continue;
		char p[512];
		snprintf(p, sizeof p, "/sys/devices/system/cpu/%s/online", de->d_name);
		char *on = first_line(c, p);
		bool online = !on || strcmp(on, "0") != 0;
		free(on);
		if (!online)
			continue;
		logical++;
		snprintf(p, sizeof p, "/sys/devices/system/cpu/%s/topology/physical_package_id", de->d_name);
		char *pk = first_line(c, p);
		snprintf(p, sizeof p, "/sys/devices/system/cpu/%s/topology/core_id", de->d_name);
		char *co = first_line(c, p);
		if (pk && co) {
			unsigned long long pv = strtoull(pk, NULL, 10), cv = strtoull(co, NULL, 10);
			unsigned long long key = pv << 32 | (cv & 0xffffffffULL);
			size_t i;
			for (i = 0; i < npk && pkgs[i] != pv; i++)
				;
			if (i == npk && npk < DV_ARRAY_SIZE(pkgs))
				pkgs[npk++] = pv;
			for (i = 0; i < nco && cores[i] != key; i++)
				;
			if (i == nco && nco < DV_ARRAY_SIZE(cores))
				cores[nco++] = key;
		}
		free(pk);
		free(co);
	}
	if (d)
		closedir(d);
	if (!logical)
		logical = sysconf(_SC_NPROCESSORS_ONLN);
	json_object_set_new(j, "sockets", npk ? json_integer((json_int_t)npk) : json_null());
	json_object_set_new(j, "cores", nco ? json_integer((json_int_t)nco) : json_null());
	json_object_set_new(j, "logical", logical > 0 ? json_integer(logical) : json_null());
	free(info);
	return j;
}

/* ---- memory, load, OS ------------------------------------------------------- */

static int memory_json(const struct ctx *c, json_t **out, struct dv_err *err)
{
	char *mi = slurp(c, "/proc/meminfo");
	if (!mi)
		return dv_error(err, DV_E_IO, "inventory: cannot read %s/proc/meminfo", c->root);
	char v[64];
	unsigned long long total = 0, avail = 0;
	bool have_total = kv(mi, "MemTotal", v, sizeof v) && sscanf(v, "%llu", &total) == 1;
	bool have_avail = kv(mi, "MemAvailable", v, sizeof v) && sscanf(v, "%llu", &avail) == 1;
	free(mi);
	json_t *j = json_object();
	json_object_set_new(j, "total", have_total ? json_integer((json_int_t)(total * 1024)) : json_null());
	json_object_set_new(j, "available", have_avail ? json_integer((json_int_t)(avail * 1024)) : json_null());
	json_object_set_new(j, "used", have_total && have_avail && total >= avail
					       ? json_integer((json_int_t)((total - avail) * 1024))
					       : json_null());
	*out = j;
	return 0;
}

static json_t *load_json(const struct ctx *c)
{
	char *s = first_line(c, "/proc/loadavg");
	double a = 0, b = 0, d = 0;
	json_t *j = json_null();
	if (s && sscanf(s, "%lf %lf %lf", &a, &b, &d) == 3)
		j = json_pack("[f,f,f]", a, b, d);
	free(s);
	return j;
}

/* Unquotes an os-release value in place. */
static char *unquote(char *v)
{
	size_t n = strlen(v);
	if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
		v[n - 1] = 0;
		return v + 1;
	}
	return v;
}

json_t *dv_os_release_parse(const char *s)
{
	json_t *j = json_object();
	const char *keys[] = {"ID", "VERSION_ID", "PRETTY_NAME"};
	const char *names[] = {"id", "version_id", "pretty_name"};
	for (size_t k = 0; k < DV_ARRAY_SIZE(keys); k++) {
		json_t *val = NULL;
		size_t kl = strlen(keys[k]);
		for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
			if (strncmp(l, keys[k], kl) || l[kl] != '=')
				continue;
			size_t n = strcspn(l + kl + 1, "\n");
			char *v = dv_malloc(n + 1);
			memcpy(v, l + kl + 1, n);
			v[n] = 0;
			json_decref(val);
			val = json_string(unquote(v)); /* NULL when not UTF-8 */
			free(v);
		}
		json_object_set_new(j, names[k], val ? val : json_null());
	}
	return j;
}

static json_t *os_json(const struct ctx *c)
{
	char *s = slurp(c, "/etc/os-release");
	if (!s)
		s = slurp(c, "/usr/lib/os-release");
	json_t *j = dv_os_release_parse(s);
	free(s);
	return j;
}

/* ---- interfaces, disks, drivers --------------------------------------------- */

static json_t *net_json(void)
{
	json_t *arr = json_array();
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) < 0)
		return arr;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_name)
			continue;
		json_t *o = NULL;
		size_t k;
		json_t *x;
		json_array_foreach(arr, k, x) if (!strcmp(json_string_value(json_object_get(x, "name")), i->ifa_name)) o = x;
		if (!o) {
			o = json_pack("{s:s, s:n, s:b, s:[]}", "name", i->ifa_name, "mac", "loopback",
				      (i->ifa_flags & IFF_LOOPBACK) != 0, "addresses");
			json_array_append_new(arr, o);
		}
		if (!i->ifa_addr)
			continue;
		char buf[INET6_ADDRSTRLEN + 8];
		if (i->ifa_addr->sa_family == AF_PACKET) {
			const struct sockaddr_ll *ll = (const struct sockaddr_ll *)(const void *)i->ifa_addr;
			if (ll->sll_halen == 6) {
				snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", ll->sll_addr[0], ll->sll_addr[1],
					 ll->sll_addr[2], ll->sll_addr[3], ll->sll_addr[4], ll->sll_addr[5]);
				json_object_set_new(o, "mac", json_string(buf));
			}
		} else if (i->ifa_addr->sa_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)i->ifa_addr;
			if (inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf))
				json_array_append_new(json_object_get(o, "addresses"), json_string(buf));
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)i->ifa_addr;
			if (inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf))
				json_array_append_new(json_object_get(o, "addresses"), json_string(buf));
		}
	}
	freeifaddrs(ifa);
	return arr;
}

static json_t *disks_json(const struct ctx *c)
{
	json_t *arr = json_array();
	char *dp = path_of(c, "/sys/block");
	DIR *d = opendir(dp);
	free(dp);
	if (!d)
		return arr;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (n[0] == '.' || !strncmp(n, "loop", 4) || !strncmp(n, "ram", 3) || !strncmp(n, "zram", 4))
			continue;
		char p[512];
		snprintf(p, sizeof p, "/sys/block/%s/size", n);
		char *sz = first_line(c, p);
		snprintf(p, sizeof p, "/sys/block/%s/device/model", n);
		char *model = first_line(c, p);
		snprintf(p, sizeof p, "/sys/block/%s/queue/rotational", n);
		char *rot = first_line(c, p);
		snprintf(p, sizeof p, "/sys/block/%s/removable", n);
		char *rem = first_line(c, p);
		if (model) { /* sysfs pads the model with spaces */
			size_t l = strlen(model);
			while (l && model[l - 1] == ' ')
				model[--l] = 0;
		}
		json_array_append_new(arr, json_pack("{s:s, s:o, s:o, s:o, s:o}", "name", n, "size",
						     sz ? json_integer((json_int_t)(strtoull(sz, NULL, 10) * 512)) : json_null(),
						     "model", model && *model ? json_string(model) : json_null(), "rotational",
						     rot ? json_boolean(!strcmp(rot, "1")) : json_null(), "removable",
						     rem ? json_boolean(!strcmp(rem, "1")) : json_null()));
		free(sz);
		free(model);
		free(rot);
		free(rem);
	}
	closedir(d);
	return arr;
}

/* Is kernel module `mod` (file name stem, e.g. "nvme") built in, available
 * as a module, or loaded in kernel `release`, and is it in its initramfs
 * (in_initramfs: 1, 0, -1 unknown or no initramfs)? */
static json_t *driver_json(const struct ctx *c, const char *release, const char *mod, int in_initramfs)
{
	char p[512], pat[64];
	snprintf(pat, sizeof pat, "/%s.ko", mod);
	snprintf(p, sizeof p, "/lib/modules/%s/modules.builtin", release);
	char *builtin = slurp(c, p);
	snprintf(p, sizeof p, "/lib/modules/%s/modules.dep", release);
	char *dep = slurp(c, p);
	snprintf(p, sizeof p, "/sys/module/%s", mod);
	bool loaded = exists(c, p);
	bool in_builtin = builtin && strstr(builtin, pat);
	bool as_module = dep && strstr(dep, pat);
	json_t *j = json_pack("{s:o, s:o, s:b, s:o}", "builtin", builtin ? json_boolean(in_builtin) : json_null(),
			      "module", dep ? json_boolean(as_module) : json_null(), "loaded", loaded, "initramfs",
			      in_initramfs > 0 ? json_true() : in_initramfs == 0 ? json_false() : json_null());
	free(builtin);
	free(dep);
	return j;
}

static ssize_t fd_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	ssize_t r;
	do
		r = pread(*(int *)ctx, buf, n, (off_t)off);
	while (r < 0 && errno == EINTR);
	return r;
}

/* The initramfs of kernel `release` (/boot/initrd.img-R or
 * /boot/initramfs-R.img): its path (caller frees) or NULL, and what
 * dv_initramfs_scan found in it. */
static char *scan_initramfs(const struct ctx *c, const char *release, struct dv_initramfs_result *res)
{
	res->nvme = res->ena = -1;
	for (int i = 0; i < 2; i++) {
		char rel[512];
		if (i == 0)
			snprintf(rel, sizeof rel, "/boot/initrd.img-%s", release);
		else
			snprintf(rel, sizeof rel, "/boot/initramfs-%s.img", release);
		char *full = path_of(c, rel);
		int fd = open(full, O_RDONLY | O_CLOEXEC);
		free(full);
		if (fd < 0)
			continue;
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			(void)dv_initramfs_scan(fd_read, &fd, (uint64_t)st.st_size, res);
		close(fd);
		return dv_strdup(rel);
	}
	return NULL;
}

/* ---- collect ---------------------------------------------------------------- */

int dv_inventory_collect(const char *root, double sample_seconds, json_t **out, struct dv_err *err)
{
	*out = NULL;
	struct ctx c = {root ? root : ""};
	struct cpu_times t0, t1;
	int r = read_cpu_times(&c, &t0, err);
	if (r < 0)
		return r;
	json_t *mem = NULL;
	if ((r = memory_json(&c, &mem, err)) < 0)
		return r;
	double started = dv_now();
	if (sample_seconds > 0) {
		struct timespec ts = {(time_t)sample_seconds,
				      (long)((sample_seconds - (double)(time_t)sample_seconds) * 1e9)};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	double took = dv_now() - started;
	if ((r = read_cpu_times(&c, &t1, err)) < 0) {
		json_decref(mem);
		return r;
	}
	json_t *cpu = cpu_json(&c);
	json_t *busy = json_null();
	if (sample_seconds > 0 && t1.total > t0.total && t1.busy >= t0.busy)
		busy = json_real((double)(t1.busy - t0.busy) / (double)(t1.total - t0.total));
	json_object_set_new(cpu, "busy", busy);
	json_object_set_new(cpu, "sample_seconds", json_real(took));

	struct utsname u;
	bool have_u = uname(&u) == 0;
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	bool efi = exists(&c, "/sys/firmware/efi");
	const char *release = have_u ? u.release : "";

	struct dv_initramfs_result ir;
	char *initrd = scan_initramfs(&c, release, &ir);
	json_t *nitro = json_pack("{s:o, s:o, s:o}", "nvme", driver_json(&c, release, "nvme", ir.nvme), "ena",
				  driver_json(&c, release, "ena", ir.ena), "initramfs",
				  initrd ? json_string(initrd) : json_null());
	free(initrd);

	char when[32];
	dv_format_time(when, sizeof when, dv_unix_now());
	*out = json_pack("{s:i, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:o}", "version", 1, "time", when,
			 "hostname", host, "architecture", have_u ? json_string(u.machine) : json_null(), "kernel",
			 have_u ? json_string(u.release) : json_null(), "os", os_json(&c), "cpu", cpu, "memory", mem,
			 "load", load_json(&c), "boot_mode", efi ? "uefi" : "bios", "network", net_json(), "disks",
			 disks_json(&c), "nitro_drivers", nitro);
	if (!*out)
		return dv_error(err, DV_E_FAIL, "inventory: cannot build the JSON object");
	return 0;
}

/* ---- accumulate --------------------------------------------------------------- */

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* {"peak","p50","p95","p99"} of field `key` over history, with the peak
 * also at least old_peak (peaks survive history trimming). */
static json_t *stats_of(const json_t *history, const char *key, const json_t *old_peak)
{
	size_t n = json_array_size(history), m = 0;
	double *v = dv_calloc(n ? n : 1, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		const json_t *x = json_object_get(json_array_get(history, i), key);
		if (json_is_number(x))
			v[m++] = json_number_value(x);
	}
	json_t *j = json_object();
	double peak = json_is_number(old_peak) ? json_number_value(old_peak) : -INFINITY;
	if (m) {
		qsort(v, m, sizeof *v, dbl_cmp);
		if (v[m - 1] > peak)
			peak = v[m - 1];
		const double q[] = {0.50, 0.95, 0.99};
		const char *names[] = {"p50", "p95", "p99"};
		for (size_t k = 0; k < 3; k++) {
			/* nearest rank */
			size_t rank = (size_t)ceil(q[k] * (double)m);
			json_object_set_new(j, names[k], json_real(v[rank ? rank - 1 : 0]));
		}
	}
	json_object_set_new(j, "peak", isinf(peak) ? json_null() : json_real(peak));
	free(v);
	return j;
}

static json_t *or_null(json_t *j)
{
	return j ? j : json_null();
}

int dv_inventory_append(const json_t *acc, const json_t *sample, json_t **out, struct dv_err *err)
{
	*out = NULL;
	if (!json_is_object(sample))
		return dv_error(err, DV_E_USAGE, "inventory: the sample is not an inventory object");
	json_t *history;
	json_int_t samples = 0;
	const char *first = NULL;
	if (acc && !json_is_null(acc)) {
		if (!json_is_object(acc) || json_integer_value(json_object_get(acc, "version")) != 1 ||
		    !json_is_array(json_object_get(acc, "history")))
			return dv_error(err, DV_E_CORRUPT,
					"inventory: the accumulated file is not a diskvault inventory (version 1)");
		history = json_deep_copy(json_object_get(acc, "history"));
		samples = json_integer_value(json_object_get(acc, "samples"));
		first = json_string_value(json_object_get(acc, "first"));
	} else {
		history = json_array();
	}
	const char *now = json_string_value(json_object_get(sample, "time"));
	const json_t *load = json_object_get(sample, "load");
	json_array_append_new(history,
			      json_pack("{s:s?, s:O, s:O, s:O}", "time", now, "cpu_busy",
					or_null(json_object_get(json_object_get(sample, "cpu"), "busy")), "memory_used",
					or_null(json_object_get(json_object_get(sample, "memory"), "used")), "load1",
					or_null(json_array_get(load, 0))));
	while (json_array_size(history) > DV_INVENTORY_HISTORY_MAX)
		json_array_remove(history, 0);

	const json_t *old_cpu = acc ? json_object_get(json_object_get(acc, "cpu_busy"), "peak") : NULL;
	const json_t *old_mem = acc ? json_object_get(json_object_get(acc, "memory_used"), "peak") : NULL;
	const json_t *old_load = acc ? json_object_get(json_object_get(acc, "load1"), "peak") : NULL;
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(1));
	json_object_set_new(o, "first", json_string(first ? first : now ? now : ""));
	json_object_set_new(o, "last", now ? json_string(now) : json_null());
	json_object_set_new(o, "samples", json_integer(samples + 1));
	json_object_set_new(o, "cpu_busy", stats_of(history, "cpu_busy", old_cpu));
	json_object_set_new(o, "memory_used", stats_of(history, "memory_used", old_mem));
	json_object_set_new(o, "load1", stats_of(history, "load1", old_load));
	json_object_set_new(o, "latest", json_deep_copy(sample));
	json_object_set_new(o, "history", history);
	*out = o;
	return 0;
}
