/*
 * osinfo.c - what is installed on an ext2/3/4 filesystem of a source disk:
 * the architecture of its binaries (the ELF header of a well-known program),
 * its OS release (/etc/os-release), its kernels and whether each can boot on
 * an EC2 Nitro instance (nvme and ena drivers built in, as modules, or in
 * the initramfs). Everything is read with libext2fs, read-only, without
 * mounting; paths are resolved inside the filesystem (symlinks included,
 * libext2fs's nesting limit stops loops).
 *
 * Nothing here is trusted: every file read has a size cap, every name that
 * goes into the JSON is checked, and any failure makes a fact "unknown"
 * (or null), never an error of the backup.
 */
#include "probe_internal.h"

#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

/* Programs whose ELF header tells the architecture, tried in order. */
static const char *const arch_probes[] = {"/usr/bin/env", "/bin/sh", "/sbin/init", "/bin/ls", "/usr/bin/ls"};

#define MAX_KERNELS 32     /* /lib/modules entries looked at */
#define MAX_INITRAMFS 8    /* initramfs files scanned per filesystem (newest first) */
#define MAX_DIR_ENTRIES 4096
#define MAX_TEXT (4u << 20) /* modules.builtin, modules.dep, os-release */

/* ---- ELF ------------------------------------------------------------------ */

const char *dv_elf_arch(const uint8_t *b, size_t n)
{
	if (n < EI_NIDENT + 4 || memcmp(b, ELFMAG, SELFMAG) != 0 || b[EI_VERSION] != EV_CURRENT)
		return NULL;
	bool is64 = b[EI_CLASS] == ELFCLASS64;
	bool le = b[EI_DATA] == ELFDATA2LSB;
	if ((!is64 && b[EI_CLASS] != ELFCLASS32) || (!le && b[EI_DATA] != ELFDATA2MSB))
		return NULL;
	if (n < (is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr)))
		return NULL;
	/* e_type (2 bytes) then e_machine (2 bytes) follow e_ident */
	unsigned m = le ? (unsigned)b[18] | (unsigned)b[19] << 8 : (unsigned)b[18] << 8 | (unsigned)b[19];
	switch (m) {
	case EM_X86_64:
		return is64 ? "x86_64" : "x32";
	case EM_386:
		return "i386";
	case EM_AARCH64:
		return "arm64";
	case EM_ARM:
		return "arm";
	case EM_RISCV:
		return is64 ? "riscv64" : "riscv32";
	case EM_PPC64:
		return le ? "ppc64le" : "ppc64";
	case EM_PPC:
		return "ppc";
	case EM_S390:
		return is64 ? "s390x" : "s390";
	case EM_MIPS:
		return is64 ? (le ? "mips64el" : "mips64") : (le ? "mipsel" : "mips");
	case EM_LOONGARCH:
		return "loongarch64";
	}
	return NULL;
}

/* ---- reading inside the filesystem ------------------------------------------ */

/* The inode of path (absolute, inside fs), following symlinks. */
static bool lookup(ext2_filsys fs, const char *path, ext2_ino_t *ino, struct ext2_inode *inode)
{
	if (ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, ino) != 0 || !*ino)
		return false;
	return ext2fs_read_inode(fs, *ino, inode) == 0;
}

static bool is_dir(ext2_filsys fs, const char *path, ext2_ino_t *ino)
{
	struct ext2_inode in;
	return lookup(fs, path, ino, &in) && LINUX_S_ISDIR(in.i_mode);
}

struct efile {
	ext2_filsys fs;
	ext2_file_t f;
};

static ssize_t efile_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	struct efile *e = ctx;
	unsigned int got = 0;
	if (n > 1u << 30)
		n = 1u << 30;
	if (ext2fs_file_llseek(e->f, off, EXT2_SEEK_SET, NULL) != 0 || ext2fs_file_read(e->f, buf, (unsigned)n, &got) != 0)
		return -1;
	return (ssize_t)got;
}

/* Opens the regular file at path; *size its length. */
static bool open_file(ext2_filsys fs, const char *path, struct efile *e, uint64_t *size)
{
	ext2_ino_t ino;
	struct ext2_inode in;
	if (!lookup(fs, path, &ino, &in) || !LINUX_S_ISREG(in.i_mode))
		return false;
	e->fs = fs;
	if (ext2fs_file_open(fs, ino, 0, &e->f) != 0)
		return false;
	__u64 sz = 0;
	if (ext2fs_file_get_lsize(e->f, &sz) != 0) {
		ext2fs_file_close(e->f);
		return false;
	}
	*size = sz;
	return true;
}

