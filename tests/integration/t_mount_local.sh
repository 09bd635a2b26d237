#!/usr/bin/env bash
# t_mount_local.sh - `diskvault mount` of a local repository: a GPT disk
# (vfat ESP, ext4 root) shows disk0.img, disk0-p1.img, disk0-p2.img; each
# image's sha256 equals the restored disk (cut with dd for partitions);
# the ext4 image loop-mounts (ro,noload) with the same files, modes and
# link targets as the original; writes are refused; `umount` ends the
# process with 0 and leaves no mount; a read-heavy pass with a tiny cache
# still gives the same bytes (eviction), and several readers at once too.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_mount.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: loop-mounting the exposed ext4 image needs root"; exit 77; }

make_disk "$T/disk.img" 48 mount-local
# a symlink and a hard link in the ext4, written through a loop mount of the original
mkdir -p "$T/orig"
mount -o loop,offset=$EXT_OFF,sizelimit=$EXT_SIZE "$T/disk.img" "$T/orig" || fail "cannot loop-mount the original"
ln -s ../etc/motd "$T/orig/home/user/motd-link"
ln "$T/orig/etc/conf3" "$T/orig/etc/conf3-hard"
chmod 0750 "$T/orig/var/lib"
umount "$T/orig"
R=$T/repo
init_repo "$R"
backup_json "$R" "$T/disk.img"
expect_ok dv --repo "$R" restore "$SNAP" "$T/restored.img"

M=$T/mnt
mkdir -p "$M"
mount_start "$R" latest "$M"
assert_contains "$(cat "$MLOG")" "3 images"
[ "$(cd "$M" && ls | tr '\n' ' ')" = "disk0-p1.img disk0-p2.img disk0.img " ] ||
	fail "the mount shows $(ls "$M"), expected disk0-p1.img disk0-p2.img disk0.img"
[ "$(stat -c %s "$M/disk0.img")" -eq $((48 * MiB)) ] || fail "disk0.img is $(stat -c %s "$M/disk0.img") bytes"
[ "$(stat -c %a "$M/disk0-p2.img")" = 444 ] || fail "disk0-p2.img has mode $(stat -c %a "$M/disk0-p2.img")"

# Each image equals the restored disk, or the restored partition cut out with dd.
dd if="$T/restored.img" of="$T/p1.img" bs=1M skip=1 count=8 status=none
dd if="$T/restored.img" of="$T/p2.img" bs=1M skip=$((EXT_OFF / MiB)) count=$((EXT_SIZE / MiB)) status=none
[ "$(sha256sum <"$M/disk0.img")" = "$(sha256sum <"$T/restored.img")" ] || fail "disk0.img differs from the restored disk"
[ "$(sha256sum <"$M/disk0-p1.img")" = "$(sha256sum <"$T/p1.img")" ] || fail "disk0-p1.img differs from the restored p1"
[ "$(sha256sum <"$M/disk0-p2.img")" = "$(sha256sum <"$T/p2.img")" ] || fail "disk0-p2.img differs from the restored p2"

# Read-only.
if echo x 2>/dev/null >>"$M/disk0.img"; then fail "a write to disk0.img succeeded"; fi
if touch "$M/new" 2>/dev/null; then fail "creating a file in the mount succeeded"; fi

# The ext4 image, loop-mounted, holds the original's files.
mkdir -p "$T/lo" "$T/orig"
mount -o ro,loop,noload "$M/disk0-p2.img" "$T/lo" || fail "cannot loop-mount $M/disk0-p2.img"
CLEANUP+=("umount '$T/lo' 2>/dev/null")
mount -o ro,loop,noload,offset=$EXT_OFF,sizelimit=$EXT_SIZE "$T/disk.img" "$T/orig" || fail "cannot loop-mount the original"
CLEANUP+=("umount '$T/orig' 2>/dev/null")
listing() { (cd "$1" && find . -printf '%p %y %m %U %G %s %T@ %l %n\n' | sort); }
[ "$(listing "$T/lo")" = "$(listing "$T/orig")" ] ||
	fail "the loop-mounted image lists differently: $(diff <(listing "$T/orig") <(listing "$T/lo") | head -20)"
diff -r --no-dereference "$T/orig" "$T/lo" >/dev/null || fail "file contents differ between the original and the mounted image"
[ "$(readlink "$T/lo/home/user/motd-link")" = ../etc/motd ] || fail "the symlink target differs"
[ "$(stat -c %i "$T/lo/etc/conf3")" = "$(stat -c %i "$T/lo/etc/conf3-hard")" ] || fail "the hard link is not one inode"
umount "$T/lo"
umount "$T/orig"

umount "$M" || fail "umount $M failed"
mount_wait_exit 0
is_mounted "$M" && fail "$M is still mounted after umount"
assert_contains "$(cat "$MLOG")" "unmounted $M"

# A 1 MiB cache (each chunk evicted before the next pass) and four readers
# at once give the same bytes; the cache bound makes the second pass fetch again.
mount_start "$R" "$SNAP" "$M" --cache-size 1M --threads 4
want=$(sha256sum <"$T/restored.img")
for i in 1 2 3 4; do (sha256sum <"$M/disk0.img" >"$T/par.$i") & done
wait $(jobs -p | grep -v "^$MPID$") 2>/dev/null || true
for i in 1 2 3 4; do [ "$(cat "$T/par.$i")" = "$want" ] || fail "parallel reader $i got other bytes"; done
fusermount3 -u "$M" || fail "fusermount3 -u failed"
mount_wait_exit 0
is_mounted "$M" && fail "$M is still mounted after fusermount3 -u"
note "$(tail -1 "$MLOG")"
fetched=$(sed -n 's/.*(\([0-9]*\) chunks fetched.*/\1/p' "$MLOG")
[ -n "$fetched" ] && [ "$fetched" -gt 0 ] || fail "no fetch count in: $(tail -1 "$MLOG")"

# Usage errors.
expect_exit 2 dv --repo "$R" mount latest
expect_exit 2 dv --repo "$R" mount latest "$M" --cache-size 12x
expect_exit 2 dv --repo "$R" mount latest "$T/disk.img"
assert_contains "$STDERR" "is not a directory"
