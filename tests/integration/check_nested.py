#!/usr/bin/env python3
"""Checks spanprobe's Rust async spans, nested (inlined) ones included,
against the rsqserver fixture's own ground truth.

  check_nested.py --truth T --spans S [--root-name R] [--min-span 5ms]
                  [--min-query 1s] [--tol 1ms] [--names N,N,...]
                  [--expect-none]

The truth's queries are its depth-0 spans (execute_query); spanprobe's
are its roots, named R (default: the truth's root name). A span's time is
known within a window: spanprobe reports begin_ns (earliest) with
uncertainty_lo_ns and end_ns (latest) with uncertainty_hi_ns, so a truth
span fits an output span of the same name when
  |begin diff| <= uncertainty_lo + tol  and  |end diff| <= uncertainty_hi + tol,
or when the output begins earlier (ends later) by up to the gap of the
truth's thread before its first (after its last) statement more: the
thread was preempted between the probe and the statement (spanjson.py,
thread_gaps; at most --max-stall). Among the spans that fit, an output
span is paired with the call under the truth call of its output parent
(identity by nesting), then the nearest in time.
An exact span (no window) also fits, up to 100 ms the right way round,
where the truth's own thread was preempted next to its clock read
(spanjson.Preempt: the probe fired on the other side of that wait).

Checks:
  - every truth query of at least --min-query has exactly one output
    root, matching it (the query's duration is its root's);
  - every truth async span (of --names, default all) of at least
    min-span inside such a query is present once, under the output span
    of its nearest truth ancestor that is in the output, except the
    instances the fixture marks one_poll (they never suspend: inlined,
    they finish inside one poll and cannot be seen);
  - every output span matches a truth span of its query (nothing is
    invented); span ids are unique, parents present;
  - no span is flagged merged: every instance of the fixture's async fns
    differs from the one before it in its slot by its arguments or by
    the locals its parent holds across the await, so none may be merged,
    flagged or not (an unflagged merge shows as a missing instance).
With --expect-none the output must be empty (a degraded build whose
roots cannot be seen).
"""
import argparse
import sys

from spanjson import MAX_WAIT, Preempt, begin_fits, dur, end_fits, load, thread_gaps, tree_errors


def partial(s):
    return "partial" in s["flags"]


def cut(s):
    return "abnormal" in s["flags"] or "incomplete" in s["flags"]


PRE = None  # Preempt of the truth, set by main


