#!/bin/bash
# t_tables_list.sh - readable tables (issue 16 item 6). list: long host
# names (> 40 characters) and names appear whole; TAGS and SOURCE columns;
# --host, --tag (restic's semantics: a,b = both; repeated = any) and
# --latest N (per host and name) select exactly the expected snapshots, in
# the table and in --json alike; 'snapshots' prints the same as list; bad
# --latest values are usage errors (exit 2, the value named). show: every
# line of a GPT (ESP + Linux) and of an MBR (Linux + Linux LVM) disk is at
# most 100 columns and names the partition types, not their GUIDs or codes.
. "$(dirname "$0")/lib.sh"

R=$T/repo
# A small GPT disk: an ESP (vfat "ESP") and a Linux partition (ext4 "root").
truncate -s 12M "$T/disk.img"
sfdisk -q "$T/disk.img" >/dev/null <<-EOT || fail "sfdisk failed on disk.img"
	label: gpt
	start=1MiB, size=3MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
	start=4MiB, size=7MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
EOT
mkfs.vfat -n ESP --offset $((MiB / 512)) "$T/disk.img" $((3 * 1024)) >/dev/null 2>&1 || fail "mkfs.vfat failed"
EXT_OFF=$((4 * MiB))
mkfs.ext4 -q -F -L root -E offset=$EXT_OFF,nodiscard "$T/disk.img" 7168k || fail "mkfs.ext4 failed"
init_repo "$R"
H1=build-server-0042.eu-central-1.compute.internal.example.org
H2=b
N1="nightly full image of the build server root disk"
[ ${#H1} -gt 40 ] && [ ${#N1} -gt 40 ] || fail "the test's names are too short"

# s1..s6 (oldest first); s3 has no name, s5 no tags.
backup_json "$R" "$T/disk.img" --host "$H1" --name "$N1" --tag web --tag prod
S1=$SNAP
backup_json "$R" "$T/disk.img" --host "$H1" --name "$N1" --tag web
S2=$SNAP
backup_json "$R" "$T/disk.img" --host "$H1" --tag prod
S3=$SNAP
backup_json "$R" "$T/disk.img" --host "$H2" --name "$N1" --tag web --tag prod
S4=$SNAP
backup_json "$R" "$T/disk.img" --host "$H2" --name "$N1"
S5=$SNAP
backup_json "$R" "$T/disk.img" --host "$H1" --name "$N1" --tag prod --tag web
S6=$SNAP

# The snapshot numbers (1..6) of a list of ids, one a line.
numbers() {
	local id out=
	while read -r id; do
		[ -n "$id" ] || continue
		case $id in
		"$S1" | "${S1:0:8}") out+=" 1" ;;
		"$S2" | "${S2:0:8}") out+=" 2" ;;
		"$S3" | "${S3:0:8}") out+=" 3" ;;
		"$S4" | "${S4:0:8}") out+=" 4" ;;
		"$S5" | "${S5:0:8}") out+=" 5" ;;
		"$S6" | "${S6:0:8}") out+=" 6" ;;
		*) out+=" ?$id" ;;
		esac
	done
	echo "${out# }"
}

# check_filter WANT ARGS...: list ARGS shows exactly snapshots WANT ("1 3"),
# in the table and in --json; with ALIAS=1 also that 'snapshots ARGS'
# prints the same (both ways).
check_filter() {
	local want=$1 text json got
	shift
	expect_ok dv --repo "$R" list "$@"
	text=$STDOUT
	assert_contains "$text" "$(wc -w <<<"$want") snapshot(s)" "list $*"
	got=$(printf '%s\n' "$text" | awk 'NR > 1 && length($1) == 8 && $1 ~ /^[0-9a-f]+$/ { print $1 }' | numbers)
	[ "$got" = "$want" ] || fail "list $*: snapshots '$got', expected '$want': $text"
	expect_ok dv --repo "$R" --json list "$@"
	json=$STDOUT
	assert_json_ok "$json"
	got=$(json_get "$json" '"\n".join(s["id"] for s in j["snapshots"])' | numbers)
	[ "$got" = "$want" ] || fail "list --json $*: snapshots '$got', expected '$want': $json"
	[ "${ALIAS:-0}" = 1 ] || return 0
	expect_ok dv --repo "$R" snapshots "$@"
	[ "$STDOUT" = "$text" ] || fail "'snapshots $*' differs from 'list $*': $STDOUT"
	expect_ok dv --repo "$R" --json snapshots "$@"
	[ "$STDOUT" = "$json" ] || fail "'--json snapshots $*' differs from '--json list $*'"
}

# ---- the whole list: nothing cut ----------------------------------------------
ALIAS=1 check_filter "1 2 3 4 5 6"
expect_ok dv --repo "$R" list
LIST=$STDOUT
head=$(printf '%s\n' "$LIST" | head -1)
for col in ID TIME HOST NAME TAGS SOURCE SIZE "NEW DATA"; do
	assert_contains "$head" "$col" "list header"
