#!/bin/bash
# t_config.sh - the config file through the real binary, no root needed:
# a backup whose repository, sources, name, tags and options all come from
# the file; precedence file < environment < flags as 'config show --json'
# reports it; --config before or after the command; errors name file:line
# and exit 2 before anything runs; the secret-file permission rules; the
# [retention] policy applied by 'forget --prune' unless --keep-* is given
# (max_unused unless --max-unused is);
# and a cron-like run (no TTY, -q) printing nothing on success.
. "$(dirname "$0")/lib.sh"

unset DISKVAULT_REPO DISKVAULT_CONFIG AWS_REGION AWS_DEFAULT_REGION DISKVAULT_S3_REGION
export HOME=$T/home XDG_CONFIG_HOME=$T/home/.config # no user config of the tester's
mkdir -p "$HOME"

make_disk "$T/a.img" 40 cfg-a
make_disk "$T/b.img" 40 cfg-b
R=$T/repo
C=$T/dv.conf
cat >"$C" <<EOF2
# t_config.sh
[repository]
path = $R      # the repository
lock_wait = 1m

[backup]
sources = $T/a.img, "$T/b.img"
name = from-config
tags = nightly "two words"
all_blocks = true

[retention]
keep_last = 2
max_unused = unlimited

[s3]
region = eu-west-3
EOF2
chmod 600 "$C"

# 1. init and backup with nothing but --config.
expect_ok dv --config "$C" init --no-encrypt
[ -f "$R/config" ] || fail "init did not use [repository] path"
expect_ok dv --config "$C" --json backup --sha256
assert_json_ok "$STDOUT"
expect_ok dv --config "$C" --json show latest
M=$STDOUT
[ "$(json_get "$M" 'j["snapshot"]["name"]')" = from-config ] || fail "name not from the config"
[ "$(json_get "$M" 'j["snapshot"]["tags"]')" = '["nightly", "two words"]' ] ||
	fail "tags not from the config: $(json_get "$M" 'j["snapshot"]["tags"]')"
[ "$(json_get "$M" 'len(j["snapshot"]["disks"])')" = 2 ] || fail "sources not from the config (want 2 disks)"
[ "$(json_get "$M" 'j["snapshot"]["mode"]')" = all-blocks ] || fail "all_blocks = true not applied"
restore_check "$R" latest "$T/a.img" --disk 0
restore_check "$R" latest "$T/b.img" --disk 1 # all_blocks = true: bit-exact

# flags and operands outrank the file: one source, another name and tag
expect_ok dv --json backup "$T/a.img" --config "$C" --name from-flag --tag flagged
expect_ok dv --config "$C" --json show latest
[ "$(json_get "$STDOUT" 'j["snapshot"]["name"]')" = from-flag ] || fail "--name did not override the config"
[ "$(json_get "$STDOUT" 'j["snapshot"]["tags"]')" = '["flagged"]' ] || fail "--tag did not replace the config's tags"
[ "$(json_get "$STDOUT" 'len(j["snapshot"]["disks"])')" = 1 ] || fail "SOURCE operands did not replace [backup] sources"

