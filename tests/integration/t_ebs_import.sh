#!/usr/bin/env bash
# t_ebs_import.sh - ebs-import end to end against the local EBS/EC2 endpoint
# (tests/servers/ebs_ec2_server.py, started here on a free loopback port):
#   1. a used-blocks backup imported and read back with the official CLI
#      (ListSnapshotBlocks/GetSnapshotBlock) equals the restored disk, and an
#      all-blocks backup's import equals the source image;
#   2. an incremental import after a ~2% change (--parent auto) sends exactly
#      the 512 KiB blocks that differ between the two images;
#   3. with throttling, 500/503, dropped connections, "does not exist yet"
#      and latency injected, the import still succeeds and reads back right;
#   4. SIGKILL in the middle of an import, then a rerun: same EBS snapshot,
#      fewer blocks sent than a full import, content right.
# Skips (77) when /usr/bin/aws or python3-botocore are not available.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ebs.sh"

AWS=/usr/bin/aws
[ -x "$AWS" ] || { echo "SKIP: $AWS (Debian awscli) not installed"; exit 77; }

ebs_up
export DISKVAULT_STATE_DIR=$T/state
A() { "$AWS" --endpoint-url "http://127.0.0.1:$PORT" "$@"; }
puts() { /usr/bin/python3 "$SRC/tests/servers/ebs_ec2_server.py" --count "$SRV" PutSnapshotBlock 201; }

# readback SNAP OUT SIZE: assembles the EBS snapshot into OUT (SIZE bytes,
# absent blocks zero) through ListSnapshotBlocks/GetSnapshotBlock of
# botocore, the engine of the official CLI (one process instead of one CLI
# start per block), checking every block's checksum header against its data.
readback() {
	/usr/bin/python3 - "$1" "$2" "$3" "http://127.0.0.1:$PORT" <<-'EOF' || fail "reading back $1 failed"
		import base64, hashlib, os, sys
		import botocore.session
		snap, out, size, url = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
		c = botocore.session.get_session().create_client(
		    "ebs", region_name=os.environ.get("AWS_REGION", "us-east-1"), endpoint_url=url)
		blocks, token = [], None
		while True:
		    kw = {"SnapshotId": snap}
		    if token:
		        kw["NextToken"] = token
		    r = c.list_snapshot_blocks(**kw)
		    blocks += r.get("Blocks", [])
		    token = r.get("NextToken")
		    if not token:
		        break
		with open(out, "wb") as f:
		    f.truncate(size)
		    for b in blocks:
		        r = c.get_snapshot_block(SnapshotId=snap, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"])
		        data = r["BlockData"].read()
		        if r["Checksum"] != base64.b64encode(hashlib.sha256(data).digest()).decode():
		            sys.exit("block %d: checksum header mismatch" % b["BlockIndex"])
		        f.seek(b["BlockIndex"] * 524288)
		        f.write(data)
		    f.truncate(size)
	EOF
}


nonzero_blocks() {
	python3 - "$1" <<-'EOF'
		import sys
		f, z, n = open(sys.argv[1], "rb"), bytes(524288), 0
		while True:
		    x = f.read(524288)
		    if not x:
		        break
		    n += x.ljust(524288, b"\0") != z
		print(n)
	EOF
}

import_json() { # REPO ARGS...: runs ebs-import --json, sets IMP and EBS_SNAP
	local repo=$1
	shift
	expect_ok dv --repo "$repo" --json ebs-import "$@"
	IMP=$STDOUT
	assert_json_ok "$IMP"
	EBS_SNAP=$(json_get "$IMP" 'j["ebs_snapshot_id"]')
	case "$EBS_SNAP" in snap-*) ;; *) fail "no snapshot id in $IMP" ;; esac
}

