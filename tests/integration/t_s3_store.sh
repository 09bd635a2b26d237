#!/bin/bash
# t_s3_store.sh - the store contract (store.h) on the S3 backend: runs the
# cmocka program test_store_s3 against the loopback S3 endpoint (missing
# objects are not-found, ranges, caps, truncation, odd key characters,
# listing, put_file by PutObject and by multipart).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up
PROG=${DV_BUILD_DIR:?}/tests/test_store_s3
[ -x "$PROG" ] || fail "$PROG is missing (build the test_store_s3 target)"
DV_S3_TEST_REPO=s3://$BUCKET/store expect_ok "$PROG"
assert_not_contains "$STDOUT$STDERR" "SKIPPED" "test_store_s3 output"
assert_contains "$STDOUT$STDERR" "PASSED  ] 2 test(s)" "test_store_s3 output"

# Spool files of killed runs older than a day are swept when a store opens.
mkdir -p "$DISKVAULT_CACHE_DIR/spool"
touch -d '2 days ago' "$DISKVAULT_CACHE_DIR/spool/pack-stale.tmp"
touch "$DISKVAULT_CACHE_DIR/spool/pack-fresh.tmp"
DV_S3_TEST_REPO=s3://$BUCKET/store expect_ok "$PROG"
[ ! -e "$DISKVAULT_CACHE_DIR/spool/pack-stale.tmp" ] || fail "stale spool file was not removed"
[ -e "$DISKVAULT_CACHE_DIR/spool/pack-fresh.tmp" ] || fail "a fresh spool file was removed"
