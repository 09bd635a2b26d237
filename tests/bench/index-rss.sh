#!/bin/bash
# index-rss.sh N... - peak RSS of restore and an incremental backup against a
# repository whose index holds N synthetic chunks (one plain DVINDEX1
# segment naming a fake pack) besides one real 16 MiB backup. Prints
# "entries restore_kib backup_kib" per N. Needs DISKVAULT (binary).
set -euo pipefail
: "${DISKVAULT:?}"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
export DISKVAULT_CACHE_DIR=$W/cache
dv() { "$DISKVAULT" --progress=never --repo "$W/R" "$@"; }
head -c $((16 << 20)) /dev/urandom >"$W/d.img"
dv init --no-encrypt >/dev/null; dv backup "$W/d.img" --name b >/dev/null
S=$(ls "$W/R/snapshots")
for n in "$@"; do
	rm -f "$W"/R/index/synth-*
	python3 - "$W/R/index" "$n" <<'PY'
import hashlib, os, struct, sys
d, n = sys.argv[1], int(sys.argv[2])
for f in os.listdir(d):
    if not f.startswith('.') and os.path.exists(os.path.join(d, '.synth-' + f)):
        os.unlink(os.path.join(d, f)); os.unlink(os.path.join(d, '.synth-' + f))
body = bytearray(b'DVINDEX1' + struct.pack('<IIQ', 1, 1, n))
body += os.urandom(32) + struct.pack('<QQII', 1 << 31, (1 << 31) - 4096, 4096, 0)
ids = os.urandom(32 * n)
for i in range(n):
    body += ids[32 * i:32 * i + 32] + struct.pack('<IIIIQ', 0, 1000, 4096, 0, 512 + 1024 * (i % 1000000))
name = hashlib.sha256(body).hexdigest()
open(os.path.join(d, name), 'wb').write(body)
open(os.path.join(d, '.synth-' + name), 'w').close()
PY
	rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
	rm -f "$W/o.img"; dv restore "$S" "$W/o.img" >/dev/null; rm -f "$W/o.img" # builds the cache
	if [ "$n" -gt 200000 ]; then ls "$W"/cache/index/*.dvixc >/dev/null || { echo "no index cache built" >&2; exit 1; }; fi
	r=$(rss "$DISKVAULT" --progress=never --repo "$W/R" restore "$S" "$W/o.img")
	cmp "$W/d.img" "$W/o.img"; rm -f "$W/o.img"
	b=$(rss "$DISKVAULT" --progress=never --repo "$W/R" backup "$W/d.img" --name b)
	echo "$n $r $b"
done
