# lib_disk.sh - generators of disk images with real partition tables and
# filesystems, for the probe tests. No root needed: everything is written
# into image files with sfdisk, mkfs.* --offset and dd.
#
# Source it; then call dv_mk_gpt / dv_mk_mbr / dv_mk_wholefs with an image
# path. Each leaves a description of what it made in shell variables the
# tests may check (DV_EXT_OFF, DV_EXT_SIZE: the first ext4 partition).

MiB=$((1024 * 1024))

# dv_fill_random IMG OFFSET_MIB SIZE_MIB: old, non-zero data in a range, as
# free space on a used disk holds.
dv_fill_random() {
	dd if=/dev/urandom of="$1" bs=1M seek="$2" count="$3" conv=notrunc status=none
}

# dv_mk_tree DIR: a small tree of files (about 6 MiB) to put in a filesystem.
dv_mk_tree() {
	mkdir -p "$1/etc" "$1/usr/bin" "$1/var/log"
	echo "hello diskvault" >"$1/etc/motd"
	head -c $((3 * MiB)) /dev/urandom >"$1/usr/bin/big"
	head -c $((2 * MiB)) /dev/urandom >"$1/var/log/syslog"
	for i in $(seq 1 50); do head -c $((i * 997)) /dev/urandom >"$1/etc/f$i"; done
}

# dv_mk_ext4 IMG OFFSET_BYTES SIZE_BYTES LABEL DIR [extra mke2fs args]
dv_mk_ext4() {
	local img=$1 off=$2 size=$3 label=$4 dir=$5
	shift 5
	mkfs.ext4 -q -F -L "$label" -E offset="$off",nodiscard -d "$dir" "$@" "$img" $((size / 1024))k
}

# dv_mk_swap IMG OFFSET_BYTES SIZE_BYTES [LABEL]: mkswap in a scratch file
# (util-linux 2.38's mkswap has no --offset), copied into place.
dv_mk_swap() {
	local img=$1 off=$2 size=$3 label=${4:-} tmp
	tmp=$(mktemp)
	truncate -s "$size" "$tmp"
	if [ -n "$label" ]; then mkswap -q -L "$label" "$tmp" >/dev/null; else mkswap -q "$tmp" >/dev/null; fi
	dd if="$tmp" of="$img" bs=1M seek=$((off / MiB)) count=1 conv=notrunc status=none
	rm -f "$tmp"
}

# dv_mk_gpt IMG: 256 MiB, GPT:
#   1  1 MiB  BIOS boot          (random bytes, like GRUB's core.img)
#   2 32 MiB  EFI System, vfat   label ESP
#   3 96 MiB  Linux fs, ext4     label root, files, dirty free space
#   4 32 MiB  Linux swap         label swap0
#   5 16 MiB  Linux fs, unknown  (random bytes)
#   free space to the end (random bytes)
dv_mk_gpt() {
	local img=$1 tree
	rm -f "$img"
	truncate -s 256M "$img"
	dv_fill_random "$img" 1 200
	sfdisk -q "$img" <<-EOT
		label: gpt
		start=1MiB, size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name=bios
		start=2MiB, size=32MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
		start=34MiB, size=96MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
		start=130MiB, size=32MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap
		start=162MiB, size=16MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=mystery
	EOT
	mkfs.vfat -n ESP --offset $((2 * MiB / 512)) "$img" $((32 * 1024)) >/dev/null 2>&1
	tree=$(mktemp -d)
	dv_mk_tree "$tree"
	dv_mk_ext4 "$img" $((34 * MiB)) $((96 * MiB)) root "$tree"
	rm -rf "$tree"
	dv_mk_swap "$img" $((130 * MiB)) $((32 * MiB)) swap0
	DV_EXT_OFF=$((34 * MiB))
	DV_EXT_SIZE=$((96 * MiB))
}

