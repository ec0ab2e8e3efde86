#!/bin/sh
# spanprobe's exports (--micromegas, --otlp, --perfetto, dump --perfetto)
# against real receivers and parsers: `sh tests/integration/test_sinks.sh
# [TEST...]`. Needs root (BPF), the built binary and fixtures, Debian's
# python3-cbor2, python3-lz4, python3-opentelemetry-proto (backports) and
# node + npm (the npm packages go to build/npm-sinks, see sinks/npm-setup.sh).
#
# Every export is compared with the block file written in the same run
# (`spanprobe dump --json`): same span ids, parents, depths, names and
# times to the nanosecond, nothing missing, nothing extra. Receivers run
# on 127.0.0.1 only. Prints "N passed, M failed" last; exit 1 on failure.
# SPANPROBE, FIXTURES, PYTHON, TMPDIR can be set; KEEP_TMP=1 keeps files.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SP=${SPANPROBE:-build/spanprobe}
FX=${FIXTURES:-build/fixtures}
PY=${PYTHON:-/usr/bin/python3} # Debian's, which has cbor2, lz4, protobuf
SINKS=tests/integration/sinks
VECTORS=tests/unit/data/micromegas
T=$(mktemp -d "${TMPDIR:-/tmp}/spanprobe-sinks.XXXXXX")
QS=$(cd "$FX" 2>/dev/null && pwd)/qserver
RECEIVERS=""
PASSED=0
FAILED=0
RC=0
TOKEN="tok-$$-$(date +%s%N)" # a secret that must never be printed

