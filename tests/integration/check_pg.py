#!/usr/bin/env python3
"""PostgreSQL queries traced through USDT roots, against the psql script.

usage: check_pg.py SPANS.jsonl SLOW_QUERY... -- ERROR_QUERY... -- FAST_QUERY...

Every slow query must be a root span whose "query" attribute is exactly
its text; the slow ERROR queries (cancelled by statement_timeout) are
flagged "error"; no fast query, failed or not, is kept.
"""
import json
import sys


def main():
    args = sys.argv[2:]
    slow = args[:args.index("--")]
    rest = args[args.index("--") + 1:]
    failing = rest[:rest.index("--")]
    fast = rest[rest.index("--") + 1:]
    with open(sys.argv[1]) as f:
        spans = [json.loads(line) for line in f if line.strip()]
    roots = [s for s in spans if s["depth"] == 0]
    errors = []
    texts = [r.get("attrs", {}).get("query") for r in roots]
    for r in roots:
        if r["name"] != "postgresql:query":
            errors.append("root named %r" % r["name"])
    for q in slow + failing:
        n = texts.count(q)
        if n != 1:
            errors.append("slow query %r kept %d times" % (q, n))
    for r in roots:
        q = r.get("attrs", {}).get("query")
        want_error = q in failing
        if bool(r.get("error")) != want_error:
            errors.append("query %r: error %s, expected %s" % (q, r.get("error"), want_error))
        if q in fast:
            errors.append("fast query %r kept" % q)
        if q in slow + failing and r["duration_ns"] < 1_000_000_000:
            errors.append("query %r kept with %d ns" % (q, r["duration_ns"]))
        kids = [s for s in spans if s["parent_span_id"] == r["span_id"] and s["name"] == "pg_sleep"]
        if q in slow + failing and len(kids) != 1:
            errors.append("query %r: %d pg_sleep children" % (q, len(kids)))
    if len(roots) != len(slow) + len(failing):
        errors.append("%d queries kept, expected %d" % (len(roots), len(slow) + len(failing)))
    for e in errors:
        print("check_pg: " + e)
    if errors:
        print("check_pg: FAILED")
        return 1
    print("check_pg: OK: %d slow queries found with their text, %d flagged error, %d fast ones dropped"
          % (len(slow) + len(failing), len(failing), len(fast)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
