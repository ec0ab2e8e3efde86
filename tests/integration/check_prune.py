#!/usr/bin/env python3
"""Checks spanprobe's pruning advice against a fixture's ground truth.

  check_prune.py --truth T --advice A --syms S [--min-span 5ms] [--min-query 1s]

The advice (a rewritten symbol list) must prune exactly the non-root
functions of S's matches that never had a call of at least min-span inside
a query whose root lasted at least min-query, and nothing else: every
function that did must still be listed. Calls that sit within --margin of
a threshold may go either way (the tracer measures at other instants).
"""
import argparse
import fnmatch
import json
import re
import sys

UNITS = {"ns": 1, "us": 1000, "ms": 10**6, "s": 10**9}


def dur(text):
    m = re.fullmatch(r"(\d+)(ns|us|ms|s)", text)
    if not m:
        raise argparse.ArgumentTypeError("bad duration " + text)
    return int(m.group(1)) * UNITS[m.group(2)]


def listed(path, names):
    """The names that the list's (uncommented) patterns still match."""
    pats = []
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line.startswith(("span ", "root ")):
            pats.append(line.split(None, 1)[1].strip())
    return {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in pats)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--truth", required=True)
    ap.add_argument("--advice", required=True)
    ap.add_argument("--syms", required=True)
    ap.add_argument("--min-span", type=dur, default=dur("5ms"))
    ap.add_argument("--min-query", type=dur, default=dur("1s"))
    ap.add_argument("--margin", type=dur, default=dur("500us"))
    a = ap.parse_args()

    truth = [json.loads(l) for l in open(a.truth) if l.strip()]
    roots = {t["query"]: t for t in truth if t.get("query") is not None and t["depth"] == 0}
    slow = {q for q, r in roots.items() if r["end_ns"] - r["begin_ns"] >= a.min_query + a.margin}
    unsure_q = {q for q, r in roots.items()
                if abs(r["end_ns"] - r["begin_ns"] - a.min_query) < a.margin}
    root_names = {r["name"] for r in roots.values()}
    must_keep, may_keep, seen = set(), set(), set()
    for t in truth:
        seen.add(t["name"])
        if t.get("query") is None or t["depth"] == 0:
            continue
        d = t["end_ns"] - t["begin_ns"]
        if t["query"] in slow and d >= a.min_span + a.margin:
            must_keep.add(t["name"])
        elif (t["query"] in slow or t["query"] in unsure_q) and d >= a.min_span - a.margin:
            may_keep.add(t["name"])

    kept = listed(a.advice, seen)
    errors = []
    for name in sorted(must_keep - kept):
        errors.append("pruned %s, which had spans >= min-span in slow queries" % name)
    for name in sorted(root_names - kept):
        errors.append("pruned the root %s" % name)
    for name in sorted((kept & seen) - must_keep - may_keep - root_names):
        errors.append("kept %s, which never reached min-span in a slow query" % name)
    if not must_keep:
        errors.append("vacuous: no function reached min-span in a slow query")
    if not (seen - must_keep - may_keep - root_names):
        errors.append("vacuous: nothing should have been pruned")
    for e in errors:
        print("check_prune: FAIL: " + e)
    if not errors:
        print("check_prune: OK: %d kept, %d pruned" % (len(kept & seen), len(seen - kept)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
