# lib_s3.sh - shared by the S3 integration tests (t_s3_*.sh), sourced after
# lib.sh. Gives each test an S3 endpoint on loopback (OpenStack Swift with
# s3api, tests/servers/swift-s3-start.sh), a fresh bucket, and the official
# AWS CLI as `awscli` (Debian's /usr/bin/aws: another `aws` may come first
# on PATH, and this one predates AWS_ENDPOINT_URL, so it gets --endpoint-url).
#
# Server: when DV_S3_SERVER_DIR names a directory in which a server was
# started (CI: `tests/servers/swift-s3-start.sh DIR PORT` once, export
# DV_S3_SERVER_DIR=DIR DV_S3_PORT=PORT, stop with swift-s3-stop.sh DIR at
# the end), the tests share it. Otherwise each test starts a private server
# on free ports under $T and stops it by pid on exit (about 7-20 s each).
# When Swift cannot be installed the test prints SKIP and exits 0.

S3_SERVERS=${DV_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}/tests/servers

# free_port_base: a port P with P..P+3 free on 127.0.0.1, below the kernel's
# ephemeral range: a port in that range that is free now can be taken a
# moment later as the local end of any outgoing connection (CI's Swift once
# could not bind its proxy port for 30 s that way).
free_port_base() {
	python3 - <<'PY'
import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
top = max(min(low, 65536) - 4, 12000)
for _ in range(200):
    base = random.randrange(10000, top, 4)
    socks = []
    try:
        for p in range(base, base + 4):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks: s.close()
    print(base); break
PY
}

# s3_up [private]: starts or joins the server, loads its AWS_* environment,
# isolates diskvault's state and cache dirs in $T, creates bucket $BUCKET.
# "private": always a server of this test's own (for tests that kill it).
s3_up() {
	local rc=0
	if [ -n "${DV_S3_SERVER_DIR:-}" ] && [ "${1:-}" != private ]; then
		S3_DIR=$DV_S3_SERVER_DIR
		S3_PORT=${DV_S3_PORT:-4571}
		"$S3_SERVERS/swift-s3-start.sh" "$S3_DIR" "$S3_PORT" >/dev/null || rc=$?
	else
		S3_DIR=$T/swift
		S3_PORT=$(free_port_base)
		CLEANUP+=("'$S3_SERVERS/swift-s3-stop.sh' '$S3_DIR'")
		"$S3_SERVERS/swift-s3-start.sh" "$S3_DIR" "$S3_PORT" >/dev/null || rc=$?
	fi
	if [ "$rc" -eq 77 ]; then
		echo "SKIP: $(basename "$0"): OpenStack Swift (python3-swift) cannot be installed with apt-get"
		exit 0
	fi
	[ "$rc" -eq 0 ] || fail "the S3 test server did not start (logs in $S3_DIR/log)"
	# shellcheck disable=SC1091
	. "$S3_DIR/env"
	S3_ENDPOINT=$AWS_ENDPOINT_URL
	export DISKVAULT_STATE_DIR=$T/state DISKVAULT_CACHE_DIR=$T/cache
	export DISKVAULT_S3_STATS_FILE=$T/s3stats
	if [ ! -x /usr/bin/aws ]; then
		apt-get install -y --no-install-recommends awscli >/dev/null 2>&1 ||
			fail "the official AWS CLI (/usr/bin/aws, Debian awscli) is missing and cannot be installed"
	fi
	BUCKET=dvt-$(basename "$T" | tr 'A-Z._' 'a-z--')-$RANDOM
	BUCKET=${BUCKET:0:60}
	# Swift answers 503 SlowDown to a container PUT while its account or
	# container server is slow (a loaded machine, a server just started):
	# awscli retries with backoff, and the whole call is repeated for up to
	# 3 minutes. An earlier attempt may have created the bucket after all.
	local deadline=$((SECONDS + 180)) out
	until out=$(AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=8 awscli s3api create-bucket --bucket "$BUCKET" 2>&1 >/dev/null); do
		case $out in *BucketAlreadyOwnedByYou* | *BucketAlreadyExists*) break ;; esac
		[ $SECONDS -lt $deadline ] || fail "create-bucket $BUCKET failed: $out"
		sleep 2
	done
}

awscli() { /usr/bin/aws --endpoint-url "$S3_ENDPOINT" --region us-east-1 "$@"; }

# last_stats EXPR: python expression on the last JSON line diskvault's S3
# store appended to $DISKVAULT_S3_STATS_FILE (j = that object).
last_stats() { json_get "$(tail -1 "$DISKVAULT_S3_STATS_FILE")" "$1"; }

# proxy_up [--rate N] [--fault RULE]...: starts tests/servers/s3-fault-proxy.py
# in front of the server; sets PROXY_URL, PROXY_LOG, PROXY_PID. proxy_down
# stops it (also done on exit).
proxy_up() {
	PROXY_LOG=$T/proxy.$RANDOM.log
	local pf=$T/proxy.$RANDOM.port i=0
	python3 "$S3_SERVERS/s3-fault-proxy.py" --upstream "$S3_ENDPOINT" --port-file "$pf" --log "$PROXY_LOG" "$@" \
		>>"$T/proxy.stderr" 2>&1 &
	PROXY_PID=$!
	CLEANUP+=("kill $PROXY_PID 2>/dev/null")
	while [ ! -s "$pf" ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "fault proxy did not start: $(cat "$T/proxy.stderr")"
		sleep 0.1
	done
	PROXY_URL=http://127.0.0.1:$(cat "$pf")
	: >>"$PROXY_LOG"
}
proxy_down() { kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null || true; }
