#!/bin/bash
# t_layout_lvm.sh - LVM2 read from the disk itself. A GPT image (old random
# data everywhere) with two LVM PV partitions is made with the real lvm2
# tools on two loop devices (no device-mapper needed: pvcreate, vgcreate,
# then LVs added by vgcfgrestore of an edited vgcfgbackup):
#   root  ext4, 2 linear segments placed out of order on pv0
#   data  ext4, striped over pv0 and pv1 (64 KiB stripes)
#   swap  swap, linear on pv1
# The ext4 images (mkfs.ext4 -d) and the swap are written at the offsets
# `lvs --segments` / `pvs` report. Checks: the probed VG/LV segments equal
# lvm's own report; the backup reads at most the used bytes + 10%; each
# restored LV's ext4 passes e2fsck -fn and holds the same files (debugfs
# rdump); --all-blocks restores bit-exact.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_disk.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

command -v pvcreate >/dev/null || { echo "SKIP: lvm2 is not installed"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: loop devices need root"; exit 77; }

D=$T/disk.img
truncate -s 80M "$D"
seeded_bytes lvm-old $((80 * MiB)) | dd of="$D" conv=notrunc bs=1M iflag=fullblock status=none
sfdisk -q "$D" >/dev/null <<-EOT || fail "sfdisk failed"
	label: gpt
	start=1MiB, size=36MiB, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, name=pv0
	start=37MiB, size=36MiB, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, name=pv1
EOT
L1=$(losetup -f --show -o $((1 * MiB)) --sizelimit $((36 * MiB)) "$D") || { echo "SKIP: losetup failed"; exit 77; }
CLEANUP+=("losetup -d $L1")
L2=$(losetup -f --show -o $((37 * MiB)) --sizelimit $((36 * MiB)) "$D") || fail "losetup failed"
CLEANUP+=("losetup -d $L2")
VG=dvt$$
export LVM_SUPPRESS_FD_WARNINGS=1
LVMC="devices { obtain_device_list_from_udev=0 filter=[\"a|^$L1\$|\", \"a|^$L2\$|\", \"r|.*|\"] }
global { locking_type=1 } backup { backup=0 archive=0 } activation { udev_sync=0 udev_rules=0 monitoring=0 }"
lvm_() { local c=$1; shift; "$c" --config "$LVMC" "$@" 2>"$T/lvm.err" || { cat "$T/lvm.err" >&2; return 1; }; }
lvm_ pvcreate -q "$L1" "$L2" >/dev/null || fail "pvcreate failed"
lvm_ vgcreate -q -s 1M "$VG" "$L1" "$L2" >/dev/null || fail "vgcreate failed"
lvm_ vgcfgbackup -q -f "$T/vg.txt" "$VG" >/dev/null || fail "vgcfgbackup failed"

# The LVs, appended to the VG section (its closing brace is the last one).
python3 - "$T/vg.txt" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
def lv(name, uid, segs):
    out = ['%s {' % name, 'id = "%s"' % uid, 'status = ["READ", "WRITE", "VISIBLE"]', 'flags = []',
           'segment_count = %d' % len(segs)]
    for i, (start, count, stripes, ss) in enumerate(segs, 1):
        out += ['segment%d {' % i, 'start_extent = %d' % start, 'extent_count = %d' % count,
                'type = "striped"', 'stripe_count = %d' % (len(stripes) // 2)]
        if ss:
            out.append('stripe_size = %d' % ss)
        out.append('stripes = [' + ", ".join('"%s"' % x if isinstance(x, str) else str(x) for x in stripes) + ']')
        out.append('}')
    return "\n".join(out + ['}'])
lvs = "\n".join([
    lv("root", "aaaaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaa1", [(0, 6, ["pv0", 20], 0), (6, 6, ["pv0", 2], 0)]),
    lv("data", "aaaaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaa2", [(0, 16, ["pv0", 26, "pv1", 0], 128)]),
    lv("swap", "aaaaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaa3", [(0, 4, ["pv1", 10], 0)]),
])
s = re.sub(r"seqno = (\d+)", lambda m: "seqno = %d" % (int(m.group(1)) + 1), s, count=1)
i = s.rindex("}")
s = s[:i] + "logical_volumes {\n" + lvs + "\n}\n" + s[i:]
open(p, "w").write(s)
PY
lvm_ vgcfgrestore -q -f "$T/vg.txt" "$VG" >/dev/null || fail "vgcfgrestore failed"
lvm_ lvs --segments --reportformat json --units b -o lv_name,seg_start_pe,seg_size_pe,stripe_size,seg_pe_ranges,vg_extent_size "$VG" >"$T/lvs.json" ||
	fail "lvs failed"
lvm_ pvs --reportformat json --units b -o pv_name,pe_start >"$T/pvs.json" || fail "pvs failed"
python3 "$HERE/lvm_place.py" layout "$T/lvs.json" "$T/pvs.json" "$L1=$((1 * MiB)),$L2=$((37 * MiB))" >"$T/lay.json"
note "lvm says: $(cat "$T/lay.json")"
losetup -d "$L1" && losetup -d "$L2"
CLEANUP=()

# The filesystems, written into the LVs' extents.
mkdir -p "$T/t1" "$T/t2"
make_tree "$T/t1" lvm-root $((2 * MiB))
make_tree "$T/t2" lvm-data $((3 * MiB))
mkfs.ext4 -q -F -L lvroot -E nodiscard -d "$T/t1" "$T/root.fs" 12M || fail "mkfs.ext4 failed"
mkfs.ext4 -q -F -L lvdata -E nodiscard -d "$T/t2" "$T/data.fs" 16M || fail "mkfs.ext4 failed"
truncate -s 4M "$T/swap.fs"
mkswap -q "$T/swap.fs" >/dev/null || fail "mkswap failed"
for lv in root data; do
	python3 "$HERE/lvm_place.py" put "$T/lay.json" "$D" $lv "$T/$lv.fs"
done
# only the swap header: its pages stay old random data
head -c 4096 "$T/swap.fs" >"$T/swaphead"
python3 "$HERE/lvm_place.py" put "$T/lay.json" "$D" swap "$T/swaphead"
SRC_SHA=$(sha "$D")

R=$T/repo
init_repo "$R"
backup_json "$R" "$D" --name lvm
S1=$SNAP
READ=$(json_get "$BACKUP_JSON" 'j["bytes_read"]')
expect_ok dv --repo "$R" --json show "$S1"
SHOW=$STDOUT
LAYOUT=$(json_get "$SHOW" '[o for o in (lambda f: f(f, j))(lambda f, x: ([x] if isinstance(x, dict) else []) + sum((f(f, v) for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else [])), [])) if "boot_mode" in o and "partitions" in o][0]')

# The probed segments are lvm's.
python3 - "$LAYOUT" "$T/lay.json" "$VG" <<'PY' || fail "the probed LVs differ from lvs --segments: $LAYOUT"
import json, sys
lay, want, vg = json.loads(sys.argv[1]), json.load(open(sys.argv[2])), sys.argv[3]
vgs = lay["volume_groups"]
assert len(vgs) == 1 and vgs[0]["name"] == vg, vgs
v = vgs[0]
assert v["extent_size"] == want["extent_size"], v["extent_size"]
got = {}
for lv in v["lvs"]:
    got[lv["name"]] = sorted([s["start_extent"], s["extent_count"], s["stripe_size"] if s["stripe_count"] > 1 else 0,
                              [x["offset"] for x in s["stripes"]]] for s in lv["segments"])
exp = {k: [[a, b, c if len(d) > 1 else 0, d] for a, b, c, d in segs] for k, segs in want["lvs"].items()}
assert got == exp, (got, exp)
by = {lv["name"]: lv for lv in v["lvs"]}
for n in ("root", "data"):
    assert by[n]["fs"]["type"] == "ext4" and by[n]["imaged"] == "used-blocks", by[n]
assert by["swap"]["fs"]["type"] == "swap" and by["swap"]["imaged"] == "header-only", by["swap"]
for p in lay["partitions"]:
    assert p["lvm"]["vg"] == vg and p["imaged"] == "lvm", p
PY

# show draws PV -> VG -> LV -> filesystem.
expect_ok dv --repo "$R" show "$S1"
note "$STDOUT"
assert_contains "$STDOUT" "volume group $VG"
assert_contains "$STDOUT" "LV root  12.00 MiB  2 segments"
assert_contains "$STDOUT" "extents 0+16 striped on pv0:26, pv1:0"
assert_contains "$STDOUT" "label lvdata  uuid"
assert_contains "$STDOUT" "swap  used -  imaged header-only"
assert_contains "$STDOUT" "label -  uuid $(blkid -o value -s UUID "$T/swap.fs")"
assert_contains "$STDOUT" "Linux LVM"
assert_not_contains "$STDOUT" "e6d6d379" "show (a type GUID instead of its name)"
long=$(printf '%s\n' "$STDOUT" | python3 -c 'import sys; print([l for l in sys.stdin.read().split("\n") if len(l) > 100])')
[ "$long" = "[]" ] || fail "show has lines over 100 columns: $long"

# Reads: the used blocks of both ext4s, the PV headers (1 MiB each), the
# GPT area (first MiB, last 7 MiB past the partitions), the swap header.
used=0
for lv in root data; do
	u=$(dumpe2fs -h "$T/$lv.fs" 2>/dev/null | awk -F: '/^Block count/{b=$2} /^Free blocks/{f=$2} /^Block size/{s=$2} END{print (b-f)*s}')
	used=$((used + u))
done
need=$((used + 2 * MiB + 1 * MiB + 7 * MiB + 4096))
note "backup read $READ bytes; used $need"
[ "$READ" -le $((need * 11 / 10)) ] || fail "the backup read $READ bytes, more than the used $need + 10%"
[ "$READ" -ge "$used" ] || fail "the backup read $READ bytes, less than the ext4 used blocks ($used)"

# Restore: each LV's ext4 checks and holds the same files.
expect_ok dv --repo "$R" restore "$S1" "$T/out.img"
for lv in root data; do
	python3 "$HERE/lvm_place.py" get "$T/lay.json" "$T/out.img" $lv "$T/$lv.out" "$(stat -c %s "$T/$lv.fs")"
	e2fsck -fn "$T/$lv.out" >"$T/fsck.log" 2>&1 || fail "e2fsck -fn failed on the restored LV $lv: $(cat "$T/fsck.log")"
	mkdir -p "$T/r-$lv"
	debugfs -R "rdump / $T/r-$lv" "$T/$lv.out" >/dev/null 2>&1 || fail "debugfs rdump failed on LV $lv"
	t=$([ $lv = root ] && echo t1 || echo t2)
	diff -r "$T/$t" "$T/r-$lv" -x lost+found >/dev/null || fail "the restored LV $lv holds other files"
done
# the swap header survived
python3 "$HERE/lvm_place.py" get "$T/lay.json" "$T/out.img" swap "$T/swap.out" 4096
cmp -s "$T/swap.out" "$T/swaphead" || fail "the swap header of LV swap was not restored"

# --all-blocks is bit-exact.
backup_json "$R" "$D" --name all --all-blocks
expect_ok dv --repo "$R" restore "$SNAP" "$T/all.img"
[ "$(sha "$T/all.img")" = "$SRC_SHA" ] || fail "the --all-blocks restore differs from the source"

# restore --volume VG/LV (issue 14): each LV, linear in two segments or
# striped, equals the LV bytes gathered from the original per lvs --segments;
# to stdout and to a file.
for lv in root:12 data:16 swap:4; do
	n=${lv%%:*}
	python3 "$HERE/lvm_place.py" get "$T/lay.json" "$D" "$n" "$T/$n.want" $((${lv#*:} * MiB))
	GOT=$(dv --repo "$R" restore "$SNAP" --volume "$VG/$n" - 2>"$T/err" | sha256sum | cut -d' ' -f1)
	[ "$GOT" = "$(sha "$T/$n.want")" ] || fail "restore --volume $VG/$n - differs from the LV's bytes: $(cat "$T/err")"
done
expect_ok dv --repo "$R" restore "$SNAP" --volume "$VG/data" "$T/data.vol"
assert_same_file "$T/data.want" "$T/data.vol"