/* At most cap bytes of a regular file, NUL-terminated; NULL when it is not
 * a readable regular file. *len the bytes read. */
static char *read_text(ext2_filsys fs, const char *path, size_t cap, size_t *len)
{
	struct efile e;
	uint64_t size;
	if (!open_file(fs, path, &e, &size))
		return NULL;
	size_t want = (size_t)DV_MIN(size, (uint64_t)cap);
	char *buf = dv_malloc(want + 1);
	size_t have = 0;
	while (have < want) {
		ssize_t r = efile_read(&e, have, buf + have, want - have);
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	ext2fs_file_close(e.f);
	buf[have] = 0;
	if (len)
		*len = have;
	return buf;
}

/* Names in directory ino (without . and ..), at most MAX_DIR_ENTRIES. */
struct names {
	struct dv_strlist l;
	size_t seen;
};

static int dir_cb(struct ext2_dir_entry *d, int offset, int blocksize, char *buf, void *priv)
{
	(void)offset;
	(void)blocksize;
	(void)buf;
	struct names *n = priv;
	int len = ext2fs_dirent_name_len(d);
	if (++n->seen > MAX_DIR_ENTRIES)
		return DIRENT_ABORT;
	if (len <= 0 || len > 255 || (len == 1 && d->name[0] == '.') || (len == 2 && !memcmp(d->name, "..", 2)))
		return 0;
	char name[256];
	memcpy(name, d->name, (size_t)len);
	name[len] = 0;
	dv_strlist_add(&n->l, name);
	return 0;
}

static void list_dir(ext2_filsys fs, ext2_ino_t dir, struct names *out)
{
	memset(out, 0, sizeof *out);
	(void)ext2fs_dir_iterate(fs, dir, 0, NULL, dir_cb, out);
}

/* A kernel version or file name that may go into the JSON: printable
 * ASCII without '/', short. */
static bool plain_name(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 128)
		return false;
	for (const char *p = s; *p; p++)
		if (*p <= ' ' || *p > '~' || *p == '/')
			return false;
	return true;
}

/* ---- kernels and their drivers ------------------------------------------------ */

/* true when a line of a module list (modules.builtin, modules.dep) names
 * the module file mod.ko[.xz|.zst|.gz]. */
static bool list_has(const char *text, const char *mod)
{
	size_t ml = strlen(mod);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		size_t ll = strcspn(l, ":\n");
		/* the module path ends the line (modules.builtin) or precedes ':' (modules.dep) */
		const char *end = l + ll;
		const char *slash = NULL;
		for (const char *p = l; p < end; p++)
			if (*p == '/')
				slash = p;
		const char *base = slash ? slash + 1 : l;
		size_t bl = (size_t)(end - base);
		if (bl < ml + 3 || memcmp(base, mod, ml) || memcmp(base + ml, ".ko", 3))
			continue;
		size_t sl = bl - ml - 3;
		const char *sfx = base + ml + 3;
		if (!sl || (sl == 3 && !memcmp(sfx, ".xz", 3)) || (sl == 4 && !memcmp(sfx, ".zst", 4)) ||
		    (sl == 3 && !memcmp(sfx, ".gz", 3)))
			return true;
	}
	return false;
}

/* "builtin", "module", "missing", or null (no module lists to tell). */
static json_t *driver_state(ext2_filsys fs, const char *kdir, const char *builtin, const char *dep, const char *mod,
			    const char *rel)
{
	if (builtin && list_has(builtin, mod))
		return json_string("builtin");
	static const char *const sfx[] = {"", ".xz", ".zst", ".gz"};
	for (size_t i = 0; i < DV_ARRAY_SIZE(sfx); i++) {
		char p[512];
		ext2_ino_t ino;
		struct ext2_inode in;
		snprintf(p, sizeof p, "%s/kernel/%s/%s.ko%s", kdir, rel, mod, sfx[i]);
		if (lookup(fs, p, &ino, &in) && LINUX_S_ISREG(in.i_mode))
			return json_string("module");
	}
	if (dep && list_has(dep, mod))
		return json_string("module");
	return builtin || dep ? json_string("missing") : json_null();
}

