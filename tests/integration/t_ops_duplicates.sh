#!/bin/bash
# t_ops_duplicates.sh - chunks stored in more than one pack: check counts
# the further copies as unused the way prune does (one accounting,
# dv_usage_count), so check's used_bytes / unused_bytes equal prune's
# bytes_used / bytes_unused_before, before and after a prune.
# Duplicates arise when two repositories with the same id (a copy) each
# back up the same data and a snapshot is then copied from one to the other:
# the copied packs hold chunks the destination stores already.
. "$(dirname "$0")/lib.sh"

L=$T/src
D=$T/dst
init_repo "$L" --pack-size 1
make_random_disk "$T/a.img" 8 dup-a
backup_json "$L" "$T/a.img" --all-blocks --tag keep
SA=$SNAP
expect_ok dv copy --from "$L" --to "$D"
# the same disk, backed up into each repository on its own (changed a
# little in the source, so its packs differ from the destination's)
make_random_disk "$T/c.img" 12 dup-c
cp "$T/c.img" "$T/c2.img"
mutate "$T/c2.img" dup-c2 $((5 * MiB)) 64
backup_json "$D" "$T/c.img" --all-blocks --tag keep
SC=$SNAP
backup_json "$L" "$T/c2.img" --all-blocks
SC2=$SNAP
expect_ok dv copy --from "$L" --to "$D" "$SC2"

# check_json: check --json of $D without errors; sets CHECK
check_json() {
	expect_ok dv --repo "$D" --json check
	CHECK=$STDOUT
	[ "$(json_get "$CHECK" '[j["errors"], j["unindexed_packs"]]')" = "[0, 0]" ] || fail "check: $CHECK"
}

check_json
dups=$(json_get "$CHECK" 'j["duplicate_chunks"]')
dupb=$(json_get "$CHECK" 'j["duplicate_bytes"]')
[ "$dups" -gt 0 ] && [ "$dupb" -gt 0 ] || fail "no duplicate copies found: $CHECK"
# every snapshot is still in use: duplicates are all that is unused
[ "$(json_get "$CHECK" '[j["unreferenced_chunks"], j["unused_bytes"] == j["duplicate_bytes"]]')" = "[0, true]" ] ||
	fail "unused data other than the duplicates: $CHECK"
assert_contains "$(json_get "$CHECK" '[p["message"] for p in j["problems"]]')" \
	"$dups further copies of used chunks, $dupb stored bytes, are in more than one pack" "check warning"
expect_ok dv --repo "$D" check
assert_contains "$STDOUT" "$dups duplicate copies (" "check's summary"

expect_ok dv --repo "$D" --json prune --dry-run --max-unused unlimited
PRUNE=$STDOUT
[ "$(json_get "$PRUNE" '[j["prune"]["bytes_used"], j["prune"]["bytes_unused_before"]]')" = \
	"$(json_get "$CHECK" '[j["used_bytes"], j["unused_bytes"]]')" ] ||
	fail "check and prune disagree on used/unused bytes: $CHECK vs $PRUNE"
note "$dups duplicate copies, $dupb bytes: check and prune agree"

# forget the copied snapshot: its chunks that $D held already stay used (by
# SC), the others become unreferenced; still the same numbers as prune
expect_ok dv --repo "$D" forget --keep-tag keep
expect_ok dv --repo "$D" --json list
[ "$(json_get "$STDOUT" 'sorted(s["id"] for s in j["snapshots"])')" = "$(json_get "[\"$SA\", \"$SC\"]" 'sorted(j)')" ] ||
	fail "forget kept $STDOUT"
check_json
expect_ok dv --repo "$D" --json prune --dry-run --max-unused unlimited
PRUNE=$STDOUT
[ "$(json_get "$PRUNE" '[j["prune"]["bytes_used"], j["prune"]["bytes_unused_before"]]')" = \
	"$(json_get "$CHECK" '[j["used_bytes"], j["unused_bytes"]]')" ] ||
	fail "after forget, check and prune disagree: $CHECK vs $PRUNE"
[ "$(json_get "$CHECK" '[j["unreferenced_chunks"] > 0, j["unused_bytes"] == j["duplicate_bytes"] + j["unreferenced_bytes"]]')" = "[true, true]" ] ||
	fail "unused bytes are not the duplicates plus the unreferenced chunks: $CHECK"

# a prune with no budget removes every duplicate; the snapshots restore
expect_ok dv --repo "$D" --json prune --max-unused 0
PRUNE=$STDOUT
[ "$(json_get "$PRUNE" 'j["prune"]["bytes_unused_after"]')" = 0 ] || fail "prune left unused bytes: $PRUNE"
check_json
[ "$(json_get "$CHECK" '[j["duplicate_chunks"], j["duplicate_bytes"], j["unused_bytes"]]')" = "[0, 0, 0]" ] ||
	fail "duplicates left after prune --max-unused 0: $CHECK"
[ "$(json_get "$CHECK" 'j["used_bytes"]')" = "$(json_get "$PRUNE" 'j["prune"]["bytes_used"]')" ] ||
	fail "used bytes differ after prune: $CHECK vs $PRUNE"
restore_check "$D" "$SA" "$T/a.img"
restore_check "$D" "$SC" "$T/c.img"
