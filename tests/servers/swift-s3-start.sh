#!/bin/sh
# swift-s3-start.sh DIR [PORT] - run OpenStack Swift with its s3api middleware
# as a single-node S3 endpoint on 127.0.0.1:PORT (default 4571), all state and
# configuration under DIR (nothing in /etc/swift). Idempotent: if the server
# recorded in DIR is already healthy it is reused (a shared server for a whole
# ctest run). Writes DIR/env with the AWS_* settings a client needs.
#
# S3 identity: access key "test:tester", secret "testing", region us-east-1,
# path-style addressing. Stop with swift-s3-stop.sh DIR.
# Exit 77 when Swift is not installed and cannot be installed (tests skip).
set -eu
DIR=${1:?usage: swift-s3-start.sh DIR [PORT]}
PORT=${2:-4571}
PY=/usr/bin/python3   # Debian's interpreter: python3-swift lives in its dist-packages

# Healthy: the proxy answers its healthcheck and the account, container and
# object servers behind it answer HTTP (the proxy answers 503 to a
# bucket PUT while a backend is still starting).
health() {
	curl -sf -m 2 "http://127.0.0.1:$PORT/healthcheck" >/dev/null 2>&1 || return 1
	for p in $((PORT + 1)) $((PORT + 2)) $((PORT + 3)); do
		# any HTTP answer will do (curl exits 0 on a 4xx without -f)
		curl -s -o /dev/null -m 2 "http://127.0.0.1:$p/" >/dev/null 2>&1 || return 1
	done
}

if ! $PY -c 'import swift.common.wsgi' >/dev/null 2>&1; then
	echo "swift-s3-start: installing python3-swift" >&2
	if ! { apt-get install -y --no-install-recommends python3-swift >/dev/null 2>&1 ||
		{ apt-get update >/dev/null 2>&1 &&
		  apt-get install -y --no-install-recommends python3-swift >/dev/null 2>&1; }; }; then
		echo "swift-s3-start: cannot install python3-swift with apt-get" >&2
		exit 77
	fi
fi

mkdir -p "$DIR/etc" "$DIR/srv/d1" "$DIR/run" "$DIR/log"
DIR=$(cd "$DIR" && pwd)

cat > "$DIR/env" <<ENV
export AWS_ACCESS_KEY_ID=test:tester
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_EC2_METADATA_DISABLED=true
unset AWS_SESSION_TOKEN AWS_PROFILE
ENV

if [ -f "$DIR/run/proxy.pid" ] && kill -0 "$(cat "$DIR/run/proxy.pid")" 2>/dev/null && health; then
	echo "http://127.0.0.1:$PORT"
	exit 0
fi

# Swift binds with SO_REUSEPORT: a second server on the same ports would
# silently share the traffic. Refuse ports someone else holds (ports of
# this DIR's own servers that still run are fine: they are restarted below
# only when dead).
alive() { [ -f "$DIR/run/$1.pid" ] && kill -0 "$(cat "$DIR/run/$1.pid")" 2>/dev/null; }
check=
n=0
for svc in proxy object container account; do
	alive "$svc" || check="$check $((PORT + n))"
	n=$((n + 1))
done
# shellcheck disable=SC2086
if [ -n "$check" ] && ! $PY - $check <<'PYEOF'
import socket, sys
for p in map(int, sys.argv[1:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PYEOF
then
	echo "swift-s3-start: a port in $PORT..$((PORT + 3)) is in use by another process" >&2
	exit 1
fi

cat > "$DIR/etc/swift.conf" <<CONF
[swift-hash]
swift_hash_path_prefix = diskvault-test
swift_hash_path_suffix = diskvault-test
[storage-policy:0]
name = only
default = yes
CONF

# Settings every server shares: loopback, one process, our own swift_dir,
# logging to a discard port instead of syslog.
shared="bind_ip = 127.0.0.1
workers = 0
swift_dir = $DIR/etc
user = $(id -un)
log_udp_host = 127.0.0.1
log_udp_port = 9"

# The rings name the backend ports: rebuild them when PORT changed, or the
# proxy would talk to whatever listens on the old ports.
if [ "$(cat "$DIR/etc/port" 2>/dev/null)" != "$PORT" ]; then
	rm -rf "$DIR/etc/"*.builder "$DIR/etc/"*.ring.gz "$DIR/etc/backups"
	echo "$PORT" >"$DIR/etc/port"
fi

offset=1
for svc in object container account; do
	sport=$((PORT + offset)); offset=$((offset + 1))
	cat > "$DIR/etc/$svc-server.conf" <<CONF
[DEFAULT]
$shared
bind_port = $sport
devices = $DIR/srv
mount_check = false
disable_fallocate = true
[pipeline:main]
pipeline = $svc-server
[app:$svc-server]
use = egg:swift#$svc
CONF
	if [ ! -f "$DIR/etc/$svc.ring.gz" ]; then
		# one replica, one device: 2^6 partitions is plenty for tests
		for step in "create 6 1 1" "add r1z1-127.0.0.1:$sport/d1 100" "rebalance"; do
			# shellcheck disable=SC2086
			$PY -c 'import sys; from swift.cli.ringbuilder import main; main(["swift-ring-builder"] + sys.argv[1:])' \
				"$DIR/etc/$svc.builder" $step >/dev/null 2>&1 || true
		done
	fi
done

# The proxy: tempauth gives the S3 identity; the cache filter must be in the
# pipeline (tempauth needs it) even though no memcached runs.
cat > "$DIR/etc/proxy-server.conf" <<CONF
[DEFAULT]
$shared
bind_port = $PORT
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
storage_domain = s3.amazonaws.com
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:11211
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
access_log_facility = LOG_LOCAL0
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
CONF

cat > "$DIR/run-server.py" <<PYEOF
# Runs one Swift server with swift_dir pointed at $DIR/etc.
import sys
from swift.common import utils
utils.set_swift_dir("$DIR/etc")
from swift.common.storage_policy import reload_storage_policies
reload_storage_policies()
from swift.common.wsgi import run_wsgi
name = sys.argv[1]
sys.exit(run_wsgi("$DIR/etc/%s-server.conf" % name, "%s-server" % name, verbose=True))
PYEOF

for svc in account container object proxy; do
	pidf="$DIR/run/$svc.pid"
	if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
		continue
	fi
	nohup $PY "$DIR/run-server.py" "$svc" >>"$DIR/log/$svc.log" 2>&1 </dev/null &
	echo $! >"$pidf"
done

i=0
until health; do
	i=$((i + 1))
	if [ $i -gt 240 ]; then
		echo "swift-s3-start: no healthcheck answer on port $PORT after 120 s (logs in $DIR/log)" >&2
		exit 1
	fi
	for svc in account container object proxy; do
		if ! kill -0 "$(cat "$DIR/run/$svc.pid")" 2>/dev/null; then
			echo "swift-s3-start: $svc server exited; last log lines:" >&2
			tail -5 "$DIR/log/$svc.log" >&2
			exit 1
		fi
	done
	sleep 0.5
done
echo "http://127.0.0.1:$PORT"
