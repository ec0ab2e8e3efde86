#!/usr/bin/env python3
"""check_syms_example.py --symbols JSON [--spans JSONL --queries N]

Checks docs/examples/flight-sql-srv.syms against the stand-in
tests/fixtures/micromegas (same crate names and module paths as
micromegas' flight-sql-srv).

--symbols: `spanprobe symbols --json` of the list on the stand-in. Every
pattern must resolve to exactly the function its line is written for
(FIXTURE below, from the stand-in's source), in the form its kind gives:
  sync        one attachable function of that name, no async part;
  async_trait the poll of the boxed `async move` block of an
              #[async_trait] method: one out-of-line poll, named
              NAME::{async_block#0} or NAME::{{closure}};
  async_fn    an inherent async fn: its out-of-line poll, or inlined into
              a probed carrier (what the release build does is the
              compiler's choice; invisible or unmatched is a failure).
Nothing is unmatched.

--spans: `dump --json` of `spanprobe run --min-span 0 --min-query 0` on
flight-sql-srv -n N: N queries, each the root and exactly one span of
every other line (execute_query calls each function once), and
create_reader a child of MaterializedView::scan's poll, which calls it.
"""
import argparse
import json
import sys

A = "micromegas_analytics::lakehouse::"
ROOT = "micromegas::servers::flight_sql_service_impl::FlightSqlServiceImpl::execute_query"
# pattern -> (kind, name)
FIXTURE = {
    ROOT + "::{*}": ("async_fn", ROOT),
    A + "query::make_session_context::{*}": ("async_fn", A + "query::make_session_context"),
    "<*ViewInstanceTableFunction as *TableFunctionImpl>::call_with_args":
        ("sync", "<" + A + "view_instance_table_function::ViewInstanceTableFunction as "
         "micromegas_analytics::datafusion::TableFunctionImpl>::call_with_args"),
    A + "partition_cache::PartitionCache::fetch_overlapping_insert_range::{*}":
        ("async_fn", A + "partition_cache::PartitionCache::fetch_overlapping_insert_range"),
    "<*LivePartitionProvider as *QueryPartitionProvider>::fetch::{*}":
        ("async_trait", "<" + A + "partition_cache::LivePartitionProvider as "
         + A + "partition_cache::QueryPartitionProvider>::fetch"),
    "<*PartitionCache as *QueryPartitionProvider>::fetch::{*}":
        ("async_trait", "<" + A + "partition_cache::PartitionCache as "
         + A + "partition_cache::QueryPartitionProvider>::fetch"),
    A + "partitioned_execution_plan::make_partitioned_execution_plan":
        ("sync", A + "partitioned_execution_plan::make_partitioned_execution_plan"),
    "<*LogBlockProcessor as *BlockProcessor>::process::{*}":
        ("async_trait", "<" + A + "log_block_processor::LogBlockProcessor as "
         + A + "block_partition_spec::BlockProcessor>::process"),
    "<*MetricsBlockProcessor as *BlockProcessor>::process::{*}":
        ("async_trait", "<" + A + "metrics_block_processor::MetricsBlockProcessor as "
         + A + "block_partition_spec::BlockProcessor>::process"),
    "<*AsyncEventsBlockProcessor as *BlockProcessor>::process::{*}":
        ("async_trait", "<" + A + "async_events_block_processor::AsyncEventsBlockProcessor as "
         + A + "block_partition_spec::BlockProcessor>::process"),
    "<*BatchPartitionMerger as *PartitionMerger>::execute_merge_query::{*}":
        ("async_trait", "<" + A + "batch_partition_merger::BatchPartitionMerger as "
         + A + "merge::PartitionMerger>::execute_merge_query"),
    "<*ReaderFactory as *ParquetFileReaderFactory>::create_reader":
        ("sync", "<" + A + "reader_factory::ReaderFactory as "
         "micromegas_analytics::datafusion::ParquetFileReaderFactory>::create_reader"),
    "<*MaterializedView as *TableProvider>::scan::{*}":
        ("async_trait", "<" + A + "materialized_view::MaterializedView as "
         "micromegas_analytics::datafusion::TableProvider>::scan"),
}
POLL_SUFFIXES = ("::{async_block#0}", "::{{closure}}", "::{closure#0}")


def span_name(kind, name):
    """The name a span of this line carries in dump --json."""
    return name + "::{async_block#0}" if kind == "async_trait" else name


