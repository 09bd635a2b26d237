#!/bin/bash
# t_s3_prune.sh - forget and prune on an S3 repository delete with batched
# DeleteObjects requests, not one DELETE per object: the request counters
# (DISKVAULT_S3_STATS_FILE) match the objects that the official client sees
# disappear; repacking reads only the kept byte ranges of old packs;
# check --read-data passes and the kept snapshots restore bit-exact. Error
# paths through tests/servers/s3-fault-proxy.py: a key the server refuses
# (exit 6, the key named, nothing lost), NoSuchKey counted as deleted, keys
# refused as InternalError sent again, and an endpoint without DeleteObjects
# (501) served by single DELETEs.
# The unused-data budget (--max-unused, --max-repack-size), on a local
# repository with the same history: 0 leaves nothing unused (prune's counts
# agree with check and with the pack files), unlimited deletes dead packs
# and rewrites none, a size in between is kept to, the repack cap holds,
# the default is 5 %; restores stay bit-exact; bad values are one-line
# usage errors (exit 2) that change nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up

P=prune
R=s3://$BUCKET/$P

# keys FILE: "key size" lines of every object under the repository, sorted.
keys() {
	awscli s3api list-objects-v2 --bucket "$BUCKET" --prefix "$P/" --output json |
		python3 -c 'import json, sys
t = sys.stdin.read().strip()
for o in (json.loads(t).get("Contents") or []) if t else []:
    print(o["Key"], o["Size"])' | sort >"$1" || fail "list-objects-v2 failed"
}

# Five snapshots of an 8 MiB disk whose history leaves dead packs and packs
# that are partly garbage once the first three are forgotten: [0,2M) is
# rewritten in 2, every other 256 KiB of it in 3, two 128 KiB stretches
# inside [4M,5M) in 4 (dead blobs between live ones in a pack of snapshot 1)
# and [6M,6.5M) in 5.
seeded_bytes base $((8 * MiB)) >"$T/d1.img"
cp "$T/d1.img" "$T/d2.img"
mutate "$T/d2.img" two 0 512
cp "$T/d2.img" "$T/d3.img"
for off in 0 512 1024 1536; do mutate "$T/d3.img" "three$off" $((off * 1024)) 64; done
cp "$T/d3.img" "$T/d4.img"
for k in 17 19; do mutate "$T/d4.img" "four$k" $((k * MiB / 4)) 32; done
cp "$T/d4.img" "$T/d5.img"
mutate "$T/d5.img" five $((6 * MiB)) 128

init_repo "$R" --pack-size 1
SNAPS=()
for i in 1 2 3 4 5; do
	cp "$T/d$i.img" "$T/disk.img"   # one source: one retention group
	backup_json "$R" "$T/disk.img" --all-blocks
	SNAPS+=("$SNAP")
done

# forget: the three snapshot objects go in one DeleteObjects request.
keys "$T/k0"
rm -f "$DISKVAULT_S3_STATS_FILE"
expect_ok dv --repo "$R" forget --keep-last 2
note "forget: $(tail -1 "$DISKVAULT_S3_STATS_FILE")"
keys "$T/k1"
gone=$(comm -23 <(cut -d' ' -f1 "$T/k0") <(cut -d' ' -f1 "$T/k1"))
want=$(printf '%s\n' "$P/snapshots/${SNAPS[0]}" "$P/snapshots/${SNAPS[1]}" "$P/snapshots/${SNAPS[2]}" | sort)
[ "$gone" = "$want" ] || fail "forget deleted [$gone], expected [$want]"
[ "$(last_stats 'j["delete_objects_requests"]')" = 1 ] || fail "forget: expected 1 DeleteObjects request"
# every DeleteObject (single) request is a lock file; the batch confirmed 3 keys
[ "$(last_stats 'j["keys_deleted"] - j["delete_requests"]')" = 3 ] ||
	fail "forget: keys_deleted does not count the 3 snapshots: $(tail -1 "$DISKVAULT_S3_STATS_FILE")"

