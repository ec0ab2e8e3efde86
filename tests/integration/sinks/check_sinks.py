"""Compares what a receiver got with the block file of the same run.

  check_sinks.py micromegas --dump DUMP.jsonl --dir RECEIVER_DIR --pid PID --exe EXE
  check_sinks.py otlp --dump DUMP.jsonl --dir RECEIVER_DIR --pid PID --exe EXE [--gzip]
  check_sinks.py retries --dir RECEIVER_DIR --route ROUTE --failed N

DUMP.jsonl is `spanprobe dump FILE --json`: every span kept in the block
file must arrive exactly once with the same ids, parent, depth, name and
times (to the nanosecond), and nothing else may arrive. Prints one OK
line, or every difference and exits 1.
"""
import argparse
import json
import os
import socket
import sys
from collections import defaultdict

errors = []


def err(msg):
    if len(errors) < 40:
        errors.append(msg)


def load(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def mm_target(name):
    """The target spanprobe promises: the module path of a Rust-like name."""
    depth, cut = 0, -1
    for i, c in enumerate(name):
        if c in '<([':
            depth += 1
        elif c in '>)]' and depth:
            depth -= 1
        elif not depth and name.startswith('::', i):
            cut = i
    return name[:cut] if cut > 0 else 'spanprobe'


def text(v):
    """sp_print_text: control characters as '?'."""
    return ''.join('?' if ord(c) < 0x20 or ord(c) == 0x7f else c for c in v)


def mm_name(s):
    """The name the span must have in async_events: micromegas has no
    column for attributes or status, so spanprobe promises the tree's
    form, NAME(k=v, ...) and a trailing ' [error]' (README, micromegas)."""
    name = s['name']
    attrs = s.get('attrs', {})
    if s.get('attrs_missing'):
        err(f'span {s["span_id"]}: values never read {s["attrs_missing"]}: their order is '
            'not in the dump, the expected name cannot be spelled')
    if attrs:
        unreadable = set(s.get('attrs_unreadable', []))
        cut = set(s.get('attrs_truncated', []))
        parts = []
        for k, v in attrs.items():
            if k in unreadable:
                parts.append(f'{text(k)}=<unreadable>')
            elif isinstance(v, str):
                parts.append(f'{text(k)}="{text(v)}"' + ('…' if k in cut else ''))
            else:
                parts.append(f'{text(k)}={v}')
        name += '(' + ', '.join(parts) + ')'
    if 'error' in s.get('flags', []):
        name += ' [error]'
    return name


def check_micromegas(a, spans):
    d = a.dir
    for e in load(f'{d}/errors.jsonl'):
        err(f'receiver rejected a body: {e["path"]}: {e["error"]}')
    procs = load(f'{d}/processes.jsonl')
    if len(procs) != 1:
        err(f'{len(procs)} micromegas processes, expected 1')
        return
    p = procs[0]
    if p['exe'] != a.exe:
        err(f'process exe {p["exe"]!r}, expected {a.exe!r}')
    if p['properties'].get('pid') != str(a.pid):
        err(f'process property pid {p["properties"].get("pid")!r}, expected {a.pid}')
    if p['properties'].get('collector') != 'spanprobe':
        err('process has no property collector=spanprobe')
    if p['tsc_frequency'] != 10**9:
        err(f'tsc_frequency {p["tsc_frequency"]}')
    streams = {s['stream_id']: s for s in load(f'{d}/streams.jsonl')}
    for s in streams.values():
        if 'cpu' not in s['tags']:
            err(f'stream {s["stream_id"]} is not tagged cpu')
    # view_instance('async_events', process_id): the rows of that process
    rows = [r for r in load(f'{d}/rows.jsonl') if r['process_id'] == p['process_id']]
    by_span = defaultdict(list)
    for r in rows:
        by_span[r['span_id']].append(r)
    want = {s['span_id']: s for s in spans}
    for sid in sorted(set(by_span) - set(want)):
        err(f'span {sid} is in async_events but not in the block file')
    for sid, s in sorted(want.items()):
        got = sorted(by_span.get(sid, []), key=lambda r: r['event_type'])
        kinds = [r['event_type'] for r in got]
        if kinds != ['begin', 'end']:
            err(f'span {sid} ({s["name"]}): events {kinds}, expected one begin and one end')
            continue
        for r, t in zip(got, (s['begin_ns'], s['end_ns'])):
            exp = {'time': t, 'parent_span_id': s['parent_span_id'], 'depth': s['depth'],
                   'name': mm_name(s), 'target': mm_target(s['name']), 'filename': '', 'line': 0}
            diff = {k: (r[k], v) for k, v in exp.items() if r[k] != v}
            if diff:
                err(f'span {sid} {r["event_type"]}: (got, expected) {diff}')
            tid = streams.get(r['stream_id'], {}).get('properties', {}).get('thread-id')
            if tid != str(s['tid']):
                err(f'span {sid}: in the stream of thread {tid}, ran on {s["tid"]}')
    # nothing was lost: each stream's blocks count its objects without a gap
    nxt = defaultdict(int)
    for r in sorted((r for r in load(f'{d}/requests.jsonl') if 'nb_objects' in r),
                    key=lambda r: r['object_offset']):
        if r['object_offset'] != nxt[r['stream_id']]:
            err(f'block {r["block_id"]}: object_offset {r["object_offset"]}, expected {nxt[r["stream_id"]]}')
        nxt[r['stream_id']] = r['object_offset'] + r['nb_objects']
    # micromegas' own Python test: child.depth == parent.depth + 1
    depth = {r['span_id']: r['depth'] for r in rows if r['event_type'] == 'begin'}
    for r in rows:
        if r['parent_span_id'] and depth.get(r['parent_span_id'], -2) + 1 != r['depth']:
            err(f'span {r["span_id"]}: depth {r["depth"]}, parent depth {depth.get(r["parent_span_id"])}')
    return f'{len(want)} spans = {len(rows)} async_events rows in {len(streams)} streams, exact'


def check_otlp(a, spans):
    d = a.dir
    for e in load(f'{d}/errors.jsonl'):
        err(f'receiver rejected a body: {e["path"]}: {e["error"]}')
    got = load(f'{d}/spans.jsonl')
    by_id = defaultdict(list)
    for g in got:
        by_id[int(g['span_id'], 16)].append(g)
    queries = defaultdict(set)
    host = socket.gethostname()
    for s in spans:
        g = by_id.get(s['span_id'], [])
        if len(g) != 1:
            err(f'span {s["span_id"]} ({s["name"]}) arrived {len(g)} times')
            continue
        g = g[0]
        queries[s['query_id']].add(g['trace_id'])
        exp = {'parent_span_id': '%016x' % s['parent_span_id'] if s['parent_span_id'] else '',
               'name': s['name'], 'start': s['begin_ns'], 'end': s['end_ns'], 'kind': 1,
               'scope': 'spanprobe', 'gzip': a.gzip}
        diff = {k: (g[k], v) for k, v in exp.items() if g[k] != v}
        if diff:
            err(f'span {s["span_id"]}: (got, expected) {diff}')
        if g['attributes'].get('thread.id') != s['tid']:
            err(f'span {s["span_id"]}: thread.id {g["attributes"].get("thread.id")}, ran on {s["tid"]}')
        if ('spanprobe.abnormal' in g['attributes']) != s['abnormal']:
            err(f'span {s["span_id"]}: spanprobe.abnormal does not match the flags')
        res = g['resource']
        exp_res = {'service.name': os.path.basename(a.exe), 'host.name': host,
                   'process.pid': a.pid, 'process.executable.path': a.exe}
        rdiff = {k: (res.get(k), v) for k, v in exp_res.items() if res.get(k) != v}
        if rdiff:
            err(f'span {s["span_id"]}: resource (got, expected) {rdiff}')
    if len(got) != len(spans):
        err(f'{len(got)} spans received, {len(spans)} in the block file')
    traces = [t for ts in queries.values() for t in ts]
    for q, ts in queries.items():
        if len(ts) != 1:
            err(f'query {q} is spread over {len(ts)} traces')
    if len(set(traces)) != len(traces):
        err('two queries share a trace id')
    return f'{len(spans)} spans in {len(queries)} traces (one per query), exact'


def check_retries(a):
    reqs = [r for r in load(f'{a.dir}/requests.jsonl') if r['route'] == a.route]
    injected = [r for r in reqs if r.get('injected')]
    if len(injected) != a.failed:
        err(f'{len(injected)} injected failures seen, expected {a.failed}')
    ok = {r['sha'] for r in reqs if r['status'] == 200}
    for r in injected:
        if r['status'] >= 500 and r['sha'] not in ok:
            err(f'a {a.route} answered {r["status"]} was never resent with the same body')
        if 400 <= r['status'] < 500 and sum(x['sha'] == r['sha'] for x in reqs) != 1:
            err(f'a {a.route} answered {r["status"]} was sent again')
    return f'{len(injected)} injected failures on {a.route}: 5xx resent with the same body, 4xx never'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kind', choices=['micromegas', 'otlp', 'retries'])
    ap.add_argument('--dump')
    ap.add_argument('--dir', required=True)
    ap.add_argument('--pid', type=int)
    ap.add_argument('--exe')
    ap.add_argument('--gzip', action='store_true')
    ap.add_argument('--route')
    ap.add_argument('--failed', type=int, default=0)
    a = ap.parse_args()
    if a.kind == 'retries':
        summary = check_retries(a)
    else:
        spans = load(a.dump)
        if not spans:
            err('the block file holds no span: nothing to compare')
        summary = (check_micromegas if a.kind == 'micromegas' else check_otlp)(a, spans)
    if errors:
        print(f'check_sinks {a.kind}: FAILED')
        for e in errors:
            print(f'  {e}')
        sys.exit(1)
    print(f'check_sinks {a.kind}: OK: {summary}')


if __name__ == '__main__':
    main()
