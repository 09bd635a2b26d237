#!/usr/bin/env bash
# t_ebs_endpoint_awscli.sh - fidelity of the local EBS/EC2 endpoint
# (tests/servers/ebs_ec2_server.py), driven by the official AWS CLI
# (Debian's /usr/bin/aws): every call below must be accepted exactly as the
# CLI sends it (SigV4 checked by botocore on the server side), and errors
# must come back in the shapes the CLI understands. Skips (77) without
# /usr/bin/aws or python3-botocore.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ebs.sh"

AWS=/usr/bin/aws
[ -x "$AWS" ] || { echo "SKIP: $AWS (Debian awscli) not installed"; exit 77; }
ebs_up
A() { "$AWS" --endpoint-url "http://127.0.0.1:$PORT" --output json "$@"; }
b64sha() { openssl dgst -sha256 -binary "$1" | base64; }

seeded_bytes blk0 524288 >"$T/b0"
seeded_bytes blk5 524288 >"$T/b5"

note "EBS: start, put, complete, list, get"
# Long enough that the describe right after CompleteSnapshot still sees
# "pending" even when one aws start takes seconds on a loaded machine.
echo '{"completion_delay": 12}' >"$SRV/faults.json"
expect_ok A ebs start-snapshot --volume-size 1 --description cli --tags Key=k,Value=v --timeout 60 \
	--client-token tok-1
S=$(json_get "$STDOUT" 'j["SnapshotId"]')
[ "$(json_get "$STDOUT" 'j["BlockSize"]')" = 524288 ] || fail "BlockSize: $STDOUT"
expect_ok A ebs start-snapshot --volume-size 1 --client-token tok-1
[ "$(json_get "$STDOUT" 'j["SnapshotId"]')" = "$S" ] || fail "ClientToken not idempotent: $STDOUT"
for i in 0 5; do
	expect_ok A ebs put-snapshot-block --snapshot-id "$S" --block-index "$i" --block-data "$T/b$i" \
		--data-length 524288 --checksum "$(b64sha "$T/b$i")" --checksum-algorithm SHA256 --progress 50
	[ "$(json_get "$STDOUT" 'j["Checksum"]')" = "$(b64sha "$T/b$i")" ] || fail "put answer: $STDOUT"
done
expect_exit 254 A ebs put-snapshot-block --snapshot-id "$S" --block-index 1 --block-data "$T/b0" \
	--data-length 524288 --checksum "$(b64sha "$T/b5")" --checksum-algorithm SHA256
assert_contains "$STDERR" "ValidationException"
expect_exit 254 A ebs put-snapshot-block --snapshot-id "$S" --block-index 2048 --block-data "$T/b0" \
	--data-length 524288 --checksum "$(b64sha "$T/b0")" --checksum-algorithm SHA256
assert_contains "$STDERR" "ValidationException"
# LINEAR: SHA-256 over the raw digests of blocks 0 and 5, in index order
cat <(openssl dgst -sha256 -binary "$T/b0") <(openssl dgst -sha256 -binary "$T/b5") >"$T/digests"
LIN=$(b64sha "$T/digests")
cat <(openssl dgst -sha256 -binary "$T/b5") <(openssl dgst -sha256 -binary "$T/b0") >"$T/wrong"
expect_exit 254 A ebs complete-snapshot --snapshot-id "$S" --changed-blocks-count 2 --checksum "$(b64sha "$T/wrong")" \
	--checksum-algorithm SHA256 --checksum-aggregation-method LINEAR
assert_contains "$STDERR" "aggregated checksum"
expect_exit 254 A ebs complete-snapshot --snapshot-id "$S" --changed-blocks-count 3
assert_contains "$STDERR" "ChangedBlocksCount"
expect_ok A ebs complete-snapshot --snapshot-id "$S" --changed-blocks-count 2 --checksum "$LIN" \
	--checksum-algorithm SHA256 --checksum-aggregation-method LINEAR
[ "$(json_get "$STDOUT" 'j["Status"]')" = pending ] || fail "complete: $STDOUT"
expect_ok A ec2 describe-snapshots --snapshot-ids "$S"
[ "$(json_get "$STDOUT" 'j["Snapshots"][0]["State"]')" = pending ] || fail "not pending right after completion"
rm -f "$SRV/faults.json"
for _ in $(seq 1 40); do
	expect_ok A ec2 describe-snapshots --owner-ids self --filters Name=tag:k,Values=v
	[ "$(json_get "$STDOUT" 'j["Snapshots"][0]["State"]')" = completed ] && break
	sleep 1