# 2. precedence as config show reports it
setting() { json_get "$1" "j['settings']['$2']['$3']"; }
expect_ok dv --config "$C" --json config show
[ "$(setting "$STDOUT" repository.path value)" = "$R" ] || fail "repository.path"
[ "$(setting "$STDOUT" repository.path origin)" = "$C:3" ] || fail "repository.path origin: $(setting "$STDOUT" repository.path origin)"
[ "$(setting "$STDOUT" s3.region source)" = file ] || fail "s3.region should come from the file"
[ "$(setting "$STDOUT" backup.sha256 source)" = default ] || fail "backup.sha256 should be the default"
expect_ok env DISKVAULT_REPO=/env/repo AWS_REGION=us-east-2 "$DISKVAULT" --config "$C" --json config show
[ "$(setting "$STDOUT" repository.path value)" = /env/repo ] || fail "DISKVAULT_REPO does not outrank the file"
[ "$(setting "$STDOUT" repository.path source)" = env ] || fail "repository.path source should be env"
[ "$(setting "$STDOUT" s3.region value)" = us-east-2 ] || fail "AWS_REGION does not outrank the file"
expect_ok env DISKVAULT_REPO=/env/repo "$DISKVAULT" --config "$C" --json config show --repo /flag/repo
[ "$(setting "$STDOUT" repository.path value)" = /flag/repo ] || fail "--repo does not outrank env and file"
[ "$(setting "$STDOUT" repository.path source)" = flag ] || fail "repository.path source should be flag"
expect_ok env AWS_SECRET_ACCESS_KEY=hunter2hunter2 AWS_ACCESS_KEY_ID=AKIAEXAMPLE12345 "$DISKVAULT" --config "$C" config show
assert_not_contains "$STDOUT" hunter2 "config show (secret env masked)"
assert_not_contains "$STDOUT" EXAMPLE12345 "config show (access key masked)"
assert_contains "$STDOUT" "AWS_SECRET_ACCESS_KEY = ********" "config show"
# the user's file is found without --config; DISKVAULT_CONFIG=/dev/null turns it off
mkdir -p "$XDG_CONFIG_HOME/diskvault" && cp "$C" "$XDG_CONFIG_HOME/diskvault/config"
expect_ok dv list
assert_contains "$STDOUT" from-flag "list via ~/.config/diskvault/config"
expect_exit 2 env DISKVAULT_CONFIG=/dev/null "$DISKVAULT" list
assert_contains "$STDERR" "no repository given"
rm -r "$XDG_CONFIG_HOME/diskvault"

# 3. errors: file:line, exit 2, nothing runs
bad() { # TEXT WANT
	printf '%s\n' "$1" >"$T/bad.conf"
	chmod 600 "$T/bad.conf"
	expect_exit 2 dv --config "$T/bad.conf" --repo "$R" list
	assert_contains "$STDERR" "$2" "error for: $1"
}
bad $'[repository]\npath = /x\n[retension]' "bad.conf:3: unknown section [retension]"
bad $'[retention]\nkeep_dialy = 7' "bad.conf:2: unknown key 'keep_dialy' in [retention]"
# a key of an older version: one line naming its replacement
bad $'[retention]\nkeep_daily = 7\nrepack_threshold = 20' "bad.conf:3: [retention] repack_threshold"
[ "$STDERR" = "diskvault: $T/bad.conf:3: [retention] repack_threshold was replaced by max_unused (repository-wide budget for unused data, default 5%) and max_repack_size" ] ||
	fail "repack_threshold: $STDERR"
bad $'[s3]\nsecret_access_key = hunter2' "bad.conf:2: [s3] secret_access_key: secrets are not allowed"
assert_not_contains "$STDERR" hunter2 "secret refusal"
bad $'[backup]\nthreads = lots' "bad.conf:2: backup.threads = lots: must be a decimal number"
bad $'[backup]\nsources = disk.img' "items must be absolute paths"
expect_exit 2 dv --config "$T/missing.conf" list
assert_contains "$STDERR" "config file $T/missing.conf: No such file"
expect_exit 2 dv --json --config "$T/missing.conf" list
assert_contains "$STDOUT" '"exit_code":2' "--json error object"

# 4. secret files
S=$T/s.conf
printf 'p\n' >"$T/pw"
chmod 600 "$T/pw"
printf '[repository]\npath = %s\npassword_file = %s\n' "$R" "$T/pw" >"$S"
chmod 644 "$S"
expect_exit 2 dv --config "$S" list
assert_contains "$STDERR" "names a secret file (repository.password_file on line 3) but is readable by group or others (mode 0644)"
chmod 600 "$S"
chmod 644 "$T/pw"
expect_exit 2 dv --config "$S" list
assert_contains "$STDERR" "secret file $T/pw has mode 0644"
chmod 400 "$T/pw"
expect_ok dv --config "$S" list
expect_ok dv --config "$S" config check
assert_contains "$STDOUT" "$S: ok"
expect_ok dv config check "$C"

