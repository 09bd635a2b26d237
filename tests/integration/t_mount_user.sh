#!/usr/bin/env bash
# t_mount_user.sh - the mount without root: as user nobody (fusermount3 is
# setuid root, as Debian installs it) the mount serves the same bytes, and
# a dead mount of that user (mount and auto_unmount helper SIGKILLed) is
# detached by the next mount with fusermount3 -u -z. Without
# --allow-other, other users (root too) cannot look into the mount.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_mount.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: switching to an unprivileged user needs root"; exit 77; }
[ -u "$(command -v fusermount3)" ] || { echo "SKIP: fusermount3 is not setuid root: FUSE allows no user mounts here"; exit 77; }

# A chroot unpacked into a 0700 directory (as a fresh-machine test root
# can be) lets no other user load even libc: then no user mount can be
# tried at all.
chmod 755 "$T"
why=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$DISKVAULT" --version 2>&1) ||
	{ echo "SKIP: user nobody cannot run $DISKVAULT here: $(head -1 <<<"$why")"; exit 77; }

mount_fixture mount-user
chmod -R a+rwX "$R"   # the lock is a file nobody writes
chown 65534:65534 "$M"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$T" "$@"; }

# mount_start, as nobody
start_user() {
	DISKVAULT_REAL=$DISKVAULT
	cat >"$T/dv-nobody" <<-EOT
		#!/bin/sh
		exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=$T "$DISKVAULT_REAL" "\$@"
	EOT
	chmod 755 "$T/dv-nobody"
	DISKVAULT=$T/dv-nobody mount_start "$R" latest "$M"
}
start_user
grep " $M " /proc/mounts | qgrep "user_id=65534" || fail "the mount is not the user's: $(grep " $M " /proc/mounts)"
[ "$(as_nobody sh -c 'sha256sum <"$1"' - "$M/disk0.img")" = "$want" ] || fail "disk0.img read as nobody differs from the disk"
# other users, root too, cannot look in without --allow-other
if stat "$M/disk0.img" >/dev/null 2>&1; then fail "root can read the user's mount made without --allow-other"; fi

# (the mount's exec chain sh > setpriv > env > diskvault keeps MPID)
helper=$(pgrep -P "$MPID" -x fusermount3) || fail "no auto_unmount fusermount3 child of the mount process"
kill -KILL "$helper" "$MPID"
wait "$MPID" 2>/dev/null || true
is_mounted "$M" || fail "killing the mount and its helper left no dead mount to test with"
start_user
[ "$(as_nobody sh -c 'sha256sum <"$1"' - "$M/disk0.img")" = "$want" ] || fail "the mount after a dead one serves other bytes"
[ "$(awk -v d="$M" '$2 == d' /proc/mounts | wc -l)" -eq 1 ] || fail "the dead mount was not detached"
as_nobody fusermount3 -u "$M" || fail "fusermount3 -u as the user failed"
mount_wait_exit 0
is_mounted "$M" && fail "$M is still mounted"
true
