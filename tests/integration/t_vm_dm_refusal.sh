#!/usr/bin/env bash
# t_vm_dm_refusal: in the QEMU test bed (lib_vm.sh), an ext4 on an LVM LV
# made with lvm2 on a real kernel, mounted read-write, makes `backup` of
# the disk refuse with the busy exit code (13) and a message naming the
# device-mapper device and the mount point; remounted read-only, the same
# backup succeeds. This is dv_disk_stacked_mounts against real
# /sys/class/block/*/holders and /proc/self/mountinfo.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_vm.sh"
vm_available

truncate -s 64M "$T/disk.img"
cat >"$T/in.sh" <<'EOT'
sfdisk -q /dev/vda <<EOP
label: gpt
start=1MiB, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, name=lvm
EOP
pvcreate -q /dev/vda1
vgcreate -q vg0 /dev/vda1
lvcreate -q -L 32M -n root vg0
mkfs.ext4 -q /dev/vg0/root
mkdir -p /mnt/root
mount /dev/vg0/root /mnt/root
echo data >/mnt/root/file
mark dm "$(basename "$(readlink /sys/dev/block/$(dmsetup info -c --noheadings -o major,minor --separator : vg0-root | tr -d ' '))")"
mark holders "$(ls /sys/class/block/vda1/holders | tr '\n' ' ')"
dv --repo /tmp/repo init --no-encrypt >/dev/null
rc=0
dv --repo /tmp/repo backup /dev/vda >/tmp/out 2>/tmp/err || rc=$?
mark rc_rw "$rc"
mark msg_rw "$(tr '\n' ' ' </tmp/err)"
mount -o remount,ro /mnt/root
rc=0
dv --repo /tmp/repo backup /dev/vda >/tmp/out 2>/tmp/err || rc=$?
mark rc_ro "$rc"
mark msg_ro "$(tr '\n' ' ' </tmp/err)"
umount /mnt/root
vgchange -q -an vg0
EOT
vm_expect_run "$T/in.sh" "$T/disk.img"
dm=$(vm_mark dm)
[[ $dm == dm-[0-9]* ]] || fail "the LV is not a dm device in the VM: '$dm'"
vm_expect_mark holders "$dm "
vm_expect_mark rc_rw 13
msg=$(vm_mark msg_rw)
assert_contains "$msg" "source /dev/vda: " "refusal message"
assert_contains "$msg" "mounted read-write, through $dm (device-mapper), on /mnt/root" "refusal message"
assert_contains "$msg" "mount -o remount,ro /mnt/root" "refusal message"
vm_expect_mark rc_ro 0
