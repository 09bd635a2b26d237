#!/bin/bash
# t_s3_errors.sh - remote failures are one clear line, the remote exit code
# (6) or "no repository" (10), no retry storm, and no secret in any output:
# wrong secret key, unknown access key, an expired session token, a bucket
# that does not exist, an endpoint nobody listens on (bounded retries), a
# missing object.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up

R=s3://$BUCKET/errs
init_repo "$R"

# Wrong secret: SignatureDoesNotMatch, fails at once (one request, no retry).
rm -f "$DISKVAULT_S3_STATS_FILE"
expect_exit 6 env AWS_SECRET_ACCESS_KEY=WRONG-SECRET-xyzzy "$DISKVAULT" --repo "$R" list
assert_contains "$STDERR" "SignatureDoesNotMatch" "wrong-secret message"
assert_contains "$STDERR" "request id" "wrong-secret message"
assert_not_contains "$STDERR$STDOUT" "xyzzy" "wrong-secret output"
assert_not_contains "$STDERR$STDOUT" "testing" "wrong-secret output"
assert_lines "$STDERR" 1 "wrong-secret stderr"
[ "$(last_stats 'j["requests"]')" -eq 1 ] || fail "wrong secret was retried: $(cat "$DISKVAULT_S3_STATS_FILE")"

# Unknown access key (Swift answers it as SignatureDoesNotMatch too).
expect_exit 6 env AWS_ACCESS_KEY_ID=nobody:none "$DISKVAULT" --repo "$R" list
assert_lines "$STDERR" 1 "unknown-key stderr"

# An expired session token (Swift's s3api ignores X-Amz-Security-Token, so
# the fault proxy answers S3's 400 ExpiredToken for requests carrying it):
# one line naming ExpiredToken, exit 6, exactly one request (static
# credentials cannot renew, so no retry), and the token (S3 echoes it in the
# error document) is not printed.
TOKEN=FQoGZXIvYXdzEXPIRED-session-token-$RANDOM
proxy_up --expired-token "$TOKEN"
rm -f "$DISKVAULT_S3_STATS_FILE"
for cmd in list "backup $T/small.img"; do
	[ -f "$T/small.img" ] || head -c $((2 * MiB)) /dev/urandom >"$T/small.img"
	: >"$PROXY_LOG"
	# shellcheck disable=SC2086
	expect_exit 6 env AWS_SESSION_TOKEN="$TOKEN" AWS_ENDPOINT_URL="$PROXY_URL" "$DISKVAULT" --repo "$R" $cmd
	assert_lines "$STDERR" 1 "expired-token stderr ($cmd)"
	assert_contains "$STDERR" "ExpiredToken" "expired-token message ($cmd)"
	assert_contains "$STDERR" "The provided token has expired" "expired-token message ($cmd)"
	assert_not_contains "$STDERR$STDOUT" "$TOKEN" "expired-token output ($cmd)"
	assert_not_contains "$STDERR$STDOUT" "EXPIRED-session" "expired-token output ($cmd)"
	[ "$(wc -l <"$PROXY_LOG")" -eq 1 ] || fail "expired token ($cmd): $(wc -l <"$PROXY_LOG") requests, expected 1: $(cat "$PROXY_LOG")"
	assert_contains "$(cat "$PROXY_LOG")" " 400 " "proxy log ($cmd)"
	note "expired token ($cmd): $STDERR"
	[ "$(last_stats 'j["requests"]') $(last_stats 'j["retries"]')" = "1 0" ] ||
		fail "expired token ($cmd) was retried: $(tail -1 "$DISKVAULT_S3_STATS_FILE")"
done
# Through the same proxy another token is forwarded (and ignored by Swift).
expect_ok env AWS_SESSION_TOKEN="other-$TOKEN" AWS_ENDPOINT_URL="$PROXY_URL" "$DISKVAULT" --progress=never --repo "$R" list
proxy_down

# No such bucket: "no repository".
expect_exit 10 dv --repo "s3://no-such-bucket-$RANDOM/x" list
assert_contains "$STDERR" "does not exist" "missing-bucket message"

# Nobody listening: retried with backoff, bounded, then exit 6.
PORT=$(free_port_base)
rm -f "$DISKVAULT_S3_STATS_FILE"
START=$(date +%s)
expect_exit 6 env AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" DISKVAULT_S3_MAX_ATTEMPTS=4 "$DISKVAULT" --repo "$R" list
assert_contains "$STDERR" "giving up after 4 attempts" "unreachable-endpoint message"
[ $(($(date +%s) - START)) -lt 30 ] || fail "retries against a dead endpoint took too long"
[ "$(last_stats 'j["requests"]')" -eq 4 ] || fail "expected 4 attempts: $(cat "$DISKVAULT_S3_STATS_FILE")"

# A snapshot that is not there: the repository's not-found, not a remote error.
rc=0
dv --repo "$R" restore 0123456789abcdef "$T/out.img" 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 6 ] || fail "restore of a missing snapshot exited $rc: $(cat "$T/err")"

# DISKVAULT_S3_ENDPOINT (what a global --endpoint option sets) outranks AWS_ENDPOINT_URL.
expect_ok env AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" DISKVAULT_S3_ENDPOINT="$S3_ENDPOINT" "$DISKVAULT" --repo "$R" list

# A clock two hours off: the first request is refused as RequestTimeTooSkewed,
# diskvault adopts the server's Date and carries on (one retry).
rm -f "$DISKVAULT_S3_STATS_FILE"
DISKVAULT_S3_TEST_CLOCK_SKEW=-7200 expect_ok dv --repo "$R" list
[ "$(last_stats 'j["retries"]')" -eq 1 ] || fail "expected one retry for the skewed clock: $(cat "$DISKVAULT_S3_STATS_FILE")"
