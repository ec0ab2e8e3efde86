#!/usr/bin/env python3
"""check_version.py --text FILE --json FILE --version V

Checks `spanprobe --version` (text) and `--version --json` against what
the machine says independently: the VERSION, the libbpf the build
linked (pkg-config libbpf), task storage and bpf_probe_write_user from `bpftool
feature probe kernel` (which loads its own programs), sessions (6.13),
uprobe_multi (6.6) and PIDFD_THREAD (6.9) from the kernel's version."""
import argparse
import json
import platform
import re
import subprocess
import sys

LABELS = {"uprobe_session": "uprobe session links", "uprobe_multi": "uprobe_multi links",
          "task_storage": "BPF task storage", "pidfd_thread": "PIDFD_THREAD",
          "bpf_write_user": "BPF may write user memory"}


def kernel_at_least(major, minor):
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(m.group(1)), int(m.group(2))) >= (major, minor)


def truth():
    probe = json.loads(subprocess.run(["bpftool", "feature", "probe", "kernel", "-j"],
                                      capture_output=True, text=True, check=True).stdout)
    kprobe_helpers = probe["helpers"].get("kprobe_available_helpers", [])
    return {
        "uprobe_session": kernel_at_least(6, 13),
        "uprobe_multi": kernel_at_least(6, 6),
        "task_storage": bool(probe["map_types"].get("have_task_storage_map_type")),
        "pidfd_thread": kernel_at_least(6, 9),
        "bpf_write_user": "bpf_probe_write_user" in kprobe_helpers,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--version", required=True)
    a = ap.parse_args()
    text = open(a.text).read().splitlines()
    doc = json.load(open(a.json))
    bad = []
    if not text or not re.match(r"spanprobe %s( |$)" % re.escape(a.version), text[0]):
        bad.append("first line %r is not 'spanprobe %s...'" % (text[:1], a.version))
    if doc.get("version") != a.version:
        bad.append("JSON version %r" % doc.get("version"))
    lib = subprocess.run(["pkg-config", "--modversion", "libbpf"], capture_output=True,
                         text=True).stdout.strip()
    want_lib = ".".join(lib.split(".")[:2])
    if doc.get("libbpf") != want_lib or ("libbpf " + want_lib) not in text:
        bad.append("libbpf %r / text %r, pkg-config says %s" % (doc.get("libbpf"), text[1:2], lib))
    if doc.get("kernel") != platform.release():
        bad.append("kernel %r, uname says %s" % (doc.get("kernel"), platform.release()))
    want = truth()
    for key, yes in want.items():
        got = doc["features"].get(key, {}).get("available")
        line = [l for l in text if l.strip().startswith(LABELS[key])]
        word = "yes" if yes else "no"
        if got is not yes:
            bad.append("%s: JSON says %r, the machine says %s" % (key, got, word))
        elif len(line) != 1 or line[0][len("  ") + len(LABELS[key]):].split()[0] != word:
            bad.append("%s: text line %r, expected %s" % (key, line, word))
        else:
            print("   %-16s %-3s (%s)" % (key, word, doc["features"][key]["detail"]))
    for b in bad:
        print("   FAIL: --version: " + b)
    sys.exit(1 if bad else 0)


main()