# ---- 1. used-blocks import reads back as the restored disk ----------------
note "1: full import of a used-blocks backup"
make_disk "$T/disk.img" 48 ebs1
SIZE=$(stat -c %s "$T/disk.img")
init_repo "$T/repo"
backup_json "$T/repo" "$T/disk.img"
S1=$SNAP
import_json "$T/repo" "$S1" --tag team=qa --description "first import"
E1=$EBS_SNAP
[ "$(json_get "$IMP" 'j["parent_ebs_snapshot_id"]')" = null ] || fail "first import has a parent: $IMP"
expect_ok dv --repo "$T/repo" restore "$S1" "$T/restored.img"
readback "$E1" "$T/back.img" "$SIZE"
assert_same_file "$T/restored.img" "$T/back.img"
want=$(nonzero_blocks "$T/restored.img")
[ "$(json_get "$IMP" 'j["blocks_sent"]')" = "$want" ] || fail "sent $(json_get "$IMP" 'j["blocks_sent"]') blocks, $want hold data: $IMP"
A ec2 describe-snapshots --snapshot-ids "$E1" --output json >"$T/ds.json"
python3 - "$T/ds.json" <<-'EOF' || fail "describe-snapshots: $(cat "$T/ds.json")"
	import json, sys
	s = json.load(open(sys.argv[1]))["Snapshots"][0]
	tags = {t["Key"]: t["Value"] for t in s["Tags"]}
	assert s["State"] == "completed" and s["Description"] == "first import", s
	assert tags["team"] == "qa" and "diskvault:snapshot" in tags, tags
EOF
note "  $E1: $want blocks, bit-exact with the restored disk"

# ---- all-blocks backup: the EBS snapshot equals the source image -------------
make_random_disk "$T/rand.img" 32 ebs2
RSIZE=$(stat -c %s "$T/rand.img")
init_repo "$T/repo2"
backup_json "$T/repo2" --all-blocks "$T/rand.img"
R1=$SNAP
import_json "$T/repo2" "$R1"
RE1=$EBS_SNAP
FULL_SENT=$(json_get "$IMP" 'j["blocks_sent"]')
readback "$RE1" "$T/rback.img" "$RSIZE"
assert_same_file "$T/rand.img" "$T/rback.img"
note "  all-blocks: $RE1 equals the source image ($FULL_SENT blocks)"
# imported already: a rerun reports the recorded EBS snapshot and sends nothing
before=$(puts)
import_json "$T/repo2" "$R1"
[ "$(json_get "$IMP" '[j["ebs_snapshot_id"], j["existing"], j["blocks_sent"], j["blocks_written_total"]]')" = \
	"[\"$RE1\", \"recorded\", 0, $FULL_SENT]" ] || fail "rerun of a recorded import: $IMP"
[ "$(puts)" = "$before" ] || fail "rerun of a recorded import sent $(($(puts) - before)) blocks"
expect_ok dv --repo "$T/repo2" ebs-import "$R1"
assert_contains "$STDOUT" "is already in $RE1 (recorded): nothing sent"
note "  a rerun reports $RE1 (recorded) and sends nothing"

# ---- 2. incremental after a ~2% change ------------------------------------
note "2: incremental import with --parent auto"
cp "$T/rand.img" "$T/rand0.img"
# ~2% of 32 MiB in 4 KiB writes spread over the disk
for k in $(seq 0 15); do mutate "$T/rand.img" "m$k" $(((k * 2003 + 77) * 4096 % (RSIZE - 65536))) 10; done
CHANGED=$(diff_blocks "$T/rand0.img" "$T/rand.img")
[ "$CHANGED" -gt 0 ] || fail "mutation changed nothing"
backup_json "$T/repo2" --all-blocks "$T/rand.img"
R2=$SNAP
before=$(puts)
import_json "$T/repo2" "$R2"
RE2=$EBS_SNAP
after=$(puts)
[ "$(json_get "$IMP" 'j["parent_ebs_snapshot_id"]')" = "$RE1" ] || fail "parent is not $RE1: $IMP"
[ "$(json_get "$IMP" 'j["blocks_sent"]')" = "$CHANGED" ] ||
	fail "incremental sent $(json_get "$IMP" 'j["blocks_sent"]') blocks, $CHANGED differ: $IMP"
