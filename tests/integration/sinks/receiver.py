"""Test receivers for spanprobe's remote sinks, on 127.0.0.1 only.

  receiver.py micromegas --dir DIR [--fail ROUTE:CODE:COUNT]... [--delay S]
                         [--token-env VAR] [--vectors DIR]
  receiver.py otlp --dir DIR [--fail ...] [--delay S] [--token-env VAR]

It listens on an ephemeral port, writes it to DIR/port, and appends to
DIR: requests.jsonl (every request: route, status, ids, a body digest),
errors.jsonl (every rule a body broke; the request is answered 400) and

- micromegas: processes.jsonl, streams.jsonl and rows.jsonl, the rows
  view_instance('async_events', process_id) would return (decoded by
  mm_wire.py with cbor2 and python-lz4). With --vectors, a stream's
  declared layouts must equal those of micromegas' golden insert_stream
  (the note's §2.7 tables, as Rust encodes them).
- otlp: spans.jsonl, one line per span, read back through the official
  OTLP protobuf schema (Debian's python3-opentelemetry-proto) with
  protobuf's strict JSON parser: an unknown field, a wrong type or a bad
  id fails the request.

--fail ROUTE:CODE:COUNT answers CODE to the first COUNT requests of ROUTE
(the last path segment: insert_block, traces...) before looking at them;
--delay S waits S seconds before every answer (a slow receiver);
--token-env VAR requires "Authorization: Bearer $VAR" (else 401).
It stops on SIGTERM.
"""
import argparse
import base64
import gzip
import hashlib
import http.server
import json
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mm_wire  # noqa: E402
from mm_wire import WireError, need  # noqa: E402


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.fail = {}
        for spec in args.fail or []:
            route, code, count = spec.split(':')
            self.fail[route] = [int(code), int(count)]
        self.counts = {}
        self.processes = {}
        self.streams = {}
        self.blocks = set()
        self.offsets = {}
        self.golden = None
        if getattr(args, 'vectors', None):
            g = mm_wire.decode_stream(open(os.path.join(args.vectors, 'insert_stream.cbor.bin'), 'rb').read())
            self.golden = (g['dependencies_metadata'], g['objects_metadata'])

    def log(self, name, obj):
        with open(os.path.join(self.args.dir, name), 'a') as f:
            f.write(json.dumps(obj, sort_keys=True) + '\n')


# ------------------------------------------------------------- micromegas

def mm_process(st, body):
    p = mm_wire.decode_process(body)
    with st.lock:
        first = p['process_id'] not in st.processes
        st.processes.setdefault(p['process_id'], p)
    if first:
        st.log('processes.jsonl', {k: v for k, v in p.items()})
    return {'process_id': p['process_id']}


def mm_stream(st, body):
    s = mm_wire.decode_stream(body)
    if st.golden:
        need(s['dependencies_metadata'] == st.golden[0],
             'dependencies_metadata differs from the layouts of the note (§2.7)')
        need(s['objects_metadata'] == st.golden[1],
             'objects_metadata differs from the layouts of the note (§2.7)')
    with st.lock:
        # micromegas accepts blocks in any order; spanprobe promises this one
        need(s['process_id'] in st.processes, 'insert_stream before its insert_process')
        first = s['stream_id'] not in st.streams
        st.streams.setdefault(s['stream_id'], s)
    if first:
        st.log('streams.jsonl', {k: s[k] for k in ('process_id', 'stream_id', 'tags', 'properties')})
    return {'stream_id': s['stream_id']}


def mm_block(st, body):
    b = mm_wire.decode_block(body)
    with st.lock:
        need(b['process_id'] in st.processes, 'insert_block before its insert_process')
        need(b['stream_id'] in st.streams, 'insert_block before its insert_stream')
        p, s = st.processes[b['process_id']], st.streams[b['stream_id']]
        if b['block_id'] in st.blocks:  # a retry: first write wins (§1.4)
            return {'block_id': b['block_id'], 'duplicate': True}
    rows, n = mm_wire.async_rows(p, s, b)
    need(n == b['nb_objects'], f'nb_objects {b["nb_objects"]} but {n} objects')
    mm_wire.check_block_times(p, b, rows)
    with st.lock:
        # a running count of the stream's objects: a lost block leaves a
        # gap (check_sinks checks there is none when nothing was lost)
        end = st.offsets.get(b['stream_id'], 0)
        need(b['object_offset'] >= end,
             f'object_offset {b["object_offset"]} overlaps the {end} objects before it')
        st.offsets[b['stream_id']] = b['object_offset'] + n
        st.blocks.add(b['block_id'])
    for r in rows:
        st.log('rows.jsonl', r)
    return {'block_id': b['block_id'], 'stream_id': b['stream_id'], 'rows': len(rows),
            'object_offset': b['object_offset'], 'nb_objects': n}


MM_ROUTES = {'/ingestion/insert_process': mm_process, '/ingestion/insert_stream': mm_stream,
             '/ingestion/insert_block': mm_block}


# ------------------------------------------------------------------- otlp

