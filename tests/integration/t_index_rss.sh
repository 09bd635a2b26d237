#!/bin/bash
# t_index_rss.sh - peak RSS of restore and an incremental backup does not
# grow with the repository's chunk index: 50k vs 500k index entries (the
# 500k ones load through the local cache file, formats/index-cache.md).
# In memory, 450k more entries would cost ~45 MiB.
. "$(dirname "$0")/lib.sh"
out=$(DISKVAULT_CACHE_DIR=$T/cache bash "$DV_SOURCE_DIR/tests/bench/index-rss.sh" 50000 500000)
echo "$out"
read -r n1 r1 b1 <<<"$(sed -n 1p <<<"$out")"
read -r n2 r2 b2 <<<"$(sed -n 2p <<<"$out")"
[ "$n1" = 50000 ] && [ "$n2" = 500000 ] || fail "bench output: $out"
# Under AddressSanitizer RSS is the sanitizer's (shadow memory, freed
# blocks held in quarantine): the run above still checks the cache path
# and the restored bytes, the memory bounds hold for the release build.
if grep -qa __asan_init "$DISKVAULT"; then
	note "built with AddressSanitizer: RSS bounds not checked ($r1/$r2 KiB restore, $b1/$b2 KiB backup)"
	exit 0
fi
# KiB; 8 MiB of slack for allocator noise
[ "$r2" -le $((r1 + 8192)) ] || fail "restore RSS grew from $r1 KiB to $r2 KiB"
[ "$b2" -le $((b1 + 8192)) ] || fail "backup RSS grew from $b1 KiB to $b2 KiB"
[ "$r2" -le $((96 * 1024)) ] || fail "restore RSS $r2 KiB above 96 MiB"