done
[ "$(json_get "$STDOUT" 'j["Snapshots"][0]["State"]')" = completed ] || fail "not completed: $STDOUT"
expect_ok A ebs list-snapshot-blocks --snapshot-id "$S"
[ "$(json_get "$STDOUT" '[b["BlockIndex"] for b in j["Blocks"]]')" = "[0, 5]" ] || fail "blocks: $STDOUT"
TOK5=$(json_get "$STDOUT" 'j["Blocks"][1]["BlockToken"]')
expect_ok A ebs get-snapshot-block --snapshot-id "$S" --block-index 5 --block-token "$TOK5" "$T/out5"
cmp -s "$T/b5" "$T/out5" || fail "block 5 read back differs"
expect_exit 254 A ebs get-snapshot-block --snapshot-id "$S" --block-index 0 --block-token "$TOK5" "$T/x"
assert_contains "$STDERR" "ValidationException"

note "EBS: child snapshot inherits its parent's blocks; changed blocks"
expect_ok A ebs start-snapshot --volume-size 1 --parent-snapshot-id "$S"
C=$(json_get "$STDOUT" 'j["SnapshotId"]')
expect_ok A ebs put-snapshot-block --snapshot-id "$C" --block-index 5 --block-data "$T/b0" \
	--data-length 524288 --checksum "$(b64sha "$T/b0")" --checksum-algorithm SHA256
expect_ok A ebs complete-snapshot --snapshot-id "$C" --changed-blocks-count 1
sleep 1.3
expect_ok A ebs list-snapshot-blocks --snapshot-id "$C"
[ "$(json_get "$STDOUT" 'len(j["Blocks"])')" = 2 ] || fail "child blocks: $STDOUT"
expect_ok A ebs list-changed-blocks --first-snapshot-id "$S" --second-snapshot-id "$C"
[ "$(json_get "$STDOUT" '[b["BlockIndex"] for b in j["ChangedBlocks"]]')" = "[5]" ] || fail "changed: $STDOUT"

note "EBS: state survives a restart"
"$SRC/tests/servers/ebs-ec2-stop.sh" "$SRV"
"$SRC/tests/servers/ebs-ec2-start.sh" "$SRV" "$PORT" >/dev/null || fail "restart failed"
expect_ok A ebs list-snapshot-blocks --snapshot-id "$C"
TOK=$(json_get "$STDOUT" 'j["Blocks"][1]["BlockToken"]')
expect_ok A ebs get-snapshot-block --snapshot-id "$C" --block-index 5 --block-token "$TOK" "$T/out5b"
cmp -s "$T/b0" "$T/out5b" || fail "child block 5 after restart differs"

note "EC2: register, run, describe, tags, terminate, deregister, delete"
expect_ok A ec2 register-image --name img-1 --architecture x86_64 --root-device-name /dev/xvda \
	--virtualization-type hvm --ena-support --boot-mode uefi-preferred \
	--block-device-mappings "DeviceName=/dev/xvda,Ebs={SnapshotId=$S,VolumeType=gp3,DeleteOnTermination=true}"
AMI=$(json_get "$STDOUT" 'j["ImageId"]')
expect_exit 254 A ec2 delete-snapshot --snapshot-id "$S"
assert_contains "$STDERR" "InvalidSnapshot.InUse"
expect_exit 254 A ec2 run-instances --image-id "$AMI" --instance-type t3.micro --count 1 --dry-run
assert_contains "$STDERR" "DryRunOperation"
expect_ok A ec2 run-instances --image-id "$AMI" --instance-type t3.micro --count 1 \
	--metadata-options HttpTokens=required \
	--tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=t}]' 'ResourceType=volume,Tags=[{Key=Name,Value=t}]'