def check_pattern(p, carriers):
    kind, name = FIXTURE[p["pattern"]]
    matches = [m["name"] for m in p["matches"]]
    asy = p.get("async") or {}
    cls = asy.get("class")
    bad_attach = [m["name"] for m in p["matches"] if not m.get("attachable")]
    if bad_attach:
        return "not attachable: %s" % bad_attach
    if kind == "sync":
        if matches != [name] or asy:
            return "expected the sync function %s alone, got %s (async %s)" % (name, matches, cls)
        return "sync function"
    if kind == "async_trait":
        if len(matches) != 1 or matches[0] not in [name + s for s in POLL_SUFFIXES] \
                or cls != "out_of_line":
            return "expected the boxed poll %s::{...} out of line, got %s (async %s)" % (
                name, matches, cls)
        return "out-of-line poll (boxed)"
    if cls == "out_of_line":
        if len(matches) != 1 or matches[0] not in [name + s for s in POLL_SUFFIXES]:
            return "expected the poll of %s, got %s" % (name, matches)
        return "out-of-line poll"
    if cls == "inlined":
        items = asy["items"]
        if matches or len(items) != 1 or items[0]["name"] != name:
            return "expected %s inlined alone, got matches %s, items %s" % (
                name, matches, [i["name"] for i in items])
        if items[0]["root"] not in carriers:
            return "its root %s is not among the carriers %s" % (items[0]["root"], carriers)
        return "inlined, seen through %s" % items[0]["root"]
    return "expected an out-of-line poll or an inlined, traced async fn; got %s %s" % (
        cls, asy.get("items"))


def check_symbols(path):
    doc = json.load(open(path))
    carriers = [c["name"] for c in doc.get("carriers", [])]
    bad = 0
    seen = set()
    for p in doc["patterns"]:
        pat = p["pattern"]
        if pat not in FIXTURE:
            print("   FAIL: line %d: pattern %r is not known to this test" % (p["line"], pat))
            bad += 1
            continue
        seen.add(pat)
        what = check_pattern(p, carriers)
        ok = what.startswith(("sync", "out-of-line", "inlined"))
        print("   %s line %d %s: %s" % ("ok  " if ok else "FAIL", p["line"], pat, what))
        bad += not ok
    for pat in sorted(set(FIXTURE) - seen):
        print("   FAIL: %s is not in the symbol list" % pat)
        bad += 1
    if doc.get("unmatched"):
        print("   FAIL: unmatched: %s" % doc["unmatched"])
        bad += 1
    return bad


def check_spans(path, nq):
    spans = [json.loads(l) for l in open(path) if l.strip()]
    by_q = {}
    for s in spans:
        by_q.setdefault(s["query_id"], []).append(s)
    bad = 0
    if len(by_q) != nq:
        print("   FAIL: %d queries traced, flight-sql-srv served %d" % (len(by_q), nq))
        bad += 1
    want = sorted(span_name(k, n) for k, n in FIXTURE.values())
    for q, ss in sorted(by_q.items()):
        got = sorted(s["name"] for s in ss)
        if got != want:
            print("   FAIL: query %s: spans %s, expected one of each of %s" % (
                q, sorted(set(got) ^ set(want)) or got, len(want)))
            bad += 1
            continue
        ids = {s["name"]: s for s in ss}
        reader = ids[FIXTURE["<*ReaderFactory as *ParquetFileReaderFactory>::create_reader"][1]]
        scan = ids[span_name(*FIXTURE["<*MaterializedView as *TableProvider>::scan::{*}"])]
        root = ids[ROOT]
        if reader["parent_span_id"] != scan["span_id"] or scan["parent_span_id"] != root["span_id"]:
            print("   FAIL: query %s: create_reader's parent %s, scan %s (root %s)" % (
                q, reader["parent_span_id"], scan["span_id"], root["span_id"]))
            bad += 1
    if not bad:
        print("   %d queries, each with the root and one span of each of the %d other lines"
              % (len(by_q), len(want) - 1))
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", required=True)
    ap.add_argument("--spans")
    ap.add_argument("--queries", type=int, default=0)
    a = ap.parse_args()
    bad = check_symbols(a.symbols)
    if a.spans:
        bad += check_spans(a.spans, a.queries)
    sys.exit(1 if bad else 0)


main()
