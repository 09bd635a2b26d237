#!/bin/bash
# t_s3_roundtrip.sh - every core command on s3://bucket/prefix against a real
# S3 implementation on loopback: init, backup, list, show, restore
# (bit-exact), verify, check, a second backup that stores nothing new; the
# objects read back with the official AWS CLI (a pack's SHA-256 is its name);
# a local repository copied to S3 with `aws s3 cp --recursive` is usable there.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up

R=s3://$BUCKET/vault/one
make_disk "$T/disk.img" 80 s3rt
SIZE=$(stat -c %s "$T/disk.img")

init_repo "$R"
awscli s3api head-object --bucket "$BUCKET" --key vault/one/config >/dev/null || fail "init wrote no config object"
backup_json "$R" "$T/disk.img" --all-blocks --name s3rt
S1=$SNAP
[ "$(json_get "$BACKUP_JSON" 'j["bytes_read"] + j["bytes_sparse"]')" -eq "$SIZE" ] || fail "bytes_read != disk size: $BACKUP_JSON"
note "backup to S3: $BACKUP_JSON"
note "S3 counters: $(tail -1 "$DISKVAULT_S3_STATS_FILE")"

expect_ok dv --repo "$R" list
assert_contains "$STDOUT" "${S1:0:8}" "list"
expect_ok dv --repo "$R" --json show latest
assert_json_ok "$STDOUT"
restore_check "$R" latest "$T/disk.img"
# Restore reads ranges of packs (with read-ahead): at most ~1.1x the stored bytes.
PACK_BYTES=$(awscli s3api list-objects-v2 --bucket "$BUCKET" --prefix vault/one/packs/ --query 'sum(Contents[].Size)' --output text)
GOT=$(last_stats 'j["bytes_received"]')
note "restore downloaded $GOT bytes for $PACK_BYTES bytes of packs in $(last_stats 'j["requests"]') requests"
[ "$GOT" -le $((PACK_BYTES * 11 / 10 + 1048576)) ] || fail "restore downloaded $GOT bytes, packs hold $PACK_BYTES"
expect_ok dv --repo "$R" verify latest
expect_ok dv --repo "$R" check

# Nothing new the second time.
backup_json "$R" "$T/disk.img" --all-blocks
[ "$(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]')" -eq 0 ] || fail "second backup stored data: $BACKUP_JSON"
expect_ok dv --repo "$R" --json list
[ "$(json_get "$STDOUT" 'len(j["snapshots"])')" -eq 2 ] || fail "expected 2 snapshots: $STDOUT"

# The official client sees what diskvault wrote: packs are byte-identical to
# what was hashed (their name is the SHA-256 of their bytes) and uploads left
# nothing unfinished behind.
KEYS=$(awscli s3api list-objects-v2 --bucket "$BUCKET" --prefix vault/one/packs/ --query 'Contents[].Key' --output text)
[ -n "$KEYS" ] && [ "$KEYS" != None ] || fail "no packs under vault/one/packs/"
n=0
for k in $KEYS; do
	awscli s3api get-object --bucket "$BUCKET" --key "$k" "$T/pack.bin" >/dev/null || fail "get-object $k"
	[ "$(sha "$T/pack.bin")" = "$(basename "$k")" ] || fail "pack $k: content does not hash to its name"
	n=$((n + 1))
done
note "$n packs checked with aws s3api get-object"
UP=$(awscli s3api list-multipart-uploads --bucket "$BUCKET" --query 'Uploads[].Key' --output text)
[ -z "$UP" ] || [ "$UP" = None ] || fail "unfinished multipart uploads left: $UP"
[ -z "$(ls -A "$DISKVAULT_STATE_DIR" 2>/dev/null)" ] || fail "upload state files left: $(ls "$DISKVAULT_STATE_DIR")"
[ -z "$(ls -A "$DISKVAULT_CACHE_DIR/spool" 2>/dev/null)" ] || fail "spool files left: $(ls "$DISKVAULT_CACHE_DIR/spool")"

# A local repository copied to S3 as is works there (same layout).
L=$T/local
init_repo "$L"
backup_json "$L" "$T/disk.img" --all-blocks --name local
rm -rf "$L/tmp"
awscli s3 cp --recursive --quiet "$L" "s3://$BUCKET/copied" || fail "aws s3 cp of the local repository failed"
expect_ok dv --repo "s3://$BUCKET/copied" list
assert_contains "$STDOUT" "${SNAP:0:8}" "list of the copied repository"
restore_check "s3://$BUCKET/copied" latest "$T/disk.img"
expect_ok dv --repo "s3://$BUCKET/copied" check

# --limit-upload (DISKVAULT_S3_LIMIT_UPLOAD) holds the rate over all connections.
seeded_bytes limit $((12 * MiB)) >"$T/limited"
START=$(date +%s.%N)
DISKVAULT_S3_LIMIT_UPLOAD=4M expect_ok "$DV_BUILD_DIR/tests/test_store_s3" put-file "s3://$BUCKET/limit" obj "$T/limited"
ELAPSED=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$START" "$(date +%s.%N)")
note "12 MiB at a 4 MiB/s limit took $ELAPSED s"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= 2.5 else 1)" "$ELAPSED" || fail "upload limit not applied ($ELAPSED s)"
