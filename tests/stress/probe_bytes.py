#!/usr/bin/env python3
"""Are spanprobe's breakpoints in a process's code, or gone?

  probe_bytes.py PID SYMBOLS_JSON (--expect probed | --expect clean)

SYMBOLS_JSON is `spanprobe symbols -p PID -s SYMS --json`: every matched
function's entry offset and exit sites (file offsets in its object). For
each, the byte the process executes (/proc/PID/mem, at the address the
object is mapped at) is compared with the byte in the file
(/proc/PID/root/OBJECT). An active uprobe shows as int3 (0xcc) in the
process's copy of the page; after the probe is removed the original byte
is back.
  --expect probed   every probe point must be 0xcc (the positive control:
                    shows that this check can see a probe at all)
  --expect clean    every probe point must equal the file: nothing left
Exit status 0 if the expectation holds, 1 if not, 2 on bad input.
"""
import json
import sys


def mappings(pid):
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 6:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, int(parts[2], 16), parts[5].strip()))
    return out


def vaddr(maps, obj, off):
    for lo, hi, moff, path in maps:
        if path == obj and moff <= off < moff + (hi - lo):
            return lo + off - moff
    return None


def main():
    if len(sys.argv) != 5 or sys.argv[3] != "--expect" or sys.argv[4] not in ("probed", "clean"):
        print(__doc__, file=sys.stderr)
        return 2
    pid, expect = int(sys.argv[1]), sys.argv[4]
    with open(sys.argv[2]) as f:
        syms = json.load(f)
    points = []
    for p in syms.get("patterns", []):
        for m in p.get("matches", []):
            if not m.get("attachable"):
                continue
            entry = m.get("probe_offset", m["offset"])  # past endbr64 (CET)
            for off in [entry] + list(m.get("exit_sites") or []):
                points.append((m["name"], m["object"], off))
    if not points:
        print("probe_bytes: no attachable probe point in %s" % sys.argv[2], file=sys.stderr)
        return 2
    maps = mappings(pid)
    bad = []
    int3 = 0
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for name, obj, off in points:
            va = vaddr(maps, obj, off)
            if va is None:
                print("probe_bytes: %s (%s+%#x) is not mapped in pid %d" % (name, obj, off, pid),
                      file=sys.stderr)
                return 2
            mem.seek(va)
            live = mem.read(1)
            with open("/proc/%d/root%s" % (pid, obj), "rb") as f:
                f.seek(off)
                disk = f.read(1)
            int3 += live == b"\xcc"
            if expect == "probed" and live != b"\xcc":
                bad.append("%s at %s+%#x: %s, not int3" % (name, obj, off, live.hex()))
            if expect == "clean" and live != disk:
                bad.append("%s at %s+%#x: %s in memory, %s in the file" % (name, obj, off, live.hex(), disk.hex()))
    for b in bad[:20]:
        print("probe_bytes: " + b)
    print("probe_bytes: %d probe points, %d hold int3, %d not as expected (%s)"
          % (len(points), int3, len(bad), expect))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
