#!/bin/bash
# t_layout_ntfs.sh - a Windows disk: GPT with an ESP (FAT32, files), an MSR
# (16 MiB, no filesystem: read whole) and NTFS C: (files added and deleted
# through an ntfs-3g FUSE mount, old random data in its free space).
# Checks: the NTFS partition is imaged used-blocks and its used_bytes is
# what ntfscluster -i counts; the backup reads (kernel read_bytes, image
# evicted from the page cache first) at most the used bytes + 10%; the
# restore passes ntfsfix -n and fsck.fat -n and every NTFS file has the
# same sha256 (ntfs-3g read-only mounts of source and restore); the MSR
# and tables are byte-identical; --all-blocks is bit-exact; a dirty NTFS
# is read whole with the reason.
DV_REAL_DISK=1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_disk.sh"

for t in mkntfs ntfs-3g ntfscluster ntfsfix; do
	command -v $t >/dev/null || { echo "SKIP: $t (Debian ntfs-3g) is not installed"; exit 77; }
done
mkdir "$T/probe"
truncate -s 8M "$T/probe.img" && mkntfs -F -Q -q "$T/probe.img" >/dev/null 2>&1
if ! ntfs-3g -o ro "$T/probe.img" "$T/probe" 2>/dev/null; then
	echo "SKIP: ntfs-3g cannot mount through FUSE here (no /dev/fuse or no permission)"
	exit 77
fi
umount "$T/probe"
MNT=
CLEANUP+=('[ -z "$MNT" ] || umount "$MNT" 2>/dev/null')

R=$T/repo
D=$T/win.img
NOFF=$((81 * MiB))
NSIZE=$((174 * MiB))
rm -f "$D"
truncate -s 256M "$D"
dv_fill_random "$D" 0 256
sfdisk -q "$D" <<-EOT
	label: gpt
	start=1MiB, size=64MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system partition"
	start=65MiB, size=16MiB, type=E3C9E316-0B5C-4DB8-817D-F92DF00215AE, name="Microsoft reserved partition"
	start=81MiB, size=174MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name="Basic data partition"
EOT
mkfs.vfat -F 32 -s 1 -n SYSTEM --offset $((MiB / 512)) "$D" $((64 * 1024)) >/dev/null 2>&1
dv_fill_fat "$D@@$MiB" "$T/esp"

# NTFS C: in a scratch file over random data, filled through FUSE, copied in
N=$T/c.ntfs
head -c $NSIZE /dev/urandom >"$N"
mkntfs -F -Q -q -L Windows -p $((NOFF / 512)) "$N" >/dev/null 2>&1
mkdir "$T/c"
ntfs-3g "$N" "$T/c" && MNT=$T/c
mkdir -p "$T/c/Windows/System32" "$T/c/Users/Admin/Documents" "$T/c/Program Files"
head -c $((12 * MiB)) /dev/urandom >"$T/c/Windows/System32/big.dll"
for i in $(seq 1 40); do head -c $((i * 7919)) /dev/urandom >"$T/c/Windows/System32/f$i.sys"; done
head -c $((9 * MiB)) /dev/urandom >"$T/c/Users/Admin/Documents/gone.bin"
head -c $((6 * MiB)) /dev/urandom >"$T/c/Program Files/app.exe"
seq 1 300000 >"$T/c/Users/Admin/Documents/notes.txt"
rm "$T/c/Users/Admin/Documents/gone.bin" "$T/c/Windows/System32/f7.sys"
umount "$T/c" && MNT=
dd if="$N" of="$D" bs=1M seek=$((NOFF / MiB)) conv=notrunc status=none
SRC_SHA=$(sha "$D")
NFREE=$(ntfscluster -i "$N" 2>/dev/null | sed -n 's/^bytes of free space *: *//p')
NBYTES=$(ntfscluster -i "$N" 2>/dev/null | sed -n 's/^bytes per volume *: *//p')
NUSED=$((NBYTES - NFREE))
note "NTFS: $NBYTES bytes, $NUSED used (ntfscluster)"
[ "$NUSED" -gt $((25 * MiB)) ] || fail "the NTFS holds only $NUSED used bytes"
init_repo "$R"

# ---- used-blocks backup ------------------------------------------------------
READ=$(dv_kernel_read_bytes "$D" "$T/backup.json" "$DISKVAULT" --progress=never --repo "$R" --json backup "$D" --name used) ||
	fail "backup failed"
BACKUP_JSON=$(cat "$T/backup.json")
SNAP=$(json_get "$BACKUP_JSON" 'j["snapshot"]')
expect_ok dv --repo "$R" --json show "$SNAP"
LAYOUT=$(json_get "$STDOUT" '[o for o in (lambda f: f(f, j))(lambda f, x: ([x] if isinstance(x, dict) else []) + sum((f(f, v) for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else [])), [])) if "boot_mode" in o and "partitions" in o][0]')
[ "$(json_get "$LAYOUT" 'j["partitions"][2]["fs"]["type"]')" = ntfs ] || fail "partition 3 is not ntfs: $LAYOUT"
[ "$(json_get "$LAYOUT" 'j["partitions"][2]["imaged"]')" = used-blocks ] || fail "NTFS not imaged used-blocks: $LAYOUT"
[ "$(json_get "$LAYOUT" 'j["partitions"][1]["imaged"]')" = whole ] || fail "MSR not read whole: $LAYOUT"
[ "$(json_get "$LAYOUT" 'j["partitions"][0]["imaged"]')" = used-blocks ] || fail "ESP not imaged used-blocks"
GOT=$(json_get "$LAYOUT" 'j["partitions"][2]["fs"]["used_bytes"]')
[ "$GOT" = "$NUSED" ] || fail "NTFS used_bytes $GOT, ntfscluster says $NUSED"
ESP_USED=$(json_get "$LAYOUT" 'j["partitions"][0]["fs"]["used_bytes"]')
# tables and the 1 MiB gaps, ESP used, MSR whole, NTFS used plus its backup boot sector
NEED=$((2 * MiB + ESP_USED + 16 * MiB + NUSED + (NSIZE - NBYTES)))
note "backup read $READ bytes (kernel); used $NEED of $((256 * MiB))"
[ "$READ" -le $((NEED + NEED / 10)) ] || fail "backup read $READ bytes, more than used $NEED + 10%"
[ "$READ" -ge $((NUSED / 2)) ] || fail "read_bytes $READ is implausibly small (page cache not evicted?)"

