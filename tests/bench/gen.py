#!/usr/bin/env python3
"""Deterministic data generator for the diskvault benchmark.

Everything is derived from a seed, so the same seed gives the same bytes on
every machine (Python's random.Random is specified to be reproducible for the
same seed and calls).

Subcommands:
  populate DIR MANIFEST SEED FILE_BYTES RANDOM_BYTES
      Create a Linux-like directory tree of about FILE_BYTES bytes of file
      data under DIR: text (logs, docs, source), semi-compressible binaries,
      database files with zero pages, a sparse VM image, RANDOM_BYTES of
      incompressible media/archives, and duplicated files. Writes a TSV
      manifest (path, size, kind) to MANIFEST.
  oldfill IMG SEED START LENGTH
      Fill [START, START+LENGTH) of IMG with "old" data (deleted files):
      text, binary, random and never-written (zero) segments.
  stream KIND SEED NBYTES
      Write NBYTES of KIND (text|log|code|bin|rand) to stdout.
  mutate IMG SEED PART_OFFSET MANIFEST FRACTION
      See mutate.sh: overwrite file blocks in place; prints a JSON summary.
"""
import json
import os
import random
import re
import subprocess
import sys

MiB = 1 << 20
KiB = 1 << 10
BLOCK = 4096

SYLLABLES = ["ka", "to", "ri", "ne", "sa", "lo", "mi", "pe", "da", "ru", "vo",
             "ti", "ge", "bu", "ch", "st", "ar", "en", "or", "in", "al", "us",
             "ex", "th", "qu", "io", "ze", "fl", "mo", "nd"]


