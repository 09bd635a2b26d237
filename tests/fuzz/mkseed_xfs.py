#!/usr/bin/env python3
"""mkseed_xfs.py IMAGE OUT [LOG_IMAGE]: a fuzz_xfs seed from a small real XFS image (made by
mkfs.xfs; QA_CHECK_FS=1 TEST_DIR=x TEST_DEV=x allows one under 300 MB).
Keeps what xfs.c reads: the superblock sector, each AGF sector, the blocks
of each by-block-number free-space btree, and the log's non-zero sectors,
(taken from LOG_IMAGE, a fresh mkfs of the same geometry, when given:
a log that wrapped has no zero sectors), as [u32 BE size KiB] then pieces [u64 BE offset][u16 BE length][bytes]."""
import struct, sys

img = open(sys.argv[1], 'rb').read()
be32 = lambda o: struct.unpack('>I', img[o:o + 4])[0]
bs, agblocks, agcount, ss = be32(4), be32(84), be32(88), struct.unpack('>H', img[102:104])[0]
logstart, logblocks, agblklog = struct.unpack('>Q', img[48:56])[0], be32(96), img[124]
v5 = (struct.unpack('>H', img[100:102])[0] & 0xf) == 5
pieces = [(0, img[0:ss])]
for ag in range(agcount):
    agf = ag * agblocks * bs + ss
    pieces.append((agf, img[agf:agf + ss]))
    todo = [be32(agf + 16)]
    while todo:
        off = (ag * agblocks + todo.pop()) * bs
        pieces.append((off, img[off:off + bs]))
        hdr = 56 if v5 else 16
        level, nrec = struct.unpack('>HH', img[off + 4:off + 8])
        if level:
            maxr = (bs - hdr) // 12
            todo += [be32(off + hdr + maxr * 8 + 4 * i) for i in range(nrec)]
log = open(sys.argv[3], 'rb').read() if len(sys.argv) > 3 else img
lb = ((logstart >> agblklog) * agblocks + (logstart & ((1 << agblklog) - 1))) * bs
for o in range(lb, lb + logblocks * bs, 512):
    if log[o:o + 512].strip(b'\0'):
        pieces.append((o, log[o:o + 512]))
out = struct.pack('>I', len(img) // 1024)
for off, b in pieces:
    # trailing zeros need not be stored
    b = b.rstrip(b'\0') or b'\0'
    out += struct.pack('>QH', off, len(b)) + b
open(sys.argv[2], 'wb').write(out)
print(sys.argv[2], len(out), 'bytes,', len(pieces), 'pieces')
