#!/bin/bash
# t_launch.sh - launch and cleanup end to end against the local EBS + EC2
# endpoint (tests/servers/ebs_ec2_server.py, SigV4 checked with botocore):
# back up a GPT disk with an ESP (boot mode uefi) and a recorded inventory,
# ebs-import it, then
#   - launch --dry-run sends nothing that creates resources (requests.log),
#   - launch --instance-type auto: assert the RegisterImage, CreateTags and
#     RunInstances parameters the endpoint received (the type rightsize
#     chooses, gp3, delete-on-termination, ENA, BootMode=uefi, IMDSv2,
#     diskvault tags on instance and volume), the instance runs,
#   - cleanup --launched-from removes exactly that launch (a second launch
#     survives), cleanup --tag removes the rest, nothing is left behind,
#   - warnings for missing drivers and unknown boot mode.
# Skips (exit 77) when python3-botocore is missing and cannot be installed.
set -euo pipefail
: "${DISKVAULT:?set DISKVAULT to the diskvault binary}"
: "${DV_SOURCE_DIR:?set DV_SOURCE_DIR to the source tree}"
export LC_ALL=C
T=$(mktemp -d "${TMPDIR:-/tmp}/dv-launch.XXXXXX")
SRV=$T/srv
cleanup_all() {
	rc=$?
	"$DV_SOURCE_DIR/tests/servers/ebs-ec2-stop.sh" "$SRV" >/dev/null 2>&1 || true
	rm -rf "$T"
	[ $rc -eq 0 ] && echo "PASS: t_launch.sh" || echo "FAIL: t_launch.sh (exit $rc)" >&2
	exit $rc
}
trap cleanup_all EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
dv() { "$DISKVAULT" --progress=never --repo "$T/repo" "$@"; }
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("/"): d = d[int(k)] if isinstance(d, list) else d[k]
print(d if not isinstance(d, bool) else str(d).lower())' "$1"; }

# the endpoint and ebs-import are other pieces of issue 5: say so when absent
if [ ! -f "$DV_SOURCE_DIR/tests/servers/ebs-ec2-start.sh" ] || ! "$DISKVAULT" ebs-import --help >/dev/null 2>&1; then
	echo "SKIP: the local EBS+EC2 endpoint or the ebs-import command is not in this tree"
	trap - EXIT
	rm -rf "$T"
	exit 77
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rc=0
"$DV_SOURCE_DIR/tests/servers/ebs-ec2-start.sh" "$SRV" "$PORT" >/dev/null || rc=$?
[ $rc -eq 77 ] && { echo "SKIP: python3-botocore unavailable"; trap - EXIT; rm -rf "$T"; exit 77; }
[ $rc -eq 0 ] || fail "endpoint did not start"
# shellcheck disable=SC1091
. "$SRV/env"
export DISKVAULT_CATALOG=$DV_SOURCE_DIR/data/ec2-catalog.csv DISKVAULT_EC2_POLL_SECONDS=0.2
FIX=$DV_SOURCE_DIR/fixtures/inventory

# requests.log lines since line $1 (JSON per line) -> python checks
log_since() { tail -n +"$(($1 + 1))" "$SRV/requests.log"; }
log_lines() { wc -l <"$SRV/requests.log"; }
# param ACTION KEY [SINCE]: the value of KEY in the last successful ACTION
param() { log_since "${3:-0}" | python3 -c 'import json,sys
v=None
for l in sys.stdin:
	r=json.loads(l)
	if r["action"]==sys.argv[1] and r["status"]==200: v=r["params"].get(sys.argv[2])
print("<none>" if v is None else v)' "$1" "$2"; }

# a GPT disk with an EFI system partition: probed boot mode "uefi"
truncate -s 64M "$T/disk.img"
printf 'label: gpt\nsize=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' |
	sfdisk -q "$T/disk.img"
dd if=/dev/urandom of="$T/disk.img" bs=64K count=4 seek=300 conv=notrunc status=none
dv init --no-encrypt >/dev/null
dv backup --inventory "$FIX/idle-36t-72g.json" "$T/disk.img" >/dev/null
SNAP=$(dv list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][-1]["id"])')
grep -q "boot uefi" <<<"$(dv show "$SNAP")" || fail "the test disk does not probe as uefi"
# the id from the output, whatever its form (text or --json)
EBS=$(dv ebs-import "$SNAP" --json | grep -o 'snap-[0-9a-f]*' | sed -n 1p)
case $EBS in snap-*) ;; *) fail "ebs-import gave no snapshot id" ;; esac
WANT=$(dv rightsize "$SNAP" --json | jget chosen/type)
echo "# snapshot ${SNAP:0:8} -> $EBS; rightsize chooses $WANT"

