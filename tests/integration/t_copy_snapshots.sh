#!/bin/bash
# t_copy_snapshots.sh - `diskvault copy --from REPO --to REPO SNAPSHOT...`
# copies only the named snapshots and the objects they need:
#   - one of three snapshots (by prefix): the destination lists exactly it,
#     `check --read-data` passes there, it restores bit-exact, and every pack
#     copied holds a chunk it uses (a prune with --dry-run would delete none);
#   - a rerun copies nothing (no second index segment, also when encrypted);
#   - a later copy of the other two adds exactly the missing packs, one index
#     segment, their disk indexes and manifests;
#   - unknown and ambiguous snapshot names fail before anything is copied;
#   - an encrypted repository: the same, with `latest`.
. "$(dirname "$0")/lib.sh"

L=$T/src
D=$T/dst
init_repo "$L" --pack-size 1
# Three disks; B shares most of A's data, C is new.
make_random_disk "$T/a.img" 12 cs-a
cp "$T/a.img" "$T/b.img"
mutate "$T/b.img" cs-b $((3 * MiB)) 256
make_random_disk "$T/c.img" 12 cs-c
backup_json "$L" "$T/a.img" --all-blocks
SA=$SNAP
backup_json "$L" "$T/b.img" --all-blocks
SB=$SNAP
backup_json "$L" "$T/c.img" --all-blocks
SC=$SNAP
count() { find "$1" -type f | wc -l; }
LPACKS=$(count "$L/packs")

# ---- one snapshot, named by a prefix --------------------------------------------
expect_ok dv --json copy --from "$L" --to "$D" "${SB:0:10}"
assert_json_ok "$STDOUT"
expect_ok dv --repo "$D" --json list
[ "$(json_get "$STDOUT" '[s["id"] for s in j["snapshots"]]')" = "[\"$SB\"]" ] ||
	fail "the destination lists $(json_get "$STDOUT" '[s["id"] for s in j["snapshots"]]'), not only $SB"
DPACKS=$(count "$D/packs")
[ "$DPACKS" -lt "$LPACKS" ] || fail "copying one of three snapshots copied all $LPACKS packs"
for p in $(cd "$D/packs" && find . -type f); do
	cmp -s "$D/packs/$p" "$L/packs/$p" || fail "pack $p differs from the source's"
done
[ "$(count "$D/index")" -eq 1 ] || fail "expected one new index segment, found $(count "$D/index")"
[ "$(count "$D/diskindex")" -eq 1 ] || fail "expected one disk index, found $(count "$D/diskindex")"
expect_ok dv --repo "$D" --json check --read-data
[ "$(json_get "$STDOUT" 'j["errors"]')" -eq 0 ] || fail "check --read-data of the partial copy: $STDOUT"
[ "$(json_get "$STDOUT" 'j["unindexed_packs"]')" -eq 0 ] || fail "the partial copy has unindexed packs: $STDOUT"
restore_check "$D" "$SB" "$T/b.img"
# every copied pack holds a chunk SB uses: a prune would delete no pack
expect_ok dv --repo "$D" --json prune --dry-run --max-unused unlimited
note "prune --dry-run of the partial copy: $STDOUT"
[ "$(json_get "$STDOUT" 'j["prune"]["packs_deleted"]')" -eq 0 ] || fail "the partial copy holds packs SB does not need: $STDOUT"

# a rerun has nothing to do
expect_ok dv --json copy --from "$L" --to "$D" "$SB"
[ "$(json_get "$STDOUT" 'j["objects_copied"]')" -eq 0 ] || fail "a rerun copied again: $STDOUT"

# ---- the other two: only what is missing ---------------------------------------
expect_ok dv --json copy --from "$L" --to "$D" "$SA" "${SC:0:8}"
want=$((LPACKS - DPACKS + 1 + 2 + 2)) # packs, one segment, two disk indexes, two manifests
[ "$(json_get "$STDOUT" 'j["objects_copied"]')" -eq "$want" ] ||
	fail "copying the other two snapshots copied $(json_get "$STDOUT" 'j["objects_copied"]') objects, expected $want: $STDOUT"
[ "$(count "$D/packs")" -eq "$LPACKS" ] || fail "the destination has $(count "$D/packs") packs, the source $LPACKS"
expect_ok dv --repo "$D" --json check --read-data
[ "$(json_get "$STDOUT" 'j["errors"]') $(json_get "$STDOUT" 'j["unreferenced_chunks"]')" = "0 0" ] ||
	fail "check --read-data after the second copy: $STDOUT"
restore_check "$D" "$SA" "$T/a.img"
restore_check "$D" "$SC" "$T/c.img"
restore_check "$D" "$SB" "$T/b.img"
# a full copy now only adds the source's own index segments (those not
# byte-identical to a segment the selective copies wrote)
before=$(count "$D/index")
expect_ok dv --json copy --from "$L" --to "$D"
n=$(json_get "$STDOUT" 'j["objects_copied"]')
[ "$n" -le "$(count "$L/index")" ] && [ "$(count "$D/index")" -eq $((before + n)) ] ||
	fail "the full copy after the selective ones copied more than index segments: $STDOUT"
expect_ok dv --repo "$D" check

# ---- names that resolve to nothing ------------------------------------------------
expect_exit 1 dv copy --from "$L" --to "$T/none" ffffffffffff
assert_contains "$STDERR" "ffffffffffff"
expect_exit 2 dv copy --from "$L" --to "$T/none" abc
[ ! -e "$T/none/config" ] || fail "a failed copy wrote config"
[ -z "$(find "$T/none" -type f 2>/dev/null)" ] || fail "a failed copy wrote objects: $(find "$T/none" -type f)"

# ---- encrypted: latest, rerun writes no second sealed segment ----------------------
printf 'copy test passphrase\n' >"$T/pw"
chmod 600 "$T/pw"
export DISKVAULT_PASSWORD_FILE=$T/pw
expect_ok dv --repo "$T/enc" init --encrypt --kdf-n 1024 --pack-size 1
expect_ok dv --repo "$T/enc" backup "$T/a.img" --all-blocks -q
expect_ok dv --repo "$T/enc" backup "$T/c.img" --all-blocks -q
expect_ok dv --json copy --from "$T/enc" --to "$T/enc2" latest
expect_ok dv --json copy --from "$T/enc" --to "$T/enc2" latest
[ "$(json_get "$STDOUT" 'j["objects_copied"]')" -eq 0 ] || fail "an encrypted rerun copied again: $STDOUT"
[ "$(count "$T/enc2/index")" -eq 1 ] || fail "the encrypted copy has $(count "$T/enc2/index") index segments"
expect_ok dv --repo "$T/enc2" --json list
[ "$(json_get "$STDOUT" 'len(j["snapshots"])')" -eq 1 ] || fail "the encrypted copy lists: $STDOUT"
expect_ok dv --repo "$T/enc2" --json check --read-data
[ "$(json_get "$STDOUT" 'j["errors"]')" -eq 0 ] || fail "check --read-data of the encrypted copy: $STDOUT"
restore_check "$T/enc2" latest "$T/c.img"
