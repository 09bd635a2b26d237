#!/bin/bash
# t_rightsize.sh - `diskvault rightsize` end to end on the inventory fixtures
# (fixtures/inventory/, made by make-fixtures.py): the cases issue 5 lists,
# the JSON report, region and headroom options, hostile input, and a
# snapshot that records its inventory.
set -euo pipefail
: "${DISKVAULT:?set DISKVAULT to the diskvault binary}"
: "${DV_SOURCE_DIR:?set DV_SOURCE_DIR to the source tree}"
export LC_ALL=C
T=$(mktemp -d "${TMPDIR:-/tmp}/dv-rightsize.XXXXXX")
trap 'rc=$?; rm -rf "$T"; [ $rc -eq 0 ] && echo "PASS: t_rightsize.sh" || echo "FAIL: t_rightsize.sh (exit $rc)" >&2' EXIT
FIX=$DV_SOURCE_DIR/fixtures/inventory
export DISKVAULT_CATALOG=$DV_SOURCE_DIR/data/ec2-catalog.csv
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_REGION AWS_DEFAULT_REGION AWS_PROFILE
fail() { echo "FAIL: $*" >&2; exit 1; }
dv() { "$DISKVAULT" --progress=never "$@"; }
# jq-free JSON field access
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[int(k)] if isinstance(d, list) else d[k]
print(d if not isinstance(d, bool) else str(d).lower())' "$1"; }

rs() { dv rightsize --inventory "$FIX/$1" --json "${@:2}"; }

# 1. 36 threads, 72 GiB, mostly idle, ~10 GiB in use: never c5.9xlarge,
#    a t3.xlarge-class or smaller type, and the spec match is c5.9xlarge
out=$(rs idle-36t-72g.json)
chosen=$(echo "$out" | jget chosen.type)
[ "$chosen" != c5.9xlarge ] || fail "idle server sized as c5.9xlarge"
[ "$(echo "$out" | jget chosen.vcpus)" -le 4 ] || fail "idle server: $chosen has more than 4 vCPUs"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 16 else 1)" "$(echo "$out" | jget chosen.memory_gib)" ||
	fail "idle server: $chosen has more than 16 GiB"
[ "$(echo "$out" | jget spec_match.type)" = c5.9xlarge ] || fail "idle server: spec match is not c5.9xlarge"
[ "$(echo "$out" | jget from_spec)" = false ] || fail "idle server sized from the spec"
echo "# idle 36t/72g -> $chosen (spec match c5.9xlarge)"
human=$(dv rightsize --inventory "$FIX/idle-36t-72g.json" --region us-east-1)
for want in "CPU need" "memory need" "chosen       $chosen" "spec match   c5.9xlarge" "/month less than a spec-matching one" \
	"highest 24-hour mean"; do
	grep -qF -- "$want" <<<"$human" || fail "human report lacks '$want':
$human"
done

# 2. busy compute server: a compute-optimised, fixed-performance type
out=$(rs busy-compute-16t.json)
[ "$(echo "$out" | jget chosen.type)" = c6i.4xlarge ] || fail "busy compute: $(echo "$out" | jget chosen.type)"
[ "$(echo "$out" | jget chosen.burstable)" = false ] || fail "busy compute: burstable"

# 3. memory-heavy server: memory-optimised
out=$(rs memory-heavy-8t-64g.json)
[ "$(echo "$out" | jget chosen.type)" = r6i.2xlarge ] || fail "memory heavy: $(echo "$out" | jget chosen.type)"

# 4. arm64 server: a Graviton type; --arch x86_64 sizes an x86 image instead
out=$(rs arm64-4c-8g.json)
[ "$(echo "$out" | jget chosen.arch)" = arm64 ] || fail "arm64 server got $(echo "$out" | jget chosen.type)"
case $(echo "$out" | jget chosen.type) in m7g.* | t4g.*) ;; *) fail "arm64: not m7g/t4g" ;; esac
grep -q "only 1 utilisation sample" <<<"$out" || fail "arm64: no single-sample note"
out=$(rs arm64-4c-8g.json --arch x86_64)
[ "$(echo "$out" | jget chosen.arch)" = x86_64 ] || fail "--arch x86_64 ignored"

