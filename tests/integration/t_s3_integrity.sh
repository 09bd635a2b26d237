#!/bin/bash
# t_s3_integrity.sh - what protects an upload's bytes on the way. Every PUT
# carries the SHA-256 of its body in the signed x-amz-content-sha256, which
# the server checks: a body damaged in transit (the fault proxy inverts one
# byte) is refused and sent again, for a multipart part and for a single PUT,
# and the object is byte-identical (official AWS CLI). Content-MD5 is not
# sent by default (a second full hash of the same bytes) and is sent when
# DISKVAULT_S3_CONTENT_MD5=1 asks for it. Below the multipart threshold
# (default 64 MiB) an object goes up with one PUT.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up
PROG=${DV_BUILD_DIR:?}/tests/test_store_s3
[ -x "$PROG" ] || fail "$PROG is missing (build the test_store_s3 target)"

export DISKVAULT_S3_PART_SIZE=5M DISKVAULT_S3_MULTIPART_THRESHOLD=5M DISKVAULT_S3_CONNECTIONS=2
seeded_bytes integrity $((13 * MiB + 5)) >"$T/big"    # 3 parts, the last one 3 MiB (not merged)
seeded_bytes integrity-small $((300 * 1024)) >"$T/small" # one PUT
LOC=s3://$BUCKET/integrity

# put_check NAME FILE: the object under NAME reads back as FILE.
put_check() {
	awscli s3api get-object --bucket "$BUCKET" --key "integrity/$1" "$T/got" >/dev/null || fail "get-object $1 failed"
	assert_same_file "$2" "$T/got"
}
# part_puts: the proxy log's PUT lines of parts and objects (not the lock).
puts() { awk '$2 == "PUT" && $3 !~ /locks/' "$PROXY_LOG"; }

# The 2nd PUT (a part) arrives with one byte inverted: refused, resent.
proxy_up --fault flip:PUT:2
rm -f "$DISKVAULT_S3_STATS_FILE"
AWS_ENDPOINT_URL=$PROXY_URL expect_ok "$PROG" put-file "$LOC" packs/aa/big "$T/big"
proxy_down
BAD=$(puts | awk '$4 == 400' | grep -c . || true)
[ "$BAD" -eq 1 ] || fail "expected one refused part upload, got $BAD: $(cat "$PROXY_LOG")"
[ "$(puts | awk '$3 ~ /partNumber=/ && $4 == 200' | grep -c .)" -eq 3 ] ||
	fail "expected 3 accepted parts: $(cat "$PROXY_LOG")"
[ "$(last_stats 'j["retries"]')" -ge 1 ] || fail "no retry counted: $(cat "$DISKVAULT_S3_STATS_FILE")"
put_check packs/aa/big "$T/big"
# no Content-MD5 by default
[ "$(puts | awk '$6 == "md5"' | grep -c . || true)" -eq 0 ] || fail "Content-MD5 sent without being asked: $(puts)"
[ "$(puts | awk '$6 == "-"' | grep -c .)" -eq 4 ] || fail "expected 4 PUTs without Content-MD5: $(puts)"

# A single PUT damaged the same way: refused, resent, intact.
proxy_up --fault flip:PUT:1
AWS_ENDPOINT_URL=$PROXY_URL expect_ok "$PROG" put-file "$LOC" packs/bb/small "$T/small"
proxy_down
[ "$(puts | awk '$4 == 400' | grep -c . || true)" -eq 1 ] || fail "expected one refused PUT: $(cat "$PROXY_LOG")"
[ "$(puts | awk '$4 == 200' | grep -c .)" -eq 1 ] || fail "expected one accepted PUT: $(cat "$PROXY_LOG")"
put_check packs/bb/small "$T/small"

# Asked for, every part and object carries Content-MD5 as well.
proxy_up
AWS_ENDPOINT_URL=$PROXY_URL DISKVAULT_S3_CONTENT_MD5=1 expect_ok "$PROG" put-file "$LOC" packs/cc/big "$T/big"
AWS_ENDPOINT_URL=$PROXY_URL DISKVAULT_S3_CONTENT_MD5=1 expect_ok "$PROG" put-file "$LOC" packs/cc/small "$T/small"
proxy_down
[ "$(puts | awk '$4 == 200 && $6 == "md5"' | grep -c .)" -eq 4 ] ||
	fail "expected 3 parts and 1 object with Content-MD5: $(puts)"
put_check packs/cc/big "$T/big"
put_check packs/cc/small "$T/small"
# Default threshold (64 MiB): a 20 MiB object, the size of a pack, goes up
# with one streamed PUT, not as a multipart upload.
seeded_bytes integrity-pack $((20 * MiB + 3)) >"$T/pack"
proxy_up
AWS_ENDPOINT_URL=$PROXY_URL expect_ok env -u DISKVAULT_S3_MULTIPART_THRESHOLD -u DISKVAULT_S3_PART_SIZE \
	"$PROG" put-file "$LOC" packs/dd/pack "$T/pack"
proxy_down
[ "$(puts | grep -c .)" -eq 1 ] || fail "expected one PUT for a 20 MiB object: $(cat "$PROXY_LOG")"
[ "$(puts | awk '$4 == 200 && $5 == '$((20 * MiB + 3))'' | grep -c .)" -eq 1 ] || fail "the PUT did not carry the whole object: $(puts)"
! grep -q "uploads" "$PROXY_LOG" || fail "a multipart upload was started below the threshold: $(cat "$PROXY_LOG")"
put_check packs/dd/pack "$T/pack"
note "damaged bodies refused and resent; Content-MD5 only on request; one PUT below the threshold"
