#!/usr/bin/env bash
# t_mount_eio.sh - unreadable regions through the mount. A backup with
# --skip-bad-sectors of a disk whose reads fail (LD_PRELOAD fault
# injector, as t_fault_io.sh) records 64 KiB of the ext4 partition as
# unreadable; in the mount, reads of those bytes fail with EIO, in
# disk0.img and in disk0-p2.img alike, and stderr names the bytes; reads
# elsewhere return the restored bytes, and the process still exits 0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_mount.sh"
: "${DV_FAULTINJECT:?set DV_FAULTINJECT to the fault injection library}"
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

make_disk "$T/disk.img" 40 mount-eio
bad_off=$((EXT_OFF + 4 * MiB))
bad_len=65536
R=$T/repo
init_repo "$R"
expect_exit 3 env LD_PRELOAD="$DV_FAULTINJECT" DV_FAULT_READ_PATH=disk.img DV_FAULT_READ_OFFSET=$bad_off \
	DV_FAULT_READ_LENGTH=$bad_len "$DISKVAULT" --progress=never --repo "$R" backup "$T/disk.img" --all-blocks \
	--skip-bad-sectors
expect_ok dv --repo "$R" restore latest "$T/restored.img"

M=$T/mnt
mkdir -p "$M"
mount_start "$R" latest "$M"
# pread with O_DIRECT-free reads: errno of each range.
probe() {
	python3 - "$1" "$2" "$3" "$T/restored.img" "$4" <<'PY'
import errno, os, sys
path, off, n, ref, refoff = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
fd = os.open(path, os.O_RDONLY)
try:
    got = os.pread(fd, n, off)
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno)); sys.exit(0)
with open(ref, "rb") as f:
    f.seek(refoff); want = f.read(n)
if len(got) < n and got == want[:len(got)]:
    print("short %d" % len(got))
else:
    print("ok" if got == want else "differs")
PY
}
[ "$(probe "$M/disk0.img" $bad_off 4096 $bad_off)" = EIO ] || fail "reading the unreadable bytes of disk0.img did not fail with EIO"
p2bad=$((bad_off - EXT_OFF))
[ "$(probe "$M/disk0-p2.img" $((p2bad + 8192)) 4096 $((bad_off + 8192)))" = EIO ] ||
	fail "reading the unreadable bytes of disk0-p2.img did not fail with EIO"
# a read that starts before the bad range stops at it (a short read of the
# good bytes, as from a disk with bad sectors): never silent zeros
got=$(probe "$M/disk0-p2.img" $((p2bad - 4096)) 8192 $((bad_off - 4096)))
[ "$got" = EIO ] || [ "$got" = "short 4096" ] || fail "a read overlapping the unreadable bytes gave: $got"
# elsewhere: the restored bytes
[ "$(probe "$M/disk0.img" 0 $MiB 0)" = ok ] || fail "the first MiB of disk0.img differs from the restored disk"
[ "$(probe "$M/disk0-p2.img" $((p2bad + 2 * MiB)) $MiB $((bad_off + 2 * MiB)))" = ok ] ||
	fail "bytes after the unreadable range differ from the restored disk"
# a whole-image copy fails rather than completing with zeros
if cat "$M/disk0-p2.img" >/dev/null 2>"$T/cat.err"; then fail "cat of disk0-p2.img succeeded over unreadable bytes"; fi
assert_contains "$(cat "$T/cat.err")" "Input/output error"
umount "$M"
mount_wait_exit 0
assert_contains "$(cat "$MLOG")" "could not be read when it was backed up"
assert_contains "$(cat "$MLOG")" "bytes $bad_off-$((bad_off + bad_len - 1)) of the disk"
n=$(sed -n 's/.* \([0-9]*\) failed$/\1/p' "$MLOG")
[ "${n:-0}" -ge 3 ] || fail "the mount counted ${n:-no} failed reads: $(tail -1 "$MLOG")"
