#!/bin/bash
# t_probe_restore.sh - used-blocks imaging end to end: a generated GPT disk
# (BIOS boot, vfat ESP with files, ext4 with files and dirty free space,
# swap, unknown bytes) is backed up, its probed layout is checked against
# sfdisk/blkid in `show --json`, and the restore is checked: e2fsck -fn and
# fsck.fat -n pass, every file is identical (debugfs rdump, mcopy), every
# region that is not ext4 or FAT free space or swap payload is
# byte-identical, the swap signature survives. Then
# --all-blocks restores bit-exact, and a journal needing recovery is refused
# unless --allow-mounted.
#
# Needs the probe wired into `backup` (--all-blocks, --allow-mounted);
# until then it says SKIP and passes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_disk.sh"

if ! "$DISKVAULT" backup --help 2>&1 | qgrep -- '--all-blocks'; then
	echo "SKIP: backup has no --all-blocks yet (dv_disk_probe not wired into backup)"
	exit 0
fi

R=$T/repo
D=$T/disk.img
dv_mk_gpt "$D"
dv_fill_fat "$D@@$((2 * MiB))" "$T/esp"   # files in the ESP, free clusters between them
SIZE=$(stat -c %s "$D")
SRC_SHA=$(sha "$D")
init_repo "$R"

# ---- used-blocks backup --------------------------------------------------
backup_json "$R" "$D" --name used
S1=$SNAP
READ=$(json_get "$BACKUP_JSON" 'j["bytes_read"]')
note "used-blocks backup read $READ of $SIZE bytes"
[ "$READ" -lt $((SIZE * 6 / 10)) ] || fail "used-blocks backup read $READ of $SIZE bytes: free space was read"

# The layout in the snapshot, wherever the manifest keeps it.
expect_ok dv --repo "$R" --json show "$S1"
LAYOUT=$(json_get "$STDOUT" '[o for o in (lambda f: f(f, j))(lambda f, x: ([x] if isinstance(x, dict) else []) + sum((f(f, v) for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else [])), [])) if "boot_mode" in o and "partitions" in o][0]')
[ "$(json_get "$LAYOUT" 'j["table"]')" = gpt ] || fail "layout table: $LAYOUT"
[ "$(json_get "$LAYOUT" 'j["boot_mode"]')" = uefi+bios ] || fail "layout boot_mode: $LAYOUT"
[ "$(json_get "$LAYOUT" 'j["mode"]')" = used-blocks ] || fail "layout mode: $LAYOUT"
PTUUID=$(blkid -p -o value -s PTUUID "$D")
[ "$(json_get "$LAYOUT" 'j["id"]')" = "$PTUUID" ] || fail "layout id is not $PTUUID: $LAYOUT"
SF=$(sfdisk --json "$D")
for i in 0 1 2 3 4; do
	for k in start size; do
		want=$(($(json_get "$SF" "j['partitiontable']['partitions'][$i]['$k']") * 512))
		got=$(json_get "$LAYOUT" "j['partitions'][$i]['$k']")
		[ "$got" = "$want" ] || fail "partition $((i + 1)) $k: $got, sfdisk says $want"
	done
	want=$(json_get "$SF" "j['partitiontable']['partitions'][$i]['uuid'].lower()")
	[ "$(json_get "$LAYOUT" "j['partitions'][$i]['uuid'].lower()")" = "$want" ] || fail "partition $((i + 1)) uuid"
done
for n in 2 3 4; do
	off=$(json_get "$LAYOUT" "j['partitions'][$((n - 1))]['start']")
	eval "$(blkid -p -o export -O "$off" "$D" | grep -E '^(TYPE|UUID)=')"
	[ "$(json_get "$LAYOUT" "j['partitions'][$((n - 1))]['fs']['type']")" = "$TYPE" ] || fail "partition $n fs type"
	[ "$(json_get "$LAYOUT" "j['partitions'][$((n - 1))]['fs']['uuid']")" = "$UUID" ] || fail "partition $n fs uuid"
