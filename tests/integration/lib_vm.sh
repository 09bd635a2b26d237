# shellcheck shell=bash
# lib_vm.sh - a QEMU test bed with a real kernel, for the tests that need
# device-mapper, md or real virtio/NVMe block devices (t_vm_*.sh). Sourced
# after lib.sh. docs/testbed.md describes it.
#
#   vm_run SCRIPT [IMAGE | nvme:IMAGE]...
#
# boots Debian's cloud kernel under QEMU (TCG) with a busybox initramfs that
# holds lvm2, mdadm, dmsetup, e2fsprogs, xfsprogs, btrfs-progs, the dm, md
# and loop modules (loaded at boot), xfs and btrfs (loaded by `modload`),
# and the diskvault binary under test ($DISKVAULT) with its libraries. Each IMAGE becomes a virtio disk (/dev/vda, vdb, ... in
# order), each nvme:IMAGE an NVMe namespace (/dev/nvme0n1, nvme1n1, ...).
# SCRIPT (a host file) runs inside as `sh SCRIPT` in /tmp (a tmpfs), with
# `dv` (diskvault --progress=never), `mark NAME VALUE`, `dev_sha DEV` and
# `modload MODULE` defined; mark
# prints `DVMARK NAME=VALUE` so the host checks values, not just an exit
# status. The VM powers off after the script.
#
# vm_run returns the script's exit status; 1 with a reason when the VM broke
# (no result line, timeout, kernel panic). The console log is $VM_LOG, the
# script's own output (console lines without the kernel's) in $VM_OUT.
# vm_mark NAME prints the value of the last `mark NAME`; vm_expect_mark NAME
# VALUE asserts it. A test skips (exit 77) only when QEMU or the kernel is
# missing or QEMU cannot start; vm_available does that check first.
#
# The base initramfs is built once per kernel and tool set into
# $DV_BUILD_DIR/vm (or $T) and reused; the diskvault binary and SCRIPT go
# into a second, small cpio archive appended for each run.

: "${T:?source lib.sh first}"

VM_QEMU=${DV_VM_QEMU:-qemu-system-x86_64}
VM_MEM=${DV_VM_MEM:-768}
VM_TIMEOUT=${DV_VM_TIMEOUT:-300}
VM_CACHE=${DV_BUILD_DIR:-$T}/vm
VM_LOG=$T/vm.log
VM_OUT=$T/vm.out
# the modules loaded at boot, with their dependencies (modules.dep)
VM_MODULES=(virtio_pci virtio_blk loop dm-mod dm-snapshot dm-flakey dm-zero md-mod raid1 linear)
# in the initramfs but loaded only by `modload` in a script: under TCG xfs
# takes seconds to load, and btrfs's raid6_pq benchmarks itself
VM_LAZY_MODULES=(xfs btrfs)
# the programs copied with their shared libraries (ldd); busybox gives the rest
VM_TOOLS=(lvm dmsetup mdadm mke2fs e2fsck tune2fs dumpe2fs debugfs mkfs.xfs xfs_repair xfs_db
	mkfs.btrfs btrfs sfdisk blkid wipefs losetup sha256sum cmp truncate)

# vm_kernel: the newest cloud kernel under /boot.
vm_kernel() {
	local k
	k=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n 1)
	[ -n "$k" ] && echo "$k"
}