static int ver_cmp_desc(const void *a, const void *b)
{
	return strverscmp(*(char *const *)b, *(char *const *)a);
}

static json_t *kernels_json(ext2_filsys fs)
{
	json_t *arr = json_array();
	ext2_ino_t dir;
	if (!is_dir(fs, "/lib/modules", &dir) && !is_dir(fs, "/usr/lib/modules", &dir))
		return arr;
	struct names n;
	list_dir(fs, dir, &n);
	if (n.l.n)
		qsort(n.l.v, n.l.n, sizeof *n.l.v, ver_cmp_desc);
	size_t kept = 0;
	for (size_t i = 0; i < n.l.n && kept < MAX_KERNELS; i++) {
		const char *v = n.l.v[i];
		char kdir[300], p[400];
		ext2_ino_t kino;
		if (!plain_name(v))
			continue;
		snprintf(kdir, sizeof kdir, "/lib/modules/%s", v);
		if (!is_dir(fs, kdir, &kino)) {
			snprintf(kdir, sizeof kdir, "/usr/lib/modules/%s", v);
			if (!is_dir(fs, kdir, &kino))
				continue;
		}
		snprintf(p, sizeof p, "%s/modules.builtin", kdir);
		char *builtin = read_text(fs, p, MAX_TEXT, NULL);
		snprintf(p, sizeof p, "%s/modules.dep", kdir);
		char *dep = read_text(fs, p, MAX_TEXT, NULL);
		json_array_append_new(arr, json_pack("{s:s, s:o, s:o}", "version", v, "nvme",
						     driver_state(fs, kdir, builtin, dep, "nvme", "drivers/nvme/host"),
						     "ena",
						     driver_state(fs, kdir, builtin, dep, "ena",
								  "drivers/net/ethernet/amazon/ena")));
		free(builtin);
		free(dep);
		kept++;
	}
	dv_strlist_release(&n.l);
	return arr;
}

/* The kernel version an initramfs file name is for, or false. */
static bool initramfs_version(const char *name, char *ver, size_t n)
{
	size_t len = strlen(name);
	const char *v = NULL;
	size_t vl = 0;
	if (!strncmp(name, "initrd.img-", 11)) {
		v = name + 11;
		vl = len - 11;
	} else if (!strncmp(name, "initramfs-", 10) && len > 14 && !strcmp(name + len - 4, ".img")) {
		v = name + 10;
		vl = len - 14;
	}
	if (!v || !vl || vl >= n)
		return false;
	memcpy(ver, v, vl);
	ver[vl] = 0;
	return true;
}

static json_t *tri(int v)
{
	return v > 0 ? json_true() : v == 0 ? json_false() : json_null();
}

/* Scans the initramfs files in /boot and in the root directory (a separate
 * /boot filesystem has them there). */
static json_t *initramfs_json(ext2_filsys fs)
{
	json_t *arr = json_array();
	static const char *const dirs[] = {"/boot", "/"};
	for (size_t d = 0; d < DV_ARRAY_SIZE(dirs); d++) {
		ext2_ino_t dir;
		if (!is_dir(fs, dirs[d], &dir))
			continue;
		struct names n;
		list_dir(fs, dir, &n);
		if (n.l.n)
			qsort(n.l.v, n.l.n, sizeof *n.l.v, ver_cmp_desc);
		for (size_t i = 0; i < n.l.n && json_array_size(arr) < MAX_INITRAMFS; i++) {
			char ver[160], p[400];
			if (!plain_name(n.l.v[i]) || !initramfs_version(n.l.v[i], ver, sizeof ver))
				continue;
			snprintf(p, sizeof p, "%s/%s", d ? "" : dirs[d], n.l.v[i]);
			struct efile e;
			uint64_t size;
			if (!open_file(fs, p, &e, &size))
				continue;
			struct dv_initramfs_result res;
			(void)dv_initramfs_scan(efile_read, &e, size, &res);
			ext2fs_file_close(e.f);
			json_array_append_new(arr, json_pack("{s:s, s:s, s:o, s:o, s:b}", "path", p, "version", ver,
							     "nvme", tri(res.nvme), "ena", tri(res.ena), "complete",
							     res.complete));
		}
		dv_strlist_release(&n.l);
	}
	return arr;
}

