#!/bin/bash
# t_core_badinput.sh - each bad input gets its documented exit code and one
# line naming the object: not a repository, unknown format version, no
# --repo, unknown snapshot, unreadable source, a restore target that exists
# or is too small, init into a non-empty directory.
. "$(dirname "$0")/lib.sh"
unset DISKVAULT_REPO

R=$T/repo
make_disk "$T/disk.img" 40 badinput
init_repo "$R"
backup_json "$R" "$T/disk.img" --all-blocks
S1=$SNAP

# ---- not a repository: exit 10, the path in the message -------------------
mkdir "$T/empty"
for cmd in list check "backup $T/disk.img" "show latest"; do
	# shellcheck disable=SC2086
	expect_exit 10 dv --repo "$T/empty" $cmd
	assert_contains "$STDERR" "$T/empty" "'$cmd' on an empty directory"
	assert_lines "$STDERR" 1 "'$cmd' on an empty directory: stderr"
done
[ -z "$(ls -A "$T/empty")" ] || fail "commands on a non-repository wrote into it: $(ls -A "$T/empty")"
echo "just a file" >"$T/plain"
expect_exit 10 dv --repo "$T/plain" list
assert_contains "$STDERR" "$T/plain" "list on a plain file"
expect_exit 10 dv --repo "$T/plain" backup "$T/disk.img"
assert_contains "$STDERR" "$T/plain" "backup into a plain file"
[ "$(cat "$T/plain")" = "just a file" ] || fail "backup into a plain file changed it"
expect_exit 10 dv --repo "$T/does-not-exist" list
assert_contains "$STDERR" "$T/does-not-exist" "list on a missing path"
# --json: the error as one JSON object with the exit code.
expect_exit 10 dv --repo "$T/empty" --json list
[ "$(json_get "$STDOUT" 'j["ok"]')" = false ] || fail "--json error output lacks \"ok\": false: $STDOUT"
[ "$(json_get "$STDOUT" 'j["exit_code"]')" = 10 ] || fail "--json error output has the wrong exit_code: $STDOUT"
assert_contains "$(json_get "$STDOUT" 'j["error"]')" "$T/empty" "--json error"

# ---- unknown format version: exit 11 naming the version -------------------
cp -a "$R" "$T/v2"
python3 - "$T/v2/config" <<-'EOF'
	import json, sys
	c = json.load(open(sys.argv[1])); c["version"] = 2
	json.dump(c, open(sys.argv[1], "w"), indent=2)
EOF
for cmd in list check "backup $T/disk.img" "restore latest $T/v2.out"; do
	# shellcheck disable=SC2086
	expect_exit 11 dv --repo "$T/v2" $cmd
	assert_contains "$STDERR" "version 2" "'$cmd' on a version 2 repository"
	assert_lines "$STDERR" 1 "'$cmd' on a version 2 repository: stderr"
done
[ ! -e "$T/v2.out" ] || fail "restore from a version 2 repository created its target"
[ "$(ls "$T/v2/snapshots" | wc -l)" -eq 1 ] || fail "backup into a version 2 repository wrote a snapshot"

# A snapshot manifest of an unknown version (stored under its own hash, so
# only the version is wrong): exit 11 naming the snapshot and the version.
V2=$(python3 - "$R/snapshots/$S1" "$R/snapshots" <<-'EOF'
	import hashlib, json, sys
	m = json.load(open(sys.argv[1])); m["version"] = 2
	text = json.dumps(m, indent=1, sort_keys=True).encode()
	h = hashlib.sha256(text).hexdigest()
	open(sys.argv[2] + "/" + h, "wb").write(text)
	print(h)
EOF
)
expect_exit 11 dv --repo "$R" show "$V2"
assert_contains "$STDERR" "${V2:0:16}" "show of a version 2 snapshot"
assert_contains "$STDERR" "version 2" "show of a version 2 snapshot"
expect_exit 11 dv --repo "$R" restore "$V2" "$T/v2snap.img"
assert_contains "$STDERR" "version 2" "restore of a version 2 snapshot"
rm -f "$R/snapshots/$V2" "$T/v2snap.img"

# ---- no repository given: usage, exit 2 -----------------------------------
for cmd in list check init "show latest" "backup $T/disk.img"; do
	# shellcheck disable=SC2086
	expect_exit 2 dv $cmd
	assert_contains "$STDERR" "--repo" "'$cmd' without --repo"
done
# DISKVAULT_REPO stands in for --repo.
DISKVAULT_REPO=$R expect_ok dv list
assert_contains "$STDOUT" "${S1:0:8}" "list with DISKVAULT_REPO"

# ---- unknown snapshot -------------------------------------------------------
expect_exit 1 dv --repo "$R" show deadbeef
assert_contains "$STDERR" "deadbeef" "show of an unknown snapshot"
expect_exit 1 dv --repo "$R" restore deadbeef "$T/x.img"
assert_contains "$STDERR" "deadbeef" "restore of an unknown snapshot"
[ ! -e "$T/x.img" ] || fail "restore of an unknown snapshot created its target"
expect_exit 1 dv --repo "$R" verify deadbeef
assert_contains "$STDERR" "deadbeef" "verify of an unknown snapshot"
expect_exit 2 dv --repo "$R" show ab # too short a prefix
assert_contains "$STDERR" "ab" "show with a 2-digit prefix"
expect_exit 1 dv --repo "$R" show "zzzz-not-hex"
assert_contains "$STDERR" "zzzz-not-hex" "show of a non-hex id"
# An empty repository has no 'latest'.
init_repo "$T/fresh"
expect_exit 1 dv --repo "$T/fresh" restore latest "$T/x.img"
assert_contains "$STDERR" "no snapshots" "restore latest from an empty repository"

