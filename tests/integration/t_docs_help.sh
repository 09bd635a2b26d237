#!/bin/bash
# t_docs_help.sh - one source for the help, the man page and the shell
# completion: every command 'diskvault --help' lists has a section in
# diskvault(1); every option any --help shows is in the man page; every
# exit code of docs/exit-codes.md is in EXIT STATUS; bash completion offers
# every command and, for each command, every option its help shows; the
# example config is valid and the systemd/cron jobs use real commands.
. "$(dirname "$0")/lib.sh"

SRC=${DV_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export DISKVAULT_CONFIG=/dev/null
unset DISKVAULT_REPO

# The man page the build made, or one made now from this binary.
MAN=${DV_BUILD_DIR:-/nonexistent}/diskvault.1
if [ ! -f "$MAN" ] || [ "$MAN" -ot "$DISKVAULT" ]; then
	MAN=$T/diskvault.1
	bash "$SRC/packaging/gen-man.sh" "$DISKVAULT" "$MAN" "$SRC/docs/exit-codes.md" || fail "gen-man.sh failed"
fi
ROFF=$(cat "$MAN")
# The page as one line of words: macros, quotes and font changes removed,
# so a help line can be looked up whole.
FLAT=" $(sed -e '/^\.\(TP\|PP\|nf\|fi\)$/d' -e 's/^\.[A-Z][A-Z]* //' -e 's/\\f[BIR]//g' -e 's/\\&//g' -e 's/"//g' "$MAN" | tr -s ' \n\t' '   ') "
in_man() { # TEXT WHAT: TEXT (roff-escaped) is in the page
	case "$ROFF" in *"$1"*) ;; *) fail "man page lacks $2: '$1'" ;; esac
}

# roff spelling of an option: every '-' is '\-'.
roff_opt() { printf '%s' "$1" | sed 's/-/\\-/g'; }

# Options a help text shows anywhere (usage, text, option lines).
options_in() { grep -oE '(^|[^a-zA-Z0-9-])--?[a-zA-Z][a-zA-Z0-9-]*' | sed -E 's/^[^-]//' | sort -u; }
# Options a help text offers: its usage lines and the starts of option lines.
offered_in() {
	awk 'NR == 1 || (u && /^[ \t]/) { u = 1; print; next } { u = 0 }
	     /^  -/ { sub(/^  /, ""); while (match($0, /^-[^ ,]+(, )?/)) { print substr($0, 1, RLENGTH); $0 = substr($0, RLENGTH + 1) } }' |
		options_in
}

expect_ok "$DISKVAULT" --help
MAIN_HELP=$STDOUT
COMMANDS=$(printf '%s\n' "$MAIN_HELP" | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { on = 0 }')
[ "$(echo "$COMMANDS" | wc -l)" -ge 8 ] || fail "too few commands in --help: $COMMANDS"
for want in init backup restore list config; do
	echo "$COMMANDS" | qgrep -x "$want" || fail "--help does not list '$want'"
done

checked=0 lines=0
for o in $(printf '%s\n' "$MAIN_HELP" | options_in); do
	in_man "$(roff_opt "$o")" "global option $o"
	checked=$((checked + 1))
done
for c in $COMMANDS; do
	in_man ".SS \"$c\"" "a section for command $c"
	expect_ok "$DISKVAULT" "$c" --help
	help=$STDOUT
	[ -n "$help" ] || fail "'diskvault $c --help' printed nothing"
	case "$help" in usage:*) ;; *) fail "'diskvault $c --help' does not start with 'usage:'" ;; esac
	for o in $(printf '%s\n' "$help" | options_in); do
		in_man "$(roff_opt "$o")" "option $o of $c"
		checked=$((checked + 1))
	done
	# every line of the help text is in the man page, whole (nothing dropped)
	while IFS= read -r l; do
		flat=$(printf '%s\n' "$l" | sed -e 's/^usage: //' -e 's/\\/\\e/g' -e 's/-/\\-/g' | tr -s ' \t' '  ' | sed 's/^ //; s/ $//')
		[ -z "$flat" ] && continue
		case "$FLAT" in *" $flat "*) ;; *) fail "man page lacks this line of '$c --help': $l" ;; esac
		lines=$((lines + 1))
	done < <(printf '%s\n' "$help")
done
note "man page: $(echo "$COMMANDS" | wc -l) commands, $checked option mentions, $lines help lines checked"

