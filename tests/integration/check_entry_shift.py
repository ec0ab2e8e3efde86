#!/usr/bin/env python3
"""Checks entry probes moved past single-stepped instructions (issue 11,
part 3) on a build without frame pointers (qserver-nofp: short functions
start with `sub $8,%rsp`).

  check_entry_shift.py symbols SYMBOLS_JSON BINARY MIN
      at least MIN attachable functions start with `sub $N,%rsp` in
      BINARY; each has its probe moved (entry_shift > 0, probe_offset =
      offset + entry_shift) onto an emulated instruction, with
      entry_sp_delta = N
  check_entry_shift.py kept SYMBOLS_JSON BINARY
      with uretprobe exits the same functions keep their probe at the
      start (a uretprobe hijacks the word at the stack pointer of its
      hit): entry_shift 0 wherever the bytes before the first emulated
      instruction move the stack pointer
  check_entry_shift.py live SYMBOLS_JSON PID
      while attached: the skipped bytes of each moved probe are intact in
      the process (probe_bytes.py checks the int3 at probe_offset)
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "stress"))
from probe_bytes import mappings, vaddr  # noqa: E402


def matches(path):
    with open(path) as f:
        j = json.load(f)
    return [m for p in j["patterns"] for m in p.get("matches", []) if m.get("attachable")]


def sub_rsp_imm(code):
    """N of a leading `sub $N,%rsp` (48 83 ec ib / 48 81 ec id), else None."""
    if code[:3] == b"\x48\x83\xec":
        return code[3]
    if code[:3] == b"\x48\x81\xec":
        return int.from_bytes(code[3:7], "little")
    return None


def check_symbols(path, binary, least):
    with open(binary, "rb") as f:
        code = f.read()
    subs = [(m, sub_rsp_imm(code[m["offset"]:m["offset"] + 8])) for m in matches(path)]
    subs = [(m, n) for m, n in subs if n is not None]
    bad = [m["name"] for m, n in subs
           if not m["entry_shift"] or m["probe_offset"] != m["offset"] + m["entry_shift"]
           or m["entry_probe"] != "emulated" or m["entry_sp_delta"] != n]
    if len(subs) < least or bad:
        print("   FAIL: %d functions start with sub $N,%%rsp (expected >= %d); not moved "
              "onto an emulated instruction with sp delta N: %s"
              % (len(subs), least, ", ".join(bad) or "-"))
        return 1
    m = subs[0][0]
    print("   %d functions start with sub $N,%%rsp; all probed further in (e.g. %s at +%d, "
          "`%s`, sp %d bytes below the slot)" % (len(subs), m["name"], m["entry_shift"],
                                               m["entry_insn"], m["entry_sp_delta"]))
    return 0


def check_kept(path, binary):
    with open(binary, "rb") as f:
        code = f.read()
    subs = [m for m in matches(path) if sub_rsp_imm(code[m["offset"]:m["offset"] + 8])]
    bad = [m["name"] for m in subs if m["entry_shift"] or m["entry_sp_delta"]]
    if not subs or bad:
        print("   FAIL: moved although the exit is a uretprobe: %s" % (", ".join(bad) or "-"))
        return 1
    print("   with uretprobe exits the %d probes stay at the start" % len(subs))
    return 0


def check_live(path, pid):
    maps = mappings(pid)
    moved = [m for m in matches(path) if m["entry_shift"]]
    if not moved:
        print("   FAIL: no moved probe to check")
        return 1
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for m in moved:
            with open("/proc/%d/root%s" % (pid, m["object"]), "rb") as f:
                f.seek(m["offset"])
                disk = f.read(m["entry_shift"])
            mem.seek(vaddr(maps, m["object"], m["offset"]))
            if mem.read(m["entry_shift"]) != disk:
                print("   FAIL: %s: the bytes before its moved probe are not intact" % m["name"])
                return 1
    print("   live: the %d skipped prologues are intact" % len(moved))
    return 0


def main():
    a = sys.argv
    if len(a) == 5 and a[1] == "symbols":
        return check_symbols(a[2], a[3], int(a[4]))
    if len(a) == 4 and a[1] == "kept":
        return check_kept(a[2], a[3])
    if len(a) == 4 and a[1] == "live":
        return check_live(a[2], int(a[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
