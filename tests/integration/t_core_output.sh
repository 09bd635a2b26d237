#!/bin/bash
# t_core_output.sh - what the commands print when stdout/stderr are not a
# terminal: one summary line and no progress noise; nothing with -q; one
# JSON line with "ok": true with --json; help exits 0; usage errors exit 2.
. "$(dirname "$0")/lib.sh"
unset DISKVAULT_REPO

R=$T/repo
make_disk "$T/disk.img" 32 output
# Plain "$DISKVAULT" here (not dv): the default --progress=auto must be quiet
# when stderr is not a terminal.
D=$DISKVAULT

# ---- default output: one line on stdout, nothing on stderr -----------------
expect_ok "$D" --repo "$R" init --no-encrypt
assert_lines "$STDOUT" 1 "init stdout"
assert_contains "$STDOUT" "$R" "init stdout"
[ -z "$STDERR" ] || fail "init wrote to stderr: $STDERR"

expect_ok "$D" --repo "$R" backup "$T/disk.img" --all-blocks
assert_lines "$STDOUT" 1 "backup stdout"
assert_contains "$STDOUT" "snapshot" "backup stdout"
[ -z "$STDERR" ] || fail "backup wrote to stderr (progress noise?): $STDERR"
S1=$(ls "$R/snapshots")
assert_contains "$STDOUT" "${S1:0:8}" "backup summary (snapshot id)"

for cmd in "verify latest" check; do
	# shellcheck disable=SC2086
	expect_ok "$D" --repo "$R" $cmd
	assert_lines "$STDOUT" 1 "'$cmd' stdout"
	[ -z "$STDERR" ] || fail "'$cmd' wrote to stderr: $STDERR"
done
# restore: its summary plus the line saying what is guaranteed.
expect_ok "$D" --repo "$R" restore latest "$T/r1.img"
assert_contains "$STDOUT" "restored" "restore stdout"
assert_contains "$STDOUT" "bit-exact" "restore stdout"
[ "$(printf '%s\n' "$STDOUT" | wc -l)" -le 2 ] || fail "restore printed more than a summary: $STDOUT"
[ -z "$STDERR" ] || fail "restore wrote to stderr: $STDERR"
assert_same_file "$T/disk.img" "$T/r1.img"
expect_ok "$D" --repo "$R" list
[ -z "$STDERR" ] || fail "list wrote to stderr: $STDERR"
assert_contains "$STDOUT" "${S1:0:8}" "list"
expect_ok "$D" --repo "$R" show latest
[ -z "$STDERR" ] || fail "show wrote to stderr: $STDERR"

# --progress=always draws on stderr only; stdout keeps its one line.
expect_ok "$D" --progress=always --repo "$R" backup "$T/disk.img" --all-blocks
assert_lines "$STDOUT" 1 "backup --progress=always stdout"

# ---- -q: nothing at all on success --------------------------------------------
expect_ok "$D" -q --repo "$R" backup "$T/disk.img" --all-blocks
[ -z "$STDOUT$STDERR" ] || fail "backup -q printed: $STDOUT$STDERR"
for cmd in "restore latest $T/r2.img" "verify latest" check list "show latest"; do
	# shellcheck disable=SC2086
	expect_ok "$D" --repo "$R" -q $cmd
	[ -z "$STDOUT$STDERR" ] || fail "'$cmd' -q printed: $STDOUT$STDERR"
done
expect_ok "$D" -q --repo "$T/q-repo" init --no-encrypt
[ -z "$STDOUT$STDERR" ] || fail "init -q printed: $STDOUT$STDERR"
# ... but errors still reach stderr.
expect_exit 10 "$D" -q --repo "$T" list
[ -z "$STDOUT" ] || fail "list -q on a non-repository printed on stdout: $STDOUT"
assert_contains "$STDERR" "$T" "list -q on a non-repository"

# ---- --json: one JSON line with "ok": true, nothing on stderr -------------------
expect_ok "$D" --repo "$T/j-repo" --json init --no-encrypt
assert_json_ok "$STDOUT"
[ -z "$STDERR" ] || fail "init --json wrote to stderr: $STDERR"
for cmd in "backup $T/disk.img --sha256 --all-blocks" list "show latest" "restore latest $T/r3.img" "verify latest" check; do
	# shellcheck disable=SC2086
	expect_ok "$D" --repo "$T/j-repo" --json $cmd
	assert_json_ok "$STDOUT"
	[ -z "$STDERR" ] || fail "'$cmd' --json wrote to stderr: $STDERR"
done
assert_same_file "$T/disk.img" "$T/r3.img"
# --json after the command works too (options may follow operands).
expect_ok "$D" --repo "$T/j-repo" backup "$T/disk.img" --json --all-blocks
assert_json_ok "$STDOUT"
for k in bytes_read bytes_new_stored bytes_new_raw bytes_dedup bytes_zero snapshot; do
	json_get "$STDOUT" "j[\"$k\"]" >/dev/null
done
# An error with --json: one JSON object on stdout with ok false.
expect_exit 1 "$D" --repo "$T/j-repo" --json show deadbeef
assert_lines "$STDOUT" 1 "--json error"
[ "$(json_get "$STDOUT" 'j["ok"]')" = false ] || fail "--json error without \"ok\": false: $STDOUT"
[ "$(json_get "$STDOUT" 'j["exit_code"]')" = 1 ] || fail "--json error: wrong exit_code: $STDOUT"
assert_contains "$(json_get "$STDOUT" 'j["error"]')" deadbeef "--json error message"

# ---- help and usage errors -------------------------------------------------
expect_ok "$D" --help
assert_contains "$STDOUT" "backup" "diskvault --help"
assert_contains "$STDOUT" "restore" "diskvault --help"
for cmd in init backup list show restore verify check; do
	expect_ok "$D" "$cmd" --help
	assert_contains "$STDOUT" "usage: diskvault" "diskvault $cmd --help"
	assert_contains "$STDOUT" " $cmd" "diskvault $cmd --help"
done
expect_ok "$D" backup --help
assert_contains "$STDOUT" "--sha256" "backup --help"
assert_contains "$STDOUT" "--threads" "backup --help"
expect_ok "$D" restore --help
assert_contains "$STDOUT" "--force" "restore --help"
assert_contains "$STDOUT" "--disk" "restore --help"

expect_exit 2 "$D"
expect_exit 2 "$D" frobnicate
assert_contains "$STDERR" "frobnicate" "unknown command"
expect_exit 2 "$D" --repo "$R" --bogus list
assert_contains "$STDERR" "--bogus" "unknown global option"
expect_exit 2 "$D" --repo "$R" backup "$T/disk.img" --bogus
assert_contains "$STDERR" "--bogus" "unknown backup option"
expect_exit 2 "$D" --repo "$R" restore latest
expect_exit 2 "$D" --repo "$R" backup
expect_exit 2 "$D" --repo "$R" backup "$T/disk.img" --threads 0
expect_exit 2 "$D" --repo "$T/x" init --chunk-size 3
expect_exit 2 "$D" --repo "$R" --progress=sometimes list
[ ! -e "$T/x" ] || fail "init with a bad option created the repository"
# The hint names the command's help: "Try 'diskvault list --help'."
expect_exit 2 "$D" list --bogus
assert_contains "$STDERR" "'diskvault list --help'" "usage hint"