# Exit codes of docs/exit-codes.md.
if [ -f "$SRC/docs/exit-codes.md" ]; then
	in_man ".SH EXIT STATUS" "the EXIT STATUS section"
	for code in $(awk -F'|' '$2 ~ /^ *[0-9]+ *$/ { gsub(/ /, "", $2); print $2 }' "$SRC/docs/exit-codes.md"); do
		in_man ".B $code
" "exit code $code"
	done
fi

# The page renders without roff errors where man is installed.
if command -v man >/dev/null && command -v groff >/dev/null; then
	MANWIDTH=100 man -l "$MAN" >"$T/man.txt" 2>"$T/man.err" || fail "man -l failed: $(cat "$T/man.err")"
	if grep -v 'cannot adjust line' "$T/man.err" | qgrep .; then fail "roff warnings: $(cat "$T/man.err")"; fi
	grep -q -- "--all-blocks" "$T/man.txt" || fail "rendered page lacks --all-blocks"
else
	note "man/groff not installed: rendering not checked"
fi

# Bash completion, driven the way bash drives it.
COMPLETION=$SRC/packaging/bash-completion/diskvault
complete_words() { # WORDS...: prints the completions of the last word
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1));
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _diskvault; printf "%s\n" "${COMPREPLY[@]}"' \
		_ "$COMPLETION" "$@"
}
got=$(complete_words "$DISKVAULT" "" | sort)
[ "$got" = "$(echo "$COMMANDS" | sort)" ] || fail "completion of commands: got '$got', want '$COMMANDS'"
for c in $COMMANDS; do
	offered=$(complete_words "$DISKVAULT" "$c" "-")
	for o in $("$DISKVAULT" "$c" --help | offered_in); do
		printf '%s\n' "$offered" | qgrep -xE -- "$o=?" || fail "completion of '$c -' lacks $o (got: $offered)"
	done
done
got=$(complete_words "$DISKVAULT" --progress=)
[ "$(echo $got)" = "auto always never" ] || fail "completion of --progress=: $got"
got=$(complete_words "$DISKVAULT" config "")
[ "$(echo $got)" = "show check" ] || fail "completion of config: $got"

# The example config is valid as shipped, and so is every key it shows
# commented out (uncommented one at a time).
expect_ok "$DISKVAULT" --config "$SRC/packaging/diskvault.conf.example" config check
n=0
while IFS= read -r line; do
	key=${line#\#}
	key=${key%% =*}
	section=$(awk -v l="$line" '/^\[/ { s = $0 } $0 == l { print s; exit }' "$SRC/packaging/diskvault.conf.example")
	[ "$key" = password_file ] || [ "$key" = credentials_file ] && continue # need a real secret file
	printf '%s\n%s\n' "$section" "${line#\#}" >"$T/one.conf"
	expect_ok "$DISKVAULT" --config "$T/one.conf" config check
	n=$((n + 1))
done < <(grep -E '^#[a-z_]+ = ' "$SRC/packaging/diskvault.conf.example")
note "example config valid, $n commented-out settings valid"

# The systemd unit and the cron job call commands and options that exist.
for f in "$SRC/packaging/systemd/diskvault-backup.service" "$SRC/packaging/cron/diskvault"; do
	for c in backup forget; do
		grep -q -- "--config /etc/diskvault/diskvault.conf $c" "$f" || fail "$f does not run '$c' with the config file"
	done
	grep -q -- "forget --prune" "$f" || fail "$f does not run 'forget --prune'"
done
expect_ok "$DISKVAULT" forget --help
assert_contains "$STDOUT" "--prune" "forget --help"
grep -q '^Persistent=true' "$SRC/packaging/systemd/diskvault-backup.timer" || fail "timer is not Persistent"
if command -v systemd-analyze >/dev/null; then
	# Only the missing /usr/bin/diskvault (and its man page) may be reported
	# before installation; t_package.sh verifies the installed units fully.
	systemd-analyze verify "$SRC/packaging/systemd/diskvault-backup.service" \
		"$SRC/packaging/systemd/diskvault-backup.timer" >"$T/verify.out" 2>&1 || true
	if grep -vE '/usr/bin/diskvault is not executable|man diskvault\(1\)' "$T/verify.out" | qgrep .; then
		fail "systemd-analyze verify: $(cat "$T/verify.out")"
	fi
fi
