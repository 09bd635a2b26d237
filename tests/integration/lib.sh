# lib.sh - shared by the core integration tests (t_core_*.sh): sourced first.
#
# Gives the test a scratch directory ($T, removed on exit), assertion helpers
# (fail, expect_exit, assert_*), the binary as `dv`, and make_disk, which
# builds a real disk image without root: a GPT written by sfdisk, a small
# vfat ESP, an ext4 partition populated with mkfs.ext4 -d, and dirty free
# space (old, non-zero data left where no file lives). Everything random is
# derived from a seed, so a failure reproduces byte for byte.

set -euo pipefail

: "${DISKVAULT:?set DISKVAULT to the diskvault binary}"
[ -x "$DISKVAULT" ] || { echo "FAIL: DISKVAULT=$DISKVAULT is not executable" >&2; exit 1; }
export LC_ALL=C

MiB=$((1024 * 1024))
# A test that counts the kernel's reads of its images (read_bytes of
# /proc/PID/io) sets DV_REAL_DISK=1 before sourcing this file: a tmpfs
# keeps files in the page cache, so nothing could be evicted and nothing
# would be read (CI's fresh machine mounts a tmpfs on /tmp). Its work
# directory then goes to /var/tmp.
_dv_tmp=${TMPDIR:-/tmp}
if [ "${DV_REAL_DISK:-0}" = 1 ] && [ "$(stat -f -c %T "$_dv_tmp" 2>/dev/null)" = tmpfs ]; then
	_dv_tmp=/var/tmp
	[ "$(stat -f -c %T "$_dv_tmp" 2>/dev/null)" != tmpfs ] ||
		{ echo "SKIP: both ${TMPDIR:-/tmp} and /var/tmp are tmpfs: the kernel's reads cannot be counted" >&2; exit 77; }
fi
T=$(mktemp -d "$_dv_tmp/dv-it.XXXXXX")
# Tests add their own cleanup (unmount, kill) by appending to CLEANUP.
CLEANUP=()
_dv_cleanup() {
	local rc=$? c
	set +e
	for c in "${CLEANUP[@]+"${CLEANUP[@]}"}"; do eval "$c"; done
	rm -rf "$T"
	if [ "$rc" -eq 0 ]; then
		echo "PASS: $(basename "$0")"
	elif [ "$rc" -eq 77 ]; then
		echo "SKIP: $(basename "$0")"
	else
		echo "FAIL: $(basename "$0") (exit $rc)" >&2
	fi
	exit "$rc"
}
trap _dv_cleanup EXIT
trap 'exit 130' INT TERM

# Messages from the last expect_exit / run_capture.
ERR_FILE=$T/.stderr
OUT_FILE=$T/.stdout
STDERR=
STDOUT=

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

note() { echo "# $*"; }

# dv ARGS...: the binary without progress noise.
dv() { "$DISKVAULT" --progress=never "$@"; }

# expect_exit CODE CMD...: runs CMD, asserts its exit status; its stdout and
# stderr are kept in $STDOUT/$STDERR (and $OUT_FILE/$ERR_FILE).
expect_exit() {
	local want=$1 rc=0
	shift
	"$@" >"$OUT_FILE" 2>"$ERR_FILE" || rc=$?
	STDOUT=$(cat "$OUT_FILE")
	STDERR=$(cat "$ERR_FILE")
	if [ "$rc" -ne "$want" ]; then
		echo "--- stdout of: $*" >&2
		head -c 4000 "$OUT_FILE" >&2
		echo "--- stderr:" >&2
		head -c 4000 "$ERR_FILE" >&2
		fail "expected exit $want, got $rc: $*"
	fi
}

# expect_ok CMD...: expect_exit 0.
expect_ok() { expect_exit 0 "$@"; }

# assert_contains HAYSTACK NEEDLE [WHAT]: fixed-string match.
# producer | qgrep [GREP-OPTIONS] PATTERN: grep -q that reads all of its input
# first. With pipefail, `producer | grep -q` fails at random when grep exits
# at the first match while the producer still writes (SIGPIPE, status 141):
# t_docs_help failed that way in CI.
qgrep() {
	local in
	in=$(cat)
	grep -q "$@" <<<"$in"
}

