#!/bin/bash
# t_layout_xfs.sh - a CentOS-like GPT disk with XFS /boot and an XFS data
# partition, old random data in all free space, files written and some
# deleted through a loop mount (so the free-space btrees are fragmented).
#   - the backup reads (kernel read_bytes, page cache evicted first) at most
#     the filesystems' used bytes + 10%;
#   - the restore passes xfs_repair -n on each partition, and every file is
#     identical (ro,norecovery loop mounts of source and restore);
#   - --all-blocks restores bit-exact;
#   - a log that needs recovery (xfs_io shutdown) refuses the backup (exit
#     13, "unmount record"); --allow-mounted images it whole, with a warning.
# Needs root and a kernel with xfs (loop mounts), and xfsprogs.
DV_REAL_DISK=1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_disk.sh"

if [ "$(id -u)" -ne 0 ] || ! grep -qw xfs /proc/filesystems || ! command -v mkfs.xfs >/dev/null ||
	! losetup -f >/dev/null 2>&1; then
	echo "SKIP: needs root, loop devices, a kernel with xfs and xfsprogs (loop mounts of XFS)"
	exit 77
fi

LOOPS=()
CLEANUP+=('for m in "$T"/mnt*; do umount "$m" 2>/dev/null; done; for l in "${LOOPS[@]+"${LOOPS[@]}"}"; do losetup -d "$l" 2>/dev/null; done')
# loop IMG OFF SIZE [ro]: a loop device over part of IMG; sets LOOP.
loop() {
	LOOP=$(losetup -f --show -o "$2" --sizelimit "$3" ${4:+-r} "$1") || fail "losetup $1 at $2"
	LOOPS+=("$LOOP")
}
unloop() { losetup -d "$1"; }
evict() { python3 -c 'import os,sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fdatasync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"; }
# files DIR: sorted sha256 of every file under DIR, relative names.
files() { (cd "$1" && find . -type f | sort | xargs -d '\n' sha256sum); }

# The disk is built, restored and compared in memory (/dev/shm) when it can
# be: only the backup whose reads are counted needs a copy on a real disk
# (tmpfs has no read_bytes).
S=$T
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	S=$(mktemp -d /dev/shm/dv-xfs.XXXXXX)
	CLEANUP+=('rm -rf "$S"')
fi
D=$S/disk.img
BOOT_OFF=$((1 * MiB)) BOOT_SIZE=$((100 * MiB))
DATA_OFF=$((101 * MiB)) DATA_SIZE=$((160 * MiB))
# mkfs.xfs refuses filesystems under 300 MB unless run by fstests (these
# variables); small ones keep the test fast, and the structures are the same.
export TEST_DIR=$T TEST_DEV=unused QA_CHECK_FS=1
truncate -s 264M "$D"
dv_fill_random "$D" 0 264
sfdisk -q "$D" <<-EOT
	label: gpt
	start=1MiB, size=100MiB, type=BC13C2FF-59E6-4262-A352-B275FD6F7172, name=boot
	start=101MiB, size=160MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data
EOT
mkdir -p "$T/mnt" "$T/mnt2"

loop "$D" $BOOT_OFF $BOOT_SIZE
mkfs.xfs -q -f -K -L boot "$LOOP" >/dev/null 2>&1 || fail "mkfs.xfs /boot"
mount "$LOOP" "$T/mnt"
mkdir -p "$T/mnt/grub2"
head -c $((20 * MiB)) /dev/urandom >"$T/mnt/initramfs-5.14.0.img"
head -c $((8 * MiB)) /dev/urandom >"$T/mnt/vmlinuz-5.14.0"
echo "set default=0" >"$T/mnt/grub2/grub.cfg"
umount "$T/mnt"
unloop "$LOOP"

loop "$D" $DATA_OFF $DATA_SIZE
mkfs.xfs -q -f -K -L data "$LOOP" >/dev/null 2>&1 || fail "mkfs.xfs data"
mount "$LOOP" "$T/mnt"
mkdir -p "$T/mnt/etc" "$T/mnt/var/log" "$T/mnt/usr/lib"
for i in $(seq 1 200); do head -c $((i * 1297 % 300000 + 1)) /dev/urandom >"$T/mnt/etc/f$i"; done
for i in $(seq 1 10); do head -c $((7 * MiB)) /dev/urandom >"$T/mnt/usr/lib/big$i"; done
sync -f "$T/mnt"
rm -f "$T"/mnt/etc/f*[13579] "$T"/mnt/usr/lib/big*[05]
head -c $((10 * MiB)) /dev/urandom >"$T/mnt/var/log/messages"
umount "$T/mnt"
unloop "$LOOP"

SIZE=$(stat -c %s "$D")
SRC_SHA=$(sha "$D")
R=$S/repo
init_repo "$R"

# ---- used-blocks backup: bytes read by the kernel --------------------------
DISK=$D
if [ "$S" != "$T" ]; then
	DISK=$T/disk.img
	cp --sparse=always "$D" "$DISK"
fi
evict "$DISK"
bash -c '"$DISKVAULT" --progress=never --repo "$1" --json backup "$2" --name used >"$3"; rc=$?
	cat /proc/$$/io >"$4"; exit $rc' _ "$R" "$DISK" "$T/backup.json" "$T/io" || fail "backup failed: $(cat "$T/backup.json")"
[ "$DISK" = "$D" ] || rm -f "$DISK"
SNAP=$(json_get "$(cat "$T/backup.json")" 'j["snapshot"]')
READ=$(awk '/^read_bytes:/ {print $2}' "$T/io")
expect_ok dv --repo "$R" --json show "$SNAP"
SHOW=$STDOUT
USED=$(json_get "$SHOW" 'sum(o["used_bytes"] for o in (lambda f: f(f, j))(lambda f, x: ([x] if isinstance(x, dict) else []) + sum((f(f, v) for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else [])), [])) if o.get("type") == "xfs" and "used_bytes" in o)')
NXFS=$(json_get "$SHOW" 'len([o for o in (lambda f: f(f, j))(lambda f, x: ([x] if isinstance(x, dict) else []) + sum((f(f, v) for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else [])), [])) if o.get("type") == "xfs" and "used_bytes" in o])')
[ "$NXFS" -eq 2 ] || fail "show does not give used_bytes of both XFS filesystems: $SHOW"
# what xfs_db says is used: dblocks - free blocks - AGFL blocks
for p in "$BOOT_OFF $BOOT_SIZE" "$DATA_OFF $DATA_SIZE"; do
	set -- $p
	dd if="$D" of="$S/part.img" bs=1M skip=$(($1 / MiB)) count=$(($2 / MiB)) status=none
	eval "$(xfs_db -r -c 'sb 0' -c 'p dblocks blocksize fdblocks' "$S/part.img" | tr -d ' ')"
	note "partition at $1: dblocks $dblocks, xfs_db fdblocks $fdblocks"
done
rm -f "$S/part.img"
note "used-blocks backup read $READ bytes; the XFS filesystems use $USED of $SIZE bytes"
[ "$READ" -le $((USED + USED / 10)) ] || fail "backup read $READ bytes, more than used $USED + 10%"
[ "$READ" -ge $((USED / 2)) ] || fail "backup read only $READ bytes of $USED used: is the count right?"
assert_contains "$SHOW" "used-blocks" "show of the used-blocks snapshot"

# ---- restore: xfs_repair -n, files identical -------------------------------
O=$S/restored.img
expect_ok dv --repo "$R" restore "$SNAP" "$O"
[ "$(stat -c %s "$O")" -eq "$SIZE" ] || fail "restored image has the wrong size"
for p in "$BOOT_OFF $BOOT_SIZE boot" "$DATA_OFF $DATA_SIZE data"; do
	set -- $p
	loop "$O" "$1" "$2"
	xfs_repair -n "$LOOP" >"$T/repair.out" 2>&1 || { cat "$T/repair.out" >&2; fail "xfs_repair -n of the restored $3 failed"; }
	mount -o ro,norecovery,nouuid "$LOOP" "$T/mnt"
	loop "$D" "$1" "$2" ro
	mount -o ro,norecovery,nouuid "$LOOP" "$T/mnt2"
	files "$T/mnt2" >"$T/want.sums"
	files "$T/mnt" >"$T/got.sums"
	[ "$(wc -l <"$T/want.sums")" -gt 2 ] || fail "no files found in the source $3"
	cmp -s "$T/want.sums" "$T/got.sums" || { diff "$T/want.sums" "$T/got.sums" | head >&2; fail "files of $3 differ after restore"; }
	umount "$T/mnt" "$T/mnt2"
done
rm -f "$O"

# ---- --all-blocks: bit-exact ----------------------------------------------
backup_json "$R" "$D" --all-blocks --name all
expect_ok dv --repo "$R" restore "$SNAP" "$S/all.img"
[ "$(sha "$S/all.img")" = "$SRC_SHA" ] || fail "--all-blocks restore is not bit-exact"
rm -f "$S/all.img"

# ---- a log that needs recovery ---------------------------------------------
loop "$D" $DATA_OFF $DATA_SIZE
mount "$LOOP" "$T/mnt"
echo "written, in the log only" >"$T/mnt/etc/late"
sync -f "$T/mnt/etc/late"
xfs_io -x -c 'shutdown' "$T/mnt"
umount "$T/mnt"
unloop "$LOOP"
expect_exit 13 dv --repo "$R" backup "$D" --name dirty
assert_contains "$STDERR" "partition 2 (xfs)" "refusal of a dirty XFS log"
assert_contains "$STDERR" "unmount record" "refusal of a dirty XFS log"
backup_json "$R" "$D" --allow-mounted --name dirty
expect_ok dv --repo "$R" --json show "$SNAP"
assert_contains "$STDOUT" "unreplayed log" "show of an --allow-mounted snapshot (warning)"
expect_ok dv --repo "$R" restore "$SNAP" "$S/dirty.img"
cmp -s <(dd if="$D" bs=1M skip=$((DATA_OFF / MiB)) count=$((DATA_SIZE / MiB)) status=none) \
	<(dd if="$S/dirty.img" bs=1M skip=$((DATA_OFF / MiB)) count=$((DATA_SIZE / MiB)) status=none) ||
	fail "the XFS with a dirty log was not imaged whole"
exit 0
