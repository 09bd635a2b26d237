#!/usr/bin/env bash
# Apply a deterministic ~2% change to a disk image made by make-disk.sh.
#
# usage: mutate.sh IMG [SEED] [FRACTION]
#
#   1. In place: overwrite FRACTION (default 0.02) of the image's bytes inside
#      the data blocks of existing ext4 files: ~20% as scattered single 4 KiB
#      blocks, ~80% as a few contiguous runs of 64..1024 blocks. The new
#      content matches the file (text stays text, random stays random).
#   2. New files: ~28 MB per 2 GiB of disk (scaled with the disk size; 60%
#      log text, 40% random "downloads"), written with debugfs -w, so ext4
#      allocates them properly in free (dirty) space and marks the bitmaps.
# The ext4 stays consistent enough for e2fsck (file contents change, no
# metadata is overwritten). Needs IMG.manifest.tsv and IMG.info.json from
# make-disk.sh. Prints one JSON line (also saved to IMG.mutate.json):
#   bytes_changed_in_place, bytes_new_files, bytes_changed_total and
#   ideal_zstd3_bytes (the changed blocks plus new files compressed with
#   zstd -3: what an ideal incremental backup would have to store).
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: mutate.sh IMG [SEED] [FRACTION]" >&2; exit 2; }
IMG="$1"
SEED="${2:-1}"
FRACTION="${3:-0.02}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GEN="$HERE/gen.py"
PY="${PYTHON:-python3}"
[[ -f "$IMG.info.json" && -f "$IMG.manifest.tsv" ]] || {
  echo "mutate.sh: $IMG.info.json / $IMG.manifest.tsv missing (make the image with make-disk.sh)" >&2; exit 2; }
EPOCH=1767312000   # 2026-01-02T00:00:00Z, timestamps of the new files
TS="$(date -u -d "@$EPOCH" +%Y%m%d%H%M%S)"

ROOT_START=$(jq -r .root.start "$IMG.info.json")
SIZE=$(jq -r .size "$IMG.info.json")
TMP="$(mktemp -d "${IMG}.mut.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# 1. In-place changes (gen.py finds file blocks with debugfs "blocks").
INPLACE="$("$PY" "$GEN" mutate "$IMG" "$SEED" "$ROOT_START" "$IMG.manifest.tsv" "$FRACTION")"

# 2. New files through debugfs.
NEW_TOTAL=$(( SIZE * 28000000 / 2147483648 ))   # 28 MB per 2 GiB of disk
NEW_TEXT=$(( NEW_TOTAL * 60 / 100 ))
NEW_RAND=$(( NEW_TOTAL - NEW_TEXT ))
"$PY" "$GEN" stream log "$SEED-new-syslog" $((NEW_TEXT * 2 / 3)) >"$TMP/syslog"
"$PY" "$GEN" stream text "$SEED-new-notes" $((NEW_TEXT - NEW_TEXT * 2 / 3)) >"$TMP/notes"
"$PY" "$GEN" stream rand "$SEED-new-dl1" $((NEW_RAND / 2)) >"$TMP/dl1"
"$PY" "$GEN" stream rand "$SEED-new-dl2" $((NEW_RAND - NEW_RAND / 2)) >"$TMP/dl2"
cat >"$TMP/cmds" <<EOF
mkdir /home/user/downloads
write $TMP/syslog /var/log/syslog.new.log
write $TMP/notes /home/user/notes-2026-01-02.txt
write $TMP/dl1 /home/user/downloads/update-1.tar.gz
write $TMP/dl2 /home/user/downloads/update-2.tar.gz
EOF
for p in /home/user/downloads /var/log/syslog.new.log /home/user/notes-2026-01-02.txt \
         /home/user/downloads/update-1.tar.gz /home/user/downloads/update-2.tar.gz; do
  for f in atime mtime ctime crtime; do echo "sif $p $f $TS"; done
done >>"$TMP/cmds"
E2FSPROGS_FAKE_TIME=$EPOCH debugfs -w -f "$TMP/cmds" "$IMG?offset=$ROOT_START" >"$TMP/debugfs.log" 2>&1
if grep -qiE 'error|could not|no such' "$TMP/debugfs.log"; then
  cat "$TMP/debugfs.log" >&2; exit 1
fi
NEW_BYTES=$(cat "$TMP/syslog" "$TMP/notes" "$TMP/dl1" "$TMP/dl2" | wc -c)
NEW_Z=$(cat "$TMP/syslog" "$TMP/notes" "$TMP/dl1" "$TMP/dl2" | zstd -3 -q -c | wc -c)

IN_BYTES=$(jq -r .bytes_changed <<<"$INPLACE")
IN_Z=$(jq -r .changed_bytes_zstd3 <<<"$INPLACE")
jq -c -n --argjson inplace "$INPLACE" --argjson nb "$NEW_BYTES" --argjson nz "$NEW_Z" --argjson size "$SIZE" '{
  bytes_changed_in_place: $inplace.bytes_changed, blocks_changed: $inplace.blocks_changed,
  contiguous_runs: $inplace.runs, bytes_new_files: $nb,
  bytes_changed_total: ($inplace.bytes_changed + $nb),
  percent_of_disk_in_place: ($inplace.bytes_changed * 10000 / $size | floor / 100),
  ideal_zstd3_bytes: ($inplace.changed_bytes_zstd3 + $nz)}' | tee "$IMG.mutate.json"
echo "mutate: changed $IN_BYTES bytes in place (zstd -3: $IN_Z), added $NEW_BYTES bytes of new files (zstd -3: $NEW_Z)" >&2
