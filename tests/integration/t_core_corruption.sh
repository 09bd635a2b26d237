#!/bin/bash
# t_core_corruption.sh - damage to one snapshot's objects is found, reported
# with exit 4 and a message naming the object, and loses nothing else: a
# truncated pack, a flipped bit inside a chunk blob, a missing pack, a
# corrupt snapshot manifest, a missing disk index. Each case starts from a
# fresh copy of a prepared repository holding two snapshots of different
# disks, whose data live in separate packs.
. "$(dirname "$0")/lib.sh"

P=$T/prepared
make_disk "$T/a.img" 48 corrupt-a
make_disk "$T/b.img" 48 corrupt-b
init_repo "$P"
backup_json "$P" "$T/a.img" --name a --all-blocks
A=$SNAP
pack_files "$P" >"$T/packs-a"
backup_json "$P" "$T/b.img" --name b --all-blocks
B=$SNAP
pack_files "$P" >"$T/packs-b-all"
[ -s "$T/packs-a" ] || fail "snapshot a wrote no pack"
comm -13 "$T/packs-a" "$T/packs-b-all" >"$T/packs-b"
[ -s "$T/packs-b" ] || fail "snapshot b wrote no pack of its own"
expect_ok dv --repo "$P" check

# A pack of snapshot a, as a path relative to the repository.
PACK_A=$(head -n1 "$T/packs-a")
PACK_A=${PACK_A#"$P"/}
PACK_A_ID=$(basename "$PACK_A")

fresh() {
	rm -rf "$T/r"
	cp -a "$P" "$T/r"
	R=$T/r
}

# The other snapshot is intact: restores bit-exact and verifies.
b_intact() {
	restore_check "$R" "$B" "$T/b.img"
	expect_ok dv --repo "$R" verify "$B"
}

# ---- (a) truncated pack ---------------------------------------------------
fresh
truncate -s $(($(stat -c %s "$R/$PACK_A") / 2)) "$R/$PACK_A"
expect_exit 4 dv --repo "$R" check
assert_contains "$STDERR" "${PACK_A_ID:0:16}" "check of a truncated pack"
expect_exit 4 dv --repo "$R" restore "$A" "$T/out.img"
assert_contains "$STDERR" "${PACK_A_ID:0:16}" "restore from a truncated pack"
expect_exit 4 dv --repo "$R" verify "$A"
assert_contains "$STDERR" "${PACK_A_ID:0:16}" "verify with a truncated pack"
rm -f "$T/out.img"
b_intact

# ---- (b) one flipped bit inside a chunk blob ------------------------------
fresh
# The middle byte of the data of a member in the middle of the pack.
FLIP=$(python3 - "$R/$PACK_A" <<-'EOF'
	import sys, tarfile
	path = sys.argv[1]
	with tarfile.open(path) as t:
	    ms = [m for m in t.getmembers() if m.name.endswith(".zst") and m.size > 1024]
	m = ms[len(ms) // 2]
	off = m.offset_data + m.size // 2
	with open(path, "r+b") as f:
	    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x10]))
	print(m.name[:-4])
EOF
)
[ "${#FLIP}" -eq 64 ] || fail "test bug: no chunk member to flip in $PACK_A"
note "flipped a bit in chunk $FLIP of $PACK_A"
expect_exit 4 dv --repo "$R" verify "$A"
assert_contains "$STDERR" "${FLIP:0:16}" "verify of a flipped bit (chunk id)"
assert_contains "$STDERR" "${PACK_A_ID:0:16}" "verify of a flipped bit (pack)"
assert_contains "$STDERR" "disk offset" "verify of a flipped bit (disk offset)"
assert_lines "$STDERR" 1 "verify of a flipped bit: stderr"
expect_exit 4 dv --repo "$R" restore "$A" "$T/out.img"
assert_contains "$STDERR" "${FLIP:0:16}" "restore of a flipped bit (chunk id)"
assert_contains "$STDERR" "disk offset" "restore of a flipped bit (disk offset)"
rm -f "$T/out.img"
expect_exit 4 dv --repo "$R" --json verify "$A"
[ "$(json_get "$STDOUT" 'j["exit_code"]')" = 4 ] || fail "verify --json: wrong exit_code: $STDOUT"
b_intact

# ---- (c) missing pack -----------------------------------------------------
fresh
rm "$R/$PACK_A"
expect_exit 4 dv --repo "$R" check
assert_contains "$STDERR" "${PACK_A_ID:0:16}" "check of a missing pack"
expect_exit 4 dv --repo "$R" restore "$A" "$T/out.img"
assert_contains "$STDERR" "${PACK_A_ID:0:16}" "restore with a missing pack"
assert_contains "$STDERR" "missing" "restore with a missing pack"
rm -f "$T/out.img"
expect_exit 4 dv --repo "$R" verify "$A"
assert_contains "$STDERR" "${PACK_A_ID:0:16}" "verify with a missing pack"
b_intact

# ---- (d) corrupt snapshot manifest: truncated, not JSON, a flipped byte ---
for how in truncate garbage flip; do
	fresh
	M=$R/snapshots/$A
	case $how in
	truncate) truncate -s $(($(stat -c %s "$M") / 2)) "$M" ;;
	garbage) printf '{"format": "diskvault-snapshot", "version": 1, "disks": [' >"$M" ;;
	flip) python3 -c 'import sys
p = sys.argv[1]; d = bytearray(open(p, "rb").read()); d[len(d) // 2] ^= 0x01; open(p, "wb").write(d)' "$M" ;;
	esac
	note "manifest: $how"
	expect_exit 4 dv --repo "$R" show "$A"
	assert_contains "$STDERR" "${A:0:16}" "show of a $how manifest"
	assert_lines "$STDERR" 1 "show of a $how manifest: stderr"
	# list skips it, names it and exits 3 (partial), listing b (issue 16)
	expect_exit 3 dv --repo "$R" list
	assert_contains "$STDERR" "${A:0:16}" "list with a $how manifest"
	assert_contains "$STDOUT" "${B:0:8}" "list with a $how manifest of a"
	expect_exit 4 dv --repo "$R" restore "$A" "$T/out.img"
	assert_contains "$STDERR" "${A:0:16}" "restore of a $how manifest"
	rm -f "$T/out.img"
	expect_exit 4 dv --repo "$R" check
	assert_contains "$STDERR" "${A:0:16}" "check with a $how manifest"
	b_intact
done

# ---- (f) missing disk index -----------------------------------------------
fresh
IX=$(json_get "$(cat "$R/snapshots/$A")" 'j["disks"][0]["index"]')
rm "$R/diskindex/$IX"
expect_exit 4 dv --repo "$R" restore "$A" "$T/out.img"
assert_contains "$STDERR" "${IX:0:16}" "restore with a missing disk index"
rm -f "$T/out.img"
expect_exit 4 dv --repo "$R" check
assert_contains "$STDERR" "${IX:0:16}" "check with a missing disk index"
b_intact

# The prepared repository itself was never touched.
R=$P
expect_ok dv --repo "$R" check
restore_check "$R" "$A" "$T/a.img"
b_intact
