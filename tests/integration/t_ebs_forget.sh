#!/usr/bin/env bash
# t_ebs_forget.sh - the ebs/ records of snapshots that are gone are deleted
# by forget and prune (counted in --json as ebs_records_deleted; nothing
# with --dry-run), while:
#   - the records of kept snapshots stay, and so does any ebs/ object of an
#     existing snapshot (a table written by an import still running) and
#     names of another form;
#   - the newest record of each disk stays even when its snapshot is
#     forgotten: the next import of that disk still finds it as parent and
#     sends only the changed blocks; once a newer import exists, prune
#     deletes the old one;
#   - an import killed while its parent's snapshot is forgotten and pruned
#     resumes afterwards on the same EBS snapshot with the same parent.
# Against the local EBS/EC2 endpoint; skips (77) without python3-botocore.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ebs.sh"

ebs_up
export DISKVAULT_STATE_DIR=$T/state
R=$T/repo
init_repo "$R"

import_json() { # ARGS...: ebs-import --json into $R; sets IMP
	expect_ok dv --repo "$R" --json ebs-import "$@"
	IMP=$STDOUT
	assert_json_ok "$IMP"
}
# records: the ebs/ objects, one name per line, sorted.
records() { (cd "$R/ebs" && ls -1) | sort; }
# expect_records NAME...: exactly these ebs/ objects exist.
expect_records() {
	local want
	want=$(printf '%s\n' "$@" | sort)
	[ "$(records)" = "$want" ] || fail "ebs/ holds [$(records | tr '\n' ' ')], expected [$(echo "$want" | tr '\n' ' ')]"
}
rec() { echo "$1-0" "$1-0.sig"; } # the two objects of disk 0 of a snapshot

# Disk a: three snapshots, each imported. Disk b: two snapshots, the first
# imported. 4 MiB each (8 blocks), a few blocks changed between snapshots.
seeded_bytes a $((4 * MiB)) >"$T/a.img"
seeded_bytes b $((4 * MiB)) >"$T/b.img"
backup_json "$R" --all-blocks "$T/a.img"
A1=$SNAP
import_json "$A1" --parent none
mutate "$T/a.img" a2 $((1 * MiB)) 4
backup_json "$R" --all-blocks "$T/a.img"
A2=$SNAP
import_json "$A2"
mutate "$T/a.img" a3 $((2 * MiB)) 4
backup_json "$R" --all-blocks "$T/a.img"
A3=$SNAP
import_json "$A3"
backup_json "$R" --all-blocks "$T/b.img"
B1=$SNAP
import_json "$B1"
cp "$T/b.img" "$T/b1.img"
mutate "$T/b.img" b2 $((3 * MiB)) 4
backup_json "$R" --all-blocks "$T/b.img"
B2=$SNAP
# what ebs-import itself leaves: a record and its table per import
# shellcheck disable=SC2046
expect_records $(rec "$A1") $(rec "$A2") $(rec "$A3") $(rec "$B1")

# Objects prune must leave alone: the table of an import of A3's disk 1 still
# running (A3 exists), and a name of another form. One it must delete: a
# table without a record of a snapshot that is gone (an import of A1 killed
# between the two writes).
printf 'x' >"$R/ebs/$A3-1.sig"
printf 'x' >"$R/ebs/notes.txt"
printf 'x' >"$R/ebs/$A1-7.sig"

# --dry-run counts and deletes nothing: A1 goes (a: keep the last 2);
# B1 is the newest import of disk b, so its record stays.
expect_ok dv --repo "$R" --json forget --keep-last 2 --dry-run
[ "$(json_get "$STDOUT" '[j["removed"], j["ebs_records_deleted"]]')" = "[1, 3]" ] ||
	fail "forget --dry-run: $STDOUT"
# shellcheck disable=SC2046
expect_records $(rec "$A1") $(rec "$A2") $(rec "$A3") $(rec "$B1") "$A3-1.sig" notes.txt "$A1-7.sig"

expect_ok dv --repo "$R" --json forget --keep-last 2
[ "$(json_get "$STDOUT" '[j["removed"], j["ebs_records_deleted"]]')" = "[1, 3]" ] || fail "forget: $STDOUT"
# shellcheck disable=SC2046
expect_records $(rec "$A2") $(rec "$A3") $(rec "$B1") "$A3-1.sig" notes.txt

# keep-last 1: A2 (an older import of disk a) and B1 are forgotten. A2's
# records go; B1's stay: the newest import of disk b.
expect_ok dv --repo "$R" --json forget --keep-last 1
[ "$(json_get "$STDOUT" '[j["removed"], j["ebs_records_deleted"]]')" = "[2, 2]" ] || fail "forget: $STDOUT"
# shellcheck disable=SC2046
expect_records $(rec "$A3") $(rec "$B1") "$A3-1.sig" notes.txt
expect_ok dv --repo "$R" list --json
[ "$(json_get "$STDOUT" 'sorted(s["id"] for s in j["snapshots"])')" = \
	"$(python3 -c 'import json, sys; print(json.dumps(sorted(sys.argv[1:])))' "$A3" "$B2")" ] ||
	fail "the kept snapshots are not A3 and B2: $STDOUT"

