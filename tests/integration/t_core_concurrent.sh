#!/bin/bash
# t_core_concurrent.sh - three backups of different disks into one
# repository at the same time all succeed and restore bit-exact; an
# exclusive lock held by a live process refuses a backup (exit 5, naming the
# lock); a stale one (dead pid on this host) is ignored.
. "$(dirname "$0")/lib.sh"

R=$T/repo
init_repo "$R" --pack-size 1
make_disk "$T/d0.img" 64 conc-0
make_disk "$T/d1.img" 64 conc-1
# The third shares most of its data with the first.
cp --sparse=always "$T/d0.img" "$T/d2.img"
mutate "$T/d2.img" conc-2 $((EXT_OFF + 10 * MiB)) 256

pids=()
for i in 0 1 2; do
	"$DISKVAULT" --progress=never --repo "$R" --json backup "$T/d$i.img" --all-blocks --name "d$i" --threads 1 \
		>"$T/b$i.out" 2>"$T/b$i.err" &
	pids+=($!)
done
for i in 0 1 2; do
	rc=0
	wait "${pids[$i]}" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/b$i.err" >&2; fail "concurrent backup of d$i.img exited $rc"; }
	[ ! -s "$T/b$i.err" ] || fail "concurrent backup of d$i.img wrote to stderr: $(cat "$T/b$i.err")"
	assert_json_ok "$(cat "$T/b$i.out")"
	S[$i]=$(json_get "$(cat "$T/b$i.out")" 'j["snapshot"]')
	note "d$i: $(cat "$T/b$i.out")"
done

expect_ok dv --repo "$R" --json list
for i in 0 1 2; do
	assert_contains "$STDOUT" "${S[$i]}" "list after concurrent backups"
done
[ "$(json_get "$STDOUT" 'len(j["snapshots"])')" -eq 3 ] || fail "list does not show 3 snapshots: $STDOUT"
expect_ok dv --repo "$R" --json check
[ "$(json_get "$STDOUT" 'j["errors"]')" -eq 0 ] || fail "check after concurrent backups: $STDOUT"
for i in 0 1 2; do
	restore_check "$R" "${S[$i]}" "$T/d$i.img"
done
[ -z "$(ls -A "$R/locks")" ] || fail "locks left behind: $(ls -A "$R/locks")"

# A later backup deduplicates against all three.
backup_json "$R" "$T/d1.img" --all-blocks
[ "$(json_get "$BACKUP_JSON" 'j["bytes_new_stored"]')" -lt $((MiB / 2)) ] ||
	fail "backup of an already stored disk after concurrent backups stored data: $BACKUP_JSON"

# ---- lock exclusion -----------------------------------------------------------
sleep 300 &
LIVE=$!
CLEANUP+=("kill $LIVE 2>/dev/null")
LOCK=0123456789abcdef0123456789abcdef
# Written now: a lock not refreshed for long goes stale by age.
printf '{"exclusive":true,"host":"%s","pid":%d,"time":"%s"}' "$(hostname)" "$LIVE" \
	"$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$R/locks/$LOCK"
snaps_before=$(ls "$R/snapshots" | wc -l)
expect_exit 5 dv --repo "$R" backup "$T/d0.img"
assert_contains "$STDERR" "$LOCK" "backup refused by an exclusive lock"
assert_contains "$STDERR" "$LIVE" "backup refused by an exclusive lock (pid)"
assert_lines "$STDERR" 1 "backup refused by an exclusive lock: stderr"
expect_exit 5 dv --repo "$R" --json backup "$T/d0.img"
[ "$(json_get "$STDOUT" 'j["exit_code"]')" = 5 ] || fail "--json: wrong exit_code for a locked repository: $STDOUT"
[ "$(ls "$R/snapshots" | wc -l)" -eq "$snaps_before" ] || fail "a refused backup wrote a snapshot"
[ "$(ls "$R/locks")" = "$LOCK" ] || fail "a refused backup left its own lock: $(ls "$R/locks")"

# The same lock from a process that is gone: stale, ignored.
kill "$LIVE"
wait "$LIVE" 2>/dev/null || true
backup_json "$R" "$T/d0.img" --all-blocks
restore_check "$R" "$SNAP" "$T/d0.img"
rm -f "$R/locks/$LOCK"
expect_ok dv --repo "$R" check
