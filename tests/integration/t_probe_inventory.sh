#!/bin/bash
# t_probe_inventory.sh - `diskvault inventory`: the JSON has the facts issue
# 3 asks for, --append accumulates samples with peaks and percentiles, and
# a file that is not an accumulated inventory is refused and left alone.
# Skipped while the command is not wired into the binary.
. "$(dirname "$0")/lib.sh"

if ! "$DISKVAULT" inventory --help >/dev/null 2>&1; then
	echo "SKIP: the binary has no inventory command yet"
	exit 0
fi

expect_ok dv --json inventory --sample 0.3
assert_json_ok "$STDOUT"
INV=$(json_get "$STDOUT" 'j["inventory"]')
for k in hostname architecture kernel os cpu memory load boot_mode network disks nitro_drivers; do
	json_get "$INV" "j['$k']" >/dev/null
done
[ "$(json_get "$INV" 'j["architecture"]')" = "$(uname -m)" ] || fail "architecture is not $(uname -m)"
[ "$(json_get "$INV" 'j["kernel"]')" = "$(uname -r)" ] || fail "kernel is not $(uname -r)"
[ "$(json_get "$INV" 'j["cpu"]["logical"]')" -eq "$(nproc --all)" ] ||
	[ "$(json_get "$INV" 'j["cpu"]["logical"]')" -eq "$(nproc)" ] || fail "logical CPUs: $INV"
BUSY=$(json_get "$INV" 'j["cpu"]["busy"]')
python3 -c "import sys; b = float(sys.argv[1]); sys.exit(0 if 0 <= b <= 1 else 1)" "$BUSY" || fail "busy $BUSY"
TOTAL_KB=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
[ "$(json_get "$INV" 'j["memory"]["total"]')" -eq $((TOTAL_KB * 1024)) ] || fail "memory total: $INV"

F=$T/inv.json
for i in 1 2 3; do expect_ok dv -q inventory --sample 0.1 --append "$F"; done
[ "$(json_get "$(cat "$F")" 'j["samples"]')" -eq 3 ] || fail "3 appends did not give 3 samples"
[ "$(json_get "$(cat "$F")" 'len(j["history"])')" -eq 3 ] || fail "history is not 3 long"
json_get "$(cat "$F")" 'j["cpu_busy"]["p95"]' >/dev/null
json_get "$(cat "$F")" 'j["memory_used"]["peak"]' >/dev/null

echo '{"something": "else"}' >"$T/other.json"
rc=0
dv inventory --sample 0 --append "$T/other.json" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "a foreign file was accepted by --append"
[ "$(cat "$T/other.json")" = '{"something": "else"}' ] || fail "a foreign file was overwritten"
