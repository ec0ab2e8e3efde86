#!/usr/bin/env python3
"""Checks spanprobe's spans of the hyper fixture (hsrv) against its truth,
matching spans by identity, not by timestamp alone.

  check_hyper.py --truth T --spans S [--min-span 5ms] [--min-query 1s]
                 [--tol 2ms] [--names N,N,...] [--report]

Identity: an output root is the truth query whose root ran first on the
same thread (tid) and whose begin and end it fits; below it, the children
of a matched span are paired with the truth children of the matched truth
span by name and call order (k-th query_db under handle with the k-th),
by an alignment that lets either side skip. A span whose name and order
match but whose times do not fit is a wrong span, not another one.

Checks, for every truth query whose root lasted at least --min-query:
  - its root is in the output, once;
  - every truth span of at least --min-span under it (of --names, default
    all) is present, under the output span of its truth parent (or the
    nearest truth ancestor in the output);
  - every begin and end is within --tol of the truth (a window no wider
    than --tol that holds the truth is within --tol by construction),
    unless the truth itself was preempted there: the fixture reads its
    clock a few instructions after the probe fires (begin) or before it
    fires (end), and the thread's involuntary context switch count
    (iv_begin, iv_end) changed between that point and the fixture's
    previous (begin) or next (end) record on that thread. Then the
    difference, or the window, is a wait for the CPU, counted and
    reported (--report), not an error of the tracer: on a loaded 2-CPU
    machine it happens; a span outside its window never passes;
  - every output span is some truth span (nothing invented), and none is
    flagged merged (the fixture's instances always differ in what spanprobe
    reads: arguments, or the locals their parent holds across the await);
  - a span that ended in truth before a sync sibling began (load_user,
    then render in the same poll) ends in the output no later than that
    sibling's entry: the probe hit there reads the carrier's futures
    (observation points), so the end is bounded by it, not by the poll's
    end.
--report prints per name the worst begin/end differences and windows.
"""
import argparse
import sys

from spanjson import MAX_WAIT, Preempt, dur, load, tree_errors

SKIP = 10**15  # alignment cost of leaving a span unpaired


def fits(s, t, tol):
    return (abs(s["begin_ns"] - t["begin_ns"]) <= tol
            and abs(s["end_ns"] - t["end_ns"]) <= tol)


def cost(s, t):
    return abs(s["begin_ns"] - t["begin_ns"]) + abs(s["end_ns"] - t["end_ns"])


def align(outs, truths):
    """Pairs two lists sorted by begin, keeping their order, at the least
    total time difference; unpaired items cost SKIP each."""
    n, m = len(outs), len(truths)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                best[i][j] = (i + j) * SKIP
                continue
            best[i][j] = min(best[i - 1][j - 1] + cost(outs[i - 1], truths[j - 1]),
                             best[i - 1][j] + SKIP, best[i][j - 1] + SKIP)
    pairs, i, j = [], n, m
    while i and j:
        if best[i][j] == best[i - 1][j - 1] + cost(outs[i - 1], truths[j - 1]):
            pairs.append((outs[i - 1], truths[j - 1]))
            i, j = i - 1, j - 1
        elif best[i][j] == best[i - 1][j] + SKIP:
            i -= 1
        else:
            j -= 1
    return pairs


def within(s, t, which, tol, pre):
    """s's begin or end against t's: within tol; or, where the truth's
    thread was preempted, the truth inside the reported window (exact
    spans: a difference of at most MAX_WAIT, the right way round)."""
    if which == "begin":
        d, unc = t["begin_ns"] - s["begin_ns"], s.get("uncertainty_lo_ns", 0)
        if abs(d) <= tol:
            return True, False
        ok = pre.at_begin(t)
        return ok and -tol <= d <= (unc + tol if unc else MAX_WAIT), ok
    d, unc = s["end_ns"] - t["end_ns"], s.get("uncertainty_hi_ns", 0)
    if abs(d) <= tol:
        return True, False
    ok = pre.at_end(t)
    return ok and -tol <= d <= (unc + tol if unc else MAX_WAIT), ok


