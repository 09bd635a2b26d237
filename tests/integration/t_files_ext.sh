#!/usr/bin/env bash
# t_files_ext.sh - `diskvault ls`, `cat` and `extract` of an ext4 volume of
# a snapshot (docs/files.md), read from the repository without root or a
# mount: a GPT disk (vfat p1, ext4 p2 made with mkfs.ext4 -d from a tree
# holding a sparse file, symlinks, a hard link pair, a user xattr and an
# ACL, nested directories, names with a space and a newline, odd modes and
# owners, nanosecond mtimes set with debugfs). Asserts: `ls --json` against
# lstat of the source tree; `ls -l` lines; `cat` sha256; `extract` of the
# whole tree compared with the source (content, modes, owners, mtimes in
# ns, symlink targets, hard-link inode sharing, holes, xattr, ACL); a rerun
# skips everything; a crafted image (a symlink to a directory outside and a
# directory of the same name holding a file, a name holding '/', a second
# "..") writes nothing outside DIR; errors with their exit codes.
source "$(dirname "$0")/lib.sh"

S=$T/src
mkdir -p "$S/etc" "$S/a/b/c/d" "$S/links" "$S/var"
echo "127.0.0.1 localhost" >"$S/etc/hosts"
seeded_bytes files-big $((3 * MiB + 12345)) >"$S/var/big.bin"
seeded_text files-text 200000 >"$S/a/b/c/d/deep.txt"
# sparse: 64 MiB with data at 1 MiB and at 40 MiB only
truncate -s 64M "$S/var/sparse.img"
seeded_bytes files-s1 8192 | dd of="$S/var/sparse.img" bs=4096 seek=256 conv=notrunc status=none
seeded_bytes files-s2 4096 | dd of="$S/var/sparse.img" bs=4096 seek=10240 conv=notrunc status=none
ln -s ../etc/hosts "$S/links/rel"
ln -s /etc/passwd "$S/links/abs"
ln "$S/var/big.bin" "$S/links/big-hard"
echo spaced >"$S/with space"
echo newline >"$S/new"$'\n'"line"
echo secret >"$S/etc/shadow" && chmod 0640 "$S/etc/shadow" && chown 0:42 "$S/etc/shadow"
echo owned >"$S/var/owned" && chown 1234:5678 "$S/var/owned"
echo setuid >"$S/var/suid" && chmod 4755 "$S/var/suid"
chmod 0750 "$S/a/b"
: >"$S/var/empty"
XATTR=0
if command -v setfattr >/dev/null && command -v setfacl >/dev/null && echo x >"$S/etc/attrs" &&
	setfattr -n user.origin -v diskvault-test "$S/etc/attrs" 2>/dev/null &&
	setfacl -m u:1234:r,g:99:rw "$S/etc/attrs" 2>/dev/null; then
	XATTR=1
else
	note "no setfattr/setfacl or no xattr support in $T: the xattr and ACL checks are left out"
	rm -f "$S/etc/attrs"
fi