# prune, with batches of at most 4 keys so that batching is visible.
rm -f "$DISKVAULT_S3_STATS_FILE"
expect_ok env DISKVAULT_S3_DELETE_BATCH=4 "$DISKVAULT" --progress=never --repo "$R" prune --max-unused 0 --json
PRUNE=$(json_get "$STDOUT" 'j["prune"]')
STATS=$(tail -1 "$DISKVAULT_S3_STATS_FILE")
note "prune: $PRUNE"
note "prune requests: $STATS"
keys "$T/k2"
comm -23 <(cut -d' ' -f1 "$T/k1") <(cut -d' ' -f1 "$T/k2") | grep -v "^$P/locks/" >"$T/gone" || true
ngone=$(wc -l <"$T/gone")
[ "$ngone" -gt 5 ] || fail "prune deleted only $ngone objects"
# One request per batch of 4 within each step: old index segments, packs,
# disk indexes.
want_req=0
for pre in index packs diskindex; do
	n=$(grep -c "^$P/$pre/" "$T/gone" || true)
	want_req=$((want_req + (n + 3) / 4))
done
got_req=$(json_get "$STATS" 'j["delete_objects_requests"]')
[ "$got_req" = "$want_req" ] ||
	fail "prune: $got_req DeleteObjects requests for $ngone objects, expected $want_req: $(cat "$T/gone")"
[ "$(json_get "$STATS" 'j["keys_deleted"] - j["delete_requests"]')" = "$ngone" ] ||
	fail "prune: the server confirmed another number of deletions than the $ngone objects gone: $STATS"
[ "$(json_get "$STATS" 'j["delete_requests"]')" -le 3 ] || fail "prune: single DELETEs besides the lock: $STATS"
# Nothing that a kept snapshot needs is among them, and no garbage is left.
packs_left=$(grep -c "^$P/packs/" "$T/k2")
[ "$(json_get "$PRUNE" 'j["packs_repacked"]')" -ge 2 ] || fail "prune repacked fewer than 2 packs: $PRUNE"
[ "$(json_get "$PRUNE" 'j["packs_deleted"]')" -ge 1 ] || fail "prune deleted no dead pack: $PRUNE"
# Repacking read only the kept ranges (plus pack member headers and gaps
# under 16 KiB between them), never whole packs.
json_get "$PRUNE" 'j' | python3 -c 'import json, sys
j = json.load(sys.stdin)
assert j["bytes_repacked"] > 0, j
assert j["bytes_repacked"] <= j["bytes_read"] <= j["bytes_repacked"] + j["range_reads"] * 16384, j
assert j["range_reads"] > j["packs_repacked"], j' || fail "repack read more than the kept ranges: $PRUNE"

expect_ok dv --repo "$R" check --read-data --json
[ "$(json_get "$STDOUT" 'j["ok"]')" = true ] || fail "check after prune: $STDOUT"
assert_not_contains "$STDOUT$STDERR" "garbage" "check after prune"
# --max-unused 0: nothing unused is left, as check and the listing agree.
[ "$(json_get "$PRUNE" '[j["bytes_unused_after"], j["unused_limit"]]')" = "[0, 0]" ] ||
	fail "--max-unused 0 left unused bytes: $PRUNE"
[ "$(json_get "$STDOUT" '[j["unreferenced_bytes"], j["unreferenced_chunks"], j["unindexed_packs"]]')" = "[0, 0, 0]" ] ||
	fail "check finds unused data after --max-unused 0: $STDOUT"
[ "$(awk -v p="$P/packs/" 'index($1, p) == 1 { s += $2 } END { print s + 0 }' "$T/k2")" = \
	"$(json_get "$PRUNE" 'j["bytes_after"]')" ] || fail "the packs listed do not add up to bytes_after: $PRUNE"
expect_ok dv --repo "$R" list --json
[ "$(json_get "$STDOUT" 'sorted(s["id"] for s in j["snapshots"])')" = \
	"$(python3 -c 'import json, sys; print(json.dumps(sorted(sys.argv[1:])))' "${SNAPS[3]}" "${SNAPS[4]}")" ] ||
	fail "the kept snapshots are not exactly 4 and 5: $STDOUT"