def by_name(spans):
    d = {}
    for s in sorted(spans, key=lambda s: s["begin_ns"]):
        d.setdefault(s["name"], []).append(s)
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--truth", required=True)
    ap.add_argument("--spans", required=True)
    ap.add_argument("--names", help="comma-separated truth names that must be traced")
    ap.add_argument("--min-span", type=dur, default=dur("5ms"))
    ap.add_argument("--min-query", type=dur, default=dur("1s"))
    ap.add_argument("--tol", type=dur, default=dur("2ms"))
    ap.add_argument("--report", action="store_true")
    a = ap.parse_args()
    truth, out = load(a.truth), load(a.spans)
    pre = Preempt(truth)
    preempted = 0
    errors = []
    E = errors.append
    tree_errs, by_id = tree_errors(out)
    errors.extend(tree_errs)

    tkids, okids = {}, {}
    for t in truth:
        tkids.setdefault(t["parent_id"], []).append(t)
    for s in out:
        okids.setdefault(s["parent_span_id"], []).append(s)
    troots = [t for t in truth if t["depth"] == 0]
    oroots = [s for s in out if s["depth"] == 0]

    # roots: same first thread, times fit; the best-agreeing pairs first
    def agree(s, t):
        return sum(1 for x in okids.get(s["span_id"], []) for y in tkids.get(t["id"], [])
                   if x["name"] == y["name"] and fits(x, y, a.tol))

    def root_fits(s, t):
        return (within(s, t, "begin", a.tol, pre)[0] and within(s, t, "end", a.tol, pre)[0])
    cands = sorted((-agree(s, t), cost(s, t), i, j)
                   for i, t in enumerate(troots) for j, s in enumerate(oroots)
                   if s["tid"] == t["tid_first"] and s["name"] == t["name"]
                   and root_fits(s, t))
    match, tmatch = {}, {}
    for _, _, i, j in cands:
        t, s = troots[i], oroots[j]
        if t["id"] in tmatch or s["span_id"] in match:
            continue
        match[s["span_id"]], tmatch[t["id"]] = t, s
    for s in oroots:
        if s["span_id"] not in match:
            E("output root %d %s (%.1f ms, tid %d) is no truth query"
              % (s["span_id"], s["name"], (s["end_ns"] - s["begin_ns"]) / 1e6, s["tid"]))

    # below each matched pair: by name and call order
    worst = {}
    todo = list(match.items())
    while todo:
        sid, t = todo.pop()
        okn, tkn = by_name(okids.get(sid, [])), by_name(tkids.get(t["id"], []))
        for name, outs in okn.items():
            for s, tt in align(outs, tkn.get(name, [])):
                match[s["span_id"]], tmatch[tt["id"]] = tt, s
                todo.append((s["span_id"], tt))
                db, de = s["begin_ns"] - tt["begin_ns"], s["end_ns"] - tt["end_ns"]
                w = worst.setdefault(name, [0, 0, 0, 0, 0])
                w[0] = max(w[0], abs(db))
                w[1] = max(w[1], abs(de))
                w[2] = max(w[2], s.get("uncertainty_lo_ns", 0))
                w[3] = max(w[3], s.get("uncertainty_hi_ns", 0))
                w[4] += 1
                okb, pb = within(s, tt, "begin", a.tol, pre)
                oke, pe = within(s, tt, "end", a.tol, pre)
                preempted += (pb and okb) + (pe and oke)
                if not okb or not oke:
                    E("query %d: %s (call %d of its parent's) begins %+.3f ms, ends %+.3f ms "
                      "from the truth (windows %.3f / %.3f ms)"
                      % (tt["query"], name, outs.index(s), db / 1e6, de / 1e6,
                         s.get("uncertainty_lo_ns", 0) / 1e6,
                         s.get("uncertainty_hi_ns", 0) / 1e6))

    for s in out:
        if "merged" in s["flags"]:
            E("span %d %s is flagged merged" % (s["span_id"], s["name"]))
        if s["span_id"] not in match and s["depth"] > 0:
            p = by_id.get(s["parent_span_id"], {})
            E("span %d %s (%.3f ms, under %s) is no truth span: invented, or under the "
              "wrong parent" % (s["span_id"], s["name"], (s["end_ns"] - s["begin_ns"]) / 1e6,
                                p.get("name")))

    tby_id = {t["id"]: t for t in truth}
    tkids_all = {}
    for t in truth:
        tkids_all.setdefault(t["parent_id"], []).append(t)
    for sibs in tkids_all.values():
        for x in sibs:
            for y in sibs:
                if (y.get("kind") != "sync" or x is y or x["end_ns"] > y["begin_ns"]
                        or x["id"] not in tmatch or y["id"] not in tmatch):
                    continue
                sx, sy = tmatch[x["id"]], tmatch[y["id"]]
                if sx["end_ns"] > sy["begin_ns"]:
                    E("query %d: %s ends %.3f ms after the entry of %s, which followed it"
                      % (x["query"], x["name"], (sx["end_ns"] - sy["begin_ns"]) / 1e6, y["name"]))
    names = set(a.names.split(",")) if a.names else None
    slow = required = 0
    for t in troots:
        if t["end_ns"] - t["begin_ns"] < a.min_query:
            continue
        slow += 1
        if t["id"] not in tmatch:
            E("query %d (%.1f ms): its root %s is not in the output"
              % (t["query"], (t["end_ns"] - t["begin_ns"]) / 1e6, t["name"]))
            continue
        for u in truth:
            if (u["query"] != t["query"] or u["depth"] == 0
                    or u["end_ns"] - u["begin_ns"] < a.min_span
                    or (names is not None and u["name"] not in names)):
                continue
            required += 1
            if u["id"] in tmatch:
                continue
            p = tby_id.get(u["parent_id"])
            E("query %d: missing %s (%.3f ms) under %s"
              % (u["query"], u["name"], (u["end_ns"] - u["begin_ns"]) / 1e6,
                 p and p["name"]))
    if not required and not errors:
        E("vacuous: no truth span had to be present")
    if a.report:
        print("check_hyper: %d begins or ends off by more than %.1f ms where the truth's thread "
              "was preempted (allowed)" % (preempted, a.tol / 1e6))
        for name, w in sorted(worst.items()):
            print("check_hyper: %-32s %3d spans, worst |begin| %.3f ms, |end| %.3f ms, "
                  "windows up to %.3f / %.3f ms" % (name, w[4], w[0] / 1e6, w[1] / 1e6,
                                                    w[2] / 1e6, w[3] / 1e6))
    for e in errors[:40]:
        print("check_hyper: FAIL: " + e)
    if len(errors) > 40:
        print("check_hyper: ... %d more" % (len(errors) - 40))
    if not errors:
        print("check_hyper: OK: %d slow queries, %d spans required and present, %d output "
              "spans all in the truth, every begin and end within %.1f ms (%d more where the "
              "truth's thread was preempted)" % (slow, required, len(out), a.tol / 1e6, preempted))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
