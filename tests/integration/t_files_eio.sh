#!/usr/bin/env bash
# t_files_eio.sh - unreadable regions through ls/cat/extract. A backup with
# --skip-bad-sectors of a disk whose reads fail (LD_PRELOAD fault injector,
# as t_mount_eio.sh) over 64 KiB inside one file's data records them as
# unreadable; `cat` of that file fails with exit 15 naming the bytes (never
# silent zeros), `extract` names that file, extracts the others and exits
# 3, and other files still `cat` to their bytes.
source "$(dirname "$0")/lib.sh"
: "${DV_FAULTINJECT:?set DV_FAULTINJECT to the fault injection library}"
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

make_disk "$T/disk.img" 40 files-eio
F=/var/lib/blob.bin
# the file's first physical block (4 KiB blocks) and 64 KiB from 16 KiB into it
blk=$(debugfs -R "bmap $F 4" "$T/disk.img?offset=$EXT_OFF" 2>/dev/null)
[ "$blk" -gt 0 ] 2>/dev/null || fail "debugfs bmap gave '$blk'"
bs=$(debugfs -R stats "$T/disk.img?offset=$EXT_OFF" 2>/dev/null | awk '/^Block size:/ { print $3 }')
bad_off=$((EXT_OFF + blk * bs))
R=$T/repo
init_repo "$R"
expect_exit 3 env LD_PRELOAD="$DV_FAULTINJECT" DV_FAULT_READ_PATH=disk.img DV_FAULT_READ_OFFSET=$bad_off \
	DV_FAULT_READ_LENGTH=65536 "$DISKVAULT" --progress=never --repo "$R" backup "$T/disk.img" --skip-bad-sectors

expect_exit 15 dv --repo "$R" cat "latest:$F"
assert_contains "$STDERR" "$F: reading the data of inode"
assert_contains "$STDERR" "bytes $bad_off-"
assert_contains "$STDERR" "could not be read when it was backed up"
mkdir -p "$T/src"
debugfs -R "dump /etc/motd $T/motd" "$T/disk.img?offset=$EXT_OFF" >/dev/null 2>&1
dv --repo "$R" cat latest:/etc/motd >"$T/motd.got" || fail "cat of a readable file failed"
assert_same_file "$T/motd" "$T/motd.got"
expect_exit 3 dv --repo "$R" extract latest:/var --to "$T/x"
assert_contains "$STDERR" "lib/blob.bin"
assert_contains "$STDOUT" "1 failed"
[ ! -e "$T/x/var/lib/blob.bin" ] || fail "the unreadable file was extracted anyway"
[ -f "$T/x/var/lib/mixed.bin" ] || fail "the other files were not extracted"
[ -z "$(find "$T/x" -name '.dv-extract.*')" ] || fail "a temporary file was left behind"
