#!/usr/bin/env bash
# Runs every libFuzzer target of a -DDV_FUZZ=ON build on its committed seed
# corpus for a fixed number of executions (default 20000; e.g. 2000000 or
# -max_total_time=3600 for a long on-demand run). A crash fails the run and
# leaves the reproducer (crash-*) in the work directory: fix the bug and
# commit the input to tests/fuzz/corpus/<target>/ as a regression seed.
# Usage: tests/fuzz/run.sh BUILD_DIR [RUNS]
set -euo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR [RUNS]}" && pwd)
runs=${2:-20000}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for bin in "$build"/tests/fuzz_*; do
	t=${bin##*/fuzz_}
	mkdir -p "$work/$t"
	cp "$here/corpus/$t"/* "$work/$t/" 2>/dev/null || true
	extra=()
	# libarchive's cpio reader reserves a read-ahead buffer as large as a
	# header's name or link size (up to 4 GiB of address space) before it
	# knows whether that much data follows; the read then fails and the
	# buffer is freed (a failed malloc is an error, not a crash). Not ours
	# to bound, so this target may allocate that much.
	[ "$t" = initramfs ] && extra=(-malloc_limit_mb=4300 -rss_limit_mb=4096)
	if (cd "$work" && "$bin" -runs="$runs" -max_len=65536 -timeout=10 ${extra[@]+"${extra[@]}"} "$work/$t" >"$work/$t.log" 2>&1); then
		echo "fuzz $t: $runs runs, no crash"
	else
		echo "fuzz $t: FAILED"
		tail -40 "$work/$t.log"
		cp "$work"/crash-* "$here/" 2>/dev/null || true
		status=1
	fi
done
exit $status