stop_receivers() {
	for _p in $RECEIVERS; do kill -TERM "$_p" 2>/dev/null || :; done
	for _p in $RECEIVERS; do wait "$_p" 2>/dev/null || :; done
	RECEIVERS=""
}
cleanup() {
	stop_receivers
	if [ -n "${KEEP_TMP:-}" ]; then echo "files kept in $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

fail() { echo "   FAIL: $*"; }
show() {
	[ -s "$1" ] || { echo "   (${2:-$1} is empty)"; return 0; }
	echo "   --- ${2:-$1} (last 15 lines):"
	tail -n 15 "$1" | sed 's/^/   | /'
}

# receiver KIND DIR [ARGS...]: starts a receiver; its URL in URL.
receiver() {
	_k=$1 _d=$2
	shift 2
	MICROMEGAS_TEST_TOKEN=$TOKEN "$PY" "$SINKS/receiver.py" "$_k" --dir "$_d" "$@" \
		>"$_d.log" 2>&1 &
	RECEIVERS="$RECEIVERS $!"
	_n=100
	until [ -s "$_d/port" ]; do
		[ $_n -gt 0 ] || { fail "receiver $_k did not start"; show "$_d.log"; return 1; }
		_n=$((_n - 1))
		sleep 0.1
	done
	URL="http://127.0.0.1:$(cat "$_d/port")"
}

# A port with nothing listening on it: a receiver that is down.
closed_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# trace DIR TIMEOUT ARGS... -- CMD: spanprobe run, output in DIR/sp.*,
# status in RC, wall time in SECS, the instant it exited in END_NS.
trace() {
	_d=$1 _t=$2
	shift 2
	_t0=$(date +%s%N)
	RC=0
	MICROMEGAS_INGESTION_API_KEY=$TOKEN timeout -s KILL "$_t" "$SP" run "$@" \
		>"$_d/sp.out" 2>"$_d/sp.err" || RC=$?
	END_NS=$(date +%s%N)
	SECS=$(( (END_NS - _t0) / 1000000000 ))
	PID=$(sed -n 's/^spanprobe: attached .* to pid \([0-9]*\) .*/\1/p' "$_d/sp.err")
}

# drain_secs TRUTH: seconds from the fixture's last call's end (its
# truth) to spanprobe's exit: the exit's wait for the sinks, however slowly
# a loaded machine ran the fixture itself.
drain_secs() {
	python3 -c 'import json, sys
print((int(sys.argv[2]) - max(json.loads(l)["end_ns"] for l in open(sys.argv[1]) if l.strip())) // 10**9)' "$1" "$END_NS"
}

dump_json() {
	"$SP" dump "$1/spans.bin" --json >"$1/dump.jsonl" 2>"$1/dump.err" ||
		{ fail "spanprobe dump --json failed"; show "$1/dump.err"; return 1; }
	[ -s "$1/dump.jsonl" ] || { fail "the block file holds no span"; show "$1/sp.err"; return 1; }
}

# check NAME CMD...: runs a checker, indents its OK line or shows why.
check() {
	_name=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then
		sed 's/^/   /' "$T/check.out"
	else
		fail "$_name:"
		sed 's/^/   /' "$T/check.out" | head -n 30
		return 1
	fi
}

summary_has() { # summary_has DIR REGEX WHAT
	grep -Eq "$2" "$1/sp.err" || { fail "the exit summary does not show $3"; show "$1/sp.err"; return 1; }
}

no_token() {
	if grep -qF "$TOKEN" "$1"/sp.out "$1"/sp.err "$1"/*.log 2>/dev/null; then
		fail "the token was printed"
		return 1
	fi
}

perfetto() { # perfetto TRACE DUMP PID
	check "Perfetto file in DevTools' trace engine" node "$SINKS/perfetto_check.mjs" "$NODE_MODULES" "$@"
}

# ------------------------------------------------------------------ tests

# The receiver's decoder (cbor2, python-lz4, transit parsing from the
# note) turns micromegas' own golden bodies into the expected rows: it is
# a fair judge of spanprobe's bodies.
t_golden_decoder() {
	check "golden vectors" "$PY" "$SINKS/mm_wire.py" --selftest "$VECTORS"
}

# All three exports at once, fed from the same kept spans, against the
# block file of the same run. Two worker threads: two micromegas streams.
t_all_sinks() {
	d=$T/all
	mkdir -p "$d"
	receiver micromegas "$d/mm" --vectors "$VECTORS" --token-env MICROMEGAS_TEST_TOKEN || return 1
	mm=$URL
	receiver otlp "$d/otlp" || return 1
	trace "$d" 90 -s tests/fixtures/qserver.syms -o "$d/spans.bin" --micromegas "$mm" \
		--otlp "$URL" --perfetto "$d/trace.json" -- "$QS" -n 6 -k SF -t 2
	stop_receivers
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err"; return 1; }
	dump_json "$d" || return 1
	kept=$(sed -n 's/.* \([0-9]*\) kept (root.*/\1/p' "$d/sp.err")
	[ "$kept" = 3 ] || { fail "expected 3 kept queries (the S ones), the summary says '$kept'"; show "$d/sp.err"; return 1; }
	check micromegas "$PY" "$SINKS/check_sinks.py" micromegas --dump "$d/dump.jsonl" \
		--dir "$d/mm" --pid "$PID" --exe "$QS" || return 1
	check otlp "$PY" "$SINKS/check_sinks.py" otlp --dump "$d/dump.jsonl" --dir "$d/otlp" \
		--pid "$PID" --exe "$QS" || return 1
	perfetto "$d/trace.json" "$d/dump.jsonl" "$PID" || return 1
	# the process, a stream per thread that ran a kept query, a block per query
	n=$((1 + $(wc -l <"$d/mm/streams.jsonl") + 3))
	summary_has "$d" "micromegas: $n requests sent, 0 retried, 0 dropped" "$n micromegas requests" || return 1
	summary_has "$d" 'otlp: 3 requests sent, 0 retried, 0 dropped' "3 OTLP requests" || return 1
	summary_has "$d" "3 queries written to $d/trace.json" "the Perfetto file" || return 1
	no_token "$d"
}

# OTLP with gzip, and `spanprobe dump --perfetto` from the block file.
t_otlp_gzip_and_dump_perfetto() {
	d=$T/gzip
	mkdir -p "$d"
	receiver otlp "$d/otlp" || return 1
	trace "$d" 60 --min-query 0 -s tests/fixtures/qserver.syms -o "$d/spans.bin" \
		--otlp "$URL/v1/traces" --otlp-gzip -- "$QS" -n 4 -k F
	stop_receivers
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err"; return 1; }
	dump_json "$d" || return 1
	check "otlp gzip" "$PY" "$SINKS/check_sinks.py" otlp --gzip --dump "$d/dump.jsonl" \
		--dir "$d/otlp" --pid "$PID" --exe "$QS" || return 1
	"$SP" dump "$d/spans.bin" --perfetto "$d/dump.json" >"$d/pf.out" 2>&1 ||
		{ fail "spanprobe dump --perfetto failed"; show "$d/pf.out"; return 1; }
	[ ! -s "$d/pf.out" ] || { fail "dump --perfetto also printed to stdout"; return 1; }
	perfetto "$d/dump.json" "$d/dump.jsonl" "$PID"
}

# 5xx answers are retried with the same body (same block_id) until they
# get through; nothing is lost or doubled.
t_retry_5xx() {
	d=$T/retry
	mkdir -p "$d"
	receiver micromegas "$d/mm" --fail insert_block:503:2 --fail insert_stream:500:1 || return 1
	mm=$URL
	receiver otlp "$d/otlp" --fail traces:502:1 || return 1
	trace "$d" 60 --min-query 0 -s tests/fixtures/qserver.syms -o "$d/spans.bin" \
		--micromegas "$mm" --otlp "$URL" -- "$QS" -n 3 -k F -t 1
	stop_receivers
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err"; return 1; }
	dump_json "$d" || return 1
	check micromegas "$PY" "$SINKS/check_sinks.py" micromegas --dump "$d/dump.jsonl" \
		--dir "$d/mm" --pid "$PID" --exe "$QS" || return 1
	check "micromegas retries" "$PY" "$SINKS/check_sinks.py" retries --dir "$d/mm" \
		--route insert_block --failed 2 || return 1
	check otlp "$PY" "$SINKS/check_sinks.py" otlp --dump "$d/dump.jsonl" --dir "$d/otlp" \
		--pid "$PID" --exe "$QS" || return 1
	summary_has "$d" 'micromegas: 5 requests sent, 3 retried, 0 dropped' "3 micromegas retries" || return 1
	summary_has "$d" 'otlp: 3 requests sent, 1 retried, 0 dropped' "1 OTLP retry"
}

# A 4xx is never retried: that block alone is lost, and counted; a
# missing token gets 401 for every request, named in the summary.
t_reject_4xx() {
	d=$T/reject
	mkdir -p "$d"
	receiver micromegas "$d/mm" --fail insert_block:400:1 || return 1
	trace "$d" 60 --min-query 0 -s tests/fixtures/qserver.syms -o "$d/spans.bin" \
		--micromegas "$URL" -- "$QS" -n 3 -k F -t 1
	stop_receivers
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err"; return 1; }
	check "micromegas 400" "$PY" "$SINKS/check_sinks.py" retries --dir "$d/mm" \
		--route insert_block --failed 1 || return 1
	summary_has "$d" 'micromegas: 4 requests sent, 0 retried, 1 dropped \(0 queue full, 1 rejected' \
		"1 rejected block" || return 1
	summary_has "$d" 'last error insert_block: HTTP 400' "the HTTP 400" || return 1
	rows=$(wc -l <"$d/mm/rows.jsonl")
	dump_json "$d" || return 1
	q=$(grep -c '"parent_span_id":0,' "$d/dump.jsonl")
	spans=$(wc -l <"$d/dump.jsonl")
	[ "$q" = 3 ] || { fail "the block file lost queries ($q of 3)"; return 1; }
	[ "$rows" -lt $((2 * spans)) ] && [ "$rows" -gt 0 ] ||
		{ fail "$rows rows for $spans spans: not exactly one block missing"; return 1; }
	echo "   block file complete (3 queries); micromegas got $rows rows for $spans spans"

	d=$T/token
	mkdir -p "$d"
	receiver micromegas "$d/mm" --token-env MICROMEGAS_TEST_TOKEN || return 1
	RC=0
	env -u MICROMEGAS_INGESTION_API_KEY "$SP" run --min-query 0 -s tests/fixtures/qserver.syms \
		-o "$d/spans.bin" --micromegas "$URL" -- "$QS" -n 1 -k F >"$d/sp.out" 2>"$d/sp.err" || RC=$?
	stop_receivers
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err"; return 1; }
	# process, stream, block; the process record again if its 401 came
	# back before the query (a lost process record is resent)
	summary_has "$d" 'micromegas: 0 requests sent, 0 retried, [34] dropped .*HTTP 401' \
		"every request refused with 401" || return 1
	[ ! -s "$d/mm/rows.jsonl" ] || { fail "rows were stored without the token"; return 1; }
}

# Receivers that are down: spanprobe is not slowed, exits 0 within the
# drain deadline, the block file is complete (checked against the
# fixture's ground truth), and the loss is counted.
t_receiver_down() {
	d=$T/down
	mkdir -p "$d"
	p1=$(closed_port)
	p2=$(closed_port)
	trace "$d" 60 -s tests/fixtures/qserver.syms -o "$d/spans.bin" \
		--micromegas "http://127.0.0.1:$p1" --otlp "http://127.0.0.1:$p2" \
		--perfetto "$d/trace.json" -- "$QS" -n 4 -k SFSF --truth "$d/truth.jsonl"
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC with receivers down"; show "$d/sp.err"; return 1; }
	drain=$(drain_secs "$d/truth.jsonl")
	[ "$drain" -le 8 ] || { fail "exited $drain s after the command's last call (at most 5 s of drain)"; return 1; }
	dump_json "$d" || return 1
	check "block file vs ground truth" "$PY" tests/integration/check_spans.py --truth "$d/truth.jsonl" \
		--spans "$d/dump.jsonl" --expect-queries 4 --min-checked-queries 2 --pid "$PID" || return 1
	perfetto "$d/trace.json" "$d/dump.jsonl" "$PID" || return 1
	summary_has "$d" 'micromegas: 0 requests sent, [0-9]+ retried, [1-9][0-9]* dropped' "micromegas drops" || return 1
	summary_has "$d" 'otlp: 0 requests sent, [0-9]+ retried, 2 dropped' "2 dropped OTLP traces" || return 1
	summary_has "$d" "Couldn't connect|Connection refused" "the connection error" || return 1
	echo "   spanprobe exited 0 in $SECS s, $drain s after the command's last call; losses counted: $(grep -o 'micromegas: [^;]*' "$d/sp.err" | cut -c1-70)"
}

# A receiver that takes 3 s per answer: the queries are all kept (the
# event loop never waits), the exit waits 5 s at most, and what could
# not go out is counted as unsent.
t_slow_receiver() {
	d=$T/slow
	mkdir -p "$d"
	receiver micromegas "$d/mm" --delay 3 || return 1
	mm=$URL
	receiver otlp "$d/otlp" --delay 3 || return 1
	trace "$d" 60 --min-query 0 -s tests/fixtures/qserver.syms -o "$d/spans.bin" \
		--micromegas "$mm" --otlp "$URL" -- "$QS" -n 8 -k F -t 1 --truth "$d/truth.jsonl"
	stop_receivers
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err"; return 1; }
	drain=$(drain_secs "$d/truth.jsonl")
	[ "$drain" -le 8 ] || { fail "exited $drain s after the command's last call: the exit did not give up after 5 s"; show "$d/sp.err"; return 1; }
	dump_json "$d" || return 1
	q=$(grep -c '"parent_span_id":0,' "$d/dump.jsonl")
	[ "$q" = 8 ] || { fail "$q of 8 queries in the block file"; return 1; }
	summary_has "$d" '\(0 lost\)' "no lost events" || return 1
	summary_has "$d" 'micromegas: [0-9] requests sent, 0 retried, [1-9][0-9]* dropped \(0 queue full, 0 rejected, 0 given up after retries, [1-9][0-9]* unsent at exit' \
		"micromegas requests unsent at exit" || return 1
	summary_has "$d" 'otlp: [0-9] requests sent, 0 retried, [1-9] dropped' "OTLP requests unsent at exit" || return 1
	grep -q '^spanprobe: sending [0-9]* queued requests' "$d/sp.err" ||
		{ fail "the exit did not say what it was waiting for"; return 1; }
	echo "   8 queries kept, exit $drain s after the command's last call: $(grep -o 'otlp: [^;.]*' "$d/sp.err")"
}

t_bad_url() {
	d=$T/badurl
	mkdir -p "$d"
	for opt in --micromegas --otlp; do
		trace "$d" 20 -s tests/fixtures/qserver.syms $opt "127.0.0.1:9" -- "$QS" -n 1 -k F
		[ "$RC" != 0 ] || { fail "$opt 127.0.0.1:9 (no scheme) was accepted"; return 1; }
		grep -qe "$opt: '127.0.0.1:9' is not an http:// or https:// URL" "$d/sp.err" ||
			{ fail "$opt: no clear error"; show "$d/sp.err"; return 1; }
	done
	no_token "$d"
}

# Captured values and error flags in micromegas (issue 14): capserver's
# calls with their arguments, return values and failures. The block file
# is checked against the fixture's own truth (check_caps.py), the
# async_events rows against the block file (names NAME(k=v, ...) [error]),
# and the rows flagged failed against the truth directly.
t_micromegas_attrs() {
	d=$T/mmattrs
	cs=$(cd "$FX" && pwd)/capserver
	mkdir -p "$d"
	receiver micromegas "$d/mm" --token-env MICROMEGAS_TEST_TOKEN || return 1
	trace "$d" 90 --min-span 0 --min-query 0 -s tests/fixtures/capserver.syms -o "$d/spans.bin" \
		--micromegas "$URL" -- "$cs" -n 9 --truth "$d/truth.jsonl"
	stop_receivers
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err"; return 1; }
	dump_json "$d" || return 1
	check "block file = capserver's truth" python3 tests/integration/check_caps.py \
		"$d/truth.jsonl" "$d/dump.jsonl" || return 1
	check micromegas "$PY" "$SINKS/check_sinks.py" micromegas --dump "$d/dump.jsonl" \
		--dir "$d/mm" --pid "$PID" --exe "$cs" || return 1
	"$PY" - "$d" <<'PYEOF'
import collections, json, sys
d = sys.argv[1]
load = lambda p: [json.loads(l) for l in open(p) if l.strip()]
fn = {"req": "capserver:req", "step": "capserver:req__step"}
want = collections.Counter(fn.get(t["fn"], t["fn"]) for t in load(d + "/truth.jsonl") if t.get("error"))
got = collections.Counter(r["name"].split("(")[0] for r in load(d + "/mm/rows.jsonl")
                          if r["event_type"] == "begin" and r["name"].endswith(" [error]"))
ok = want == got and sum(want.values()) > 0
print("   async_events rows flagged [error] per function %s, truth %s%s" %
      (dict(got), dict(want), "" if ok else ": FAIL"))
sys.exit(0 if ok else 1)
PYEOF
}

# ------------------------------------------------------------------- main

# attach --exe: one micromegas process per traced process, OTLP's
# process.pid per process, each with its own queries (issue 13).
t_many_processes() {
	d="$T/many"
	mkdir -p "$d/mm" "$d/otlp"
	receiver micromegas "$d/mm" || return 1
	mm=$URL
	receiver otlp "$d/otlp" || return 1
	MICROMEGAS_INGESTION_API_KEY=$TOKEN "$SP" attach --exe "$FX/forkstorm" --min-span 0 \
		--min-query 0 -s tests/fixtures/forkstorm.syms --micromegas "$mm" --otlp "$URL" \
		-o "$d/spans.bin" >"$d/sp.out" 2>"$d/sp.err" &
	sp=$!
	_n=300
	until grep -q '^spanprobe: attached' "$d/sp.err"; do
		[ $_n -gt 0 ] && kill -0 $sp 2>/dev/null || { fail "spanprobe did not attach"; show "$d/sp.err"; return 1; }
		_n=$((_n - 1)); sleep 0.1
	done
	"$FX/forkstorm" -n 5 --pids "$d/pids" >/dev/null || { fail "forkstorm failed"; return 1; }
	sleep 0.5
	kill -INT $sp
	wait $sp || { fail "spanprobe exited $?"; show "$d/sp.err"; return 1; }
	"$PY" - "$d" <<'PYEOF' || { show "$d/sp.err"; return 1; }
import collections, json, sys
d = sys.argv[1]
kids = sorted(int(l.split()[0]) for l in open(d + "/pids"))
load = lambda p: [json.loads(l) for l in open(p) if l.strip()]
procs = load(d + "/mm/processes.jsonl")
rows = load(d + "/mm/rows.jsonl")
spans = load(d + "/otlp/spans.jsonl")
errs = []
mm_pids = sorted(int(p["properties"]["pid"]) for p in procs)
if mm_pids != kids:
    errs.append("micromegas processes %s, children %s" % (mm_pids, kids))
by_proc = collections.Counter(r.get("process_id") for r in rows)
if sorted(by_proc) != sorted(p["process_id"] for p in procs) or set(by_proc.values()) != {6}:
    errs.append("micromegas rows per process %s (3 spans, begin and end: 6 each)" % dict(by_proc))
by_pid = collections.defaultdict(list)
for s in spans:
    by_pid[s["resource"]["process.pid"]].append(s)
if sorted(by_pid) != kids or any(len(v) != 3 for v in by_pid.values()):
    errs.append("otlp spans per process.pid %s" % {k: len(v) for k, v in by_pid.items()})
traces = {p: {s["trace_id"] for s in v} for p, v in by_pid.items()}
if any(len(t) != 1 for t in traces.values()) or len(set.union(*traces.values())) != len(kids):
    errs.append("otlp trace ids per process %s" % traces)
for e in errs:
    print("   FAIL: " + e)
if not errs:
    print("   5 processes: 5 micromegas processes (pid property), 5 OTLP process.pid, one trace each")
sys.exit(1 if errs else 0)
PYEOF
	stop_receivers
}

ALL="golden_decoder all_sinks micromegas_attrs many_processes otlp_gzip_and_dump_perfetto retry_5xx reject_4xx receiver_down slow_receiver bad_url"
[ -x "$SP" ] || echo "warning: $SP not found or not executable"
[ -x "$QS" ] || echo "warning: fixtures missing in $FX (make fixtures)"
NODE_MODULES=$(sh "$SINKS/npm-setup.sh") || { echo "npm setup failed"; NODE_MODULES=/nonexistent; }
start=$(date +%s)
for name in ${*:-$ALL}; do
	echo "== sinks: $name"
	if "t_$name"; then
		PASSED=$((PASSED + 1))
		echo "   ok: $name"
	else
		FAILED=$((FAILED + 1))
		echo "   FAILED: $name"
	fi
	stop_receivers
done
echo "($(($(date +%s) - start)) s)"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
