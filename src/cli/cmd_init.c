#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include "cli.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault --repo PATH init [--chunk-size AVG_KIB] [--compression-level N] [--pack-size MIB]\n"
	"Creates a repository in PATH (a new or empty directory).\n"
	"  --chunk-size AVG_KIB     average chunk size, a power of two (default 64); min = avg/4, max = avg*4\n"
	"  --compression-level N    zstd level 1..19 (default 3)\n"
	"  --pack-size MIB          target pack file size (default 32)\n"
	"A new repository is encrypted (AES-256-GCM, authenticated; key from a passphrase via scrypt):\n"
	"the passphrase comes from --password-file, DISKVAULT_PASSWORD_FILE, DISKVAULT_PASSWORD_COMMAND\n"
	"or a prompt (formats/encryption.md).\n"
	"  --no-encrypt             store it in the clear (a disk image holds /etc/shadow, keys, databases)\n"
	"  --encrypt                encrypted (the default; accepted for scripts that say it)\n"
	"  --kdf-n N                scrypt cost N, a power of two (default: N and P tuned to ~0.5 s of CPU here)\n"
	"  --kdf-p P                scrypt lanes 1..16, derived in parallel (default: tuned; 1 with --kdf-n)\n";

/* --kdf-n N: a power of two */
static int kdf_n_opt(const char *cmd, const struct dv_cli_opt *o, const char *arg)
{
	char *end;
	long v = strtol(arg, &end, 10);
	if (!*arg || *end || v < 1024 || v > (1l << 24) || (v & (v - 1)))
		return dv_cli_usage(cmd, "--kdf-n must be a power of two between 1024 and 16777216");
	*(uint64_t *)o->dest = (uint64_t)v;
	return 0;
}

int cmd_init(int argc, char **argv)
{
	struct dv_repo_init_opts io;
	dv_repo_init_opts_default(&io);
	bool encrypt = false, no_encrypt = false;
	unsigned chunk_kib = 0, level = 0, pack_mib = 0; /* 0: not given */
	const struct dv_cli_opt opts[] = {
		DV_OPT_UINT("chunk-size", &chunk_kib, 4, 4096, "--chunk-size must be a number of KiB between 4 and 4096"),
		DV_OPT_UINT("compression-level", &level, 1, 19, "--compression-level must be between 1 and 19"),
		DV_OPT_UINT("pack-size", &pack_mib, 1, 1024, "--pack-size must be between 1 and 1024 MiB"),
		DV_OPT_FLAG("encrypt", &encrypt),
		DV_OPT_FLAG("no-encrypt", &no_encrypt),
		DV_OPT_CALLBACK("kdf-n", required_argument, kdf_n_opt, &io.scrypt_n),
		DV_OPT_UINT("kdf-p", &io.scrypt_p, 1, 16, "--kdf-p must be between 1 and 16"),
		DV_OPT_END,
	};
	int first, rc;
	if (!dv_cli_parse("init", help, argc, argv, opts, &first, &rc))
		return rc;
	if (chunk_kib) {
		io.chunker.avg = chunk_kib * 1024;
		io.chunker.min = io.chunker.avg / 4;
		io.chunker.max = io.chunker.avg * 4;
	}
	if (level)
		io.zstd_level = (int)level;
	if (pack_mib)
		io.pack_size = pack_mib << 20;
	if ((rc = dv_cli_no_operands("init", argc, argv, first)))
		return rc;
	if (encrypt && no_encrypt)
		return dv_cli_usage("init", "--encrypt and --no-encrypt contradict each other");
	io.encrypt = !no_encrypt;
	const char *repo;
	if ((rc = dv_cli_need_repo("init", &repo)))
		return rc;
	struct dv_err err;
	char id[33];
	if (dv_repo_init(repo, &io, id, &err) < 0) {
		if (err.code == DV_E_AUTH && !encrypt) {
			size_t n = strlen(err.msg);
			snprintf(err.msg + n, sizeof err.msg - n, " (or init --no-encrypt for a repository in the clear)");
		}
		return dv_cli_fail("init", &err);
	}
	if (dv_cli.json)
		dv_cli_print_json(json_pack("{s:s, s:b, s:s, s:s, s:b}", "command", "init", "ok", 1, "repository", repo, "id",
					    id, "encrypted", io.encrypt));
	else if (!dv_cli.quiet)
		printf("created %srepository %s at %s\n", io.encrypt ? "encrypted " : "", id, repo);
	return 0;
}
