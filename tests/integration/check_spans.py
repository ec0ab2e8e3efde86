#!/usr/bin/env python3
"""Compare `spanprobe dump FILE --json` output with a fixture's ground truth.

Truth: one JSON object per call of an instrumented function, written by the
fixture (query, name, parent, depth, begin_ns, end_ns, tid, pid, id,
parent_id, abnormal).  Spans: one JSON object per kept span (query_id
span_id parent_span_id depth name begin_ns end_ns duration_ns tid pid flags
abnormal).

  check_spans.py --truth T --spans S [--min-span 5ms] [--min-query 1s] ...
  check_spans.py --synth T [--mutate KIND]   print a synthetic spans file
  check_spans.py --selftest T                the checker must accept the
                                             synthetic file and reject
                                             every mutation of it
  check_spans.py --spans CUT --subset-of FULL [--require-queries K]
      CUT (the dump of a truncated file) holds whole queries of FULL, in
      FULL's order, and at least K of them

Pairing is by identity, not by nearness in time: a span is the call of
its name, on its thread, whose entry gap holds its begin (see Truth: the
gap between the thread's previous clock read and the call's own), and
that call must be in the span's query, in call order, under the call of
its parent span. Preemption between a probe and the fixture's clock read
lengthens that gap; it cannot move the probe out of it.
Times: a begin must lie in the call's entry gap, a normal end in its exit
gap (the thread's gap around its end timestamp: a function that ends in
`jmp leave` has its ret-site exit probe fire before leave's clock read,
a uretprobe fires after it), each capped at --max-stall and widened by
--tol-clock. Thresholds: a call is required
when it lasted at least the threshold (+ --margin) even measured as short
as the clock error allows; it may be kept when it lasted less if the
longest span those gaps allow reaches the threshold (a 4.9 ms call
stretched by preemption); otherwise keeping it is an error.
A truth frame marked "tail_call" (it left by a jmp to another function)
may be flagged abnormal, but its times must still be right.
Exit status: 0 all checks passed, 1 a check failed, 2 bad usage/input.
"""
import argparse
import bisect
import collections
import json
import random
import re
import sys

FIELDS = {"query_id": int, "span_id": int, "depth": int, "name": str,
          "begin_ns": int, "end_ns": int, "duration_ns": int, "tid": int,
          "pid": int, "flags": list, "abnormal": bool}
UNITS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9}
MAX_ERRORS = 40


def duration(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ns|us|ms|s)?", text.strip())
    if not m or (m.group(2) is None and float(m.group(1)) != 0):
        raise argparse.ArgumentTypeError("bad duration %r (e.g. 5ms, 1s, 0)" % text)
    return int(float(m.group(1)) * UNITS[m.group(2) or "ns"])


def load_jsonl(path, what):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise SystemExit("check_spans: %s %s:%d is not JSON (%s): %.120s"
                                 % (what, path, n, e, line))
            if not isinstance(obj, dict):
                raise SystemExit("check_spans: %s %s:%d is not an object" % (what, path, n))
            out.append(obj)
    return out


def ms(ns):
    return "%.3fms" % (ns / 1e6)


def sms(ns):
    return "%+.3fms" % (ns / 1e6)


