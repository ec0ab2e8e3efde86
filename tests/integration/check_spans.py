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

A truth span (or query) whose duration is within --margin of a threshold
may be kept or not: the tracer measures at other instants than the fixture.
A truth frame marked "tail_call" (it left by a jmp to another function)
may be flagged abnormal, but its duration must still be right.
The fixtures record with each timestamp how often the thread was preempted
so far (iv_begin, iv_end).  When that count changed between a timestamp
and the thread's neighbouring one, the probe may have fired long before
(begin) or after (end) the fixture read its clock: that span's times are
then only checked to be within --preempt-slack, and only towards longer.
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


class Truth:
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
        self.mark_preempted()

    def mark_preempted(self):
        events = collections.defaultdict(list)
        for r in self.recs:
            r["shaky_begin"] = r["shaky_end"] = False
            if "iv_begin" in r:
                events[r["tid"]] += [(r["begin_ns"], r["iv_begin"]), (r["end_ns"], r["iv_end"])]
        for ev in events.values():
            ev.sort()
        for r in self.recs:
            ev = events.get(r["tid"])
            if not ev:
                continue
            i = bisect.bisect_left(ev, (r["begin_ns"], -1)) - 1
            r["shaky_begin"] = i >= 0 and ev[i][1] != r["iv_begin"]
            j = bisect.bisect_right(ev, (r["end_ns"], float("inf")))
            r["shaky_end"] = j < len(ev) and ev[j][1] != r["iv_end"]
            # the thread's neighbouring timestamps: a probe cannot have
            # fired before the previous one or after the next one
            r["prev_ts"] = ev[i][0] if i >= 0 else None
            r["next_ts"] = ev[j][0] if j < len(ev) else None
        self.shaky = sum(1 for r in self.recs if r["shaky_begin"] or r["shaky_end"])

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

    def describe(self, name, tid, begin, tol):
        """Why a span that matched nothing might have been output."""
        near = [r for r in self.recs if r["name"] == name and r["tid"] == tid
                and abs(r["begin_ns"] - begin) <= tol]
        if not near:
            return "no such call in the truth"
        r = min(near, key=lambda r: abs(r["begin_ns"] - begin))
        if r["query"] is None:
            return "the truth has it outside any query"
        return "the truth has it in query %s (duration %s)" % (r["query"], ms(r["dur"]))


def closest_pairs(outs, truths, tol, slack=0):
    """Pairs (out, truth) of equal name, nearest begin first, within tol
    (or, where the truth's begin is unreliable, up to slack earlier)."""
    cand = []
    by_name = collections.defaultdict(list)  # name -> [(begin, j)], sorted
    for j, t in enumerate(truths):
        by_name[t["name"]].append((t["begin_ns"], j))
    for lst in by_name.values():
        lst.sort()
    for i, o in enumerate(outs):
        lst = by_name.get(o["name"], [])
        k = bisect.bisect_left(lst, (o["begin_ns"] - tol, -1))
        while k < len(lst) and lst[k][0] <= o["begin_ns"] + max(tol, slack):
            j = lst[k][1]
            t = truths[j]
            d = abs(o["begin_ns"] - t["begin_ns"])
            early = t["shaky_begin"] and 0 <= t["begin_ns"] - o["begin_ns"] <= slack
            if d <= tol or early:
                cand.append((d, i, j))
            k += 1
    cand.sort()
    used_o, used_t, pairs = set(), set(), []
    for _, i, j in cand:
        if i not in used_o and j not in used_t:
            used_o.add(i)
            used_t.add(j)
            pairs.append((outs[i], truths[j]))
    return pairs