# ---- unreadable source: exit 15 naming it; the repository is unchanged ----
snaps_before=$(ls "$R/snapshots" | wc -l)
expect_exit 15 dv --repo "$R" backup "$T/no-such-disk.img"
assert_contains "$STDERR" "$T/no-such-disk.img" "backup of a missing source"
assert_lines "$STDERR" 1 "backup of a missing source: stderr"
mkdir "$T/adir"
expect_exit 15 dv --repo "$R" backup "$T/adir"
assert_contains "$STDERR" "$T/adir" "backup of a directory"
# One good and one bad source: no partial snapshot.
expect_exit 15 dv --repo "$R" backup "$T/disk.img" "$T/no-such-disk.img"
assert_contains "$STDERR" "$T/no-such-disk.img" "backup of a good and a missing source"
expect_exit 15 dv --repo "$R" --json backup "$T/no-such-disk.img"
[ "$(json_get "$STDOUT" 'j["exit_code"]')" = 15 ] || fail "--json backup error: wrong exit_code: $STDOUT"
[ "$(ls "$R/snapshots" | wc -l)" -eq "$snaps_before" ] || fail "a failed backup left a snapshot"
[ -z "$(ls -A "$R/locks")" ] || fail "a failed backup left a lock: $(ls -A "$R/locks")"
expect_ok dv --repo "$R" check

# ---- restore target ---------------------------------------------------------
# An existing non-empty file: refused (13) and untouched without --force.
seeded_bytes keep $((1 * MiB)) >"$T/existing.img"
KEEP=$(sha "$T/existing.img")
expect_exit 13 dv --repo "$R" restore "$S1" "$T/existing.img"
assert_contains "$STDERR" "$T/existing.img" "restore onto an existing file"
assert_contains "$STDERR" "--force" "restore onto an existing file (hint)"
[ "$(sha "$T/existing.img")" = "$KEEP" ] || fail "a refused restore modified $T/existing.img"
expect_ok dv --repo "$R" restore "$S1" "$T/existing.img" --force
assert_same_file "$T/disk.img" "$T/existing.img"
# An existing empty file is fine without --force.
: >"$T/empty.img"
expect_ok dv --repo "$R" restore "$S1" "$T/empty.img"
assert_same_file "$T/disk.img" "$T/empty.img"
# A directory is not a target.
expect_exit 2 dv --repo "$R" restore "$S1" "$T/adir"
assert_contains "$STDERR" "$T/adir" "restore onto a directory"

# Block devices (root only): loop devices too small, with a partition table.
if [ "$(id -u)" -eq 0 ] && command -v losetup >/dev/null && LOOP=$(losetup -f 2>/dev/null) && [ -n "$LOOP" ]; then
	truncate -s 8M "$T/small.bin"
	if SMALL=$(losetup -f --show "$T/small.bin" 2>/dev/null); then
		CLEANUP+=("losetup -d $SMALL")
		expect_exit 13 dv --repo "$R" restore "$S1" "$SMALL" --force
		assert_contains "$STDERR" "$SMALL" "restore onto a too small device"
		assert_contains "$STDERR" "smaller" "restore onto a too small device"
		# Big enough, holding a GPT and dirty data: refused without --force;
		# with it, bit-exact (zero extents written as zeros, not skipped).
		seeded_bytes dirt $((48 * MiB)) >"$T/big.bin"
		sfdisk -q "$T/big.bin" >/dev/null <<<"label: gpt"
		BIG=$(losetup -f --show "$T/big.bin")
		CLEANUP+=("losetup -d $BIG")
		expect_exit 13 dv --repo "$R" restore "$S1" "$BIG"
		assert_contains "$STDERR" "$BIG" "restore onto a device with a partition table"
		expect_ok dv --repo "$R" restore "$S1" "$BIG" --force
		head -c "$(stat -c %s "$T/disk.img")" "$BIG" >"$T/from-dev.img"
		assert_same_file "$T/disk.img" "$T/from-dev.img"
	else
		note "SKIP block device targets: losetup failed"
	fi
else
	note "SKIP block device targets: needs root and loop devices"
fi

# ---- init refuses an existing repository or a non-empty directory ----------
expect_exit 13 dv --repo "$R" init
assert_contains "$STDERR" "$R" "init over an existing repository"
expect_ok dv --repo "$R" check
restore_check "$R" "$S1" "$T/disk.img"
# A directory holding a user's file (not one of the repository's own
# subdirectories) must be refused too: init must not mix with other data.
mkdir "$T/notempty"
echo "precious" >"$T/notempty/notes.txt"
expect_exit 13 dv --repo "$T/notempty" init
assert_contains "$STDERR" "$T/notempty" "init into a non-empty directory"
[ ! -e "$T/notempty/config" ] || fail "init into a non-empty directory created a repository there"
