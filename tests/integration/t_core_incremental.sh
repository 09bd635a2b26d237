#!/bin/bash
# t_core_incremental.sh - back up a disk, add a file and change ~2% of the
# disk in place, back up again: the second backup stores only a small
# fraction, and both snapshots restore bit-exact.
. "$(dirname "$0")/lib.sh"

R=$T/repo
DISK=$T/disk.img
SIZE_MIB=128
make_disk "$DISK" $SIZE_MIB incr
SIZE=$((SIZE_MIB * MiB))
cp --sparse=always "$DISK" "$T/v1.img"

init_repo "$R"
backup_json "$R" "$DISK" --name v1 --all-blocks
S1=$SNAP
STORED1=$(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]')
[ "$STORED1" -gt $((SIZE / 4)) ] || fail "first backup stored only $STORED1 bytes of a dirty $SIZE-byte disk"

# Add a 2 MiB file through the filesystem (debugfs, no mount needed).
ADDED=$((2 * MiB))
seeded_bytes incr-added $ADDED >"$T/added.bin"
debugfs -w -R "write $T/added.bin added.bin" "$DISK?offset=$EXT_OFF" >"$T/debugfs.log" 2>&1 ||
	{ cat "$T/debugfs.log" >&2; fail "debugfs could not add a file"; }
debugfs -R "stat added.bin" "$DISK?offset=$EXT_OFF" 2>/dev/null | qgrep "Size: $ADDED" ||
	fail "added.bin is not in the filesystem"

# ~2% of the disk in place: 5 contiguous runs and 12 single 4 KiB blocks,
# all inside the ext4 partition, at fixed offsets.
CHANGED=0
i=0
for run in 10:240 27:96 45:128 71:64 93:120; do
	mib=${run%%:*} blocks=${run##*:}
	mutate "$DISK" "incr-run$i" $((EXT_OFF + mib * MiB + 4096 * i)) "$blocks"
	CHANGED=$((CHANGED + blocks * 4096))
	i=$((i + 1))
done
for k in $(seq 1 12); do
	mutate "$DISK" "incr-blk$k" $((EXT_OFF + (k * 7 + 3) * MiB + k * 8192)) 1
	CHANGED=$((CHANGED + 4096))
done
note "changed in place: $CHANGED bytes ($((CHANGED * 1000 / SIZE)) per mille), added a $ADDED-byte file"
[ "$CHANGED" -ge $((SIZE / 60)) ] || fail "test bug: changed only $CHANGED bytes"
cmp -s "$DISK" "$T/v1.img" && fail "test bug: the disk did not change"
cp --sparse=always "$DISK" "$T/v2.img"

backup_json "$R" "$DISK" --name v2 --all-blocks
S2=$SNAP
STORED2=$(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]')
DEDUP2=$(json_get "$BACKUP_JSON" 'j["bytes_dedup"]')
IDEAL=$((CHANGED + ADDED))
note "first backup stored $STORED1 bytes; second stored $STORED2 (deduplicated $DEDUP2); changed+added = $IDEAL"
[ "$STORED2" -lt $((STORED1 * 15 / 100)) ] ||
	fail "incremental backup stored $STORED2 bytes, not < 15% of the first backup's $STORED1"
[ "$STORED2" -lt $((IDEAL * 4)) ] ||
	fail "incremental backup stored $STORED2 bytes, more than 4x the $IDEAL bytes changed and added"
[ "$STORED2" -ge $((IDEAL / 2)) ] ||
	fail "incremental backup stored $STORED2 bytes, less than the incompressible $IDEAL bytes that changed"

restore_check "$R" "$S1" "$T/v1.img"
restore_check "$R" "$S2" "$T/v2.img"
restore_check "$R" latest "$T/v2.img"
expect_ok dv --repo "$R" check
