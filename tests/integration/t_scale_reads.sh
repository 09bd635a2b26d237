#!/bin/bash
# t_scale_reads.sh - reads within the plan: with the image evicted from the
# page cache, the kernel reads (read_bytes of /proc/PID/io) at most what
# the backup plans to read (its bytes_read) + 2% + a constant for the
# probe's metadata reads (libblkid, libext2fs and the OS probe open the
# image themselves, with the kernel's default readahead). The disk: GPT,
# a 64 MiB FAT ESP with a few files, one ext4 with files, about 30% used,
# free space scattered between files (every third file deleted with
# debugfs); all free space holds old random data. (Before sources were read
# without kernel readahead, the kernel's readahead behind the FAT parser's
# reads ran into the ESP's free clusters: 6% over the plan.)
#
# DV_SCALE_MIB sets the disk size (default 256; docs/performance.md uses
# 1024). The numbers are printed as "# reads:" lines.
DV_REAL_DISK=1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_disk.sh"

for t in debugfs mkfs.ext4 mkfs.vfat mcopy sfdisk; do
	command -v "$t" >/dev/null || { echo "SKIP: $t is not installed" >&2; exit 77; }
done
[ -r /proc/self/io ] || { echo "SKIP: no /proc/PID/io (task I/O accounting) on this kernel" >&2; exit 77; }

SIZE_MIB=${DV_SCALE_MIB:-256}
D=$T/disk.img
P=$T/part.img
ESP_MIB=64
PART_MIB=$((SIZE_MIB - ESP_MIB - 2))

# The partition, prepared apart and copied in at 1 MiB: old data first.
seeded_bytes "scale-old" $((SIZE_MIB * MiB)) >"$D"
dd if="$D" of="$P" bs=1M count=$PART_MIB status=none
sfdisk -q "$D" >/dev/null <<-EOT || fail "sfdisk failed"
	label: gpt
	start=1MiB, size=${ESP_MIB}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
	start=$((ESP_MIB + 1))MiB, size=${PART_MIB}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
EOT
mkfs.vfat -n ESP --offset $((MiB / 512)) "$D" $((ESP_MIB * 1024)) >/dev/null 2>&1 || fail "mkfs.vfat failed"
dv_fill_fat "$D@@$MiB" "$T/esp"
rm -rf "$T/esp"

# Files worth 42% of the partition, 4 KiB .. 8 MiB each (seeded); deleting
# every third leaves ~30% used with gaps between the survivors.
TREE=$T/tree
mkdir -p "$TREE/d"
python3 - "$TREE/d" $((PART_MIB * MiB * 42 / 100)) <<-'EOF'
	import random, sys
	d, budget = sys.argv[1], int(sys.argv[2])
	r = random.Random("scale-files")
	i = total = 0
	while total < budget:
	    n = min(r.choice([4096, 16384, 65536, 262144, 1 << 20, 8 << 20]) + r.randrange(4096), budget - total)
	    with open("%s/f%05d" % (d, i), "wb") as f:
	        f.write(r.randbytes(n))
	    i += 1
	    total += n
EOF
dv_mk_ext4 "$P" 0 $((PART_MIB * MiB)) root "$TREE" || fail "mkfs.ext4 failed"
ls "$TREE/d" | awk -v k=3 'NR % k == 0 { print "rm /d/" $0 }' >"$T/rm.cmds"
debugfs -w -f "$T/rm.cmds" "$P" >/dev/null 2>&1 || fail "debugfs rm failed"
rm -rf "$TREE"
dd if="$P" of="$D" bs=1M seek=$((ESP_MIB + 1)) conv=notrunc status=none
rm -f "$P"
[ "$(stat -c %b "$D")" -ge $((SIZE_MIB * MiB / 512)) ] || fail "the test disk is sparse: the test wants it dense"

R=$T/repo
init_repo "$R"

# evict FILE: write back, then drop its pages (POSIX_FADV_DONTNEED).
evict() {
	sync "$1"
	dd if="$1" iflag=nocache count=0 status=none
	if command -v fincore >/dev/null; then
		local res
		res=$(fincore -nb -o RES "$1") || return 0
		[ "${res// /}" -le $((4 * MiB)) ] || fail "$1 still has $res bytes in the page cache after eviction"
	fi
}

# measured_backup ARGS...: backup --json after evicting the image; sets
# BACKUP_JSON and KREAD (read_bytes of the subshell, which has reaped
# the diskvault process and so includes its reads).
measured_backup() {
	evict "$D"
	local io
	io=$(
		"$DISKVAULT" --progress=never --repo "$R" --json backup "$@" "$D" >"$OUT_FILE" 2>"$ERR_FILE" || exit 1
		cat /proc/$BASHPID/io
	) || { cat "$ERR_FILE" >&2; fail "backup $* failed"; }
	BACKUP_JSON=$(cat "$OUT_FILE")
	assert_json_ok "$BACKUP_JSON"
	KREAD=$(awk '$1 == "read_bytes:" { print $2 }' <<<"$io")
	[ -n "$KREAD" ] || fail "no read_bytes in /proc/PID/io: $io"
}

# Probe allowance: 4 MiB (libext2fs reading group descriptors and bitmaps,
# libblkid's superblock probes, the OS probe reading a few files).
PROBE_ALLOW=$((4 * MiB))

for mode in used-blocks all-blocks; do
	if [ $mode = all-blocks ]; then measured_backup --all-blocks; else measured_backup; fi
	PLAN=$(json_get "$BACKUP_JSON" 'j["bytes_read"]')
	UNUSED=$(json_get "$BACKUP_JSON" 'j["bytes_unused"]')
	note "reads: $mode: planned $PLAN bytes ($((PLAN * 100 / (SIZE_MIB * MiB)))% of the disk, unused $UNUSED)," \
		"kernel read $KREAD bytes ($((KREAD * 100 / (SIZE_MIB * MiB)))% of the disk)," \
		"excess $((KREAD - PLAN)), ratio $(awk -v a="$KREAD" -v b="$PLAN" 'BEGIN { printf "%.4f", a / b }')"
	LIMIT=$((PLAN + PLAN / 50 + PROBE_ALLOW))
	[ "$KREAD" -le "$LIMIT" ] ||
		fail "$mode backup: the kernel read $KREAD bytes, more than planned $PLAN + 2% + $PROBE_ALLOW: $BACKUP_JSON"
	# And it did read them: the page cache was really cold.
	[ "$KREAD" -ge $((PLAN * 9 / 10)) ] || fail "$mode backup: read_bytes $KREAD < 90% of planned $PLAN: cache not evicted?"
	[ $mode = all-blocks ] && SNAP_ALL=$(json_get "$BACKUP_JSON" 'j["snapshot"]')
	if [ $mode = used-blocks ]; then
		[ "$UNUSED" -gt $((SIZE_MIB * MiB / 2)) ] || fail "used-blocks backup skipped only $UNUSED bytes: the disk is not ~28% used"
	fi
done

# Still bit-exact where it must be: the all-blocks snapshot restores the disk.
restore_check "$R" "$SNAP_ALL" "$D"
