#!/bin/bash
# t_s3_copy_kill.sh - SIGKILL `diskvault copy --from LOCAL --to s3://...` at
# twenty or more seeded random moments (issue 7), some of them inside
# multipart uploads (16 MiB packs go up in 8 MiB parts). In each round a new
# snapshot is added to the source and the copy is killed again and again
# until a run outlives its kill, so each rerun continues a killed one. After every kill: once the
# destination is a repository (config arrived), `check` passes there and it
# shows every snapshot it showed before (a copy never loses or half-shows a
# snapshot). At the end: the rerun completes, `check --read-data` passes on
# the S3 copy, and every snapshot restores from it bit-exact.
#
# Replay a failure with the seed it prints: DV_KILL_SEED=N ctest -R t_s3_copy_kill
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up

L=$T/local
S=s3://$BUCKET/killed-copy
SEED=${DV_KILL_SEED:-$((($(date +%s) % 30000) + 1))}
note "kill seed $SEED (replay with DV_KILL_SEED=$SEED)"
RANDOM=$SEED

expect_ok dv --repo "$L" init --no-encrypt --pack-size 16
export DISKVAULT_S3_MULTIPART_THRESHOLD=16M   # below the default: packs go up in parts
# "id file" lines: every source snapshot and the image it must restore to.
: >"$T/snaps"
add_backup() { # IMAGE
	backup_json "$L" "$1" --all-blocks
	echo "$SNAP $1" >>"$T/snaps"
}
make_random_disk "$T/d0.img" 40 copykill-0
make_disk "$T/d1.img" 40 copykill-1
add_backup "$T/d0.img"
add_backup "$T/d1.img"

dst_snapshots() { # prints how many snapshots the destination lists
	dv --repo "$S" --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))'
}

kills=0 attempts=0 seen=0 maxms=1200
# kill_copy: starts a copy and SIGKILLs it after a seeded random delay of
# 20..maxms ms; then checks the destination as described above. Sets DONE
# when the copy finished before the kill. maxms follows how long copies
# take on this machine: a copy that beat its kill lowers it, a kill raises
# it a little, so most attempts land inside a copy on fast and slow
# (sanitizer, loaded) machines alike.
kill_copy() {
	local ms pid rc=0 n
	ms=$((RANDOM % (maxms - 19) + 20))
	attempts=$((attempts + 1))
	DONE=false
	"$DISKVAULT" --progress=never copy --from "$L" --to "$S" >"$T/k.out" 2>"$T/k.err" &
	pid=$!
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	kill -KILL "$pid" 2>/dev/null || true
	{ wait "$pid"; } 2>/dev/null || rc=$?
	if [ "$rc" -eq 0 ]; then
		note "attempt $attempts: copy finished before the kill at ${ms} ms"
		DONE=true
		maxms=$((ms * 3 / 4 > 60 ? ms * 3 / 4 : 60))
	else
		[ "$rc" -eq 137 ] || { cat "$T/k.err" >&2; fail "copy failed with exit $rc before the kill at ${ms} ms"; }
		kills=$((kills + 1))
		note "kill $kills at ${ms} ms"
		maxms=$((maxms * 5 / 4 < 3000 ? maxms * 5 / 4 : 3000))
	fi
	# Until config arrives the destination is not a repository (exit 10).
	rc=0
	dv --repo "$S" --json list >"$T/l.out" 2>"$T/l.err" || rc=$?
	if [ "$rc" -eq 10 ]; then
		[ "$seen" -eq 0 ] || fail "after kill $kills (seed $SEED) the destination is no repository: $(cat "$T/l.err")"
		return 0
	fi
	[ "$rc" -eq 0 ] || fail "list of the destination after kill $kills (seed $SEED) exits $rc: $(cat "$T/l.err")"
	n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["snapshots"]))' "$T/l.out")
	[ "$n" -ge "$seen" ] || fail "after kill $kills (seed $SEED) the destination lists $n snapshots, it listed $seen"
	seen=$n
	expect_ok dv --repo "$S" --json check
	[ "$(json_get "$STDOUT" 'j["errors"]')" -eq 0 ] || fail "check after kill $kills (seed $SEED): $STDOUT"
}