# dv_mk_mbr IMG: 256 MiB, DOS table with boot code in the MBR:
#   1 32 MiB  0xef vfat (ESP)
#   2 96 MiB  0x83 ext4, active, files, dirty free space
#   3 rest    0x05 extended
#     5 32 MiB  0x82 swap
#     6 64 MiB  0x83 ext4 (1 KiB blocks)
dv_mk_mbr() {
	local img=$1 tree
	rm -f "$img"
	truncate -s 256M "$img"
	dv_fill_random "$img" 1 250
	sfdisk -q "$img" <<-EOT
		label: dos
		start=1MiB, size=32MiB, type=ef
		start=33MiB, size=96MiB, type=83, bootable
		start=129MiB, type=5
		start=130MiB, size=32MiB, type=82
		start=163MiB, size=64MiB, type=83
	EOT
	# Boot code: the first 440 bytes of the MBR.
	dd if=/dev/urandom of="$img" bs=440 count=1 conv=notrunc status=none
	mkfs.vfat -n EFI --offset $((1 * MiB / 512)) "$img" $((32 * 1024)) >/dev/null 2>&1
	tree=$(mktemp -d)
	dv_mk_tree "$tree"
	dv_mk_ext4 "$img" $((33 * MiB)) $((96 * MiB)) data "$tree"
	dv_mk_swap "$img" $((130 * MiB)) $((32 * MiB))
	dv_mk_ext4 "$img" $((163 * MiB)) $((64 * MiB)) small "$tree" -b 1024
	rm -rf "$tree"
	DV_EXT_OFF=$((33 * MiB))
	DV_EXT_SIZE=$((96 * MiB))
}

# dv_mk_wholefs IMG: 64 MiB, ext4 on the whole disk (no partition table).
dv_mk_wholefs() {
	local img=$1 tree
	rm -f "$img"
	truncate -s 64M "$img"
	dv_fill_random "$img" 0 64
	tree=$(mktemp -d)
	dv_mk_tree "$tree"
	dv_mk_ext4 "$img" 0 $((64 * MiB)) whole "$tree"
	rm -rf "$tree"
	DV_EXT_OFF=0
	DV_EXT_SIZE=$((64 * MiB))
}

# ---- installed systems (for the OS / Nitro driver probe) -------------------

# dv_elf PATH [MACHINE]: a copy of this machine's env(1), a real ELF
# binary, with e_machine set to MACHINE (62 x86_64, 183 arm64, 3 i386;
# empty keeps the host's). Little-endian hosts only.
dv_elf() {
	cp -L "$(command -v env)" "$1"
	[ -z "${2:-}" ] ||
		printf "$(printf '\\%03o\\%03o' $(($2 & 255)) $(($2 >> 8)))" |
		dd of="$1" bs=1 seek=18 count=2 conv=notrunc status=none
}

# dv_mk_os_tree DIR MACHINE: the start of an installed Debian 12 with merged
# /usr: /lib -> usr/lib, /usr/bin/dash (dv_elf MACHINE), /bin/sh ->
# /usr/bin/dash, /etc/os-release -> ../usr/lib/os-release, an empty /boot.
dv_mk_os_tree() {
	mkdir -p "$1/usr/bin" "$1/usr/lib/modules" "$1/bin" "$1/etc" "$1/boot" "$1/var"
	ln -s usr/lib "$1/lib"
	dv_elf "$1/usr/bin/dash" "$2"
	ln -s /usr/bin/dash "$1/bin/sh"
	printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n' \
		>"$1/usr/lib/os-release"
	ln -s ../usr/lib/os-release "$1/etc/os-release"
}

# dv_mk_kernel DIR KVER BUILTIN [MODULE...]: /lib/modules/KVER in DIR, whose
# modules.builtin lists BUILTIN (a path under kernel/, e.g.
# drivers/nvme/host/nvme.ko; empty for none) and which holds the MODULE
# files (paths under kernel/, e.g. drivers/net/ethernet/amazon/ena/ena.ko.xz),
# plus /boot/vmlinuz-KVER.
dv_mk_kernel() {
	local dir=$1 kver=$2 builtin=$3 k m
	shift 3
	k=$dir/lib/modules/$kver
	mkdir -p "$k/kernel" "$dir/boot"
	printf 'kernel/drivers/ata/libata.ko\nkernel/drivers/nvme/host/nvme-core.ko\n' >"$k/modules.builtin"
	[ -z "$builtin" ] || echo "kernel/$builtin" >>"$k/modules.builtin"
	for m in "$@"; do
		mkdir -p "$k/kernel/$(dirname "$m")"
		head -c 4000 /dev/urandom >"$k/kernel/$m"
	done
	head -c 8000 /dev/urandom >"$dir/boot/vmlinuz-$kver"
}

