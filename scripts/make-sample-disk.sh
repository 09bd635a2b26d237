#!/usr/bin/env bash
# Generates a sample disk image with a real GPT partition table, an EFI
# system partition (FAT) and an ext4 root filesystem holding files, with
# optionally old data left in its free space (DIRTY=1). No root needed.
# Usage: [DIRTY=1] scripts/make-sample-disk.sh OUT.img [SIZE_MIB] [SEED]
set -euo pipefail
out=${1:?usage: make-sample-disk.sh OUT.img [SIZE_MIB] [SEED]}
size=${2:-512}
seed=${3:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rand() ( # rand BYTES TAG: deterministic pseudo-random bytes (openssl dies of SIGPIPE)
	set +o pipefail
	openssl enc -aes-128-ctr -nosalt -pass "pass:diskvault-$seed-$2" -pbkdf2 </dev/zero 2>/dev/null | head -c "$1"
)

# With DIRTY=1, old non-zero data everywhere first: what a used disk's free
# space holds. Without, free space reads as zeros.
rm -f "$out"
if [ "${DIRTY:-0}" = 1 ]; then
	rand $((size * 1024 * 1024)) old >"$out"
else
	truncate -s "${size}M" "$out"
fi
sfdisk -q "$out" <<SFDISK
label: gpt
start=2048, size=64MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=EFI
type=0FC63DAF-8377-4A5E-A7EF-D9D74B7A7603, name=root
SFDISK
esp_start=$((2048 * 512))
esp_size=$((64 * 1024 * 1024))
# The root partition as sfdisk laid it out (start and size in sectors).
read -r root_sec root_sectors < <(sfdisk -J "$out" | python3 -c \
	'import json,sys; p=json.load(sys.stdin)["partitiontable"]["partitions"][1]; print(p["start"], p["size"])')
root_start=$((root_sec * 512))
root_kib=$((root_sectors / 2))
mkfs.vfat -F 32 --offset 2048 -n EFI "$out" $((esp_size / 1024)) >/dev/null 2>&1

# A root filesystem with text, binaries, duplicates and some random data.
root=$work/root
mkdir -p "$root/etc" "$root/usr/share/doc" "$root/var/log" "$root/home/user" "$root/srv/data"
cp -r /usr/share/common-licenses "$root/usr/share/doc/" 2>/dev/null || true
cp /bin/bash /bin/ls "$root/usr/" 2>/dev/null || true
for i in $(seq 1 40); do
	seq $((i * 1000)) $((i * 1000 + 20000)) | sed "s/^/log line $i: event /" >"$root/var/log/app$i.log"
done
cp -r "$root/var/log" "$root/home/user/log-copy"          # duplicated files
rand $((size * 1024 * 1024 / 16)) data >"$root/srv/data/blob.bin"  # incompressible
echo "diskvault sample disk, seed $seed" >"$root/etc/motd"
mkfs.ext4 -q -F -L root -U "$(printf '%08x-0000-4000-8000-%012x' "$seed" "$seed")" \
	-E offset=$root_start,root_owner=0:0,nodiscard -d "$root" "$out" "${root_kib}k"
echo "$out: ${size} MiB GPT disk (EFI FAT + ext4 with files)"
