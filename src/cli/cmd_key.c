/* cmd_key.c - the passphrases of an encrypted repository. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "repo/repo.h"

static const char help[] =
	"usage: diskvault --repo PATH key list|add|remove ID|passwd [--new-password-file FILE]\n"
	"Manages the passphrases (key slots) of an encrypted repository; each one unlocks the same\n"
	"master key. The repository is opened with the usual passphrase sources; a new passphrase\n"
	"comes from --new-password-file, DISKVAULT_NEW_PASSWORD_FILE or a prompt asked twice.\n"
	"  list         key slots: id, creation time, host; * marks the one in use\n"
	"  add          add a passphrase\n"
	"  remove ID    remove a key slot (not the one in use, not the last)\n"
	"  passwd       replace the passphrase in use by a new one\n";

int cmd_key(int argc, char **argv)
{
	const struct dv_cli_opt opts[] = {DV_OPT_STRING("new-password-file", &dv_cli.new_password_file), DV_OPT_END};
	int first, rc;
	if (!dv_cli_parse("key", help, argc, argv, opts, &first, &rc))
		return rc;
	const char *verb = first < argc ? argv[first] : NULL;
	int nargs = argc - first;
	if (!verb || (strcmp(verb, "list") && strcmp(verb, "add") && strcmp(verb, "remove") && strcmp(verb, "passwd")))
		return dv_cli_usage("key", "give list, add, remove ID or passwd");
	if (nargs != (strcmp(verb, "remove") ? 1 : 2))
		return dv_cli_usage("key", "wrong number of arguments for 'key %s'", verb);
	const char *repo_path;
	if ((rc = dv_cli_need_repo("key", &repo_path)))
		return rc;
	struct dv_err err;
	struct dv_repo *repo = NULL;
	struct dv_key_info *keys = NULL;
	size_t n = 0;
	char id[17] = "";
	if (dv_cli_open_repo(repo_path, &repo, &err) < 0) {
		rc = dv_cli_fail("key", &err);
		goto out;
	}
	if (!dv_repo_encrypted(repo)) {
		dv_error(&err, DV_E_USAGE, "%s: repository is not encrypted", repo_path);
		rc = dv_cli_fail("key", &err);
		goto out;
	}
	dv_cli.adding_key = true;
	if (!strcmp(verb, "add") || !strcmp(verb, "passwd")) {
		if (dv_repo_key_add(repo, id, &err) < 0) {
			rc = dv_cli_fail("key", &err);
			goto out;
		}
		if (!strcmp(verb, "passwd")) {
			/* The old slot goes only once the new one is durable. */
			if (dv_repo_keys(repo, &keys, &n, &err) < 0) {
				rc = dv_cli_fail("key", &err);
				goto out;
			}
			for (size_t i = 0; i < n; i++)
				if (keys[i].current && dv_repo_key_remove_current(repo, &err) < 0) {
					rc = dv_cli_fail("key", &err);
					goto out;
				}
		}
		if (dv_cli.json)
			dv_cli_print_json(json_pack("{s:s, s:b, s:s, s:s}", "command", "key", "ok", 1, "action", verb, "id", id));
		else if (!dv_cli.quiet)
			printf("%s key %s\n", strcmp(verb, "add") ? "replaced the passphrase in use by" : "added", id);
	} else if (!strcmp(verb, "remove")) {
		if (dv_repo_key_remove(repo, argv[first + 1], &err) < 0) {
			rc = dv_cli_fail("key", &err);
			goto out;
		}
		if (dv_cli.json)
			dv_cli_print_json(json_pack("{s:s, s:b, s:s, s:s}", "command", "key", "ok", 1, "action", "remove", "id",
						    argv[first + 1]));
		else if (!dv_cli.quiet)
			printf("removed key %s\n", argv[first + 1]);
	} else {
		if (dv_repo_keys(repo, &keys, &n, &err) < 0) {
			rc = dv_cli_fail("key", &err);
			goto out;
		}
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++) {
			if (dv_cli.json)
				json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b}", "id", keys[i].id, "created",
								     keys[i].created, "host", keys[i].host, "current",
								     keys[i].current));
			else if (!dv_cli.quiet)
				printf("%s %s  %s  %s\n", keys[i].current ? "*" : " ", keys[i].id, keys[i].created, keys[i].host);
		}
		if (dv_cli.json)
			dv_cli_print_json(json_pack("{s:s, s:b, s:o}", "command", "key", "ok", 1, "keys", arr));
		else
			json_decref(arr);
	}
out:
	free(keys);
	dv_repo_free(repo);
	return rc;
}