I=$(json_get "$STDOUT" 'j["Instances"][0]["InstanceId"]')
[ "$(json_get "$STDOUT" 'j["Instances"][0]["State"]["Name"]')" = pending ] || fail "run: $STDOUT"
grep -q '"MetadataOptions.HttpTokens": "required"' "$SRV/requests.log" || fail "RunInstances params not recorded"
sleep 1.2
expect_ok A ec2 describe-instances --instance-ids "$I"
[ "$(json_get "$STDOUT" 'j["Reservations"][0]["Instances"][0]["State"]["Name"]')" = running ] || fail "$STDOUT"
expect_ok A ec2 describe-instances --filters Name=tag:Name,Values=t Name=instance-state-name,Values=running
[ "$(json_get "$STDOUT" 'len(j["Reservations"])')" = 1 ] || fail "filter: $STDOUT"
expect_ok A ec2 create-tags --resources "$AMI" "$S" --tags Key=diskvault,Value=1
expect_ok A ec2 describe-images --image-ids "$AMI"
[ "$(json_get "$STDOUT" 'j["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["VolumeType"]')" = gp3 ] || fail "$STDOUT"
expect_ok A ec2 describe-instance-types --instance-types t3.micro m7g.large
[ "$(json_get "$STDOUT" 'sorted(t["InstanceType"] for t in j["InstanceTypes"])')" = '["m7g.large", "t3.micro"]' ] ||
	fail "instance types: $STDOUT"
expect_ok A ec2 describe-instance-types --filters Name=processor-info.supported-architecture,Values=arm64
[ "$(json_get "$STDOUT" 'len(j["InstanceTypes"])')" = 7 ] || fail "arm64 types: $STDOUT"
expect_ok A ec2 terminate-instances --instance-ids "$I"
expect_ok A ec2 deregister-image --image-id "$AMI"
expect_ok A ec2 delete-snapshot --snapshot-id "$C"
expect_ok A ec2 delete-snapshot --snapshot-id "$S"
expect_exit 254 A ec2 describe-snapshots --snapshot-ids "$S"
assert_contains "$STDERR" "InvalidSnapshot.NotFound"

note "signatures, policy and faults"
AWS_SECRET_ACCESS_KEY=wrong expect_exit 254 A ebs start-snapshot --volume-size 1
assert_contains "$STDERR" "InvalidSignatureException"
AWS_SECRET_ACCESS_KEY=wrong expect_exit 254 A ec2 describe-snapshots
assert_contains "$STDERR" "AuthFailure"
AWS_REGION=eu-west-1 expect_exit 254 A ec2 describe-snapshots
cat >"$SRV/policy.json" <<-'EOF'
	{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ebs:StartSnapshot", "ec2:Describe*"], "Resource": "*"}]}
EOF
expect_ok A ec2 describe-snapshots
expect_exit 254 A ec2 run-instances --image-id ami-00000000000000000 --instance-type t3.micro --count 1
assert_contains "$STDERR" "UnauthorizedOperation"
expect_ok A ebs start-snapshot --volume-size 1
S2=$(json_get "$STDOUT" 'j["SnapshotId"]')
expect_exit 254 A ebs put-snapshot-block --snapshot-id "$S2" --block-index 0 --block-data "$T/b0" \
	--data-length 524288 --checksum "$(b64sha "$T/b0")" --checksum-algorithm SHA256
assert_contains "$STDERR" "AccessDeniedException"
rm -f "$SRV/policy.json"
echo '{"rules": [{"action": "DescribeSnapshots", "fault": "throttle", "count": 1}]}' >"$SRV/faults.json"
expect_ok A ec2 describe-snapshots # the CLI retries RequestLimitExceeded
echo '{"not_exist_yet_puts": 1}' >"$SRV/faults.json"
expect_ok A ebs start-snapshot --volume-size 1
S3=$(json_get "$STDOUT" 'j["SnapshotId"]')
AWS_MAX_ATTEMPTS=1 expect_exit 254 A ebs put-snapshot-block --snapshot-id "$S3" --block-index 0 --block-data "$T/b0" \
	--data-length 524288 --checksum "$(b64sha "$T/b0")" --checksum-algorithm SHA256
assert_contains "$STDERR" "ResourceNotFoundException"
expect_ok A ebs put-snapshot-block --snapshot-id "$S3" --block-index 0 --block-data "$T/b0" \
	--data-length 524288 --checksum "$(b64sha "$T/b0")" --checksum-algorithm SHA256
echo '{"rules": [{"action": "StartSnapshot", "fault": "throttle", "count": 1}]}' >"$SRV/faults.json"
expect_ok A ebs start-snapshot --volume-size 1 # the CLI retries ThrottlingException
grep -q '"error": "ThrottlingException"' "$SRV/requests.log" || fail "no ThrottlingException recorded"
rm -f "$SRV/faults.json"
