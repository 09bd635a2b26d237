#!/bin/sh
# ebs-ec2-stop.sh DIR - stop the endpoint started by ebs-ec2-start.sh DIR (by
# the pid it recorded; state in DIR is kept).
set -eu
DIR=${1:?usage: ebs-ec2-stop.sh DIR}
[ -f "$DIR/server.pid" ] || exit 0
pid=$(cat "$DIR/server.pid")
if kill "$pid" 2>/dev/null; then
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$DIR/server.pid"