def hex_to_b64(v, nbytes, what):
    need(isinstance(v, str) and len(v) == 2 * nbytes, f'{what}: not {2 * nbytes} hex digits')
    need(v == v.lower(), f'{what}: hex must be lowercase')
    try:
        raw = bytes.fromhex(v)
    except ValueError:
        raise WireError(f'{what}: not hex')
    need(any(raw), f'{what}: all zero')
    return base64.b64encode(raw).decode()


def otlp_ids_to_proto_json(req):
    """OTLP/JSON differs from proto3 JSON in two ways (ids in hex, enums
    as numbers): check those, then hand protobuf the proto3 form."""
    for rs in req.get('resourceSpans', []):
        for ss in rs.get('scopeSpans', []):
            for sp in ss.get('spans', []):
                sp['traceId'] = hex_to_b64(sp.get('traceId'), 16, 'traceId')
                sp['spanId'] = hex_to_b64(sp.get('spanId'), 8, 'spanId')
                if 'parentSpanId' in sp:
                    sp['parentSpanId'] = hex_to_b64(sp['parentSpanId'], 8, 'parentSpanId')
                need(isinstance(sp.get('kind', 0), int), 'kind must be an integer enum')
    return req


def any_value(v):
    kind = v.WhichOneof('value')
    return getattr(v, kind) if kind else None


def otlp_traces(st, body, headers):
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    ctype = headers.get('Content-Type', '')
    need(ctype.split(';')[0].strip() == 'application/json', f'Content-Type {ctype!r}')
    if headers.get('Content-Encoding') == 'gzip':
        body = gzip.decompress(body)
    try:
        raw = json.loads(body)
    except ValueError as e:
        raise WireError(f'not JSON: {e}')
    msg = trace_service_pb2.ExportTraceServiceRequest()
    try:
        json_format.ParseDict(otlp_ids_to_proto_json(raw), msg, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        raise WireError(f'does not match the OTLP schema: {e}')
    n = 0
    for rs in msg.resource_spans:
        res = {a.key: any_value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for sp in ss.spans:
                need(sp.start_time_unix_nano and sp.end_time_unix_nano, 'a span time is 0')
                st.log('spans.jsonl', {
                    'trace_id': sp.trace_id.hex(), 'span_id': sp.span_id.hex(),
                    'parent_span_id': sp.parent_span_id.hex(), 'name': sp.name,
                    'kind': sp.kind, 'start': sp.start_time_unix_nano,
                    'end': sp.end_time_unix_nano, 'scope': ss.scope.name,
                    'attributes': {a.key: any_value(a.value) for a in sp.attributes},
                    'resource': res, 'gzip': headers.get('Content-Encoding') == 'gzip'})
                n += 1
    return {'spans': n}


# ------------------------------------------------------------------- HTTP

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'  # keep-alive, as libcurl expects

    def log_message(self, *a):
        pass

    def answer(self, code, body=b'', ctype='text/plain'):
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        st = self.server.state
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        route = self.path.rsplit('/', 1)[-1]
        rec = {'route': route, 'path': self.path, 'len': len(body),
               'sha': hashlib.sha256(body).hexdigest()[:16], 'time': time.time()}
        if st.args.delay:
            time.sleep(st.args.delay)
        with st.lock:
            st.counts[route] = st.counts.get(route, 0) + 1
            fail = st.fail.get(route)
            injected = fail and fail[1] > 0
            if injected:
                fail[1] -= 1
        token = os.environ.get(st.args.token_env or '', '')
        if st.args.token_env and self.headers.get('Authorization') != f'Bearer {token}':
            code, info = 401, {'error': 'missing or wrong bearer token'}
        elif injected:
            code, info = fail[0], {'injected': True}
        else:
            code, info = self.handle_body(st, body)
        rec.update(info, status=code)
        st.log('requests.jsonl', rec)
        if st.args.kind == 'otlp' and code == 200:
            self.answer(200, b'{}', 'application/json')
        else:
            self.answer(code)

    def handle_body(self, st, body):
        try:
            if st.args.kind == 'micromegas':
                fn = MM_ROUTES.get(self.path)
                need(fn, f'unknown route {self.path}')
                return 200, fn(st, body)
            need(self.path == '/v1/traces', f'unknown route {self.path}')
            return 200, otlp_traces(st, body, self.headers)
        except WireError as e:
            st.log('errors.jsonl', {'path': self.path, 'error': str(e)})
            return 400, {'error': str(e)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kind', choices=['micromegas', 'otlp'])
    ap.add_argument('--dir', required=True)
    ap.add_argument('--fail', action='append')
    ap.add_argument('--delay', type=float, default=0)
    ap.add_argument('--token-env')
    ap.add_argument('--vectors')
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.daemon_threads = True
    srv.state = State(args)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=srv.shutdown).start())
    with open(os.path.join(args.dir, 'port.tmp'), 'w') as f:
        f.write(str(srv.server_address[1]))
    os.rename(os.path.join(args.dir, 'port.tmp'), os.path.join(args.dir, 'port'))
    srv.serve_forever()


if __name__ == '__main__':
    main()
