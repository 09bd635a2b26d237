#!/bin/bash
# t_core_nospace.sh - the repository's filesystem fills up during a backup:
# exit 14 with a "no space" message, nothing earlier is lost, check passes,
# and once space is freed a backup works. Needs root for a size-limited
# tmpfs; skipped otherwise.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: needs root (mounts a size-limited tmpfs)"
	exit 0
fi
MNT=$T/mnt
mkdir "$MNT"
if ! mount -t tmpfs -o size=40m tmpfs "$MNT" 2>"$T/mount.err"; then
	echo "SKIP: cannot mount a tmpfs: $(cat "$T/mount.err")"
	exit 0
fi
CLEANUP+=("umount -l '$MNT'")
R=$MNT/repo

make_disk "$T/small.img" 32 nospace-small
init_repo "$R"
backup_json "$R" "$T/small.img" --all-blocks
S1=$SNAP
note "small snapshot: $(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]') bytes stored; $(df -h "$MNT" | tail -1)"

# ~100 MiB of incompressible data cannot fit in what is left.
make_random_disk "$T/big.img" 100 nospace-big
expect_exit 14 dv --repo "$R" backup "$T/big.img" --all-blocks
assert_contains "$STDERR" "o space" "backup onto a full filesystem"
assert_lines "$STDERR" 1 "backup onto a full filesystem: stderr"
note "full: $STDERR"
expect_exit 14 dv --repo "$R" --json backup "$T/big.img" --all-blocks
[ "$(json_get "$STDOUT" 'j["exit_code"]')" = 14 ] || fail "--json: wrong exit_code on a full filesystem: $STDOUT"
[ "$(ls "$R/snapshots" | wc -l)" -eq 1 ] || fail "a backup that ran out of space left a snapshot"
[ -z "$(ls -A "$R/locks")" ] || fail "a backup that ran out of space left its lock: $(ls -A "$R/locks")"

# Nothing lost, the repository consistent (unreferenced data allowed).
restore_check "$R" "$S1" "$T/small.img"
expect_ok dv --repo "$R" --json check
[ "$(json_get "$STDOUT" 'j["errors"]')" -eq 0 ] || fail "check after running out of space: $STDOUT"
note "after ENOSPC: $(df -h "$MNT" | tail -1)"

# A restore into the full filesystem fails the same way, naming the target.
expect_exit 14 dv --repo "$R" restore "$S1" "$MNT/restored.img"
assert_contains "$STDERR" "$MNT/restored.img" "restore onto a full filesystem"
assert_contains "$STDERR" "o space" "restore onto a full filesystem"
rm -f "$MNT/restored.img"

# Running out at other moments (nearly no space left: the index segment or
# the manifest may be what fails): exit 14 or success, never damage.
rm -rf "${R:?}/tmp"/*
# A disk whose data is all stored already writes only a disk index and a
# manifest (tiny objects); a changed one writes a pack and a segment too.
i=0
for free_kib in 0 4 8 12 16 24 32 / 8 64 128 256 384 512 4096; do
	[ "$free_kib" = / ] && { CHANGE=1; continue; }
	i=$((i + 1))
	rm -f "$MNT/filler"
	avail=$(df -B1K --output=avail "$MNT" | tail -1)
	if [ "$avail" -gt "$free_kib" ]; then
		head -c $(((avail - free_kib) * 1024)) /dev/zero >"$MNT/filler" 2>/dev/null || true
	fi
	cp --sparse=always "$T/small.img" "$T/small$i.img"
	[ -z "${CHANGE:-}" ] || mutate "$T/small$i.img" "nospace-$i" $((EXT_OFF + i * MiB)) 64
	rc=0
	dv --repo "$R" backup "$T/small$i.img" --all-blocks >"$OUT_FILE" 2>"$ERR_FILE" || rc=$?
	note "with ${free_kib} KiB free: exit $rc $(cat "$ERR_FILE")"
	case $rc in
	0) SNAPS+=("$(ls -t "$R/snapshots" | head -n1) $i") ;;
	14) assert_contains "$(cat "$ERR_FILE")" "o space" "backup with ${free_kib} KiB free" ;;
	*) fail "backup with ${free_kib} KiB free exited $rc: $(cat "$ERR_FILE")" ;;
	esac
	rm -f "$MNT/filler"
	expect_ok dv --repo "$R" check
	restore_check "$R" "$S1" "$T/small.img"
done
for s in "${SNAPS[@]+"${SNAPS[@]}"}"; do
	restore_check "$R" "${s% *}" "$T/small${s#* }.img"
done

# More space: the big backup works now.
mount -o remount,size=400m "$MNT" || fail "cannot grow the tmpfs"
backup_json "$R" "$T/big.img" --all-blocks
S2=$SNAP
restore_check "$R" "$S2" "$T/big.img"
restore_check "$R" "$S1" "$T/small.img"
expect_ok dv --repo "$R" check
