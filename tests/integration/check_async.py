#!/usr/bin/env python3
"""Checks spanprobe's spans of Rust futures (out-of-line polls) against
the rsqserver fixture's own ground truth.

  check_async.py --truth T --spans S --root-name R --span-name N [--span-name N2 ...]
                 [--min-span 5ms]

The output's roots are the task-root futures (one per query) that wrap
the truth's execute_query; each N is an async fn with an out-of-line poll
(a Box<dyn Future>'s, or a spawned task's: linked under the root through
the JoinHandle the task root holds).
Checks: one output root per truth query, enclosing it, first polled on
the thread of the truth's first statement; every truth N span
of at least min-span is present once, under the root of its own query,
at depth 1, with begin and end within --tol of the truth (the tracer
sees the first poll's entry and the last poll's return, the fixture its
first and last statement), or earlier (later) by up to the gap of the
truth's thread before (after) that statement more: preemption between a
probe and the statement (spanjson.py, thread_gaps); no output span that
the truth lacks; span ids unique, parents present.
"""
import argparse
import sys

from spanjson import begin_fits, dur, end_fits, load, thread_gaps, tree_errors


def check_name(a, name, truth, got, root_of, used, E):
    """Every truth span of name of at least min-span is present once."""
    want = [t for t in truth if t["name"] == name
            and t["end_ns"] - t["begin_ns"] >= a.min_span + a.tol]
    for t in want:
        cands = [s for s in got if s["name"] == name and id(s) not in used
                 and begin_fits(s, t, a.tol)]
        if not cands:
            E("missing %s of query %s (begin %d)" % (name, t["query"], t["begin_ns"]))
            continue
        # concurrent queries may start their spans within tol of each
        # other: prefer the one under this query's root, then the closest
        root = root_of.get(t["query"])
        td = t["end_ns"] - t["begin_ns"]
        s = min(cands, key=lambda s: (root is not None and s["parent_span_id"] != root["span_id"],
                                      abs(s["begin_ns"] - t["begin_ns"])
                                      + abs(s["end_ns"] - s["begin_ns"] - td)))
        used.add(id(s))
        d = s["end_ns"] - s["begin_ns"]
        if not end_fits(s, t, a.tol):
            E("query %s: %s lasted %.3f ms, truth %.3f ms (end %+.3f ms from the truth's, more than "
              "the gap after it allows)" % (t["query"], name, d / 1e6, td / 1e6,
                                            (s["end_ns"] - t["end_ns"]) / 1e6))
        if root is not None and s["parent_span_id"] != root["span_id"]:
            E("query %s: %s has parent %d, not its query's root %d"
              % (t["query"], name, s["parent_span_id"], root["span_id"]))
        if s["depth"] != 1:
            E("query %s: %s at depth %d" % (t["query"], name, s["depth"]))
    if not want:
        E("vacuous: the truth has no %s span of at least min-span" % name)
    return len(want)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--truth", required=True)
    ap.add_argument("--spans", required=True)
    ap.add_argument("--root-name", required=True)
    ap.add_argument("--span-name", required=True, action="append")
    ap.add_argument("--min-span", type=dur, default=dur("5ms"))
    ap.add_argument("--tol", type=dur, default=dur("1ms"))
    ap.add_argument("--max-stall", type=dur, default=dur("50ms"),
                    help="the longest a thread may stall between a probe and the fixture's clock read")
    a = ap.parse_args()
    truth, out = load(a.truth), load(a.spans)
    thread_gaps(truth, a.max_stall)
    errors = []
    E = errors.append

    tree_errs, by_id = tree_errors(out)
    errors.extend(tree_errs)

    oroots = [s for s in out if s["depth"] == 0]
    troots = [t for t in truth if t["depth"] == 0]
    if any(s["name"] != a.root_name for s in oroots):
        E("unexpected root names: %s" % sorted({s["name"] for s in oroots}))
    # truth query -> output root. Same-plan queries start within
    # microseconds of each other, so a neighbour's root can enclose a
    # query too (and be the shorter one). A query's first statement runs
    # in its root's first poll: same thread, and no other first poll began
    # on that thread in between. So: the enclosing root on tid_first whose
    # first poll began last before that statement.
    root_of = {}
    for t in troots:
        inside = [s for s in oroots if s["tid"] == t["tid_first"]
                  and s["begin_ns"] <= t["begin_ns"] and s["end_ns"] >= t["end_ns"]]
        if not inside:
            E("query %s: no output root on its thread (%d) encloses it" % (t["query"], t["tid_first"]))
            continue
        root_of[t["query"]] = max(inside, key=lambda s: s["begin_ns"])
    if len(set(id(r) for r in root_of.values())) != len(root_of):
        E("two truth queries matched one output root")
    if len(oroots) != len(troots):
        E("%d output roots for %d truth queries" % (len(oroots), len(troots)))

    got = [s for s in out if s["depth"] > 0]
    used = set()
    nwant = 0
    for name in a.span_name:
        nwant += check_name(a, name, truth, got, root_of, used, E)
    for s in got:
        if id(s) in used:
            continue
        # below min-span + tol in the truth, but the gaps around it (the
        # thread preempted between a probe and the clock read) let it
        # reach min-span
        near = [t for t in truth if t["name"] == s["name"] and t["name"] in a.span_name
                and t["end_ns"] - t["begin_ns"] < a.min_span + a.tol
                and t["end_ns"] - t["begin_ns"] + t["gap_before"] + t["gap_after"] + 2 * a.tol >= a.min_span]
        if any(begin_fits(s, t, a.tol) and end_fits(s, t, a.tol) for t in near):
            continue
        E("span %d %s is not in the truth" % (s["span_id"], s["name"]))
    for e in errors:
        print("check_async: FAIL: " + e)
    if not errors:
        print("check_async: OK: %d queries, %d spans of %s" % (len(root_of), nwant, ", ".join(a.span_name)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
