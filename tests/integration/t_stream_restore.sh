#!/bin/bash
# t_stream_restore.sh - restore SNAPSHOT - writes the disk to stdout in
# order (issue 14): its sha256 equals the source's (all-blocks) and the
# restored file's (used-blocks); a zstd round trip; a reader that closes
# the pipe early gives exit 13 (target-closed) and one line; --volume p2
# equals the partition's bytes, to a file and to stdout.
. "$(dirname "$0")/lib.sh"

R=$T/repo
make_disk "$T/disk.img" 64 stream
SRC_SHA=$(sha "$T/disk.img")
init_repo "$R"
backup_json "$R" "$T/disk.img" --all-blocks --name all
ALL=$SNAP
backup_json "$R" "$T/disk.img" --name used
USED=$SNAP

# all-blocks: the stream is the source disk
GOT=$("$DISKVAULT" --progress=never --repo "$R" restore "$ALL" - 2>"$T/err" | sha256sum | cut -d' ' -f1)
[ "$GOT" = "$SRC_SHA" ] || fail "restore - | sha256sum = $GOT, source $SRC_SHA: $(cat "$T/err")"
qgrep "restored disk 0 of snapshot" "$T/err" || fail "the summary did not go to stderr: $(cat "$T/err")"

# used-blocks: the stream equals a file restore (free space as zeros)
expect_ok dv --repo "$R" restore "$USED" "$T/used.img"
GOT=$(dv --repo "$R" restore "$USED" - 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$GOT" = "$(sha "$T/used.img")" ] || fail "used-blocks stream differs from the file restore"
[ "$GOT" != "$SRC_SHA" ] || fail "used-blocks stream equals the dirty source: free space was not zeroed"
rm -f "$T/used.img"

# --json goes to stderr too: stdout is only the disk
dv --repo "$R" --json restore "$ALL" - >"$T/out.img" 2>"$T/err"
assert_same_file "$T/disk.img" "$T/out.img"
qgrep '"ok":true' "$T/err" || fail "no JSON summary on stderr: $(cat "$T/err")"
rm -f "$T/out.img"

# zstd round trip
if command -v zstd >/dev/null; then
	dv --repo "$R" restore "$ALL" - 2>/dev/null | zstd -q -1 >"$T/disk.zst"
	[ "$(zstd -dc "$T/disk.zst" | sha256sum | cut -d' ' -f1)" = "$SRC_SHA" ] || fail "zstd round trip differs"
	rm -f "$T/disk.zst"
fi

# a reader that goes away: exit 13, one line naming target-closed
rc=0
{ "$DISKVAULT" --progress=never --repo "$R" restore "$ALL" - 2>"$T/err"; echo $? >"$T/rc"; } | head -c 1M >/dev/null || true
rc=$(cat "$T/rc")
[ "$rc" -eq 13 ] || fail "restore - | head -c 1M exited $rc, want 13: $(cat "$T/err")"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "EPIPE gave more than one line: $(cat "$T/err")"
qgrep "the reader closed the stream" "$T/err" || fail "EPIPE message: $(cat "$T/err")"

# --volume p2: the ext4 partition, to a file and to stdout
extract_ext4 "$T/disk.img" "$T/p2.want"
expect_ok dv --repo "$R" restore "$ALL" --volume p2 "$T/p2.img"
assert_same_file "$T/p2.want" "$T/p2.img"
[ "$(dv --repo "$R" restore "$ALL" --volume p2 - 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$(sha "$T/p2.want")" ] ||
	fail "restore --volume p2 - differs from dd of the partition"
# used-blocks volume passes fsck
expect_ok dv --repo "$R" restore "$USED" --volume p2 "$T/p2u.img"
e2fsck -fn "$T/p2u.img" >"$T/fsck.log" 2>&1 || { cat "$T/fsck.log" >&2; fail "e2fsck of restored p2"; }

# bad names and combinations
expect_exit 2 dv --repo "$R" restore "$ALL" --volume p9 "$T/x.img"
assert_contains "$STDERR" "has no volume p9" "unknown volume"
assert_contains "$STDERR" "p2" "unknown volume lists the volumes"
expect_exit 2 dv --repo "$R" restore "$ALL" --volume p2 --disk 0 "$T/x.img"
# the target checks of a disk restore apply: an existing non-empty file
expect_exit 13 dv --repo "$R" restore "$ALL" --volume p2 "$T/p2.img"

# a stream of a two-disk snapshot needs --disk; disk 1 and disk1-p2 stream
make_random_disk "$T/b.img" 8 stream-b
backup_json "$R" "$T/disk.img" "$T/b.img" --all-blocks --name two
TWO=$SNAP
rc=0
dv --repo "$R" restore "$TWO" - >/dev/null 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] || fail "a two-disk stream without --disk exited $rc: $(cat "$T/err")"
qgrep "give --disk N" "$T/err" || fail "two-disk refusal message: $(cat "$T/err")"
[ "$(dv --repo "$R" restore "$TWO" --disk 1 - 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$(sha "$T/b.img")" ] ||
	fail "restore --disk 1 - differs from the second disk"
dd if="$T/b.img" of="$T/b1.want" bs=1M skip=1 count=6 status=none
expect_ok dv --repo "$R" restore "$TWO" --volume disk1-p1 "$T/b1.img"
[ "$(stat -c %s "$T/b1.img")" -ge $((6 * MiB)) ] || fail "disk1-p1 is too small"
cmp -s -n $((6 * MiB)) "$T/b1.want" "$T/b1.img" || fail "restore --volume disk1-p1 differs from dd of the partition"