restore_check "$R" "${SNAPS[3]}" "$T/d4.img"
restore_check "$R" "${SNAPS[4]}" "$T/d5.img"
# A second prune finds nothing to do.
rm -f "$DISKVAULT_S3_STATS_FILE"
expect_ok dv --repo "$R" prune --max-unused 0 --json
[ "$(json_get "$STDOUT" 'j["prune"]["packs_deleted"] + j["prune"]["packs_repacked"]')" = 0 ] ||
	fail "a second prune still found work: $STDOUT"
[ "$(last_stats 'j["delete_objects_requests"]')" = 0 ] || fail "a prune with nothing to delete sent DeleteObjects"
keys "$T/k3"
[ "$(grep -c "^$P/packs/" "$T/k3")" = "$packs_left" ] || fail "the second prune changed the packs"

# ---- error paths (through the fault proxy) ----
seeded_bytes six $((2 * MiB)) >"$T/d6.img"
seeded_bytes seven $((2 * MiB)) >"$T/d7.img"
cp "$T/d6.img" "$T/disk.img"
backup_json "$R" "$T/disk.img" --all-blocks
S6=$SNAP
cp "$T/d7.img" "$T/disk.img"
backup_json "$R" "$T/disk.img" --all-blocks
S7=$SNAP

# A key the server refuses: exit 6, one line naming the key and the code;
# nothing was deleted (the proxy forwards nothing).
keys "$T/e0"
proxy_up --fault delerr:1:AccessDenied
expect_exit 6 env AWS_ENDPOINT_URL="$PROXY_URL" "$DISKVAULT" --progress=never --repo "$R" forget --keep-last 1
proxy_down
assert_contains "$STDERR" "AccessDenied" "refused delete"
assert_contains "$STDERR" "$P/snapshots/" "refused delete"
[ "$(grep -c . <<<"$STDERR")" = 1 ] || fail "expected one error line: $STDERR"
[ "$(grep -c ' POST .*?delete ' "$PROXY_LOG")" = 1 ] || fail "a refused key was retried: $(cat "$PROXY_LOG")"
keys "$T/e1"
[ "$(comm -23 <(cut -d' ' -f1 "$T/e0") <(cut -d' ' -f1 "$T/e1") | grep -vc "/locks/")" = 0 ] ||
	fail "objects vanished although the delete was refused"

# Keys refused as InternalError are sent again and then deleted.
proxy_up --fault delerr:1:InternalError
rm -f "$DISKVAULT_S3_STATS_FILE"
expect_ok env AWS_ENDPOINT_URL="$PROXY_URL" "$DISKVAULT" --progress=never --repo "$R" forget --keep-last 3
proxy_down
[ "$(grep -c ' POST .*?delete ' "$PROXY_LOG")" = 2 ] || fail "InternalError keys were not resent once: $(cat "$PROXY_LOG")"
[ "$(last_stats 'j["delete_objects_requests"]')" = 2 ] || fail "expected 2 DeleteObjects requests"
keys "$T/e2"
grep -q "^$P/snapshots/${SNAPS[3]} " "$T/e2" && fail "snapshot 4 was not deleted after the InternalError retry"

# NoSuchKey counts as deleted: forget succeeds (the proxy deleted nothing,
# so the snapshot is still there for the next step).
proxy_up --fault delerr:1:NoSuchKey
expect_ok env AWS_ENDPOINT_URL="$PROXY_URL" "$DISKVAULT" --progress=never --repo "$R" forget --keep-last 2
proxy_down
[ "$(grep -c ' delerr ' "$PROXY_LOG")" = 1 ] || fail "the NoSuchKey answer was not served: $(cat "$PROXY_LOG")"
keys "$T/e3"
grep -q "^$P/snapshots/${SNAPS[4]} " "$T/e3" || fail "the proxy let a delete through"

