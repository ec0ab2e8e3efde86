#!/usr/bin/env python3
"""Checks spanprobe's pruning advice against a fixture's ground truth.

  check_prune.py --truth T --advice A --syms S [--min-span 5ms] [--min-query 1s]

The advice (a rewritten symbol list) must prune exactly the non-root
functions of S's matches that never had a call of at least min-span inside
a query whose root lasted at least min-query, and nothing else: every
function that did must still be listed. Calls near a threshold may go
either way: check_spans.py's band (the thread's gaps around the fixture's
clock reads bound how much preemption can stretch what the tracer saw).
"""
import argparse
import fnmatch
import json
import re
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_spans import Truth, longest  # noqa: E402

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
    ap.add_argument("--margin", type=dur, default=dur("0us"))
    ap.add_argument("--tol-clock", type=dur, default=dur("100us"))
    ap.add_argument("--max-stall", type=dur, default=dur("50ms"))
    a = ap.parse_args()

    truth = [json.loads(l) for l in open(a.truth) if l.strip()]
    roots = {t["query"]: t for t in truth if t.get("query") is not None and t["depth"] == 0}
    # the band around each threshold as check_spans.py draws it: a call
    # must count when it reached the threshold even measured as short as
    # the clock error allows; it may count when the gaps of its thread
    # around its clock reads (preemption between a probe and the
    # fixture's clock read) let it reach it
    Truth(truth)  # sets each call's prev_ts and next_ts
    eps = a.tol_clock

    def must(t, threshold):
        return t["end_ns"] - t["begin_ns"] - 2 * eps >= threshold + a.margin

    def may(t, threshold):
        return longest(t, a) >= threshold

    slow = {q for q, r in roots.items() if must(r, a.min_query)}
    unsure_q = {q for q, r in roots.items() if q not in slow and may(r, a.min_query)}
    root_names = {r["name"] for r in roots.values()}
    must_keep, may_keep, seen = set(), set(), set()
    for t in truth:
        if t["name"].startswith("("):
            continue  # "(nap)", "(thread start)": clock reads, no call
        seen.add(t["name"])
        if t.get("query") is None or t["depth"] == 0:
            continue
        if t["query"] in slow and must(t, a.min_span):
            must_keep.add(t["name"])
        elif (t["query"] in slow or t["query"] in unsure_q) and may(t, a.min_span):
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