class Truth:
    """The fixture's calls. A call's identity: its thread (tid), its place
    in that thread's call order (the fixtures number calls as they begin:
    id, increasing on each thread) and its parent (parent_id).

    A thread's timestamps, sorted, cut its timeline into gaps. The entry
    probe of a call fires in the gap that ends at the call's own begin
    timestamp: after the thread's previous clock read (prev_ts), before
    the fixture's first statement. Its exit probe fires in the gap that
    starts at its end timestamp, before the thread's next clock read
    (next_ts). However long the thread is preempted between a probe and
    the fixture's clock read, the probe stays in its gap: a span is paired
    with the call whose gap holds its begin, on its thread, of its name;
    the pairing is then checked against the call tree (query, parent,
    depth, call order), not against nearness in time."""

    def __init__(self, records):
        self.recs = records
        self.by_id = {r["id"]: r for r in records}
        self.children = collections.defaultdict(list)
        for r in records:
            r["dur"] = r["end_ns"] - r["begin_ns"]
            r.setdefault("abnormal", False)
            if r["parent_id"] is not None:
                self.children[r["parent_id"]].append(r)
        self.roots = [r for r in records if r["parent_id"] is None and r["query"] is not None]
        self.index_threads()

    def index_threads(self):
        stamps = collections.defaultdict(list)
        for r in self.recs:
            stamps[r["tid"]] += [r["begin_ns"], r["end_ns"]]
        for ts in stamps.values():
            ts.sort()
        self.calls = collections.defaultdict(list)  # (tid, name) -> [(begin, id)]
        for r in self.recs:
            ts = stamps[r["tid"]]
            i = bisect.bisect_left(ts, r["begin_ns"]) - 1
            r["prev_ts"] = ts[i] if i >= 0 else None
            j = bisect.bisect_right(ts, r["end_ns"])
            r["next_ts"] = ts[j] if j < len(ts) else None
            k = bisect.bisect_left(ts, r["end_ns"]) - 1
            r["end_prev_ts"] = ts[k] if k >= 0 else None
            self.calls[(r["tid"], r["name"])].append((r["begin_ns"], r["id"]))
        for lst in self.calls.values():
            lst.sort()

    def locate(self, tid, name, begin, eps, stall):
        """The call of name on thread tid whose entry gap holds begin
        (within the clock conversion error eps), or None."""
        lst = self.calls.get((tid, name), [])
        k = bisect.bisect_left(lst, (begin - eps, -1))
        best = None
        for b, rid in lst[k:k + 2]:
            r = self.by_id[rid]
            lo = r["prev_ts"] if r["prev_ts"] is not None else b - stall
            if lo - eps <= begin <= b + eps:
                off = max(0, lo - begin, begin - b)
                if best is None or off < best[0]:
                    best = (off, r)
        return best[1] if best else None

    def descendants(self, root):
        todo, out = list(self.children[root["id"]]), []
        while todo:
            r = todo.pop()
            out.append(r)
            todo.extend(self.children[r["id"]])
        return out

    def ancestors(self, rec):
        while rec["parent_id"] is not None:
            rec = self.by_id[rec["parent_id"]]
            yield rec

    def describe(self, r):
        """Why a span paired with call r (or None) is not where it should be."""
        if r is None:
            return "no call of that name begins there on that thread in the truth"
        if r["query"] is None:
            return "the truth has it outside any query (id %d)" % r["id"]
        return "the truth has it in query %s (id %d, duration %s)" % (r["query"], r["id"], ms(r["dur"]))


def time_bounds(t, a):
    """Where spanprobe may see t begin and (if it returns) end: in the
    thread's gaps around the fixture's clock reads (see Truth), at most
    --max-stall away from them, give or take the clock conversion error:
    (begin_lo, begin_hi, end_lo, end_hi)."""
    b_lo = t["begin_ns"] - a.max_stall
    if t["prev_ts"] is not None:
        b_lo = max(b_lo, t["prev_ts"])
    e_lo = t["end_ns"] - a.max_stall
    if t.get("end_prev_ts") is not None:
        e_lo = max(e_lo, t["end_prev_ts"])
    e_hi = t["end_ns"] + a.max_stall
    if t["next_ts"] is not None:
        e_hi = min(e_hi, t["next_ts"])
    eps = a.tol_clock
    return b_lo - eps, t["begin_ns"] + eps, e_lo - eps, e_hi + eps


def longest(t, a):
    """The longest duration spanprobe may measure for t."""
    b_lo, _, _, e_hi = time_bounds(t, a)
    return e_hi - b_lo