/* ---- per filesystem ------------------------------------------------------------ */

/* ---- device names in configuration ---------------------------------------------- */

#define MAX_DEVICE_LINES 16

/* The length of a controller-dependent device name at s ("/dev/sda1"), or 0. */
static size_t device_name_len(const char *s)
{
	static const char *const prefixes[] = {"/dev/sd", "/dev/hd", "/dev/xvd", "/dev/vd"};
	for (size_t i = 0; i < DV_ARRAY_SIZE(prefixes); i++) {
		size_t n = strlen(prefixes[i]);
		if (strncmp(s, prefixes[i], n) || s[n] < 'a' || s[n] > 'z')
			continue;
		while (s[n] >= 'a' && s[n] <= 'z')
			n++;
		while (s[n] >= '0' && s[n] <= '9')
			n++;
		/* /dev/sdcard-like words and paths below are not devices */
		if (s[n] == '/' || s[n] == '-' || s[n] == '_' || (s[n] >= 'A' && s[n] <= 'Z'))
			return 0;
		return n;
	}
	return 0;
}

void dv_device_name_lines(const char *file, const char *text, json_t *out, size_t max)
{
	size_t lineno = 0;
	for (const char *l = text; *l && json_array_size(out) < max;) {
		const char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l) : strlen(l);
		lineno++;
		while (len && (*l == ' ' || *l == '\t'))
			l++, len--;
		while (len && (l[len - 1] == ' ' || l[len - 1] == '\t' || l[len - 1] == '\r'))
			len--;
		if (len && *l != '#') {
			for (size_t i = 0; i + 5 < len; i++) {
				/* a device name starts a word or follows '=' (root=/dev/sda1) */
				if (i && l[i - 1] != ' ' && l[i - 1] != '\t' && l[i - 1] != '=' && l[i - 1] != '"' &&
				    l[i - 1] != '\'')
					continue;
				size_t n = device_name_len(l + i);
				if (!n || i + n > len)
					continue;
				json_array_append_new(out, json_pack("{s:s, s:I, s:s%, s:s%}", "file", file, "line",
								     (json_int_t)lineno, "device", l + i, n, "text", l,
								     DV_MIN(len, (size_t)160)));
				break;
			}
		}
		if (!e)
			break;
		l = e + 1;
	}
}

/* Configuration files that name the boot and mounted disks; on a
 * separate /boot filesystem the grub files lie at its root. */
static const char *const device_configs[] = {"/etc/fstab",          "/etc/default/grub", "/boot/grub/grub.cfg",
					     "/boot/grub2/grub.cfg", "/grub/grub.cfg",    "/grub2/grub.cfg",
					     "/etc/crypttab",        "/etc/mdadm/mdadm.conf"};

static json_t *device_lines(ext2_filsys fs)
{
	json_t *out = json_array();
	for (size_t i = 0; i < DV_ARRAY_SIZE(device_configs); i++) {
		char *t = read_text(fs, device_configs[i], MAX_TEXT, NULL);
		if (t)
			dv_device_name_lines(device_configs[i], t, out, MAX_DEVICE_LINES);
		free(t);
	}
	return out;
}

void dv_osinfo_ext(const char *path, uint64_t part_off, uint64_t part_len, json_t *fs_j)
{
	if (!dv_ext_super_safe(path, part_off, part_len))
		return;
	dv_ext2_errors_init();
	char opts[64];
	snprintf(opts, sizeof opts, "offset=%llu", (unsigned long long)part_off);
	ext2_filsys fs = NULL;
	if (ext2fs_open2(path, opts, EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0, 0, unix_io_manager, &fs) != 0)
		return;

	const char *arch = NULL, *from = NULL;
	bool any = false;
	for (size_t i = 0; i < DV_ARRAY_SIZE(arch_probes) && !arch; i++) {
		/* a name that exists but leads nowhere (a symlink loop, a
		 * directory, a cut file) still says an OS is installed here */
		ext2_ino_t ino;
		if (ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, arch_probes[i], &ino) == 0 && ino)
			any = true;
		size_t len = 0;
		char *head = read_text(fs, arch_probes[i], sizeof(Elf64_Ehdr), &len);
		if (!head)
			continue;
		any = true;
		arch = dv_elf_arch((const uint8_t *)head, len);
		if (arch)
			from = arch_probes[i];
		free(head);
	}
	char *rel = read_text(fs, "/etc/os-release", MAX_TEXT, NULL);
	if (!rel)
		rel = read_text(fs, "/usr/lib/os-release", MAX_TEXT, NULL);
	if (any || rel) {
		json_t *os = dv_os_release_parse(rel ? rel : "");
		json_object_set_new(os, "architecture", json_string(arch ? arch : "unknown"));
		json_object_set_new(os, "from", from ? json_string(from) : json_null());
		json_object_set_new(fs_j, "os", os);
	}
	free(rel);

	json_t *k = kernels_json(fs);
	if (json_array_size(k))
		json_object_set_new(fs_j, "kernels", k);
	else
		json_decref(k);
	json_t *ir = initramfs_json(fs);
	if (json_array_size(ir))
		json_object_set_new(fs_j, "initramfs", ir);
	else
		json_decref(ir);
	json_t *dl = device_lines(fs);
	if (json_array_size(dl))
		json_object_set_new(fs_j, "device_names", dl);
	else
		json_decref(dl);
	ext2fs_close_free(&fs);
}

