#!/usr/bin/env python3
"""Writes a fuzz_ntfs or fuzz_btrfs seed (the sparse image format of
fuzz_formats.c's ntfs and btrfs targets) from a small image:
    mkntfs -F -Q -q -c 512 -s 512 IMG      (on a 2 MiB file), or
    mkfs.btrfs -q -f [-m single] IMG       (on a 120 MiB file of zeros)
    tests/fuzz/sparse_seed.py IMG SEED
Sectors that hold one byte value become fill records (zeros: nothing),
an NTFS's $UpCase (found by ntfscat) becomes an upcase record, everything
else data records."""
import struct, subprocess, sys

img = open(sys.argv[1], "rb").read()
up = subprocess.run(["ntfscat", sys.argv[1], "$UpCase"], capture_output=True).stdout
at = img.find(up) if len(up) == 131072 else -1
out = [struct.pack("<I", len(img))]
S = 512
i = 0
while i < len(img):
    if at >= 0 and i == at:
        out.append(struct.pack("<IIB", i, len(up), 2))
        i += len(up)
        continue
    blk = img[i:i + S]
    if len(set(blk)) == 1:
        j = i
        while j < len(img) and img[j:j + S] == blk and not (at >= 0 and j == at):
            j += S
        if blk[0] != 0:
            out.append(struct.pack("<IIBB", i, j - i, 1, blk[0]))
        i = j
        continue
    j = i
    while j < len(img) and len(set(img[j:j + S])) > 1 and not (at >= 0 and j == at):
        j += S
    out.append(struct.pack("<IIB", i, j - i, 0) + img[i:j])
    i = j
open(sys.argv[2], "wb").write(b"".join(out))
