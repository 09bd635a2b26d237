#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages diskvault needs to build and test,
# only those missing. Usage: scripts/deps.sh [build|test]
set -euo pipefail
what=${1:-test}
build_pkgs=(build-essential cmake pkg-config libarchive-dev libzstd-dev libssl-dev libblkid-dev
	libjansson-dev libext2fs-dev libcurl4-openssl-dev libexpat1-dev zlib1g-dev ntfs-3g-dev libfuse3-dev
	libfdisk-dev)
run_pkgs=(fdisk e2fsprogs zstd dosfstools util-linux openssl python3 ntfs-3g fuse3)
# file: cpack (t_package) runs it on what it packs; tmux: t_users_progress
build_pkgs+=(file)
test_pkgs=(libcmocka-dev clang libclang-rt-dev llvm valgrind tar curl awscli python3-botocore python3-swift python3-cryptography cpio mtools file tmux time
	qemu-system-x86 linux-image-cloud-amd64 lvm2 mdadm busybox-static xfsprogs btrfs-progs
	dpkg-dev liblz4-dev libacl1-dev nettle-dev libxml2-dev liblzma-dev libbz2-dev zlib1g-dev
	attr acl)
# (attr, acl: setfattr and setfacl build the xattr and ACL files of tests/integration/t_files_ext.sh)
# (the line from dpkg-dev: the .a files packaging/build-static.sh links, tests/integration/t_static_chroot.sh)
pkgs=("${build_pkgs[@]}" "${run_pkgs[@]}")
[ "$what" = test ] && pkgs+=("${test_pkgs[@]}")
missing=()
for p in "${pkgs[@]}"; do
	grep -q "install ok installed" <<<"$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
