#!/usr/bin/env bash
# build-static.sh - the release binary: one static x86_64 executable with
# every library linked in (libarchive, zstd, libcurl, OpenSSL, libblkid,
# libext2fs, jansson, expat and what they pull in), no ELF interpreter, no
# NEEDED entries. Runs on Linux 3.10+ with or without a glibc of its own.
# See docs/static-binary.md.
#
# Usage: packaging/build-static.sh [BUILD_DIR]      (default: build-static)
# Prints the path of the binary on its last line of stdout.
#
# Every library comes from Debian 12's -dev packages (their .a files), except
# libcurl: Debian's libcurl.a is built with GSSAPI/Kerberos and LDAP, whose
# libraries Debian ships only as shared objects. So libcurl is built here from
# Debian's own source package (apt-get source, the version of the installed
# libcurl4-openssl-dev, Debian's patches applied) with HTTP/HTTPS over
# OpenSSL only and every other feature off. That build is kept in
# $DV_STATIC_CACHE (default ~/.cache/diskvault-static), keyed by version, so
# later runs and other build trees reuse it; the diskvault part builds
# incrementally in BUILD_DIR.
#
# DV_CURL_SRC=DIR uses an unpacked curl source tree instead of fetching one.
# Exit status: 0 built; 3 a prerequisite is missing on this machine (a
# package, or the source package cannot be fetched), with the reason on
# stderr; anything else is a build failure.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$(mkdir -p "${1:-$SRC/build-static}" && cd "${1:-$SRC/build-static}" && pwd)
CACHE=${DV_STATIC_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/diskvault-static}
JOBS=${JOBS:-$(nproc)}
LIBDIR=/usr/lib/x86_64-linux-gnu

# One build at a time per build directory (test runs of several trees share
# it), and one libcurl build at a time per cache.
exec 8>"$B/.lock"
flock -w 1800 8 || { echo "build-static.sh: another build holds $B/.lock" >&2; exit 1; }
mkdir -p "$CACHE"
exec 7>"$CACHE/.lock"
flock -w 1800 7 || { echo "build-static.sh: another build holds $CACHE/.lock" >&2; exit 1; }

missing() { echo "build-static.sh: $*" >&2; exit 3; }
log() { echo "build-static.sh: $*" >&2; }

[ "$(uname -m)" = x86_64 ] || missing "builds the x86_64 binary only (this is $(uname -m))"
for t in gcc cmake pkg-config readelf dpkg-source apt-get; do
	command -v "$t" >/dev/null || missing "$t is not installed (scripts/deps.sh test)"
done
# The .a files the link needs (scripts/deps.sh installs their -dev packages).
for a in libarchive libzstd libcrypto libssl libblkid libext2fs libcom_err libjansson libexpat \
	libnettle libacl liblzma liblz4 libbz2 libz libxml2; do
	[ -e "$LIBDIR/$a.a" ] || missing "$LIBDIR/$a.a is missing (scripts/deps.sh test installs it)"
done

# ---- libcurl from Debian's source package ----------------------------------
CURL_VER=$(dpkg-query -W -f='${Version}' libcurl4-openssl-dev 2>/dev/null) ||
	missing "libcurl4-openssl-dev is not installed"