# vm_available: exits 77 with the reason when the test bed cannot start.
vm_available() {
	command -v "$VM_QEMU" >/dev/null || { echo "SKIP: $VM_QEMU not installed (package qemu-system-x86)"; exit 77; }
	VM_VMLINUZ=$(vm_kernel) || { echo "SKIP: no /boot/vmlinuz-*-cloud-amd64 (package linux-image-cloud-amd64)"; exit 77; }
	VM_KVER=${VM_VMLINUZ#/boot/vmlinuz-}
	[ -r "$VM_VMLINUZ" ] || { echo "SKIP: $VM_VMLINUZ is not readable"; exit 77; }
	[ -d "/lib/modules/$VM_KVER" ] || { echo "SKIP: no /lib/modules/$VM_KVER"; exit 77; }
	[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || { echo "SKIP: no busybox (package busybox-static)"; exit 77; }
	local t
	for t in "${VM_TOOLS[@]}" cpio; do
		command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "$t" >/dev/null ||
			fail "test bed tool $t missing (scripts/deps.sh test)"
	done
}

# _vm_copy_bin ROOT FILE: FILE and its shared libraries into ROOT.
_vm_copy_bin() {
	local root=$1 f=$2 lib
	mkdir -p "$root$(dirname "$f")"
	cp -L "$f" "$root$f"
	for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

# _vm_modules: the .ko paths (relative to /lib/modules/KVER) of VM_MODULES
# and their dependencies, dependencies first, each once.
_vm_modules() {
	local dep=/lib/modules/$VM_KVER/modules.dep m
	local -A seen=()
	_vm_mod_visit() {
		local p=$1 d
		[ -n "${seen[$p]:-}" ] && return
		seen[$p]=1
		for d in $(awk -F': *' -v p="$p" '$1 == p { print $2 }' "$dep"); do
			_vm_mod_visit "$d"
		done
		echo "$p"
	}
	for m in "$@"; do
		local p
		p=$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n); gsub(/_/, "-", n)
			mm = m; gsub(/_/, "-", mm); if (n == mm) { print $1; exit } }' "$dep")
		[ -n "$p" ] || continue # built in
		_vm_mod_visit "$p"
	done
}

# _vm_base: path of the cached base initramfs, built if missing.
_vm_base() {
	local key out
	key=$( {
		echo "$VM_KVER"
		sha256sum "${BASH_SOURCE[0]}"
		dpkg-query -W busybox-static lvm2 dmsetup mdadm e2fsprogs xfsprogs btrfs-progs util-linux 2>/dev/null
	} | sha256sum | cut -c1-16)
	out=$VM_CACHE/base-$key.cpio
	if [ -s "$out" ]; then
		echo "$out"
		return
	fi
	mkdir -p "$VM_CACHE"
	local r
	r=$(mktemp -d "$VM_CACHE/root.XXXXXX")
	mkdir -p "$r"/{bin,sbin,dev,proc,sys,tmp,run,mnt,etc/lvm,dv} "$r/lib/modules/$VM_KVER"
	cp -L "$(command -v busybox)" "$r/bin/busybox"
	local t p
	for t in "${VM_TOOLS[@]}"; do
		p=$(PATH=$PATH:/usr/sbin:/sbin command -v "$t")
		_vm_copy_bin "$r" "$(readlink -f "$p")"
		mkdir -p "$r$(dirname "$p")"
		[ -e "$r$p" ] || ln -s "$(readlink -f "$p")" "$r$p"
	done
	for t in pvcreate vgcreate lvcreate lvremove vgchange vgremove pvs vgs lvs lvchange vgscan; do
		ln -sf "$(readlink -f "$(PATH=$PATH:/usr/sbin command -v lvm)")" "$r/sbin/$t"
	done
	ln -sf "$(readlink -f "$(PATH=$PATH:/usr/sbin command -v mke2fs)")" "$r/sbin/mkfs.ext4"
	# lvm2 without udev: it creates its /dev nodes itself
	cat >"$r/etc/lvm/lvm.conf" <<-'EOF'
		devices { obtain_device_list_from_udev = 0 }
		activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
		global { use_lvmetad = 0 locking_dir = "/run/lock/lvm" }
		backup { backup = 0 archive = 0 }
	EOF
	echo 'root:x:0:0:root:/tmp:/bin/sh' >"$r/etc/passwd"
	echo 'root:x:0:' >"$r/etc/group"
	: >"$r/etc/mtab"
	for p in $(_vm_modules "${VM_MODULES[@]}"); do
		mkdir -p "$r/lib/modules/$VM_KVER/$(dirname "$p")"
		cp "/lib/modules/$VM_KVER/$p" "$r/lib/modules/$VM_KVER/$p"
		echo "$p" >>"$r/etc/modules.order"
	done
	# one line per lazy module: its name, then the modules to load for it
	: >"$r/etc/modules.lazy"
	local m line
	for m in "${VM_LAZY_MODULES[@]}"; do
		line=$m
		for p in $(_vm_modules "$m"); do
			grep -qxF "$p" "$r/etc/modules.order" && continue
			mkdir -p "$r/lib/modules/$VM_KVER/$(dirname "$p")"
			cp -n "/lib/modules/$VM_KVER/$p" "$r/lib/modules/$VM_KVER/$p"
			line="$line $p"
		done
		echo "$line" >>"$r/etc/modules.lazy"
	done
	cat >"$r/init" <<-'EOF'
		#!/bin/busybox sh
		/bin/busybox mkdir -p /usr/bin /usr/sbin
		/bin/busybox --install -s
		export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
		mount -t proc proc /proc
		mount -t sysfs sys /sys
		mount -t devtmpfs dev /dev
		exec </dev/console >/dev/console 2>&1
		mount -t tmpfs -o size=512m tmp /tmp
		mount -t tmpfs run /run
		mkdir -p /run/lock/lvm /dev/shm
		ln -sf /proc/self/mounts /etc/mtab
		echo "DVINIT init at $(cut -d' ' -f1 /proc/uptime) s"
		kver=$(uname -r)
		while read -r m; do
			insmod "/lib/modules/$kver/$m" 2>/dev/null || echo "DVINIT insmod $m failed"
		done </etc/modules.order
		want=$(sed -n 's/.*dv\.disks=\([0-9]*\).*/\1/p' /proc/cmdline)
		i=0
		while [ "$(ls /sys/block | grep -cE '^(vd|nvme)')" -lt "${want:-0}" ] && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		echo "DVINIT booted in $(cut -d' ' -f1 /proc/uptime) s, disks: $(ls /sys/block | grep -E '^(vd|nvme)' | tr '\n' ' ')"
		cd /tmp
		sh -c '. /dv/vmlib.sh; . /dv/test.sh'
		rc=$?
		echo
		echo "DVINIT script done at $(cut -d' ' -f1 /proc/uptime) s"
		echo "DVRESULT exit=$rc"
		sync
		poweroff -f
	EOF
	chmod 755 "$r/init"
	(cd "$r" && find . | cpio -o -H newc --quiet) >"$r.cpio"
	mv -f "$r.cpio" "$out"
	# base archives of other kernels or tool versions are stale
	find "$VM_CACHE" -maxdepth 1 -name 'base-*.cpio' ! -name "base-$key.cpio" -delete 2>/dev/null || true
	rm -rf "$r"
	echo "$out"
}

# vm_run SCRIPT [IMAGE | nvme:IMAGE]...
vm_run() {
	local script=$1
	shift
	[ -n "${VM_KVER:-}" ] || vm_available
	local base
	base=$(_vm_base)
	# the per-run archive: diskvault with its libraries, the script
	local r=$T/vmrun
	rm -rf "$r"
	mkdir -p "$r/dv" "$r/usr/local/bin"
	_vm_copy_bin "$r" "$(readlink -f "$DISKVAULT")"
	ln -s "$(readlink -f "$DISKVAULT")" "$r/usr/local/bin/diskvault"
	cp "$script" "$r/dv/test.sh"
	cat >"$r/dv/vmlib.sh" <<-'EOF'
		set -e
		dv() { diskvault --progress=never "$@"; }
		mark() { echo "DVMARK $1=$2"; }
		# dev_sha DEV: sha256 of a whole block device
		dev_sha() { sha256sum <"$1" | cut -d' ' -f1; }
		# modload NAME: loads a lazy module (xfs, btrfs) and its dependencies
		modload() {
			local line p
			line=$(grep "^$1 " /etc/modules.lazy) || { echo "modload: no module $1" >&2; return 1; }
			for p in ${line#* }; do
				grep -q "^$(basename "${p%%.ko*}" | tr - _) " /proc/modules ||
					insmod "/lib/modules/$(uname -r)/$p"
			done
		}
	EOF
	(cd "$r" && find . | cpio -o -H newc --quiet) >"$T/vmrun.cpio"
	cat "$base" "$T/vmrun.cpio" >"$T/initrd.cpio"

	local args=() n=0 nv=0 img
	for img in "$@"; do
		case $img in
		nvme:*)
			img=${img#nvme:}
			args+=(-drive "file=$img,format=raw,if=none,id=nv$nv,cache=unsafe"
				-device "nvme,drive=nv$nv,serial=dvnvme$nv")
			nv=$((nv + 1))
			;;
		*)
			args+=(-drive "file=$img,format=raw,if=virtio,cache=unsafe")
			;;
		esac
		n=$((n + 1))
	done
	: >"$VM_LOG"
	local rc=0 qerr=$T/qemu.stderr
	timeout --kill-after=5 "$VM_TIMEOUT" "$VM_QEMU" -nodefaults -no-user-config -machine q35,accel=tcg \
		-cpu max -smp 2 -m "$VM_MEM" -display none -monitor none -serial "file:$VM_LOG" -no-reboot \
		-kernel "$VM_VMLINUZ" -initrd "$T/initrd.cpio" \
		-append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off dv.disks=$n" \
		"${args[@]}" </dev/null >"$T/qemu.stdout" 2>"$qerr" || rc=$?
	tr -d '\r' <"$VM_LOG" >"$VM_LOG.tmp" && mv "$VM_LOG.tmp" "$VM_LOG"
	grep -v -E '^\[ *[0-9]+\.[0-9]+\]' "$VM_LOG" >"$VM_OUT" || true
	if [ "$rc" -ne 0 ] && ! grep -q '^DVINIT' "$VM_LOG"; then
		if [ "$rc" -eq 124 ] && [ ! -s "$VM_LOG" ]; then
			echo "SKIP: the kernel printed nothing within ${VM_TIMEOUT}s under $VM_QEMU" >&2
			exit 77
		fi
		if [ "$rc" -ne 124 ] && [ -s "$qerr" ] && [ ! -s "$VM_LOG" ]; then
			echo "SKIP: $VM_QEMU cannot start: $(head -n 3 "$qerr")" >&2
			exit 77
		fi
	fi
	local res
	res=$(sed -n 's/^DVRESULT exit=\([0-9]*\)$/\1/p' "$VM_LOG" | tail -n 1)
	if [ -z "$res" ]; then
		echo "--- VM console (last 60 lines of $VM_LOG):" >&2
		tail -n 60 "$VM_LOG" >&2
		[ "$rc" -eq 124 ] && echo "VM: timed out after ${VM_TIMEOUT}s" >&2
		echo "VM: no result line (qemu exit $rc)" >&2
		return 1
	fi
	return "$res"
}

# vm_mark NAME: the value of the script's last `mark NAME VALUE`.
vm_mark() {
	sed -n "s/^DVMARK $1=//p" "$VM_OUT" | tail -n 1
}

# vm_expect_mark NAME VALUE
vm_expect_mark() {
	local got
	got=$(vm_mark "$1")
	[ "$got" = "$2" ] || {
		tail -n 40 "$VM_OUT" >&2
		fail "VM mark $1: expected '$2', got '$got'"
	}
}

# vm_expect_run SCRIPT [IMAGE]...: vm_run that must exit 0.
vm_expect_run() {
	local rc=0
	vm_run "$@" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "--- VM output:" >&2
		tail -n 60 "$VM_OUT" >&2
		fail "VM script $(basename "$1") exited $rc"
	fi
	grep -E '^(DVINIT|DVMARK)' "$VM_OUT" | sed 's/^/# /' || true
}
