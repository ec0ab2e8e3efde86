#!/usr/bin/env python3
"""Splits a dump by process life: the spans of each query go to the life
whose pid and start time (to the clock tick) its block header gives.
Two lives of one pid (a reused pid) are told apart only by that header.

  split_lives.py DUMP.txt DUMP.jsonl OUTDIR NAME:PID:TICKS...

TICKS: the life's start time from its /proc/PID/stat. Writes
OUTDIR/NAME.jsonl per life; exits 1 naming the queries under a header
that is no life's (a start time of 0, or another process's)."""
import collections
import json
import re
import sys

from check_storm import wall_of_ticks


def query_blocks(path):
    """(pid, start) of the block of each query, in the dump's order: query
    ids are per process, so two lives may both have a query 0, and the
    JSON dump lists the queries in the same order."""
    head, out = None, []
    hpat = re.compile(r"^block: pid (\d+) exe .* started (\S+)")
    qpat = re.compile(r"^query (\d+) pid (\d+) ")
    with open(path) as f:
        for line in f:
            m = hpat.match(line)
            if m:
                head = (int(m.group(1)), m.group(2))
                continue
            m = qpat.match(line)
            if m:
                out.append((int(m.group(1)), head))
    return out


def main():
    txt, js, outdir = sys.argv[1:4]
    lives = {}
    for arg in sys.argv[4:]:
        name, pid, ticks = arg.split(":")
        lives[(int(pid), wall_of_ticks(int(ticks)))] = name
    blocks = query_blocks(txt)
    by_life, stray = collections.defaultdict(list), collections.Counter()
    k, qid, head = -1, None, None
    with open(js) as f:
        for line in f:
            if not line.strip():
                continue
            s = json.loads(line)
            if s["query_id"] != qid:
                k, qid = k + 1, s["query_id"]
                head = blocks[k][1] if k < len(blocks) and blocks[k][0] == qid else None
            if head in lives:
                by_life[lives[head]].append(line)
            else:
                stray[head] += 1
    for name in lives.values():
        with open("%s/%s.jsonl" % (outdir, name), "w") as f:
            f.writelines(by_life[name])
    if stray:
        print("spans under headers of no life: %s (lives: %s)" % (dict(stray), lives))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
