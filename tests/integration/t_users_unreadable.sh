#!/bin/bash
# t_users_unreadable.sh - one truncated manifest does not stop the nightly
# job (issue 16): list and forget skip it, name it on stderr and exit 3;
# forget --prune refuses; check says what to run; repair snapshots
# --dry-run names it, repair snapshots removes it; forget SNAPSHOT...
# deletes named snapshots; afterwards everything exits 0 and the others
# restore bit-exact.
. "$(dirname "$0")/lib.sh"

R=$T/repo
make_random_disk "$T/a.img" 4 unreadable-a
init_repo "$R"
for n in 1 2 3 4; do
	mutate "$T/a.img" "gen-$n" $((1024 * 1024)) 1
	cp "$T/a.img" "$T/a$n.img"
	backup_json "$R" "$T/a.img" --all-blocks --name "n$n"
	eval "S$n=\$SNAP"
done
M=$R/snapshots/$S2
truncate -s $(($(stat -c %s "$M") / 2)) "$M"

expect_exit 3 dv --repo "$R" list
assert_contains "$STDERR" "skipped snapshot $S2" "list: stderr"
assert_contains "$STDERR" "repair snapshots" "list: stderr"
assert_contains "$STDOUT" "3 snapshot(s)" "list"
for s in "$S1" "$S3" "$S4"; do assert_contains "$STDOUT" "${s:0:8}" "list"; done
assert_not_contains "$STDOUT" "${S2:0:8}" "list"
expect_exit 3 dv --repo "$R" --json list
[ "$(json_get "$STDOUT" 'len(j["snapshots"])')" = 3 ] || fail "list --json: $STDOUT"
[ "$(json_get "$STDOUT" 'j["unreadable"][0]["id"]')" = "$S2" ] || fail "list --json: $STDOUT"
[ "$(json_get "$STDOUT" 'j["exit_code"]')" = 3 ] || fail "list --json: $STDOUT"

# forget by rules: the damaged one is neither kept nor forgotten
expect_exit 3 dv --repo "$R" forget --keep-last 2
assert_contains "$STDERR" "skipped snapshot $S2" "forget: stderr"
assert_contains "$STDOUT" "2 snapshot(s) kept, 1 forgotten" "forget"
[ -e "$R/snapshots/$S1" ] && fail "forget --keep-last 2 left $S1"
[ -e "$M" ] || fail "forget removed the damaged manifest without being told to"
# prune cannot know what the damaged snapshot uses: it refuses
expect_exit 4 dv --repo "$R" prune
assert_contains "$STDERR" "repair snapshots" "prune: stderr"

expect_exit 4 dv --repo "$R" check
assert_contains "$STDERR" "repair snapshots --dry-run" "check: stderr"

expect_ok dv --repo "$R" repair snapshots --dry-run
assert_contains "$STDOUT" "would remove snapshot $S2" "repair --dry-run"
[ -e "$M" ] || fail "repair --dry-run removed $M"
expect_ok dv --repo "$R" --json repair snapshots
[ "$(json_get "$STDOUT" 'j["removed"][0]["id"]')" = "$S2" ] || fail "repair --json: $STDOUT"
[ -e "$M" ] && fail "repair snapshots left $M"
expect_ok dv --repo "$R" list
assert_contains "$STDOUT" "2 snapshot(s)" "list after repair"
expect_ok dv --repo "$R" repair snapshots
assert_contains "$STDOUT" "0 damaged snapshot manifest(s) removed" "second repair"
expect_ok dv --repo "$R" prune
expect_ok dv --repo "$R" check

# forget SNAPSHOT...: a prefix, exactly that one goes
expect_exit 2 dv --repo "$R" forget --keep-last 1 "${S3:0:8}"
assert_contains "$STDERR" "not both" "forget with rules and ids"
expect_ok dv --repo "$R" forget --dry-run "${S3:0:8}"
[ -e "$R/snapshots/$S3" ] || fail "forget --dry-run removed $S3"
expect_ok dv --repo "$R" forget "${S3:0:8}"
assert_contains "$STDOUT" "1 snapshot(s) kept, 1 forgotten" "forget ID"
[ -e "$R/snapshots/$S3" ] && fail "forget ID left $S3"
[ -e "$R/snapshots/$S4" ] || fail "forget ID removed $S4"
# forget names a damaged one too
cp "$R/snapshots/$S4" "$T/s4"
truncate -s 10 "$R/snapshots/$S4"
expect_ok dv --repo "$R" forget --prune "$S4"
[ -e "$R/snapshots/$S4" ] && fail "forget of the damaged $S4 left it"
expect_ok dv --repo "$R" list
assert_contains "$STDOUT" "0 snapshot(s)" "list at the end"
expect_exit 1 dv --repo "$R" forget zzzz9999
echo ok
