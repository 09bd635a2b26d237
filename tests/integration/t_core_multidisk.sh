#!/bin/bash
# t_core_multidisk.sh - two disks in one snapshot: each restores by --disk,
# a disk number past the end is a usage error, and a second disk that is a
# near copy of the first deduplicates against it.
. "$(dirname "$0")/lib.sh"

R=$T/repo
make_disk "$T/a.img" 64 multi-a
cp --sparse=always "$T/a.img" "$T/b.img"
# The copy differs in 16 blocks in the middle of its ext4 partition.
mutate "$T/b.img" multi-b $((EXT_OFF + 20 * MiB)) 16
cmp -s "$T/a.img" "$T/b.img" && fail "test bug: b.img equals a.img"
make_disk "$T/c.img" 48 multi-c

init_repo "$R"
backup_json "$R" "$T/a.img" --all-blocks
STORED_A=$(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]')
S_A=$SNAP

# Two disks in one snapshot, the second unlike anything stored.
backup_json "$R" "$T/a.img" "$T/c.img" --name two --all-blocks
S2=$SNAP
expect_ok dv --repo "$R" --json show "$S2"
[ "$(json_get "$STDOUT" 'len(j["snapshot"]["disks"])')" -eq 2 ] || fail "snapshot $S2 does not have 2 disks: $STDOUT"
expect_ok dv --repo "$R" --json list
[ "$(json_get "$STDOUT" '[s["disks"] for s in j["snapshots"] if s["id"] == "'"$S2"'"][0]')" -eq 2 ] ||
	fail "list --json does not show 2 disks for $S2: $STDOUT"

restore_check "$R" "$S2" "$T/a.img" --disk 0
restore_check "$R" "$S2" "$T/c.img" --disk 1
restore_check "$R" "$S2" "$T/a.img" # --disk defaults to 0
expect_exit 2 dv --repo "$R" restore "$S2" "$T/none.img" --disk 2
assert_contains "$STDERR" "disk 2" "restore --disk 2 message"
[ ! -s "$T/none.img" ] || fail "restore --disk 2 wrote $T/none.img"
expect_exit 2 dv --repo "$R" restore "$S2" "$T/none.img" --disk x

# A near copy of an already stored disk, in a new repository: two disks in
# one backup, the copy deduplicates against the first within the run.
R2=$T/repo2
init_repo "$R2"
backup_json "$R2" "$T/a.img" "$T/b.img" --all-blocks
S3=$SNAP
STORED_AB=$(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]')
note "a alone: $STORED_A bytes stored; a + near copy b in one snapshot: $STORED_AB"
[ "$STORED_AB" -lt $((STORED_A + STORED_A / 20)) ] ||
	fail "a near copy of disk 0 as disk 1 added $((STORED_AB - STORED_A)) bytes (> 5% of $STORED_A)"
restore_check "$R2" "$S3" "$T/a.img" --disk 0
restore_check "$R2" "$S3" "$T/b.img" --disk 1

# And across snapshots: b alone after a is stored.
backup_json "$R" "$T/b.img" --all-blocks
STORED_B=$(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]')
note "b after a in the same repository: $STORED_B bytes stored"
[ "$STORED_B" -lt $((STORED_A / 20)) ] || fail "near copy b stored $STORED_B bytes after a ($STORED_A)"
restore_check "$R" "$SNAP" "$T/b.img"
restore_check "$R" "$S_A" "$T/a.img"
expect_ok dv --repo "$R" check
expect_ok dv --repo "$R2" check

# verify of the two-disk snapshot reads each pack it needs and counts it
# once, not once per disk: a and b share nearly everything.
expect_ok dv --repo "$R2" --json verify "$S3"
VPACKS=$(json_get "$STDOUT" 'j["packs"]')
NPACKS=$(pack_files "$R2" | wc -l)
note "verify of a + b: $VPACKS packs read of $NPACKS"
[ "$VPACKS" -ge 1 ] && [ "$VPACKS" -le "$NPACKS" ] || fail "verify counted $VPACKS packs; the repository has $NPACKS"
