#!/usr/bin/env bash
# t_catalog_refresh.sh - `diskvault catalog refresh` against the local EC2
# endpoint (tests/servers/ebs_ec2_server.py, DescribeInstanceTypes), which
# serves a catalog that differs from the shipped one: r6i.large has 12 GiB,
# t3.xlarge boots only UEFI, r5.4xlarge is not offered in the region (real
# EC2 answers InvalidInstanceType when such a type is asked for by name).
#   - the refreshed file: 44 of 45 types found, exactly the two changed rows
#     changed (prices and baselines kept), r5.4xlarge kept as it was, every
#     other row byte-identical, a "refreshed" comment;
#   - written atomically: mode 0644, no temporary file left; when the endpoint
#     denies ec2:DescribeInstanceTypes (IAM policy) the refresh fails with
#     exit 6 naming the action, and the previous file is untouched;
#   - `rightsize` uses the refreshed user copy ($XDG_DATA_HOME) and rejects
#     r6i.large, which it chose with the shipped catalog.
# Skips (77) when python3-botocore is not available.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ebs.sh"

SHIPPED=$SRC/data/ec2-catalog.csv
FIX=$SRC/fixtures/inventory
umask 022

# The endpoint's catalog: the shipped specs with the three differences.
python3 - "$SHIPPED" "$T/server-catalog.csv" <<-'EOF'
	import csv, sys
	rows = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith("#"))]
	cols = ["type", "arch", "vcpus", "memory_gib", "burstable", "baseline_pct_per_vcpu", "ena", "nvme", "boot_modes"]
	with open(sys.argv[2], "w", newline="") as f:
	    w = csv.writer(f, lineterminator="\n")
	    w.writerow(cols)
	    for r in rows:
	        if r["type"] == "r5.4xlarge":
	            continue
	        if r["type"] == "r6i.large":
	            r["memory_gib"] = "12"
	        if r["type"] == "t3.xlarge":
	            r["boot_modes"] = "uefi"
	        w.writerow([r[c] for c in cols])
EOF

ebs_up --catalog "$T/server-catalog.csv"
unset DISKVAULT_CATALOG
export XDG_DATA_HOME=$T/xdg
USER_CAT=$XDG_DATA_HOME/diskvault/ec2-catalog.csv

# With the shipped catalog the idle 36-thread server gets r6i.large.
expect_ok dv rightsize --inventory "$FIX/idle-36t-72g.json" --catalog "$SHIPPED" --json
[ "$(json_get "$STDOUT" 'j["chosen"]["type"]')" = r6i.large ] ||
	fail "with the shipped catalog rightsize chose $(json_get "$STDOUT" 'j["chosen"]["type"]'), not r6i.large"

# ---- refresh into the user copy ---------------------------------------------------
expect_ok dv catalog refresh --catalog "$SHIPPED" --json
assert_json_ok "$STDOUT"
[ "$(json_get "$STDOUT" 'j["file"]')" = "$USER_CAT" ] || fail "refresh wrote $(json_get "$STDOUT" 'j["file"]'), not $USER_CAT"
[ "$(json_get "$STDOUT" '[j["types"], j["changed"], j["missing"]]')" = '[44, 2, ["r5.4xlarge"]]' ] ||
	fail "refresh: expected 44 types found, 2 changed, r5.4xlarge missing: $STDOUT"
[ "$(stat -c %a "$USER_CAT")" = 644 ] || fail "the catalog has mode $(stat -c %a "$USER_CAT"), not 644"
[ "$(ls -A "$XDG_DATA_HOME/diskvault")" = ec2-catalog.csv ] || fail "left behind: $(ls -A "$XDG_DATA_HOME/diskvault")"
rows() { grep -v '^#' "$1"; }
[ "$(rows "$USER_CAT" | wc -l)" -eq 46 ] || fail "the refreshed catalog has $(rows "$USER_CAT" | wc -l) lines, expected header + 45"
grep -qx 'r6i.large,r6i,6,x86_64,2,12,false,,required,required,legacy-bios;uefi,0.126,0.152' "$USER_CAT" ||
	fail "r6i.large row: $(grep '^r6i.large,' "$USER_CAT")"
