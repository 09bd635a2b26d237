#!/usr/bin/env bash
# Client-side encryption end to end: bit-exact round trip, nothing readable
# in the repository, wrong/missing passphrase (exit 12), tampering found and
# named (exit 4), key add/list/remove/passwd, and the maintenance commands
# (check --read-data, prune, rebuild-index) on an encrypted repository.
source "$(dirname "$0")/lib.sh"

repo=$T/repo
pw=$T/pw
pw2=$T/pw2
printf 'correct horse battery staple\n' >"$pw"
printf 'second passphrase\n' >"$pw2"
printf 'wrong\n' >"$T/bad"
chmod 600 "$pw" "$pw2" "$T/bad"
python3 - "$T/a.img" <<'PY'
import random, sys
r = random.Random(21)
with open(sys.argv[1], "wb") as f:
    for i in range(60000):
        f.write(b"SECRET-MARKER customer record %08d password=hunter2\n" % i)
    f.write(bytes(r.getrandbits(8) for _ in range(3 * 1024 * 1024)))
PY
e() { dv --repo "$repo" --password-file "$pw" "$@"; }

# encrypted is the default: without a passphrase (and no terminal) init is
# refused, says how to give one or opt out, and leaves the place empty
mkdir "$T/dflt"
expect_exit 12 setsid -w "$DISKVAULT" --repo "$T/dflt" init --kdf-n 1024 </dev/null
assert_contains "$STDERR" "DISKVAULT_PASSWORD_COMMAND" "init without a passphrase"
assert_contains "$STDERR" "init --no-encrypt" "init without a passphrase"
[ -z "$(ls -A "$T/dflt")" ] || fail "a refused init left files: $(ls -A "$T/dflt")"
expect_ok dv --repo "$T/dflt" --password-file "$pw" --json init --kdf-n 1024
assert_contains "$STDOUT" '"encrypted":true' "init without --encrypt"
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["encryption"]["algorithm"] == "aes-256-gcm"' \
	"$T/dflt/config" || fail "the default repository is not encrypted"
expect_ok dv --repo "$T/plain" --json init --no-encrypt
assert_contains "$STDOUT" '"encrypted":false' "init --no-encrypt"
expect_exit 2 dv --repo "$T/both" init --encrypt --no-encrypt
assert_contains "$STDERR" "contradict" "init --encrypt --no-encrypt"

expect_ok dv --repo "$repo" --password-file "$pw" init --encrypt --kdf-n 1024 --pack-size 1
expect_ok e backup "$T/a.img" --all-blocks -q
expect_ok e restore latest "$T/out.img" -q
cmp -s "$T/a.img" "$T/out.img" || fail "encrypted round trip is not bit-exact"

# Nothing of the plaintext is readable: no marker in any file, no JSON
# manifest, no chunk id equal to the plain SHA-256 of a chunk.
if grep -rqa "SECRET-MARKER" "$repo"; then fail "plaintext found in the repository"; fi
# Blob members are named <id>.zst.gcm (sealed), none <id>.zst.
for f in "$repo"/packs/*/*; do
	members=$(tar tf "$f")
	[ "$(grep -c '^[0-9a-f]\{64\}\.zst\.gcm$' <<<"$members")" -gt 0 ] || fail "$f has no sealed blob members: $members"
	if grep -q '\.zst$' <<<"$members"; then fail "$f names a sealed blob .zst"; fi
	tar xOf "$f" --wildcards '*.zst.gcm' 2>/dev/null | zstd -dq >/dev/null 2>&1 && fail "a blob in $f decompresses without the key"
done
m=$(ls "$repo"/snapshots/* | sed -n 1p)
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$m" 2>/dev/null && fail "snapshot manifest is plain JSON"
assert_not_contains "$(cat "$repo/config")" "correct horse"

# Wrong or missing passphrase: one clear line, exit 12, nothing changed.
expect_exit 12 dv --repo "$repo" --password-file "$T/bad" list
assert_contains "$STDERR" "wrong passphrase"
expect_exit 12 dv --repo "$repo" list </dev/null
assert_contains "$STDERR" "DISKVAULT_PASSWORD_FILE"
DISKVAULT_PASSWORD_COMMAND="cat '$pw'" expect_ok dv --repo "$repo" list
DISKVAULT_PASSWORD_FILE=$pw expect_ok dv --repo "$repo" list
# A passphrase file others can read is refused.
chmod 644 "$T/bad"
expect_exit 2 dv --repo "$repo" --password-file "$T/bad" list
assert_contains "$STDERR" "readable by others"

# Tampering: one flipped bit in a sealed chunk blob is named by verify and
# check --read-data (exit 4); a flipped byte in the manifest too.
cp -a "$repo" "$T/pristine"
pack=$(ls "$repo"/packs/*/* | sed -n 1p)
python3 - "$pack" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[512 + 100] ^= 1           # inside the first blob
open(p, "wb").write(b)
PY
expect_exit 4 e verify latest
assert_contains "$STDERR" "authentication failed"
expect_exit 4 e check --read-data
rm -rf "$repo" && cp -a "$T/pristine" "$repo"
python3 - "$m" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read()); b[-5] ^= 0x40; open(p, "wb").write(b)
PY
# list skips the tampered manifest, names it and exits 3 (issue 16)
expect_exit 3 e list
assert_contains "$STDERR" "snapshots/$(basename "$m")"
rm -rf "$repo" && cp -a "$T/pristine" "$repo"

# Keys: add a second passphrase, both open; passwd replaces the one in use;
# the last key and the key in use cannot be removed.
expect_ok e key add --new-password-file "$pw2" --json
k2=$(echo "$STDOUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
expect_ok dv --repo "$repo" --password-file "$pw2" key list --json
echo "$STDOUT" | python3 -c 'import json,sys; k=json.load(sys.stdin)["keys"]; assert len(k) == 2 and sum(x["current"] for x in k) == 1, k'
expect_exit 2 dv --repo "$repo" --password-file "$pw2" key remove "$k2"
assert_contains "$STDERR" "in use"
k1=$(dv --repo "$repo" --password-file "$pw2" key list --json | python3 -c 'import json,sys; print([x["id"] for x in json.load(sys.stdin)["keys"] if not x["current"]][0])')
expect_ok dv --repo "$repo" --password-file "$pw2" key remove "$k1"
expect_exit 12 e list                      # the first passphrase no longer opens it
expect_exit 2 dv --repo "$repo" --password-file "$pw2" key remove "$k2"
assert_contains "$STDERR" "last key"
expect_ok dv --repo "$repo" --password-file "$pw2" key passwd --new-password-file "$pw"
expect_exit 12 dv --repo "$repo" --password-file "$pw2" list
expect_ok e list

# Maintenance on an encrypted repository: an incremental backup, forget,
# prune with repacking, rebuild-index, check --read-data; all restores exact.
dd if=/dev/urandom of="$T/a.img" bs=64K count=8 seek=10 conv=notrunc status=none
expect_ok e backup "$T/a.img" --all-blocks --json
echo "$STDOUT" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert 0 < j["bytes_new_stored"] < 3*1024*1024, j'
expect_ok e forget --keep-last 1 --prune --max-unused 0
rm -f "$repo"/index/*
expect_ok e rebuild-index -q
expect_ok e check --read-data
expect_ok e restore latest "$T/out.img" --force -q
cmp -s "$T/a.img" "$T/out.img" || fail "restore after prune and rebuild-index is not bit-exact"