# Round r: a new snapshot in the source (from round 2 on), then copies
# killed one after the other (each run continues the killed one) until one
# finishes before its kill, then a rerun that must complete the copy.
round=0
while [ "$kills" -lt 20 ]; do
	round=$((round + 1))
	[ "$attempts" -lt 120 ] || fail "only $kills of 120 copies were still running when killed (seed $SEED)"
	if [ "$round" -gt 1 ]; then
		make_random_disk "$T/d$round.img" 24 "copykill-$round"
		add_backup "$T/d$round.img"
	fi
	for _ in 1 2 3 4 5 6; do
		kill_copy
		! $DONE || break
	done
	expect_ok dv copy --from "$L" --to "$S" --json
	assert_json_ok "$STDOUT"
	seen=$(dst_snapshots)
	[ "$seen" -eq "$(wc -l <"$T/snaps")" ] || fail "round $round: the destination lists $seen snapshots, the source $(wc -l <"$T/snaps")"
done
note "$kills kills in $attempts attempts over $round rounds"

# Final: a complete copy has nothing left to do; it is whole and bit-exact.
expect_ok dv copy --from "$L" --to "$S" --json
[ "$(json_get "$STDOUT" 'j["objects_copied"]')" -eq 0 ] || fail "a rerun of a complete copy copied again: $STDOUT"
expect_ok dv --repo "$S" --json check --read-data
[ "$(json_get "$STDOUT" 'j["errors"]')" -eq 0 ] || fail "check --read-data of the S3 copy: $STDOUT"
[ "$(dst_snapshots)" -eq "$(wc -l <"$T/snaps")" ] || fail "the S3 copy does not list every snapshot"
while read -r id img; do
	restore_check "$S" "$id" "$img"
done <"$T/snaps"
# Killed multipart uploads were resumed, not left behind.
expect_ok dv --repo "$S" --json s3 uploads
[ "$(json_get "$STDOUT" 'j["uploads"]')" -eq 0 ] || fail "multipart uploads left behind: $STDOUT"

# The narrowest window: killed after CreateMultipartUpload, before the upload
# id was recorded. The state file then says "creating" (upload_id ""); the
# next run finds the upload with ListMultipartUploads, keeps its parts and
# completes it instead of leaving it behind. Simulated exactly: the upload
# and its first part made with the official CLI, the state file by hand.
S2=adopted
pack=$(find "$L/packs" -type f -size +16M -print -quit)
[ -n "$pack" ] || fail "no pack of 16 MiB or more to upload in parts"
key=$S2/packs/$(basename "$(dirname "$pack")")/$(basename "$pack")
uid=$(awscli s3api create-multipart-upload --bucket "$BUCKET" --key "$key" --query UploadId --output text)
head -c $((8 * MiB)) "$pack" >"$T/part1"
awscli s3api upload-part --bucket "$BUCKET" --key "$key" --upload-id "$uid" --part-number 1 --body "$T/part1" >/dev/null
h=$(printf '%s\n%s' "$BUCKET" "$key" | sha256sum | cut -c1-32)
printf '{"version": 1, "key": "%s", "upload_id": "", "size": %d, "part_size": %d, "parts": []}\n' \
	"$key" "$(stat -c %s "$pack")" $((8 * MiB)) >"$DISKVAULT_STATE_DIR/s3-upload-$h.json"
expect_ok dv copy --from "$L" --to "s3://$BUCKET/$S2" --json
[ "$(last_stats 'j["parts_resumed"]')" -ge 1 ] || fail "the orphaned upload's part was not reused: $(tail -3 "$DISKVAULT_S3_STATS_FILE")"
expect_ok dv --repo "s3://$BUCKET/$S2" --json s3 uploads
[ "$(json_get "$STDOUT" 'j["uploads"]')" -eq 0 ] || fail "the upload of a killed run was left behind: $STDOUT"
awscli s3api get-object --bucket "$BUCKET" --key "$key" "$T/got" >/dev/null
cmp -s "$T/got" "$pack" || fail "the adopted upload did not complete to the pack's bytes"
