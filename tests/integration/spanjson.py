"""What the checkers of spanprobe's async spans share: durations on the
command line, `spanprobe dump --json` / truth JSONL files, and the
integrity of an output span tree."""
import argparse
import bisect
import json
import re

UNITS = {"ns": 1, "us": 1000, "ms": 10**6, "s": 10**9}


def dur(text):
    """'5ms', '250us', '1s' or plain ns."""
    m = re.fullmatch(r"(\d+)(ns|us|ms|s)?", text)
    if not m:
        raise argparse.ArgumentTypeError("bad duration " + text)
    return int(m.group(1)) * UNITS[m.group(2) or "ns"]


def load(path):
    """One JSON object per non-empty line."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def tree_errors(out):
    """Span ids unique, every parent present; the spans by id."""
    errs = []
    ids = [s["span_id"] for s in out]
    if len(ids) != len(set(ids)):
        errs.append("span ids are not unique")
    by_id = {s["span_id"]: s for s in out}
    for s in out:
        if s["parent_span_id"] and s["parent_span_id"] not in by_id:
            errs.append("span %d: parent %d is not in the output"
                        % (s["span_id"], s["parent_span_id"]))
    return errs, by_id


def thread_gaps(truth, max_stall):
    """Sets each truth record's gap_before and gap_after: from its first
    statement back to the previous clock read of the truth on that thread
    (tid_first), and from its last statement on to the next one
    (tid_last), at most max_stall. A probe at a future's first poll fires
    in the gap before its first statement, the probe at the poll that
    returns in the gap after its last: preemption between probe and
    statement widens those gaps, but cannot move the probe out of them."""
    first = {}
    for t in truth:
        first.setdefault(t["tid_first"], []).append(t["begin_ns"])
        first.setdefault(t["tid_last"], []).append(t["end_ns"])
    for ts in first.values():
        ts.sort()
    last = first  # one timeline per thread, begins and ends alike
    for t in truth:
        ts = first[t["tid_first"]]
        i = bisect.bisect_left(ts, t["begin_ns"]) - 1
        t["gap_before"] = min(max_stall, t["begin_ns"] - ts[i]) if i >= 0 else max_stall
        ts = last[t["tid_last"]]
        j = bisect.bisect_right(ts, t["end_ns"])
        t["gap_after"] = min(max_stall, ts[j] - t["end_ns"]) if j < len(ts) else max_stall


def begin_fits(s, t, slack):
    """s began within slack of the truth t, or earlier by up to the gap
    before t's first statement more (the probe, then preemption)."""
    d = t["begin_ns"] - s["begin_ns"]
    return -slack <= d <= slack + t["gap_before"]


def end_fits(s, t, slack):
    """s ended within slack of the truth t, or later by up to the gap after
    t's last statement more."""
    d = s["end_ns"] - t["end_ns"]
    return -slack <= d <= slack + t["gap_after"]


# The longest wait for the CPU forgiven to a span's begin or end when the
# fixture's own thread was preempted next to the point where it read its
# clock (the probe fired on the other side of that wait).
MAX_WAIT = 100 * 10**6


class Preempt:
    """Per thread, the truth's (time, involuntary context switches)
    points. The fixture reads its clock, then its count: a count that grew
    since its previous point on that thread (begins), or by its next point
    or within the span (ends), means it may have waited for the CPU between
    the probe and its clock read."""

    def __init__(self, truth):
        self.pts = {}
        for t in truth:
            self.pts.setdefault(t["tid_first"], []).append((t["begin_ns"], t["iv_begin"]))
            self.pts.setdefault(t["tid_last"], []).append((t["end_ns"], t["iv_end"]))
        for v in self.pts.values():
            v.sort()

    def at_begin(self, t):
        prev = [c for w, c in self.pts.get(t["tid_first"], []) if w < t["begin_ns"]]
        return not prev or t["iv_begin"] > prev[-1]

    def at_end(self, t):
        nxt = [c for w, c in self.pts.get(t["tid_last"], []) if w > t["end_ns"]]
        return (not nxt or nxt[0] > t["iv_end"]
                or (t["tid_first"] == t["tid_last"] and t["iv_end"] > t["iv_begin"]))