done
[ "$(json_get "$LAYOUT" 'j["partitions"][2]["imaged"]')" = used-blocks ] || fail "ext4 not imaged used-blocks"
[ "$(json_get "$LAYOUT" 'j["partitions"][3]["imaged"]')" = header-only ] || fail "swap not imaged header-only"

# ---- restore of the used-blocks snapshot ---------------------------------
O=$T/restored.img
expect_ok dv --repo "$R" restore "$S1" "$O"
[ "$(stat -c %s "$O")" -eq "$SIZE" ] || fail "restored image has the wrong size"
EXT="?offset=$DV_EXT_OFF"
e2fsck -fn "$O$EXT" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; fail "e2fsck -fn of the restored ext4 failed"; }
mkdir "$T/a" "$T/b"
debugfs -R "rdump / $T/a" "$D$EXT" >/dev/null 2>&1
debugfs -R "rdump / $T/b" "$O$EXT" >/dev/null 2>&1
[ -s "$T/a/usr/bin/big" ] || fail "debugfs rdump found no files in the source"
diff -r "$T/a" "$T/b" >/dev/null || fail "files in the restored ext4 differ from the source"
# everything outside ext4 free space and swap payload is byte-identical
cmp -n $((2 * MiB)) "$D" "$O" || fail "first 2 MiB (tables, BIOS boot) differ"
# the ESP was imaged used-clusters: it checks clean and holds the same files
dd if="$O" of="$T/esp.img" bs=1M skip=2 count=32 status=none
fsck.fat -n "$T/esp.img" >"$T/fsck.fat" 2>&1 || { cat "$T/fsck.fat" >&2; fail "fsck.fat -n of the restored ESP failed"; }
dv_fat_check "$T/esp.img" "$T/esp" || fail "files in the restored ESP differ from the source"
[ "$(json_get "$LAYOUT" 'j["partitions"][1]["imaged"]')" = used-blocks ] || fail "ESP not imaged used-blocks"
USED=$(json_get "$LAYOUT" 'j["partitions"][1]["fs"]["used_bytes"]')
dd if="$D" of="$T/esp.src" bs=1M skip=2 count=32 status=none
read -r ds cl nu _ <<<"$(dv_fat_facts "$T/esp.src")"
[ "$USED" = $((ds + nu * cl)) ] || fail "ESP used_bytes $USED, fsck.fat says $((ds + nu * cl))"
cmp -n 4096 -i $((130 * MiB)):$((130 * MiB)) "$D" "$O" || fail "swap header differs"
cmp -i $((162 * MiB)):$((162 * MiB)) "$D" "$O" || fail "unknown partition or tail differ"
[ "$(blkid -p -o value -s TYPE -O $((130 * MiB)) "$O")" = swap ] || fail "restored swap has no signature"

# ---- all-blocks: bit-exact -------------------------------------------------
backup_json "$R" "$D" --all-blocks --name all
[ "$(json_get "$BACKUP_JSON" 'j["bytes_read"] + j["bytes_sparse"]')" -eq "$SIZE" ] || fail "--all-blocks did not read every byte"
expect_ok dv --repo "$R" restore "$SNAP" "$T/all.img"
[ "$(sha "$T/all.img")" = "$SRC_SHA" ] || fail "--all-blocks restore is not bit-exact"

# ---- a journal that needs recovery -----------------------------------------
debugfs -w -R 'feature needs_recovery' "$D$EXT" >/dev/null 2>&1
rc=0
dv --repo "$R" backup "$D" >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "a journal needing recovery was imaged without --allow-mounted"
grep -q "needs recovery" "$T/err" || { cat "$T/err" >&2; fail "the refusal does not say why"; }
backup_json "$R" "$D" --allow-mounted --name dirty
expect_ok dv --repo "$R" --json show "$SNAP"
assert_contains "$STDOUT" "needs recovery" "show of an --allow-mounted snapshot (warning)"