# an encrypted repository whose passphrase file and command come from the
# config: the file wins over the command, the command works alone
E=$T/enc
printf 'correct horse battery staple\n' >"$T/pw2"
chmod 600 "$T/pw2"
printf '[repository]\npath = %s\npassword_file = %s\n[backup]\nsources = %s\nall_blocks = yes\n' "$E" "$T/pw2" "$T/a.img" >"$T/enc.conf"
chmod 600 "$T/enc.conf"
expect_ok dv --config "$T/enc.conf" init --encrypt --kdf-n 1024
expect_ok dv --config "$T/enc.conf" backup
expect_ok dv --config "$T/enc.conf" restore latest "$T/enc-restored.img"
[ "$(sha "$T/enc-restored.img")" = "$(sha "$T/a.img")" ] || fail "encrypted restore differs"
printf '[repository]\npath = %s\npassword_command = cat %s\n' "$E" "$T/pw2" >"$T/enc2.conf"
expect_ok dv --config "$T/enc2.conf" list </dev/null
printf 'wrong\n' >"$T/pw3"
chmod 600 "$T/pw3"
expect_exit_nonzero() { local rc=0; "$@" >"$OUT_FILE" 2>"$ERR_FILE" </dev/null || rc=$?; [ "$rc" -ne 0 ] || fail "expected failure: $*"; STDERR=$(cat "$ERR_FILE"); }
expect_exit_nonzero env DISKVAULT_PASSWORD_FILE="$T/pw3" "$DISKVAULT" --config "$T/enc.conf" list
note "wrong passphrase from the environment (outranks the file): $STDERR"

# 5. retention from the file (keep_last = 2 per host and sources), unless
#    --keep-* is given: 3 snapshots of a+b, 1 of a alone
expect_ok dv --config "$C" backup -q
expect_ok dv --config "$C" backup -q
expect_ok dv --config "$C" --json forget --dry-run --keep-last 3
[ "$(json_get "$STDOUT" 'j["removed"]')" = 0 ] || fail "--keep-last 3 should keep all: $STDOUT"
expect_ok dv --config "$C" --json forget --prune
[ "$(json_get "$STDOUT" '[j["kept"], j["removed"]]')" = "[3, 1]" ] || fail "[retention] keep_last = 2 not applied: $STDOUT"
[ "$(json_get "$STDOUT" '[j["prune"]["unused_limit"], j["prune"]["packs_repacked"]]')" = "[null, 0]" ] ||
	fail "[retention] max_unused = unlimited not applied: $STDOUT"
# the flag outranks the file
expect_ok dv --config "$C" --json prune --dry-run --max-unused 0
[ "$(json_get "$STDOUT" 'j["prune"]["unused_limit"]')" = 0 ] || fail "--max-unused 0 did not replace the file's value: $STDOUT"
expect_ok dv --config "$C" check

# 6. cron-like: no TTY, -q: a successful run prints nothing at all
expect_ok dv -q --config "$C" backup
[ -z "$STDOUT$STDERR" ] || fail "a quiet backup printed: $STDOUT$STDERR"
expect_ok dv --config "$C" backup </dev/null
assert_lines "$STDOUT" 1 "backup summary without a TTY"
[ -z "$STDERR" ] || fail "backup without a TTY wrote to stderr: $STDERR"

# 7. a size tuning variable that is not a size is refused before any work
#    (the library would take it as unset); a valid one is accepted
DISKVAULT_READ_GAP=lots expect_exit 2 dv --config "$C" list
assert_contains "$STDERR" "DISKVAULT_READ_GAP='lots' is not a size"
DISKVAULT_S3_PART_SIZE=8Mb expect_exit 2 dv --config "$C" list
assert_contains "$STDERR" "DISKVAULT_S3_PART_SIZE='8Mb' is not a size"
DISKVAULT_READ_GAP=64K expect_ok dv --config "$C" list
