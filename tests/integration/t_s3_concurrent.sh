#!/bin/bash
# t_s3_concurrent.sh - two "machines" (separate state and cache dirs) back up
# into the same S3 repository at the same time: both succeed, neither
# overwrites the other's objects, both restore bit-exact, check is clean, and
# a later backup of either disk stores nothing new (dedup against what is
# already there).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up

R=s3://$BUCKET/shared
init_repo "$R"
make_random_disk "$T/a.img" 48 conc-a
make_random_disk "$T/b.img" 48 conc-b
for m in a b; do
	DISKVAULT_STATE_DIR=$T/state-$m DISKVAULT_CACHE_DIR=$T/cache-$m \
		"$DISKVAULT" --progress=never --repo "$R" --json backup --all-blocks --name "host-$m" "$T/$m.img" \
		>"$T/$m.json" 2>"$T/$m.err" &
	eval "PID_$m=\$!"
done
rc=0
wait "$PID_a" || rc=$?
[ "$rc" -eq 0 ] || fail "backup a failed ($rc): $(cat "$T/a.err")"
wait "$PID_b" || rc=$?
[ "$rc" -eq 0 ] || fail "backup b failed ($rc): $(cat "$T/b.err")"

expect_ok dv --repo "$R" --json list
[ "$(json_get "$STDOUT" 'len(j["snapshots"])')" -eq 2 ] || fail "expected 2 snapshots: $STDOUT"
restore_check "$R" "$(json_get "$(cat "$T/a.json")" 'j["snapshot"]')" "$T/a.img"
restore_check "$R" "$(json_get "$(cat "$T/b.json")" 'j["snapshot"]')" "$T/b.img"
expect_ok dv --repo "$R" check

backup_json "$R" "$T/a.img" --all-blocks
[ "$(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]')" -eq 0 ] || fail "backup after the concurrent ones stored data: $BACKUP_JSON"
