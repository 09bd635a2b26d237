#!/usr/bin/env bash
# Key derivation of encrypted repositories (formats/encryption.md §2):
# - a new repository uses scrypt-parallel, and an independent
#   implementation (Python hashlib.scrypt, HKDF written out with hmac,
#   AES-GCM from python3-cryptography) derives the same key from the
#   config alone, unwraps the master key and opens a snapshot manifest;
# - a repository made before scrypt-parallel (kdf "scrypt", committed under
#   tests/fixtures/repo-kdf-scrypt) still opens and restores bit-exact, and
#   keeps its kdf when a key is added;
# - a config naming an unknown kdf is refused with exit 11.
source "$(dirname "$0")/lib.sh"

python3 -c 'import cryptography.hazmat.primitives.ciphers.aead' 2>/dev/null ||
	{ echo "python3-cryptography missing (scripts/deps.sh installs it)"; exit 77; }

# ---- a new repository: scrypt-parallel, checked independently ------------
pw=$T/pw
printf 'parallel lanes passphrase\n' >"$pw"
chmod 600 "$pw"
seeded_bytes 11 $((3 * MiB)) >"$T/a.img"
repo=$T/repo
expect_ok dv --repo "$repo" --password-file "$pw" init --encrypt --kdf-n 1024 --kdf-p 5 --pack-size 1
expect_ok dv --repo "$repo" --password-file "$pw" backup "$T/a.img" --all-blocks -q
[ "$(json_get "$(cat "$repo/config")" 'j["encryption"]["kdf"]')" = scrypt-parallel ] || fail "new repository's kdf is not scrypt-parallel"

python3 - "$repo" "parallel lanes passphrase" "$T/a.img" <<'PY' || fail "independent scrypt-parallel derivation does not open the repository"
import hashlib, hmac, json, os, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

repo, passphrase, image = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
cfg = json.load(open(os.path.join(repo, "config")))
enc = cfg["encryption"]
slot = enc["keys"][0]
salt = bytes.fromhex(slot["salt"])
n, r, p = slot["n"], slot["r"], slot["p"]
assert (n, r, p) == (1024, 8, 5), (n, r, p)

def hkdf_sha256(ikm, salt, info, length=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm, i = okm + t, i + 1
    return okm[:length]

lanes = b"".join(hashlib.scrypt(passphrase, salt=salt + struct.pack("<I", i), n=n, r=r, p=1, dklen=32,
                                maxmem=256 << 20) for i in range(p))
kek = hkdf_sha256(lanes, salt, b"diskvault scrypt-parallel")
wrapped = bytes.fromhex(slot["wrapped"])
master = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], ("diskvault key " + cfg["id"]).encode())
assert len(master) == 96, len(master)
# The master key's first third opens a snapshot manifest, which names the disk.
snaps = os.listdir(os.path.join(repo, "snapshots"))
assert len(snaps) == 1, snaps
blob = open(os.path.join(repo, "snapshots", snaps[0]), "rb").read()
manifest = json.loads(AESGCM(master[:32]).decrypt(blob[:12], blob[12:], b"snapshots"))
disk = manifest["disks"][0]
assert os.path.getsize(image) == disk["layout"]["size"], disk["layout"]
assert os.path.exists(os.path.join(repo, "diskindex", disk["index"])), disk["index"]
PY

# The kdf name is authenticated by nothing but the key: a config that names
# another kdf must be refused as unsupported, not tried and called "wrong
# passphrase".
cp -a "$repo" "$T/other"
python3 - "$T/other/config" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["encryption"]["kdf"] = "argon2id"
json.dump(c, open(sys.argv[1], "w"))
PY
expect_exit 11 dv --repo "$T/other" --password-file "$pw" list
assert_contains "$STDERR" "unsupported encryption scheme"

# ---- a repository made with kdf "scrypt" (up to commit 4825d7b) ---------
old=$T/old
cp -a "$(dirname "$0")/../fixtures/repo-kdf-scrypt" "$old"
mkdir -p "$old/locks" "$old/tmp"
opw=$T/opw
printf 'old kdf fixture\n' >"$opw"
chmod 600 "$opw"
[ "$(json_get "$(cat "$old/config")" 'j["encryption"]["kdf"]')" = scrypt ] || fail "fixture is not a kdf=scrypt repository"
# The image the fixture holds (tests/fixtures/README.md says how it was made).
python3 - "$T/fixture.img" <<'PY'
import random, sys
r = random.Random(7)
with open(sys.argv[1], "wb") as f:
    for i in range(4000):
        f.write(b"fixture record %06d of an old-style encrypted repository\n" % i)
    f.write(bytes(r.getrandbits(8) for _ in range(64 * 1024)))
    f.write(bytes(256 * 1024))
PY
expect_ok dv --repo "$old" --password-file "$opw" restore latest "$T/fixture.out"
assert_same_file "$T/fixture.img" "$T/fixture.out"
expect_ok dv --repo "$old" --password-file "$opw" check --read-data
expect_exit 12 dv --repo "$old" --password-file "$pw" list
assert_contains "$STDERR" "wrong passphrase"

# A key added to it is an scrypt slot too: the repository stays one kind.
expect_ok dv --repo "$old" --password-file "$opw" key add --new-password-file "$pw"
[ "$(json_get "$(cat "$old/config")" 'j["encryption"]["kdf"]')" = scrypt ] || fail "key add changed the kdf of an old repository"
[ "$(json_get "$(cat "$old/config")" 'len(j["encryption"]["keys"])')" = 2 ] || fail "key add did not add a slot"
expect_ok dv --repo "$old" --password-file "$pw" restore latest "$T/fixture.out2"
assert_same_file "$T/fixture.img" "$T/fixture.out2"
