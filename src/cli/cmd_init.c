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
	"  --encrypt                encrypt everything stored (AES-256-GCM; key from a passphrase via scrypt):\n"
	"                           the passphrase comes from --password-file, DISKVAULT_PASSWORD_FILE,\n"
	"                           DISKVAULT_PASSWORD_COMMAND or a prompt (formats/encryption.md)\n"
	"  --kdf-n N                scrypt cost N, a power of two (default: tuned to ~0.5 s here)\n";

static int parse_u32(const char *arg, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);
	if (!*arg || *end || v < lo || v > hi)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int opt(int o, const char *arg, void *ctx)
{
	struct dv_repo_init_opts *io = ctx;
	uint32_t v;
	switch (o) {
	case 'h':
		fputs(help, stdout);
		return 0;
	case 'c':
		if (parse_u32(arg, 4, 4096, &v) < 0)
			return dv_cli_usage("init", "--chunk-size must be a number of KiB between 4 and 4096");
		io->chunker.avg = v * 1024;
		io->chunker.min = io->chunker.avg / 4;
		io->chunker.max = io->chunker.avg * 4;
		return 0;
	case 'l':
		if (parse_u32(arg, 1, 19, &v) < 0)
			return dv_cli_usage("init", "--compression-level must be between 1 and 19");
		io->zstd_level = (int)v;
		return 0;
	case 'e':
		io->encrypt = true;
		return 0;
	case 'k':
		if (parse_u32(arg, 1024, 1u << 24, &v) < 0 || (v & (v - 1)))
			return dv_cli_usage("init", "--kdf-n must be a power of two between 1024 and 16777216");
		io->scrypt_n = v;
		return 0;
	case 'p':
		if (parse_u32(arg, 1, 1024, &v) < 0)
			return dv_cli_usage("init", "--pack-size must be between 1 and 1024 MiB");
		io->pack_size = v << 20;
		return 0;
	}
	return DV_EXIT_USAGE;
}

int cmd_init(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"chunk-size", required_argument, NULL, 'c'},
		{"compression-level", required_argument, NULL, 'l'},
		{"pack-size", required_argument, NULL, 'p'},
		{"encrypt", no_argument, NULL, 'e'},
		{"kdf-n", required_argument, NULL, 'k'},
		{NULL, 0, NULL, 0},
	};
	struct dv_repo_init_opts io;
	dv_repo_init_opts_default(&io);
	int first, rc = dv_cli_parse("init", argc, argv, "", longopts, opt, &io, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first < argc)
		return dv_cli_usage("init", "unexpected argument '%s'", argv[first]);
	const char *repo;
	if ((rc = dv_cli_need_repo("init", &repo)))
		return rc;
	struct dv_err err;
	char id[33];
	if (dv_repo_init(repo, &io, id, &err) < 0)
		return dv_cli_fail("init", &err);
	if (dv_cli.json)
		dv_cli_print_json(json_pack("{s:s, s:b, s:s, s:s, s:b}", "command", "init", "ok", 1, "repository", repo, "id",
					    id, "encrypted", io.encrypt));
	else if (!dv_cli.quiet)
		printf("created %srepository %s at %s\n", io.encrypt ? "encrypted " : "", id, repo);
	return 0;
}
