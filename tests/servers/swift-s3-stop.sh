#!/bin/sh
# swift-s3-stop.sh DIR - stops the Swift processes whose pids swift-s3-start.sh
# recorded under DIR (and nothing else); waits up to 10 s for them to exit.
DIR=${1:?usage: swift-s3-stop.sh DIR}
for f in "$DIR"/run/*.pid; do
	[ -f "$f" ] || continue
	pid=$(cat "$f")
	kill "$pid" 2>/dev/null
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	kill -9 "$pid" 2>/dev/null
	rm -f "$f"
done
exit 0