/* ---- per disk ------------------------------------------------------------------ */

static json_t *ready(bool nvme, const json_t *state, const json_t *ir_has)
{
	const char *s = json_string_value(state);
	if (s && !strcmp(s, "builtin"))
		return json_true();
	if (json_is_true(ir_has))
		return json_true();
	if (!nvme && s && !strcmp(s, "module"))
		return json_true(); /* ena may load after the root filesystem is mounted */
	if (ir_has && json_is_false(ir_has))
		return json_false(); /* nvme as a module but not in the initramfs: no root disk */
	if (!s)
		return json_null();
	if (!strcmp(s, "missing"))
		return json_false();
	return json_null(); /* nvme module, no initramfs found to check */
}

void dv_osinfo_disk(json_t *layout)
{
	/* the filesystems of the disk, in table order */
	json_t *fss = json_array();
	json_t *w = json_object_get(layout, "filesystem");
	if (json_is_object(w))
		json_array_append(fss, w);
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(layout, "partitions"), i, p)
	{
		json_t *f = json_object_get(p, "fs");
		if (json_is_object(f))
			json_array_append(fss, f);
	}
	/* the root: the first with a known architecture, else the first with an OS */
	json_t *root = NULL, *f;
	json_array_foreach(fss, i, f)
	{
		const char *a = json_string_value(json_object_get(json_object_get(f, "os"), "architecture"));
		if (a && strcmp(a, "unknown")) {
			root = f;
			break;
		}
		if (a && !root)
			root = f;
	}
	json_t *os = json_null();
	if (root) {
		os = json_deep_copy(json_object_get(root, "os"));
		json_t *kernels = json_object_get(root, "kernels");
		json_t *nitro = json_null();
		json_t *newest = json_array_get(kernels, 0); /* sorted newest first */
		if (newest) {
			const char *ver = json_string_value(json_object_get(newest, "version"));
			json_t *ir = NULL;
			json_array_foreach(fss, i, f)
			{
				size_t k;
				json_t *x;
				json_array_foreach(json_object_get(f, "initramfs"), k, x)
				{
					const char *v = json_string_value(json_object_get(x, "version"));
					if (!ir && v && ver && !strcmp(v, ver))
						ir = x;
				}
			}
			nitro = json_pack("{s:s?, s:o, s:o, s:O}", "kernel", ver, "nvme",
					  ready(true, json_object_get(newest, "nvme"), ir ? json_object_get(ir, "nvme") : NULL),
					  "ena",
					  ready(false, json_object_get(newest, "ena"), ir ? json_object_get(ir, "ena") : NULL),
					  "initramfs", ir ? json_object_get(ir, "path") : json_null());
		}
		json_object_set_new(os, "nitro_drivers", nitro);
		/* what every filesystem of the disk says (/etc and a separate /boot) */
		json_t *names = json_array();
		json_array_foreach(fss, i, f)
		{
			size_t k;
			json_t *x;
			json_array_foreach(json_object_get(f, "device_names"), k, x)
				if (json_array_size(names) < MAX_DEVICE_LINES)
					json_array_append(names, x);
		}
		json_object_set_new(os, "device_names", names);
	}
	json_object_set_new(layout, "os", os);
	json_decref(fss);
}
