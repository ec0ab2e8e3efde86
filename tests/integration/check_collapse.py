#!/usr/bin/env python3
"""check_collapse.py --tree TXT --expanded TXT --spans JSONL --truth JSONL

Collapsed siblings in `spanprobe dump` trees (issue 15, part 4), for a
qserver session traced with --min-span 0 --min-query 0:
  - every run of 3+ consecutive same-name calls under one parent in the
    fixture's own truth is one collapsed line `NAME ×N` under its
    parent's line, N exactly the truth's count, and the total no smaller
    than the truth's (spanprobe's window encloses the fixture's);
  - what the run's calls called is one `NAME ×N` (or plain) line per name
    right below, N again the truth's count;
  - total, p50 and max are exactly those of the same spans in dump --json;
  - `dump --expand` prints every span of the JSON on a line of its own
    and collapses nothing.
"""
import argparse
import json
import re
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_spans import Truth  # noqa: E402

TOL_CLOCK = 100000      # check_spans.py's --tol-clock and --max-stall
MAX_STALL = 50000000

MIN_RUN = 3


def fmt(ns):
    """sp_print_duration."""
    if ns < 999950:
        t = (ns + 50) // 100
        return "%d.%d µs" % (t // 10, t % 10)
    t = ns // 100000 + (ns % 100000 >= 50000)
    return "%d.%d ms" % (t // 10, t % 10)


def runs(kids):
    """Consecutive same-name runs of kids (sorted by begin) of MIN_RUN+."""
    out, i = [], 0
    while i < len(kids):
        j = i
        while j < len(kids) and kids[j]["name"] == kids[i]["name"]:
            j += 1
        if j - i >= MIN_RUN:
            out.append(kids[i:j])
        i = j
    return out


def tree_of(spans, key, parent_key):
    kids = defaultdict(list)
    for s in spans:
        kids[s[parent_key]].append(s)
    for v in kids.values():
        v.sort(key=lambda s: (s["begin_ns"], s[key]))
    return kids


def parse_blocks(path):
    """Query id -> its tree lines (without the header line)."""
    blocks, cur = {}, None
    for line in open(path, encoding="utf-8"):
        m = re.match(r"query (\d+) pid \d+ tid \d+  ", line)
        if m:
            cur = blocks.setdefault(int(m.group(1)), [])
            cur.append(line.rstrip("\n"))
        elif cur is not None and re.match(r"^(\[\+\d+\])?(│   |    )*(├── |└── )", line):
            cur.append(line.rstrip("\n"))
        else:
            cur = None
    return blocks


def label(line):
    """(indent, text) of a tree line: the text after the branch."""
    m = re.match(r"^((?:│   |    )*)(?:├── |└── )(.*)$", line)
    return (len(m.group(1)) // 4, m.group(2)) if m else (-1, line)


def collapsed_lines(lines):
    """[(parent text, depth, name, count, rest)] of the ×N lines."""
    out, stack = [], []
    for line in lines[1:]:
        depth, text = label(line)
        stack[depth:] = [text]
        m = re.match(r"^(.*) ×(\d+)  (total .*)$", text)
        if m:
            parent = stack[depth - 1] if depth else lines[0]
            out.append((parent, depth, m.group(1), int(m.group(2)), m.group(3)))
    return out


def json_figures(qid, ss, s_kids, pname, name, count, trun, printed):
    """The collapsed line's figures against the same spans in the JSON."""
    sp_parent = [s for s in ss if s["name"] == pname
                 and any(k["name"] == name for k in s_kids[s["span_id"]])]
    srun = [r for p in sp_parent for r in runs(s_kids[p["span_id"]]) if r[0]["name"] == name]
    if len(srun) != 1 or len(srun[0]) != count:
        return ["query %d: the JSON has runs %s of %s" % (qid, [len(r) for r in srun], name)]
    d = sorted(s["duration_ns"] for s in srun[0])
    figures = "total %s, p50 %s, max %s" % (fmt(sum(d)), fmt(d[(len(d) - 1) // 2]), fmt(d[-1]))
    bad = []
    if not printed.startswith(figures):
        bad.append("query %d: %s ×%d: '%s', the JSON gives '%s'" % (qid, name, count, printed, figures))
    t_total = sum(s["end_ns"] - s["begin_ns"] for s in trun)
    if sum(d) < t_total - count * 50000:
        bad.append("query %d: %s ×%d total %d ns < the truth's %d ns" % (qid, name, count, sum(d), t_total))
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree")
    ap.add_argument("--expanded")
    ap.add_argument("--spans", help="dump --json of the same spans; without it (the live "
                    "trees of attach/run) the queries come from the tree headers and only "
                    "the truth's counts are checked")
    ap.add_argument("--truth", required=True)
    a = ap.parse_args()
    spans = [json.loads(l) for l in open(a.spans) if l.strip()] if a.spans else []
    truth = [json.loads(l) for l in open(a.truth) if l.strip()]
    trees = parse_blocks(a.tree) if a.tree else {}
    expanded = parse_blocks(a.expanded) if a.expanded else {}
    by_q = defaultdict(list)
    for s in spans:
        by_q[s["query_id"]].append(s)
    if not a.spans:
        # the root of each printed query, from its header line
        for qid, lines in (trees or expanded).items():
            m = re.match(r"query (\d+) pid \d+ tid (\d+)  (\S+)  ([\d.]+) ([µm]s)  \(", lines[0])
            by_q[qid] = [{"span_id": qid, "tid": int(m.group(2)), "name": m.group(3),
                          "header": lines[0]}]
    t_by_q = defaultdict(list)
    for s in truth:
        t_by_q[s["query"]].append(s)
    # a truth query is the spanprobe query whose root begins in the entry
    # gap of the truth's root call on its thread (check_spans.Truth: by
    # identity, whatever preemption did between probe and clock read)
    t_roots = [s for s in truth if not s["parent_id"] and s["name"] == "handle_query"]
    calls = Truth(truth) if a.spans else None
    bad, checked_runs = [], 0
    for qid, ss in sorted(by_q.items()):
        root = [s for s in ss if s["span_id"] == qid][0]
        if a.spans:
            r = calls.locate(root["tid"], root["name"], root["begin_ns"], TOL_CLOCK, MAX_STALL)
            tr = [r] if r is not None and r["parent_id"] is None and r["query"] is not None else []
        else:
            # printed in completion order per thread: the i-th of its tid
            mine = sorted([q for q in by_q if by_q[q][0]["tid"] == root["tid"]])
            theirs = sorted([r for r in t_roots if r["tid"] == root["tid"]],
                            key=lambda r: r["begin_ns"])
            i = mine.index(qid)
            tr = theirs[i:i + 1] if len(mine) == len(theirs) else []
        if len(tr) != 1:
            bad.append("query %d: %d truth roots match" % (qid, len(tr)))
            continue
        tq = t_by_q[tr[0]["query"]]
        t_kids = tree_of(tq, "id", "parent_id")
        s_kids = tree_of(ss, "span_id", "parent_span_id") if a.spans else {}
        if a.expanded:
            ex = expanded.get(qid, [])
            n = len(ss) if a.spans else len(tq)
            if len(ex) != n or any(" ×" in l for l in ex):
                bad.append("query %d: --expand printed %d lines for %d spans" % (qid, len(ex), n))
        if not a.tree:
            continue
        lines = trees.get(qid)
        if not lines:
            bad.append("query %d: not in the tree output" % qid)
            continue
        got = collapsed_lines(lines)
        # expected, from the truth (counts) and the JSON (figures)
        want = []
        for t_parent in tq:
            for run in runs(t_kids[t_parent["id"]]):
                want.append((t_parent["name"], run[0]["name"], len(run), run))
        for pname, name, count, trun in want:
            hit = [g for g in got if g[2] == name and g[0].split("  ")[0].endswith(pname)
                   and g[3] == count]
            if len(hit) != 1:
                bad.append("query %d: %s ×%d under %s in the truth; tree has %s" % (
                    qid, name, count, pname,
                    [g[:4] for g in got if g[2] == name] or "no collapsed line"))
                continue
            checked_runs += 1
            if a.spans:
                bad += json_figures(qid, ss, s_kids, pname, name, count, trun, hit[0][4])
            # what the run called: one line per name, the truth's count
            t_called = defaultdict(int)
            for s in trun:
                for k in t_kids[s["id"]]:
                    t_called[k["name"]] += 1
            at = lines.index([l for l in lines if label(l)[1].startswith(name + " ×%d " % count)][0])
            depth = label(lines[at])[0]
            below = {}
            for l in lines[at + 1:]:
                dd, text = label(l)
                if dd <= depth:
                    break
                if dd == depth + 1:
                    m = re.match(r"^(.*?)(?: ×(\d+)  total .*|  [\d.]+ [µm]s.*)$", text)
                    below[m.group(1)] = int(m.group(2) or 1)
            if below != dict(t_called):
                bad.append("query %d: under %s ×%d: %s, the truth: %s" % (qid, name, count, below, dict(t_called)))
    for b in bad[:20]:
        print("   FAIL: " + b)
    if not checked_runs and a.tree:
        bad.append("no run to check")
        print("   FAIL: no run of same-name siblings in the truth")
    if not bad:
        print("   %d queries: %s%s" % (
            len(by_q), "%d runs collapsed with the truth's counts%s" % (
                checked_runs, " and the JSON's figures" if a.spans else "") if a.tree else "",
            ("; " if a.tree else "") + "--expand prints every span" if a.expanded else ""))
    sys.exit(1 if bad else 0)


main()
