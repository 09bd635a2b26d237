#!/bin/bash
# t_package.sh - the Debian package end to end: build it with CPack from a
# scratch build directory, install it with apt-get, run the installed
# /usr/bin/diskvault (--version, man page, completion, example config,
# systemd units), back up a generated disk image with sources, repository
# and retention all from a config file, restore it and compare sha256 —
# then purge the package. Needs root, apt-get, dpkg and cpack; SKIPs
# otherwise, and when a diskvault package is already installed (it would
# be replaced and purged).
. "$(dirname "$0")/lib.sh"

SRC=${DV_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
skip() { echo "SKIP: $(basename "$0"): $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (installs a package)"
for tool in apt-get dpkg dpkg-deb dpkg-shlibdeps cpack cmake; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done
# One run at a time on a machine (parallel test runs of several build
# trees would install and purge under each other), and wait for apt's lock.
exec 9>/run/lock/diskvault-t_package.lock
flock -w 600 9 || skip "another t_package.sh run holds /run/lock/diskvault-t_package.lock"
APT_WAIT=(-o DPkg::Lock::Timeout=300)
if dpkg-query -W -f='${Status}' diskvault 2>/dev/null | qgrep "install ok installed"; then
	skip "a diskvault package is already installed; not replacing it"
fi
if [ -e /usr/bin/diskvault ]; then
	skip "/usr/bin/diskvault exists outside a package; not overwriting it"
fi

# 1. Build the package from a scratch build directory.
B=$T/build
note "building the package in $B"
cmake -S "$SRC" -B "$B" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release >"$T/cmake.log" 2>&1 ||
	fail "cmake configure failed: $(tail -20 "$T/cmake.log")"
cmake --build "$B" -j"$(nproc)" >>"$T/cmake.log" 2>&1 || fail "build failed: $(tail -30 "$T/cmake.log")"
(cd "$B" && cpack -G DEB) >"$T/cpack.log" 2>&1 || fail "cpack failed: $(tail -30 "$T/cpack.log")"
DEB=$(ls "$B"/diskvault_*.deb 2>/dev/null | sed -n 1p)
[ -n "$DEB" ] || fail "cpack made no diskvault_*.deb: $(tail -5 "$T/cpack.log")"
VERSION=$(dpkg-deb -f "$DEB" Version)
note "built $(basename "$DEB"): Depends: $(dpkg-deb -f "$DEB" Depends)"
dpkg-deb -f "$DEB" Depends | qgrep libzstd || fail "Depends (from dpkg-shlibdeps) lacks libzstd"
CONTENTS=$(dpkg-deb -c "$DEB" | awk '{ print $NF }')
for f in ./usr/bin/diskvault ./usr/share/man/man1/diskvault.1.gz ./usr/share/bash-completion/completions/diskvault \
	./etc/diskvault/diskvault.conf.example ./usr/lib/systemd/system/diskvault-backup.service \
	./usr/lib/systemd/system/diskvault-backup.timer ./usr/share/doc/diskvault/examples/cron.d/diskvault; do
	printf '%s\n' "$CONTENTS" | qgrep -x -- "$f" || fail "package lacks $f"
done
if [ -d "$SRC/data" ]; then
	for f in "$SRC"/data/*; do
		printf '%s\n' "$CONTENTS" | qgrep -x -- "./usr/share/diskvault/$(basename "$f")" ||
			fail "package lacks data file usr/share/diskvault/$(basename "$f")"
	done
fi
if printf '%s\n' "$CONTENTS" | grep -vE '^\./(usr|etc)(/|$)' | qgrep .; then
	fail "package holds files outside /usr and /etc: $(printf '%s\n' "$CONTENTS" | grep -vE '^\./(usr|etc)(/|$)' | head)"
fi

# 2. Install it as a user would; purge it whatever happens next.
CLEANUP+=("DEBIAN_FRONTEND=noninteractive apt-get ${APT_WAIT[*]} purge -y -q diskvault >/dev/null 2>&1")
DEBIAN_FRONTEND=noninteractive apt-get "${APT_WAIT[@]}" install -y -q --no-install-recommends "$DEB" >"$T/apt.log" 2>&1 ||
	fail "apt-get install $DEB failed: $(tail -20 "$T/apt.log")"
dpkg-query -W -f='${Status}' diskvault | qgrep "install ok installed" || fail "dpkg does not list diskvault as installed"

DV=/usr/bin/diskvault
expect_ok "$DV" --version
[ "$STDOUT" = "diskvault $VERSION" ] || fail "installed --version says '$STDOUT', package is $VERSION"
zcat /usr/share/man/man1/diskvault.1.gz | qgrep '^\.SS "backup"' || fail "installed man page has no backup section"
if command -v man >/dev/null; then
	MANWIDTH=80 man diskvault 2>/dev/null | qgrep -- "--all-blocks" || fail "'man diskvault' does not show the page"
fi
bash -c '. /usr/share/bash-completion/completions/diskvault; COMP_WORDS=(diskvault ba); COMP_CWORD=1; _diskvault;
	[ "${COMPREPLY[*]}" = backup ]' || fail "installed bash completion does not complete 'ba' to backup"
expect_ok env DISKVAULT_CONFIG= "$DV" --config /etc/diskvault/diskvault.conf.example config check
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify /usr/lib/systemd/system/diskvault-backup.service \
		/usr/lib/systemd/system/diskvault-backup.timer >"$T/verify.log" 2>&1 ||
		fail "systemd-analyze verify of the installed units: $(cat "$T/verify.log")"
	# man-db may lack the page index in a minimal system: only that is tolerated
	if grep -v "man diskvault(1)" "$T/verify.log" | qgrep .; then
		fail "systemd-analyze verify: $(cat "$T/verify.log")"
	fi
	note "systemd-analyze verify: units ok"
fi

# 3. Back up and restore with the installed binary, everything from a
#    config file (0600, as it names a password file).
bash "$SRC/scripts/make-sample-disk.sh" "$T/disk.img" 160 7 >/dev/null 2>&1 ||
	fail "make-sample-disk.sh failed"
WANT=$(sha256sum "$T/disk.img" | cut -d' ' -f1)
install -m 0600 /dev/null "$T/password"
echo "not used by an unencrypted repository" >"$T/password"
CONF=$T/diskvault.conf
cat >"$CONF" <<CONF
# written by t_package.sh
[repository]
path = $T/repo
password_file = $T/password
[backup]
sources = $T/disk.img
tags = pkgtest
[retention]
keep_last = 1
CONF
chmod 0644 "$CONF"
expect_exit 2 "$DV" --config "$CONF" config show
assert_contains "$STDERR" "readable by group or others" "a 0644 config naming a secret file"
chmod 0600 "$CONF"
unset DISKVAULT_REPO
expect_ok "$DV" --config "$CONF" config show
assert_contains "$STDOUT" "$T/repo" "config show"
expect_ok "$DV" --config "$CONF" init --no-encrypt
expect_ok "$DV" --config "$CONF" --json backup
assert_contains "$STDOUT" '"ok":true' "backup --json"
note "backup: $STDOUT"
expect_ok "$DV" --config "$CONF" --progress=never restore latest "$T/restored.img"
GOT=$(sha256sum "$T/restored.img" | cut -d' ' -f1)
[ "$GOT" = "$WANT" ] || fail "restored image differs: $GOT != $WANT"
note "restore with the installed binary is bit-exact ($WANT)"

# 4. The nightly service's own command lines, with this config: a second
#    backup, then forget --prune under keep_last = 1.
UNIT=/usr/lib/systemd/system/diskvault-backup.service
mapfile -t EXEC < <(sed -n 's/^ExecStart=//p' "$UNIT" | sed "s|/etc/diskvault/diskvault.conf|$CONF|")
[ "${#EXEC[@]}" -eq 2 ] || fail "expected 2 ExecStart lines in $UNIT, got ${#EXEC[@]}"
# shellcheck disable=SC2086
expect_ok ${EXEC[0]}
rc=0
# shellcheck disable=SC2086
${EXEC[1]} >"$T/forget.out" 2>"$T/forget.err" || rc=$?
if [ "$rc" -eq 0 ]; then
	expect_ok "$DV" --config "$CONF" --json list
	n=$(printf '%s' "$STDOUT" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))')
	[ "$n" -eq 1 ] || fail "keep_last = 1 left $n snapshots"
	note "service command lines: backup, then forget --prune kept 1 snapshot"
else
	fail "the unit's forget --prune line failed ($rc): $(cat "$T/forget.err")"
fi
expect_ok "$DV" --config "$CONF" --progress=never restore --force latest "$T/restored.img"
[ "$(sha256sum "$T/restored.img" | cut -d' ' -f1)" = "$WANT" ] || fail "restore after forget --prune differs"

# 5. Purge removes the package's files.
DEBIAN_FRONTEND=noninteractive apt-get "${APT_WAIT[@]}" purge -y -q diskvault >"$T/purge.log" 2>&1 ||
	fail "apt-get purge failed: $(tail "$T/purge.log")"
[ ! -e /usr/bin/diskvault ] || fail "/usr/bin/diskvault is still there after purge"
[ ! -e /etc/diskvault/diskvault.conf.example ] || fail "the example config is still there after purge"
