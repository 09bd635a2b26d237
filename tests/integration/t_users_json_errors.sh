#!/bin/bash
# t_users_json_errors.sh - with --json every failure prints exactly one
# JSON line {ok:false, error, error_class, exit_code} on stdout (issue 16):
# usage errors (unknown command or option, missing --repo, a bad duration,
# a command that does not apply to this repository kind) exit 2; the JSON
# is there wherever --json stands, even after the bad option.
. "$(dirname "$0")/lib.sh"

R=$T/repo
init_repo "$R"
unset DISKVAULT_REPO

# json_fail CODE WHAT CMD...: exit CODE, one JSON line naming WHAT
json_fail() {
	local code=$1 what=$2
	shift 2
	expect_exit "$code" "$@"
	assert_lines "$STDOUT" 1 "stdout of $*"
	[ "$(json_get "$STDOUT" 'j["ok"]')" = false ] || fail "no ok:false: $STDOUT"
	[ "$(json_get "$STDOUT" 'j["exit_code"]')" = "$code" ] || fail "wrong exit_code: $STDOUT"
	assert_contains "$(json_get "$STDOUT" 'j["error"]')" "$what" "error of $*"
	[ -n "$STDERR" ] || fail "nothing on stderr for $*"
}
json_fail 2 "unknown command 'frobnicate'" dv --json frobnicate
json_fail 2 "unknown option '--bogus'" dv --bogus --json list
json_fail 2 "unknown option '--bogus'" dv --json --repo "$R" list --bogus
json_fail 2 "unknown option '--bogus'" dv --repo "$R" list --bogus --json
json_fail 2 "no repository given" dv --json list
json_fail 2 "no repository given" dv list --json
json_fail 2 "--keep-within '6x'" dv --repo "$R" --json forget --keep-within 6x
json_fail 2 "--keep-within 'inf'" dv --repo "$R" forget --json --keep-within inf
json_fail 2 "--lock-wait '1e1'" dv --repo "$R" --json --lock-wait 1e1 list
json_fail 2 "--lock-wait '1y'" dv --repo "$R" list --json --lock-wait 1y
json_fail 2 "is not on S3" dv --repo "$R" --json s3 uploads
json_fail 2 "no command given" dv --json
[ "$(json_get "$STDOUT" 'j["error_class"]')" = usage ] || fail "error_class: $STDOUT"
# not usage: the code of the failure itself
json_fail 10 "$T/nothing" dv --repo "$T/nothing" --json list
# without --json, stdout stays empty
expect_exit 2 dv --repo "$R" list --bogus
[ -z "$STDOUT" ] || fail "stdout without --json: $STDOUT"
echo ok