PREFIX=$CACHE/curl-$CURL_VER
if [ ! -e "$PREFIX/.done" ]; then
	W=$CACHE/work-$CURL_VER
	rm -rf "$W" "$PREFIX"
	mkdir -p "$W"
	if [ -n "${DV_CURL_SRC:-}" ]; then
		CSRC=$DV_CURL_SRC
	else
		# A private APT state with deb-src entries for the machine's own Debian
		# mirrors: the system's sources and lists are left as they are.
		A=$W/apt
		mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/sources.list.d" "$W/src"
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -e "$f" ] || continue
			sed -n '/^Types:/{s/^Types:.*/Types: deb-src/};p' "$f" >"$A/sources.list.d/$(basename "$f")"
		done
		if [ -s /etc/apt/sources.list ]; then
			sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list >"$A/sources.list.d/main.list"
		fi
		cat >"$A/apt.conf" <<-EOF
			Dir::State::Lists "$A/lists";
			Dir::Cache "$A/cache";
			Dir::Etc::SourceList "/dev/null";
			Dir::Etc::SourceParts "$A/sources.list.d";
			APT::Sandbox::User "root";
		EOF
		export APT_CONFIG=$A/apt.conf
		log "fetching Debian's curl $CURL_VER source package"
		# A third-party source without deb-src makes update fail; what
		# counts is whether Debian's source package can then be fetched.
		apt-get -qq update >"$W/apt.log" 2>&1 || log "apt-get update (deb-src) reported errors, trying anyway"
		(cd "$W/src" && apt-get -qq source --download-only "curl=$CURL_VER") >>"$W/apt.log" 2>&1 ||
			missing "apt-get source curl=$CURL_VER failed: $(tail -3 "$W/apt.log")"
		unset APT_CONFIG
		(cd "$W/src" && dpkg-source -x ./curl_*.dsc curl) >>"$W/apt.log" 2>&1 ||
			missing "dpkg-source -x failed: $(tail -3 "$W/apt.log")"
		CSRC=$W/src/curl
	fi
	log "building libcurl (HTTP/HTTPS over OpenSSL only) into $PREFIX"
	cmake -S "$CSRC" -B "$W/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
		-DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_POSITION_INDEPENDENT_CODE=OFF \
		-DBUILD_SHARED_LIBS=OFF -DBUILD_CURL_EXE=OFF -DBUILD_TESTING=OFF -DENABLE_MANUAL=OFF \
		-DHTTP_ONLY=ON -DCURL_USE_OPENSSL=ON -DENABLE_THREADED_RESOLVER=ON \
		-DCURL_DISABLE_LDAP=ON -DCURL_DISABLE_LDAPS=ON -DUSE_NGHTTP2=OFF -DUSE_LIBIDN2=OFF \
		-DCURL_USE_LIBPSL=OFF -DCURL_USE_LIBSSH2=OFF -DCURL_USE_GSSAPI=OFF -DUSE_LIBRTMP=OFF \
		-DCURL_BROTLI=OFF -DCURL_ZSTD=OFF -DCURL_ZLIB=OFF \
		-DCURL_CA_BUNDLE=none -DCURL_CA_PATH=none >"$W/curl.log" 2>&1 ||
		{ tail -30 "$W/curl.log" >&2; exit 1; }
	cmake --build "$W/build" -j"$JOBS" >>"$W/curl.log" 2>&1 || { tail -30 "$W/curl.log" >&2; exit 1; }
	cmake --install "$W/build" >>"$W/curl.log" 2>&1 || { tail -30 "$W/curl.log" >&2; exit 1; }
	# curl's CMake writes a .pc that names the shared libssl/libcrypto; this
	# one names what the static library needs.
	cat >"$PREFIX/lib/pkgconfig/libcurl.pc" <<-EOF
		prefix=$PREFIX
		libdir=\${prefix}/lib
		includedir=\${prefix}/include
		Name: libcurl
		Description: libcurl for diskvault's static build (HTTP/HTTPS, OpenSSL)
		Version: ${CURL_VER%%-*}
		Requires.private: libssl libcrypto
		Libs: -L\${libdir} -lcurl
		Libs.private: -pthread
		Cflags: -I\${includedir} -DCURL_STATICLIB
	EOF
	rm -rf "$W"
	touch "$PREFIX/.done"
fi

# ---- diskvault -----------------------------------------------------------
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
log "building diskvault in $B"
cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DDV_STATIC=ON -DBUILD_TESTING=OFF \
	>"$B/configure.log" 2>&1 || { tail -30 "$B/configure.log" >&2; exit 1; }
# glibc's warnings that getaddrinfo/dlopen/getpwnam in a static binary
# would want its NSS modules: see docs/static-binary.md for why they do not
# apply here. Kept in build.log.
cmake --build "$B" --target diskvault -j"$JOBS" >"$B/build.log" 2>&1 || { tail -40 "$B/build.log" >&2; exit 1; }
BIN=$B/src/cli/diskvault
OUT=$B/diskvault-$("$BIN" --version | awk '{print $NF; exit}')-x86_64-linux-static
if readelf -lW "$BIN" | grep -q INTERP || readelf -dW "$BIN" | grep -q NEEDED; then
	echo "build-static.sh: $BIN is not static:" >&2
	readelf -lW "$BIN" | grep INTERP >&2 || true
	readelf -dW "$BIN" | grep NEEDED >&2 || true
	exit 1
fi
strip -o "$OUT.tmp" "$BIN"
mv "$OUT.tmp" "$OUT"
log "built $OUT ($(stat -c %s "$OUT") bytes)"
echo "$OUT"
