#!/bin/bash
# t_core_roundtrip.sh - init, backup (--sha256), list, show, restore bit-exact
# and sparse, e2fsck of the restored filesystem, verify, check, a second
# backup that stores nothing new, and packs readable with tar + zstd alone.
. "$(dirname "$0")/lib.sh"

R=$T/repo
make_disk "$T/disk.img" 96 roundtrip
SRC_SHA=$(sha "$T/disk.img")
SIZE=$(stat -c %s "$T/disk.img")

init_repo "$R"
[ -f "$R/config" ] || fail "init made no $R/config"
[ "$(json_get "$(cat "$R/config")" 'j["version"]')" = 1 ] || fail "config has no \"version\": 1"

backup_json "$R" "$T/disk.img" --sha256 --name rt --tag first --all-blocks
S1=$SNAP
STORED1=$(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]')
[ "$(json_get "$BACKUP_JSON" 'j["bytes_read"] + j["bytes_sparse"]')" -eq "$SIZE" ] || fail "bytes_read != disk size: $BACKUP_JSON"
[ "$STORED1" -gt 0 ] || fail "first backup stored nothing: $BACKUP_JSON"
[ "$(json_get "$BACKUP_JSON" 'j["bytes_zero"]')" -gt 0 ] ||
	fail "the zero tail of the disk was not seen as zero: $BACKUP_JSON"
note "first backup: $BACKUP_JSON"

# list: the id (8 hex digits) in the table, the whole id in --json.
expect_ok dv --repo "$R" list
assert_contains "$STDOUT" "${S1:0:8}" "list"
assert_contains "$STDOUT" "rt" "list (snapshot name)"
expect_ok dv --repo "$R" --json list
assert_json_ok "$STDOUT"
[ "$(json_get "$STDOUT" '[s["id"] for s in j["snapshots"]]')" = "[\"$S1\"]" ] ||
	fail "list --json does not list exactly $S1: $STDOUT"
[ "$(json_get "$STDOUT" 'j["snapshots"][0]["size"]')" -eq "$SIZE" ] || fail "list --json size is wrong: $STDOUT"

# show: human form names the disk; --json records the plain SHA-256.
expect_ok dv --repo "$R" show "${S1:0:6}"
assert_contains "$STDOUT" "$S1" "show"
assert_contains "$STDOUT" "$SRC_SHA" "show (sha256 line)"
expect_ok dv --repo "$R" --json show latest
assert_json_ok "$STDOUT"
[ "$(json_get "$STDOUT" 'j["snapshot"]["disks"][0]["sha256"]')" = "$SRC_SHA" ] ||
	fail "show --json sha256 differs from sha256sum of the source ($SRC_SHA): $STDOUT"
[ "$(json_get "$STDOUT" 'j["snapshot"]["disks"][0]["size"]')" -eq "$SIZE" ] || fail "show --json size is wrong"

# restore into a new file: bit-exact and sparse.
expect_ok dv --repo "$R" restore "$S1" "$T/restored.img"
[ "$(stat -c %s "$T/restored.img")" -eq "$SIZE" ] || fail "restored image has the wrong size"
[ "$(sha "$T/restored.img")" = "$SRC_SHA" ] || fail "restored image differs from the source"
ALLOC=$(($(stat -c %b "$T/restored.img") * $(stat -c %B "$T/restored.img")))
note "restored: $SIZE bytes apparent, $ALLOC allocated"
[ "$ALLOC" -lt $((SIZE - 8 * MiB)) ] || fail "restored image is not sparse: $ALLOC of $SIZE bytes allocated"

# The restored ext4 passes a forced read-only fsck.
extract_ext4 "$T/restored.img" "$T/part.img"
e2fsck -fn "$T/part.img" >"$T/fsck.log" 2>&1 || { cat "$T/fsck.log" >&2; fail "e2fsck -fn of the restored ext4 failed"; }
rm -f "$T/part.img" "$T/restored.img"

expect_ok dv --repo "$R" verify "$S1"
expect_ok dv --repo "$R" check
expect_ok dv --repo "$R" --json check
assert_json_ok "$STDOUT"
[ "$(json_get "$STDOUT" 'j["errors"]')" -eq 0 ] || fail "check --json reports errors: $STDOUT"

# Same image again: nothing (well under 1% of the disk) new.
backup_json "$R" "$T/disk.img" --all-blocks
S2=$SNAP
STORED2=$(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]')
note "second backup of the same disk: $STORED2 new bytes stored"
[ "$STORED2" -lt $((SIZE / 100)) ] || fail "second backup of an unchanged disk stored $STORED2 bytes"
[ "$S2" != "$S1" ] || fail "second backup reused the first snapshot id"
restore_check "$R" latest "$T/disk.img"