# 1. dry run: the plan, and no call that creates anything
mark=$(log_lines)
out=$(dv launch "$SNAP" --dry-run --tag env=test --json)
[ "$(echo "$out" | jget dry_run)" = true ] || fail "dry run not marked"
[ "$(echo "$out" | jget instance_type)" = "$WANT" ] || fail "dry run type differs from rightsize"
[ "$(echo "$out" | jget plan/RegisterImage/BlockDeviceMapping.1.Ebs.SnapshotId)" = "$EBS" ] || fail "plan: snapshot"
[ "$(echo "$out" | jget plan/RunInstances/MetadataOptions.HttpTokens)" = required ] || fail "plan: IMDSv2"
human=$(dv launch "$SNAP" --dry-run)
for want in "1. RegisterImage" "BootMode=uefi" "3. RunInstances" "InstanceType=$WANT" "nothing is created"; do
	grep -qF -- "$want" <<<"$human" || fail "dry-run plan lacks '$want'"
done
if log_since "$mark" | grep -E '"action": "(RegisterImage|RunInstances|CreateTags|CreateSnapshot|StartSnapshot|CopyImage|TerminateInstances|DeregisterImage|DeleteSnapshot)"'; then
	fail "launch --dry-run called an API that changes state"
fi
echo "# dry run: $(($(log_lines) - mark)) requests, none that create resources"