# An endpoint without DeleteObjects (501): one DELETE per object instead.
keys "$T/f0"
proxy_up --fault noimpl:POST:?delete
rm -f "$DISKVAULT_S3_STATS_FILE"
expect_ok env AWS_ENDPOINT_URL="$PROXY_URL" "$DISKVAULT" --progress=never --repo "$R" forget --keep-last 2 --prune --json
proxy_down
keys "$T/f1"
comm -23 <(cut -d' ' -f1 "$T/f0") <(cut -d' ' -f1 "$T/f1") | grep -v "/locks/" >"$T/fgone" || true
nf=$(wc -l <"$T/fgone")
grep -q "^$P/snapshots/${SNAPS[4]}$" "$T/fgone" || fail "snapshot 5 was not deleted by single DELETEs"
[ "$nf" -gt 2 ] || fail "the fallback deleted only $nf objects"
[ "$(grep -c ' 501 ' "$PROXY_LOG")" = 1 ] || fail "DeleteObjects was tried more than once after a 501: $(cat "$PROXY_LOG")"
[ "$(grep -c " DELETE /$BUCKET/$P/[^l]" "$PROXY_LOG")" = "$nf" ] ||
	fail "expected $nf single DELETEs of repository objects: $(cat "$PROXY_LOG")"
expect_ok dv --repo "$R" check --read-data
restore_check "$R" "$S6" "$T/d6.img"
restore_check "$R" "$S7" "$T/d7.img"

# ---- the unused-data budget, on a local repository ----
L=$T/local
init_repo "$L" --pack-size 1
LS=()
for i in 1 2 3 4 5; do
	cp "$T/d$i.img" "$T/disk.img"
	backup_json "$L" "$T/disk.img" --all-blocks
	LS+=("$SNAP")
done
expect_ok dv --repo "$L" forget --keep-last 2
pack_files "$L" >"$T/p0"

# check_unused PRUNE_JSON: check agrees with prune about the unused bytes
# left, the pack files add up to bytes_after, both snapshots restore.
check_unused() {
	expect_ok dv --repo "$L" check --json
	[ "$(json_get "$STDOUT" 'j["unreferenced_bytes"]')" = "$(json_get "$1" 'j["bytes_unused_after"]')" ] ||
		fail "check's unreferenced_bytes differ from prune's bytes_unused_after: $STDOUT vs $1"
	[ "$(json_get "$STDOUT" 'j["unindexed_packs"]')" = 0 ] || fail "prune left unindexed packs: $STDOUT"
	[ "$(pack_files "$L" | xargs stat -c %s | awk '{ s += $1 } END { print s + 0 }')" = \
		"$(json_get "$1" 'j["bytes_after"]')" ] || fail "pack files do not add up to bytes_after: $1"
	restore_check "$L" "${LS[3]}" "$T/d4.img"
	restore_check "$L" "${LS[4]}" "$T/d5.img"
}

# usage_error CMD TEXT: $STDERR is one line "diskvault CMD: ..." holding
# TEXT, then the usual hint at the command's help.
usage_error() {
	local first=${STDERR%%$'\n'*}
	assert_contains "$first" "diskvault $1: " "usage error"
	assert_contains "$first" "$2" "usage error"
	[ "$STDERR" = "$first"$'\n'"Try 'diskvault $1 --help'." ] || fail "not one error line and the hint: $STDERR"
}

# (d) Bad values: exit 2, one line naming the option and value, nothing done.
for bad in "--max-unused 100%" "--max-unused 5x" "--max-unused -1" "--max-unused 5%%" "--max-unused ''" \
	"--max-repack-size lots" "--max-repack-size 1.5" "--max-repack-size 1.G"; do
	eval "set -- $bad"
	expect_exit 2 dv --repo "$L" prune "$@"
	usage_error prune "$1 '$2': expected a"
	expect_exit 2 dv --repo "$L" forget --keep-last 1 --prune "$@"
	usage_error forget "$1 '$2': expected a"
done
expect_exit 2 dv --repo "$L" prune --repack-threshold 20
usage_error prune "--repack-threshold"
expect_exit 2 dv --repo "$L" forget --keep-last 1 --max-unused 0
usage_error forget "--max-unused applies to the prune: give --prune too"
expect_ok dv --repo "$L" list --json
[ "$(json_get "$STDOUT" 'len(j["snapshots"])')" = 2 ] || fail "a refused forget --prune removed snapshots: $STDOUT"
pack_files "$L" | cmp -s - "$T/p0" || fail "a refused prune changed the packs"

