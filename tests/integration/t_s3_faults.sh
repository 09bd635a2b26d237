#!/bin/bash
# t_s3_faults.sh - backup and restore through a fault-injecting proxy
# (tests/servers/s3-fault-proxy.py): 503 SlowDown for a stretch, a connection
# reset in the middle of a part, a stalled response, a part upload that
# cannot succeed (403), and the S3 server killed (SIGKILL) and restarted
# during a backup. Every run that can succeed does so within its retry
# bounds and the restored disk is bit-exact; the 403 fails the backup.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up private   # the server is killed below: never the shared one

make_random_disk "$T/disk.img" 48 faults
R=s3://$BUCKET/faults
init_repo "$R"
export DISKVAULT_S3_PART_SIZE=5M DISKVAULT_S3_MULTIPART_THRESHOLD=5M

# SlowDown for requests 2..6 and a reset of the 3rd part upload.
proxy_up --fault slowdown:*:2:5 --fault reset:PUT:3
rm -f "$DISKVAULT_S3_STATS_FILE"
AWS_ENDPOINT_URL=$PROXY_URL backup_json "$R" "$T/disk.img" --all-blocks -vv
proxy_down
# -vv shows each retry as a debug line, and no secret in any of them.
assert_contains "$STDERR" "diskvault: debug: retrying in" "-vv output"
assert_contains "$STDERR" "SlowDown" "-vv output"
assert_not_contains "$STDERR" "$AWS_SECRET_ACCESS_KEY" "-vv output"
note "backup through faults: $(tail -1 "$DISKVAULT_S3_STATS_FILE")"
[ "$(grep -c ' 503 ' "$PROXY_LOG")" -eq 5 ] || fail "expected 5 SlowDown answers: $(cat "$PROXY_LOG")"
grep -q ' reset ' "$PROXY_LOG" || fail "no connection was reset: $(cat "$PROXY_LOG")"
[ "$(last_stats 'j["retries"]')" -ge 6 ] || fail "expected >= 6 retries: $(cat "$DISKVAULT_S3_STATS_FILE")"

# A response that stalls longer than the stall timeout is abandoned and retried.
proxy_up --fault stall:GET:6:30
START=$(date +%s)
AWS_ENDPOINT_URL=$PROXY_URL DISKVAULT_S3_STALL_SECONDS=2 restore_check "$R" latest "$T/disk.img"
proxy_down
grep -q ' stall ' "$PROXY_LOG" || fail "nothing stalled: $(cat "$PROXY_LOG")"
[ $(($(date +%s) - START)) -lt 25 ] || fail "the stalled request was not abandoned after the stall timeout"

# An upload that cannot succeed (403 on a part, uploaded in the background)
# fails the backup: exit 6, no new snapshot, the error names the pack.
make_random_disk "$T/disk3.img" 40 faults3
proxy_up --fault deny:PUT:2:partNumber=
expect_exit 6 env AWS_ENDPOINT_URL="$PROXY_URL" "$DISKVAULT" --progress=never --repo "$R" backup --all-blocks \
	"$T/disk3.img" --name denied
proxy_down
assert_contains "$STDERR" "AccessDenied" "denied-upload message"
assert_contains "$STDERR" "packs/" "denied-upload message"
expect_ok dv --repo "$R" list
assert_not_contains "$STDOUT" "denied" "list after a failed backup"

# The whole S3 server dies (SIGKILL) mid-backup and comes back with the
# parts it had stored.
make_random_disk "$T/disk2.img" 64 faults2
proxy_up --rate $((8 * MiB))
AWS_ENDPOINT_URL=$PROXY_URL dv --repo "$R" --json backup --all-blocks "$T/disk2.img" >"$T/b2.json" 2>"$T/b2.err" &
BPID=$!
for _ in $(seq 1 400); do
	grep -q "PUT .*partNumber=2" "$PROXY_LOG" && break
	sleep 0.05
done
for f in "$S3_DIR"/run/*.pid; do kill -9 "$(cat "$f")"; done   # the whole server
sleep 2
"$S3_SERVERS/swift-s3-start.sh" "$S3_DIR" "$S3_PORT" >/dev/null || fail "swift did not restart"
rc=0
wait $BPID || rc=$?
proxy_down
[ "$rc" -eq 0 ] || fail "backup across a server restart failed ($rc): $(cat "$T/b2.err")"
grep -Eq ' (502|upstream-error) ' "$PROXY_LOG" || note "the restart fell between requests (no failed request seen)"
restore_check "$R" latest "$T/disk2.img"
expect_ok dv --repo "$R" check
