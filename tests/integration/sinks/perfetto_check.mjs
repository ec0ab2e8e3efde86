// Loads a spanprobe Perfetto/Chrome trace file with the trace engine of
// Chrome DevTools' Performance panel (npm @paulirish/trace_engine) and
// compares the tracks and slices it builds with the block file.
//
//   node perfetto_check.mjs NODE_MODULES TRACE.json DUMP.jsonl PID
//
// Checks: the file is the JSON array form; the engine finds the traced
// pid with exactly one track (thread) per query, named "query N: ROOT";
// on each track the engine's slice tree is the query's span tree (same
// parents); every slice's name, depth and begin/end (to the ns, from the
// file's time origin) are the span's. Prints one OK line or the
// differences, exit 1.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, tracePath, dumpPath, pidArg] = process.argv.slice(2);
const errors = [];
const err = (m) => { if (errors.length < 40) errors.push(m); };

const engine = await import(pathToFileURL(path.join(modules, '@paulirish/trace_engine/analyze-trace.mjs')));
const raw = JSON.parse(fs.readFileSync(tracePath, 'utf8'));
if (!Array.isArray(raw)) err('the file is not the JSON array form of the trace-event format');
const events = Array.isArray(raw) ? raw : [];
const { parsedTrace } = await engine.analyzeEvents(events);

const pid = Number(pidArg);
// ns times need more than a double's 53 bits: read them as BigInt
const big = (line, key) => BigInt(line.match(new RegExp(`"${key}":(\\d+)`))[1]);
const spans = fs.readFileSync(dumpPath, 'utf8').split('\n').filter(Boolean).map((l) => (
  { ...JSON.parse(l), begin_ns: big(l, 'begin_ns'), end_ns: big(l, 'end_ns') }));
const byId = new Map(spans.map((s) => [String(s.span_id), s]));
const queries = new Map();
for (const s of spans) {
  if (!queries.has(s.query_id)) queries.set(s.query_id, []);
  queries.get(s.query_id).push(s);
}

const pname = events.find((e) => e.ph === 'M' && e.name === 'process_name' && e.pid === pid);
if (!pname) err(`no process_name metadata for pid ${pid}`);
const origin = BigInt(pname?.args?.time_origin_unix_ns ?? 0);
// ts are µs since the origin in exact 1/1024 µs steps: round(ts * 1000)
// is the ns
const toNs = (us) => origin + BigInt(Math.round(us * 1000));

const proc = parsedTrace.data.Renderer.processes.get(pid);
if (!proc) err(`the engine found no process ${pid}`);
const tracks = proc ? [...proc.threads.values()] : [];
if (tracks.length !== queries.size) err(`${tracks.length} tracks for ${queries.size} queries`);

let slices = 0;
const seen = new Set();
for (const t of tracks) {
  const roots = t.tree ? [...t.tree.roots] : [];
  if (roots.length !== 1) { err(`track ${t.name}: ${roots.length} top-level slices, expected the query root`); continue; }
  const root = byId.get(roots[0].entry.args?.span_id);
  if (!root) { err(`track ${t.name}: its top slice is no span of the block file`); continue; }
  if (!/^query \d+: /.test(t.name ?? '') || !t.name.includes(root.name)) err(`track named ${JSON.stringify(t.name)} for root ${root.name}`);
  const walk = (node, parentId) => {
    const e = node.entry;
    const s = byId.get(e.args?.span_id);
    slices++;
    if (!s) { err(`slice ${e.name}: span_id ${e.args?.span_id} is not in the block file`); return; }
    seen.add(String(s.span_id));
    if (s.query_id !== root.query_id) err(`span ${s.span_id} of query ${s.query_id} is on the track of query ${root.query_id}`);
    if (parentId !== undefined && String(s.parent_span_id) !== parentId) err(`span ${s.span_id}: nested under ${parentId} on the track, parent ${s.parent_span_id}`);
    if (e.name !== s.name) err(`span ${s.span_id}: slice named ${e.name}, span ${s.name}`);
    if (e.args.depth !== s.depth) err(`span ${s.span_id}: depth ${e.args.depth}, expected ${s.depth}`);
    // what the engine made of the slice: its ts and dur (µs doubles)
    const begin = toNs(e.ts), end = toNs(e.ts + e.dur);
    if (begin !== s.begin_ns || end !== s.end_ns) err(`span ${s.span_id}: the engine has ${begin}..${end}, block file ${s.begin_ns}..${s.end_ns}`);
    for (const c of node.children) walk(c, String(s.span_id));
  };
  walk(roots[0], undefined);
}
for (const s of spans) if (!seen.has(String(s.span_id))) err(`span ${s.span_id} (${s.name}) is on no track`);

if (errors.length) {
  console.log('perfetto_check: FAILED');
  for (const e of errors) console.log(`  ${e}`);
  process.exit(1);
}
console.log(`perfetto_check: OK: DevTools' trace engine shows ${tracks.length} query tracks, ${slices} slices nested as the ${spans.length} spans, exact times`);
