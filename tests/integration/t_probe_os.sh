#!/bin/bash
# t_probe_os.sh - the installed OS on an imaged disk: a generated GPT disk
# (vfat ESP, ext4 root holding an arm64 Debian 12 made of a real ELF binary
# with its machine set to arm64, os-release, two kernels with module lists
# and initramfs files made by cpio, one of them zstd after an uncompressed
# microcode archive) is backed up; `show` and `show --json` must give the
# architecture, the OS release, the kernels and whether the newest can boot
# on Nitro (here: nvme only as a module, missing from its initramfs: no).
# `rightsize SNAPSHOT` with an inventory that names no architecture sizes
# for the disk's (arm64). A disk whose programs are cut or loop: "unknown".
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_disk.sh"
for t in cpio zstd gzip sfdisk mkfs.ext4 mkfs.vfat; do
	command -v "$t" >/dev/null || { echo "SKIP: $t is not installed"; exit 77; }
done
export DISKVAULT_CATALOG=${DV_SOURCE_DIR:?}/data/ec2-catalog.csv
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_REGION AWS_DEFAULT_REGION AWS_PROFILE

NVME=drivers/nvme/host/nvme.ko
ENA=drivers/net/ethernet/amazon/ena/ena.ko
R=$T/repo
D=$T/disk.img
OS=$T/os
dv_mk_os_tree "$OS" 183
dv_mk_kernel "$OS" 6.1.0-13-arm64 "" "$NVME.xz" "$ENA.xz"
dv_mk_kernel "$OS" 6.1.0-12-arm64 "$NVME" "$ENA.xz"
dv_mk_initramfs "$OS/boot/initrd.img-6.1.0-13-arm64" zstd 6.1.0-13-arm64 "$ENA.xz"
dv_mk_initramfs "$OS/boot/initrd.img-6.1.0-12-arm64" gzip 6.1.0-12-arm64 "$NVME.xz" "$ENA.xz"
truncate -s 128M "$D"
dv_fill_random "$D" 1 120
sfdisk -q "$D" <<-EOT
	label: gpt
	start=1MiB, size=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
	start=17MiB, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, name=root
EOT
mkfs.vfat -n ESP --offset 2048 "$D" $((16 * 1024)) >/dev/null 2>&1
dv_mk_ext4 "$D" $((17 * MiB)) $((110 * MiB)) root "$OS"
init_repo "$R"
backup_json "$R" "$D" --name arm
S=$SNAP

expect_ok dv --repo "$R" show "$S"
assert_contains "$STDOUT" "os    Debian GNU/Linux 12 (bookworm)  architecture arm64 (from /bin/sh)" "show"
assert_contains "$STDOUT" "nitro kernel 6.1.0-13-arm64: nvme NO, ena yes, initramfs /boot/initrd.img-6.1.0-13-arm64" "show"
expect_ok dv --repo "$R" --json show "$S"
J=$STDOUT
L='j["snapshot"]["disks"][0]["layout"]'
[ "$(json_get "$J" "$L['os']['architecture']")" = arm64 ] || fail "disk architecture: $(json_get "$J" "$L['os']")"
[ "$(json_get "$J" "$L['os']['id']")" = debian ] || fail "os id"
[ "$(json_get "$J" "$L['os']['version_id']")" = 12 ] || fail "os version_id"
[ "$(json_get "$J" "$L['os']['nitro_drivers'] == {'kernel': '6.1.0-13-arm64', 'nvme': False, 'ena': True,
	'initramfs': '/boot/initrd.img-6.1.0-13-arm64'}")" = true ] ||
	fail "nitro_drivers: $(json_get "$J" "$L['os']['nitro_drivers']")"
F="$L['partitions'][1]['fs']"
[ "$(json_get "$J" "$F['os']['from']")" = /bin/sh ] || fail "fs os from"
[ "$(json_get "$J" "[k['version'] + ':' + k['nvme'] + ':' + k['ena'] for k in $F['kernels']]")" = \
	'["6.1.0-13-arm64:module:module", "6.1.0-12-arm64:builtin:module"]' ] || fail "kernels: $(json_get "$J" "$F['kernels']")"
[ "$(json_get "$J" "sorted((i['path'], i['nvme'], i['ena'], i['complete']) for i in $F['initramfs'])")" = \
	'[["/boot/initrd.img-6.1.0-12-arm64", true, true, true], ["/boot/initrd.img-6.1.0-13-arm64", false, true, true]]' ] ||
	fail "initramfs: $(json_get "$J" "$F['initramfs']")"
[ "$(json_get "$J" "$L['partitions'][0]['fs'].get('os')")" = null ] || fail "the ESP has an OS"
note "arm64 Debian 12 found; kernel 6.1.0-13 not Nitro-ready (nvme missing from its initramfs)"

# rightsize: the inventory names no architecture, the disk does
python3 - "$DV_SOURCE_DIR/fixtures/inventory/no-samples-8t-32g.json" "$T/inv.json" <<-'PY'
	import json, sys
	j = json.load(open(sys.argv[1]))
	del j["architecture"]
	json.dump(j, open(sys.argv[2], "w"))
PY
backup_json "$R" "$D" --inventory "$T/inv.json" --name arm-inv
expect_ok dv --repo "$R" --json rightsize "$SNAP" --region us-east-1
[ "$(json_get "$STDOUT" 'j["chosen"]["arch"]')" = arm64 ] || fail "rightsize did not size for the disk's arm64: $STDOUT"
expect_ok dv --repo "$R" --json rightsize "$SNAP" --region us-east-1 --arch x86_64
[ "$(json_get "$STDOUT" 'j["chosen"]["arch"]')" = x86_64 ] || fail "rightsize --arch x86_64 ignored"

# a disk whose programs are a cut ELF header and a symlink loop
B=$T/bad
mkdir -p "$B/usr/bin" "$B/bin"
dv_elf "$T/x" 183
head -c 40 "$T/x" >"$B/usr/bin/env"
ln -s /bin/sh2 "$B/bin/sh"
ln -s /bin/sh "$B/bin/sh2"
truncate -s 32M "$T/bad.img"
dv_mk_ext4 "$T/bad.img" 0 $((32 * MiB)) bad "$B"
backup_json "$R" "$T/bad.img" --name bad
expect_ok dv --repo "$R" --json show "$SNAP"
[ "$(json_get "$STDOUT" "$L['os']['architecture']")" = unknown ] || fail "hostile programs: $(json_get "$STDOUT" "$L['os']")"
expect_ok dv --repo "$R" show "$SNAP"
assert_contains "$STDOUT" "os    (no os-release)  architecture unknown" "show of the hostile disk"
