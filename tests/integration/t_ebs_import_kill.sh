#!/usr/bin/env bash
# t_ebs_import_kill.sh - SIGKILL `diskvault ebs-import` at twenty seeded
# random moments (issue 7), against the local EBS/EC2 endpoint with 40 ms of
# latency per request so the kills land anywhere: before StartSnapshot, among
# the PutSnapshotBlock calls, around CompleteSnapshot, in the wait for
# "completed". Odd cycles import snapshot A in full (--parent none), even ones
# snapshot B (A with a third of its blocks changed) incrementally on the last
# import of A (--parent auto). After each kill the same command runs again and
# must:
#   - succeed, on the EBS snapshot the killed run started (same id) when it
#     started one, and create no other snapshot;
#   - send no more blocks than the killed run left missing at the endpoint
#     plus those it had in flight (the concurrency);
#   - leave a completed snapshot with every block it should have.
# At the end every EBS snapshot made reads back equal to its source image
# (ListSnapshotBlocks/GetSnapshotBlock with botocore), the repository passes
# `check --read-data` and both snapshots restore bit-exact.
#
# Replay a failure with the seed it prints: DV_KILL_SEED=N ctest -R t_ebs_import_kill
# Skips (77) when python3-botocore is not available.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ebs.sh"

ebs_up
export DISKVAULT_STATE_DIR=$T/state
CONC=4
export DISKVAULT_EBS_CONCURRENCY=$CONC
SEED=${DV_KILL_SEED:-$((($(date +%s) % 30000) + 1))}
note "kill seed $SEED (replay with DV_KILL_SEED=$SEED)"
RANDOM=$SEED

# server_snaps: the EBS snapshot ids the endpoint holds, sorted.
server_snaps() { ls "$SRV/state/snapshots" 2>/dev/null | sort; }
# server_blocks SNAP: distinct blocks the endpoint stored for SNAP.
server_blocks() {
	if [ -f "$SRV/state/snapshots/$1/blocks.log" ]; then
		cut -d' ' -f1 "$SRV/state/snapshots/$1/blocks.log" | sort -u | wc -l
	else
		echo 0
	fi
}


# Snapshot A: 24 MiB of random data (48 blocks, all non-zero); B: the same
# disk (same source path, so --parent auto finds A's import) with every
# third block changed.
D=$T/disk.img
make_random_disk "$D" 24 ebskill-a
cp "$D" "$T/a.img"
R=$T/repo
init_repo "$R"
backup_json "$R" "$D" --all-blocks
SA=$SNAP
for k in $(seq 0 3 47); do mutate "$D" "ebskill-b$k" $((k * 524288 + 8192)) 2; done
cp "$D" "$T/b.img"
backup_json "$R" "$D" --all-blocks
SB=$SNAP
SIZE=$(stat -c %s "$T/a.img")
FULL_A=$((SIZE / 524288))
CHANGED=$(diff_blocks "$T/a.img" "$T/b.img")
[ "$CHANGED" -eq 16 ] || fail "B differs from A in $CHANGED blocks, expected 16"

# Latency makes one full import last about a second; snapshots complete
# 0.3 s after CompleteSnapshot.
echo '{"latency_ms": 40, "completion_delay": 0.3}' >"$SRV/faults.json"

