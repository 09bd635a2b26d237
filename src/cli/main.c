/* main.c - the diskvault command table and global options. */
#include <stdio.h>
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "repo/repo.h"

struct dv_cli_globals dv_cli = {.progress = DV_PROGRESS_AUTO};
volatile int dv_cli_interrupted;

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"init", cmd_init, "create a repository"},
	{"backup", cmd_backup, "image disks into a new snapshot"},
	{"list", cmd_list, "list snapshots"},
	{"show", cmd_show, "show one snapshot: disks, extents, sizes"},
	{"restore", cmd_restore, "write a snapshot's disk to a device or image file"},
	{"verify", cmd_verify, "read and check every chunk a snapshot uses"},
	{"check", cmd_check, "check the repository's structure"},
	{"inventory", cmd_inventory, "record this machine: CPU, memory, use, OS, disks, drivers"},
	{"forget", cmd_forget, "remove snapshots by retention rules (--prune frees their data)"},
	{"prune", cmd_prune, "delete data no snapshot uses"},
	{"unlock", cmd_unlock, "remove stale locks"},
	{"rebuild-index", cmd_rebuild_index, "rebuild the chunk index from the packs"},
	{"repair", cmd_repair, "repair snapshots: remove manifests that cannot be read"},
	{"key", cmd_key, "manage the passphrases of an encrypted repository"},
	{"copy", cmd_copy, "copy a repository or some snapshots elsewhere (e.g. local to S3), resumable"},
	{"s3", cmd_s3, "list or abort multipart uploads interrupted runs left on S3"},
	{"config", cmd_config, "show the effective settings and where they come from"},
	{"ebs-import", cmd_ebs_import, "write a snapshot's disk into a new EBS snapshot (EBS direct APIs)"},
	{"rightsize", cmd_rightsize, "choose an EC2 instance type from measured use"},
	{"catalog", cmd_catalog, "list or refresh the EC2 instance catalog"},
	{"launch", cmd_launch, "run an EC2 instance from a snapshot's EBS snapshot"},
	{"cleanup", cmd_cleanup, "remove the instances, AMIs and EBS snapshots launch created"},
	{"mount", cmd_mount, "mount a snapshot read-only: an image file per disk, partition and LV (FUSE)"},
	{"ls", cmd_ls, "list a directory of a snapshot's filesystem (ext2/3/4)"},
	{"cat", cmd_cat, "write a file of a snapshot's filesystem to stdout"},
	{"extract", cmd_extract, "copy files and trees out of a snapshot into a directory"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: diskvault [--repo PATH] [--json] [-q] [-v] [--progress=auto|always|never] [--lock-wait DURATION]\n"
		     "                 [--password-file FILE] [--config FILE] COMMAND [ARGS]\n\n"
		     "commands:\n");
	for (size_t i = 0; i < DV_ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nThe repository may also be given as DISKVAULT_REPO. 'diskvault COMMAND --help' shows a command's "
		     "options.\nSettings may also come from a config file: see 'diskvault config --help'.\n"
		     "Exit codes: docs/exit-codes.md.\n");
}

static void on_signal(int sig)
{
	(void)sig;
	dv_cli_interrupted = 1;
}

int main(int argc, char **argv)
{
	const char *env = getenv("DISKVAULT_REPO");
	if (env && *env)
		dv_cli.repo = env;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	dv_interrupt_flag = &dv_cli_interrupted;
	dv_repo_set_passphrase_source(dv_cli_passphrase);

	/* --json anywhere: a usage error found before the parser reaches it
	 * (an unknown option in front of it) is reported as JSON too. */
	for (int k = 1; k < argc && strcmp(argv[k], "--"); k++)
		if (!strcmp(argv[k], "--json"))
			dv_cli.json = true;
	/* Global options before the command; commands accept them too. */
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
			printf("diskvault %s\n", DV_VERSION);
			return 0;
		}
		if (!strcmp(a, "--json"))
			dv_cli.json = true;
		else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
			dv_cli.quiet = true;
		else if (!strcmp(a, "--verbose"))
			dv_cli.verbose++;
		else if (a[0] == '-' && a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1))
			dv_cli.verbose += (int)strlen(a + 1); /* -v, -vv */
		else if (!strcmp(a, "--repo") && i + 1 < argc)
			dv_cli.repo = argv[++i];
		else if (!strncmp(a, "--repo=", 7))
			dv_cli.repo = a + 7;
		else if (!strcmp(a, "--config") && i + 1 < argc)
			i++; /* read by dv_cli_config_load() below */
		else if (!strncmp(a, "--config=", 9))
			continue;
		else if (!strncmp(a, "--", 2) && i + 1 < argc && dv_cli_s3_option(a + 2, argv[i + 1]))
			i++;
		else if (!strcmp(a, "--password-file") && i + 1 < argc)
			dv_cli.password_file = argv[++i];
		else if (!strcmp(a, "--lock-wait") && i + 1 < argc) {
			dv_cli.lock_wait = dv_cli_parse_wait(argv[++i]);
			if (dv_cli.lock_wait < 0)
				return dv_cli_usage(NULL, DV_CLI_WAIT_MSG, argv[i]);
		}
		else if (!strncmp(a, "--progress=", 11)) {
			if (!strcmp(a + 11, "auto"))
				dv_cli.progress = DV_PROGRESS_AUTO;
			else if (!strcmp(a + 11, "always"))
				dv_cli.progress = DV_PROGRESS_ALWAYS;
			else if (!strcmp(a + 11, "never"))
				dv_cli.progress = DV_PROGRESS_NEVER;
			else
				return dv_cli_usage(NULL, "--progress must be auto, always or never");
		} else
			return dv_cli_usage(NULL, "unknown option '%s'", a);
	}
	if (i >= argc) {
		if (dv_cli.json)
			return dv_cli_usage(NULL, "no command given");
		usage(stderr);
		return DV_EXIT_USAGE;
	}
	/* Tuning variables that hold sizes (docs/s3.md): the library takes an
	 * unparsable one as unset, so refuse it here, before any work. */
	static const char *const size_vars[] = {"DISKVAULT_READ_GAP", "DISKVAULT_S3_PART_SIZE",
						"DISKVAULT_S3_MULTIPART_THRESHOLD"};
	for (size_t k = 0; k < DV_ARRAY_SIZE(size_vars); k++) {
		const char *v = getenv(size_vars[k]);
		uint64_t x;
		if (v && *v && !dv_parse_size(v, &x))
			return dv_cli_usage(NULL, "%s='%s' is not a size (bytes, or with K, M or G: 256K, 8M)", size_vars[k],
					    v);
	}
	/* restic's name for list */
	const char *cmd_name = !strcmp(argv[i], "snapshots") ? "list" : argv[i];
	for (size_t k = 0; k < DV_ARRAY_SIZE(commands); k++)
		if (!strcmp(cmd_name, commands[k].name)) {
			int crc = dv_cli_config_load(argc, argv);
			if (crc)
				return crc;
			int rc = commands[k].fn(argc - i, argv + i);
			fflush(stdout);
			return rc;
		}
	return dv_cli_usage(NULL, "unknown command '%s'", argv[i]);
}
