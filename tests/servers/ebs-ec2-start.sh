#!/bin/sh
# ebs-ec2-start.sh DIR PORT [SERVER OPTIONS...] - run the local EBS direct + EC2
# endpoint (ebs_ec2_server.py) on 127.0.0.1:PORT with all state under DIR, wait
# until it answers its health check, print its URL. Writes DIR/env with the
# AWS_* settings a client needs (source it). Idempotent: a healthy server
# already recorded in DIR is reused. Stop with ebs-ec2-stop.sh DIR.
# Exit 77 when python3-botocore is missing and cannot be installed.
set -eu
DIR=${1:?usage: ebs-ec2-start.sh DIR PORT [options]}
PORT=${2:?usage: ebs-ec2-start.sh DIR PORT [options]}
shift 2
PY=/usr/bin/python3   # Debian's interpreter: python3-botocore lives in its dist-packages
HERE=$(cd "$(dirname "$0")" && pwd)

health() { curl -sf -m 2 "http://127.0.0.1:$PORT/__health" >/dev/null 2>&1; }

if ! $PY -c 'import botocore.auth' >/dev/null 2>&1; then
	echo "ebs-ec2-start: installing python3-botocore" >&2
	if ! { apt-get install -y --no-install-recommends python3-botocore >/dev/null 2>&1 ||
		{ apt-get update >/dev/null 2>&1 &&
		  apt-get install -y --no-install-recommends python3-botocore >/dev/null 2>&1; }; }; then
		echo "ebs-ec2-start: cannot install python3-botocore with apt-get" >&2
		exit 77
	fi
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
cat >"$DIR/env" <<ENV
export AWS_ACCESS_KEY_ID=AKIDDVTEST000000000
export AWS_SECRET_ACCESS_KEY=dv-test-secret-key
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL_EBS AWS_ENDPOINT_URL_EC2
ENV

if [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null && health; then
	echo "http://127.0.0.1:$PORT"
	exit 0
fi

nohup $PY "$HERE/ebs_ec2_server.py" --dir "$DIR" --port "$PORT" "$@" >>"$DIR/server.log" 2>&1 </dev/null &
echo $! >"$DIR/server.pid"
i=0
while ! health; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
		echo "ebs-ec2-start: server did not come up on 127.0.0.1:$PORT; log:" >&2
		tail -n 20 "$DIR/server.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "http://127.0.0.1:$PORT"