[ $((after - before)) -eq "$CHANGED" ] || fail "endpoint saw $((after - before)) PutSnapshotBlock, $CHANGED differ"
readback "$RE2" "$T/rback2.img" "$RSIZE"
assert_same_file "$T/rand.img" "$T/rback2.img"
note "  $RE2 (parent $RE1): $CHANGED of $FULL_SENT blocks sent, content equals the new image"
# blocks that became zero are written as zeros
cp "$T/rand.img" "$T/rand1.img"
dd if=/dev/zero of="$T/rand.img" bs=524288 seek=20 count=3 conv=notrunc status=none
backup_json "$T/repo2" --all-blocks "$T/rand.img"
import_json "$T/repo2" "$SNAP"
[ "$(json_get "$IMP" 'j["blocks_sent"]')" = 3 ] || fail "zeroed blocks: sent $(json_get "$IMP" 'j["blocks_sent"]'), want 3: $IMP"
readback "$EBS_SNAP" "$T/rback3.img" "$RSIZE"
assert_same_file "$T/rand.img" "$T/rback3.img"
note "  3 blocks that became zero were written as zeros"

# ---- 3. faults ---------------------------------------------------------------
note "3: throttling, 5xx, dropped connections, not-yet-existing snapshot, latency"
cat >"$SRV/faults.json" <<-'EOF'
	{"latency_ms": 20, "not_exist_yet_puts": 3,
	 "rules": [{"action": "PutSnapshotBlock", "fault": "throttle", "every": 5},
	           {"action": "PutSnapshotBlock", "fault": "throttle_request", "every": 11},
	           {"action": "PutSnapshotBlock", "fault": "503", "every": 7},
	           {"action": "PutSnapshotBlock", "fault": "500", "count": 2, "after": 3},
	           {"action": "PutSnapshotBlock", "fault": "drop", "every": 13},
	           {"action": "StartSnapshot", "fault": "throttle", "count": 1},
	           {"action": "CompleteSnapshot", "fault": "503", "count": 1},
	           {"action": "DescribeSnapshots", "fault": "throttle", "count": 1}]}
EOF
# (a new snapshot: one already imported would be reported, not imported again)
backup_json "$T/repo2" --all-blocks "$T/rand0.img"
import_json "$T/repo2" "$SNAP" --parent none --concurrency 8
[ "$(json_get "$IMP" 'j["retries"] > 0')" = true ] || fail "no retries under faults: $IMP"
[ "$(json_get "$IMP" 'j["throttled"] > 0')" = true ] || fail "no throttling seen: $IMP"
[ "$(json_get "$IMP" 'j["blocks_sent"]')" = "$FULL_SENT" ] || fail "faulty import sent the wrong count: $IMP"
readback "$EBS_SNAP" "$T/rback4.img" "$RSIZE"
assert_same_file "$T/rand0.img" "$T/rback4.img"
note "  succeeded with $(json_get "$IMP" 'j["retries"]') retries ($(json_get "$IMP" 'j["throttled"]') throttled)"
rm -f "$SRV/faults.json"

