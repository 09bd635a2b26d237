#!/bin/bash
# t_layout_md.sh - md RAID1 members read from the disk itself (no md driver
# here: the superblocks are crafted, and checked by `mdadm --examine`).
# A GPT image (old random data everywhere) holds two RAID1 members:
#   1  metadata 1.2 (superblock at 4 KiB, data at 1 MiB), ext4 inside
#   2  metadata 0.90 (superblock in the last 64 KiB), ext4 at its start
# Checks: the probe finds each array and its ext4 at the data offset; the
# backup reads at most the used bytes + 10%; each restored ext4 passes
# e2fsck -fn with the same files; --all-blocks is bit-exact.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_disk.sh"

D=$T/disk.img
truncate -s 48M "$D"
seeded_bytes md-old $((48 * MiB)) | dd of="$D" conv=notrunc bs=1M iflag=fullblock status=none
sfdisk -q "$D" >/dev/null <<-EOT || fail "sfdisk failed"
	label: gpt
	start=1MiB, size=20MiB, type=A19D880F-05FC-4D3B-A006-743F0F84911E, name=m1
	start=21MiB, size=20MiB, type=A19D880F-05FC-4D3B-A006-743F0F84911E, name=m2
EOT
mkdir -p "$T/t1" "$T/t2"
make_tree "$T/t1" md-one $((2 * MiB))
make_tree "$T/t2" md-two $((2 * MiB))
dv_mk_ext4 "$D" $((2 * MiB)) $((19 * MiB)) mdone "$T/t1" || fail "mkfs.ext4 failed"
dv_mk_ext4 "$D" $((21 * MiB)) $((19 * MiB)) mdtwo "$T/t2" || fail "mkfs.ext4 failed"
python3 - "$D" <<'PY'
import struct, sys
MiB = 1 << 20
def fold(b, skip):
    s = sum(struct.unpack_from("<I", b, i)[0] for i in range(0, len(b) - len(b) % 4, 4) if i != skip)
    if len(b) % 4 == 2:
        s += struct.unpack_from("<H", b, len(b) - 2)[0]
    return ((s & 0xffffffff) + (s >> 32)) & 0xffffffff
