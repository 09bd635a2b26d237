#!/usr/bin/env bash
# t_vm_dm_badsectors: real EIO from device-mapper (lib_vm.sh test bed). A dm
# device maps a disk of seeded data linearly except for 64 sectors at
# 10 MiB, which are a dm-error target. `backup` without options fails with
# the source exit code (15) naming the range; `backup --skip-bad-sectors`
# ends with the partial code (3), `show --json` lists exactly that range as
# unreadable, and the restore (checked on the host) is the disk with that
# range zeroed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_vm.sh"
vm_available

seeded_bytes dm-bad $((16 * MiB)) >"$T/src.img"
truncate -s 16M "$T/dst.img"
cat >"$T/in.sh" <<'EOT'
s=$(blockdev --getsz /dev/vda)
dmsetup create --noudevsync bad <<EOD
0 20480 linear /dev/vda 0
20480 64 error
20544 $((s - 20544)) linear /dev/vda 20544
EOD
dmsetup mknodes bad
dv --repo /tmp/repo init --no-encrypt >/dev/null
rc=0
dv --repo /tmp/repo backup /dev/mapper/bad >/dev/null 2>/tmp/err || rc=$?
mark plain_rc "$rc"
mark plain_msg "$(tr '\n' ' ' </tmp/err)"
rc=0
dv --repo /tmp/repo --json backup --skip-bad-sectors /dev/mapper/bad >/tmp/out 2>/tmp/err || rc=$?
mark skip_rc "$rc"
mark skip_msg "$(tr '\n' ' ' </tmp/err)"
mark skip_json "$(tr -d '\n' </tmp/out)"
id=$(sed -n 's/.*"snapshot": *"\([0-9a-f]*\)".*/\1/p' /tmp/out)
mark show_json "$(dv --repo /tmp/repo --json show "$id" | tr -d '\n')"
dv --repo /tmp/repo restore "$id" /dev/vdb >/dev/null
dmsetup remove bad
EOT
vm_expect_run "$T/in.sh" "$T/src.img" "$T/dst.img"
vm_expect_mark plain_rc 15
assert_contains "$(vm_mark plain_msg)" "/dev/mapper/bad" "read error message"
assert_contains "$(vm_mark plain_msg)" "sector" "read error message"
vm_expect_mark skip_rc 3
assert_contains "$(vm_mark skip_msg)" "32768 bytes could not be read" "partial warning"
[ "$(json_get "$(vm_mark skip_json)" 'j["bytes_unreadable"]')" = 32768 ] || fail "bytes_unreadable: $(vm_mark skip_json)"
got=$(json_get "$(vm_mark show_json)" '[(u["offset"], u["length"]) for u in j["snapshot"]["disks"][0]["unreadable"]]')
[ "$got" = "[[10485760, 32768]]" ] || fail "unreadable ranges in show --json: $got"
cp "$T/src.img" "$T/want.img"
dd if=/dev/zero of="$T/want.img" bs=512 seek=20480 count=64 conv=notrunc status=none
[ "$(sha "$T/dst.img")" = "$(sha "$T/want.img")" ] || fail "the restore is not the disk with the bad range zeroed"