# ---- 4. SIGKILL mid-import, then resume ----------------------------------
note "4: SIGKILL mid-import, rerun resumes"
# Each poll starts a python3, which under load can take longer than the
# whole import at a small latency: raise the latency until the kill lands
# mid-import (a finished import leaves a record and no state, and the next
# attempt starts a new snapshot).
partial=$FULL_SENT
for lat in 100 300 900; do
	backup_json "$T/repo2" --all-blocks "$T/rand0.img"
	RK=$SNAP
	echo "{\"latency_ms\": $lat}" >"$SRV/faults.json"
	before=$(puts)
	DISKVAULT_EBS_CONCURRENCY=4 "$DISKVAULT" --progress=never --repo "$T/repo2" --json ebs-import "$RK" --parent none \
		>"$T/kill.out" 2>"$T/kill.err" &
	pid=$!
	for _ in $(seq 1 400); do
		[ $(($(puts) - before)) -ge $((FULL_SENT / 3)) ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	partial=$(($(puts) - before))
	[ "$partial" -lt "$FULL_SENT" ] && break
	note "  import finished before the kill at latency ${lat} ms; slower"
done
[ "$partial" -gt 0 ] && [ "$partial" -lt "$FULL_SENT" ] || fail "killed import sent $partial of $FULL_SENT"
rm -f "$SRV/faults.json"
import_json "$T/repo2" "$RK" --parent none
[ "$(json_get "$IMP" 'j["resumed"]')" = true ] || fail "rerun did not resume: $IMP"
sent=$(json_get "$IMP" 'j["blocks_sent"]')
[ "$sent" -lt "$FULL_SENT" ] || fail "resumed import sent $sent blocks, a full one sends $FULL_SENT"
[ "$(json_get "$IMP" 'j["blocks_written_total"]')" = "$FULL_SENT" ] || fail "resumed snapshot is incomplete: $IMP"
readback "$EBS_SNAP" "$T/rback5.img" "$RSIZE"
assert_same_file "$T/rand0.img" "$T/rback5.img"
note "  killed after $partial blocks; the rerun sent $sent more to the same snapshot $EBS_SNAP"

# ---- errors ---------------------------------------------------------------
note "errors: denied by policy, unknown parent"
cat >"$SRV/policy.json" <<-'EOF'
	{"Version": "2012-10-17", "Statement": [
	  {"Effect": "Allow", "Action": ["ebs:*", "ec2:DescribeSnapshots"], "Resource": "*"},
	  {"Effect": "Deny", "Action": "ebs:PutSnapshotBlock", "Resource": "*"}]}
EOF
backup_json "$T/repo2" --all-blocks "$T/rand0.img"
expect_exit 6 dv --repo "$T/repo2" ebs-import "$SNAP" --parent none
assert_contains "$STDERR" "AccessDeniedException"
assert_contains "$STDERR" "ebs:PutSnapshotBlock"
rm -f "$SRV/policy.json"
expect_exit 2 dv --repo "$T/repo2" ebs-import "$R1" --parent snap-00000000000000000
assert_contains "$STDERR" "no record"

# ---- encrypted repository ---------------------------------------------------
note "encrypted repository: records sealed, --parent auto still works"
printf 'ebs test passphrase\n' >"$T/pw"
chmod 600 "$T/pw"
export DISKVAULT_PASSWORD_FILE=$T/pw
expect_ok dv --repo "$T/enc" init --encrypt --kdf-n 1024
expect_ok dv --repo "$T/enc" backup "$T/rand0.img" --all-blocks -q
import_json "$T/enc" latest --parent none
enc_snap=$EBS_SNAP
enc_full=$(json_get "$IMP" 'j["blocks_sent"]')
for f in "$T"/enc/ebs/*; do
	if grep -aq "$enc_snap" "$f"; then fail "$f holds the EBS snapshot id in plaintext"; fi
done
readback "$enc_snap" "$T/eback.img" "$RSIZE"
assert_same_file "$T/rand0.img" "$T/eback.img"
expect_ok dv --repo "$T/enc" backup "$T/rand0.img" --all-blocks -q
import_json "$T/enc" latest --parent auto
[ "$(json_get "$IMP" 'j["blocks_sent"]')" = 0 ] || fail "unchanged disk sent blocks with --parent auto: $IMP"
# both recorded EBS snapshots deleted since: DescribeSnapshots answers 400
# InvalidSnapshot.NotFound for each, --parent auto passes over them
A ec2 delete-snapshot --snapshot-id "$EBS_SNAP" || fail "delete-snapshot $EBS_SNAP"
A ec2 delete-snapshot --snapshot-id "$enc_snap" || fail "delete-snapshot $enc_snap"
import_json "$T/enc" latest --parent auto
[ "$(json_get "$IMP" '[j["parent_ebs_snapshot_id"], j["blocks_sent"]]')" = "[null, $enc_full]" ] ||
	fail "--parent auto with the recorded snapshots deleted: $IMP"
note "  recorded snapshots deleted since: --parent auto sends all $enc_full blocks"
unset DISKVAULT_PASSWORD_FILE
