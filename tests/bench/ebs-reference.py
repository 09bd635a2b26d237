#!/usr/bin/python3
"""Reference EBS importer for the diskvault benchmark (issue 5).

Imports a raw disk image into a new EBS snapshot the way existing upload
tools do: StartSnapshot, then PutSnapshotBlock for every 512 KiB block of the
image with a fixed-size thread pool, then CompleteSnapshot with the LINEAR
aggregated checksum, then waits until DescribeSnapshots reports completed.
Uses botocore (Debian's python3-botocore), the engine of the AWS CLI.

usage: ebs-reference.py IMAGE [--concurrency N] [--skip-zero] [--endpoint URL]
                        [--region R] [--description D]

  --concurrency N  PutSnapshotBlock requests in flight (default 64)
  --skip-zero      do not send blocks that are all zero bytes (by default every
                   block is sent, zeros included)
  --endpoint URL   EBS and EC2 endpoint (default AWS_ENDPOINT_URL)

Prints one JSON line: snapshot id, blocks in the image, blocks sent, bytes sent,
zero blocks skipped, retries, wall seconds.
"""
import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import sys
import threading
import time

import botocore.config
import botocore.exceptions
import botocore.session

BLOCK = 512 * 1024
RETRY_CODES = {"ThrottlingException", "RequestThrottledException", "InternalServerException",
               "ServiceUnavailableException", "ResourceNotFoundException"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--skip-zero", action="store_true")
    ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    ap.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    ap.add_argument("--description", default="ebs-reference import")
    a = ap.parse_args()

    t0 = time.monotonic()
    size = os.path.getsize(a.image)
    nblocks = (size + BLOCK - 1) // BLOCK
    gib = max(1, (size + (1 << 30) - 1) >> 30)
    session = botocore.session.get_session()
    cfg = botocore.config.Config(max_pool_connections=a.concurrency, retries={"mode": "standard", "max_attempts": 8},
                                 connect_timeout=10, read_timeout=60)
    ebs = session.create_client("ebs", region_name=a.region, endpoint_url=a.endpoint, config=cfg)
    ec2 = session.create_client("ec2", region_name=a.region, endpoint_url=a.endpoint)

    snap = ebs.start_snapshot(VolumeSize=gib, Description=a.description, Timeout=60,
                              ClientToken="ebs-reference-%d-%d" % (os.getpid(), int(time.time() * 1000)))
    sid = snap["SnapshotId"]

    digests = {}
    lock = threading.Lock()
    stats = {"retries": 0, "zero": 0, "sent": 0}
    local = threading.local()

    def put(index):
        f = getattr(local, "f", None)
        if f is None:
            f = local.f = open(a.image, "rb")
        f.seek(index * BLOCK)
        data = f.read(BLOCK)
        if len(data) < BLOCK:
            data += bytes(BLOCK - len(data))
        if a.skip_zero and data.count(0) == BLOCK:
            with lock:
                stats["zero"] += 1
            return
        digest = hashlib.sha256(data).digest()
        ck = base64.b64encode(digest).decode()
        for attempt in range(10):
            try:
                ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=index, BlockData=data, DataLength=BLOCK,
                                       Checksum=ck, ChecksumAlgorithm="SHA256")
                break
            except botocore.exceptions.ClientError as e:
                # a fresh snapshot may not "exist yet"; throttling and 5xx are retried
                if e.response.get("Error", {}).get("Code") not in RETRY_CODES or attempt == 9:
                    raise
                with lock:
                    stats["retries"] += 1
                time.sleep(min(2.0, 0.05 * (2 ** attempt)))
        with lock:
            digests[index] = digest
            stats["sent"] += 1

    with concurrent.futures.ThreadPoolExecutor(max_workers=a.concurrency) as pool:
        # bounded submission keeps at most 2*concurrency blocks in memory
        pending = set()
        for i in range(nblocks):
            pending.add(pool.submit(put, i))
            if len(pending) >= 2 * a.concurrency:
                done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for d in done:
                    d.result()
        for d in concurrent.futures.as_completed(pending):
            d.result()

    agg = hashlib.sha256(b"".join(digests[i] for i in sorted(digests))).digest()
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=len(digests),
                          Checksum=base64.b64encode(agg).decode(), ChecksumAlgorithm="SHA256",
                          ChecksumAggregationMethod="LINEAR")
    while True:
        r = ec2.describe_snapshots(SnapshotIds=[sid])
        st = r["Snapshots"][0]["State"]
        if st == "completed":
            break
        if st == "error":
            sys.exit("ebs-reference: snapshot %s failed" % sid)
        time.sleep(0.5)
    print(json.dumps({"snapshot": sid, "blocks_total": nblocks, "blocks_sent": stats["sent"],
                      "bytes_sent": stats["sent"] * BLOCK, "blocks_zero_skipped": stats["zero"],
                      "retries": stats["retries"], "concurrency": a.concurrency,
                      "seconds": round(time.monotonic() - t0, 3)}))


if __name__ == "__main__":
    main()