: >"$T/made" # "ebs-snapshot image" lines
kills=0 attempts=0 cycle=0
while [ "$kills" -lt 20 ]; do
	cycle=$((cycle + 1))
	[ "$attempts" -lt 40 ] || fail "only $kills of 40 imports were still running when killed (seed $SEED)"
	if [ $((cycle % 2)) -eq 1 ]; then
		snap=$SA img=$T/a.img args=(--parent none) want=$FULL_A
	else
		snap=$SB img=$T/b.img args=(--parent auto) want=$CHANGED
	fi
	before=$(server_snaps)
	ms=$((RANDOM % 1300 + 10))
	attempts=$((attempts + 1))
	krc=0
	"$DISKVAULT" --progress=never --repo "$R" --json ebs-import "$snap" "${args[@]}" >"$T/k.out" 2>"$T/k.err" &
	pid=$!
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	kill -KILL "$pid" 2>/dev/null || true
	{ wait "$pid"; } 2>/dev/null || krc=$?
	new=$(comm -13 <(echo "$before") <(server_snaps))
	if [ "$krc" -eq 0 ]; then
		note "cycle $cycle: import finished before the kill at $ms ms"
		echo "$(json_get "$(cat "$T/k.out")" 'j["ebs_snapshot_id"]') $img" >>"$T/made"
		continue
	fi
	[ "$krc" -eq 137 ] || { cat "$T/k.err" >&2; fail "cycle $cycle: import failed with exit $krc before the kill"; }
	kills=$((kills + 1))
	[ "$(echo "$new" | grep -c .)" -le 1 ] || fail "kill $kills: the killed import started several snapshots: $new"
	have=0
	[ -z "$new" ] || have=$(server_blocks "$new")
	# The rerun: same snapshot, only the missing blocks (plus those in flight).
	expect_ok dv --repo "$R" --json ebs-import "$snap" "${args[@]}"
	out=$STDOUT
	assert_json_ok "$out"
	id=$(json_get "$out" 'j["ebs_snapshot_id"]')
	if [ "$snap" = "$SB" ]; then
		[ "$(json_get "$out" 'j["parent_ebs_snapshot_id"]')" != null ] || fail "kill $kills: B was not imported incrementally: $out"
	fi
	sent=$(json_get "$out" 'j["blocks_sent"]')
	note "kill $kills at $ms ms (cycle $cycle): ${new:-no snapshot yet} had $have of $want blocks; the rerun sent $sent to $id"
	if [ -n "$new" ]; then
		[ "$id" = "$new" ] || {
			# Only a run killed after it finished and forgot its state may be
			# followed by a new snapshot; the first one must then be complete.
			[ "$(json_get "$(cat "$SRV/state/snapshots/$new/meta.json")" 'j["Status"]')" != pending ] ||
				fail "kill $kills (seed $SEED): the rerun made $id instead of resuming $new"
			echo "$new $img" >>"$T/made"
			# the rerun was then a new import of its own: it owes all its blocks
			have=0
		}
	fi
	[ "$sent" -le $((want - have + CONC)) ] ||
		fail "kill $kills (seed $SEED): the rerun sent $sent blocks; $((want - have)) were missing, $CONC may have been in flight"
	[ "$(json_get "$out" 'j["blocks_written_total"]')" -eq "$want" ] ||
		fail "kill $kills (seed $SEED): the snapshot holds the wrong number of blocks: $out"
	[ "$(comm -13 <(echo "$before") <(server_snaps) | grep -vx -e "$new" -e "$id" | grep -c .)" -eq 0 ] ||
		fail "kill $kills (seed $SEED): stray snapshots: $(comm -13 <(echo "$before") <(server_snaps))"
	echo "$id $img" >>"$T/made"
	[ -z "$(ls -A "$DISKVAULT_STATE_DIR" | grep '^ebs-import-' || true)" ] || fail "kill $kills: the rerun left its state file"
done
note "$kills kills in $attempts imports"

# Every snapshot made reads back equal to its image (one botocore process).
rm -f "$SRV/faults.json"
/usr/bin/python3 - "$T/made" "$SIZE" "http://127.0.0.1:$PORT" <<-'EOF' || fail "reading back the snapshots failed"
	import base64, hashlib, os, sys
	import botocore.session
	made, size, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
	c = botocore.session.get_session().create_client(
	    "ebs", region_name=os.environ.get("AWS_REGION", "us-east-1"), endpoint_url=url)
	ec2 = botocore.session.get_session().create_client(
	    "ec2", region_name=os.environ.get("AWS_REGION", "us-east-1"), endpoint_url=url)
	n = 0
	for line in open(made):
	    snap, img = line.split()
	    st = ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["State"]
	    if st != "completed":
	        sys.exit("%s is %s" % (snap, st))
	    data = bytearray(size)
	    token = None
	    while True:
	        kw = {"SnapshotId": snap}
	        if token:
	            kw["NextToken"] = token
	        r = c.list_snapshot_blocks(**kw)
	        for b in r.get("Blocks", []):
	            g = c.get_snapshot_block(SnapshotId=snap, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"])
	            d = g["BlockData"].read()
	            if g["Checksum"] != base64.b64encode(hashlib.sha256(d).digest()).decode():
	                sys.exit("%s block %d: checksum header mismatch" % (snap, b["BlockIndex"]))
	            off = b["BlockIndex"] * 524288
	            data[off:off + len(d)] = d[:max(0, size - off)]
	        token = r.get("NextToken")
	        if not token:
	            break
	    if bytes(data) != open(img, "rb").read():
	        sys.exit("%s does not equal %s" % (snap, img))
	    n += 1
	print("# %d EBS snapshots read back equal to their images" % n)
EOF
expect_ok dv --repo "$R" --json check --read-data
[ "$(json_get "$STDOUT" 'j["errors"]')" -eq 0 ] || fail "check --read-data: $STDOUT"
restore_check "$R" "$SA" "$T/a.img"
restore_check "$R" "$SB" "$T/b.img"