# 5. no samples: spec fallback, said so
out=$(rs no-samples-8t-32g.json)
[ "$(echo "$out" | jget from_spec)" = true ] || fail "no samples: not from spec"
[ "$(echo "$out" | jget chosen.type)" = m6i.2xlarge ] || fail "no samples: $(echo "$out" | jget chosen.type)"
grep -q "no utilisation samples: sized on the spec" <<<"$(dv rightsize --inventory "$FIX/no-samples-8t-32g.json")" ||
	fail "no samples: the report does not say so"

# options: region from the environment, --region, --headroom
[ "$(AWS_REGION=ap-northeast-2 rs memory-heavy-8t-64g.json | jget chosen.price_usd_hour)" = 0.608 ] ||
	fail "AWS_REGION not used for prices"
[ "$(rs memory-heavy-8t-64g.json --region us-east-1 | jget region)" = us-east-1 ] || fail "--region"
a=$(rs busy-compute-16t.json --headroom 0 | jget need.vcpus)
b=$(rs busy-compute-16t.json --headroom 50 | jget need.vcpus)
python3 -c "import sys; sys.exit(0 if abs(float(sys.argv[2]) - 1.5 * float(sys.argv[1])) < 0.01 else 1)" "$a" "$b" ||
	fail "--headroom: $a vs $b"

# usage and input errors
set +e
dv rightsize >/dev/null 2>&1; [ $? -eq 2 ] || fail "no operand: not a usage error"
dv rightsize --inventory "$FIX/idle-36t-72g.json" --headroom -5 >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad headroom"
dv rightsize --inventory "$FIX/idle-36t-72g.json" --region mars-1 2>"$T/err" >/dev/null; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "no prices for region mars-1" "$T/err" || fail "unknown region: exit $rc, $(cat "$T/err")"
printf '{"cpu":{"logical":"many"}}' >"$T/bad.json"
set +e; dv rightsize --inventory "$T/bad.json" 2>"$T/err" >/dev/null; rc=$?; set -e
[ $rc -eq 4 ] && grep -q "logical" "$T/err" || fail "hostile inventory: exit $rc, $(cat "$T/err")"
printf 'type,arch\n' >"$T/cat.csv"
set +e; dv rightsize --inventory "$FIX/idle-36t-72g.json" --catalog "$T/cat.csv" 2>"$T/err" >/dev/null; rc=$?; set -e
[ $rc -eq 4 ] && grep -q "cat.csv" "$T/err" || fail "hostile catalog: exit $rc, $(cat "$T/err")"

# a snapshot: the inventory recorded in its manifest (when backup records
# one) or a clear error when it records none
dd if=/dev/zero of="$T/disk.img" bs=1M count=4 status=none
dv --repo "$T/repo" init --no-encrypt >/dev/null
dv --repo "$T/repo" backup "$T/disk.img" >/dev/null
if grep -q -- "--inventory" <<<"$(dv --repo "$T/repo" backup --help 2>/dev/null)"; then
	dv --repo "$T/repo" backup --inventory "$FIX/idle-36t-72g.json" "$T/disk.img" >/dev/null
	out=$(dv --repo "$T/repo" rightsize latest --json)
	[ "$(echo "$out" | jget chosen.type)" = "$chosen" ] || fail "snapshot inventory: $(echo "$out" | jget chosen.type)"
	echo "# snapshot with inventory -> $chosen"
else
	set +e; dv --repo "$T/repo" rightsize latest 2>"$T/err" >/dev/null; rc=$?; set -e
	[ $rc -ne 0 ] && grep -q "records no inventory" "$T/err" || fail "snapshot without inventory: $(cat "$T/err")"
	echo "# backup --inventory not available yet: checked the no-inventory error"
fi