def check(truth, spans, a):
    errs = []
    E = errs.append
    eps = a.tol_clock

    def cut_off(t):
        """Still running when the tracer stopped (--window): it may be
        missing, or end early and flagged abnormal."""
        return a.window is not None and t["end_ns"] > a.window[1]

    def bounds(t):
        return time_bounds(t, a)

    def longest(t):
        b_lo, _, _, e_hi = bounds(t)
        return e_hi - b_lo

    def required(t, threshold):
        """spanprobe must keep t: even measured as short as it can be
        (begin at its clock read, end as early as its exit gap allows,
        both off by the clock error), it reaches the threshold. Below
        that, down to longest(t), it may go either way: preemption
        between a probe and the clock read may have stretched it."""
        _, b_hi, e_lo, _ = bounds(t)
        return threshold == 0 or e_lo - b_hi >= threshold + a.margin

    off_tol = []

    def times(o, t, what, ends):
        """The begin (and with ends, the end) of o within t's bounds."""
        b_lo, b_hi, e_lo, e_hi = bounds(t)
        ok = True
        if not b_lo <= o["begin_ns"] <= b_hi:
            E("begin %s from the truth's, outside [%s, %s] (the thread's previous clock read, "
              "or --max-stall, .. its own): %s" % (sms(o["begin_ns"] - t["begin_ns"]),
                                                   sms(b_lo - t["begin_ns"]), sms(b_hi - t["begin_ns"]), what))
            ok = False
        if ends and not e_lo <= o["end_ns"] <= e_hi:
            E("end %s from the truth's, outside [%s, %s] (its own clock read .. the thread's next, "
              "or --max-stall): duration %s, truth %s: %s"
              % (sms(o["end_ns"] - t["end_ns"]), sms(e_lo - t["end_ns"]), sms(e_hi - t["end_ns"]),
                 ms(o["duration_ns"]), ms(t["dur"]), what))
            ok = False
        if ok and ends and abs(o["duration_ns"] - t["dur"]) > a.tol_dur:
            off_tol.append((o, t))

    # -- the fixture itself
    if a.expect_queries is not None:
        got = sorted(r["query"] for r in truth.roots)
        if got != list(range(a.expect_queries)):
            E("fixture: truth has queries %s, expected 0..%d" % (got, a.expect_queries - 1))
        for r in truth.roots:
            if r["abnormal"] and not a.abnormal_roots:
                E("fixture: query %s root did not return normally" % r["query"])

    # -- the span records on their own
    ids = collections.Counter(s.get("span_id") for s in spans)
    for sid, n in ids.items():
        if n > 1:
            E("span_id %s used by %d spans" % (sid, n))
    for s in spans:
        for k, typ in FIELDS.items():
            if not isinstance(s.get(k), typ) or (typ is int and isinstance(s.get(k), bool)):
                E("span %s: field %r missing or not %s: %r" % (s.get("span_id"), k, typ.__name__, s.get(k)))
                s["_bad"] = True
        if "parent_span_id" not in s:
            E("span %s: no parent_span_id" % s.get("span_id"))
            s["_bad"] = True
    spans = [s for s in spans if not s.get("_bad")]
    pid = a.pid if a.pid is not None else (truth.recs[0].get("pid") if truth.recs else None)
    for s in spans:
        tag = "span %s %s" % (s["span_id"], s["name"])
        if s["end_ns"] < s["begin_ns"] or s["duration_ns"] != s["end_ns"] - s["begin_ns"]:
            E("%s: duration_ns %d != end_ns - begin_ns %d" % (tag, s["duration_ns"], s["end_ns"] - s["begin_ns"]))
        if pid is not None and s["pid"] != pid:
            E("%s: pid %d, expected %d" % (tag, s["pid"], pid))
        if s["abnormal"] != ("abnormal" in s["flags"]):
            E("%s: abnormal=%s but flags=%s" % (tag, s["abnormal"], s["flags"]))
        if ("root" in s["flags"]) != (s["parent_span_id"] in (0, None)):
            E("%s: flags %s with parent_span_id %s" % (tag, s["flags"], s["parent_span_id"]))

    def locate(o):
        return truth.locate(o["tid"], o["name"], o["begin_ns"], eps, a.max_stall)

    # -- queries: output roots <-> truth roots, by identity
    oroots = [s for s in spans if "root" in s["flags"]]
    for o in oroots:
        if o["query_id"] != o["span_id"]:
            E("root span %s: query_id %s != its span_id" % (o["span_id"], o["query_id"]))
        if o["depth"] != 0:
            E("root span %s: depth %d, expected 0" % (o["span_id"], o["depth"]))
    qmatch = {}  # truth root id -> output root
    for o in sorted(oroots, key=lambda o: o["begin_ns"]):
        t = locate(o)
        if t is None or t["parent_id"] is not None or t["query"] is None or t["id"] in qmatch:
            E("invented query: root %s %s tid %d begin %d (%s)" % (
              o["span_id"], o["name"], o["tid"], o["begin_ns"],
              "paired twice with query %s" % t["query"] if t is not None and t["id"] in qmatch
              else truth.describe(t)))
            continue
        qmatch[t["id"]] = o
    required_q = 0
    for r in sorted(truth.roots, key=lambda r: r["query"]):
        q = "query %s (%s, tid %d)" % (r["query"], ms(r["dur"]), r["tid"])
        if a.window and not (a.window[0] <= r["begin_ns"] and r["end_ns"] <= a.window[1]):
            continue  # not entirely seen by the tracer: may be missing
        if required(r, a.min_query):
            required_q += 1
            if r["id"] not in qmatch:
                E("missing %s: its root is not in the output" % q)
        elif r["id"] in qmatch and longest(r) < a.min_query:
            E("fast %s is in the output (min-query %s; it cannot have lasted more than %s)"
              % (q, ms(a.min_query), ms(longest(r))))
    if required_q < a.min_checked_queries:
        E("vacuous check: only %d truth queries last >= min-query %s (need %d)"
          % (required_q, ms(a.min_query), a.min_checked_queries))

    by_query = collections.defaultdict(list)
    for s in spans:
        if "root" not in s["flags"]:
            by_query[s["query_id"]].append(s)
    known = {o["span_id"] for o in qmatch.values()}
    for qid, lst in by_query.items():
        if qid not in known:
            s = lst[0]
            E("%d spans have query_id %s, which is no matched root (e.g. %s begin %d: %s)"
              % (len(lst), qid, s["name"], s["begin_ns"], truth.describe(locate(s))))

    # -- spans inside each matched query
    checked = 0
    for rid, oroot in qmatch.items():
        troot = truth.by_id[rid]
        qname = "query %s" % troot["query"]
        rwhat = "%s root %s" % (qname, troot["name"])
        checked += 1
        if cut_off(troot):
            times(oroot, troot, rwhat, False)  # still running when the tracer stopped
        elif troot["abnormal"]:
            times(oroot, troot, rwhat, False)
            if not oroot["abnormal"]:
                E("%s left without returning but is not flagged abnormal" % rwhat)
            elif oroot["end_ns"] < troot["end_ns"] - a.tol_dur:
                E("%s: abnormal end %d before the truth's %d (it can only be noticed later)"
                  % (rwhat, oroot["end_ns"], troot["end_ns"]))
        else:
            times(oroot, troot, rwhat, True)
            if oroot["abnormal"]:
                E("%s flagged abnormal" % rwhat)
        inside = {r["id"] for r in truth.descendants(troot)}
        outs = sorted(by_query.get(oroot["span_id"], []), key=lambda o: o["begin_ns"])
        m = {troot["id"]: oroot}
        last_id = troot["id"]
        for o in outs:
            t = locate(o)
            if t is None or t["id"] not in inside or t["id"] in m:
                E("%s: invented span %s begin %d duration %s tid %d (%s)" % (
                  qname, o["name"], o["begin_ns"], ms(o["duration_ns"]), o["tid"],
                  "paired twice with truth id %d" % t["id"] if t is not None and t["id"] in m
                  else truth.describe(t)))
                continue
            if t["id"] < last_id:
                E("%s: %s (truth id %d) comes after truth id %d in the output: not in call order"
                  % (qname, o["name"], t["id"], last_id))
            last_id = t["id"]
            m[t["id"]] = o
        by_span_id = {o["span_id"]: o for o in outs}
        by_span_id[oroot["span_id"]] = oroot
        for t in sorted((truth.by_id[i] for i in inside), key=lambda r: r["id"]):
            what = "%s: %s (truth id %d, depth %d, begin %d, %s%s)" % (
                qname, t["name"], t["id"], t["depth"], t["begin_ns"], ms(t["dur"]),
                ", abnormal" if t["abnormal"] else "")
            o = m.get(t["id"])
            if o is None:
                if required(t, a.min_span) and not cut_off(t):
                    E("missing %s" % what)
                continue
            checked += 1
            if not t["abnormal"] and longest(t) < a.min_span and not cut_off(t):
                E("kept span under min-span %s (it cannot have lasted more than %s): %s"
                  % (ms(a.min_span), ms(longest(t)), what))
            if o["duration_ns"] < a.min_span:
                E("kept span whose own duration %s is under min-span %s: %s" % (ms(o["duration_ns"]), ms(a.min_span), what))
            if "root" in o["flags"]:
                E("non-root span flagged root: %s" % what)
            if o["tid"] != troot["tid"]:
                E("tid %d, expected %d: %s" % (o["tid"], troot["tid"], what))
            if t["abnormal"] and not o["abnormal"]:
                E("not flagged abnormal: %s" % what)
            if t["abnormal"] and not cut_off(t) and o["end_ns"] < t["end_ns"] - a.tol_dur:
                E("abnormal end %s before the truth's (it can only be noticed later): %s"
                  % (ms(o["end_ns"] - t["end_ns"]), what))
            if not t["abnormal"] and o["abnormal"] and not t.get("tail_call") and not cut_off(t):
                E("flagged abnormal but returned normally: %s" % what)
            times(o, t, what, not t["abnormal"] and not cut_off(t))
            # parent: the nearest kept ancestor
            anc = list(truth.ancestors(t))
            want = next(x for x in anc if x["id"] in m)
            parent = by_span_id.get(o["parent_span_id"])
            if parent is None:
                E("parent_span_id %s is no span of this query: %s" % (o["parent_span_id"], what))
                continue
            if parent is not m[want["id"]]:
                E("parent is %s (begin %d), expected %s (begin %d): %s" % (
                  parent["name"], parent["begin_ns"], want["name"], want["begin_ns"], what))
                continue
            if all(x["id"] in m for x in anc):
                if o["depth"] != t["depth"]:
                    E("depth %d, expected %d: %s" % (o["depth"], t["depth"], what))
            elif o["depth"] <= parent["depth"]:
                E("depth %d not below its parent's %d: %s" % (o["depth"], parent["depth"], what))
    a.off_tol = off_tol
    return errs, checked, len(qmatch)


