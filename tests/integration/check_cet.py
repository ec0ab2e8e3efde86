#!/usr/bin/env python3
"""Checks spanprobe's entry probes on a CET build (every function starts
with endbr64, f3 0f 1e fa).

  check_cet.py symbols SYMBOLS_JSON BINARY
      every attachable function starts with endbr64 in BINARY, and
      `spanprobe symbols --json` puts its probe 4 bytes in
      (entry_shift 4, probe_offset = offset + 4) on an emulated
      instruction, not flagged expensive
  check_cet.py live SYMBOLS_JSON PID
      while attached: the endbr64 at each entry is intact in the
      process's memory (the breakpoint is elsewhere: probe_bytes.py
      checks that probe_offset holds int3)
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "stress"))
from probe_bytes import mappings, vaddr  # noqa: E402

ENDBR64 = bytes.fromhex("f30f1efa")


def matches(path):
    with open(path) as f:
        j = json.load(f)
    return [m for p in j["patterns"] for m in p.get("matches", []) if m.get("attachable")]


def check_symbols(path, binary):
    ms = matches(path)
    with open(binary, "rb") as f:
        code = f.read()
    bad = [m["name"] for m in ms
           if code[m["offset"]:m["offset"] + 4] != ENDBR64 or m["entry_shift"] != 4
           or m["probe_offset"] != m["offset"] + 4 or m["entry_probe"] != "emulated"
           or m["expensive"]]
    if not ms or bad:
        print("   FAIL: not probed past endbr64 on an emulated instruction: %s"
              % (", ".join(bad) or "no function matched"))
        return 1
    print("   %d functions start with endbr64; all probed at +4 (`%s`, emulated)"
          % (len(ms), ms[0]["entry_insn"]))
    return 0


def check_live(path, pid):
    maps = mappings(pid)
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for m in matches(path):
            mem.seek(vaddr(maps, m["object"], m["offset"]))
            if mem.read(4) != ENDBR64:
                print("   FAIL: %s: the endbr64 at its entry is not intact" % m["name"])
                return 1
    return 0


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("symbols", "live"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "symbols":
        return check_symbols(sys.argv[2], sys.argv[3])
    return check_live(sys.argv[2], int(sys.argv[3]))


if __name__ == "__main__":
    sys.exit(main())
