"""What the checkers of spanprobe's async spans share: durations on the
command line, `spanprobe dump --json` / truth JSONL files, and the
integrity of an output span tree."""
import argparse
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
