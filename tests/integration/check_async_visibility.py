#!/usr/bin/env python3
"""Checks the async visibility in `spanprobe symbols --json` (issue 3).

  check_async_visibility.py --json FILE --build typed|lines

FILE is the report for tests/fixtures/rsqserver.syms on rsqserver or
rsqserver-v0 (typed: release with debug = true) or rsqserver-lines
(debug = "line-tables-only"). Every pattern must carry exactly the class
the fixture's source implies (tests/fixtures/rust/src/servers.rs), with
the root and member path of inlined async fns, and the reason when DWARF
types are missing. Prints one line per pattern; exits 1 on a mismatch.
"""
import argparse
import json
import sys

ROOT = "rsqserver::servers::spawn_query::{async_block#0}"
NEEDS = "nested decoding needs debug info (DWARF types)"

# pattern -> (class, [(name, member path)] for inlined items)
TYPED = {
    "rsqserver::servers::execute_query::{*}":
        ("inlined", [("rsqserver::servers::execute_query", "__awaitee")]),
    "rsqserver::lakehouse::query::make_session_context::{*}": ("invisible", None),
    "rsqserver::servers::query_planning::{*}":
        ("inlined", [("rsqserver::servers::query_planning", "__awaitee.__awaitee")]),
    "rsqserver::servers::query_execution::{*}":
        ("inlined", [("rsqserver::servers::query_execution", "__awaitee.__awaitee")]),
    "rsqserver::lakehouse::partition_cache::fetch_partitions::{*}":
        ("inlined", [("rsqserver::lakehouse::partition_cache::fetch_partitions",
                      "__awaitee.__awaitee.__awaitee")]),
    "rsqserver::lakehouse::block_processor::process_block::{*}":
        ("inlined", [("rsqserver::lakehouse::block_processor::process_block",
                      "__awaitee.__awaitee.__awaitee")]),
    "rsqserver::lakehouse::metadata::fetch_*_metadata::{*}":
        ("inlined", [("rsqserver::lakehouse::metadata::fetch_stream_metadata",
                      "__awaitee.__awaitee.futures.__0.Future.__0"),
                     ("rsqserver::lakehouse::metadata::fetch_block_metadata",
                      "__awaitee.__awaitee.futures.__1.Future.__0")]),
    "<*ParquetBlockSource as *BlockSource>::read_blocks::{*}":
        ("inlined", [("<rsqserver::lakehouse::reader_factory::ParquetBlockSource as "
                      "rsqserver::lakehouse::block_source::BlockSource>::read_blocks",
                      "__awaitee.__awaitee.__awaitee")]),
    "<*MaterializedView as *TableScan>::scan": (None, None),
    "rsqserver::lakehouse::materialized_view::MaterializedView::scan_partitions::{*}":
        ("out_of_line", 0xb0),
    "rsqserver::lakehouse::jit_partitions::materialize_partitions::{*}":
        ("out_of_line", 0xa0),
}


def expected(pattern, build):
    cls, detail = TYPED[pattern]
    if build == "lines" and cls in ("inlined", "invisible"):
        return "unknown", None
    return cls, detail


def check_items(pattern, cls, detail, items):
    """Problems with the items of one pattern, as strings."""
    bad = []
    if cls == "inlined":
        got = [(i["name"], i["member_path"]) for i in items]
        if got != detail:
            bad.append("items %r, expected %r" % (got, detail))
        bad += ["root %r" % i["root"] for i in items if i["root"] != ROOT]
    elif cls == "invisible":
        it = items[0]
        if len(items) != 1 or it["root"] != ROOT or it["await_points"] != 0:
            bad.append("expected one item in root %s that never suspends: %r" % (ROOT, items))
    elif cls == "out_of_line":
        it = items[0]
        if len(items) != 1 or it["state_offset"] != detail or it["state_size"] != 1 \
                or it["self_register"] != "rdi":
            bad.append("expected one poll, state at self+%#x/1: %r" % (detail, items))
    elif cls == "unknown":
        if len(items) != 1 or it_text(items[0]).find(NEEDS) < 0:
            bad.append("expected the reason %r: %r" % (NEEDS, items))
    return bad


def it_text(item):
    return item.get("text") or ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--build", choices=("typed", "lines"), required=True)
    a = ap.parse_args()
    doc = json.load(open(a.json))
    seen, failed = set(), False
    for p in doc["patterns"]:
        pat = p["pattern"]
        seen.add(pat)
        if pat not in TYPED:
            print("   FAIL: unexpected pattern %r" % pat)
            failed = True
            continue
        cls, detail = expected(pat, a.build)
        got = p["async"]["class"] if p["async"] else None
        bad = [] if got == cls else ["class %r, expected %r" % (got, cls)]
        if not bad and cls:
            bad = check_items(pat, cls, detail, p["async"]["items"])
        print("   %-4s %-12s %s%s" % ("ok" if not bad else "FAIL", got, pat,
                                      ": " + "; ".join(bad) if bad else ""))
        failed |= bool(bad)
    for pat in set(TYPED) - seen:
        print("   FAIL: pattern %r missing from the report" % pat)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
