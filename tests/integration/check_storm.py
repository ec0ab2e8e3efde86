#!/usr/bin/env python3
"""Checks `spanprobe dump --json` of a traced fork storm against the pids
forkstorm (tests/fixtures/forkstorm.c) recorded: every child has exactly
one query, storm_query with its storm_step calls, under its own pid;
the children that exited inside their query have it flagged abnormal and
cut after the first step; no span belongs to any other process.

  check_storm.py --spans DUMP.jsonl --pids PIDS [--subset] [--blocks DUMP.txt]

--subset: children may be missing (--max-processes skipped them), but
each child that is present must be whole. --blocks: the text dump, whose
block headers must give each child's start time as its /proc/PID/stat
said (to the clock tick), never 0, though most were gone before
spanprobe read their first record. Prints one line, exits 1 on a
difference."""
import argparse
import datetime
import os
import re
import collections
import json
import sys


def block_starts(path):
    """pid -> the start times its block headers give (text dump)."""
    out = collections.defaultdict(set)
    pat = re.compile(r"^block: pid (\d+) exe .* started (\S+)  ")
    with open(path) as f:
        for line in f:
            m = pat.match(line)
            if m:
                out[int(m.group(1))].add(m.group(2))
    return out


def wall_of_ticks(ticks):
    """A /proc/PID/stat start time as `dump` prints it (UTC, us)."""
    with open("/proc/stat") as f:
        btime = next(int(l.split()[1]) for l in f if l.startswith("btime "))
    hz = os.sysconf("SC_CLK_TCK")
    ns = btime * 10**9 + ticks * 10**9 // hz
    t = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (ns % 10**9 // 1000)


def check_starts(path, kids, starts, by_pid):
    heads, errs = block_starts(path), []
    for pid in kids:
        if not by_pid.get(pid):
            continue
        want = wall_of_ticks(starts[pid])
        if heads.get(pid) != {want}:
            errs.append("child %d: block headers say started %s, its /proc/PID/stat %s"
                        % (pid, sorted(heads.get(pid, [])), want))
    return errs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spans", required=True)
    p.add_argument("--pids", required=True)
    p.add_argument("--subset", action="store_true")
    p.add_argument("--blocks")
    a = p.parse_args()
    kids, starts = {}, {}
    with open(a.pids) as f:
        for line in f:
            pid, how, ticks = line.split()
            kids[int(pid)] = how
            starts[int(pid)] = int(ticks)
    by_pid = collections.defaultdict(list)
    with open(a.spans) as f:
        for line in f:
            if line.strip():
                s = json.loads(line)
                by_pid[s["pid"]].append(s)
    errs = []
    for pid in by_pid:
        if pid not in kids:
            errs.append("spans of pid %d, which is no child of the storm" % pid)
    for pid, how in kids.items():
        spans = by_pid.get(pid, [])
        if not spans:
            if not a.subset:
                errs.append("child %d (%s): no span" % (pid, how))
            continue
        roots = [s for s in spans if "root" in s["flags"]]
        steps = sorted((s for s in spans if s["name"] == "storm_step"), key=lambda s: s["begin_ns"])
        if len(roots) != 1 or roots[0]["name"] != "storm_query":
            errs.append("child %d: %d roots %s" % (pid, len(roots), [r["name"] for r in roots]))
            continue
        r = roots[0]
        want_abn = how == "cut"
        if r["abnormal"] != want_abn:
            errs.append("child %d (%s): root abnormal=%s" % (pid, how, r["abnormal"]))
        if len(steps) != 2 or any(s["parent_span_id"] != r["span_id"] for s in steps):
            errs.append("child %d: %d storm_step spans under its root" % (pid, len(steps)))
        elif [s["abnormal"] for s in steps] != [False, want_abn]:
            errs.append("child %d (%s): steps abnormal %s" % (pid, how, [s["abnormal"] for s in steps]))
        if len(spans) != 3:
            errs.append("child %d: %d spans, expected 3" % (pid, len(spans)))
    if a.blocks:
        errs += check_starts(a.blocks, kids, starts, by_pid)
    seen = sum(1 for pid in kids if by_pid.get(pid))
    if errs:
        print("check_storm: FAIL: %d differences, first: %s" % (len(errs), "; ".join(errs[:5])))
        return 1
    print("check_storm: OK: %d of %d children, each one query of 3 spans under its own pid (%d cut inside their query)%s"
          % (seen, len(kids), sum(1 for pid, h in kids.items() if h == "cut" and by_pid.get(pid)),
             ", its start time in its block headers" if a.blocks else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
