#!/bin/bash
# t_layout_btrfs.sh - a GPT disk with one btrfs partition (mkfs.btrfs
# --rootdir over random bytes, so most of the device is unallocated and
# holds old data). Checks: the partition is imaged used-blocks and its
# used_bytes is the DEV_EXTENT bytes `btrfs inspect-internal dump-tree -t dev`
# lists plus the first MiB and the 64 MiB superblock mirror; the backup reads
# (kernel read_bytes, image evicted from the page cache first) at most the
# used bytes + 10%; the restore passes `btrfs check --readonly` and holds the
# same files (read-only loop mounts of source and restore, or `btrfs
# restore` where loop devices are not available); --all-blocks is
# bit-exact; a corrupt superblock is read whole with the reason.
DV_REAL_DISK=1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_disk.sh"

for t in mkfs.btrfs btrfs; do
	command -v $t >/dev/null || { echo "SKIP: $t (Debian btrfs-progs) is not installed"; exit 77; }
done
MNT=
CLEANUP+=('[ -z "$MNT" ] || umount "$MNT" 2>/dev/null')

R=$T/repo
D=$T/btrfs-disk.img
BOFF=$MiB
BSIZE=$((192 * MiB))
DSIZE=$((194 * MiB))
rm -f "$D"
truncate -s $DSIZE "$D"
dv_fill_random "$D" 0 194
sfdisk -q "$D" <<-EOT
	label: gpt
	start=1MiB, size=192MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data
EOT
mkdir -p "$T/tree/etc" "$T/tree/var/lib"
head -c $((12 * MiB)) /dev/urandom >"$T/tree/var/lib/db.bin"
for i in $(seq 1 30); do head -c $((i * 4999)) /dev/urandom >"$T/tree/etc/f$i"; done
seq 1 200000 >"$T/tree/etc/numbers.txt"
B=$T/part.btrfs
head -c $BSIZE /dev/urandom >"$B"
mkfs.btrfs -q -f -L data --rootdir "$T/tree" "$B" >/dev/null 2>&1 || fail "mkfs.btrfs failed"
dd if="$B" of="$D" bs=1M seek=1 conv=notrunc status=none
SRC_SHA=$(sha "$D")
# dev extents: "OFFSET LENGTH" lines
btrfs inspect-internal dump-tree -t dev "$B" 2>/dev/null | awk '
	/key \([0-9]+ DEV_EXTENT [0-9]+\)/ { s = $0; sub(/.*DEV_EXTENT /, "", s); sub(/\).*/, "", s); off = s }
	/chunk_objectid .* length / && off != "" { print off, $NF; off = "" }' >"$T/ext.txt"
EXT=$(awk '{ s += $2 } END { print s + 0 }' "$T/ext.txt")
# used: the extents, the first MiB, and the 64 MiB superblock mirror unless an extent holds it
MIRROR=$(awk -v m=$((64 * MiB)) '$1 <= m && m < $1 + $2 { in_ext = 1 } END { print in_ext ? 0 : 4096 }' "$T/ext.txt")
WANT_USED=$((EXT + MiB + MIRROR))
note "btrfs: $EXT bytes in dev extents (dump-tree)"
[ "$EXT" -gt $((12 * MiB)) ] || fail "dump-tree lists only $EXT bytes of dev extents"
init_repo "$R"

# ---- used-blocks backup ------------------------------------------------------
READ=$(dv_kernel_read_bytes "$D" "$T/backup.json" "$DISKVAULT" --progress=never --repo "$R" --json backup "$D" --name used) ||
	fail "backup failed"