class Gen:
    """Token-table generator: 2 random bytes pick one of 65536 table slots,
    whose contents follow a Zipf-like word distribution. Runs at C speed via
    bytes.join(map(...)) and compresses like real text (zstd -3 ~3x)."""

    def __init__(self, seed):
        self.seed = seed
        r = random.Random(f"tables-{seed}")
        words = ["".join(r.choice(SYLLABLES) for _ in range(r.randint(1, 4)))
                 for _ in range(6000)]
        self.tables = {}
        self.tables["text"] = self._table(r, [w.encode() for w in words],
                                          [b" "] * 14 + [b". ", b", ", b"\n"])
        hosts = [f"srv{r.randint(1, 40):02d}".encode() for _ in range(8)]
        procs = [w.encode() for w in words[:60]]
        logtok = [w.encode() for w in words[:3000]]
        logtok += [b"INFO", b"WARN", b"ERROR", b"DEBUG"] * 40
        logtok += [f"{r.randint(0, 99999)}".encode() for _ in range(2000)]
        logtok += [f"0x{r.getrandbits(32):08x}".encode() for _ in range(1500)]
        logtok += [b"\n2026-%02d-%02dT%02d:%02d:%02d %s %s[%d]:" % (
            r.randint(1, 12), r.randint(1, 28), r.randint(0, 23),
            r.randint(0, 59), r.randint(0, 59), r.choice(hosts),
            r.choice(procs), r.randint(100, 30000)) for _ in range(4000)]
        self.tables["log"] = self._table(r, logtok, [b" "])
        codetok = [w.encode() for w in words[:1500]]
        codetok += [b"int", b"return", b"if (", b") {", b"}\n", b";\n",
                    b"static", b"const", b"struct", b"->", b"= 0", b"NULL",
                    b"\n\t", b"\n\t\t", b"(", b")", b"/*", b"*/", b"size_t",
                    b"uint64_t", b"for (", b"while ("] * 30
        self.tables["code"] = self._table(r, codetok, [b" ", b"_", b""])
        bintok = [r.randbytes(r.randint(1, 6)) for _ in range(20000)]
        bintok += [b"\x00" * r.randint(1, 16) for _ in range(300)]
        bintok += [w.encode() + b"\x00" for w in words[:800]]
        self.tables["bin"] = self._table(r, bintok, [b""], zipf=0.9)

    @staticmethod
    def _table(r, tokens, seps, zipf=1.05):
        w = [1.0 / (i + 1) ** zipf for i in range(len(tokens))]
        tot = sum(w)
        table = []
        for i, x in enumerate(w):
            n = max(1, int(x / tot * 60000))
            for _ in range(n):
                table.append(tokens[i] + r.choice(seps))
        while len(table) < 65536:
            table.append(r.choice(tokens) + r.choice(seps))
        table = table[:65536]
        r.shuffle(table)
        return table

    def data(self, kind, key, n):
        """n bytes of kind, fully determined by (seed, kind, key)."""
        r = random.Random(f"{self.seed}-{kind}-{key}")
        if kind == "rand":
            return r.randbytes(n)
        if kind == "zero":
            return bytes(n)
        table = self.tables[kind]
        out = []
        have = 0
        while have < n:
            want = max(4096, (n - have) // 5 + 64)
            raw = r.randbytes(2 * want)
            s = b"".join(map(table.__getitem__, memoryview(raw).cast("H")))
            out.append(s)
            have += len(s)
        return b"".join(out)[:n]


def lognormal_size(r, lo, hi):
    """Log-uniform size in [lo, hi]: many small files, a few big ones."""
    import math
    return int(math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * r.random()))


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def populate(root, manifest, seed, file_bytes, rand_bytes):
    g = Gen(seed)
    r = random.Random(f"{seed}-layout")
    entries = []  # (relpath, size, kind)
    counter = [0]

    def emit(rel, kind, size, content=None):
        counter[0] += 1
        if content is None:
            content = g.data(kind, rel, size)
        write_file(os.path.join(root, rel), content)
        entries.append((rel, len(content), kind))
        return content

    text_budget = max(0, file_bytes - rand_bytes)

    # Incompressible: media and compressed archives.
    got = 0
    i = 0
    media = []
    while got < rand_bytes * 0.85:
        size = min(lognormal_size(r, 256 * KiB, 48 * MiB), int(rand_bytes * 0.85 - got) + 4096)
        rel = f"home/user/media/clip-{i:04d}.mp4" if i % 3 == 0 else f"home/user/media/IMG_{i:04d}.jpg"
        emit(rel, "rand", size)
        media.append((rel, size))
        got += size
        i += 1
    i = 0
    while got < rand_bytes:
        size = min(lognormal_size(r, 16 * KiB, 8 * MiB), rand_bytes - got + 4096)
        emit(f"var/cache/apt/archives/pkg{i:04d}_1.{i % 7}_amd64.deb", "rand", size)
        got += size
        i += 1

    def fill(budget, make_rel, kind, lo, hi):
        done = 0
        n = 0
        made = []
        while done < budget:
            size = min(lognormal_size(r, lo, hi), budget - done + 512)
            rel = make_rel(n)
            emit(rel, kind, size)
            made.append((rel, size))
            done += size
            n += 1
        return made

    logs = fill(int(text_budget * 0.25),
                lambda n: f"var/log/{['syslog', 'daemon', 'auth', 'kern', 'app/server', 'nginx/access', 'journal/sys'][n % 7]}.{n // 7}.log",
                "log", 512 * KiB, 64 * MiB)
    docs = fill(int(text_budget * 0.15),
                lambda n: f"usr/share/doc/pkg{n // 3:04d}/{['README', 'changelog', 'copyright'][n % 3]}",
                "text", 1 * KiB, 64 * KiB)
    src = fill(int(text_budget * 0.12),
               lambda n: f"home/user/src/proj{n // 40:02d}/{'sub%d/' % (n % 4) if n % 5 else ''}file{n:05d}.{'c' if n % 3 else 'h'}",
               "code", 2 * KiB, 80 * KiB)
    libs = fill(int(text_budget * 0.20),
                lambda n: f"usr/lib/x86_64-linux-gnu/lib{n:04d}.so.{n % 5}" if n % 4 else f"usr/bin/tool{n:04d}",
                "bin", 32 * KiB, 6 * MiB)
    # Database files: pages of binary with runs of zero pages (mke2fs -d turns
    # all-zero blocks into holes, as a real sparse-aware copy would).
    db_budget = int(text_budget * 0.08)
    done = 0
    n = 0
    while done < db_budget:
        npages = max(16, min(lognormal_size(r, 4 * MiB, 64 * MiB), db_budget - done + BLOCK) // BLOCK)
        body = g.data("bin", f"db{n}", npages * BLOCK)
        ba = bytearray(body)
        p = 0
        while p < npages:
            run = r.randint(1, 64)
            if r.random() < 0.3:
                ba[p * BLOCK:(p + run) * BLOCK] = bytes(min(run, npages - p) * BLOCK)
            p += run
        emit(f"var/lib/postgresql/15/main/base/{16384 + n}", "db", len(ba), bytes(ba))
        done += len(ba)
        n += 1
    # Sparse VM image: large apparent size, small allocated data.
    vm_rel = "var/lib/libvirt/images/vm.raw"
    vm_path = os.path.join(root, vm_rel)
    os.makedirs(os.path.dirname(vm_path), exist_ok=True)
    vm_apparent = 1024 * MiB
    vm_data = max(BLOCK, int(text_budget * 0.02) // BLOCK * BLOCK)
    with open(vm_path, "wb") as f:
        f.truncate(vm_apparent)
        left = vm_data
        k = 0
        while left > 0:
            ln = min(left, r.randint(1, 256) * BLOCK)
            off = r.randrange(0, vm_apparent - ln) // BLOCK * BLOCK
            f.seek(off)
            f.write(g.data("bin", f"vm{k}", ln))
            left -= ln
            k += 1
    entries.append((vm_rel, vm_data, "sparse"))

    # Duplicates: ~20% of the text budget, same content at other paths.
    dup_budget = int(text_budget * 0.20)
    dup_done = 0

    def dup(src_rel, dst_rel):
        nonlocal dup_done
        with open(os.path.join(root, src_rel), "rb") as f:
            content = f.read()
        write_file(os.path.join(root, dst_rel), content)
        entries.append((dst_rel, len(content), "dup"))
        dup_done += len(content)

    for rel, size in src:  # a full backup copy of the source tree
        if dup_done > dup_budget * 0.35:
            break
        dup(rel, "home/user/backup/" + rel[len("home/user/"):])
    for rel, size in libs:  # vendored copies of libraries in two app versions
        if dup_done > dup_budget * 0.75:
            break
        base = os.path.basename(rel)
        dup(rel, f"opt/app-1.0/lib/{base}")
        dup(rel, f"opt/app-1.1/lib/{base}")
    for rel, size in media[:3]:  # photos copied to the backup folder
        if dup_done > dup_budget * 0.9:
            break
        dup(rel, "home/user/backup/" + rel[len("home/user/"):])
    for rel, size in docs:
        if dup_done > dup_budget:
            break
        dup(rel, "srv/www/" + rel)

    # Some config files and an ESP payload directory (outside the ext4 root).
    for n in range(200):
        emit(f"etc/conf{n // 20}/file{n}.conf", "text", r.randint(100, 6000))

    # Fixed timestamps for reproducible filesystems.
    ts = 1767225600  # 2026-01-01T00:00:00Z
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (ts, ts), follow_symlinks=False)
    os.utime(root, (ts, ts))
    with open(manifest, "w") as f:
        for rel, size, kind in entries:
            f.write(f"/{rel}\t{size}\t{kind}\n")
    total = sum(s for _, s, _ in entries)
    by = {}
    for _, s, k in entries:
        by[k] = by.get(k, 0) + s
    print(json.dumps({"files": len(entries), "bytes": total, "by_kind": by}))


def oldfill(img, seed, start, length):
    g = Gen(seed)
    r = random.Random(f"{seed}-old-{start}")
    kinds = ["text", "log", "bin", "rand", "zero"]
    weights = [0.25, 0.15, 0.15, 0.20, 0.25]
    fd = os.open(img, os.O_WRONLY)
    try:
        pos = start
        end = start + length
        k = 0
        while pos < end:
            ln = min(end - pos, max(16, int(lognormal_size(r, 64 * KiB, 16 * MiB)) // BLOCK) * BLOCK)
            kind = r.choices(kinds, weights)[0]
            if kind != "zero":
                buf = g.data(kind, f"old{start}-{k}", ln)
                os.pwrite(fd, buf, pos)
            pos += ln
            k += 1
    finally:
        os.close(fd)


def stream(kind, seed, n):
    g = Gen(seed)
    out = sys.stdout.buffer
    k = 0
    while n > 0:
        ln = min(n, 8 * MiB)
        out.write(g.data(kind, f"stream{k}", ln))
        n -= ln
        k += 1


def debugfs_blocks(img, part_off, paths):
    """Physical block numbers (fs blocks) of each path's data, via one
    debugfs run. debugfs "blocks" also lists the extent tree's own blocks
    (of files with more than four extents): "dump_extents -n" names those,
    and they are left out, so that a mutation never overwrites metadata."""
    cmds = "".join(f'blocks "{p}"\ndump_extents -n "{p}"\n' for p in paths)
    res = subprocess.run(["debugfs", "-f", "-", f"{img}?offset={part_off}"],
                         input=cmds.encode(), capture_output=True, check=True)
    out, tree = {}, {}
    cur, cmd = None, None
    node = re.compile(r"^\s*\d+/\s*\d+\s+\d+/\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)\s")
    for line in res.stdout.decode(errors="replace").splitlines():
        if line.startswith("debugfs:"):
            parts = line.split(None, 2)
            cmd = parts[1] if len(parts) > 1 else None
            rest = line.split(None, 3) if cmd == "dump_extents" else parts
            cur = rest[-1].strip().strip('"') if len(rest) > 2 else None
            continue
        if cur is None or not line.strip():
            continue
        if cmd == "blocks":
            out.setdefault(cur, []).extend(int(x) for x in line.split() if x.isdigit())
        elif cmd == "dump_extents":
            m = node.match(line)
            if m:
                tree.setdefault(cur, set()).add(int(m.group(1)))
    return {p: [b for b in bl if b not in tree.get(p, ())] for p, bl in out.items()}


def mutate(img, seed, part_off, manifest, fraction):
    """Overwrite ~fraction of the image, inside file data blocks: many single
    4 KiB blocks plus a few contiguous runs. New content matches the file kind
    (text gets new text, random gets new random bytes)."""
    g = Gen(seed)
    r = random.Random(f"{seed}-mutate")
    size = os.path.getsize(img)
    target = int(size * fraction) // BLOCK
    files = []
    with open(manifest) as f:
        for line in f:
            p, s, k = line.rstrip("\n").split("\t")
            if int(s) >= BLOCK and k != "sparse":
                files.append((p, int(s), k))
    files.sort()
    # Pick candidate files, weighted by size (bigger files get more writes):
    # 1500, or as many more as hold four times the blocks to change (on big
    # disks 1500 files held fewer blocks than the target, and the loops
    # below searched for unchanged blocks that did not exist).
    r.shuffle(files)
    count, held = 0, 0
    while count < len(files) and (count < 1500 or held < 4 * target * BLOCK):
        held += files[count][1]
        count += 1
    chosen = files[:count]
    blocks = debugfs_blocks(img, part_off, [p for p, _, _ in chosen])
    kind_of = {p: k for p, _, k in chosen}
    cands = [(p, b) for p in sorted(blocks) for b in blocks[p]]
    if not cands:
        raise SystemExit("mutate: no file blocks found (is the manifest for this image?)")
    runs_target = int(target * 0.80)
    singles_target = target - runs_target
    changed = set()
    plan = []  # (fs_block, kind)
    # Contiguous runs: pick big files, overwrite a run of consecutive file blocks.
    big = sorted(((p, bl) for p, bl in blocks.items() if len(bl) >= 64), key=lambda x: x[0])
    runs = 0
    while runs_target > 0 and big:
        p, bl = big[r.randrange(len(big))]
        ln = min(len(bl), r.randint(64, 1024), runs_target)
        st = r.randrange(0, len(bl) - ln + 1)
        for b in bl[st:st + ln]:
            if b not in changed:
                changed.add(b)
                plan.append((b, kind_of.get(p, "bin")))
                runs_target -= 1
        runs += 1
    singles_target = min(singles_target, len(set(b for _, b in cands) - changed))
    while singles_target > 0:
        p, b = cands[r.randrange(len(cands))]
        if b in changed:
            continue
        changed.add(b)
        plan.append((b, kind_of.get(p, "bin")))
        singles_target -= 1
    plan.sort()
    fd = os.open(img, os.O_WRONLY)
    ideal = []
    kmap = {"text": "text", "log": "log", "code": "code", "bin": "bin",
            "db": "bin", "rand": "rand", "dup": "text"}
    for i, (b, k) in enumerate(plan):
        data = g.data(kmap.get(k, "bin"), f"mut-{b}", BLOCK)
        os.pwrite(fd, data, part_off + b * BLOCK)
        ideal.append(data)
    os.close(fd)
    blob = b"".join(ideal)
    z = subprocess.run(["zstd", "-3", "-q", "-c"], input=blob, capture_output=True, check=True)
    print(json.dumps({"blocks_changed": len(plan), "bytes_changed": len(plan) * BLOCK,
                      "runs": runs, "changed_bytes_zstd3": len(z.stdout)}))


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        return 2
    if a[0] == "populate":
        populate(a[1], a[2], a[3], int(a[4]), int(a[5]))
    elif a[0] == "oldfill":
        oldfill(a[1], a[2], int(a[3]), int(a[4]))
    elif a[0] == "stream":
        stream(a[1], a[2], int(a[3]))
    elif a[0] == "mutate":
        mutate(a[1], a[2], int(a[3]), a[4], float(a[5]))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
