"""Decoder for micromegas' native ingestion bodies, written from the wire
note (shared/notes/micromegas-wire-format.md) and independent of
spanprobe's C encoder: CBOR through cbor2, LZ4 frames through python-lz4
(both Debian packages), the transit buffers parsed from the layouts the
stream declares, as micromegas' own parser does (note §2.6), and rows
built as view_instance('async_events', process_id) builds them (§3).

Every violation raises WireError with a message naming the rule.

`python3 mm_wire.py --selftest DIR` decodes the golden vectors in DIR
(bodies made by micromegas' own Rust code) and checks the rows they must
give: it shows that this decoder agrees with the real encoder.
"""
import calendar
import os
import re
import struct
import sys
import uuid

import cbor2
import lz4.frame


class WireError(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise WireError(msg)


# ---------------------------------------------------------------- scalars

RFC3339 = re.compile(
    r'^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$')


def rfc3339_ns(s, what):
    """Unix ns of an RFC 3339 time (datetime would lose the nanoseconds)."""
    need(isinstance(s, str), f'{what}: not a text string')
    m = RFC3339.match(s)
    need(m, f'{what}: {s!r} is not RFC 3339')
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac = int((m.group(7) or '').ljust(9, '0'))
    off = 0
    if m.group(8) != 'Z':
        sign = -1 if m.group(8)[0] == '-' else 1
        off = sign * (int(m.group(8)[1:3]) * 3600 + int(m.group(8)[4:6]) * 60)
    return (calendar.timegm((y, mo, d, h, mi, sec)) - off) * 10**9 + frac


def check_uuid(v, what):
    need(isinstance(v, str), f'{what}: not a text string')
    try:
        uuid.UUID(v)
    except ValueError:
        raise WireError(f'{what}: {v!r} is not a UUID')
    need(len(v) == 36, f'{what}: {v!r} is not in hyphenated form')


def check_keys(d, keys, what):
    need(isinstance(d, dict), f'{what}: not a CBOR map')
    for k, types in keys.items():
        need(k in d, f'{what}: required key {k!r} missing')
        need(isinstance(d[k], types) and not (types is int and isinstance(d[k], bool)),
             f'{what}.{k}: wrong type {type(d[k]).__name__}')


def check_props(p, what):
    need(isinstance(p, dict), f'{what}: properties is not a map')
    for k, v in p.items():
        need(isinstance(k, str) and isinstance(v, str), f'{what}: properties must map text to text')


def loads(body, what):
    try:
        return cbor2.loads(body)
    except Exception as e:
        raise WireError(f'{what}: not CBOR: {e}')


# ---------------------------------------------------------------- records

def decode_process(body):
    p = loads(body, 'insert_process')
    check_keys(p, {'process_id': str, 'exe': str, 'username': str, 'realname': str,
                   'computer': str, 'distro': str, 'cpu_brand': str, 'tsc_frequency': int,
                   'start_time': str, 'start_ticks': int, 'properties': dict}, 'insert_process')
    need('parent_process_id' in p, 'insert_process: parent_process_id must be present')
    ppid = p['parent_process_id']
    need(ppid is None or ppid == '' or (check_uuid(ppid, 'parent_process_id') or True),
         'insert_process: bad parent_process_id')
    check_uuid(p['process_id'], 'insert_process.process_id')
    for k in ('exe', 'username', 'realname', 'computer', 'distro', 'cpu_brand'):
        need(len(p[k]) <= 255, f'insert_process.{k}: longer than VARCHAR(255)')
    need(p['tsc_frequency'] > 0, 'insert_process.tsc_frequency must be > 0')
    p['start_time_ns'] = rfc3339_ns(p['start_time'], 'insert_process.start_time')
    check_props(p['properties'], 'insert_process')
    return p


def parse_udts(lst, what):
    need(isinstance(lst, list) and len(lst) <= 256, f'{what}: not an array of at most 256 types')
    for i, t in enumerate(lst):
        check_keys(t, {'name': str, 'size': int, 'members': list, 'is_reference': bool},
                   f'{what}[{i}]')
        for j, m in enumerate(t['members']):
            check_keys(m, {'name': str, 'type_name': str, 'offset': int, 'size': int,
                           'is_reference': bool}, f'{what}[{i}].members[{j}]')
            need(t['size'] == 0 or m['offset'] + m['size'] <= t['size'],
                 f'{what}[{i}].{m["name"]}: member outside the type')
    return lst


def decode_stream(body):
    s = loads(body, 'insert_stream')
    check_keys(s, {'process_id': str, 'stream_id': str, 'dependencies_metadata': list,
                   'objects_metadata': list, 'tags': list, 'properties': dict}, 'insert_stream')
    check_uuid(s['process_id'], 'insert_stream.process_id')
    check_uuid(s['stream_id'], 'insert_stream.stream_id')
    parse_udts(s['dependencies_metadata'], 'dependencies_metadata')
    parse_udts(s['objects_metadata'], 'objects_metadata')
    need(all(isinstance(t, str) for t in s['tags']), 'insert_stream.tags: not all text')
    check_props(s['properties'], 'insert_stream')
    return s


def decode_block(body):
    b = loads(body, 'insert_block')
    check_keys(b, {'block_id': str, 'stream_id': str, 'process_id': str, 'begin_time': str,
                   'begin_ticks': int, 'end_time': str, 'end_ticks': int, 'payload': dict,
                   'nb_objects': int, 'object_offset': int}, 'insert_block')
    for k in ('block_id', 'stream_id', 'process_id'):
        check_uuid(b[k], f'insert_block.{k}')
    b['begin_time_ns'] = rfc3339_ns(b['begin_time'], 'insert_block.begin_time')
    b['end_time_ns'] = rfc3339_ns(b['end_time'], 'insert_block.end_time')
    check_keys(b['payload'], {'dependencies': bytes, 'objects': bytes}, 'insert_block.payload')
    for k in ('dependencies', 'objects'):
        raw = b['payload'][k]
        need(raw[:4] == b'\x04\x22\x4d\x18', f'payload.{k}: not an LZ4 frame (magic)')
        try:
            b[k] = lz4.frame.decompress(raw)
        except Exception as e:
            raise WireError(f'payload.{k}: LZ4 frame does not decode: {e}')
    return b


# ---------------------------------------------------------------- transit

POD = {'u8': ('<B', 1), 'uint8': ('<B', 1), 'u32': ('<I', 4), 'uint32': ('<I', 4),
       'u64': ('<Q', 8), 'uint64': ('<Q', 8), 'i64': ('<q', 8), 'int64': ('<q', 8),
       'f64': ('<d', 8)}


def parse_pod(body, udt, udts, deps, what):
    """A POD instance as a dict; references resolved against deps."""
    out = {}
    for m in udt['members']:
        raw = body[m['offset']:m['offset'] + m['size']]
        need(len(raw) == m['size'], f'{what}.{m["name"]}: truncated')
        if m['is_reference']:
            need(m['size'] >= 8, f'{what}.{m["name"]}: reference smaller than 8 bytes')
            key = struct.unpack('<Q', raw[:8])[0]
            need(key in deps, f'{what}.{m["name"]}: dependency {key} not found')
            out[m['name']] = deps[key]
        elif m['type_name'] in POD:
            fmt, size = POD[m['type_name']]
            need(size == m['size'], f'{what}.{m["name"]}: size {m["size"]} for {m["type_name"]}')
            out[m['name']] = struct.unpack(fmt, raw)[0]
        else:
            sub = [t for t in udts if t['name'] == m['type_name']]
            need(sub, f'{what}.{m["name"]}: unknown type {m["type_name"]}')
            v = parse_pod(raw, sub[0], udts, deps, f'{what}.{m["name"]}')
            out[m['name']] = v['id'] if sub[0]['is_reference'] else v
    return out


def entries(buf, udts, what):
    """(type index, udt, body) for each entry of a transit buffer."""
    pos = 0
    while pos < len(buf):
        idx = buf[pos]
        need(idx < len(udts), f'{what}@{pos}: invalid type index {idx}')
        udt = udts[idx]
        pos += 1
        if udt['size'] == 0:
            need(pos + 4 <= len(buf), f'{what}@{pos}: truncated size prefix')
            size = struct.unpack_from('<I', buf, pos)[0]
            pos += 4
        else:
            size = udt['size']
        need(pos + size <= len(buf), f'{what}@{pos}: truncated {udt["name"]}')
        yield idx, udt, buf[pos:pos + size]
        pos += size


def read_dependencies(buf, udts):
    deps = {}
    for _, udt, body in entries(buf, udts, 'dependencies'):
        if udt['name'] == 'StaticString':
            need(len(body) >= 8, 'StaticString: no id')
            key = struct.unpack_from('<Q', body)[0]
            try:
                val = body[8:].decode('utf-8')  # strict, as str::from_utf8
            except UnicodeDecodeError:
                raise WireError(f'StaticString {key}: invalid UTF-8')
        elif udt['name'] == 'StaticStringDependency':
            key, codec, n = struct.unpack_from('<QBI', body)
            need(len(body) == 13 + n, 'StaticStringDependency: size prefix is not 13+len')
            val = body[13:].decode(['latin-1', 'utf-16-le', 'utf-8'][codec], errors='replace')
        else:
            need(udt['size'] > 0, f'{udt["name"]}: dynamic dependency without a reader')
            val = parse_pod(body, udt, udts, deps, udt['name'])
            need('id' in val and isinstance(val['id'], int), f'{udt["name"]}: no u64 id')
            key = val['id']
        need(key not in deps, f'dependency id {key} appears twice')
        deps[key] = val
    return deps


def read_objects(buf, udts, deps):
    return [(udt['name'], parse_pod(body, udt, udts, deps, udt['name']))
            for _, udt, body in entries(buf, udts, 'objects')]


# ---------------------------------------------------------------- async_events

ASYNC = {'BeginAsyncSpanEvent': 'begin', 'EndAsyncSpanEvent': 'end',
         'BeginAsyncNamedSpanEvent': 'begin', 'EndAsyncNamedSpanEvent': 'end'}


def ticks_to_ns(process, ticks):
    """ConvertTicks (note §3.5): start_time + (ticks - start_ticks) * 1e9 / freq."""
    num = (ticks - process['start_ticks']) * 10**9
    freq = process['tsc_frequency']
    return process['start_time_ns'] + (num + freq // 2) // freq


def async_rows(process, stream, block):
    """The async_events rows of one block, as the view would produce them."""
    need(block['process_id'] == process['process_id'], 'block of another process')
    need(block['stream_id'] == stream['stream_id'], 'block of another stream')
    deps = read_dependencies(block['dependencies'], stream['dependencies_metadata'])
    objs = read_objects(block['objects'], stream['objects_metadata'], deps)
    rows = []
    for name, o in objs:
        if name not in ASYNC:
            continue
        for k in ('span_id', 'parent_span_id', 'depth', 'time'):
            need(k in o and isinstance(o[k], int), f'{name}: member {k} missing or not a number')
        if name.endswith('NamedSpanEvent'):
            loc, label = o.get('span_location'), o.get('name')
        else:
            loc = o.get('span_desc')
            label = loc.get('name') if isinstance(loc, dict) else None
        need(isinstance(loc, dict) and isinstance(label, str),
             f'{name}: span description does not resolve to an object with a name')
        for k, t in (('file', str), ('target', str), ('line', int)):
            need(isinstance(loc.get(k), t), f'{name}: span description has no {k}')
        rows.append({'process_id': process['process_id'], 'stream_id': stream['stream_id'],
                     'block_id': block['block_id'], 'time': ticks_to_ns(process, o['time']),
                     'ticks': o['time'], 'event_type': ASYNC[name], 'span_id': o['span_id'],
                     'parent_span_id': o['parent_span_id'], 'depth': o['depth'], 'name': label,
                     'target': loc['target'], 'filename': loc['file'], 'line': loc['line']})
    return rows, len(objs)


def check_block_times(process, block, rows):
    """Block header rules of note §2.4."""
    ticks = [r['ticks'] for r in rows]
    need(ticks == sorted(ticks), 'events are not sorted by time within the block')
    if rows:
        need(block['begin_time_ns'] <= rows[0]['time'] and block['end_time_ns'] >= rows[-1]['time'],
             'block [begin_time, end_time] does not cover its events')
        need(block['begin_ticks'] == rows[0]['ticks'] - process['start_ticks'],
             'begin_ticks is not relative to the process start_ticks')
        need(block['end_ticks'] == rows[-1]['ticks'] - process['start_ticks'],
             'end_ticks is not relative to the process start_ticks')
    need(ticks_to_ns(process, block['begin_ticks'] + process['start_ticks']) == block['begin_time_ns'],
         'begin_time and begin_ticks disagree')


# ---------------------------------------------------------------- self-test

def selftest(d):
    rd = lambda name: open(os.path.join(d, name), 'rb').read()
    p = decode_process(rd('insert_process.cbor.bin'))
    s = decode_stream(rd('insert_stream.cbor.bin'))
    need(s['tags'] == ['cpu'], 'golden stream is tagged cpu')
    for blk, begin, end, name, target, filename in (
            ('insert_block.cbor.bin', 1000, 2000, 'execute_query', 'spanprobe', ''),
            ('spec-2.7-example/insert_block.cbor.bin', 10**9, 1000250000, 'read_file',
             'ebpf::vfs', 'fs/read_write.c')):
        b = decode_block(rd(blk))
        rows, n = async_rows(p, s, b)
        need(n == b['nb_objects'] == 2, f'{blk}: 2 objects')
        check_block_times(p, b, rows)
        t0 = p['start_time_ns'] - p['start_ticks']
        want = [('begin', begin), ('end', end)]
        got = [(r['event_type'], r['ticks']) for r in rows]
        need(got == want, f'{blk}: events {got} != {want}')
        for r in rows:
            need((r['span_id'], r['parent_span_id'], r['depth'], r['name'], r['target'],
                  r['filename'], r['line']) == (7, 0, 0, name, target, filename, 0),
                 f'{blk}: row {r}')
            need(r['time'] == t0 + r['ticks'], f'{blk}: tick conversion')
    # the transit files are what the frames hold
    need(lz4.frame.decompress(rd('dependencies.lz4.bin')) == rd('dependencies.transit.bin'),
         'dependencies.lz4 frames dependencies.transit')
    need(lz4.frame.decompress(rd('empty.lz4.bin')) == b'', 'empty.lz4 is an empty frame')
    print('mm_wire: golden vectors decode to the expected async_events rows')


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--selftest':
        try:
            selftest(sys.argv[2])
        except WireError as e:
            print(f'mm_wire: FAILED: {e}')
            sys.exit(1)
    else:
        print('usage: mm_wire.py --selftest VECTORS_DIR', file=sys.stderr)
        sys.exit(2)
