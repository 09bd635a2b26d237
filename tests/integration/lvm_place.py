#!/usr/bin/env python3
"""lvm_place.py - used by t_layout_lvm.sh: where LVM says each LV lies.

Reads `lvs --segments` and `pvs` reports (JSON, from lvm2 itself) and the
loop device -> disk offset map, and then:
  layout LVS PVS LOOPS          prints {lv: [[start_extent, extent_count,
                                stripe_size_bytes, [disk offsets...]], ...]}
  put LAYOUT DISK LV FILE       writes FILE (an LV's content) into DISK
  get LAYOUT DISK LV FILE SIZE  reads an LV's SIZE bytes out of DISK
"""
import json, sys

def layout(lvs_json, pvs_json, loops):
    lm = dict(x.split("=") for x in loops.split(","))
    pvs = {p["pv_name"]: int(p["pe_start"].rstrip("B")) for p in json.loads(pvs_json)["report"][0]["pv"]}
    es = None
    out = {}
    for s in json.loads(lvs_json)["report"][0]["seg"]:
        es = int(s["vg_extent_size"].rstrip("B"))
        offs = []
        for r in s["seg_pe_ranges"].split():
            dev, rng = r.rsplit(":", 1)
            first = int(rng.split("-")[0])
            offs.append(int(lm[dev]) + pvs[dev] + first * es)
        out.setdefault(s["lv_name"], []).append(
            [int(s["seg_start_pe"]), int(s["seg_size_pe"]), int(s["stripe_size"].rstrip("B")), offs])
    for v in out.values():
        v.sort()
    return {"extent_size": es, "lvs": out}

def pieces(lay, lv):
    """(lv offset, disk offset, length) of every stripe chunk."""
    es = lay["extent_size"]
    for start, count, ss, offs in lay["lvs"][lv]:
        n = len(offs)
        base = start * es
        if n == 1:
            yield base, offs[0], count * es
            continue
        for c in range(count * es // ss):
            yield base + c * ss, offs[c % n] + (c // n) * ss, ss

def main():
    cmd = sys.argv[1]
    if cmd == "layout":
        print(json.dumps(layout(open(sys.argv[2]).read(), open(sys.argv[3]).read(), sys.argv[4])))
        return
    lay = json.load(open(sys.argv[2]))
    with open(sys.argv[3], "r+b") as d:
        if cmd == "put":
            with open(sys.argv[5], "rb") as f:
                data = f.read()
            for lo, do, n in pieces(lay, sys.argv[4]):
                if lo < len(data):
                    d.seek(do)
                    d.write(data[lo:lo + n])
        else:
            size = int(sys.argv[6])
            buf = bytearray(size)
            for lo, do, n in pieces(lay, sys.argv[4]):
                if lo < size:
                    d.seek(do)
                    k = min(n, size - lo)
                    buf[lo:lo + k] = d.read(k)
            with open(sys.argv[5], "wb") as f:
                f.write(buf)

main()
