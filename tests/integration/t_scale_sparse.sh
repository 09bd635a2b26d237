#!/bin/bash
# t_scale_sparse.sh - sparse image files: holes cost nothing. A 1 GiB
# image file holding 16 MiB of data in 16 scattered pieces (some not
# 4 KiB-aligned) is backed up --all-blocks: bytes_read is the data (holes
# count as bytes_sparse), the kernel reads about that much (/proc/PID/io,
# cache evicted), it takes seconds, the disk index is the one reading the
# zeros gives (same digest as from a dense copy of a smaller image), and the
# restore is bit-exact (sha256 of the whole 1 GiB; 1 GiB keeps the two
# full hashes of holes within the CI budget on a loaded 2-core machine)
# and sparse.
DV_REAL_DISK=1
. "$(dirname "$0")/lib.sh"

[ -r /proc/self/io ] || { echo "SKIP: no /proc/PID/io (task I/O accounting) on this kernel" >&2; exit 77; }

GiB=$((1024 * MiB))
D=$T/sparse.img
truncate -s $GiB "$D"
# 16 pieces of 1 MiB at 63 MiB + 13 KiB strides: offsets not 4 KiB-aligned.
for i in $(seq 0 15); do
	seeded_bytes "sparse-$i" $MiB |
		dd of="$D" bs=1K seek=$((i * (63 * 1024 + 13))) conv=notrunc iflag=fullblock status=none
done
# The filesystem must know holes (SEEK_HOLE at 0 finds one before the end).
HOLE=$(python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); print(os.lseek(fd, 0, os.SEEK_HOLE))' "$D") ||
	{ echo "SKIP: SEEK_HOLE does not work on $T" >&2; exit 77; }
[ "$HOLE" -lt $GiB ] || { echo "SKIP: the filesystem of $T does not report holes" >&2; exit 77; }
SRC_SHA=$(sha "$D")

R=$T/repo
init_repo "$R"
sync "$D"
dd if="$D" iflag=nocache count=0 status=none
START=$(date +%s%N)
IO=$(
	"$DISKVAULT" --progress=never --repo "$R" --json backup --all-blocks "$D" >"$OUT_FILE" 2>"$ERR_FILE" || exit 1
	cat /proc/$BASHPID/io
) || { cat "$ERR_FILE" >&2; fail "backup of the sparse image failed"; }
MS=$((($(date +%s%N) - START) / 1000000))
J=$(cat "$OUT_FILE")
assert_json_ok "$J"
KREAD=$(awk '$1 == "read_bytes:" { print $2 }' <<<"$IO")
READ=$(json_get "$J" 'j["bytes_read"]')
SPARSE=$(json_get "$J" 'j["bytes_sparse"]')
note "sparse: ${MS} ms, bytes_read $READ, bytes_sparse $SPARSE, kernel read_bytes $KREAD: $J"
# The data is 16 MiB; reads round out to 4 KiB blocks at each piece's ends.
[ "$READ" -ge $((16 * MiB)) ] && [ "$READ" -le $((16 * MiB + 16 * 8192)) ] ||
	fail "bytes_read $READ is not the 16 MiB of data"
[ $((READ + SPARSE)) -eq $GiB ] || fail "bytes_read + bytes_sparse != 1 GiB: $J"
[ "$KREAD" -le $((READ + READ / 50 + 4 * MiB)) ] || fail "the kernel read $KREAD bytes for $READ planned"
[ "$MS" -lt 10000 ] || fail "backup of a 1 GiB image with 16 MiB of data took $MS ms"

# Reading the zeros gives the same disk index: a 128 MiB prefix of the image,
# sparse and dense, backs up to the same digest.
head -c $((128 * MiB)) "$D" >"$T/dense.img"   # head writes every byte: no holes
cp --sparse=always "$T/dense.img" "$T/prefix.img"
[ "$(stat -c %b "$T/dense.img")" -ge $((128 * MiB / 512)) ] || fail "dense copy has holes"
# digest IMG: backs IMG up and sets DIGEST (its disk digest).
digest() {
	backup_json "$R" --all-blocks "$1"
	expect_ok dv --repo "$R" --json show "$SNAP"
	DIGEST=$(json_get "$STDOUT" 'j["snapshot"]["disks"][0]["digest"]')
}
digest "$T/prefix.img"
DS=$DIGEST
[ "$(json_get "$BACKUP_JSON" 'j["bytes_sparse"]')" -gt 0 ] || fail "the sparse prefix showed no holes"
digest "$T/dense.img"
DD=$DIGEST
[ "$(json_get "$BACKUP_JSON" 'j["bytes_sparse"]')" -eq 0 ] || fail "the dense copy showed holes"
[ "$DS" = "$DD" ] || fail "the sparse image's disk index ($DS) differs from the dense copy's ($DD)"
# A filesystem that cannot report holes (lseek SEEK_DATA/SEEK_HOLE fails
# with EINVAL, injected): the image is read as a whole, to the same index.
if [ -n "${DV_FAULTINJECT:-}" ]; then
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
	expect_ok env LD_PRELOAD="$DV_FAULTINJECT" DV_FAULT_NOHOLES_PATH=prefix.img \
		"$DISKVAULT" --progress=never --repo "$R" --json backup --all-blocks "$T/prefix.img"
	[ "$(json_get "$STDOUT" 'j["bytes_sparse"]')" -eq 0 ] || fail "holes found although SEEK_DATA failed: $STDOUT"
	[ "$(json_get "$STDOUT" 'j["bytes_read"]')" -eq $((128 * MiB)) ] || fail "fallback did not read the image: $STDOUT"
	expect_ok dv --repo "$R" --json show "$(json_get "$STDOUT" 'j["snapshot"]')"
	[ "$(json_get "$STDOUT" 'j["snapshot"]["disks"][0]["digest"]')" = "$DS" ] ||
		fail "reading the holes gave another disk index than skipping them"
fi
rm -f "$T/dense.img" "$T/prefix.img"

# Restore: bit-exact over the whole 1 GiB, and sparse.
expect_ok dv --repo "$R" restore "$(json_get "$J" 'j["snapshot"]')" "$T/out.img"
[ "$(sha "$T/out.img")" = "$SRC_SHA" ] || fail "restored image differs from the sparse source"
ALLOC=$(($(stat -c %b "$T/out.img") * 512))
[ "$ALLOC" -lt $((64 * MiB)) ] || fail "restored image is not sparse: $ALLOC bytes allocated"
