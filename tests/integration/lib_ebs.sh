# lib_ebs.sh - shared by the tests that talk to the local EBS + EC2 endpoint
# (tests/servers/ebs_ec2_server.py), sourced after lib.sh.
#
# ebs_up [START-OPTION...]: starts the endpoint on a free loopback port in
# $SRV (default $T/server), stops it by pid on exit, and loads its AWS_*
# environment; sets PORT. Exits 77 (skip) when python3-botocore is missing.
# diff_blocks A B: how many 512 KiB blocks differ between two images.
# Sets SRC, the source tree (DV_SOURCE_DIR, else two levels up).

SRC=${DV_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

ebs_up() {
	local rc=0
	SRV=${SRV:-$T/server}
	PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	"$SRC/tests/servers/ebs-ec2-start.sh" "$SRV" "$PORT" "$@" >/dev/null || rc=$?
	[ "$rc" -eq 77 ] && { echo "SKIP: python3-botocore not available"; exit 77; }
	[ "$rc" -eq 0 ] || fail "the EBS/EC2 endpoint did not start (logs in $SRV)"
	CLEANUP+=("'$SRC/tests/servers/ebs-ec2-stop.sh' '$SRV'")
	# shellcheck disable=SC1091
	. "$SRV/env"
}

diff_blocks() {
	python3 - "$1" "$2" <<-'PY'
		import sys
		a, b = open(sys.argv[1], "rb"), open(sys.argv[2], "rb")
		n = 0
		while True:
		    x, y = a.read(524288), b.read(524288)
		    if not x and not y:
		        break
		    n += x != y
		print(n)
	PY
}
