#!/usr/bin/env python3
"""Print, for each PID given, the first byte of the dynamic linker's
_dl_debug_state as that process sees it (0xcc: a uprobe's breakpoint is
in its memory), and the byte in the file. Used to check that attach
--exe hooks the rendezvous in the processes it traces only."""
import os
import subprocess
import sys


def symbol_value(path, name):
    out = subprocess.run(["readelf", "-Ws", "--dyn-syms", path], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[7].split("@")[0] == name and f[3] == "FUNC":
            return int(f[1], 16)
    sys.exit(f"ldso_hook_byte: {name} not in {path}")


def file_offset(path, vaddr):
    out = subprocess.run(["readelf", "-Wl", path], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            off, va, fsz = int(f[1], 16), int(f[2], 16), int(f[4], 16)
            if va <= vaddr < va + fsz:
                return vaddr - va + off
    sys.exit(f"ldso_hook_byte: {vaddr:#x} not in a segment of {path}")


def loader_of(pid):
    """(path, mapping start, its file offset) of every mapping of ld.so"""
    maps = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            p = line.split()
            if len(p) >= 6 and "/ld-linux" in p[5]:
                lo = int(p[0].split("-")[0], 16)
                hi = int(p[0].split("-")[1], 16)
                maps.append((p[5], lo, hi, int(p[2], 16)))
    if not maps:
        sys.exit(f"ldso_hook_byte: pid {pid} maps no dynamic linker")
    return maps


def main():
    for pid in sys.argv[1:]:
        maps = loader_of(pid)
        path = maps[0][0]
        off = file_offset(path, symbol_value(path, "_dl_debug_state"))
        with open(path, "rb") as f:
            f.seek(off)
            want = f.read(1)[0]
        for _, lo, hi, moff in maps:
            if moff <= off < moff + (hi - lo):
                with open(f"/proc/{pid}/mem", "rb") as m:
                    m.seek(lo + off - moff)
                    got = m.read(1)[0]
                print(f"{pid} {got:#04x} file {want:#04x}")
                break
        else:
            sys.exit(f"ldso_hook_byte: pid {pid}: _dl_debug_state not mapped")


main()