# A prune now has no record to delete (B1's is still the newest of disk b).
expect_ok dv --repo "$R" --json prune
[ "$(json_get "$STDOUT" 'j["prune"]["ebs_records_deleted"]')" = 0 ] || fail "prune: $STDOUT"
# shellcheck disable=SC2046
expect_records $(rec "$A3") $(rec "$B1") "$A3-1.sig" notes.txt

# The next import of disk b finds B1's record as its parent although B1 is
# gone, and sends only blocks whose signatures changed: with B1's data gone
# it cannot compare contents, so a chunk that crosses into a neighbouring
# block sends that block too, but far fewer than the 8 of a full import.
B1_EBS=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ebs_snapshot_id"])' "$R/ebs/$B1-0")
import_json "$B2"
[ "$(json_get "$IMP" 'j["parent_ebs_snapshot_id"]')" = "$B1_EBS" ] || fail "B2's import did not take B1's as parent: $IMP"
CHANGED=$(diff_blocks "$T/b1.img" "$T/b.img")
[ "$CHANGED" -ge 1 ] || fail "b's mutation changed no block"
[ "$(json_get "$IMP" "$CHANGED <= j['blocks_sent'] <= $CHANGED + 1 and j['blocks_unchanged'] >= 6")" = true ] ||
	fail "B2's import is not incremental ($CHANGED block(s) changed): $IMP"

# Now B1's record is an older one of a snapshot that is gone: prune deletes it.
expect_ok dv --repo "$R" --json prune
[ "$(json_get "$STDOUT" 'j["prune"]["ebs_records_deleted"]')" = 2 ] || fail "prune: $STDOUT"
# shellcheck disable=SC2046
expect_records $(rec "$A3") $(rec "$B2") "$A3-1.sig" notes.txt
expect_ok dv --repo "$R" --json prune
[ "$(json_get "$STDOUT" 'j["prune"]["ebs_records_deleted"]')" = 0 ] || fail "a second prune: $STDOUT"

expect_ok dv --repo "$R" check
restore_check "$R" "$B2" "$T/b.img"

# ---- a killed import whose parent's snapshot is forgotten resumes ----------
R=$T/repo2
init_repo "$R"
puts() { /usr/bin/python3 "$SRC/tests/servers/ebs_ec2_server.py" --count "$SRV" PutSnapshotBlock 201; }
seeded_bytes c1 $((16 * MiB)) >"$T/c.img"
backup_json "$R" --all-blocks "$T/c.img"
C1=$SNAP
import_json "$C1"
C1_EBS=$(json_get "$IMP" 'j["ebs_snapshot_id"]')
seeded_bytes c2 $((16 * MiB)) >"$T/c.img"   # every block changes
backup_json "$R" --all-blocks "$T/c.img"
C2=$SNAP
echo '{"latency_ms": 100}' >"$SRV/faults.json"
before=$(puts)
DISKVAULT_EBS_CONCURRENCY=1 "$DISKVAULT" --progress=never --repo "$R" --json ebs-import "$C2" \
	>"$T/kill.out" 2>"$T/kill.err" &
pid=$!
for _ in $(seq 1 400); do
	[ $(($(puts) - before)) -ge 4 ] && break
	sleep 0.05
done
kill -9 "$pid" 2>/dev/null || fail "the import of C2 finished before it could be killed"
wait "$pid" 2>/dev/null || true
rm -f "$SRV/faults.json"
partial=$(($(puts) - before))
[ "$partial" -ge 1 ] && [ "$partial" -lt 32 ] || fail "the killed import sent $partial of 32 blocks"
expect_ok dv --repo "$R" --json forget --keep-last 1 --prune
[ "$(json_get "$STDOUT" '[j["removed"], j["ebs_records_deleted"], j["prune"]["ebs_records_deleted"]]')" = "[1, 0, 0]" ] ||
	fail "forget --prune deleted the record the killed import needs: $STDOUT"
# shellcheck disable=SC2046
expect_records $(rec "$C1")
import_json "$C2"
[ "$(json_get "$IMP" '[j["resumed"], j["parent_ebs_snapshot_id"], j["blocks_written_total"]]')" = \
	"[true, \"$C1_EBS\", 32]" ] || fail "the import of C2 did not resume with C1's record as parent: $IMP"
[ "$(json_get "$IMP" 'j["blocks_sent"]')" -le $((32 - partial + 1)) ] || fail "the resumed import sent too much: $IMP"
# shellcheck disable=SC2046
expect_records $(rec "$C1") $(rec "$C2")
expect_ok dv --repo "$R" --json prune
[ "$(json_get "$STDOUT" 'j["prune"]["ebs_records_deleted"]')" = 2 ] || fail "prune kept C1's older record: $STDOUT"
# shellcheck disable=SC2046
expect_records $(rec "$C2")
