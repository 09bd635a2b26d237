#!/bin/bash
# t_s3_imds.sh - credentials from EC2 instance metadata (IMDSv2): with no
# keys in the environment or in ~/.aws, diskvault gets a session token by
# PUT /latest/api/token, the role name and its credentials with that token,
# from a fake metadata service on loopback (AWS_EC2_METADATA_SERVICE_ENDPOINT),
# and uses them against the S3 endpoint. Requests without the token are refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up
R=s3://$BUCKET/imds
init_repo "$R"

cat >"$T/imds.py" <<'PY'
import http.server, json, os, sys, time
TOKEN = os.environ.get("TOKEN", "tok-123")
ROLE = os.environ.get("ROLE", "diskvault-role")
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        with open(sys.argv[2], "a") as f: f.write("%s %s\n" % (self.command, self.path))
    def reply(self, code, body):
        b = body.encode(); self.send_response(code)
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, TOKEN)
        self.reply(400, "")
    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            return self.reply(401, "")
        if self.path == "/latest/meta-data/iam/security-credentials/":
            return self.reply(200, ROLE + "\n")
        if self.path == "/latest/meta-data/iam/security-credentials/diskvault-role":
            return self.reply(200, json.dumps({"Code": "Success", "AccessKeyId": os.environ["K"],
                "SecretAccessKey": os.environ["S"], "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                time.gmtime(time.time() + int(os.environ.get("EXP", "86400"))))}))
        self.reply(404, "")
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_address[1])); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
PY
K=$AWS_ACCESS_KEY_ID S=$AWS_SECRET_ACCESS_KEY python3 "$T/imds.py" "$T/imds.port" "$T/imds.log" &
IPID=$!
CLEANUP+=("kill $IPID 2>/dev/null")
for _ in $(seq 1 100); do [ -s "$T/imds.port" ] && break; sleep 0.1; done
[ -s "$T/imds.port" ] || fail "fake IMDS did not start"

mkdir -p "$T/home"
expect_ok env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_EC2_METADATA_DISABLED \
	HOME="$T/home" AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:$(cat "$T/imds.port")" \
	"$DISKVAULT" --repo "$R" list
assert_contains "$(cat "$T/imds.log")" "PUT /latest/api/token" "IMDS log"
assert_contains "$(cat "$T/imds.log")" "GET /latest/meta-data/iam/security-credentials/diskvault-role" "IMDS log"

# Credentials about to expire are fetched again before requests (the
# metadata service is asked once per request here: they expire in 60 s,
# inside the 5 minute margin).
: >"$T/imds.log"
kill $IPID
wait $IPID 2>/dev/null || true
rm -f "$T/imds.port"
EXP=60 K=$AWS_ACCESS_KEY_ID S=$AWS_SECRET_ACCESS_KEY python3 "$T/imds.py" "$T/imds.port" "$T/imds.log" &
IPID=$!
CLEANUP+=("kill $IPID 2>/dev/null")
for _ in $(seq 1 100); do [ -s "$T/imds.port" ] && break; sleep 0.1; done
expect_ok env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_EC2_METADATA_DISABLED \
	HOME="$T/home" AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:$(cat "$T/imds.port")" \
	"$DISKVAULT" --repo "$R" list
N=$(grep -c "GET /latest/meta-data/iam/security-credentials/diskvault-role" "$T/imds.log")
[ "$N" -ge 2 ] || fail "expiring credentials were not reloaded (fetched $N times)"
note "expiring credentials fetched $N times"

# A token that could split the header, or a role name that is not one path
# segment, is refused with one line naming IMDS (exit 6, remote) and the
# role's credentials are never asked for.
imds_bad() {
	kill $IPID
	wait $IPID 2>/dev/null || true
	rm -f "$T/imds.port"
	: >"$T/imds.log"
	env "$@" K=$AWS_ACCESS_KEY_ID S=$AWS_SECRET_ACCESS_KEY python3 "$T/imds.py" "$T/imds.port" "$T/imds.log" &
	IPID=$!
	CLEANUP+=("kill $IPID 2>/dev/null")
	for _ in $(seq 1 100); do [ -s "$T/imds.port" ] && break; sleep 0.1; done
	[ -s "$T/imds.port" ] || fail "fake IMDS did not start"
	expect_exit 6 env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_EC2_METADATA_DISABLED \
		HOME="$T/home" AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:$(cat "$T/imds.port")" \
		"$DISKVAULT" --repo "$R" list
	[ "$(grep -c . <<<"$STDERR")" -eq 1 ] || fail "IMDS refusal is not one line: $STDERR"
	if grep -q "security-credentials/." "$T/imds.log"; then fail "credentials asked for after a refusal"; fi
}
imds_bad TOKEN=$'tok-123\r\nX-Injected: 1'
assert_contains "$STDERR" "instance metadata (IMDS): the session token is not 1 to 1024 printable characters" \
	"CRLF token message"
imds_bad ROLE="../../../latest/api/token"
assert_contains "$STDERR" "instance metadata (IMDS): the role name under iam/security-credentials/ is not a valid IAM role name" \
	"dot-dot role message"
imds_bad ROLE="my role"
assert_contains "$STDERR" "instance metadata (IMDS): the role name" "role with a space message"

# Without any source of credentials: one usage error naming where it looked.
expect_exit 2 env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY HOME="$T/home" AWS_EC2_METADATA_DISABLED=true \
	"$DISKVAULT" --repo "$R" list
assert_contains "$STDERR" "no AWS credentials" "no-credentials message"
