#!/usr/bin/env bash
# t_vm_md_raid1: md RAID1 on a real kernel (lib_vm.sh test bed). For
# metadata 1.2 (superblock near the start, data at an offset) and 0.90
# (superblock at the end): mdadm --create on two member disks full of old
# data, ext4 with files on the array, array stopped; then a member disk is
# backed up. --all-blocks, restored to a third disk: bit-exact (sha256 of the
# whole device images, compared on the host). Default mode, restored to a
# fourth disk and assembled alone as a degraded array: e2fsck -fn is clean
# and the files are identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_vm.sh"
vm_available

imgs=()
for d in 1 2 3 4 5 6 7 8; do
	seeded_bytes "md-old-$d" $((12 * MiB)) >"$T/$d.img"
	imgs+=("$T/$d.img")
done
cat >"$T/in.sh" <<'EOT'
dv --repo /tmp/repo init --no-encrypt >/dev/null
snap() { sed -n 's/.*"snapshot": *"\([0-9a-f]*\)".*/\1/p' "$1"; }
# metadata member1 member2 all-blocks-target default-target
one() {
	meta=$1 m=$(echo "$1" | tr -d .)
	mdadm --create /dev/md0 --run --quiet --metadata=$meta --level=1 --raid-devices=2 --assume-clean "$2" "$3"
	mkfs.ext4 -q -F /dev/md0
	mkdir -p /mnt/md
	mount /dev/md0 /mnt/md
	head -c 1000000 /dev/urandom >/mnt/md/big
	echo "meta $meta" >/mnt/md/small
	mark "files_$m" "$(cd /mnt/md && sha256sum big small | sha256sum | cut -d' ' -f1)"
	umount /mnt/md
	mdadm --stop /dev/md0 2>/dev/null
	dv --repo /tmp/repo --json backup --all-blocks "$2" >/tmp/out
	dv --repo /tmp/repo restore --force "$(snap /tmp/out)" "$4" >/dev/null
	rc=0
	dv --repo /tmp/repo --json backup "$2" >/tmp/out 2>/tmp/err || rc=$?
	mark "used_backup_rc_$m" "$rc"
	dv --repo /tmp/repo restore --force "$(snap /tmp/out)" "$5" >/dev/null
	mdadm --assemble --run /dev/md1 "$5" >/dev/null 2>&1
	rc=0
	e2fsck -fn /dev/md1 >/tmp/fsck 2>&1 || rc=$?
	mark "fsck_$m" "$rc"
	mkdir -p /mnt/r
	mount -o ro /dev/md1 /mnt/r
	mark "restored_files_$m" "$(cd /mnt/r && sha256sum big small | sha256sum | cut -d' ' -f1)"
	umount /mnt/r
	mdadm --stop /dev/md1 2>/dev/null
}
one 1.2 /dev/vda /dev/vdb /dev/vdc /dev/vdd
one 0.90 /dev/vde /dev/vdf /dev/vdg /dev/vdh
EOT
vm_expect_run "$T/in.sh" "${imgs[@]}"
# the members were written by md and the all-blocks restores are identical
for p in "12 1 3" "090 5 7"; do
	set -- $p
	src=$(sha "$T/$2.img")
	[ "$src" != "$(seeded_bytes "md-old-$2" $((12 * MiB)) | sha256sum | cut -d' ' -f1)" ] ||
		fail "metadata $1: member $2 unchanged"
	[ "$(sha "$T/$3.img")" = "$src" ] || fail "metadata $1: --all-blocks restore of member $2 differs"
	vm_expect_mark "used_backup_rc_$1" 0
	vm_expect_mark "fsck_$1" 0
	f=$(vm_mark "files_$1")
	[ ${#f} -eq 64 ] || fail "metadata $1: no file sha256"
	vm_expect_mark "restored_files_$1" "$f"
done
