#!/usr/bin/env bash
# t_vm_restore_devices: restore to real block devices (lib_vm.sh test bed).
# A GPT disk (ESP + ext4, old data in free space) is backed up --all-blocks
# on the host; the repository goes into the VM on an ext4 disk; there it is
# restored to a virtio disk and to an NVMe namespace, each the size of the
# source. Both devices (their sha256 inside the VM and their images on the
# host) equal the source; a restore to a device one MiB too small is refused
# with the target code (13). (The repository is mounted read-write: restore
# takes its lock by creating a file there.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_vm.sh"
vm_available

make_disk "$T/src.img" 32 vmrestore
R=$T/repo
init_repo "$R"
backup_json "$R" "$T/src.img" --all-blocks
truncate -s 64M "$T/repo.img"
mkfs.ext4 -q -F -d "$R" "$T/repo.img"
truncate -s 32M "$T/virtio.img" "$T/nvme.img"
truncate -s 31M "$T/small.img"
cat >"$T/in.sh" <<EOT
mkdir -p /repo
mount /dev/vda /repo
dv --repo /repo restore $SNAP /dev/vdb >/dev/null
mark virtio "\$(dev_sha /dev/vdb)"
dv --repo /repo restore $SNAP /dev/nvme0n1 >/dev/null
mark nvme "\$(dev_sha /dev/nvme0n1)"
rc=0
dv --repo /repo restore $SNAP /dev/vdc >/dev/null 2>/tmp/err || rc=\$?
mark small_rc "\$rc"
mark small_msg "\$(tr '\n' ' ' </tmp/err)"
umount /repo
EOT
vm_expect_run "$T/in.sh" "$T/repo.img" "$T/virtio.img" nvme:"$T/nvme.img" "$T/small.img"
want=$(sha "$T/src.img")
vm_expect_mark virtio "$want"
vm_expect_mark nvme "$want"
[ "$(sha "$T/virtio.img")" = "$want" ] || fail "virtio image differs from the source"
[ "$(sha "$T/nvme.img")" = "$want" ] || fail "NVMe image differs from the source"
vm_expect_mark small_rc 13
assert_contains "$(vm_mark small_msg)" "/dev/vdc" "too-small message"
