#!/bin/bash
# t_stream_s3.sh - restore SNAPSHOT - from an S3 repository (loopback
# server of lib_s3.sh): the stream equals the source disk, and it downloads
# no more than a file restore does, give or take the window edges.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up

R=s3://$BUCKET/vault/stream
make_disk "$T/disk.img" 64 s3stream
init_repo "$R"
backup_json "$R" "$T/disk.img" --all-blocks --name s3stream
GOT=$(dv --repo "$R" restore latest - 2>"$T/err" | sha256sum | cut -d' ' -f1)
[ "$GOT" = "$(sha "$T/disk.img")" ] || fail "restore - from S3 differs from the source: $(cat "$T/err")"
STREAM_BYTES=$(last_stats 'j["bytes_received"]')
restore_check "$R" latest "$T/disk.img"
FILE_BYTES=$(last_stats 'j["bytes_received"]')
note "stream downloaded $STREAM_BYTES bytes, file restore $FILE_BYTES"
[ "$STREAM_BYTES" -le $((FILE_BYTES * 11 / 10 + 1048576)) ] ||
	fail "the stream downloaded $STREAM_BYTES bytes, a file restore $FILE_BYTES"