def check(truth, spans, a):
    errs = []
    E = errs.append
    lo_span, hi_span = a.min_span - a.margin, a.min_span + a.margin
    lo_q, hi_q = a.min_query - a.margin, a.min_query + a.margin

    def cut_off(t):
        """Still running when the tracer stopped (--window): it may be
        missing, or end early and flagged abnormal."""
        return a.window is not None and t["end_ns"] > a.window[1]

    def shaky(t):
        return t["shaky_begin"] or t["shaky_end"]

    stalls = []

    def stalled(o, t, d):
        """Longer than the truth, but only within the thread's own timeline:
        the thread stalled between a probe and the fixture's clock read in
        a way no switch count shows (interrupts, a descheduled vCPU). Both
        ends still lie between the neighbouring timestamps of the thread,
        which any real error (a span cut short, or closed at a later event)
        would cross; such an error is also flagged abnormal."""
        if not (-a.tol_dur <= d <= a.preempt_slack):
            return False
        if t.get("prev_ts") is None or t.get("next_ts") is None:
            return False
        if o["begin_ns"] < t["prev_ts"] - a.tol_dur or o["end_ns"] > t["next_ts"] + a.tol_dur:
            return False
        stalls.append((o, t))
        return True

    def dur_ok(o, t):
        d = o["duration_ns"] - t["dur"]
        return (abs(d) <= a.tol_dur or (shaky(t) and -a.tol_dur <= d <= a.preempt_slack)
                or stalled(o, t, d))

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

    # -- queries: output roots <-> truth roots
    oroots = [s for s in spans if "root" in s["flags"]]
    for o in oroots:
        if o["query_id"] != o["span_id"]:
            E("root span %s: query_id %s != its span_id" % (o["span_id"], o["query_id"]))
        if o["depth"] != 0:
            E("root span %s: depth %d, expected 0" % (o["span_id"], o["depth"]))
    qmatch = {}  # truth root id -> output root
    oroots_by_tid, troots_by_tid = collections.defaultdict(list), collections.defaultdict(list)
    for o in oroots:
        oroots_by_tid[o["tid"]].append(o)
    for r in truth.roots:
        troots_by_tid[r["tid"]].append(r)
    for tid in set(oroots_by_tid) & set(troots_by_tid):
        for o, t in closest_pairs(oroots_by_tid[tid], troots_by_tid[tid], a.tol_begin,
                                  a.preempt_slack):
            qmatch[t["id"]] = o
    matched_oroots = {id(o) for o in qmatch.values()}
    for o in oroots:
        if id(o) not in matched_oroots:
            E("invented query: root %s %s tid %d begin %d (%s)" % (o["span_id"], o["name"], o["tid"], o["begin_ns"],
              truth.describe(o["name"], o["tid"], o["begin_ns"], a.tol_begin)))
    required_q = 0
    for r in sorted(truth.roots, key=lambda r: r["query"]):
        q = "query %s (%s, tid %d)" % (r["query"], ms(r["dur"]), r["tid"])
        if a.window and not (a.window[0] <= r["begin_ns"] and r["end_ns"] <= a.window[1]):
            continue  # not entirely seen by the tracer: may be missing
        if r["dur"] >= hi_q:
            required_q += 1
            if r["id"] not in qmatch:
                E("missing %s: its root is not in the output" % q)
        elif r["dur"] < lo_q and r["id"] in qmatch and not shaky(r):
            E("fast %s is in the output (min-query %s)" % (q, ms(a.min_query)))
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
              % (len(lst), qid, s["name"], s["begin_ns"],
                 truth.describe(s["name"], s["tid"], s["begin_ns"], a.tol_begin)))

    # -- spans inside each matched query
    checked = 0
    for rid, oroot in qmatch.items():
        troot = truth.by_id[rid]
        qname = "query %s" % troot["query"]
        checked += 1
        if cut_off(troot):
            pass  # still running when the tracer stopped: may end there
        elif troot["abnormal"]:
            if not oroot["abnormal"]:
                E("%s root %s left without returning but is not flagged abnormal" % (qname, troot["name"]))
            elif oroot["end_ns"] < troot["end_ns"] - a.tol_dur:
                E("%s root %s: abnormal end %d before the truth's %d (it can only be noticed later)"
                  % (qname, troot["name"], oroot["end_ns"], troot["end_ns"]))
        elif not dur_ok(oroot, troot):
            E("%s root %s: duration %s, truth %s" % (qname, troot["name"], ms(oroot["duration_ns"]), ms(troot["dur"])))
        elif oroot["abnormal"]:
            E("%s root flagged abnormal" % qname)
        desc = truth.descendants(troot)
        outs = by_query.get(oroot["span_id"], [])
        m = {troot["id"]: oroot}
        for o, t in closest_pairs(outs, desc, a.tol_begin, a.preempt_slack):
            m[t["id"]] = o
        matched = {id(o) for o in m.values()}
        for o in outs:
            if id(o) not in matched:
                E("%s: invented span %s begin %d duration %s tid %d (%s)" % (
                  qname, o["name"], o["begin_ns"], ms(o["duration_ns"]), o["tid"],
                  truth.describe(o["name"], o["tid"], o["begin_ns"], a.tol_begin)))
        by_span_id = {o["span_id"]: o for o in outs}
        by_span_id[oroot["span_id"]] = oroot
        for t in sorted(desc, key=lambda r: r["begin_ns"]):
            what = "%s: %s (truth id %d, depth %d, begin %d, %s%s)" % (
                qname, t["name"], t["id"], t["depth"], t["begin_ns"], ms(t["dur"]),
                ", abnormal" if t["abnormal"] else "")
            o = m.get(t["id"])
            if o is None:
                if t["dur"] >= hi_span and not cut_off(t):
                    E("missing %s" % what)
                continue
            checked += 1
            if not t["abnormal"] and t["dur"] < lo_span and not shaky(t) and not cut_off(t):
                E("kept span under min-span %s: %s" % (ms(a.min_span), what))
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
            if not t["abnormal"] and not dur_ok(o, t) and not cut_off(t):
                E("duration %s, truth %s: %s" % (ms(o["duration_ns"]), ms(t["dur"]), what))
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
    # a few host stalls are noise; many would be a pattern worth failing on
    if len(stalls) > max(3, checked // 1000):
        E("%d spans longer than the truth without any preemption seen (at most %d allowed), e.g. %s"
          % (len(stalls), max(3, checked // 1000),
             "; ".join("%s begin %d: %s, truth %s" % (t["name"], t["begin_ns"], ms(o["duration_ns"]), ms(t["dur"]))
                       for o, t in stalls[:3])))
    a.stalls = len(stalls)
    return errs, checked, len(qmatch)


# ---------------- synthetic output for the self-test ----------------

def synth(truth, a, rng):
    out, next_id = [], [1000]

    def sid():
        next_id[0] += rng.randint(1, 9)
        return next_id[0]

    def span(t, qid, parent, depth, flags):
        b = t["begin_ns"] + rng.randint(-30000, 30000)
        e = t["end_ns"] + rng.randint(-30000, 30000)
        if t["abnormal"]:
            e = t["end_ns"] + rng.randint(0, 3000000)  # noticed later
        s = {"query_id": qid, "span_id": sid(), "parent_span_id": parent,
             "depth": depth, "name": t["name"], "begin_ns": b, "end_ns": e,
             "duration_ns": e - b, "tid": t["tid"], "pid": t.get("pid", 0),
             "flags": flags + (["abnormal"] if t["abnormal"] else []),
             "abnormal": t["abnormal"],
             "_steady": not (t["shaky_begin"] or t["shaky_end"])}
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
    normal = [s for s in inner if not s["abnormal"] and s["_steady"]]
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
    if kind == "duration":
        if not normal:
            return None
        s = rng.choice(normal)
        s["end_ns"] += 3000000
        s["duration_ns"] += 3000000
        return spans
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
            cands = [r for r in truth.recs if r["query"] is None]
        elif kind == "short":
            kept_q = {r["query"] for r in truth.roots if r["dur"] >= a.min_query}
            cands = [r for r in truth.recs if r["query"] in kept_q and r["parent_id"] is not None
                     and not r["abnormal"] and r["dur"] < a.min_span - a.margin]
        else:
            cands = [r for r in truth.roots if r["dur"] < a.min_query - a.margin]
        cands = [r for r in cands if not (r["shaky_begin"] or r["shaky_end"])]
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


MUTATIONS = ["drop", "drop-query", "reparent", "depth", "duration", "abnormal-flag",
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
    p.add_argument("--margin", type=duration, default=duration("0.5ms"))
    p.add_argument("--tol-begin", type=duration, default=duration("2ms"))
    p.add_argument("--tol-dur", type=duration, default=duration("1ms"))
    p.add_argument("--preempt-slack", type=duration, default=duration("20ms"))
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
                s.pop("_steady", None)
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
    print("check_spans: OK: %d spans in %d queries checked against %d truth records%s%s"
          % (n, q, len(truth.recs), " (%d preempted near a timestamp)" % truth.shaky if truth.shaky else "",
             "; %d stalled between a probe and the fixture's clock" % a.stalls if getattr(a, "stalls", 0) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
