#!/bin/bash
# t_s3_resume.sh - a multipart upload killed with SIGKILL resumes: the rerun
# finds the state file (0600), reconciles with ListParts, re-sends at most one
# part per connection that was in flight, completes the same upload id, and
# the object is byte-identical (checked with the official AWS CLI).
# Uses the store directly (test_store_s3 put-file): backup packs embed their
# creation time, so a rerun of backup makes a differently named pack.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up
PROG=${DV_BUILD_DIR:?}/tests/test_store_s3
[ -x "$PROG" ] || fail "$PROG is missing (build the test_store_s3 target)"

CONN=2
export DISKVAULT_S3_PART_SIZE=5M DISKVAULT_S3_MULTIPART_THRESHOLD=5M DISKVAULT_S3_CONNECTIONS=$CONN
seeded_bytes resume $((42 * MiB + 777)) >"$T/obj"   # 8 parts: the 2 MiB remainder joins the last
NPARTS=8
LOC=s3://$BUCKET/resume
NAME=packs/ab/object

# Run 1, slowed to ~6 MiB/s by the proxy, killed once two parts are recorded.
proxy_up --rate $((6 * MiB))
AWS_ENDPOINT_URL=$PROXY_URL "$PROG" put-file "$LOC" "$NAME" "$T/obj" 2>"$T/run1.err" &
PID=$!
STATE=
for _ in $(seq 1 600); do
	STATE=$(ls "$DISKVAULT_STATE_DIR"/s3-upload-*.json 2>/dev/null | head -1 || true)
	if [ -n "$STATE" ] && [ "$(json_get "$(cat "$STATE")" 'len(j["parts"])')" -ge 2 ]; then break; fi
	kill -0 $PID 2>/dev/null || fail "the upload finished or died before it could be killed: $(cat "$T/run1.err")"
	sleep 0.05
done
kill -9 $PID
wait $PID 2>/dev/null || true
proxy_down
[ -n "$STATE" ] || fail "no upload state file appeared in $DISKVAULT_STATE_DIR"
[ "$(stat -c %a "$STATE")" = 600 ] || fail "state file mode is $(stat -c %a "$STATE"), not 600"
UPLOAD_ID=$(json_get "$(cat "$STATE")" 'j["upload_id"]')
DONE1=$(json_get "$(cat "$STATE")" 'len(j["parts"])')
note "killed run 1 with $DONE1 of $NPARTS parts recorded (upload $UPLOAD_ID)"
grep -q "PUT .*uploadId=" "$PROXY_LOG" || fail "run 1 sent no parts: $(cat "$PROXY_LOG")"
# parts the server acknowledged in run 1
OK1=$(awk '$2 == "PUT" && $3 ~ /uploadId=/ && $4 == 200 {print $3}' "$PROXY_LOG" | sed 's/.*partNumber=\([0-9]*\).*/\1/' | sort -n)

# Run 2 through a fresh proxy (no throttle): resumes the same upload.
proxy_up
rm -f "$DISKVAULT_S3_STATS_FILE"
AWS_ENDPOINT_URL=$PROXY_URL expect_ok "$PROG" put-file "$LOC" "$NAME" "$T/obj"
proxy_down
RESUMED=$(last_stats 'j["parts_resumed"]')
SENT=$(last_stats 'j["parts_sent"]')
note "run 2: $RESUMED parts resumed, $SENT sent; proxy log: $(wc -l <"$PROXY_LOG") requests"
[ "$RESUMED" -ge "$DONE1" ] || fail "run 2 resumed $RESUMED parts, run 1 had recorded $DONE1"
[ $((RESUMED + SENT)) -eq $NPARTS ] || fail "resumed + sent = $((RESUMED + SENT)), expected $NPARTS"
grep -q "GET .*uploadId=$UPLOAD_ID" "$PROXY_LOG" || fail "run 2 did not ask ListParts for $UPLOAD_ID"
grep -q "POST .*uploadId=$UPLOAD_ID 200 " "$PROXY_LOG" || fail "run 2 did not complete upload $UPLOAD_ID"
! grep -q "POST .*uploads" "$PROXY_LOG" || fail "run 2 started a new multipart upload"
SENT2=$(awk '$2 == "PUT" && $3 ~ /uploadId=/ {print $3}' "$PROXY_LOG" | sed 's/.*partNumber=\([0-9]*\).*/\1/' | sort -n)
DUP=$(comm -12 <(echo "$OK1") <(echo "$SENT2") | grep -c . || true)
[ "$DUP" -eq 0 ] || fail "run 2 re-sent $DUP parts the server had acknowledged"
RESENT=$(( $(echo "$SENT2" | grep -c .) - (NPARTS - $(echo "$OK1" | grep -c .)) ))
[ "$RESENT" -le "$CONN" ] || fail "run 2 re-sent $RESENT parts, more than the $CONN connections in flight"

# Byte-identical through the official client; a multipart ETag; nothing left.
awscli s3api get-object --bucket "$BUCKET" --key "resume/$NAME" "$T/got" >/dev/null || fail "get-object failed"
assert_same_file "$T/obj" "$T/got"
ETAG=$(awscli s3api head-object --bucket "$BUCKET" --key "resume/$NAME" --query ETag --output text)
assert_contains "$ETAG" "-$NPARTS" "ETag of the completed object"
[ -z "$(ls -A "$DISKVAULT_STATE_DIR")" ] || fail "state file left after completion: $(ls "$DISKVAULT_STATE_DIR")"
UP=$(awscli s3api list-multipart-uploads --bucket "$BUCKET" --query 'Uploads[].UploadId' --output text)
[ -z "$UP" ] || [ "$UP" = None ] || fail "unfinished uploads left: $UP"

# A state file whose upload was aborted behind our back: start over cleanly.
proxy_up --rate $((6 * MiB))
AWS_ENDPOINT_URL=$PROXY_URL "$PROG" put-file "$LOC" packs/cd/other "$T/obj" 2>"$T/run3.err" &
PID=$!
for _ in $(seq 1 600); do
	STATE=$(ls "$DISKVAULT_STATE_DIR"/s3-upload-*.json 2>/dev/null | head -1 || true)
	if [ -n "$STATE" ] && [ "$(json_get "$(cat "$STATE")" 'len(j["parts"])')" -ge 1 ]; then break; fi
	sleep 0.05
done
kill -9 $PID
wait $PID 2>/dev/null || true
proxy_down
awscli s3api abort-multipart-upload --bucket "$BUCKET" --key resume/packs/cd/other \
	--upload-id "$(json_get "$(cat "$STATE")" 'j["upload_id"]')" || fail "abort-multipart-upload failed"
expect_ok "$PROG" put-file "$LOC" packs/cd/other "$T/obj"
awscli s3api get-object --bucket "$BUCKET" --key resume/packs/cd/other "$T/got2" >/dev/null || fail "get-object failed"
assert_same_file "$T/obj" "$T/got2"