done
# H1 is the longest host: its column is exactly as wide, then the name.
line=$(printf '%s\n' "$LIST" | grep "^${S1:0:8} ") || fail "list has no line for s1: $LIST"
assert_contains "$line" "  $H1  $N1  web,prod  $T/disk.img  " "list line of s1"
line=$(printf '%s\n' "$LIST" | grep "^${S5:0:8} ") || fail "list has no line for s5"
assert_contains "$line" "  $H2$(printf '%*s' $((${#H1} - ${#H2})) '')  $N1  -  " "list line of s5 (padded host, no tags)"
line=$(printf '%s\n' "$LIST" | grep "^${S3:0:8} ") || fail "list has no line for s3"
assert_contains "$line" "  $H1  -$(printf '%*s' $((${#N1} - 1)) '')  prod  " "list line of s3 (no name)"
# --json carries the same fields.
expect_ok dv --repo "$R" --json list
json=$STDOUT
py=$(python3 -c '
import json, sys
j = json.loads(sys.argv[1])
s = j["snapshots"]
assert [x["host"] for x in s] == [sys.argv[2]] * 3 + ["b", "b", sys.argv[2]], s
assert [x["name"] for x in s] == [sys.argv[3], sys.argv[3], None, sys.argv[3], sys.argv[3], sys.argv[3]], s
assert [x["tags"] for x in s] == [["web", "prod"], ["web"], ["prod"], ["web", "prod"], [], ["prod", "web"]], s
assert all(x["sources"] == [sys.argv[4]] and x["disks"] == 1 and x["size"] == 12 << 20 for x in s), s
print("ok")' "$json" "$H1" "$N1" "$T/disk.img" 2>&1) || fail "list --json fields: $py"

# ---- filters --------------------------------------------------------------------
check_filter "4 5" --host "$H2"
check_filter "1 2 3 6" --host "$H1"
check_filter "1 2 3 4 5 6" --host "$H1" --host "$H2"
check_filter "" --host "${H1:0:20}"
check_filter "1 2 4 6" --tag web
ALIAS=1 check_filter "1 4 6" --tag web,prod
check_filter "1 4 6" --tag prod,web
check_filter "1 3 4 6" --tag web,prod --tag prod
check_filter "5" --tag ''
check_filter "1 3 6" --host "$H1" --tag prod
check_filter "" --tag nosuchtag
# --latest N: the N newest of each host+name ((H1,N1): 1 2 6; (H1,-): 3;
# (b,N1): 4 5), after the other filters.
ALIAS=1 check_filter "3 5 6" --latest 1
check_filter "2 3 4 5 6" --latest 2
check_filter "1 2 3 4 5 6" --latest 3
check_filter "4 6" --latest 1 --tag web
check_filter "6" --latest 1 --host "$H1" --tag web

# ---- bad filter values --------------------------------------------------------
for bad in 0 abc -1 '' 99999999999999999999; do
	expect_exit 2 dv --repo "$R" list --latest "$bad"
	assert_contains "$STDERR" "--latest '$bad': expected a number of snapshots, 1 or more" "list --latest '$bad'"
	[ -z "$STDOUT" ] || fail "list --latest '$bad' printed on stdout: $STDOUT"
done
expect_exit 2 dv --repo "$R" --json snapshots --latest 0
[ "$(json_get "$STDOUT" '[j["ok"], j["exit_code"]]')" = '[false, 2]' ] || fail "--json snapshots --latest 0: $STDOUT"
expect_exit 2 dv --repo "$R" list --latest
expect_exit 2 dv --repo "$R" list --host
expect_exit 2 dv --repo "$R" list extra-operand

# ---- show: 100 columns, type names --------------------------------------------
# no_long_lines WHAT TEXT: no line is wider than 100 characters.
no_long_lines() {
	local long
	long=$(python3 -c 'import sys
print([l for l in sys.argv[1].split("\n") if len(l) > 100])' "$2")
	[ "$long" = "[]" ] || fail "$1 has lines over 100 columns: $long"
}
expect_ok dv --repo "$R" show "$S1"
SHOW=$STDOUT
note "$SHOW"
no_long_lines "show (GPT)" "$SHOW"
printf '%s\n' "$SHOW" | qgrep -E '^├─1 .*  EFI System  +vfat ' || fail "show names no EFI System partition: $SHOW"
printf '%s\n' "$SHOW" | qgrep -E '^└─2 .*  Linux filesystem  +ext4 ' || fail "show names no Linux filesystem partition: $SHOW"
assert_not_contains "$SHOW" "c12a7328" "show (the ESP's type GUID)"
assert_not_contains "$SHOW" "0fc63daf" "show (the Linux type GUID)"
assert_contains "$SHOW" "label root  uuid $(blkid -o value -s UUID -p -O $EXT_OFF "$T/disk.img" 2>/dev/null || echo)" "show (ext4 label and uuid)"
assert_contains "$SHOW" "host   $H1" "show"
assert_contains "$SHOW" "name   $N1" "show"

# An MBR disk: type codes 0x83 and 0x8e by name.
truncate -s 8M "$T/mbr.img"
sfdisk -q "$T/mbr.img" >/dev/null <<-EOT || fail "sfdisk failed on mbr.img"
	label: dos
	start=1MiB, size=3MiB, type=83
	start=4MiB, size=3MiB, type=8e
EOT
backup_json "$R" "$T/mbr.img" --all-blocks
expect_ok dv --repo "$R" show "$SNAP"
note "$STDOUT"
no_long_lines "show (MBR)" "$STDOUT"
printf '%s\n' "$STDOUT" | qgrep -E '^├─1 .*  Linux  ' || fail "show names no Linux partition on the MBR disk: $STDOUT"
printf '%s\n' "$STDOUT" | qgrep -E '^└─2 .*  Linux LVM  ' || fail "show names no Linux LVM partition on the MBR disk: $STDOUT"
assert_not_contains "$STDOUT" "0x8e" "show (MBR type code)"
echo "PASS: t_tables_list.sh"