with open(sys.argv[1], "r+b") as d:
    # 1.2 on partition 1: 20 MiB member, data at 2048 sectors, 19 MiB
    sb = bytearray(256 + 2 * 2)
    struct.pack_into("<III", sb, 0, 0xa92b4efc, 1, 0)
    sb[16:32] = bytes(range(0x40, 0x50))
    sb[32:38] = b"host:0"
    struct.pack_into("<Q", sb, 64, 1700000000)
    struct.pack_into("<iIQII", sb, 72, 1, 0, 19 * MiB // 512, 0, 2)
    struct.pack_into("<QQQ", sb, 128, 2048, 19 * MiB // 512, 8)
    struct.pack_into("<I", sb, 160, 0)
    sb[168:184] = bytes(range(0x60, 0x70))
    struct.pack_into("<QQQ", sb, 192, 1700000001, 5, 0xffffffffffffffff)
    struct.pack_into("<I", sb, 220, 2)
    struct.pack_into("<HH", sb, 256, 0, 1)
    struct.pack_into("<I", sb, 216, fold(bytes(sb), 216))
    d.seek(1 * MiB + 4096)
    d.write(sb)
    # 0.90 on partition 2: superblock at (sectors & ~127) - 128
    sb = bytearray(4096)
    w = lambda i, v: struct.pack_into("<I", sb, 4 * i, v)
    w(0, 0xa92b4efc); w(1, 0); w(2, 90); w(3, 0); w(5, 0x11223344); w(6, 1700000000); w(7, 1)
    w(8, 19 * 1024); w(9, 2); w(10, 2); w(11, 0); w(13, 0x55667788); w(14, 0x99aabbcc); w(15, 0xddeeff00)
    w(32, 1700000001); w(33, 1); w(34, 2); w(35, 2); w(36, 0); w(37, 0); w(40, 5)
    for k, (num, major, minor, raid, state) in enumerate([(0, 8, 2, 0, 6), (1, 8, 18, 1, 6)]):
        base = 128 + 32 * k
        w(base, num); w(base + 1, major); w(base + 2, minor); w(base + 3, raid); w(base + 4, state)
    this = 128 + 32 * 27
    w(this, 1); w(this + 1, 8); w(this + 2, 18); w(this + 3, 1); w(this + 4, 6)
    w(38, fold(bytes(sb), 38 * 4))
    sectors = 20 * MiB // 512
    d.seek(21 * MiB + ((sectors & ~127) - 128) * 512)
    d.write(sb)
PY
# mdadm, independently, accepts both superblocks (checksums included).
if command -v mdadm >/dev/null; then
	dd if="$D" of="$T/m1" bs=1M skip=1 count=20 status=none
	dd if="$D" of="$T/m2" bs=1M skip=21 count=20 status=none
	mdadm --examine "$T/m1" >"$T/ex1" 2>&1 || fail "mdadm --examine rejects member 1: $(cat "$T/ex1")"
	qgrep "Data Offset : 2048 sectors" "$T/ex1" || fail "mdadm: $(cat "$T/ex1")"
	qgrep "Checksum : .* correct" "$T/ex1" || fail "mdadm: $(cat "$T/ex1")"
	mdadm --examine "$T/m2" >"$T/ex2" 2>&1 || fail "mdadm --examine rejects member 2: $(cat "$T/ex2")"
	qgrep "Raid Level : raid1" "$T/ex2" || fail "mdadm: $(cat "$T/ex2")"
	qgrep "Checksum : .* correct" "$T/ex2" || fail "mdadm: $(cat "$T/ex2")"
	rm -f "$T/m1" "$T/m2"
fi
SRC_SHA=$(sha "$D")

R=$T/repo
init_repo "$R"
backup_json "$R" "$D" --name md
S1=$SNAP
READ=$(json_get "$BACKUP_JSON" 'j["bytes_read"]')
expect_ok dv --repo "$R" --json show "$S1"
python3 - "$STDOUT" <<'PY' || fail "probed md layout: $STDOUT"
import json, sys
j = json.loads(sys.argv[1])
lay = j["snapshot"]["disks"][0]["layout"]
p1, p2 = lay["partitions"]
m1, m2 = p1["md"], p2["md"]
assert (m1["metadata"], m1["level"], m1["data_offset"], m1["size"], m1["name"]) == ("1.2", 1, 1 << 20, 19 << 20, "host:0"), m1
assert m1["uuid"] == "40414243:44454647:48494a4b:4c4d4e4f", m1
assert (m2["metadata"], m2["level"], m2["data_offset"], m2["size"]) == ("0.90", 1, 0, 19 << 20), m2
assert m2["uuid"] == "11223344:55667788:99aabbcc:ddeeff00", m2
for m, label in ((m1, "mdone"), (m2, "mdtwo")):
    assert m["fs"]["type"] == "ext4" and m["fs"]["label"] == label and m["imaged"] == "used-blocks", m
for p in (p1, p2):
    assert p["imaged"] == "md-data", p
PY
expect_ok dv --repo "$R" show "$S1"
assert_contains "$STDOUT" "md RAID1 (metadata 1.2) host:0: data at 1.00 MiB, 19.00 MiB"
assert_contains "$STDOUT" "uuid 40414243:44454647:48494a4b:4c4d4e4f"
assert_contains "$STDOUT" "Linux RAID"

used=0
for off in 2 21; do
	dd if="$D" of="$T/fs" bs=1M skip=$off count=19 status=none
	u=$(dumpe2fs -h "$T/fs" 2>/dev/null | awk -F: '/^Block count/{b=$2} /^Free blocks/{f=$2} /^Block size/{s=$2} END{print (b-f)*s}')
	used=$((used + u))
done
# + the GPT area, member 1's first MiB (superblock), member 2's last MiB,
# the 7 MiB after the partitions
need=$((used + 1 * MiB + 1 * MiB + 1 * MiB + 7 * MiB))
note "backup read $READ bytes; used $need"
[ "$READ" -le $((need * 11 / 10)) ] || fail "the backup read $READ bytes, more than the used $need + 10%"

expect_ok dv --repo "$R" restore "$S1" "$T/out.img"
for k in 1 2; do
	off=$([ $k = 1 ] && echo 2 || echo 21)
	dd if="$T/out.img" of="$T/fs$k" bs=1M skip=$off count=19 status=none
	e2fsck -fn "$T/fs$k" >"$T/fsck.log" 2>&1 || fail "e2fsck -fn failed on restored member $k: $(cat "$T/fsck.log")"
	mkdir -p "$T/r$k"
	debugfs -R "rdump / $T/r$k" "$T/fs$k" >/dev/null 2>&1 || fail "debugfs rdump failed on member $k"
	diff -r "$T/t$k" "$T/r$k" -x lost+found >/dev/null || fail "restored member $k holds other files"
done
# the 0.90 superblock survives (it lies outside the data)
cmp -s <(tail -c $((1 * MiB)) <(head -c $((41 * MiB)) "$D")) <(tail -c $((1 * MiB)) <(head -c $((41 * MiB)) "$T/out.img")) ||
	fail "the end of member 2 (its 0.90 superblock) was not restored"

backup_json "$R" "$D" --name all --all-blocks
expect_ok dv --repo "$R" restore "$SNAP" "$T/all.img"
[ "$(sha "$T/all.img")" = "$SRC_SHA" ] || fail "the --all-blocks restore differs from the source"
