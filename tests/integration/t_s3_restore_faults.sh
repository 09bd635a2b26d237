#!/bin/bash
# t_s3_restore_faults.sh - the planned ranged reads of restore and verify
# through a fault-injecting proxy (tests/servers/s3-fault-proxy.py): a range
# whose answer is cut off mid-body (connection reset) is fetched again and
# the restore is bit-exact; a range answered with a complete-looking but
# short body is detected ("truncated", exit 4, naming the pack), and a run
# without the fault restores bit-exact.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up

make_random_disk "$T/disk.img" 12 rfaults
R=s3://$BUCKET/rfaults
init_repo "$R" --pack-size 1
backup_json "$R" "$T/disk.img" --all-blocks

# The 2nd pack read loses its connection half-way through the body.
proxy_up --fault cut:GET:2:/packs/
rm -f "$DISKVAULT_S3_STATS_FILE"
AWS_ENDPOINT_URL=$PROXY_URL restore_check "$R" latest "$T/disk.img" -vv
proxy_down
[ "$(grep -c ' cut ' "$PROXY_LOG")" -eq 1 ] || fail "expected one cut answer: $(cat "$PROXY_LOG")"
[ "$(last_stats 'j["retries"]')" -ge 1 ] || fail "the cut range was not retried: $(cat "$DISKVAULT_S3_STATS_FILE")"
CUT=$(awk '$4 == "cut" {print $3}' "$PROXY_LOG")
[ "$(awk -v p="$CUT" '$3 == p && $4 == 206' "$PROXY_LOG" | wc -l)" -eq 1 ] ||
	fail "the cut range $CUT was not fetched again: $(cat "$PROXY_LOG")"

# The 3rd pack read gets half its body with a matching Content-Length.
for cmd in restore verify; do
	proxy_up --fault short:GET:3:/packs/
	rm -f "$T/out.img"
	if [ $cmd = restore ]; then
		AWS_ENDPOINT_URL=$PROXY_URL expect_exit 4 dv --repo "$R" restore latest "$T/out.img"
	else
		AWS_ENDPOINT_URL=$PROXY_URL expect_exit 4 dv --repo "$R" verify latest
	fi
	proxy_down
	[ "$(grep -c ' short ' "$PROXY_LOG")" -eq 1 ] || fail "$cmd: expected one short answer: $(cat "$PROXY_LOG")"
	SHORT=$(awk '$4 == "short" {print $3}' "$PROXY_LOG")
	PACK=${SHORT##*/packs/}
	PACK=${PACK%%\?*}
	assert_contains "$STDERR" "truncated" "$cmd with a short range"
	assert_contains "$STDERR" "packs/$PACK" "$cmd with a short range"
	assert_contains "$STDERR" "disk offset" "$cmd with a short range"
	note "$cmd: $(tail -1 <<<"$STDERR")"
done

rm -f "$T/out.img"
restore_check "$R" latest "$T/disk.img"
expect_ok dv --repo "$R" verify latest
