#!/bin/bash
# t_users_progress.sh - the progress line of backup on a real terminal
# (tmux) at 40, 80 and 200 columns (issue 16): it never wraps (each redraw
# stays on one screen line, so one "backup:" line is left), it says ETA as
# h:mm:ss while running, and its last frame is the completed one
# ("100.0%", "done in h:mm:ss"), at the widest with the rate in MiB/s.
. "$(dirname "$0")/lib.sh"

command -v tmux >/dev/null || { echo "tmux is not installed (scripts/deps.sh test)"; exit 77; }
R=$T/repo
init_repo "$R"
seeded_bytes progress 160000000 >"$T/a.img"
SOCK=$T/tmux.sock
CLEANUP+=("tmux -S '$SOCK' kill-server 2>/dev/null")

for cols in 40 80 200; do
	note "terminal of $cols columns"
	rm -f "$T/done"
	# a raw log of the pane beside the screen: the ETA frames are
	# overwritten on screen, but pipe-pane keeps every byte
	tmux -S "$SOCK" new-session -d -x "$cols" -y 20 -s "p$cols" \
		"'$DISKVAULT' --repo '$R' backup '$T/a.img' --all-blocks --threads 1 --name c$cols; echo EXIT=\$? >'$T/done'; sleep 60"
	tmux -S "$SOCK" pipe-pane -t "p$cols" -o "cat >'$T/raw$cols'"
	for _ in $(seq 600); do [ -s "$T/done" ] && break; sleep 0.1; done
	[ "$(cat "$T/done" 2>/dev/null)" = EXIT=0 ] || fail "backup in tmux: $(cat "$T/done" 2>/dev/null)"
	screen=$(tmux -S "$SOCK" capture-pane -p -t "p$cols")
	tmux -S "$SOCK" kill-session -t "p$cols"
	lines=$(grep -c '^backup:' <<<"$screen" || true)
	[ "$lines" -eq 1 ] || fail "$cols columns: $lines progress lines left on screen (wrapped redraws?): $screen"
	frame=$(grep '^backup:' <<<"$screen")
	assert_contains "$frame" "100.0%" "$cols columns: last frame"
	[[ $frame =~ done\ in\ [0-9]+:[0-5][0-9]:[0-5][0-9] ]] || fail "$cols columns: no 'done in h:mm:ss': $frame"
	[ "${#frame}" -lt "$cols" ] || fail "$cols columns: frame of ${#frame} characters: $frame"
	assert_contains "$screen" "snapshot " "$cols columns: summary"
	# every frame drawn fits: split the raw bytes at \r
	raw=$(tr '\r' '\n' <"$T/raw$cols" | sed 's/\x1b\[K//g' | grep '^backup:' || true)
	[ -n "$raw" ] || fail "$cols columns: no frames in the raw output"
	while IFS= read -r f; do
		[ "${#f}" -lt "$cols" ] || fail "$cols columns: a frame of ${#f} characters: $f"
	done <<<"$raw"
	grep -Eq 'ETA [0-9]+:[0-5][0-9]:[0-5][0-9]' <<<"$raw" || fail "$cols columns: no ETA h:mm:ss frame: $raw"
	case $cols in
	200) assert_contains "$frame" "MiB/s" "200 columns" ;;
	40) assert_not_contains "$frame" "MiB /" "40 columns" ;;
	esac
done
echo ok
