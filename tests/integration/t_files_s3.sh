#!/bin/bash
# t_files_s3.sh - `ls`, `cat` and `extract` straight from an S3 repository
# (loopback server of lib_s3.sh): the same bytes as the source tree, and
# they download only part of what a whole-disk restore does (ls: the
# metadata it reads; cat: about the file's chunks).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up

R=s3://$BUCKET/vault/files
make_disk "$T/disk.img" 64 s3files
init_repo "$R"
backup_json "$R" "$T/disk.img" --name s3files
expect_ok dv --repo "$R" restore latest "$T/restored.img"
RESTORE_BYTES=$(last_stats 'j["bytes_received"]')

# the source tree, read out of the image with debugfs
mkdir -p "$T/src"
debugfs -R "rdump / $T/src" "$T/disk.img?offset=$EXT_OFF" >/dev/null 2>&1 || fail "debugfs rdump failed"

expect_ok dv --repo "$R" ls latest:/etc
LS_BYTES=$(last_stats 'j["bytes_received"]')
[ "$STDOUT" = "$(cd "$T/src/etc" && printf '%s\n' * | LC_ALL=C sort)" ] || fail "ls /etc from S3 gives: $STDOUT"

dv --repo "$R" cat latest:p2/var/lib/blob.bin >"$T/blob" || fail "cat from S3 failed"
CAT_BYTES=$(last_stats 'j["bytes_received"]')
assert_same_file "$T/src/var/lib/blob.bin" "$T/blob"

expect_ok dv --repo "$R" extract latest:/var latest:/etc --to "$T/x"
assert_contains "$STDOUT" "0 failed"
diff -r "$T/src/var" "$T/x/var" >/dev/null || fail "extract /var from S3 differs from the source"
diff -r "$T/src/etc" "$T/x/etc" >/dev/null || fail "extract /etc from S3 differs from the source"

BLOB=$(stat -c %s "$T/src/var/lib/blob.bin")
note "downloaded: restore $RESTORE_BYTES, ls /etc $LS_BYTES, cat of a $BLOB-byte file $CAT_BYTES"
[ "$LS_BYTES" -lt $((RESTORE_BYTES / 4)) ] || fail "ls /etc downloaded $LS_BYTES bytes, a whole restore $RESTORE_BYTES"
[ "$CAT_BYTES" -lt $((BLOB * 2 + RESTORE_BYTES / 4)) ] || fail "cat of a $BLOB-byte file downloaded $CAT_BYTES bytes"
[ "$CAT_BYTES" -lt "$RESTORE_BYTES" ] || fail "cat downloaded as much as a whole restore"