# ---------------- synthetic output for the self-test ----------------

def synth(truth, a, rng):
    out, next_id = [], [1000]

    def sid():
        next_id[0] += rng.randint(1, 9)
        return next_id[0]

    def span(t, qid, parent, depth, flags):
        # a probe fires before the fixture's clock read at a begin, after
        # it at an end, within the thread's gaps (see Truth)
        b_lo, _, _, e_hi = time_bounds(t, a)
        b = t["begin_ns"] - rng.randint(0, max(0, min(30000, t["begin_ns"] - b_lo - a.tol_clock)))
        e = t["end_ns"] + rng.randint(0, max(0, min(30000, e_hi - a.tol_clock - t["end_ns"])))
        if t["abnormal"]:
            e = t["end_ns"] + rng.randint(0, 3000000)  # noticed later
        s = {"query_id": qid, "span_id": sid(), "parent_span_id": parent,
             "depth": depth, "name": t["name"], "begin_ns": b, "end_ns": e,
             "duration_ns": e - b, "tid": t["tid"], "pid": t.get("pid", 0),
             "flags": flags + (["abnormal"] if t["abnormal"] else []),
             "abnormal": t["abnormal"], "_truth": t}
        if "root" in flags:
            s["query_id"] = s["span_id"]
        return s

    for r in truth.roots:
        if r["dur"] < a.min_query:
            continue
        root = span(r, 0, 0, 0, ["root"])
        out.append(root)
        kept = {r["id"]: root}

        def walk(t):
            for c in sorted(truth.children[t["id"]], key=lambda c: c["begin_ns"]):
                dur = c["dur"] + (3000000 if c["abnormal"] else 0)
                if dur >= a.min_span:
                    p = next(kept[x["id"]] for x in truth.ancestors(c) if x["id"] in kept)
                    s = span(c, root["span_id"], p["span_id"], c["depth"], [])
                    if s["duration_ns"] < a.min_span:  # jitter; keep it consistent
                        s["end_ns"] = s["begin_ns"] + a.min_span
                        s["duration_ns"] = a.min_span
                    kept[c["id"]] = s
                    out.append(s)
                walk(c)
        walk(r)
    return out