# 1b. an EBS snapshot id with --repo: the backup it came from is found, by
#     its import record or else by its diskvault tags (DescribeSnapshots),
#     and its inventory sizes the instance as for SNAPSHOT
out=$(dv launch "$EBS" --dry-run --json)
[ "$(echo "$out" | jget snapshot)" = "$SNAP" ] || fail "launch $EBS: not found by its record: $out"
[ "$(echo "$out" | jget instance_type)" = "$WANT" ] || fail "launch $EBS: type differs from rightsize"
[ "$(echo "$out" | jget boot_mode)" = uefi ] || fail "launch $EBS: boot mode not from the backup"
mkdir "$T/ebs-aside"
mv "$T"/repo/ebs/* "$T/ebs-aside/"
mark=$(log_lines)
out=$(dv launch "$EBS" --dry-run --json)
[ "$(echo "$out" | jget snapshot)" = "$SNAP" ] || fail "launch $EBS: not found by its tags: $out"
[ "$(echo "$out" | jget instance_type)" = "$WANT" ] || fail "launch $EBS by tags: type differs from rightsize"
[ "$(param DescribeSnapshots SnapshotId.1 "$mark")" = "$EBS" ] || fail "the tags were not read with DescribeSnapshots"
# tags of another repository: launched without the backup's records, said so
rid=$(/usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" ec2 describe-snapshots --snapshot-ids "$EBS" \
	--query "Snapshots[0].Tags[?Key=='diskvault:repository'].Value" --output text)
[[ $rid =~ ^[0-9a-f]{32}$ ]] || fail "ebs-import did not tag diskvault:repository: '$rid'"
/usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" ec2 create-tags --resources "$EBS" \
	--tags Key=diskvault:repository,Value=0000000000000000000000000000000000000000000000000000000000000000
set +e
dv launch "$EBS" --dry-run >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "note: $EBS was not imported from this repository" "$T/err" &&
	grep -q "needs the machine's inventory" "$T/err" || fail "foreign tags: exit $rc: $(cat "$T/err")"
/usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" ec2 create-tags --resources "$EBS" \
	--tags "Key=diskvault:repository,Value=$rid"
mv "$T"/ebs-aside/* "$T/repo/ebs/"
# an EBS snapshot id that does not exist: EC2's answer, one line
set +e
dv launch snap-0123456789abcdef0 --dry-run >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "^diskvault launch: EC2 DescribeSnapshots: HTTP 400 InvalidSnapshot.NotFound" "$T/err" ||
	fail "missing snapshot with --repo: exit $rc: $(cat "$T/err")"
echo "# an EBS snapshot id finds its backup by record and by tags"

# 2. launch --instance-type auto
mark=$(log_lines)
out=$(dv launch "$SNAP" --instance-type auto --tag env=test --key-name k1 --subnet subnet-0abc \
	--security-group sg-1 --security-group sg-2 --name restored-db --json)
IID=$(echo "$out" | jget instance_id)
AMI=$(echo "$out" | jget image_id)
[ "$(echo "$out" | jget state)" = running ] || fail "instance not running: $out"
[ "$(echo "$out" | jget private_ip)" != None ] || fail "no private address"
[ "$(echo "$out" | jget public_ip)" != None ] || fail "no public address"
check() { # ACTION KEY WANT
	local got
	got=$(param "$1" "$2" "$mark")
	[ "$got" = "$3" ] || fail "$1 $2 = '$got', want '$3'"
}
check RegisterImage VirtualizationType hvm
check RegisterImage Architecture x86_64
check RegisterImage RootDeviceName /dev/xvda
check RegisterImage BlockDeviceMapping.1.DeviceName /dev/xvda
check RegisterImage BlockDeviceMapping.1.Ebs.SnapshotId "$EBS"
check RegisterImage BlockDeviceMapping.1.Ebs.VolumeType gp3
check RegisterImage BlockDeviceMapping.1.Ebs.DeleteOnTermination true
check RegisterImage EnaSupport true
check RegisterImage BootMode uefi
check CreateTags ResourceId.1 "$AMI"
check CreateTags ResourceId.2 "$EBS"
check CreateTags Tag.2.Key diskvault:launched-from
check CreateTags Tag.2.Value "$SNAP"
check RunInstances ImageId "$AMI"
check RunInstances InstanceType "$WANT"
check RunInstances MinCount 1
check RunInstances MaxCount 1
check RunInstances MetadataOptions.HttpTokens required
check RunInstances KeyName k1
check RunInstances SubnetId subnet-0abc
check RunInstances SecurityGroupId.2 sg-2
check RunInstances TagSpecification.1.ResourceType instance
check RunInstances TagSpecification.2.ResourceType volume
check RunInstances TagSpecification.2.Tag.1.Key diskvault:created-by
log_since "$mark" | python3 -c 'import json,sys
p=[json.loads(l)["params"] for l in sys.stdin if json.loads(l)["action"]=="RunInstances"][-1]
tags={p[k]: p[k[:-3]+"Value"] for k in p if k.startswith("TagSpecification.1.Tag.") and k.endswith(".Key")}
assert tags.get("Name")=="restored-db" and tags.get("env")=="test" and tags.get("diskvault:launched-from")==sys.argv[1], tags
assert p.get("ClientToken"), "no ClientToken"' "$SNAP" || fail "RunInstances tags"
echo "# launched $IID ($WANT) from $AMI"

# a second launch (another disk) that cleanup --launched-from SNAP must not touch
truncate -s 32M "$T/disk2.img"
printf 'label: gpt\ntype=21686148-6449-6E6F-744E-656564454649, size=1MiB\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' |
	sfdisk -q "$T/disk2.img"
dd if=/dev/urandom of="$T/disk2.img" bs=64K count=2 seek=100 conv=notrunc status=none
dv backup --inventory "$FIX/no-samples-8t-32g.json" "$T/disk2.img" >/dev/null
SNAP2=$(dv list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][-1]["id"])')
dv ebs-import "$SNAP2" >/dev/null
mark=$(log_lines)
dv launch "$SNAP2" --instance-type m6i.large --tag keep=yes --json >"$T/l2.json" 2>"$T/l2.err"
IID2=$(jget instance_id <"$T/l2.json")
grep -q "no nvme driver" "$T/l2.json" || fail "no warning about the missing nvme driver"
check RegisterImage BootMode legacy-bios

# 3. cleanup --launched-from SNAP: exactly the first launch
out=$(dv cleanup --launched-from "${SNAP:0:8}" --dry-run --json)
[ "$(echo "$out" | jget instances/0/id)" = "$IID" ] || fail "cleanup dry run misses $IID"
[ "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["instances"]), len(d["images"]), len(d["snapshots"]))')" = "1 1 1" ] ||
	fail "cleanup dry run: $out"
mark=$(log_lines)
dv cleanup --launched-from "${SNAP:0:8}" >/dev/null
check TerminateInstances InstanceId.1 "$IID"
check DeregisterImage ImageId "$AMI"
check DeleteSnapshot SnapshotId "$EBS"
python3 - "$SRV/state/ec2.json" "$IID" "$AMI" "$IID2" <<'PY' || fail "server state after cleanup --launched-from"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["instances"][sys.argv[2]]["State"] in ("terminated", "shutting-down"), d["instances"][sys.argv[2]]["State"]
assert d["images"][sys.argv[3]]["State"] == "deregistered"
assert d["instances"][sys.argv[4]]["State"] == "running", "the other launch was touched"
assert sum(1 for i in d["images"].values() if i["State"] != "deregistered") == 1
PY
out=$(dv cleanup --launched-from "$SNAP" --dry-run --json)
[ "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["instances"])+len(d["images"])+len(d["snapshots"]))')" = 0 ] ||
	fail "something of the first launch is left: $out"

# 4. cleanup --tag: the second launch; then nothing diskvault made is left
dv cleanup --tag keep=yes >/dev/null
dv cleanup --launched-from "$SNAP2" >/dev/null  # its imported EBS snapshot
python3 - "$SRV/state/ec2.json" "$SRV/state/snapshots" <<'PY' || fail "something left behind"
import json, os, sys
d = json.load(open(sys.argv[1]))
live = [i["InstanceId"] for i in d["instances"].values() if i["State"] != "terminated"]
imgs = [i["ImageId"] for i in d["images"].values() if i["State"] != "deregistered"]
snaps = [s for s in os.listdir(sys.argv[2])] if os.path.isdir(sys.argv[2]) else []
assert not live and not imgs, (live, imgs)
assert not snaps, snaps
PY
echo "# cleanup left no instance, AMI or EBS snapshot"

# 5. an EBS snapshot id without a backup (no repository): unknown boot
#    mode, no inventory
dv() { "$DISKVAULT" --progress=never "$@"; }
mark=$(log_lines)
err=$(dv launch snap-0123456789abcdef0 --instance-type t3.micro --dry-run 2>&1 >/dev/null)
grep -q "boot mode of the disk is unknown" <<<"$err" || fail "no unknown-boot-mode warning: $err"
grep -q "cannot check for the nvme and ena drivers" <<<"$err" || fail "no driver warning: $err"
[ "$(log_lines)" = "$mark" ] || fail "a raw dry run called the endpoint"
set +e
dv launch snap-0123456789abcdef0 --dry-run >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "needs the machine's inventory" "$T/err" || fail "auto without inventory: $rc $(cat "$T/err")"
# and a refusal by the endpoint comes back as one line with the EC2 error code
set +e
dv launch snap-0123456789abcdef0 --instance-type t3.micro >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "^diskvault launch: EC2 RegisterImage: HTTP 400 InvalidSnapshot.NotFound: .*(request id " "$T/err" ||
	fail "missing snapshot: exit $rc: $(cat "$T/err")"
dv() { "$DISKVAULT" --progress=never --repo "$T/repo" "$@"; }

# 6. least privilege: docs/iam-policy.json's actions are enough for import,
#    launch and cleanup; without ec2:RunInstances launch fails clearly. The
#    endpoint matches actions and snapshot ARNs but not conditions, and names
#    other resources "*", so the policy's other ARNs become "*" here.
python3 - "$DV_SOURCE_DIR/docs/iam-policy.json" "$SRV/policy.json" "" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for st in d["Statement"]:
    res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
    st["Resource"] = [r if ":snapshot/" in r else "*" for r in res]
    if sys.argv[3]:
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        st["Action"] = [a for a in acts if a != sys.argv[3]] or ["none:None"]
json.dump(d, open(sys.argv[2], "w"))
PY
dv backup --inventory "$FIX/busy-compute-16t.json" "$T/disk.img" >/dev/null
SNAP3=$(dv list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][-1]["id"])')
dv ebs-import "$SNAP3" >/dev/null || fail "ebs-import denied under docs/iam-policy.json"
dv launch "$SNAP3" >/dev/null 2>&1 || fail "launch denied under docs/iam-policy.json"
dv cleanup --launched-from "$SNAP3" >/dev/null || fail "cleanup denied under docs/iam-policy.json"
python3 - "$DV_SOURCE_DIR/docs/iam-policy.json" "$SRV/policy.json" ec2:RunInstances <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for st in d["Statement"]:
    res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
    st["Resource"] = [r if ":snapshot/" in r else "*" for r in res]
    acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
    st["Action"] = [a for a in acts if a != sys.argv[3]] or ["none:None"]
json.dump(d, open(sys.argv[2], "w"))
PY
dv ebs-import "$SNAP3" >/dev/null
set +e
dv launch "$SNAP3" >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -eq 6 ] && grep -q "EC2 RunInstances: HTTP 403 UnauthorizedOperation: .*ec2:RunInstances" "$T/err" ||
	fail "launch without ec2:RunInstances: exit $rc: $(cat "$T/err")"
grep -q "diskvault cleanup --launched-from" "$T/err" || fail "the failed launch does not say how to remove its AMI"
dv cleanup --launched-from "$SNAP3" >/dev/null || fail "cleanup after a refused launch"
rm -f "$SRV/policy.json"
echo "# docs/iam-policy.json: import, launch, cleanup allowed; launch without ec2:RunInstances refused clearly"

# 7. no inventory, an arm64 Debian on the disk (tests/integration/lib_disk.sh):
#    the architecture and the Nitro driver check come from the installed OS
# shellcheck disable=SC1091
. "$DV_SOURCE_DIR/tests/integration/lib_disk.sh"
OS=$T/os
dv_mk_os_tree "$OS" 183
dv_mk_kernel "$OS" 6.1.0-13-arm64 "" drivers/nvme/host/nvme.ko.xz
dv_mk_initramfs "$OS/boot/initrd.img-6.1.0-13-arm64" zstd 6.1.0-13-arm64
truncate -s 64M "$T/arm.img"
printf 'label: gpt\nsize=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' |
	sfdisk -q "$T/arm.img"
# (the partition ends 1 MiB before the disk: the backup GPT lives there)
dv_mk_ext4 "$T/arm.img" $((17 * MiB)) $((46 * MiB)) root "$OS"
dv backup "$T/arm.img" >/dev/null
SNAP4=$(dv list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][-1]["id"])')
dv ebs-import "$SNAP4" >/dev/null
out=$(dv launch "$SNAP4" --instance-type m7g.large --dry-run --json)
[ "$(echo "$out" | jget architecture)" = arm64 ] || fail "launch did not take arm64 from the disk: $out"
[ "$(echo "$out" | jget plan/RegisterImage/Architecture)" = arm64 ] || fail "RegisterImage Architecture: $out"
grep -q "kernel 6.1.0-13-arm64 on the disk has no nvme driver built in or in its initramfs" <<<"$out" ||
	fail "no warning about nvme missing from the initramfs: $out"
grep -q "kernel 6.1.0-13-arm64 on the disk has no ena driver" <<<"$out" || fail "no warning about ena: $out"
human=$(dv launch "$SNAP4" --instance-type m7g.large --dry-run 2>&1)
grep -qF "arm64 (the installed OS)" <<<"$human" || fail "the plan does not say where arm64 came from: $human"
set +e
dv launch "$SNAP4" --instance-type m6i.large --dry-run >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "m6i.large is an x86_64 type; the image is arm64" "$T/err" ||
	fail "an x86_64 type for an arm64 disk: exit $rc: $(cat "$T/err")"
dv cleanup --launched-from "$SNAP4" >/dev/null
echo "# arm64 from the installed OS; nvme/ena warnings from its kernel"