# mkfs.ext4 -d keeps whole seconds: the source gets the same
python3 -c '
import os, sys
for d, dirs, files in os.walk(sys.argv[1]):
    for n in dirs + files + ["."]:
        p = os.path.join(d, n); s = os.lstat(p)
        os.utime(p, ns=(s.st_atime_ns // 10**9 * 10**9, s.st_mtime_ns // 10**9 * 10**9), follow_symlinks=False)' "$S"

IMG=$T/disk.img
truncate -s 80M "$IMG"
sfdisk -q "$IMG" <<-EOT || fail "sfdisk failed"
	label: gpt
	start=1MiB, size=8MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
	start=9MiB, size=70MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
EOT
VFAT=0
if command -v mkfs.vfat >/dev/null; then
	mkfs.vfat -n ESP --offset $((MiB / 512)) "$IMG" $((8 * 1024)) >/dev/null 2>&1 && VFAT=1
fi
OFF=$((9 * MiB))
mkfs.ext4 -q -F -L root -E offset=$OFF,nodiscard -d "$S" "$IMG" 70M || fail "mkfs.ext4 failed"
# mkfs.ext4 -d keeps seconds only: give some files nanoseconds (and copy
# the times back to the source, which is what extract is compared with)
dbg() { debugfs -w -R "$1" "$IMG?offset=$OFF" >/dev/null 2>&1 || fail "debugfs: $1"; }
dbg "sif /var/big.bin mtime_extra $((123456789 << 2))"
dbg "sif /etc/hosts mtime_extra $((987654321 << 2))"
dbg "sif /a/b/c/d mtime_extra $((5 << 2))"
ext_mtime() { debugfs -R "stat $1" "$IMG?offset=$OFF" 2>/dev/null | sed -n 's/^ *mtime: 0x\([0-9a-f]*\):\([0-9a-f]*\).*/\1 \2/p'; }
for f in /var/big.bin /etc/hosts /a/b/c/d; do
	read -r sec extra <<<"$(ext_mtime "$f")"
	touch -h -d "@$((16#$sec)).$(printf %09d $((16#$extra >> 2)))" "$S$f"
done

R=$T/repo
init_repo "$R"
backup_json "$R" "$IMG"

# ---- ls ---------------------------------------------------------------------
expect_ok dv --repo "$R" ls latest:/
NAMES=$(printf '%s\n' "$STDOUT")
assert_contains "$NAMES" "with space"
assert_contains "$NAMES" 'new\012line' "ls escapes a newline as \\012"
assert_contains "$NAMES" "lost+found"
# the same directory three ways: default volume, by name, by name with ':'
expect_ok dv --repo "$R" ls "${SNAP:0:8}/var"
A=$STDOUT
expect_ok dv --repo "$R" ls "${SNAP:0:8}:p2/var"
[ "$STDOUT" = "$A" ] || fail "ls SNAP:p2/var differs from ls SNAP/var"
expect_ok dv --repo "$R" ls "latest:p2:/var"
[ "$STDOUT" = "$A" ] || fail "ls latest:p2:/var differs"
[ "$A" = "$(printf '%s\n' big.bin empty owned sparse.img suid)" ] || fail "ls /var gives: $A"

# --json: every entry of every directory against lstat of the source
python3 - "$S" >"$T/want.json" <<-'EOF'
	import json, os, stat, sys
	root = sys.argv[1]
	for d, dirs, files in os.walk(root):
	    for n in sorted(dirs + files):
	        p = os.path.join(d, n); s = os.lstat(p)
	        e = {"path": os.path.relpath(p, root), "mode": stat.S_IMODE(s.st_mode), "uid": s.st_uid,
	             "gid": s.st_gid, "nlink": s.st_nlink, "mtime": s.st_mtime_ns // 10**9,
	             "mtime_ns": s.st_mtime_ns % 10**9, "type": "dir" if stat.S_ISDIR(s.st_mode) else
	             "symlink" if stat.S_ISLNK(s.st_mode) else "file"}
	        if not stat.S_ISDIR(s.st_mode): e["size"] = s.st_size
	        if stat.S_ISLNK(s.st_mode): e["target"] = os.readlink(p)
	        print(json.dumps(e, sort_keys=True))
EOF
: >"$T/got.json"
while IFS= read -r -d '' d; do
	rel=${d#"$S"}
	expect_ok dv --repo "$R" --json ls "latest:${rel:-/}"
	printf '%s\n' "$STDOUT" | python3 -c '
import json, sys
pre = sys.argv[1].lstrip("/")
for line in sys.stdin:
    j = json.loads(line)
    if j["name"] == "lost+found" and not pre: continue
    e = {k: j[k] for k in ("mode", "uid", "gid", "nlink", "mtime", "mtime_ns", "type")}
    e["path"] = (pre + "/" if pre else "") + j["name"]
    if j["type"] != "dir": e["size"] = j["size"]
    if "target" in j: e["target"] = j["target"]
    print(json.dumps(e, sort_keys=True))' "$rel" >>"$T/got.json"
done < <(find "$S" -type d -print0)
diff <(sort "$T/want.json") <(sort "$T/got.json") >"$T/ls.diff" || fail "ls --json differs from the source tree: $(head -20 "$T/ls.diff")"
[ "$(wc -l <"$T/got.json")" -ge 20 ] || fail "ls --json listed only $(wc -l <"$T/got.json") entries"

# -l: exact lines (numeric owners, the sizes, long-iso mtime, link target)
expect_ok dv --repo "$R" ls -l latest:/links
L=$STDOUT
for n in abs rel big-hard; do
	f=$S/links/$n
	want="$(stat -c '%A %h %u %g %s' "$f") $(date -d "@$(stat -c %Y "$f")" '+%Y-%m-%d %H:%M') $n"
	[ -L "$f" ] && want="$want -> $(readlink "$f")"
	printf '%s\n' "$L" | grep -qxF -- "$want" || fail "ls -l has no line '$want'; it gives: $L"
done
expect_ok dv --repo "$R" ls -l latest:/etc/shadow
[ "$STDOUT" = "-rw-r----- 1 0 42 7 $(date -d "@$(stat -c %Y "$S/etc/shadow")" '+%Y-%m-%d %H:%M') shadow" ] ||
	fail "ls -l of one file gives: $STDOUT"

# ---- cat --------------------------------------------------------------------
for f in var/big.bin a/b/c/d/deep.txt var/sparse.img etc/hosts var/empty "with space"; do
	dv --repo "$R" cat "latest:/$f" >"$T/cat.out" || fail "cat /$f failed"
	assert_same_file "$S/$f" "$T/cat.out"
done
# a symlink is followed inside the filesystem (../etc/hosts)
dv --repo "$R" cat "latest:/links/rel" >"$T/cat.out" || fail "cat of a symlink failed"
assert_same_file "$S/etc/hosts" "$T/cat.out"

# ---- extract ----------------------------------------------------------------
X=$T/x
expect_ok dv --repo "$R" extract latest:/ --to "$X"
assert_contains "$STDOUT" "0 failed"
assert_contains "$STDOUT" "1 hard links"
rmdir "$X/lost+found"
listing() { (cd "$1" && find . -mindepth 1 -printf '%p|%y|%m|%U|%G|%n|%T@|%l|' -exec sh -c '[ -f "$1" ] && [ ! -L "$1" ] && sha256sum <"$1" | cut -c1-64 || echo' _ {} \; | sort); }
listing "$S" >"$T/l.src"
listing "$X" >"$T/l.x"
# directory sizes differ between filesystems and are not listed; %T@ has ns
diff "$T/l.src" "$T/l.x" >"$T/x.diff" || fail "the extracted tree differs from the source: $(head -20 "$T/x.diff")"
[ "$(stat -c %i "$X/var/big.bin")" = "$(stat -c %i "$X/links/big-hard")" ] || fail "the hard link pair is two inodes"
[ "$(stat -c %y "$X/var/big.bin")" = "$(stat -c %y "$S/var/big.bin")" ] || fail "mtime ns lost"
blocks=$(du -k "$X/var/sparse.img" | cut -f1)
[ "$blocks" -lt 1024 ] || fail "the sparse file takes $blocks KiB: holes were written"
[ "$(stat -c %s "$X/var/sparse.img")" -eq $((64 * MiB)) ] || fail "the sparse file has the wrong size"
if [ "$XATTR" = 1 ]; then
	[ "$(getfattr --absolute-names --only-values -n user.origin "$X/etc/attrs")" = diskvault-test ] || fail "the user xattr is lost"
	[ "$(getfacl -c "$X/etc/attrs" 2>/dev/null)" = "$(getfacl -c "$S/etc/attrs" 2>/dev/null)" ] ||
		fail "the ACL differs: $(getfacl -c "$X/etc/attrs")"
fi
# a rerun skips every file, symlink and link (and writes no bytes)
expect_ok dv --repo "$R" --json extract latest:/ --to "$X"
[ "$(json_get "$STDOUT" 'j["files"]')" = 0 ] || fail "the rerun wrote files again: $STDOUT"
[ "$(json_get "$STDOUT" 'j["bytes"]')" = 0 ] || fail "the rerun wrote bytes: $STDOUT"
n_src=$(find "$S" -mindepth 1 -not -type d -printf . | wc -c)
[ "$(json_get "$STDOUT" 'j["skipped"]')" = "$n_src" ] || fail "the rerun skipped $(json_get "$STDOUT" 'j["skipped"]') of $n_src: $STDOUT"
# a changed file is written again, the others skipped
echo changed >"$X/etc/hosts"
expect_ok dv --repo "$R" --json extract latest:/etc --to "$X"
[ "$(json_get "$STDOUT" 'j["files"]')" = 1 ] || fail "extract of a changed file: $STDOUT"
assert_same_file "$S/etc/hosts" "$X/etc/hosts"
[ "$(stat -c %y "$X/etc/hosts")" = "$(stat -c %y "$S/etc/hosts")" ] || fail "the rewritten file has another mtime"
# two paths of one run: /etc/hosts becomes DIR/hosts; a hard link pair stays one inode
expect_ok dv --repo "$R" extract latest:/etc/hosts latest:/var/big.bin latest:/links/big-hard --to "$X/two"
assert_contains "$STDOUT" "2 files"
assert_contains "$STDOUT" "1 hard links"
assert_same_file "$S/etc/hosts" "$X/two/hosts"
[ "$(stat -c %i "$X/two/big.bin")" = "$(stat -c %i "$X/two/big-hard")" ] || fail "hard links across two paths of one run are two inodes"
[ -z "$(find "$X" -name '.dv-extract.*')" ] || fail "temporary files were left behind"

# ---- errors and their exit codes ---------------------------------------------
expect_exit 1 dv --repo "$R" ls latest:/nonexistent
assert_contains "$STDERR" "/nonexistent: no such file or directory"
expect_exit 2 dv --repo "$R" cat latest:/etc
assert_contains "$STDERR" "is a directory"
expect_exit 1 dv --repo "$R" cat latest:/links/abs
assert_contains "$STDERR" "no such file"
expect_exit 2 dv --repo "$R" ls latest:p7/
assert_contains "$STDERR" "no volume p7 (it has: disk0, p1, p2"
expect_exit 2 dv --repo "$R" ls latest:etc
assert_contains "$STDERR" "a path starts with '/'"
if [ "$VFAT" = 1 ]; then
	expect_exit 2 dv --repo "$R" ls latest:p1/
	assert_contains "$STDERR" "volume p1 holds vfat"
	assert_contains "$STDERR" "diskvault mount"
fi
expect_exit 1 dv --repo "$R" ls zzzz:/
expect_exit 2 dv --repo "$R" extract latest:/etc
assert_contains "$STDERR" "--to DIR"
expect_exit 1 dv --repo "$R" extract latest:/nope --to "$T/y"

# ---- a hostile image ---------------------------------------------------------
# /h holds a symlink "trapdoor0" -> $OUT (outside the target), a directory
# "trapdoor1" renamed on disk to "trapdoor0" (so a later entry named like
# the symlink goes through it) holding "pwned", a file whose name becomes
# "../../../pwned", and one whose name becomes ".."
H=$T/hsrc
OUT=$T/outside
mkdir -p "$H/h/trapdoor1" "$OUT"
ln -s "$OUT" "$H/h/trapdoor0"
echo pwned >"$H/h/trapdoor1/pwned"
echo pwned >"$H/h/QQQQQQQQQpwned"
echo pwned >"$H/h/QQ"
echo fine >"$H/h/fine"
HI=$T/hostile.img
truncate -s 16M "$HI"
mkfs.ext4 -q -F -O ^metadata_csum,^dir_index -d "$H" "$HI" || fail "mkfs.ext4 (hostile) failed"
python3 - "$HI" <<-'EOF' || fail "cannot craft the hostile image"
	import sys
	b = bytearray(open(sys.argv[1], "rb").read())
	for old, new in ((b"trapdoor1", b"trapdoor0"), (b"QQQQQQQQQpwned", b"../../../pwned"), (b"\x02\x01QQ", b"\x02\x01..")):
	    assert b.count(old) == 1, (old, b.count(old))
	    i = b.index(old); b[i:i + len(new)] = new
	open(sys.argv[1], "wb").write(b)
EOF
backup_json "$R" "$HI"
expect_ok dv --repo "$R" ls "${SNAP:0:12}:/h"
assert_contains "$STDOUT" '../../../pwned'
XH=$T/xh/inner
mkdir -p "$XH"
expect_exit 3 dv --repo "$R" extract "${SNAP:0:12}:/h" --to "$XH"
assert_contains "$STDERR" "refused"
assert_contains "$STDERR" "trapdoor0: exists and is not a directory"
assert_contains "$STDOUT" "failed"
[ -z "$(ls -A "$OUT")" ] || fail "extract wrote outside the target: $(ls -A "$OUT")"
[ ! -e "$T/pwned" ] && [ ! -e "$T/xh/pwned" ] && [ ! -e "$XH/pwned" ] || fail "a '../' name escaped the target"
[ -L "$XH/h/trapdoor0" ] || fail "the symlink was not extracted as a symlink"
[ "$(cat "$XH/h/fine")" = fine ] || fail "the harmless file was not extracted"
[ -z "$(find "$T" -name pwned -not -path "$H/*")" ] || fail "a pwned file was written: $(find "$T" -name pwned -not -path "$H/*")"