def mutate(spans, truth, kind, a, rng):
    """Returns a broken copy of spans, or None when kind does not apply."""
    spans = [dict(s) for s in spans]
    inner = [s for s in spans if "root" not in s["flags"]]
    roots = [s for s in spans if "root" in s["flags"]]
    normal = [s for s in inner if not s["abnormal"]]
    if kind == "drop":
        if not inner:
            return None
        victim = max(inner, key=lambda s: s["duration_ns"])
        return [s for s in spans if s is not victim]
    if kind == "drop-query":
        return [s for s in spans if s["query_id"] != roots[0]["span_id"]] if roots else None
    if kind == "reparent":
        for s in inner:
            if s["parent_span_id"] != s["query_id"]:
                s["parent_span_id"] = s["query_id"]
                return spans
        return None
    if kind == "depth":
        if not inner:
            return None
        rng.choice(inner)["depth"] += 1
        return spans
    if kind in ("late-begin", "short-end"):
        # 1 ms after the fixture's clock read at a begin, or before the
        # thread's previous clock read at an end: no preemption explains
        # that, only a wrong time
        if kind == "late-begin":
            cands = normal
        else:
            cands = [s for s in normal if time_bounds(s["_truth"], a)[2] > s["_truth"]["end_ns"] - 1000000]
        if not cands:
            return None
        s = rng.choice(cands)
        if kind == "late-begin":
            s["begin_ns"] += 1000000
        else:
            s["end_ns"] -= 1000000
        s["duration_ns"] = s["end_ns"] - s["begin_ns"]
        return spans
    if kind in ("early-begin", "late-end"):
        # 10 ms off, across the thread's previous (next) clock read; a
        # span in a gap that long could be preempted there
        if kind == "early-begin":
            cands = [s for s in normal if time_bounds(s["_truth"], a)[0] > s["_truth"]["begin_ns"] - 10000000]
        else:
            cands = [s for s in normal if time_bounds(s["_truth"], a)[3] < s["_truth"]["end_ns"] + 10000000]
        if not cands:
            return None
        s = rng.choice(cands)
        if kind == "early-begin":
            s["begin_ns"] -= 10000000
        else:
            s["end_ns"] += 10000000
        s["duration_ns"] = s["end_ns"] - s["begin_ns"]
        return spans
    if kind == "swap-names":
        # two siblings of other names swapped: each is paired with a call
        # whose gap does not hold it
        by_parent = collections.defaultdict(list)
        for s in inner:
            by_parent[s["parent_span_id"]].append(s)
        for sib in by_parent.values():
            for x in sib:
                y = next((y for y in sib if y["name"] != x["name"]), None)
                if y is not None:
                    x["name"], y["name"] = y["name"], x["name"]
                    return spans
        return None
    if kind == "abnormal-flag":
        ab = [s for s in inner if s["abnormal"]]
        if not ab:
            return None
        ab[0]["abnormal"] = False
        ab[0]["flags"] = [f for f in ab[0]["flags"] if f != "abnormal"]
        return spans
    if kind == "dup-id":
        if len(spans) < 2:
            return None
        spans[-1]["span_id"] = spans[0]["span_id"]
        return spans
    if kind == "dangling-parent":
        if not inner:
            return None
        inner[0]["parent_span_id"] = 987654321
        return spans
    if kind in ("outside", "short", "fast-query"):
        by_begin = {(s["tid"], s["name"], s["begin_ns"] // 100000): s for s in spans}
        if kind == "outside":
            cands = [r for r in truth.recs if r["query"] is None and not r["name"].startswith("(")]
        elif kind == "short":
            kept_q = {r["query"] for r in truth.roots if r["dur"] >= a.min_query}
            cands = [r for r in truth.recs if r["query"] in kept_q and r["parent_id"] is not None
                     and not r["abnormal"]]
        else:
            cands = list(truth.roots)
        threshold = a.min_query if kind == "fast-query" else a.min_span
        cands = [r for r in cands if kind == "outside" or longest(r, a) < threshold]
        cands = [r for r in cands if (r["tid"], r["name"], r["begin_ns"] // 100000) not in by_begin]
        if not cands or not roots:
            return None
        t = rng.choice(cands)
        root = next((o for o in roots if o["tid"] == t["tid"]), roots[0])
        s = {"query_id": root["span_id"], "span_id": 99999999, "parent_span_id": root["span_id"],
             "depth": max(1, t["depth"]), "name": t["name"], "begin_ns": t["begin_ns"],
             "end_ns": t["end_ns"], "duration_ns": t["dur"], "tid": t["tid"],
             "pid": root["pid"], "flags": [], "abnormal": False}
        if kind == "fast-query":
            s.update(query_id=99999999, parent_span_id=0, depth=0, flags=["root"])
        return spans + [s]
    raise SystemExit("check_spans: unknown mutation %r" % kind)


def preempt(records, spans, rng, delay):
    """What a preemption of delay between the entry probe of a call and
    the fixture's clock read looks like: that thread's clock reads from
    then on, and its probes after that one, come delay later. Returns
    (records, spans, name) copies, or None."""
    cands = [s for s in spans if "root" not in s["flags"] and not s["abnormal"]]
    if not cands:
        return None
    s = rng.choice(cands)
    t, tid = s["_truth"], s["tid"]
    recs = [dict(r) for r in records]
    for r in recs:
        if r["tid"] == tid:
            for k in ("begin_ns", "end_ns"):
                if r[k] >= t["begin_ns"]:
                    r[k] += delay
    out = [dict(o) for o in spans]
    for o in out:
        if o["tid"] == tid:
            if o["begin_ns"] > s["begin_ns"]:
                o["begin_ns"] += delay
            if o["end_ns"] > s["begin_ns"]:
                o["end_ns"] += delay
            o["duration_ns"] = o["end_ns"] - o["begin_ns"]
    return recs, out, s["name"]


def subset(cut_path, full_path, need):
    with open(cut_path) as f:
        cut = [l for l in f.read().splitlines() if l.strip()]
    with open(full_path) as f:
        full = [l for l in f.read().splitlines() if l.strip()]
    errs = []
    if cut != full[:len(cut)]:
        errs.append("the %d lines are not the first lines of the full dump" % len(cut))
    count = collections.Counter(json.loads(l)["query_id"] for l in full)
    got = collections.Counter(json.loads(l)["query_id"] for l in cut)
    for q, n in got.items():
        if n != count[q]:
            errs.append("query %s has %d of its %d spans" % (q, n, count[q]))
    if len(got) < need:
        errs.append("%d whole queries of %d, expected at least %d" % (len(got), len(count), need))
    for e in errs:
        print("check_spans: FAIL: truncated dump: " + e)
    if not errs:
        print("check_spans: OK: %d whole queries (%d spans) of %d" % (len(got), len(cut), len(count)))
    return 1 if errs else 0


MUTATIONS = ["drop", "drop-query", "reparent", "depth", "late-begin", "short-end", "early-begin",
             "late-end", "swap-names", "abnormal-flag",
             "dup-id", "dangling-parent", "outside", "short", "fast-query"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--truth")
    p.add_argument("--spans")
    p.add_argument("--synth", metavar="TRUTH")
    p.add_argument("--mutate", choices=MUTATIONS)
    p.add_argument("--selftest", metavar="TRUTH")
    p.add_argument("--min-span", type=duration, default=duration("5ms"))
    p.add_argument("--min-query", type=duration, default=duration("1s"))
    p.add_argument("--margin", type=duration, default=duration("0"),
                   help="a call must last this much more than a threshold (beyond the clock "
                   "error) to be required")
    p.add_argument("--tol-clock", type=duration, default=duration("100us"),
                   help="the error of spanprobe's monotonic-to-wall-clock conversion")
    p.add_argument("--tol-dur", type=duration, default=duration("1ms"),
                   help="an abnormal end may precede the truth's by this much; durations off "
                   "by more are counted in the summary")
    p.add_argument("--max-stall", type=duration, default=duration("50ms"),
                   help="the longest a thread may stall between a probe and the fixture's "
                   "clock read")
    p.add_argument("--expect-queries", type=int)
    p.add_argument("--min-checked-queries", type=int, default=1)
    p.add_argument("--pid", type=int)
    p.add_argument("--abnormal-roots", action="store_true",
                   help="the truth may have roots that did not return (panic out of the root, "
                   "thread exit, crash): their output root must be flagged abnormal")
    p.add_argument("--window", type=lambda v: tuple(int(x) for x in v.split(":")), metavar="A:B",
                   help="the tracer saw only wall-clock ns A to B: queries not inside are optional, "
                   "calls still running at B may be cut there")
    p.add_argument("--queries-after", type=int, metavar="NS",
                   help="the truth must have a query that began after NS")
    p.add_argument("--subset-of", metavar="FULL")
    p.add_argument("--require-queries", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rng = random.Random(a.seed)

    if a.synth or a.selftest:
        truth = Truth(load_jsonl(a.synth or a.selftest, "truth"))
        good = synth(truth, a, rng)
        if a.synth:
            out = mutate(good, truth, a.mutate, a, rng) if a.mutate else good
            for s in out or []:
                s.pop("_truth", None)
                print(json.dumps(s))
            return 0 if out is not None else 2
        bad = 0
        a.window = None
        errs, n, q = check(truth, good, a)
        print("selftest: clean synthetic output: %s (%d spans, %d queries)"
              % ("accepted" if not errs else "REJECTED", n, q))
        for e in errs[:10]:
            print("  " + e)
        bad += bool(errs)
        for kind in MUTATIONS:
            spans = mutate(good, truth, kind, a, rng)
            if spans is None:
                print("selftest: mutation %-16s n/a for this truth" % kind)
                continue
            errs, _, _ = check(truth, spans, a)
            print("selftest: mutation %-16s %s%s" % (kind, "rejected" if errs else "ACCEPTED (bad)",
                                                     ": " + errs[0] if errs else ""))
            bad += not errs
        # and what must pass: a thread preempted right after a probe
        for delay in (2200000, 40000000):
            pre = preempt(truth.recs, good, rng, delay)
            if pre is None:
                continue
            errs, _, _ = check(Truth(pre[0]), pre[1], a)
            print("selftest: %s preempted %s between its entry probe and the fixture's clock read: %s"
                  % (pre[2], ms(delay), "accepted" if not errs else "REJECTED (bad): " + errs[0]))
            bad += bool(errs)
        return 1 if bad else 0

    if a.subset_of and a.spans:
        return subset(a.spans, a.subset_of, a.require_queries)
    if not (a.truth and a.spans):
        p.error("--truth and --spans are required")
    truth = Truth(load_jsonl(a.truth, "truth"))
    spans = load_jsonl(a.spans, "spans")
    errs, n, q = check(truth, spans, a)
    if a.queries_after is not None and not any(r["begin_ns"] > a.queries_after for r in truth.roots):
        errs.append("fixture: no query began after %d" % a.queries_after)
    if errs:
        for e in errs[:MAX_ERRORS]:
            print("check_spans: FAIL: " + e)
        if len(errs) > MAX_ERRORS:
            print("check_spans: ... and %d more" % (len(errs) - MAX_ERRORS))
        return 1
    off = a.off_tol
    print("check_spans: OK: %d spans in %d queries paired with their calls among %d truth records%s"
          % (n, q, len(truth.recs), "; %d lasted more than %s longer or shorter than the truth, within "
             "their thread's gaps (at most %s)" % (len(off), ms(a.tol_dur), ms(max(abs(o["duration_ns"] - t["dur"])
                                                                          for o, t in off))) if off else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
