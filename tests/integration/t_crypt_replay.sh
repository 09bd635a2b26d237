#!/usr/bin/env bash
# A forgotten snapshot whose manifest comes back (an attacker with write
# access replaying an old, validly sealed object, or an old copy of the
# repository put back) is named and refused with exit 4 by list, restore
# and check; forget/prune remove it again and say so. The ledger lives in
# the state directory (0600), keyed by repository id and location, so a
# copy of the repository elsewhere keeps its own snapshot set.
source "$(dirname "$0")/lib.sh"

export DISKVAULT_STATE_DIR=$T/state
repo=$T/repo
pw=$T/pw
printf 'replay test passphrase\n' >"$pw"
chmod 600 "$pw"
e() { dv --repo "$repo" --password-file "$pw" "$@"; }
python3 - "$T/a.img" <<'PY'
import random, sys
r = random.Random(7)
with open(sys.argv[1], "wb") as f:
    f.write(bytes(r.getrandbits(8) for _ in range(2 * 1024 * 1024)))
PY

expect_ok e init --encrypt --kdf-n 1024
for i in 1 2 3; do
	printf 'night %d' "$i" | dd of="$T/a.img" bs=1 seek=$((i * 4096)) conv=notrunc status=none
	expect_ok e backup "$T/a.img" --all-blocks -q
done
expect_ok e list --json
mapfile -t ids < <(python3 -c 'import json,sys; [print(s["id"]) for s in json.load(sys.stdin)["snapshots"]]' <"$OUT_FILE")
[ "${#ids[@]}" -eq 3 ] || fail "expected 3 snapshots, got ${#ids[@]}"
old=${ids[0]}
cp "$repo/snapshots/$old" "$T/old-manifest"

# A dry run records nothing.
expect_ok e forget --keep-last 2 --dry-run
[ -z "$(ls -A "$DISKVAULT_STATE_DIR" 2>/dev/null)" ] || fail "forget --dry-run wrote the ledger"
expect_ok e forget --keep-last 2
[ ! -e "$repo/snapshots/$old" ] || fail "forget left snapshot $old"
ledger=$(ls "$DISKVAULT_STATE_DIR"/forgotten-*)
[ "$(stat -c %a "$ledger")" = 600 ] || fail "ledger mode is $(stat -c %a "$ledger"), not 600"
grep -q "^$old " "$ledger" || fail "ledger does not name $old"

# A copy of the repository at another location (taken now, before the
# replay) is a different repository for the ledger: no false alarm there.
cp -a "$repo" "$T/copy"
cp "$T/old-manifest" "$T/copy/snapshots/$old"
expect_ok dv --repo "$T/copy" --password-file "$pw" list
assert_contains "$STDOUT" "${old:0:8}"

# The replay: the old manifest is put back in the repository.
cp "$T/old-manifest" "$repo/snapshots/$old"
# list skips it, names it (one line) and says what removes it; exit 3 (issue 16)
expect_exit 3 e list
assert_contains "$STDERR" "snapshot ${old:0:16}"
assert_contains "$STDERR" "replayed"
[ "$(grep -c replayed "$ERR_FILE")" -eq 1 ] || fail "replay error is not one line: $STDERR"
[ "$(wc -l <"$ERR_FILE")" -eq 2 ] || fail "list: more than the skip line and the hint: $STDERR"
assert_not_contains "$STDOUT" "${old:0:8}" "list with a replayed manifest"
expect_exit 4 e restore "$old" "$T/out.img"
assert_contains "$STDERR" "replayed"
[ ! -e "$T/out.img" ] || fail "restore of a replayed snapshot wrote the target"
expect_exit 4 e check
assert_contains "$STDERR" "${old:0:16}"
# The latest snapshot is still usable by id.
expect_ok e restore "${ids[2]}" "$T/out.img" -q
cmp -s "$T/a.img" "$T/out.img" || fail "restore of the latest snapshot is not bit-exact"

# prune removes the replayed manifest again and warns; then all is clean.
expect_ok e prune --json
assert_contains "$STDERR" "removed 1 snapshot manifest"
[ "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["replayed_removed"])' <"$OUT_FILE")" = 1 ] ||
	fail "prune --json does not count the replayed manifest: $STDOUT"
[ ! -e "$repo/snapshots/$old" ] || fail "prune left the replayed manifest"
expect_ok e list --json
[ "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))' <"$OUT_FILE")" = 2 ] ||
	fail "expected 2 snapshots after prune"
expect_ok e check --read-data

# forget removes a replay too, before applying its rules.
cp "$T/old-manifest" "$repo/snapshots/$old"
expect_ok e forget --keep-last 5
assert_contains "$STDERR" "removed 1 snapshot manifest"
[ ! -e "$repo/snapshots/$old" ] || fail "forget left the replayed manifest"
expect_ok e check

# Copying a forgotten snapshot back on purpose is no replay: copy drops it
# from the destination's ledger first ($T/copy still holds it and its data).
expect_ok dv --password-file "$pw" copy --from "$T/copy" --to "$repo" "${old:0:12}"
grep -q "^$old " "$ledger" && fail "copy left $old in the destination's ledger"
expect_ok e list --json
[ "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))' <"$OUT_FILE")" = 3 ] ||
	fail "expected 3 snapshots after copying the old one back"
expect_ok e restore "$old" "$T/old.img" -q
expect_ok e check --read-data
