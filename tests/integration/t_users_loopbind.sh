#!/bin/bash
# t_users_loopbind.sh - an image file is matched to its loop devices by
# device and inode, not by path (issue 16): the image's directory is
# bind-mounted at a second path, a loop device is set up through that path
# and its ext4 partition mounted read-write; a backup of the image by its
# first path is refused because the filesystem is mounted read-write (the
# message names the mount point), not only because its journal needs
# recovery. Needs root, loop devices and mount (else skipped, saying why).
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || { echo "needs root (loop devices, mount)"; exit 77; }
command -v losetup >/dev/null || { echo "no losetup"; exit 77; }
mkdir -p "$T/real" "$T/bind" "$T/mnt"
make_disk "$T/real/a.img" 40 loopbind
mount --bind "$T/real" "$T/bind" 2>/dev/null || { echo "cannot bind-mount here (container?)"; exit 77; }
CLEANUP+=("umount '$T/bind'")
# the ext4 partition as a loop device with an offset (no partition devices
# needed), set up through the second path
LOOP=$(losetup -f --show --offset "$EXT_OFF" --sizelimit "$EXT_SIZE" "$T/bind/a.img" 2>/dev/null) ||
	{ echo "losetup failed (no free loop device)"; exit 77; }
CLEANUP=("losetup -d $LOOP" "${CLEANUP[@]}")
backing=$(cat "/sys/block/${LOOP#/dev/}/loop/backing_file")
assert_contains "$backing" "$T/bind/a.img" "the loop device's backing file"
mount "$LOOP" "$T/mnt" || { echo "cannot mount $LOOP"; exit 77; }
# CLEANUP runs in order: unmount, detach, then the bind mount
CLEANUP=("umount '$T/mnt'" "${CLEANUP[@]}")

R=$T/repo
init_repo "$R"
expect_exit 13 dv --repo "$R" backup "$T/real/a.img"
assert_contains "$STDERR" "mounted read-write" "backup of the image by its other path"
assert_contains "$STDERR" "$T/mnt" "backup of the image by its other path"
# by the path the loop device was set up with: the same answer
expect_exit 13 dv --repo "$R" backup "$T/bind/a.img"
assert_contains "$STDERR" "$T/mnt" "backup of the image by its loop path"
echo ok
