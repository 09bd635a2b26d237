#!/usr/bin/env bash
# The main job on a built-in default: build diskvault, generate a sample
# disk image, back it up into a local repository, list it, restore it and
# show that the restored image's SHA-256 equals the original's.
# Usage: scripts/demo.sh [WORKDIR]   (default ./demo)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc)" --target diskvault
dv=$PWD/build/src/cli/diskvault
work=${1:-demo}
rm -rf "$work"
mkdir -p "$work"
set -x
scripts/make-sample-disk.sh "$work/disk.img" 512
# the repository is encrypted (the default); its passphrase, made here, in a 0600 file
(umask 077 && head -c 24 /dev/urandom | base64 >"$work/passphrase")
export DISKVAULT_PASSWORD_FILE=$work/passphrase
"$dv" --repo "$work/repo" init
"$dv" --repo "$work/repo" backup "$work/disk.img" --name sample --sha256
"$dv" --repo "$work/repo" list
"$dv" --repo "$work/repo" restore latest "$work/restored.img"
"$dv" --repo "$work/repo" check
set +x
a=$(sha256sum <"$work/disk.img" | cut -d' ' -f1)
b=$(sha256sum <"$work/restored.img" | cut -d' ' -f1)
echo "original: $a"
echo "restored: $b"
echo "repository: $(du -sh "$work/repo" | cut -f1) for a $(du -h --apparent-size "$work/disk.img" | cut -f1) disk"
if [ "$a" = "$b" ]; then
	echo "OK: the restored disk is bit-identical to the original"
else
	echo "FAILED: the restored disk differs" >&2
	exit 1
fi