SNAP=$(json_get "$(cat "$T/backup.json")" 'j["snapshot"]')
expect_ok dv --repo "$R" --json show "$SNAP"
LAYOUT=$(json_get "$STDOUT" '[o for o in (lambda f: f(f, j))(lambda f, x: ([x] if isinstance(x, dict) else []) + sum((f(f, v) for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else [])), [])) if "boot_mode" in o and "partitions" in o][0]')
[ "$(json_get "$LAYOUT" 'j["partitions"][0]["fs"]["type"]')" = btrfs ] || fail "partition 1 is not btrfs: $LAYOUT"
[ "$(json_get "$LAYOUT" 'j["partitions"][0]["imaged"]')" = used-blocks ] || fail "btrfs not imaged used-blocks: $LAYOUT"
GOT=$(json_get "$LAYOUT" 'j["partitions"][0]["fs"]["used_bytes"]')
[ "$GOT" = "$WANT_USED" ] || fail "btrfs used_bytes $GOT, dump-tree says $WANT_USED"
NEED=$((2 * MiB + WANT_USED))
note "backup read $READ bytes (kernel); used $NEED of $DSIZE"
[ "$READ" -le $((NEED + NEED / 10)) ] || fail "backup read $READ bytes, more than used $NEED + 10%"
[ "$READ" -ge $((EXT / 2)) ] || fail "read_bytes $READ is implausibly small (page cache not evicted?)"

# ---- restore -------------------------------------------------------------------
O=$T/restored.img
expect_ok dv --repo "$R" restore "$SNAP" "$O"
dd if="$O" of="$T/part.restored" bs=1M skip=1 count=192 status=none
cmp -s "$B" "$T/part.restored" && fail "the restored btrfs equals the source bit for bit: free space was imaged"
btrfs check --readonly "$T/part.restored" >"$T/check.out" 2>&1 || { cat "$T/check.out" >&2; fail "btrfs check --readonly of the restore failed"; }
mkdir "$T/a" "$T/b"
if mount -o loop,ro "$B" "$T/a" 2>/dev/null; then
	MNT=$T/a
	(cd "$T/a" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/a.sums"
	umount "$T/a" && MNT=
	mount -o loop,ro "$T/part.restored" "$T/b" || fail "the restored btrfs does not mount"
	MNT=$T/b
	(cd "$T/b" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/b.sums"
	umount "$T/b" && MNT=
else
	note "no loop mount here: files compared through btrfs restore"
	btrfs restore "$B" "$T/a" >/dev/null 2>&1 || fail "btrfs restore of the source failed"
	btrfs restore "$T/part.restored" "$T/b" >/dev/null 2>&1 || fail "btrfs restore of the restore failed"
	(cd "$T/a" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/a.sums"
	(cd "$T/b" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/b.sums"
fi
[ "$(wc -l <"$T/a.sums")" -ge 32 ] || fail "the source btrfs lists only $(wc -l <"$T/a.sums") files"
diff "$T/a.sums" "$T/b.sums" >&2 || fail "files in the restored btrfs differ from the source"
(cd "$T/tree" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | diff - "$T/a.sums" >&2 ||
	fail "the source btrfs does not hold the tree it was made from"
cmp -n $MiB "$D" "$O" || fail "the first MiB (protective MBR, GPT) differs"
cmp -i $((193 * MiB)):$((193 * MiB)) "$D" "$O" || fail "the backup GPT differs"

# ---- --all-blocks: bit-exact ---------------------------------------------------
backup_json "$R" "$D" --all-blocks --name all
[ "$(json_get "$BACKUP_JSON" 'j["bytes_read"] + j["bytes_sparse"]')" -eq $DSIZE ] || fail "--all-blocks did not read every byte"
expect_ok dv --repo "$R" restore "$SNAP" "$T/all.img"
[ "$(sha "$T/all.img")" = "$SRC_SHA" ] || fail "--all-blocks restore is not bit-exact"

# ---- a corrupt superblock: read whole, with the reason ---------------------------
printf 'Z' | dd of="$D" bs=1 seek=$((BOFF + 65536 + 0x12b)) conv=notrunc status=none
backup_json "$R" "$D" --name corrupt
expect_ok dv --repo "$R" --json show "$SNAP"
assert_contains "$STDOUT" "superblock fails its checksum" "show of a btrfs with a corrupt superblock (warning)"
[ "$(json_get "$BACKUP_JSON" 'j["bytes_read"]')" -gt $BSIZE ] || fail "the corrupt btrfs was not read whole"