assert_contains() {
	case "$1" in
	*"$2"*) ;;
	*) fail "${3:-output} does not contain '$2'; it is: $1" ;;
	esac
}

assert_not_contains() {
	case "$1" in
	*"$2"*) fail "${3:-output} contains '$2'; it is: $1" ;;
	*) ;;
	esac
}

# assert_lines TEXT N WHAT: TEXT has exactly N lines.
assert_lines() {
	local n
	if [ -z "$1" ]; then n=0; else n=$(printf '%s\n' "$1" | wc -l); fi
	[ "$n" -eq "$2" ] || fail "${3:-output} has $n lines, expected $2: $1"
}

# sha FILE: its SHA-256 (as sha256sum prints it; OpenSSL is ~8x faster).
sha() {
	local h
	h=$(openssl dgst -sha256 -r "$1") || fail "cannot hash $1"
	echo "${h%% *}"
}

# assert_same_file A B: equal sha256 (names both on failure).
assert_same_file() {
	local a b
	a=$(sha "$1")
	b=$(sha "$2")
	[ "$a" = "$b" ] || fail "$2 (sha256 $b) differs from $1 (sha256 $a)"
}

# json_get JSON EXPR: evaluates a python expression on j = the parsed JSON
# (fails the test when the text is not exactly one JSON document).
json_get() {
	python3 -c 'import json, sys
j = json.loads(sys.argv[1])
v = eval(sys.argv[2])
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$1" "$2" ||
		fail "not JSON or no $2: $1"
}

# assert_json_ok TEXT: TEXT is one line of JSON with "ok": true.
assert_json_ok() {
	assert_lines "$1" 1 "--json output"
	[ "$(json_get "$1" 'j["ok"]')" = true ] || fail "--json output has no \"ok\": true: $1"
}

# seeded_bytes SEED N: N deterministic pseudo-random bytes on stdout.
seeded_bytes() {
	# openssl dies of SIGPIPE when head has enough: not a failure.
	{ openssl enc -aes-128-ctr -pass "pass:$1" -nosalt -pbkdf2 -iter 1 </dev/zero 2>/dev/null || true; } |
		head -c "$2"
}

# seeded_text SEED N: N bytes of deterministic, compressible text.
seeded_text() {
	python3 -c 'import random, sys
r = random.Random(sys.argv[1]); n = int(sys.argv[2])
words = ["disk", "vault", "chunk", "pack", "index", "snapshot", "restore", "ext4", "sector", "block",
         "the", "of", "and", "a", "to", "zstd", "sha256", "gpt", "partition", "inode"]
out = []; size = 0
while size < n:
    line = " ".join(r.choice(words) for _ in range(r.randint(4, 14))) + "\n"
    out.append(line); size += len(line)
sys.stdout.write("".join(out)[:n])' "$1" "$2"
}

# make_tree DIR SEED BUDGET_BYTES: deterministic files for an ext4 of about
# twice BUDGET: text, a file and its duplicate, random (incompressible)
# files, small files, a sparse-ish file with zeros in it.
make_tree() {
	local dir=$1 seed=$2 budget=$3 i
	mkdir -p "$dir/etc" "$dir/home/user" "$dir/var/lib" "$dir/usr/share/doc"
	echo "diskvault test disk, seed $seed" >"$dir/etc/motd"
	seeded_text "$seed-text" $((budget / 8)) >"$dir/usr/share/doc/notes.txt"
	seeded_bytes "$seed-dup" $((budget / 8)) >"$dir/home/user/photo.raw"
	cp "$dir/home/user/photo.raw" "$dir/var/lib/photo-copy.raw"
	seeded_bytes "$seed-rand" $((budget / 4)) >"$dir/var/lib/blob.bin"
	{ seeded_bytes "$seed-mix" $((budget / 16)); head -c $((budget / 16)) /dev/zero; } >"$dir/var/lib/mixed.bin"
	for i in $(seq 1 20); do seeded_text "$seed-f$i" $((i * 1531)) >"$dir/etc/conf$i"; done
}

