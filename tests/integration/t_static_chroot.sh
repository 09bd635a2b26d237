#!/bin/bash
# t_static_chroot.sh - the static release binary (packaging/build-static.sh):
# no ELF interpreter and no NEEDED entries; copied alone into an empty
# directory and run there through chroot (no libc, no /etc, no /dev, no
# /proc): --version, then a backup and a restore of a generated disk image,
# bit-exact by sha256. Then, still in the chroot, name resolution and HTTPS:
# a host name from the chroot's /etc/hosts (glibc's built-in files NSS, no
# libnss_*.so) reaches a TLS server on loopback whose CA sits where RHEL keeps
# its bundle, and without that file the certificate is refused.
#
# The static build is cached: libcurl in ~/.cache/diskvault-static (the
# first build on a machine takes about 3.5 minutes on 2 cores), diskvault in
# $DV_SOURCE_DIR/build-static (about 1 minute, then incremental: seconds). SKIPs when not
# root (chroot) or when the build's prerequisites are missing on this
# machine (build-static.sh exit 3, reason printed).
. "$(dirname "$0")/lib.sh"

SRC=${DV_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
skip() { echo "SKIP: $(basename "$0"): $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root for chroot"
CHROOT=$(command -v chroot) || skip "chroot is not installed"
command -v file >/dev/null || fail "file(1) is missing (scripts/deps.sh test installs it)"

# 1. Build (or reuse) the static binary, in the source tree's build-static
# (shared by the regular and the sanitizer test trees; build-static.sh locks).
SB=${DV_STATIC_BUILD_DIR:-$SRC/build-static}
rc=0
"$SRC/packaging/build-static.sh" "$SB" >"$T/build.out" 2>"$T/build.err" || rc=$?
[ "$rc" -ne 3 ] || skip "static build impossible here: $(cat "$T/build.err")"
[ "$rc" -eq 0 ] || fail "packaging/build-static.sh failed ($rc): $(tail -30 "$T/build.err")"
BIN=$(tail -1 "$T/build.out")
[ -x "$BIN" ] || fail "build-static.sh printed no binary: $(cat "$T/build.out")"
note "static binary: $BIN ($(stat -c %s "$BIN") bytes)"

# 2. Static: file(1) says so, readelf shows no interpreter and no NEEDED.
FILE=$(file -b "$BIN")
assert_contains "$FILE" "statically linked" "file $BIN"
assert_contains "$FILE" "x86-64" "file $BIN"
# The ELF ABI tag (glibc's minimum kernel) must not be above CentOS 7's 3.10.
ABI=$(sed -n 's/.*for GNU\/Linux \([0-9]*\)\.\([0-9]*\).*/\1 \2/p' <<<"$FILE")
[ -n "$ABI" ] || fail "file shows no 'for GNU/Linux X.Y' ABI tag: $FILE"
read -r KMAJ KMIN <<<"$ABI"
[ $((KMAJ * 100 + KMIN)) -le 310 ] || fail "the binary needs Linux $KMAJ.$KMIN, above 3.10: $FILE"
readelf -lW "$BIN" >"$T/phdr" || fail "readelf -l $BIN failed"
qgrep LOAD "$T/phdr" || fail "readelf -l shows no LOAD segment (not an executable?)"
! qgrep INTERP "$T/phdr" || fail "$BIN has an ELF interpreter: $(grep -A1 INTERP "$T/phdr")"
readelf -dW "$BIN" >"$T/dyn" 2>&1 || true
! qgrep NEEDED "$T/dyn" || fail "$BIN needs shared libraries: $(grep NEEDED "$T/dyn")"

# 3. An empty root with the binary alone; the run is `env -i chroot`.
ROOT=$T/root
mkdir "$ROOT"
cp "$BIN" "$ROOT/diskvault"
[ "$(find "$ROOT" -mindepth 1 | wc -l)" -eq 1 ] || fail "the chroot holds more than the binary"
cr() { env -i PATH=/ DISKVAULT_STATE_DIR=/state DISKVAULT_CACHE_DIR=/cache "${CR_ENV[@]}" "$CHROOT" "$ROOT" /diskvault --progress=never "$@"; }
CR_ENV=()
expect_ok cr --version
assert_contains "$STDOUT" "diskvault $("$DISKVAULT" --version | awk '{print $NF; exit}')" "--version in the chroot"

# 4. Backup and restore inside the chroot; the image is made outside.
make_disk "$T/disk.img" 48 static
SRC_SHA=$(sha "$T/disk.img")
mkdir "$ROOT/in"
cp "$T/disk.img" "$ROOT/in/disk.img"
expect_ok cr --repo /repo init --no-encrypt
# --all-blocks: bit-exact against the source.
expect_ok cr --repo /repo --json backup /in/disk.img --name static --all-blocks
assert_json_ok "$STDOUT"
# --all-blocks: every byte is read, except holes of a sparse image (bytes_sparse)
[ "$(json_get "$STDOUT" 'j["bytes_read"] + j["bytes_sparse"]')" -eq "$(stat -c %s "$T/disk.img")" ] ||
	fail "bytes_read + bytes_sparse != disk size: $STDOUT"
expect_ok cr --repo /repo restore latest /out.img
assert_same_file "$T/disk.img" "$ROOT/out.img"
[ "$(sha "$ROOT/out.img")" = "$SRC_SHA" ] || fail "restored image differs"
rm -f "$ROOT/out.img"
# Used blocks only (libblkid, libext2fs, FAT inside the static binary): reads
# less, and restores what the regular build restores from the same snapshot.
expect_ok cr --repo /repo --json backup /in/disk.img --name static-used
USED_READ=$(json_get "$STDOUT" 'j["bytes_read"]')
[ "$USED_READ" -lt "$(stat -c %s "$T/disk.img")" ] || fail "the used-blocks backup read the whole disk: $STDOUT"
USED_SNAP=$(json_get "$STDOUT" 'j["snapshot"]')
expect_ok cr --repo /repo restore "$USED_SNAP" /out.img
expect_ok dv --repo "$ROOT/repo" restore "$USED_SNAP" "$T/out-dyn.img"
assert_same_file "$T/out-dyn.img" "$ROOT/out.img"
expect_ok cr --repo /repo check
rm -f "$ROOT/out.img" "$ROOT/in/disk.img"

# 5. getaddrinfo and TLS in the chroot: /etc/hosts names a loopback TLS
# server; its CA is at RHEL's path, the only file of /etc/pki.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=dv-static-ca -keyout "$T/ca.key" -out "$T/ca.crt" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1 || fail "openssl: CA"
openssl req -newkey rsa:2048 -nodes -subj /CN=s3.dv-static.test -keyout "$T/srv.key" -out "$T/srv.csr" >/dev/null 2>&1 ||
	fail "openssl: server key"
printf 'subjectAltName=DNS:s3.dv-static.test\n' >"$T/ext"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
	-extfile "$T/ext" -out "$T/srv.crt" >/dev/null 2>&1 || fail "openssl: server cert"
python3 - "$PORT" "$T/srv.crt" "$T/srv.key" "$T/https.log" <<'PY' >"$T/https.stderr" 2>&1 &
import http.server, ssl, sys
port, crt, key, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def any(self):
        with open(log, "a") as f:
            f.write("%s %s host=%s\n" % (self.command, self.path, self.headers.get("Host")))
        body = b"<Error><Code>AccessDenied</Code><Message>test server</Message></Error>"
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = any
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(crt, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.timeout = 1
import time
end = time.time() + 60
while time.time() < end:
    srv.handle_request()
PY
HTTPS_PID=$!
CLEANUP+=("kill $HTTPS_PID 2>/dev/null")
for _ in $(seq 50); do
	python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$PORT),0.2)" 2>/dev/null && break
	sleep 0.1
done
mkdir -p "$ROOT/etc"
echo "127.0.0.1 s3.dv-static.test" >"$ROOT/etc/hosts"
# This nsswitch.conf would send host names to DNS alone (and a module other
# than files/dns would be dlopened): the static build pins hosts to files dns.
echo "hosts: dns" >"$ROOT/etc/nsswitch.conf"
CR_ENV=(AWS_ACCESS_KEY_ID=AKIDSTATICTEST AWS_SECRET_ACCESS_KEY=static/test/secret AWS_REGION=us-east-1
	AWS_ENDPOINT_URL=https://s3.dv-static.test:$PORT)

# No CA bundle anywhere in the chroot: the TLS handshake is refused.
: >"$T/https.log"
expect_exit_nonzero() { local rc=0; "$@" >"$OUT_FILE" 2>"$ERR_FILE" || rc=$?; STDERR=$(cat "$ERR_FILE"); [ "$rc" -ne 0 ] || fail "$* succeeded"; }
expect_exit_nonzero cr --repo s3://bucket/vault list
note "without a CA bundle: $STDERR"
assert_contains "$STDERR" "certificate" "the error without a CA bundle"
[ ! -s "$T/https.log" ] || fail "a request got through without a CA bundle: $(cat "$T/https.log")"

# RHEL's bundle path: the request reaches the server by its /etc/hosts name.
mkdir -p "$ROOT/etc/pki/tls/certs"
cp "$T/ca.crt" "$ROOT/etc/pki/tls/certs/ca-bundle.crt"
expect_exit_nonzero cr --repo s3://bucket/vault list
note "with RHEL's CA bundle: $STDERR"
assert_not_contains "$STDERR" "certificate" "the error with the CA bundle"
qgrep "host=s3.dv-static.test:$PORT" "$T/https.log" ||
	fail "no request reached the TLS server by name: $(cat "$T/https.log") / $STDERR"

# AWS_CA_BUNDLE wins over the search: pointing it at a missing file fails.
: >"$T/https.log"
CR_ENV+=(AWS_CA_BUNDLE=/nonexistent.pem)
expect_exit_nonzero cr --repo s3://bucket/vault list
[ ! -s "$T/https.log" ] || fail "AWS_CA_BUNDLE=/nonexistent.pem was not used: $(cat "$T/https.log")"
