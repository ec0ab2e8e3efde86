#!/usr/bin/env python3
"""Checks the spans of rsqserver --panic-tasks N (tokio tasks that panic
inside tokio's task harness) against the tasks' own truth.

  check_task_panics.py TRUTH_JSONL SPANS_JSON N

Every task 0..N-1 has one truth line (written during the unwind) and must
have exactly one span of rsqserver::panics::panicking_task, found by its
captured argument `task` (identity, not time): abnormal, two polls (one
suspension, then the panic), first polled on the truth's first thread,
and covering the truth's interval (begun before the task's first
statement, ended after its guard's drop; 50 us of slack for the clock
conversion, in the direction that only grows under load). No other span.
"""
import json
import sys

NAME = "rsqserver::panics::panicking_task"
SLACK_NS = 50_000


def main():
    truth_path, spans_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    truth = {}
    with open(truth_path) as f:
        for line in f:
            t = json.loads(line)
            truth[t["task"]] = t
    with open(spans_path) as f:
        spans = [json.loads(line) for line in f if line.strip()]
    bad = []
    if sorted(truth) != list(range(n)) or not all(t["panicking"] for t in truth.values()):
        bad.append("the truth does not hold tasks 0..%d, each ended by a panic" % (n - 1))
    seen = {}
    for s in spans:
        task = s.get("attrs", {}).get("task")
        if s["name"] != NAME or task not in truth:
            bad.append("invented span: %s task %s" % (s["name"], task))
            continue
        if task in seen:
            bad.append("task %d: two spans" % task)
        seen[task] = s
        t = truth[task]
        why = []
        if not s.get("abnormal"):
            why.append("not abnormal")
        if s.get("poll_count") != 2:
            why.append("%s polls, not 2" % s.get("poll_count"))
        if s["tid"] != t["tid_first"]:
            why.append("first polled on %d, the truth says %d" % (s["tid"], t["tid_first"]))
        if s["begin_ns"] > t["begin_ns"] + SLACK_NS:
            why.append("begins %.1f us after the task's first statement"
                       % ((s["begin_ns"] - t["begin_ns"]) / 1e3))
        if s["end_ns"] < t["end_ns"] - SLACK_NS:
            why.append("ends %.1f us before the task's guard was dropped"
                       % ((t["end_ns"] - s["end_ns"]) / 1e3))
        if why:
            bad.append("task %d: %s" % (task, "; ".join(why)))
    missing = sorted(set(truth) - set(seen))
    if missing:
        bad.append("%d tasks have no span: %s" % (len(missing), missing[:20]))
    for b in bad[:20]:
        print("   FAIL: " + b)
    if bad:
        print("check_task_panics: FAIL: %d problems" % len(bad))
        return 1
    print("   check_task_panics: OK: %d tasks, each one abnormal span with its own "
          "number, first thread and interval" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
