#!/usr/bin/env bash
# A month of nightly backups with retention: 35 nights of a disk that
# changes a little each night, `forget --prune` after each night under a
# keep-daily 7 / keep-weekly 4 / keep-monthly 3 policy. Asserts: exactly
# the snapshots an independent implementation of the rules expects remain,
# the repository stays bounded, every remaining snapshot restores
# bit-exact, and prunes killed at random points followed by a full prune
# leave everything intact.
source "$(dirname "$0")/lib.sh"

repo=$T/repo
img=$T/disk.img
python3 - "$img" <<'PY'
import random, sys
r = random.Random(7)
with open(sys.argv[1], "wb") as f:
    f.write(bytes(r.getrandbits(8) for _ in range(12 * 1024 * 1024)))
    for i in range(200000):
        f.write(b"log line %08d: nightly job ran fine\n" % i)
PY
size=$(stat -c %s "$img")
expect_ok dv --repo "$repo" init --no-encrypt --chunk-size 64 --pack-size 1
declare -A sha_of_time
for night in $(seq 0 34); do
	# Deterministic nightly change: 256 KiB rewritten in place, 8 scattered 4 KiB blocks.
	python3 - "$img" "$night" <<'PY'
import random, sys
path, night = sys.argv[1], int(sys.argv[2])
r = random.Random(1000 + night)
with open(path, "r+b") as f:
    size = f.seek(0, 2)
    off = r.randrange(0, size - 262144) & ~4095
    f.seek(off); f.write(bytes(r.getrandbits(8) for _ in range(262144)))
    for _ in range(8):
        f.seek(r.randrange(0, size - 4096) & ~4095); f.write(bytes(r.getrandbits(8) for _ in range(4096)))
PY
	t=$(date -u -d "2026-01-01 03:00:00 UTC + $night days" +%Y-%m-%dT%H:%M:%SZ)
	sha_of_time[$t]=$(sha256sum <"$img" | cut -d' ' -f1)
	expect_ok dv --repo "$repo" backup "$img" --all-blocks --time "$t" --host nightly -q
	expect_ok dv --repo "$repo" forget --keep-daily 7 --keep-weekly 4 --keep-monthly 3 --prune --json
done
last_forget=$STDOUT

# Independent expectation: restic's rules with UTC calendar buckets.
expected=$(python3 - <<'PY'
import datetime
times = [datetime.datetime(2026, 1, 1, 3, tzinfo=datetime.timezone.utc) + datetime.timedelta(days=n) for n in range(35)]
def keep(times, rules):
    kept = set()
    for key, n in rules:
        last = None
        for t in sorted(times, reverse=True):
            b = key(t)
            if n > 0 and b != last:
                kept.add(t); n -= 1; last = b
    return kept
# Applying the policy every night and forgetting as we go keeps the same
# set as applying it once at the end: each rule keeps the newest snapshot
# of each bucket, and a bucket's newest snapshot is never forgotten earlier.
rules = [(lambda t: t.date(), 7), (lambda t: t.isocalendar()[:2], 4), (lambda t: (t.year, t.month), 3)]
for t in sorted(keep(times, rules)):
    print(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
PY
)
actual=$(dv --repo "$repo" list --json | python3 -c 'import json,sys; [print(s["time"]) for s in json.load(sys.stdin)["snapshots"]]' | sort)
[ "$actual" = "$expected" ] || fail "remaining snapshots differ from the retention rules:
expected:
$expected
actual:
$actual"
n_kept=$(echo "$actual" | wc -l)
note "$n_kept snapshots remain: $(echo $actual)"

# Bounded: the data of the disk once plus the nightly changes of the kept
# snapshots (each under 1 MiB of new chunks), with room for pack overhead.
repo_bytes=$(du -sb "$repo" | cut -f1)
bound=$((size + n_kept * 1536 * 1024 + 4 * MiB))
note "repository $repo_bytes bytes for a $size-byte disk (bound $bound)"
[ "$repo_bytes" -lt "$bound" ] || fail "repository grew to $repo_bytes bytes, over the bound $bound"
echo "$last_forget" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["ok"] and j["kept"] > 0, j'

restore_all() {
	local s t
	for s in $(dv --repo "$repo" list --json | python3 -c 'import json,sys; [print(s["id"] + " " + s["time"]) for s in json.load(sys.stdin)["snapshots"]]' | tr ' ' ':'); do
		t=${s#*:}
		expect_ok dv --repo "$repo" restore "${s%%:*}" "$T/out.img" --force -q
		[ "$(sha256sum <"$T/out.img" | cut -d' ' -f1)" = "${sha_of_time[$t]}" ] || fail "snapshot of $t does not restore bit-exact"
	done
}
restore_all
expect_ok dv --repo "$repo" check --read-data

# Forget more, then kill prunes at random points; a full prune afterwards
# must leave a repository that check passes and that restores everything.
expect_ok dv --repo "$repo" forget --keep-daily 3 --keep-monthly 2
for delay in 0.01 0.03 0.05 0.08 0.12 0.2; do
	"$DISKVAULT" --progress=never --repo "$repo" prune --max-unused 0 -q &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	# The killed prune's lock stays behind; its pid is dead, so it is stale.
	expect_ok dv --repo "$repo" check
done
expect_ok dv --repo "$repo" prune --max-unused 0 --json
echo "$STDOUT" | python3 -c 'import json,sys; j=json.load(sys.stdin)["prune"]; assert j["bytes_after"] <= j["bytes_before"], j'
expect_ok dv --repo "$repo" check --read-data --json
echo "$STDOUT" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["errors"] == 0 and j["unreferenced_chunks"] == 0 and j["unindexed_packs"] == 0, j'
restore_all