# The default is 5 % of the repository after prune (dry run: nothing done).
expect_ok dv --repo "$L" --json prune --dry-run
DRY=$(json_get "$STDOUT" 'j["prune"]')
[ "$(json_get "$DRY" 'j["unused_limit"] == j["bytes_used"] * 5 // 95')" = true ] ||
	fail "the default limit is not 5% of the repository: $DRY"
[ "$(json_get "$DRY" 'j["bytes_unused_after"] <= j["unused_limit"] and j["packs_deleted"] >= 1')" = true ] ||
	fail "the default dry run: $DRY"
pack_files "$L" | cmp -s - "$T/p0" || fail "a dry run changed the packs"

# (b) unlimited: the dead packs go, nothing is rewritten, no pack is new.
expect_ok dv --repo "$L" --json prune --max-unused unlimited
B=$(json_get "$STDOUT" 'j["prune"]')
note "prune --max-unused unlimited: $B"
[ "$(json_get "$B" '[j["packs_repacked"], j["packs_written"], j["bytes_written"], j["unused_limit"]]')" = \
	"[0, 0, 0, null]" ] || fail "--max-unused unlimited rewrote packs: $B"
pack_files "$L" >"$T/p1"
[ "$(comm -13 "$T/p0" "$T/p1" | wc -l)" = 0 ] || fail "--max-unused unlimited made new packs"
[ "$(comm -23 "$T/p0" "$T/p1" | wc -l)" = "$(json_get "$B" 'j["packs_deleted"]')" ] ||
	fail "packs gone differ from packs_deleted: $B"
[ "$(json_get "$B" 'j["packs_deleted"] >= 1 and j["bytes_unused_after"] > 0')" = true ] ||
	fail "the history should leave dead packs and partly used ones: $B"
[ "$(json_get "$B" 'j["bytes_unused_after"] + j["bytes_used"] < j["bytes_unused_before"] + j["bytes_used"]')" = true ] ||
	fail "deleting dead packs freed no unused bytes: $B"
check_unused "$B"
UNUSED=$(json_get "$B" 'j["bytes_unused_after"]')

# --max-repack-size below every pack's used bytes: nothing fits, nothing is
# rewritten even with --max-unused 0.
expect_ok dv --repo "$L" --json prune --max-unused 0 --max-repack-size 1
[ "$(json_get "$STDOUT" '[j["prune"]["packs_repacked"], j["prune"]["bytes_unused_after"]]')" = "[0, $UNUSED]" ] ||
	fail "--max-repack-size 1 rewrote a pack: $STDOUT"

# A size in between: kept to, with at least one pack rewritten.
HALF=$((UNUSED / 2))
expect_ok dv --repo "$L" --json prune --max-unused "$HALF"
M=$(json_get "$STDOUT" 'j["prune"]')
note "prune --max-unused $HALF: $M"
[ "$(json_get "$M" "j['unused_limit'] == $HALF and 0 < j['bytes_unused_after'] <= $HALF and j['packs_repacked'] >= 1")" = true ] ||
	fail "--max-unused $HALF not kept to: $M"
check_unused "$M"

# (a) 0: nothing unused is left; a second prune finds nothing to do.
expect_ok dv --repo "$L" --json prune --max-unused 0
Z=$(json_get "$STDOUT" 'j["prune"]')
[ "$(json_get "$Z" '[j["bytes_unused_after"], j["packs_deleted"]]')" = "[0, 0]" ] || fail "--max-unused 0: $Z"
[ "$(json_get "$Z" 'j["packs_repacked"] >= 1')" = true ] || fail "--max-unused 0 rewrote nothing: $Z"
check_unused "$Z"
expect_ok dv --repo "$L" --json prune --max-unused 0
[ "$(json_get "$STDOUT" '[j["prune"][k] for k in ("packs_deleted", "packs_repacked", "bytes_unused_before")]')" = \
	"[0, 0, 0]" ] || fail "a second prune still found work: $STDOUT"
expect_ok dv --repo "$L" check --read-data
