#!/usr/bin/env python3
"""Fails when user/ stops being layered (run by `make check-layers`, which
`make test` runs).

user/ is one folder per pipeline stage, lowest first (LAYERS). A file may
use files of its own folder and of the folders below it, never of a folder
above: lower layers do not call back up. Inside the folders listed in
ACYCLIC (the Rust async analysis) no file may use a file that, directly or
through others, uses it.

"Uses" is read from two sources, so that neither a forgotten include nor an
undeclared call hides a dependency:
  - #include "folder/name.h" lines of user/*/*.[ch] (name.h belongs to the
    unit folder/name, as name.c does);
  - the object files of the build: a symbol an object leaves undefined
    (nm -u) and another object defines (nm -g --defined-only).

usage: tools/check-layers.py [BUILD_DIR]    (default: build)
"""
import os
import re
import subprocess
import sys

# The data path: symbols -> (Rust async analysis) -> resolution -> attach
# -> events and spans -> blocks and text -> sinks -> statistics -> CLI.
LAYERS = ["base", "symbols", "dwarf", "resolve", "attach", "spans",
          "output", "sinks", "stats", "cli"]
ACYCLIC = ["dwarf"]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def fail_usage(msg):
    print("check-layers: " + msg, file=sys.stderr)
    sys.exit(2)


def sources(root):
    """unit ("folder/name") -> list of its files (name.c, name.h)."""
    units = {}
    for folder in sorted(os.listdir(root)):
        path = os.path.join(root, folder)
        if not os.path.isdir(path):
            continue
        for f in sorted(os.listdir(path)):
            if f.endswith((".c", ".h")):
                units.setdefault(folder + "/" + f[:-2], []).append(
                    os.path.join(path, f))
    return units


def include_edges(root, units):
    """(from_unit, to_unit) -> why, from the #include lines."""
    edges = {}
    for unit, files in units.items():
        for path in files:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            for m in INCLUDE.finditer(text):
                target = m.group(1)
                if not os.path.isfile(os.path.join(root, target)):
                    continue  # bpf/ or build/ headers: not user/
                to = target[:-2] if target.endswith((".h", ".c")) else target
                line = text.count("\n", 0, m.start()) + 1
                if to != unit:
                    edges.setdefault((unit, to), "%s:%d includes %s"
                                     % (path, line, target))
    return edges


def nm(args, obj):
    try:
        out = subprocess.run(["nm"] + args + [obj], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        fail_usage("nm %s: %s" % (obj, e))
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def symbol_edges(build, units):
    """(from_unit, to_unit) -> why, from the objects' symbol tables."""
    defined, undefined = {}, {}
    for unit, files in units.items():
        if not any(f.endswith(".c") for f in files):
            continue
        obj = os.path.join(build, "user", unit + ".o")
        if not os.path.isfile(obj):
            fail_usage("%s missing: build first (make all)" % obj)
        for sym in nm(["-g", "--defined-only"], obj):
            defined.setdefault(sym, unit)
        undefined[unit] = nm(["-u"], obj)
    edges = {}
    for unit, syms in undefined.items():
        for sym in syms:
            to = defined.get(sym)
            if to and to != unit:
                edges.setdefault((unit, to), "%s.o calls %s (defined in %s.o)"
                                 % (unit, sym, to))
    return edges


def cycles(nodes, succ):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    root = "user"
    if not os.path.isdir(root):
        fail_usage("run from the top of the tree (no user/ here)")
    units = sources(root)
    errors = []

    rank = {name: i for i, name in enumerate(LAYERS)}
    for f in sorted(os.listdir(root)):
        if f.endswith((".c", ".h")):
            errors.append("user/%s: outside every stage folder" % f)
    for folder in sorted({u.split("/")[0] for u in units}):
        if folder not in rank:
            errors.append("user/%s/: a folder the layer order (LAYERS in %s) "
                          "does not name" % (folder, sys.argv[0]))

    # ar keeps members by file name: two name.c in different folders
    # would silently leave one out of the library
    seen = {}
    for unit in sorted(units):
        name = unit.split("/")[1]
        if name in seen:
            errors.append("user/%s and user/%s: one name in two folders"
                          % (seen[name], unit))
        seen.setdefault(name, unit)

    edges = include_edges(root, units)
    for k, why in symbol_edges(build, units).items():
        edges.setdefault(k, why)

    for (a, b), why in sorted(edges.items()):
        fa, fb = a.split("/")[0], b.split("/")[0]
        if fa in rank and fb in rank and rank[fb] > rank[fa]:
            errors.append("%s/ uses %s/, a layer above it: %s" % (fa, fb, why))

    for folder in ACYCLIC:
        succ = {}
        for (a, b) in edges:
            if a.startswith(folder + "/") and b.startswith(folder + "/"):
                succ.setdefault(a, []).append(b)
        nodes = [u for u in units if u.startswith(folder + "/")]
        for comp in cycles(nodes, succ):
            inside = set(comp)
            why = [edges[(a, b)] for (a, b) in sorted(edges)
                   if a in inside and b in inside]
            errors.append("user/%s/: files that call each other in a circle: "
                          "%s\n    %s" % (folder, ", ".join(comp),
                                          "\n    ".join(why)))

    for e in errors:
        print("check-layers: " + e, file=sys.stderr)
    if errors:
        print("check-layers: FAILED (%d problems); layers, lowest first: %s"
              % (len(errors), " < ".join(LAYERS)), file=sys.stderr)
        return 1
    print("check-layers: %d files in %d layers (%s), %d dependencies, "
          "none upward; no cycle in %s"
          % (sum(len(f) for f in units.values()), len(LAYERS), " < ".join(LAYERS), len(edges),
             ", ".join(f + "/" for f in ACYCLIC)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
