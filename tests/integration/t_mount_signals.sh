#!/usr/bin/env bash
# t_mount_signals.sh - how a mount ends. SIGINT (Ctrl-C), SIGTERM and
# `umount` each leave nothing in /proc/mounts and the process exits 0. A
# SIGKILLed mount is cleaned up by libfuse's auto_unmount, and a new mount
# on the same directory works; so does one after the auto_unmount helper
# (fusermount3) was killed too, which leaves a dead mount (ENOTCONN) that
# the new mount detaches. --background returns once mounted and the mount
# stays until umount.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_mount.sh"

mount_fixture mount-sig

check_reads() { [ "$(sha256sum <"$M/disk0.img")" = "$want" ] || fail "$1: disk0.img differs from the disk"; }

for sig in INT TERM; do
	mount_start "$R" latest "$M"
	check_reads "before SIG$sig"
	kill -$sig "$MPID"
	mount_wait_exit 0
	is_mounted "$M" && fail "SIG$sig left $M mounted"
	ls "$M" >/dev/null || fail "$M is not usable after SIG$sig"
done

# umount from outside
mount_start "$R" latest "$M"
umount "$M"
mount_wait_exit 0
is_mounted "$M" && fail "umount left $M mounted"

# SIGKILL of the mount process alone: auto_unmount's fusermount3 unmounts it.
mount_start "$R" latest "$M"
kill -KILL "$MPID"
wait "$MPID" 2>/dev/null || true
for i in $(seq 1 50); do is_mounted "$M" || break; sleep 0.1; done
is_mounted "$M" && note "auto_unmount has not unmounted $M yet: the next mount detaches it"
mount_start "$R" latest "$M"
check_reads "after SIGKILL"
umount "$M"
mount_wait_exit 0

# SIGKILL of the mount and of its auto_unmount helper (fusermount3, its
# child in a session of its own): a dead mount stays, every access ENOTCONN.
mount_start "$R" latest "$M"
helper=$(pgrep -P "$MPID" -x fusermount3) || fail "no auto_unmount fusermount3 child of the mount process"
kill -KILL "$helper" "$MPID"
wait "$MPID" 2>/dev/null || true
is_mounted "$M" || fail "killing the mount and its helper left no dead mount to test with"
stat "$M" >/dev/null 2>"$T/stat.err" && fail "a dead FUSE mount answered stat"
assert_contains "$(cat "$T/stat.err")" "Transport endpoint is not connected"
mount_start "$R" latest "$M"
check_reads "after killing the mount and its helper"
[ "$(awk -v d="$M" '$2 == d' /proc/mounts | wc -l)" -eq 1 ] || fail "the dead mount was not detached: $(grep "$M" /proc/mounts)"
umount "$M"
mount_wait_exit 0
is_mounted "$M" && fail "$M is still mounted"

# --background: exits 0 once mounted; the mount stays until umount.
expect_ok dv --repo "$R" --json mount latest "$M" --background
bgpid=$(json_get "$STDOUT" 'j["pid"]')
CLEANUP+=("kill -KILL $bgpid 2>/dev/null; umount -l '$M' 2>/dev/null")
is_mounted "$M" || fail "--background returned but $M is not mounted"
check_reads "--background"
kill -0 "$bgpid" || fail "the background mount process is gone"
umount "$M"
for i in $(seq 1 100); do kill -0 "$bgpid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$bgpid" 2>/dev/null && fail "the background mount process outlived umount"
is_mounted "$M" && fail "$M is still mounted"
# a failing --background mount reports its error and exit code
expect_exit 2 dv --repo "$R" mount latest "$T/disk.img" --background
assert_contains "$STDERR" "is not a directory"
true