# ---- restore -------------------------------------------------------------------
O=$T/restored.img
expect_ok dv --repo "$R" restore "$SNAP" "$O"
dd if="$O" of="$T/c.restored" bs=1M skip=$((NOFF / MiB)) count=$((NSIZE / MiB)) status=none
cmp -s "$N" "$T/c.restored" && fail "the restored NTFS equals the source bit for bit: free space was imaged"
ntfsfix -n "$T/c.restored" >"$T/ntfsfix.out" 2>&1 || { cat "$T/ntfsfix.out" >&2; fail "ntfsfix -n of the restored NTFS failed"; }
mkdir "$T/a" "$T/b"
ntfs-3g -o ro "$N" "$T/a" && MNT=$T/a
(cd "$T/a" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/a.sums"
umount "$T/a" && MNT=
ntfs-3g -o ro "$T/c.restored" "$T/b" && MNT=$T/b
(cd "$T/b" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/b.sums"
umount "$T/b" && MNT=
[ "$(wc -l <"$T/a.sums")" -ge 42 ] || fail "the source NTFS lists only $(wc -l <"$T/a.sums") files"
diff "$T/a.sums" "$T/b.sums" >&2 || fail "files in the restored NTFS differ from the source"
dd if="$O" of="$T/esp.img" bs=1M skip=1 count=64 status=none
fsck.fat -n "$T/esp.img" >/dev/null 2>&1 || fail "fsck.fat -n of the restored ESP failed"
dv_fat_check "$T/esp.img" "$T/esp" || fail "files in the restored ESP differ"
cmp -n $((MiB)) "$D" "$O" || fail "the first MiB (protective MBR, GPT) differs"
cmp -n $((16 * MiB)) -i $((65 * MiB)):$((65 * MiB)) "$D" "$O" || fail "the MSR differs"
cmp -i $((255 * MiB)):$((255 * MiB)) "$D" "$O" || fail "the backup GPT differs"

# ---- --all-blocks: bit-exact ---------------------------------------------------
backup_json "$R" "$D" --all-blocks --name all
[ "$(json_get "$BACKUP_JSON" 'j["bytes_read"] + j["bytes_sparse"]')" -eq $((256 * MiB)) ] || fail "--all-blocks did not read every byte"
expect_ok dv --repo "$R" restore "$SNAP" "$T/all.img"
[ "$(sha "$T/all.img")" = "$SRC_SHA" ] || fail "--all-blocks restore is not bit-exact"

# ---- a dirty NTFS: read whole, with the reason ---------------------------------
# the dirty bit is bit 0 of the flags of $Volume's VOLUME_INFORMATION; ntfs-3g
# keeps it set while a read-write mount is live, so copy the volume then
python3 - "$N" <<-'EOF' || fail "could not mark the NTFS dirty"
	import struct, sys
	f = open(sys.argv[1], "r+b")
	bs = f.read(512)
	bps, spc = struct.unpack_from("<HB", bs, 11)
	mft_lcn = struct.unpack_from("<q", bs, 48)[0]
	mirr_lcn = struct.unpack_from("<q", bs, 56)[0]
	csize = bps * spc
	rec = 1024  # mkntfs's record size
	for lcn in (mft_lcn, mirr_lcn):
	    off = lcn * csize + 3 * rec
	    f.seek(off)
	    r = bytearray(f.read(rec))
	    a = struct.unpack_from("<H", r, 20)[0]
	    while a < rec:
	        t, ln = struct.unpack_from("<II", r, a)
	        if t == 0xffffffff or ln == 0:
	            sys.exit(1)
	        if t == 0x70:
	            voff = struct.unpack_from("<H", r, a + 20)[0]
	            r[a + voff + 10] |= 1
	            break
	        a += ln
	    else:
	        sys.exit(1)
	    f.seek(off)
	    f.write(r)
	EOF
INFO=$(ntfsinfo -m "$N" 2>&1 || true)
qgrep 'scheduled for check' <<<"$INFO" || fail "the poke did not set the dirty flag: $INFO"
dd if="$N" of="$D" bs=1M seek=$((NOFF / MiB)) conv=notrunc status=none
backup_json "$R" "$D" --name dirty
expect_ok dv --repo "$R" --json show "$SNAP"
assert_contains "$STDOUT" "marked dirty" "show of a dirty NTFS (warning)"
[ "$(json_get "$BACKUP_JSON" 'j["bytes_read"]')" -gt $((NSIZE)) ] || fail "the dirty NTFS was not read whole"
