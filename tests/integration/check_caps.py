#!/usr/bin/env python3
"""Captured values against capserver's own truth.

usage: check_caps.py TRUTH.jsonl SPANS.jsonl (spanprobe dump --json)

Every call capserver recorded must be exactly one span whose attrs are
what the call really got and returned: a string longer than 127 bytes
comes cut and named in attrs_truncated, a pointer the fixture knows to
be unmapped comes as null and named in attrs_unreadable, and the span
carries "error": true exactly when the call failed. USDT requests (the
pair capserver:req__start/done, failing ones through req__fail) likewise,
and their semaphore was raised while spanprobe was attached.
"""
import json
import sys

# span name -> (truth fn, attribute that identifies the call)
KEYS = {
    "process_block": ("process_block", "block_id"),
    "open_part": ("open_part", "part"),
    "lookup": ("lookup", "key"),
    "check_status": ("check_status", "v"),
    "handle_query": ("handle_query", "qid"),
    "capserver:req": ("req", "id"),
    "capserver:req__step": ("step", "step"),
}
# truth fields that are not attributes
NOT_ATTRS = {"fn", "error", "semaphore"}
MAX_STR = 127


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def expected_attrs(t):
    attrs, unreadable, truncated = {}, [], []
    for k, v in t.items():
        if k in NOT_ATTRS:
            continue
        if v is None:
            unreadable.append(k)
        elif isinstance(v, str) and len(v.encode()) > MAX_STR:
            v = v.encode()[:MAX_STR].decode()
            truncated.append(k)
        attrs[k] = v
    return attrs, sorted(unreadable), sorted(truncated)


def main():
    truth, spans = load(sys.argv[1]), load(sys.argv[2])
    errors = []
    by_id = {}
    for s in spans:
        if s["name"] not in KEYS:
            errors.append("unexpected span %s" % s["name"])
            continue
        fn, key = KEYS[s["name"]]
        ident = s.get("attrs", {}).get(key)
        if (fn, ident) in by_id:
            errors.append("two spans for %s %s=%s" % (fn, key, ident))
        by_id[(fn, ident)] = s
    by_span = {s["span_id"]: s for s in spans}
    checked = failed = 0
    for t in truth:
        key = dict(KEYS.values())[t["fn"]]
        s = by_id.pop((t["fn"], t[key]), None)
        if s is None:
            errors.append("no span for %s %s=%s" % (t["fn"], key, t[key]))
            continue
        attrs, unreadable, truncated = expected_attrs(t)
        got = (s.get("attrs", {}), sorted(s.get("attrs_unreadable", [])),
               sorted(s.get("attrs_truncated", [])))
        if got != (attrs, unreadable, truncated):
            errors.append("%s %s=%s: attrs %s, truth %s" %
                          (t["fn"], key, t[key], got, (attrs, unreadable, truncated)))
        if bool(s.get("error", False)) != bool(t.get("error", False)):
            errors.append("%s %s=%s: error %s, truth %s" %
                          (t["fn"], key, t[key], s.get("error", False), t.get("error")))
        if "semaphore" in t and t["semaphore"] < 1:
            errors.append("req %s ran with its semaphore at %s" % (t["id"], t["semaphore"]))
        if t["fn"] == "step":
            # an instant event, inside its request's span
            parent = by_span.get(s["parent_span_id"], {})
            if parent.get("name") != "capserver:req" or parent.get("attrs", {}).get("id") != t["id"] \
                    or "event" not in s["flags"] or s["duration_ns"] != 0:
                errors.append("step %s: not an event of request %s (parent %s, flags %s)" %
                              (t["step"], t["id"], parent.get("attrs"), s["flags"]))
        failed += bool(t.get("error"))
        checked += 1
    for (fn, ident) in by_id:
        errors.append("span %s %s matches no call" % (fn, ident))
    for e in errors[:20]:
        print("check_caps: " + e)
    if errors:
        print("check_caps: FAILED: %d problems" % len(errors))
        return 1
    print("check_caps: OK: %d calls checked (%d failed ones flagged error)" % (checked, failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
