#!/bin/bash
# t_s3_restore_dedup.sh - restore from S3 plans its reads and downloads each
# chunk once: a disk whose content repeats (the same 6 MiB at four far-apart
# offsets) is restored bit-exact, each repeated chunk is written at all its
# offsets from one download (restore --json bytes_dedup equals what the
# backup deduplicated), the download stays within 1.1x the stored packs
# although the disk uses them ~2.5 times, and each pack (1 MiB here, below
# the 8 MiB range limit) is one ranged GET: at most one request per pack on
# top of the metadata reads, the same with --threads 8 (the reading before
# planned reads took 216 requests). DISKVAULT_READ_GAP=0 reads every blob
# on its own: no byte between blobs is downloaded.
# Also: `copy` to S3 lists the destination once per directory instead of
# asking object by object.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up

IMG=$T/disk.img
truncate -s 40M "$IMG"
seeded_bytes dedup-rep $((6 * MiB)) >"$T/rep"
seeded_bytes dedup-uniq $((10 * MiB)) >"$T/uniq"
for at in 1 12 23 34; do dd if="$T/rep" of="$IMG" bs=1M seek=$at conv=notrunc status=none; done
dd if="$T/uniq" of="$IMG" bs=1M seek=7 count=5 conv=notrunc status=none
dd if="$T/uniq" of="$IMG" bs=1M seek=18 skip=5 count=5 conv=notrunc status=none

# Small packs so the disk spans several objects and the copy several uploads.
R=s3://$BUCKET/dedup
expect_ok dv --repo "$R" init --no-encrypt --pack-size 1
backup_json "$R" "$IMG" --all-blocks
DEDUP=$(json_get "$BACKUP_JSON" 'j["bytes_dedup"]')
[ "$DEDUP" -ge $((17 * MiB)) ] || fail "the backup deduplicated only $DEDUP bytes: $BACKUP_JSON"
PACK_BYTES=$(awscli s3api list-objects-v2 --bucket "$BUCKET" --prefix dedup/packs/ --query 'sum(Contents[].Size)' --output text)

NPACKS=$(awscli s3api list-objects-v2 --bucket "$BUCKET" --prefix dedup/packs/ --query 'length(Contents)' --output text)
# The number of ranged reads a restore planned (its -vv debug line).
plan_ranges() { sed -n 's/.*chunk uses read as \([0-9]*\) ranges.*/\1/p' <<<"$STDERR"; }

rm -rf "$DISKVAULT_STATE_DIR" "$DISKVAULT_CACHE_DIR"
expect_ok dv --repo "$R" -vv --json restore latest "$T/out.img"
assert_same_file "$IMG" "$T/out.img"
GOT_DEDUP=$(json_get "$STDOUT" 'j["bytes_dedup"]')
[ "$GOT_DEDUP" -eq "$DEDUP" ] || fail "restore wrote $GOT_DEDUP bytes of repeated chunks, the backup deduplicated $DEDUP"
GOT=$(last_stats 'j["bytes_received"]')
REQ_DEFAULT=$(last_stats 'j["requests"]')
RANGES=$(plan_ranges)
note "restore downloaded $GOT bytes for $PACK_BYTES bytes of $NPACKS packs ($REQ_DEFAULT requests, $RANGES ranges)"
[ "$GOT" -le $((PACK_BYTES * 11 / 10)) ] || fail "restore downloaded $GOT bytes, the packs hold $PACK_BYTES"
[ -n "$RANGES" ] && [ "$RANGES" -ge 1 ] && [ "$RANGES" -le "$NPACKS" ] ||
	fail "restore read $NPACKS packs as '$RANGES' ranges"
# The bytes between blobs are at most 5% of the blob bytes (restore --json
# bytes_read counts both).
GAPB=$(sed -n 's/.*ranges (\([0-9]*\) bytes between blobs).*/\1/p' <<<"$STDERR")
READ=$(json_get "$STDOUT" 'j["bytes_read"]')
[ -n "$GAPB" ] && [ $((GAPB * 20)) -le $((READ - GAPB)) ] || fail "restore read '$GAPB' bytes between blobs of $READ"
[ "$READ" -le "$GOT" ] || fail "restore counted $READ bytes read, the S3 store received $GOT"
# the other requests: config, lock, snapshot listing and manifest, index
# segments, disk index (13 at the time of writing)
[ "$REQ_DEFAULT" -le $((RANGES + 16)) ] || fail "restore made $REQ_DEFAULT requests for $RANGES ranges"

