#!/bin/bash
# t_s3_copy.sh - `diskvault copy` local -> S3 -> local: only missing
# objects move, an interrupted copy continues, a copy is the same
# repository (restores bit-exact, backups into it deduplicate), damage is
# not carried over, and another repository is never overwritten.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up

L=$T/local
S=s3://$BUCKET/copy
python3 -c 'import random,sys; r=random.Random(8); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(6*1024*1024)) + b"row\n" * 300000)' >"$T/a.img"
expect_ok dv --repo "$L" init --no-encrypt --pack-size 1
expect_ok dv --repo "$L" backup "$T/a.img" --all-blocks -q

# Interrupted copy (SIGKILL), then the rerun completes it.
"$DISKVAULT" --progress=never copy --from "$L" --to "$S" >/dev/null 2>&1 &
pid=$!
sleep 0.3
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
expect_ok dv copy --from "$L" --to "$S" --json
echo "$STDOUT" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["ok"] and j["objects_copied"] + j["objects_skipped"] > 5, j'
expect_ok dv copy --from "$L" --to "$S" --json
echo "$STDOUT" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["objects_copied"] == 0, j'
expect_ok dv --repo "$S" check
expect_ok dv --repo "$S" restore latest "$T/out.img" -q
cmp -s "$T/a.img" "$T/out.img" || fail "restore from the S3 copy is not bit-exact"

# A backup into the copy deduplicates against what was copied.
expect_ok dv --repo "$S" backup "$T/a.img" --all-blocks --json
echo "$STDOUT" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["bytes_new_stored"] == 0, j'
# ... and copying back brings only the new snapshot.
expect_ok dv copy --from "$S" --to "$L" --json
echo "$STDOUT" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert 1 <= j["objects_copied"] <= 3, j'
[ "$(dv --repo "$L" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))')" = 2 ] ||
	fail "copying back did not bring the new snapshot"

# Another repository at the destination is refused (exit 13), untouched.
expect_ok dv --repo "$T/other" init --no-encrypt
expect_exit 13 dv copy --from "$L" --to "$T/other"
assert_contains "$STDERR" "holds another repository"
# A damaged pack is not carried over (exit 4, named).
pack=$(ls "$L"/packs/*/* | sed -n 1p)
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[700]^=1; open(p,"wb").write(b)' "$pack"
expect_exit 4 dv copy --from "$L" --to "$T/third"
assert_contains "$STDERR" "$(basename "$pack")"
