#!/bin/bash
# t_s3_uploads.sh - `diskvault s3 uploads [--abort]` finds the multipart
# uploads left under the repository's prefix (and only there), aborts them,
# and the S3 options work as command-line flags (--endpoint).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_s3.sh"
s3_up

R=s3://$BUCKET/vault
init_repo "$R"
# Two abandoned uploads in the repository, one elsewhere in the bucket.
awscli s3api create-multipart-upload --bucket "$BUCKET" --key vault/packs/ab/abandoned1 >/dev/null
awscli s3api create-multipart-upload --bucket "$BUCKET" --key vault/packs/cd/abandoned2 >/dev/null
awscli s3api create-multipart-upload --bucket "$BUCKET" --key other/not-ours >/dev/null

# The endpoint given as a flag instead of the environment.
endpoint=$AWS_ENDPOINT_URL
expect_ok env -u AWS_ENDPOINT_URL "$DISKVAULT" --repo "$R" --endpoint "$endpoint" s3 uploads --json
echo "$STDOUT" | python3 -c '
import json, sys
j = json.load(sys.stdin)
keys = sorted(u["key"] for u in j["list"])
assert j["uploads"] == 2 and keys == ["vault/packs/ab/abandoned1", "vault/packs/cd/abandoned2"], j'
expect_ok dv --repo "$R" s3 uploads --abort --json
echo "$STDOUT" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["aborted"] == 2, j'
expect_ok dv --repo "$R" s3 uploads --json
echo "$STDOUT" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["uploads"] == 0, j'
# The upload outside the prefix is untouched.
awscli s3api list-multipart-uploads --bucket "$BUCKET" | python3 -c '
import json, sys
u = json.load(sys.stdin).get("Uploads", [])
assert [x["Key"] for x in u] == ["other/not-ours"], u'
expect_exit 2 dv --repo "$T/local" s3 uploads