def fits(s, t, tol):
    """A partial span (already running at attach) begins no earlier than
    the truth: its begin is the first poll seen, never invented. A span
    cut off when tracing stopped ends when the session flushed, after the
    probes were gone (removing them takes a while): only a nested span's
    last read, where it was still live (end - uncertainty_hi), bounds its
    true end."""
    if partial(s):
        b = s["begin_ns"] >= t["begin_ns"] - tol
    else:
        b = begin_fits(s, t, s.get("uncertainty_lo_ns", 0) + tol)
        # an exact span whose truth read its clock after a wait for the CPU
        if not b and not s.get("uncertainty_lo_ns") and PRE and PRE.at_begin(t):
            b = 0 <= t["begin_ns"] - s["begin_ns"] <= MAX_WAIT
    if cut(s):
        e = (not s.get("uncertainty_hi_ns")
             or t["end_ns"] >= s["end_ns"] - s["uncertainty_hi_ns"] - tol)
    else:
        e = end_fits(s, t, s.get("uncertainty_hi_ns", 0) + tol)
        if not e and not s.get("uncertainty_hi_ns") and PRE and PRE.at_end(t):
            e = 0 <= s["end_ns"] - t["end_ns"] <= MAX_WAIT
    return b and e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--truth", required=True)
    ap.add_argument("--spans", required=True)
    ap.add_argument("--root-name")
    ap.add_argument("--names", help="comma-separated truth names that must be traced")
    ap.add_argument("--min-span", type=dur, default=dur("5ms"))
    ap.add_argument("--min-query", type=dur, default=dur("1s"))
    ap.add_argument("--tol", type=dur, default=dur("1ms"))
    ap.add_argument("--max-stall", type=dur, default=dur("50ms"),
                    help="the longest a thread may stall between a probe and the fixture's clock read")
    ap.add_argument("--expect-none", action="store_true")
    ap.add_argument("--attached", action="store_true",
                    help="attached mid-flight: queries already running (partial roots) or "
                         "cut off at the end are checked loosely, never required; at least "
                         "one partial span and one complete query are")
    a = ap.parse_args()
    global PRE
    truth, out = load(a.truth), load(a.spans)
    thread_gaps(truth, a.max_stall)
    PRE = Preempt(truth)
    errors = []
    E = errors.append

    if a.expect_none:
        for s in out:
            E("span %d %s: expected no output at all" % (s["span_id"], s["name"]))
        return report(errors, "no spans, as expected")

    tree_errs, by_id = tree_errors(out)
    errors.extend(tree_errs)
    for s in out:
        if "merged" in s["flags"]:
            E("span %d %s is flagged merged: the fixture's instances can be told apart"
              % (s["span_id"], s["name"]))
    tby_id = {t["id"]: t for t in truth}
    troots = [t for t in truth if t["depth"] == 0]
    root_name = a.root_name or (troots[0]["name"] if troots else None)
    oroots = [s for s in out if s["depth"] == 0]
    for s in oroots:
        if s["name"] != root_name:
            E("output root %d is %s, not %s" % (s["span_id"], s["name"], root_name))

    # truth query -> output root: concurrent queries of the same kind can
    # fit each other's roots; the pairs whose spans agree most go together
    by_q = {}
    for s in out:
        by_q.setdefault(s["query_id"], []).append(s)
    tby_qn, tby_q = {}, {}  # (query, name) -> truth spans; query -> truth spans
    for t in truth:
        tby_qn.setdefault((t["query"], t["name"]), []).append(t)
        tby_q.setdefault(t["query"], []).append(t)
    troot_of = {t["query"]: t for t in troots}

    def agree(t, s):
        return sum(1 for x in by_q.get(s["query_id"], []) if x["depth"] > 0 and any(
            fits(x, y, a.tol) for y in tby_qn.get((t["query"], x["name"]), [])))

    pairs = sorted(((-agree(t, s), s["tid"] != t["tid_first"],
                     abs(s["begin_ns"] - t["begin_ns"]) + abs(s["end_ns"] - t["end_ns"]), i, j)
                    for i, t in enumerate(troots) for j, s in enumerate(oroots) if fits(s, t, a.tol)))
    qroot = {}
    used = set()
    for _, _, _, i, j in pairs:
        t, s = troots[i], oroots[j]
        if t["query"] in qroot or id(s) in used:
            continue
        qroot[t["query"]] = s
        used.add(id(s))
    for t in troots:
        if a.attached:
            break  # only the queries traced from begin to end are required
        if t["query"] not in qroot and t["end_ns"] - t["begin_ns"] >= a.min_query:
            E("query %d (%.1f ms): no matching output root"
              % (t["query"], (t["end_ns"] - t["begin_ns"]) / 1e6))
    out_query = {}  # output query_id -> truth query
    for q, s in qroot.items():
        out_query[s["query_id"]] = q
    for s in oroots:
        if id(s) not in used:
            E("output root %d (%s) matches no truth query" % (s["span_id"], s["name"]))

    # every output span <-> one truth span of its query
    match = {}    # output span id -> truth span
    tmatch = {}   # truth id -> output span
    for q, s in qroot.items():
        match[s["span_id"]] = troot_of[q]
        tmatch[match[s["span_id"]]["id"]] = s
    def under(t, s):
        """t's nearest ancestor already paired is paired with s's parent."""
        p = tby_id.get(t["parent_id"])
        while p is not None and p["id"] not in tmatch:
            p = tby_id.get(p["parent_id"])
        return p is not None and tmatch[p["id"]]["span_id"] == s["parent_span_id"]

    fitting = {}  # output span id -> the truth spans it fits (same query, name)

    def reassign(s, seen):
        """Kuhn's augmenting path: s takes a truth span it fits, moving
        the span that holds it to another it fits, if any. Wide windows
        (a loop instance seen only inside a poll) can fit two neighbours;
        the nearest-first choice alone could leave one of them unpaired
        though a pairing of every span exists."""
        for t in fitting[s["span_id"]]:
            if t["id"] in seen:
                continue
            seen.add(t["id"])
            h = tmatch.get(t["id"])
            if h is None or (h["span_id"] in fitting and reassign(h, seen)):
                match[s["span_id"]] = t
                tmatch[t["id"]] = s
                return True
        return False

    for s in sorted((s for s in out if s["depth"] > 0), key=lambda s: s["begin_ns"]):
        q = out_query.get(s["query_id"])
        if q is None:
            E("span %d %s: its query matches no truth query" % (s["span_id"], s["name"]))
            continue
        fitting[s["span_id"]] = [t for t in tby_qn.get((q, s["name"]), [])
                                 if fits(s, t, a.tol)]
        c = [t for t in fitting[s["span_id"]] if t["id"] not in tmatch]
        if not c:
            if not reassign(s, set()):
                E("span %d %s (query %d, %.3f ms): not in the truth (invented)"
                  % (s["span_id"], s["name"], q, (s["end_ns"] - s["begin_ns"]) / 1e6))
            continue
        # identity: the call under the truth call of the output parent (its
        # nearest ancestor in the output), then the nearest in time
        t = min(c, key=lambda t: (not under(t, s), abs(t["begin_ns"] - s["begin_ns"])))
        match[s["span_id"]] = t
        tmatch[t["id"]] = s

    names = set(a.names.split(",")) if a.names else None
    fit_by = {}  # truth id -> the output spans that fit it
    for sid, ts in fitting.items():
        for t in ts:
            fit_by.setdefault(t["id"], []).append(by_id[sid])

    def needed(t):
        return (t["depth"] > 0 and t["kind"] == "async" and not t.get("one_poll")
                and t["end_ns"] - t["begin_ns"] >= a.min_span
                and (names is None or t["name"] in names))

    def pull(t, seen):
        """A required truth span nobody took: an output span that fits it
        comes over if what it holds is not required, or can itself be
        taken by another span that fits it."""
        for s in fit_by.get(t["id"], []):
            if s["span_id"] in seen:
                continue
            seen.add(s["span_id"])
            t2 = match.get(s["span_id"])
            if t2 is None or not needed(t2) or pull(t2, seen):
                if t2 is not None and tmatch.get(t2["id"]) is s:
                    del tmatch[t2["id"]]
                match[s["span_id"]] = t
                tmatch[t["id"]] = s
                return True
        return False

    required = complete = one_poll = 0
    for q, root in qroot.items():
        tq = troot_of[q]
        if tq["end_ns"] - tq["begin_ns"] < a.min_query or partial(root) or cut(root):
            continue
        complete += 1
        for t in tby_q.get(q, []):
            if (t["query"] != q or t["depth"] == 0 or t["kind"] != "async"
                    or t["end_ns"] - t["begin_ns"] < a.min_span
                    or (names is not None and t["name"] not in names)):
                continue
            if t.get("one_poll"):
                # the fixture knows this instance never suspended: it ran
                # inside one poll of its task, which reading the task's
                # future between polls cannot see (issue 3, "invisible");
                # on a loaded machine preemption can stretch it past
                # min-span
                one_poll += 1
                continue
            required += 1
            if t["id"] not in tmatch:
                pull(t, set())
            s = tmatch.get(t["id"])
            if s is None:
                E("query %d: missing %s (%.3f ms, begin %d)"
                  % (q, t["name"], (t["end_ns"] - t["begin_ns"]) / 1e6, t["begin_ns"]))
                continue
            # the nearest truth ancestor present in the output
            p = tby_id.get(t["parent_id"])
            while p is not None and p["id"] not in tmatch:
                p = tby_id.get(p["parent_id"])
            want = tmatch[p["id"]]["span_id"] if p is not None else 0
            if s["parent_span_id"] != want:
                got = by_id.get(s["parent_span_id"], {}).get("name")
                E("query %d: %s has parent %s, not %s" % (q, t["name"], got, p and p["name"]))
    if not required and not errors:
        E("vacuous: no truth span had to be present")
    if a.attached and not any(partial(s) for s in out):
        E("attached mid-flight, yet no span is partial")
    for s in out:
        if partial(s) and not a.attached:
            E("span %d %s is partial, though traced from the start" % (s["span_id"], s["name"]))
    return report(errors, "%d queries, %d spans required and present, %d output spans all in "
                  "the truth (%d long instances that never suspended not required)"
                  % (len(qroot), required, len(out), one_poll))


def report(errors, ok):
    for e in errors[:40]:
        print("check_nested: FAIL: " + e)
    if len(errors) > 40:
        print("check_nested: ... %d more" % (len(errors) - 40))
    if not errors:
        print("check_nested: OK: " + ok)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