# make_disk OUT SIZE_MIB SEED: a GPT disk image of SIZE_MIB (>= 32):
#   1  1 MiB .. 9 MiB  EFI System, vfat "ESP"
#   2  9 MiB .. end-1  Linux filesystem, ext4 "root" holding make_tree files
# Before partitioning, the first 3/4 of the disk is filled with seeded old
# data, so free ext4 blocks are dirty (not zero) and the tail is zero.
# Sets EXT_OFF and EXT_SIZE (bytes) for the ext4 partition.
make_disk() {
	local out=$1 size=$2 seed=$3 tree
	[ "$size" -ge 32 ] || fail "make_disk: $size MiB is too small"
	rm -f "$out"
	truncate -s "${size}M" "$out"
	seeded_bytes "$seed-old" $((size * 3 / 4 * MiB)) | dd of="$out" conv=notrunc bs=1M iflag=fullblock status=none
	EXT_OFF=$((9 * MiB))
	EXT_SIZE=$(((size - 10) * MiB))
	sfdisk -q "$out" >/dev/null <<-EOT || fail "sfdisk failed on $out"
		label: gpt
		start=1MiB, size=8MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
		start=9MiB, size=$((size - 10))MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
	EOT
	if command -v mkfs.vfat >/dev/null; then
		mkfs.vfat -n ESP --offset $((MiB / 512)) "$out" $((8 * 1024)) >/dev/null 2>&1 ||
			fail "mkfs.vfat failed on $out"
	fi
	tree=$(mktemp -d "$T/tree.XXXXXX")
	make_tree "$tree" "$seed" $((EXT_SIZE / 4))
	mkfs.ext4 -q -F -L root -E offset=$EXT_OFF,nodiscard -d "$tree" "$out" $((EXT_SIZE / 1024))k ||
		fail "mkfs.ext4 failed on $out"
	rm -rf "$tree"
}

# make_random_disk OUT SIZE_MIB SEED: a disk of seeded incompressible data
# with a GPT in front (for tests that need volume, not a filesystem).
make_random_disk() {
	local out=$1 size=$2 seed=$3
	rm -f "$out"
	seeded_bytes "$seed" $((size * MiB)) >"$out"
	sfdisk -q "$out" >/dev/null <<-EOT || fail "sfdisk failed on $out"
		label: gpt
		start=1MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data
	EOT
}

# extract_ext4 IMG OUT: copies the ext4 partition (EXT_OFF/EXT_SIZE of the
# last make_disk) out of IMG.
extract_ext4() {
	dd if="$1" of="$2" bs=1M skip=$((EXT_OFF / MiB)) count=$((EXT_SIZE / MiB)) status=none
}

# mutate IMG SEED OFFSET COUNT: overwrites COUNT 4 KiB blocks at byte OFFSET
# with seeded data, in place.
mutate() {
	seeded_bytes "$2" $(($4 * 4096)) |
		dd of="$1" bs=4096 seek=$(($3 / 4096)) conv=notrunc iflag=fullblock status=none
}

# init_repo DIR [init options]: a new repository.
init_repo() {
	local dir=$1
	shift
	# diskvault encrypts a new repository unless told not to; tests that
	# want encryption say --encrypt
	case " $* " in
	*" --encrypt "*) expect_ok dv --repo "$dir" init "$@" ;;
	*) expect_ok dv --repo "$dir" init --no-encrypt "$@" ;;
	esac
}

# backup_json REPO ARGS...: runs a backup with --json, asserts success, and
# sets BACKUP_JSON and SNAP (the new snapshot id).
backup_json() {
	local repo=$1
	shift
	expect_ok dv --repo "$repo" --json backup "$@"
	BACKUP_JSON=$STDOUT
	assert_json_ok "$BACKUP_JSON"
	SNAP=$(json_get "$BACKUP_JSON" 'j["snapshot"]')
	[ "${#SNAP}" -eq 64 ] || fail "backup --json gave no 64-hex snapshot id: $BACKUP_JSON"
}

# restore_check REPO SNAP EXPECTED_FILE [restore options]: restores into a
# new file and compares it with EXPECTED_FILE.
restore_check() {
	local repo=$1 snap=$2 want=$3 out
	shift 3
	out=$T/restored.$$.$RANDOM.img
	expect_ok dv --repo "$repo" restore "$snap" "$out" "$@"
	assert_same_file "$want" "$out"
	rm -f "$out"
}

# pack_files REPO: the pack files, one per line.
pack_files() { find "$1/packs" -type f -not -name '*.tmp' | sort; }
