# lib_mount.sh - shared by the FUSE mount tests (t_mount_*.sh), sourced
# after lib.sh.
#
# mount_start REPO SNAP DIR [mount options]: runs `diskvault mount` in the
# foreground as a background job of the test (its own process group, so a
# test can signal it alone), waits until it says it is mounted, sets MPID
# and MLOG. A mount that cannot start because this machine has no usable
# FUSE (/dev/fuse, fusermount3) skips the test (77), saying why.
# mount_wait_exit [want]: waits for MPID (at most 20 s), asserts its exit
# status (default 0). is_mounted DIR: DIR is a mount point in /proc/mounts.

command -v fusermount3 >/dev/null || { echo "SKIP: fusermount3 (Debian fuse3) is not installed"; exit 77; }
[ -c /dev/fuse ] || { echo "SKIP: /dev/fuse is missing: this machine cannot mount FUSE filesystems"; exit 77; }

is_mounted() { awk -v d="$1" '$2 == d { f = 1 } END { exit !f }' /proc/mounts; }

MPID=
MLOG=
_mount_n=0
mount_start() {
	local repo=$1 snap=$2 dir=$3 i
	shift 3
	_mount_n=$((_mount_n + 1))
	MLOG=$T/mount.$_mount_n.log
	setsid "$DISKVAULT" --progress=never --repo "$repo" mount "$snap" "$dir" "$@" >"$MLOG" 2>&1 &
	MPID=$!
	CLEANUP+=("kill -KILL $MPID 2>/dev/null; fusermount3 -u -z '$dir' 2>/dev/null; umount -l '$dir' 2>/dev/null")
	for i in $(seq 1 200); do
		grep -q '^mounted snapshot\|"command":"mount"' "$MLOG" && is_mounted "$dir" && return 0
		if ! kill -0 "$MPID" 2>/dev/null; then
			if grep -q '/dev/fuse is missing or not accessible' "$MLOG"; then
				echo "SKIP: FUSE cannot mount here: $(cat "$MLOG")"
				exit 77
			fi
			fail "mount of $snap at $dir exited early: $(cat "$MLOG")"
		fi
		sleep 0.1
	done
	fail "mount of $snap at $dir did not come up in 20 s: $(cat "$MLOG")"
}

mount_wait_exit() {
	local want=${1:-0} rc=0 i
	for i in $(seq 1 200); do
		kill -0 "$MPID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$MPID" 2>/dev/null && fail "the mount process $MPID did not exit: $(cat "$MLOG")"
	wait "$MPID" || rc=$?
	[ "$rc" -eq "$want" ] || fail "the mount process exited $rc, expected $want: $(cat "$MLOG")"
}

# mount_fixture SEED: an 8 MiB random disk $T/disk.img backed up
# (all blocks) into repository $R; $want is its sha256sum line, $M an
# empty mount point.
mount_fixture() {
	make_random_disk "$T/disk.img" 8 "$1"
	R=$T/repo
	init_repo "$R"
	backup_json "$R" "$T/disk.img" --all-blocks
	want=$(sha256sum <"$T/disk.img")
	M=$T/mnt
	mkdir -p "$M"
}