# Packs are plain tar files; a member decompresses with zstd to data whose
# sha256 is the member's name.
PACKS=$(pack_files "$R")
[ -n "$PACKS" ] || fail "no pack files under $R/packs"
P=$(echo "$PACKS" | head -n1)
tar tf "$P" >"$T/members" || fail "tar cannot list pack $P"
M=$(grep '\.zst$' "$T/members" | sed -n 2p)
[ -n "$M" ] || fail "pack $P has no .zst members: $(head "$T/members")"
mkdir "$T/x"
tar xf "$P" -C "$T/x" "$M" || fail "tar cannot extract $M from $P"
zstd -q -d -c "$T/x/$M" >"$T/x/chunk" || fail "zstd cannot decompress $M from $P"
[ "$(sha "$T/x/chunk")" = "${M%.zst}" ] || fail "member $M of $P decompresses to sha256 $(sha "$T/x/chunk")"
# Every member of every pack: names are sha256 of the decompressed data.
for P in $PACKS; do
	rm -rf "$T/x" && mkdir "$T/x"
	tar xf "$P" -C "$T/x" || fail "tar cannot extract $P"
	for f in "$T"/x/*.zst; do
		n=$(basename "$f" .zst)
		[ "$(zstd -q -d -c "$f" | sha256sum | cut -d' ' -f1)" = "$n" ] || fail "member $n.zst of $P is not its name"
	done
done

# ---- the default mode: only the blocks ext4 uses ----------------------------
# Free ext4 blocks are not read and restore as zeros; everything else (the
# GPT, the ESP, every file) is bit-exact, and --sha256 records the image
# restore writes.
R2=$T/repo-used
init_repo "$R2"
backup_json "$R2" "$T/disk.img" --sha256
U=$SNAP
[ "$(json_get "$BACKUP_JSON" 'j["bytes_unused"]')" -gt 0 ] ||
	fail "default backup skipped no free ext4 blocks: $BACKUP_JSON"
[ "$(json_get "$BACKUP_JSON" 'j["bytes_read"]')" -lt "$SIZE" ] || fail "default backup read the whole disk"
[ "$(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]')" -lt "$STORED1" ] ||
	fail "default backup stored no less than the all-blocks one ($STORED1): $BACKUP_JSON"
expect_ok dv --repo "$R2" --json show "$U"
[ "$(json_get "$STDOUT" 'j["snapshot"]["mode"]')" = used-blocks ] || fail "default snapshot mode is not used-blocks: $STDOUT"
RECORDED=$(json_get "$STDOUT" 'j["snapshot"]["disks"][0]["sha256"]')
expect_ok dv --repo "$R2" restore "$U" "$T/used.img"
[ "$(stat -c %s "$T/used.img")" -eq "$SIZE" ] || fail "used-blocks restore has the wrong size"
[ "$(sha "$T/used.img")" = "$RECORDED" ] || fail "used-blocks restore differs from the --sha256 the snapshot recorded"
# the GPT is bit-exact; the ESP (vfat, imaged used-clusters) checks clean and lists the same
cmp -n "$MiB" "$T/disk.img" "$T/used.img" || fail "GPT differs after a used-blocks restore"
if command -v fsck.fat >/dev/null && command -v mdir >/dev/null; then
	for x in disk used; do
		dd if="$T/$x.img" of="$T/esp.$x" bs=1M skip=1 count=8 status=none
		fsck.fat -n "$T/esp.$x" >/dev/null 2>&1 || fail "fsck.fat -n of the ESP of $x.img failed"
		MTOOLS_SKIP_CHECK=1 mdir -i "$T/esp.$x" -/ -a ::/ >"$T/esp.$x.ls" 2>&1 || true
	done
	cmp -s "$T/esp.disk.ls" "$T/esp.used.ls" || fail "the ESP lists differently after a used-blocks restore"
else
	cmp -n "$EXT_OFF" "$T/disk.img" "$T/used.img" || fail "GPT or ESP differ after a used-blocks restore"
fi
extract_ext4 "$T/used.img" "$T/part.img"
e2fsck -fn "$T/part.img" >"$T/fsck.log" 2>&1 || { cat "$T/fsck.log" >&2; fail "e2fsck -fn after a used-blocks restore failed"; }
extract_ext4 "$T/disk.img" "$T/orig.img"
for f in /var/lib/blob.bin /home/user/photo.raw /usr/share/doc/notes.txt /etc/conf7 /var/lib/mixed.bin; do
	debugfs -R "dump $f $T/f.orig" "$T/orig.img" >/dev/null 2>&1
	debugfs -R "dump $f $T/f.used" "$T/part.img" >/dev/null 2>&1
	[ -s "$T/f.orig" ] || fail "test bug: cannot dump $f"
	cmp -s "$T/f.orig" "$T/f.used" || fail "file $f differs after a used-blocks restore"
	rm -f "$T/f.orig" "$T/f.used"
done
expect_ok dv --repo "$R2" verify "$U"
expect_ok dv --repo "$R2" check