# dv_mk_initramfs FILE COMPRESS KVER [MODULE...]: an initramfs laid out as
# Debian's: an uncompressed cpio (newc) with CPU microcode, then a cpio
# compressed with COMPRESS (zstd, gzip or none) holding /init and the
# MODULE files under usr/lib/modules/KVER/kernel/.
dv_mk_initramfs() {
	local out=$1 comp=$2 kver=$3 d m
	shift 3
	d=$(mktemp -d)
	mkdir -p "$d/early/kernel/x86/microcode" "$d/main/usr/lib/modules/$kver/kernel"
	head -c 3000 /dev/urandom >"$d/early/kernel/x86/microcode/GenuineIntel.bin"
	printf '#!/bin/sh\n' >"$d/main/init"
	for m in "$@"; do
		mkdir -p "$d/main/usr/lib/modules/$kver/kernel/$(dirname "$m")"
		head -c 5000 /dev/urandom >"$d/main/usr/lib/modules/$kver/kernel/$m"
	done
	(cd "$d/early" && find . | cpio -o -H newc --quiet) >"$out"
	case $comp in
	zstd) (cd "$d/main" && find . | cpio -o -H newc --quiet | zstd -q -c) >>"$out" ;;
	gzip) (cd "$d/main" && find . | cpio -o -H newc --quiet | gzip -c) >>"$out" ;;
	none) (cd "$d/main" && find . | cpio -o -H newc --quiet) >>"$out" ;;
	esac
	rm -rf "$d"
}

# ---- FAT ----------------------------------------------------------------------

# dv_fill_fat IMG[@@OFFSET] DIR: files of assorted sizes copied into the FAT
# filesystem with mtools (no root), some deleted again so that free
# clusters lie between used ones; DIR keeps what must remain.
dv_fill_fat() {
	local fs=$1 dir=$2 i
	mkdir -p "$dir/sub"
	for i in 1 2 3 4 5 6 7 8; do head -c $((i * i * 9973)) /dev/urandom >"$dir/f$i.bin"; done
	head -c 700000 /dev/urandom >"$dir/sub/big.bin"
	echo "hello fat" >"$dir/sub/hello.txt"
	export MTOOLS_SKIP_CHECK=1
	mcopy -i "$fs" -s "$dir"/* ::/
	head -c 300000 /dev/urandom >"$dir/gone.bin"
	mcopy -i "$fs" "$dir/gone.bin" ::/
	mdel -i "$fs" ::/f3.bin ::/gone.bin
	rm "$dir/f3.bin" "$dir/gone.bin"
}

# dv_fat_check IMG[@@OFFSET] DIR: the FAT filesystem holds exactly DIR's files.
dv_fat_check() {
	local fs=$1 dir=$2 out
	out=$(mktemp -d)
	MTOOLS_SKIP_CHECK=1 mcopy -i "$fs" -s -n '::/*' "$out/"
	diff -r "$dir" "$out" >/dev/null
	local rc=$?
	rm -rf "$out"
	return $rc
}

# dv_fat_facts FILE: "DATA_START CLUSTER USED FAT_START FAT_BYTES", from
# fsck.fat -n -v of a whole-file FAT filesystem (bytes; USED clusters).
dv_fat_facts() {
	fsck.fat -n -v "$1" 2>/dev/null | awk '
		/Data area starts at byte/ { d = $6 }
		/bytes per cluster/ { c = $1 }
		/First FAT starts at byte/ { f = $6 }
		/bytes per FAT/ { b = $1 }
		/ clusters$/ { split($(NF - 1), u, "/"); n = u[1] }
		END { print d, c, n, f, b }'
}

# dv_kernel_read_bytes IMG OUT CMD...: evicts IMG from the page cache, runs
# CMD with its stdout in OUT, and prints the bytes the kernel read for it
# (read_bytes of /proc/PID/io, its reaped children included). Exits with
# CMD's status.
dv_kernel_read_bytes() {
	local img=$1
	shift
	sync "$img"
	dd if="$img" iflag=nocache count=0 status=none
	python3 -c 'import subprocess, sys
r = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], "w"))
print([int(l.split()[1]) for l in open("/proc/self/io") if l.startswith("read_bytes")][0])
sys.exit(r.returncode)' "$@"
}
