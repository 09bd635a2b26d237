#!/bin/bash
# t_core_kill.sh - SIGKILL a backup at several moments (packs of 1 MiB are
# published all through the run): after each kill, check passes (unreferenced
# data allowed), the next backup works and reuses what the killed one
# stored, and every complete snapshot restores bit-exact. Each killed backup
# reads a disk of new random data, so the kill lands while packs are written.
. "$(dirname "$0")/lib.sh"

R=$T/repo
D=$T/disk.img
init_repo "$R" --pack-size 1

# Complete snapshots so far: "id sha256" lines.
: >"$T/snaps"
add_snap() { echo "$1 $2" >>"$T/snaps"; }

# restore_sha SNAP SHA: restores SNAP and compares with SHA.
restore_sha() {
	local out=$T/restored.img
	rm -f "$out"
	expect_ok dv --repo "$R" restore "$1" "$out"
	[ "$(sha "$out")" = "$2" ] || fail "snapshot $1 does not restore to sha256 $2"
	rm -f "$out"
}

# A first complete snapshot of a small disk, made before any kill.
make_disk "$T/small.img" 32 kill-small
backup_json "$R" "$T/small.img" --all-blocks
add_snap "$SNAP" "$(sha "$T/small.img")"

# kill_backup DELAY: makes $D a disk of new data, starts a backup of it and
# SIGKILLs it after DELAY s.
kill_backup() {
	local delay=$1 pid rc=0
	make_random_disk "$D" 128 "kill-$delay-$RANDOM"
	"$DISKVAULT" --progress=never --repo "$R" --json backup "$D" --all-blocks --threads 1 >"$T/k.out" 2>"$T/k.err" &
	pid=$!
	sleep "$delay"
	kill -KILL "$pid" 2>/dev/null || true
	{ wait "$pid"; } 2>/dev/null || rc=$?
	if [ "$rc" -eq 0 ]; then
		# Finished before the kill: a complete snapshot like any other.
		note "backup finished before the kill at ${delay}s"
		add_snap "$(json_get "$(cat "$T/k.out")" 'j["snapshot"]')" "$(sha "$D")"
	else
		[ "$rc" -eq 137 ] || { cat "$T/k.err" >&2; fail "backup failed with exit $rc before the kill at ${delay}s"; }
	fi
	note "killed at ${delay}s: $(find "$R/packs" -type f | wc -l) pack files, $(ls "$R/index" | wc -l) index segments, $(ls "$R/snapshots" | wc -l) snapshots"
}

# after_kill N: the repository is consistent; a backup of a slightly changed
# disk works and restores; every earlier snapshot still verifies.
after_kill() {
	local n=$1 id s
	expect_ok dv --repo "$R" --json check
	[ "$(json_get "$STDOUT" 'j["errors"]')" -eq 0 ] || fail "check after kill $n reports errors: $STDOUT"
	[ "$(ls "$R/snapshots" | wc -l)" -eq "$(wc -l <"$T/snaps")" ] ||
		fail "after kill $n: snapshots/ holds $(ls "$R/snapshots" | wc -l) manifests, expected $(wc -l <"$T/snaps")"
	while read -r id s; do
		expect_ok dv --repo "$R" verify "$id"
	done <"$T/snaps"
	# The disk the killed backup was reading, slightly changed.
	mutate "$D" "kill-change-$n" $(((n * 13 + 5) * MiB)) 64
	backup_json "$R" "$D" --all-blocks
	note "backup after kill $n: $(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]') new bytes stored, $(json_get "$BACKUP_JSON" 'j["bytes_dedup"]') deduplicated"
	add_snap "$SNAP" "$(sha "$D")"
	restore_sha "$SNAP" "$(sha "$D")"
}

n=0
for delay in 0.05 0.2 0.5; do
	n=$((n + 1))
	kill_backup "$delay"
	after_kill "$n"
done
# Five more, at seeded random moments within the ~2 s a backup takes.
RANDOM=4242
for k in 1 2 3 4 5; do
	n=$((n + 1))
	ms=$((RANDOM % 1800 + 20))
	kill_backup "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	after_kill "$n"
done

# Two kills in a row, with no backup in between.
kill_backup 0.3
kill_backup 1.0
expect_ok dv --repo "$R" check
rm -f "$R"/locks/* # stale locks of the killed runs

# SIGINT and SIGTERM are not kills: the backup stops cleanly with exit 130,
# names the interruption and leaves no lock.
# On an idle machine the backup may finish before 0.4 s: then it is done
# again (new content) with the signal sent sooner.
for sig in INT TERM; do
	for delay in 0.4 0.15 0.05; do
		make_random_disk "$D" 128 "kill-$sig-$delay"
		"$DISKVAULT" --progress=never --repo "$R" --json backup "$D" --all-blocks --threads 1 >"$T/k.out" 2>"$T/k.err" &
		pid=$!
		sleep "$delay"
		kill -"$sig" "$pid" 2>/dev/null || true
		rc=0
		wait "$pid" || rc=$?
		[ "$rc" -eq 0 ] || break
		note "backup finished before SIG$sig at ${delay}s"
		add_snap "$(json_get "$(cat "$T/k.out")" 'j["snapshot"]')" "$(sha "$D")"
	done
	[ "$rc" -eq 130 ] || fail "backup stopped by SIG$sig exited $rc, not 130: $(cat "$T/k.err")"
	assert_contains "$(cat "$T/k.err")" "interrupted" "backup stopped by SIG$sig"
	[ -z "$(ls -A "$R/locks")" ] || fail "backup stopped by SIG$sig left a lock: $(ls -A "$R/locks")"
	expect_ok dv --repo "$R" check
done

# Final state: every snapshot restores bit-exact.
note "final: $(wc -l <"$T/snaps") snapshots"
while read -r id s; do
	restore_sha "$id" "$s"
done <"$T/snaps"
expect_ok dv --repo "$R" --json list
[ "$(json_get "$STDOUT" 'len(j["snapshots"])')" -eq "$(wc -l <"$T/snaps")" ] || fail "list does not show every snapshot"