# Many workers (a server with many CPUs, or --threads) read the same plan:
# the same requests and bytes.
rm -rf "$DISKVAULT_STATE_DIR" "$DISKVAULT_CACHE_DIR" "$T/out.img"
expect_ok dv --repo "$R" -vv --json restore latest "$T/out.img" --threads 8
assert_same_file "$IMG" "$T/out.img"
assert_contains "$STDERR" "ranges (" "restore --threads 8 -vv"
assert_contains "$STDERR" "8 readers" "restore --threads 8 -vv"
REQ8=$(last_stats 'j["requests"]')
GOT8=$(last_stats 'j["bytes_received"]')
note "restore --threads 8: $REQ8 requests (default: $REQ_DEFAULT), $GOT8 bytes"
[ "$REQ8" -eq "$REQ_DEFAULT" ] || fail "restore --threads 8 made $REQ8 requests, the default run $REQ_DEFAULT"
[ "$GOT8" -eq "$GOT" ] || fail "restore --threads 8 downloaded $GOT8 bytes, the default run $GOT"

# No gap allowed: one range per distinct chunk, no byte between blobs.
rm -f "$T/out.img"
DISKVAULT_READ_GAP=0 expect_ok dv --repo "$R" -vv --json restore latest "$T/out.img"
assert_same_file "$IMG" "$T/out.img"
assert_contains "$STDERR" "(0 bytes between blobs)" "restore with DISKVAULT_READ_GAP=0"
GOT0=$(last_stats 'j["bytes_received"]')
RANGES0=$(plan_ranges)
note "restore with DISKVAULT_READ_GAP=0: $RANGES0 ranges, $GOT0 bytes"
[ "$RANGES0" -gt "$RANGES" ] || fail "DISKVAULT_READ_GAP=0 read $RANGES0 ranges, the default $RANGES"
[ "$GOT0" -lt "$GOT" ] || fail "DISKVAULT_READ_GAP=0 downloaded $GOT0 bytes, the default $GOT"

# The same snapshot from a local copy is bit-exact too, with the same plan.
L=$T/local
expect_ok dv copy --from "$R" --to "$L"
rm -f "$T/out.img"
expect_ok dv --repo "$L" --json restore latest "$T/out.img"
assert_same_file "$IMG" "$T/out.img"
GOT_DEDUP=$(json_get "$STDOUT" 'j["bytes_dedup"]')
[ "$GOT_DEDUP" -eq "$DEDUP" ] || fail "local restore wrote $GOT_DEDUP bytes of repeated chunks, the backup deduplicated $DEDUP"

# copy back to S3: one listing per directory, one HEAD for config, and the
# uploads; no per-object HEAD (each would wait for the queued uploads).
NOBJ=$(find "$L" -type f -not -path "$L/locks/*" -not -path "$L/tmp/*" | wc -l)
S=s3://$BUCKET/copy
expect_ok dv copy --from "$L" --to "$S" --json
[ "$(json_get "$STDOUT" 'j["objects_copied"]')" -eq "$NOBJ" ] || fail "copy: $STDOUT, $NOBJ objects"
REQ=$(last_stats 'j["requests"]')
note "copy of $NOBJ objects took $REQ requests"
expect_ok dv copy --from "$L" --to "$S" --json
[ "$(json_get "$STDOUT" 'j["objects_skipped"]')" -eq "$NOBJ" ] || fail "second copy: $STDOUT"
REQ2=$(last_stats 'j["requests"]')
note "copy with nothing to do: $REQ2 requests"
[ "$REQ2" -le 12 ] || fail "a copy with nothing to do made $REQ2 requests for $NOBJ objects"
rm -f "$T/out.img"
expect_ok dv --repo "$S" restore latest "$T/out.img"
assert_same_file "$IMG" "$T/out.img"
