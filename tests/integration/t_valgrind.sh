#!/usr/bin/env bash
# The main commands under valgrind memcheck on a small real disk image:
# no invalid reads or writes, no uninitialised values, no leaks (definite
# or indirect). Skips (77) where valgrind is missing or the binary was
# built with sanitizers (they do not mix).
source "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "SKIP: valgrind is not installed"; exit 77; }
# (grep on the file itself: with pipefail, nm | qgrep fails when nm gets SIGPIPE.)
if grep -aq __asan_init "$DISKVAULT"; then
	echo "SKIP: $DISKVAULT is built with AddressSanitizer"
	exit 77
fi
vg() {
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect "$DISKVAULT" --progress=never "$@"
}
make_disk "$T/d.img" 48 vg1
repo=$T/repo
pw=$T/pw
printf 'valgrind passphrase\n' >"$pw"
chmod 600 "$pw"
expect_ok vg --repo "$repo" init --no-encrypt --pack-size 1
expect_ok vg --repo "$repo" backup "$T/d.img" --sha256
expect_ok vg --repo "$repo" backup "$T/d.img" --all-blocks
expect_ok vg --repo "$repo" list --json
expect_ok vg --repo "$repo" show latest
expect_ok vg --repo "$repo" restore latest "$T/out.img"
cmp -s "$T/d.img" "$T/out.img" || fail "restore under valgrind is not bit-exact"
expect_ok vg --repo "$repo" verify latest
expect_ok vg --repo "$repo" check --read-data
expect_ok vg --repo "$repo" forget --keep-last 1 --prune
expect_ok vg --repo "$repo" rebuild-index
# Failure paths leak nothing either.
expect_exit 10 vg --repo "$T/nothing" list
expect_exit 1 vg --repo "$repo" restore "0000" "$T/x.img"
assert_contains "$STDERR" "snapshot 0000 not found"
# Encrypted repository.
expect_ok vg --repo "$T/enc" --password-file "$pw" init --encrypt --kdf-n 1024
expect_ok vg --repo "$T/enc" --password-file "$pw" backup "$T/d.img" --all-blocks
expect_ok vg --repo "$T/enc" --password-file "$pw" restore latest "$T/out2.img"
cmp -s "$T/d.img" "$T/out2.img" || fail "encrypted restore under valgrind is not bit-exact"