grep -qx 't3.xlarge,t3,3,x86_64,4,16,true,40,required,required,uefi,0.1664,0.208' "$USER_CAT" ||
	fail "t3.xlarge row: $(grep '^t3.xlarge,' "$USER_CAT")"
# every other row, r5.4xlarge included, is the shipped one
diff <(rows "$SHIPPED" | grep -v -e '^r6i\.large,' -e '^t3\.xlarge,') \
	<(rows "$USER_CAT" | grep -v -e '^r6i\.large,' -e '^t3\.xlarge,') >"$T/diff" ||
	fail "rows other than the two changed ones differ: $(cat "$T/diff")"
grep -q '^# refreshed: .*, specs from DescribeInstanceTypes in us-east-1$' "$USER_CAT" ||
	fail "no refreshed comment: $(grep '^#' "$USER_CAT")"
grep -qx '# date: 2026-01-19' "$USER_CAT" || fail "the date of the prices was lost: $(grep '^#' "$USER_CAT")"
# the endpoint was asked once, successfully
[ "$(python3 "$SRC/tests/servers/ebs_ec2_server.py" --count "$SRV" DescribeInstanceTypes 200)" -eq 1 ] ||
	fail "expected one DescribeInstanceTypes: $(grep DescribeInstanceTypes "$SRV/requests.log")"

# ---- rightsize uses the user copy ---------------------------------------------------
expect_ok dv rightsize --inventory "$FIX/idle-36t-72g.json" --json
[ "$(json_get "$STDOUT" 'j["catalog"]["file"]')" = "$USER_CAT" ] ||
	fail "rightsize read $(json_get "$STDOUT" 'j["catalog"]["file"]'), not the refreshed $USER_CAT"
chosen=$(json_get "$STDOUT" 'j["chosen"]["type"]')
[ "$chosen" != r6i.large ] || fail "rightsize still chose r6i.large (12 GiB now)"
[ "$(json_get "$STDOUT" '[r["why"] for r in j["rejected"] if r["type"] == "r6i.large"][0].split(",")[0]')" = "12 GiB memory" ] ||
	fail "r6i.large was not rejected for its 12 GiB: $STDOUT"
note "with the refreshed catalog rightsize chose $chosen"

# ---- a refused refresh keeps the previous catalog -----------------------------------
# (a rewrite, even with the same content, would be a new inode: rename)
cp "$USER_CAT" "$T/before.csv"
inode=$(stat -c %i "$USER_CAT")
cat >"$SRV/policy.json" <<-'EOF'
	{"Version": "2012-10-17", "Statement": [
	  {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
	  {"Effect": "Deny", "Action": "ec2:DescribeInstanceTypes", "Resource": "*"}]}
EOF
expect_exit 6 dv catalog refresh
assert_lines "$STDERR" 1 "denied refresh stderr"
assert_contains "$STDERR" "UnauthorizedOperation"
assert_contains "$STDERR" "ec2:DescribeInstanceTypes"
cmp -s "$T/before.csv" "$USER_CAT" && [ "$(stat -c %i "$USER_CAT")" = "$inode" ] ||
	fail "a refused refresh rewrote the catalog"
[ "$(ls -A "$XDG_DATA_HOME/diskvault")" = ec2-catalog.csv ] || fail "left behind: $(ls -A "$XDG_DATA_HOME/diskvault")"
expect_ok dv rightsize --inventory "$FIX/idle-36t-72g.json" --json
[ "$(json_get "$STDOUT" 'j["chosen"]["type"]')" = "$chosen" ] || fail "after a refused refresh rightsize chose differently"
