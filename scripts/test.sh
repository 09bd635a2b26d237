#!/usr/bin/env bash
# The whole test suite on a fresh Debian/Ubuntu machine: installs what is
# missing, builds (normal and ASan+UBSan), starts the local servers the
# tests need on 127.0.0.1, runs every test with ctest, stops the servers.
# Usage: scripts/test.sh        (DV_SKIP_SANITIZE=1 skips the sanitizer pass)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
scripts/deps.sh test

jobs=$(nproc)
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-test -j"$jobs"

# Shared local servers for the whole run (tests that must kill a server
# start a private one). Each listens on 127.0.0.1 only.
srv=$top/build-test/servers
stops=()
stop_servers() {
	local s
	for s in "${stops[@]+"${stops[@]}"}"; do eval "$s" || true; done
}
trap stop_servers EXIT
rc=0
sh tests/servers/swift-s3-start.sh "$srv/swift" 4571 || rc=$?
if [ "$rc" -eq 0 ]; then
	stops+=("sh tests/servers/swift-s3-stop.sh '$srv/swift'")
	export DV_S3_SERVER_DIR=$srv/swift DV_S3_PORT=4571
elif [ "$rc" -ne 77 ]; then
	echo "cannot start the S3 test server" >&2
	exit 1
fi

echo "== tests (RelWithDebInfo)"
(cd build-test && ctest -j"$jobs" --output-on-failure --timeout 900)

if [ "${DV_SKIP_SANITIZE:-0}" != 1 ]; then
	echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer (clang)"
	CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDV_SANITIZE=ON >/dev/null
	cmake --build build-asan -j"$jobs"
	(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest -j"$jobs" --output-on-failure --timeout 900)
fi
echo "== fuzz targets: a short run of each on its seed corpus (clang libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DDV_SANITIZE=ON -DDV_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz
tests/fuzz/run.sh build-fuzz "${DV_FUZZ_RUNS:-100000}"
echo "all tests passed"
