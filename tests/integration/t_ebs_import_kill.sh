#!/usr/bin/env bash
# t_ebs_import_kill.sh - SIGKILL `diskvault ebs-import` at twenty seeded
# random moments (issue 7), against the local EBS/EC2 endpoint with 40 ms of
# latency per request so the kills land anywhere: before StartSnapshot, among
# the PutSnapshotBlock calls, around CompleteSnapshot, in the wait for
# "completed", after the record. Every cycle imports a new backup: odd cycles
# of image A in full (--parent none), even ones of image B (A with a third of
# its blocks changed) incrementally on the last import of A (--parent auto).
# After each kill the same command runs again and must:
#   - succeed, on the EBS snapshot the killed run started (same id) when it
#     started one - also when the kill came after the snapshot completed or
#     after it was recorded (issue 16) - and create no other snapshot;
#   - send no more blocks than the killed run left missing at the endpoint
#     plus those it had in flight (the concurrency), none once it completed;
#   - leave a completed snapshot with every block it should have.
# Then the case of a run killed after its snapshot completed whose state and
# record are both lost: the rerun finds the snapshot by its diskvault tags,
# sends nothing and records it, and an incremental import on it is right.
# At the end every EBS snapshot made reads back equal to its source image
# (ListSnapshotBlocks/GetSnapshotBlock with botocore), the repository passes
# `check --read-data` and both images restore bit-exact.
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


# Image A: 24 MiB of random data (48 blocks, all non-zero); B: the same
# disk (backed up from the same path, so --parent auto finds A's import) with every
# third block changed.
D=$T/disk.img
make_random_disk "$D" 24 ebskill-a
cp "$D" "$T/a.img"
R=$T/repo
init_repo "$R"
for k in $(seq 0 3 47); do mutate "$D" "ebskill-b$k" $((k * 524288 + 8192)) 2; done
cp "$D" "$T/b.img"
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
		img=$T/a.img args=(--parent none) want=$FULL_A
	else
		img=$T/b.img args=(--parent auto) want=$CHANGED
	fi
	# a new snapshot of the same disk (one imported already sends nothing)
	cp "$img" "$D"
	backup_json "$R" "$D" --all-blocks
	snap=$SNAP
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
	have=0 killed_status=
	[ -z "$new" ] || {
		have=$(server_blocks "$new")
		killed_status=$(json_get "$(cat "$SRV/state/snapshots/$new/meta.json")" 'j["Status"]')
	}
	# The rerun: same snapshot, only the missing blocks (plus those in flight).
	expect_ok dv --repo "$R" --json ebs-import "$snap" "${args[@]}"
	out=$STDOUT
	assert_json_ok "$out"
	id=$(json_get "$out" 'j["ebs_snapshot_id"]')
	if [ "$img" = "$T/b.img" ]; then
		[ "$(json_get "$out" 'j["parent_ebs_snapshot_id"]')" != null ] || fail "kill $kills: B was not imported incrementally: $out"
	fi
	sent=$(json_get "$out" 'j["blocks_sent"]')
	note "kill $kills at $ms ms (cycle $cycle): ${new:-no snapshot yet} had $have of $want blocks${killed_status:+ ($killed_status)}; the rerun sent $sent to $id$(json_get "$out" '" (" + j["existing"] + ")" if j["existing"] else ""')"
	if [ -n "$new" ]; then
		[ "$id" = "$new" ] || fail "kill $kills (seed $SEED): the rerun made $id instead of resuming $new"
		case $killed_status in
		pending) ;;
		*) [ "$sent" -eq 0 ] || fail "kill $kills (seed $SEED): $new was complete, the rerun sent $sent blocks" ;;
		esac
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

# Killed after its snapshot completed, with its state file and record both
# lost (another machine, a wiped state directory): the rerun finds the
# completed snapshot by its diskvault tags, sends nothing and records it.
rm -f "$SRV/faults.json"
puts() { /usr/bin/python3 "$SRC/tests/servers/ebs_ec2_server.py" --count "$SRV" PutSnapshotBlock 201; }
cp "$T/a.img" "$D"
backup_json "$R" "$D" --all-blocks
SA=$SNAP
expect_ok dv --repo "$R" --json ebs-import "$SA" --parent none
lost=$(json_get "$STDOUT" 'j["ebs_snapshot_id"]')
[ -f "$R/ebs/$SA-0" ] && [ -f "$R/ebs/$SA-0.sig" ] || fail "no record of $lost in $R/ebs"
rm -f "$R/ebs/$SA-0" "$R/ebs/$SA-0.sig"
before=$(server_snaps) p0=$(puts)
expect_ok dv --repo "$R" --json ebs-import "$SA" --parent none
out=$STDOUT
[ "$(json_get "$out" '[j["ebs_snapshot_id"], j["existing"], j["blocks_sent"], j["blocks_written_total"]]')" = \
	"[\"$lost\", \"tagged\", 0, null]" ] || fail "the rerun did not take $lost by its tags: $out"
[ "$(server_snaps)" = "$before" ] && [ "$(puts)" = "$p0" ] || fail "the rerun of a tagged import sent blocks or started a snapshot"
[ -f "$R/ebs/$SA-0" ] && [ -f "$R/ebs/$SA-0.sig" ] || fail "the rerun did not record $lost"
# the snapshot found is recorded as any other: the next rerun reports it, and
# an incremental import of B takes it as parent and sends the 16 changed blocks
expect_ok dv --repo "$R" --json ebs-import "$SA" --parent none
[ "$(json_get "$STDOUT" '[j["ebs_snapshot_id"], j["existing"]]')" = "[\"$lost\", \"recorded\"]" ] ||
	fail "after recording $lost: $STDOUT"
# a rerun that asks for another parent than the tagged snapshot has is a new import
expect_ok dv --repo "$R" --json ebs-import "$SA" --parent "$id"
[ "$(json_get "$STDOUT" '[j["existing"], j["parent_ebs_snapshot_id"]]')" = "[null, \"$id\"]" ] ||
	fail "--parent $id took the recorded full import: $STDOUT"
echo "$(json_get "$STDOUT" 'j["ebs_snapshot_id"]') $T/a.img" >>"$T/made"
rm -f "$R/ebs/$SA-0" "$R/ebs/$SA-0.sig"
expect_ok dv --repo "$R" --json ebs-import "$SA" --parent none
[ "$(json_get "$STDOUT" '[j["ebs_snapshot_id"], j["existing"]]')" = "[\"$lost\", \"tagged\"]" ] ||
	fail "the full import of $SA was not found by its tags again: $STDOUT"
echo "$lost $T/a.img" >>"$T/made"
cp "$T/b.img" "$D"
backup_json "$R" "$D" --all-blocks
SB=$SNAP
p0=$(puts)
expect_ok dv --repo "$R" --json ebs-import "$SB" --parent auto
out=$STDOUT
[ "$(json_get "$out" '[j["parent_ebs_snapshot_id"], j["blocks_sent"]]')" = "[\"$lost\", $CHANGED]" ] ||
	fail "the incremental import on the tagged $lost: $out"
[ $(($(puts) - p0)) -eq "$CHANGED" ] || fail "the endpoint saw $(($(puts) - p0)) PutSnapshotBlock, $CHANGED blocks changed"
echo "$(json_get "$out" 'j["ebs_snapshot_id"]') $T/b.img" >>"$T/made"
note "lost record and state: $lost found by its tags, nothing sent; B on it sent $CHANGED blocks"

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
