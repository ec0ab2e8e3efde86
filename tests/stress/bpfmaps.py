#!/usr/bin/env python3
"""The BPF maps a running spanprobe holds, and how full they are.

  bpfmaps.py PID            one line per map: name type id max_entries entries
  bpfmaps.py PID --json     the same as one JSON object keyed by map name
  bpfmaps.py PID --entries NAME   just the number of entries of map NAME
  bpfmaps.py PID --global NAME    the value of the BPF program's global
                            variable NAME (its .bss), e.g. stacks_open

Maps are found through the process's own file descriptors
(/proc/PID/fdinfo/N has a map_id line for every BPF map fd), so another
spanprobe running meanwhile cannot be mistaken for this one. Entries are
counted with `bpftool map dump` for hash maps (distinct keys); arrays
report max_entries.
Needs root (or CAP_SYS_ADMIN for bpftool). Exit status 2 if PID holds no
BPF map or bpftool fails.
"""
import json
import os
import subprocess
import sys


def map_ids(pid):
    ids = set()
    d = "/proc/%d/fdinfo" % pid
    for fd in os.listdir(d):
        try:
            with open(os.path.join(d, fd)) as f:
                for line in f:
                    if line.startswith("map_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            continue  # closed meanwhile
    return sorted(ids)


def bpftool(*args):
    out = subprocess.run(["bpftool", "--json"] + list(args), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else None


def describe(pid):
    maps = {}
    for mid in map_ids(pid):
        m = bpftool("map", "show", "id", str(mid))
        name = m.get("name") or "id%d" % mid
        info = {"id": mid, "type": m.get("type"), "max_entries": m.get("max_entries")}
        if "hash" in (m.get("type") or ""):
            # distinct keys: an iteration that races with deletions restarts
            # from the first key (get_next_key of a deleted key) and so may
            # list a key twice
            dump = bpftool("map", "dump", "id", str(mid)) or []
            info["entries"] = len({json.dumps(e.get("key"), sort_keys=True) for e in dump})
        else:
            info["entries"] = None
        maps[name] = info
    return maps


def global_value(pid, name):
    """A global of the BPF object, read through the .bss map's BTF; the
    per-thread stacks live in task storage, which cannot be listed, so
    the programs count them in globals."""
    for mid in map_ids(pid):
        m = bpftool("map", "show", "id", str(mid))
        if not (m.get("name") or "").endswith(".bss"):
            continue
        for e in bpftool("map", "dump", "id", str(mid)) or []:
            for var in e.get("formatted", {}).get("value", {}).get(".bss", []):
                if name in var:
                    return var[name]
    return None


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    pid = int(sys.argv[1])
    if sys.argv[2:3] == ["--global"]:
        try:
            v = global_value(pid, sys.argv[3])
        except (OSError, subprocess.CalledProcessError, ValueError) as e:
            print("bpfmaps: pid %d: %s" % (pid, e), file=sys.stderr)
            return 2
        if v is None:
            print("bpfmaps: pid %d has no BPF global named %s" % (pid, sys.argv[3]),
                  file=sys.stderr)
            return 2
        print(v)
        return 0
    try:
        maps = describe(pid)
    except (OSError, subprocess.CalledProcessError, ValueError) as e:
        print("bpfmaps: pid %d: %s" % (pid, e), file=sys.stderr)
        return 2
    if not maps:
        print("bpfmaps: pid %d holds no BPF map" % pid, file=sys.stderr)
        return 2
    if sys.argv[2:3] == ["--json"]:
        print(json.dumps(maps, sort_keys=True))
    elif sys.argv[2:3] == ["--entries"]:
        m = maps.get(sys.argv[3])
        if m is None or m["entries"] is None:
            print("bpfmaps: pid %d has no hash map named %s (maps: %s)"
                  % (pid, sys.argv[3], " ".join(sorted(maps))), file=sys.stderr)
            return 2
        print(m["entries"])
    else:
        for name, m in sorted(maps.items()):
            print("%-12s %-14s id %-6d max_entries %-9s entries %s"
                  % (name, m["type"], m["id"], m["max_entries"],
                     "-" if m["entries"] is None else m["entries"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
