#!/usr/bin/env bash
# gen-man.sh - writes diskvault(1) from the binary's own help texts, so the
# man page cannot drift from the program:
#   SYNOPSIS  <- `diskvault --help` (the usage lines)
#   COMMANDS  <- every command `diskvault --help` lists, its summary there
#                and `diskvault COMMAND --help` (usage, text, options)
#   EXIT STATUS <- the table of docs/exit-codes.md (when present)
# plus the hand-written packaging/man/header.roff and footer.roff.
# Usage: gen-man.sh DISKVAULT_BINARY OUT.1 [EXIT_CODES_MD]
set -euo pipefail
bin=${1:?usage: gen-man.sh DISKVAULT_BINARY OUT.1 [EXIT_CODES_MD]}
out=${2:?usage: gen-man.sh DISKVAULT_BINARY OUT.1 [EXIT_CODES_MD]}
codes=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
export LC_ALL=C
# Help must not depend on whoever builds: no config file, no repository.
export DISKVAULT_CONFIG=/dev/null ASAN_OPTIONS=detect_leaks=0
unset DISKVAULT_REPO

version=$("$bin" --version | awk '{print $2}')
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
else
	date=$(date -u +%Y-%m-%d)
fi
main_help=$("$bin" --help)

# roff-escape stdin: backslashes, minus signs, leading dots and quotes.
esc() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

# One command's --help (stdin) as roff. Layout of a help text: "usage:"
# and its indented continuation lines; free text; items indented by two
# spaces ("  --opt ARG   text" or "  sub   text") whose text may continue on
# lines indented further.
help_to_roff() {
	esc | awk '
	function flush_para() { if (para != "") { print ".PP"; print para; para = "" } }
	function placeholder(t) { return t ~ /^[][A-Z0-9_.|=%<>,\\e-]+$/ && t ~ /[A-Z]/ }
	BEGIN { state = "usage" }
	NR == 1 { sub(/^usage: /, ""); print ".PP"; print ".nf"; print "\\fB" $0 "\\fR"; next }
	state == "usage" && /^[ \t]/ { sub(/^[ \t]+/, "    "); print "\\fB" $0 "\\fR"; next }
	state == "usage" { print ".fi"; state = "text" }
	/^  [^ ]/ {
		flush_para()
		line = substr($0, 3)
		n = split(line, w, " ")
		term = w[1]; i = 2
		# the term: the option (or subcommand) and its argument placeholders
		while (i <= n && (placeholder(w[i]) || (w[i-1] ~ /,$/ && w[i] ~ /^\\-/))) { term = term " " w[i]; i++ }
		desc = ""
		for (; i <= n; i++) desc = desc (desc == "" ? "" : " ") w[i]
		print ".TP"; print ".B \"" term "\""; if (desc != "") print desc
		state = "item"; next
	}
	state == "item" && /^    / { sub(/^ +/, ""); print; next }
	/^[ \t]*$/ { flush_para(); next }
	{ sub(/^ +/, ""); para = para (para == "" ? "" : "\n") $0; state = "text" }
	END { if (state == "usage") print ".fi"; flush_para() }'
}

# "  name  summary" lines after "commands:" in the main help.
commands=$(printf '%s\n' "$main_help" | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { on = 0 }')
[ -n "$commands" ] || { echo "gen-man.sh: no commands in '$bin --help'" >&2; exit 1; }

synopsis() {
	printf '%s\n' "$main_help" | awk 'NR == 1 { sub(/^usage: /, ""); print; next } /^ +\[|^ +COMMAND/ { sub(/^ +/, ""); print; next } { exit }' |
		esc | awk 'BEGIN { print ".nf" } { print "\\fB" $0 "\\fR" } END { print ".fi" }'
}

exit_status() {
	[ -n "$codes" ] && [ -f "$codes" ] || return 0
	echo ".SH EXIT STATUS"
	# | 0 | `DV_EXIT_OK` | meaning | classes | examples |
	awk -F'|' '$2 ~ /^ *[0-9]+ *$/ { c = $2; m = $4; gsub(/^ +| +$/, "", c); gsub(/^ +| +$/, "", m); print c "\t" m }' "$codes" |
		sed -e 's/`//g' -e 's/\[\([^]]*\)\]([^)]*)/\1/g' |
		while IFS=$'\t' read -r code meaning; do
			printf '.TP\n.B %s\n%s\n' "$code" "$(printf '%s\n' "$meaning" | esc)"
		done
	echo ".PP"
	echo "The full table, with the error classes behind each code, is docs/exit\\-codes.md."
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
	syn=$(synopsis)
	while IFS= read -r l; do
		if [ "$l" = "@SYNOPSIS@" ]; then printf '%s\n' "$syn"; else printf '%s\n' "$l"; fi
	done <"$here/man/header.roff" | sed -e "s/@VERSION@/$version/" -e "s/@DATE@/$date/"
	for c in $commands; do
		summary=$(printf '%s\n' "$main_help" | awk -v c="$c" '/^commands:/ { on = 1; next } on && $1 == c { $1 = ""; sub(/^ +/, ""); print; exit }')
		printf '.SS "%s"\n' "$c"
		printf '%s\n' "$summary" | esc
		"$bin" "$c" --help | help_to_roff
	done
	exit_status
	cat "$here/man/footer.roff"
} >"$tmp"
mv "$tmp" "$out"
trap - EXIT
