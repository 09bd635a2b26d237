#!/usr/bin/env bash
# Injected I/O faults (LD_PRELOAD, tests/fault/faultinject.c): an EIO on a
# source read names the sector range (exit 15) or, with --skip-bad-sectors,
# is recorded as unreadable (exit 3) while everything else restores
# bit-exact; ENOSPC and EIO on repository writes fail with one clear line
# (exit 14 / 1), lose nothing, and the next run succeeds.
source "$(dirname "$0")/lib.sh"
: "${DV_FAULTINJECT:?set DV_FAULTINJECT to the fault injection library}"
# Under ASan the sanitizer runtime must come first; the injector is plain C.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
fi_run() { LD_PRELOAD=$DV_FAULTINJECT "$@"; }

repo=$T/repo
python3 -c 'import random,sys; r=random.Random(4); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(8*1024*1024)) + b"log line\n" * 500000)' >"$T/disk.img"
size=$(stat -c %s "$T/disk.img")
expect_ok dv --repo "$repo" init --no-encrypt --pack-size 1
expect_ok dv --repo "$repo" backup "$T/disk.img" --all-blocks -q --name before

# EIO on source sectors 4096..4103 (bytes 2097152..2101247).
bad_off=2097152
bad_len=4096
expect_exit 15 fi_run env DV_FAULT_READ_PATH=disk.img DV_FAULT_READ_OFFSET=$bad_off DV_FAULT_READ_LENGTH=$bad_len \
	"$DISKVAULT" --progress=never --repo "$repo" backup "$T/disk.img" --all-blocks
assert_contains "$STDERR" "source $T/disk.img: read error in sectors"
expect_ok dv --repo "$repo" check
n=$(dv --repo "$repo" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))')
[ "$n" -eq 1 ] || fail "a failed backup left a snapshot"

expect_exit 3 fi_run env DV_FAULT_READ_PATH=disk.img DV_FAULT_READ_OFFSET=$bad_off DV_FAULT_READ_LENGTH=$bad_len \
	"$DISKVAULT" --progress=never --repo "$repo" backup "$T/disk.img" --all-blocks --skip-bad-sectors --json
echo "$STDOUT" | python3 -c "import json,sys; j=json.load(sys.stdin); assert j['bytes_unreadable'] == $bad_len, j"
assert_contains "$STDERR" "could not be read"
expect_ok dv --repo "$repo" show latest --json
echo "$STDOUT" | python3 -c "
import json, sys
d = json.load(sys.stdin)['snapshot']['disks'][0]
assert d['unreadable'] == [{'offset': $bad_off, 'length': $bad_len}], d['unreadable']
assert d['extents']['unreadable'] == 1, d['extents']"
expect_ok dv --repo "$repo" restore latest "$T/out.img" -q
python3 - "$T/disk.img" "$T/out.img" $bad_off $bad_len <<'PY'
import sys
a = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read()
off, n = int(sys.argv[3]), int(sys.argv[4])
assert len(a) == len(b)
assert b[off:off + n] == bytes(n), "unreadable range not restored as zeros"
assert a[:off] == b[:off] and a[off + n:] == b[off + n:], "readable data differs"
PY

# ENOSPC and EIO while writing packs: one line, exit 14 / 1, the repository
# intact, the earlier snapshot restores, the next backup works.
dd if=/dev/urandom of="$T/disk.img" bs=1M count=2 seek=1 conv=notrunc status=none
for err in ENOSPC EIO; do
	want=14
	[ "$err" = EIO ] && want=1
	expect_exit $want fi_run env DV_FAULT_WRITE_PATH="$repo/tmp/pack-" DV_FAULT_WRITE_ERRNO=$err DV_FAULT_WRITE_AFTER=300000 \
		"$DISKVAULT" --progress=never --repo "$repo" backup "$T/disk.img" --all-blocks
	[ "$(echo "$STDERR" | wc -l)" -eq 1 ] || fail "expected one error line, got: $STDERR"
	assert_contains "$STDERR" "pack"
	expect_ok dv --repo "$repo" check
	ls "$repo"/tmp/pack-* >/dev/null 2>&1 && fail "a failed backup left its pack spool file"
done
before=$(dv --repo "$repo" list --json | python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin)["snapshots"] if s["name"] == "before"][0])')
expect_ok dv --repo "$repo" restore "$before" "$T/before.img" -q
[ "$(stat -c %s "$T/before.img")" -eq "$size" ] || fail "earlier snapshot restores to the wrong size"
# ENOSPC on small objects too (index, disk index, manifest go through tmp/).
expect_exit 14 fi_run env DV_FAULT_WRITE_PATH="$repo/tmp/" DV_FAULT_WRITE_ERRNO=ENOSPC DV_FAULT_WRITE_AFTER=0 \
	"$DISKVAULT" --progress=never --repo "$repo" backup "$T/disk.img" --all-blocks
expect_ok dv --repo "$repo" check
expect_ok dv --repo "$repo" backup "$T/disk.img" --all-blocks -q
expect_ok dv --repo "$repo" restore latest "$T/out2.img" -q
cmp -s "$T/disk.img" "$T/out2.img" || fail "backup after the faults does not restore bit-exact"
