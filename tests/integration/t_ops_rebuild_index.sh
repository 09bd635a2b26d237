#!/usr/bin/env bash
# A damaged or lost index loses nothing: restore names the damage and the
# remedy, rebuild-index restores the index from the packs' own indexes,
# and every snapshot restores bit-exact again.
source "$(dirname "$0")/lib.sh"

repo=$T/repo
python3 -c 'import random,sys; r=random.Random(11); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(6*1024*1024)) + b"text line\n" * 400000)' >"$T/a.img"
expect_ok dv --repo "$repo" init --no-encrypt --pack-size 1
expect_ok dv --repo "$repo" backup "$T/a.img" --all-blocks -q
dd if=/dev/urandom of="$T/a.img" bs=64K count=4 seek=20 conv=notrunc status=none
cp "$T/a.img" "$T/a2.img"
expect_ok dv --repo "$repo" backup "$T/a.img" --all-blocks -q
[ "$(ls "$repo/index" | wc -l)" -ge 2 ] || fail "expected one index segment per backup"

# Truncate one segment: restore exits 4, names it and the remedy.
seg=$(ls "$repo"/index/* | sed -n 1p)
truncate -s 50 "$seg"
expect_exit 4 dv --repo "$repo" restore latest "$T/out.img"
assert_contains "$STDERR" "index/$(basename "$seg")"
assert_contains "$STDERR" "rebuild-index"
expect_ok dv --repo "$repo" rebuild-index --json
echo "$STDOUT" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["ok"] and j["packs"] > 0 and j["packs_skipped"] == 0, j'
expect_ok dv --repo "$repo" check
expect_ok dv --repo "$repo" restore latest "$T/out.img" --force -q
cmp -s "$T/a2.img" "$T/out.img" || fail "restore after rebuild-index is not bit-exact"

# Lose the whole index: the packs alone rebuild it.
rm -f "$repo"/index/*
expect_ok dv --repo "$repo" rebuild-index -q
expect_ok dv --repo "$repo" check --read-data
expect_ok dv --repo "$repo" verify latest -q
# A backup after the rebuild deduplicates against the rebuilt index.
expect_ok dv --repo "$repo" backup "$T/a.img" --all-blocks --json
echo "$STDOUT" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["bytes_new_stored"] == 0, j'
