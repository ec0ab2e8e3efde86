#!/usr/bin/env python3
"""Checks which exit probe `spanprobe symbols --json` chose, and why, and
that the live process carries exactly those probes.

  check_exits.py symbols SYMBOLS_JSON NAME=MODE[:REASON_REGEX] ...
      every attachable match named NAME (a glob over the demangled name)
      has exit_probe MODE (uretprobe | retsites) and an exit_reason
      matching REASON_REGEX; every NAME must match something
  check_exits.py live PID CHOSEN_JSON RETSITES_JSON
      while attached: where CHOSEN_JSON (what was attached) says
      uretprobe, the ret sites RETSITES_JSON (`--exit-probe retsites` of
      the same process) lists hold their original bytes (no int3: nothing
      rewrites the code the unwinder could see as probed), and every
      entry probe holds int3
"""
import fnmatch
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "stress"))
from probe_bytes import mappings, vaddr  # noqa: E402


def matches(path):
    with open(path) as f:
        j = json.load(f)
    out = [m for p in j["patterns"] for m in p.get("matches", []) if m.get("attachable")]
    out += [m for m in j.get("carriers", []) if m.get("attachable")]
    return out


def check_symbols(path, specs):
    ms = matches(path)
    bad = 0
    for spec in specs:
        name, _, rest = spec.partition("=")
        mode, _, reason = rest.partition(":")
        hit = [m for m in ms if fnmatch.fnmatchcase(m["name"], name)]
        if not hit:
            print("   FAIL: nothing named %s in %s" % (name, path))
            bad += 1
        for m in hit:
            why = m.get("exit_reason") or ""
            if m["exit_probe"] != mode or (reason and not re.search(reason, why)):
                print("   FAIL: %s: exit %s (%s), expected %s (%s)"
                      % (m["name"], m["exit_probe"], why, mode, reason))
                bad += 1
        if hit and not bad:
            print("   %s: exit %s: %s" % (name, mode, hit[0].get("exit_reason")))
    return 1 if bad else 0


def read_byte(mem, maps, obj, off):
    va = vaddr(maps, obj, off)
    if va is None:
        return None
    mem.seek(va)
    return mem.read(1)


def check_live(pid, chosen, retsites):
    maps = mappings(pid)
    uret = {(m["object"], m["offset"]) for m in matches(chosen) if m["exit_probe"] == "uretprobe"}
    entries = [(m["object"], m["probe_offset"]) for m in matches(chosen)]
    sites = [(m["object"], s) for m in matches(retsites) if (m["object"], m["offset"]) in uret
             for s in m["exit_sites"]]
    if not uret or not sites:
        print("   FAIL: no uretprobe exit to check (%d functions, %d ret sites)"
              % (len(uret), len(sites)))
        return 1
    bad = []
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for obj, off in entries:
            if read_byte(mem, maps, obj, off) != b"\xcc":
                bad.append("no int3 at the entry probe %s+%#x" % (obj, off))
        for obj, off in sites:
            with open("/proc/%d/root%s" % (pid, obj), "rb") as f:
                f.seek(off)
                disk = f.read(1)
            if read_byte(mem, maps, obj, off) != disk:
                bad.append("ret site %s+%#x is probed" % (obj, off))
    for b in bad[:10]:
        print("   FAIL: " + b)
    if not bad:
        print("   live: %d entry probes hold int3; the %d ret sites of the %d functions "
              "ended by uretprobes are untouched" % (len(entries), len(sites), len(uret)))
    return 1 if bad else 0


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "symbols":
        return check_symbols(sys.argv[2], sys.argv[3:])
    if len(sys.argv) == 5 and sys.argv[1] == "live":
        return check_live(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
