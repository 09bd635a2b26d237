#!/bin/bash
# t_s3_restore_dedup.sh - restore from S3 downloads each chunk once: a disk
# whose content repeats (the same 6 MiB at four far-apart offsets) is
# restored bit-exact, the repeats are read back from the target (restore
# --json bytes_dedup equals what the backup deduplicated), and the download
# stays within 1.1x the stored packs although the disk uses them ~2.5 times,
# also with --threads 8.
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
expect_ok dv --repo "$R" init --pack-size 1
backup_json "$R" "$IMG" --all-blocks
DEDUP=$(json_get "$BACKUP_JSON" 'j["bytes_dedup"]')
[ "$DEDUP" -ge $((17 * MiB)) ] || fail "the backup deduplicated only $DEDUP bytes: $BACKUP_JSON"
PACK_BYTES=$(awscli s3api list-objects-v2 --bucket "$BUCKET" --prefix dedup/packs/ --query 'sum(Contents[].Size)' --output text)

rm -rf "$DISKVAULT_STATE_DIR" "$DISKVAULT_CACHE_DIR"
expect_ok dv --repo "$R" --json restore latest "$T/out.img"
assert_same_file "$IMG" "$T/out.img"
GOT_DEDUP=$(json_get "$STDOUT" 'j["bytes_dedup"]')
[ "$GOT_DEDUP" -eq "$DEDUP" ] || fail "restore copied $GOT_DEDUP bytes within the target, the backup deduplicated $DEDUP"
GOT=$(last_stats 'j["bytes_received"]')
note "restore downloaded $GOT bytes for $PACK_BYTES bytes of packs ($(last_stats 'j["requests"]') requests)"
[ "$GOT" -le $((PACK_BYTES * 11 / 10)) ] || fail "restore downloaded $GOT bytes, the packs hold $PACK_BYTES"
REQ_DEFAULT=$(last_stats 'j["requests"]')

# Many workers (a server with many CPUs, or --threads) read through the same
# read-ahead as two: a remote restore caps its readers at 2, so the requests
# and bytes stay those of the default run (8 workers interleaving chunk by
# chunk made its windows into thousands of small ranged GETs).
rm -rf "$DISKVAULT_STATE_DIR" "$DISKVAULT_CACHE_DIR" "$T/out.img"
expect_ok dv --repo "$R" -vv --json restore latest "$T/out.img" --threads 8
assert_same_file "$IMG" "$T/out.img"
assert_contains "$STDERR" "with 2 threads instead of 8" "restore --threads 8 -vv"
REQ8=$(last_stats 'j["requests"]')
GOT8=$(last_stats 'j["bytes_received"]')
note "restore --threads 8: $REQ8 requests (default: $REQ_DEFAULT), $GOT8 bytes"
[ "$REQ8" -le $((REQ_DEFAULT * 3 / 2 + 4)) ] || fail "restore --threads 8 made $REQ8 requests, the default run $REQ_DEFAULT"
[ "$GOT8" -le $((PACK_BYTES * 11 / 10)) ] || fail "restore --threads 8 downloaded $GOT8 bytes, the packs hold $PACK_BYTES"

# The same snapshot from a local copy (reads packs, nothing copied within
# the target) is bit-exact too.
L=$T/local
expect_ok dv copy --from "$R" --to "$L"
rm -f "$T/out.img"
expect_ok dv --repo "$L" --json restore latest "$T/out.img"
assert_same_file "$IMG" "$T/out.img"

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
