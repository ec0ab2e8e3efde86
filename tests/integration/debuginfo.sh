# Debug info kept apart from the binary (issue 12), sourced by
# tests/integration/run.sh (helpers: run_sp, bg, fail, show, ...).
# The tokio fixture rsqserver is stripped the way production does it
# (objcopy --only-keep-debug / --strip-debug or --strip-all /
# --add-gnu-debuglink); wherever its debug file is kept, `run` must give
# the same nested spans against the fixture's truth as the unstripped
# binary (check_nested.py), and `symbols --json` must say where the
# symbols and types came from.

DI=""

di_id() { readelf -n "$1" 2>/dev/null | awk '/Build ID/ { print $3; exit }'; }

# The stripped variants, made once per run in $T/di.
di_setup() {
	[ -n "$DI" ] && return 0
	_di=$T/di
	mkdir -p "$_di/link" "$_di/nolink" "$_di/dynsym" "$_di/wrong" "$_di/srv"
	_src=$FX/rsqserver
	DI_ID=$(di_id "$_src")
	[ -n "$DI_ID" ] || { fail "$_src has no build-id"; return 1; }
	objcopy --only-keep-debug "$_src" "$_di/rsqserver.debug" &&
	# beside the binary, named by .gnu_debuglink
	cp "$_di/rsqserver.debug" "$_di/link/rsqserver.debug" &&
	objcopy --strip-debug --add-gnu-debuglink="$_di/link/rsqserver.debug" "$_src" "$_di/link/rsqserver" &&
	# no link at all: only the build-id finds it
	objcopy --strip-debug "$_src" "$_di/nolink/rsqserver" &&
	mkdir -p "$_di/bid/.build-id/$(echo "$DI_ID" | cut -c1-2)" &&
	cp "$_di/rsqserver.debug" "$_di/bid/.build-id/$(echo "$DI_ID" | cut -c1-2)/$(echo "$DI_ID" | cut -c3-).debug" &&
	# stripped to .dynsym (which holds none of rsqserver's functions)
	cp "$_di/rsqserver.debug" "$_di/dynsym/rsqserver.debug" &&
	objcopy --strip-all --add-gnu-debuglink="$_di/dynsym/rsqserver.debug" "$_src" "$_di/dynsym/rsqserver" &&
	# the debug file of another build (the v0 one) where the link points
	objcopy --only-keep-debug "$FX/rsqserver-v0" "$_di/wrong.debug" &&
	cp "$_di/wrong.debug" "$_di/wrong/rsqserver.debug" &&
	objcopy --strip-debug --add-gnu-debuglink="$_di/link/rsqserver.debug" "$_src" "$_di/wrong/rsqserver" &&
	cp "$_di/rsqserver.debug" "$_di/srv/rsqserver.debug" ||
		{ fail "objcopy could not make the stripped variants"; return 1; }
	DI_WRONG_ID=$(di_id "$_di/wrong.debug")
	DI=$_di
}

# di_nested DIR BINARY [OPTIONS...]: `run` with nested decoding, checked
# against the truth.
di_nested() {
	_d=$1 _b=$2
	shift 2
	run_sp "$_d" 120 run "$@" -s "$SYMS/rsqserver.syms" -o "$_d/spans.bin" -- \
		"$_b" -n 8 --truth "$_d/truth.jsonl" || return 1
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$_d/sp.err" "spanprobe stderr"; return 1; }
	"$SP" dump "$_d/spans.bin" --json > "$_d/spans.json" || { fail "dump failed"; return 1; }
	python3 tests/integration/check_nested.py --truth "$_d/truth.jsonl" --spans "$_d/spans.json" ||
		{ show "$_d/sp.err" "spanprobe stderr"; return 1; }
}

# di_source DIR BINARY WANT [OPTIONS...]: `symbols --json`; each key of
# the JSON object WANT must have that value in the binary's "objects"
# entry ("debug_file": "PREFIX*" matches a prefix).
di_source() {
	_d=$1 _b=$2 _want=$3
	shift 3
	"$SP" symbols --json "$@" -s "$SYMS/rsqserver.syms" "$_b" > "$_d/sym.json" 2> "$_d/sym.err" ||
		{ fail "spanprobe symbols --json failed"; show "$_d/sym.err" "symbols stderr"; return 1; }
	python3 - "$_d/sym.json" "$_want" <<'EOF' || { show "$_d/sym.err" "symbols stderr"; return 1; }
import json, sys
o = json.load(open(sys.argv[1]))["objects"][0]
bad = []
for k, v in json.loads(sys.argv[2]).items():
    got = o.get(k)
    ok = (isinstance(v, str) and v.endswith("*") and isinstance(got, str)
          and got.startswith(v[:-1])) or got == v
    if not ok:
        bad.append("%s is %r, expected %r" % (k, got, v))
for b in bad:
    print("   FAIL: symbols --json objects[0]: " + b)
if not bad:
    print("   symbols: %s from %s, types %s from %s (%s)" % (
        o["symbols"], o["debug_file"], o["types"], o["types_from"], o["debug_source"]))
sys.exit(1 if bad else 0)
EOF
}

# Debug file beside the binary, named by its .gnu_debuglink (CRC checked).
t_debuginfo_link() {
	di_setup || return 1
	d=$(newdir di-link)
	di_source "$d" "$DI/link/rsqserver" '{"symbols": "symtab", "debug_source": ".gnu_debuglink",
		"debug_file": "'"$DI"'/link/rsqserver.debug", "types": "full", "types_from": "debug_file"}' || return 1
	di_nested "$d" "$DI/link/rsqserver"
}

# No link: found in a build-id tree given with --debuginfo.
t_debuginfo_buildid() {
	di_setup || return 1
	d=$(newdir di-bid)
	di_source "$d" "$DI/nolink/rsqserver" '{"debug_source": "--debuginfo",
		"debug_file": "'"$DI"'/bid/.build-id/*", "types": "full", "build_id": "'"$DI_ID"'"}' \
		--debuginfo "$DI/bid" || return 1
	di_nested "$d" "$DI/nolink/rsqserver" --debuginfo "$DI/bid"
}

# Stripped to .dynsym: every function name comes from the debug file's
# .symtab, mapped through the binary's own segments.
t_debuginfo_dynsym() {
	di_setup || return 1
	d=$(newdir di-dynsym)
	di_source "$d" "$DI/dynsym/rsqserver" '{"symbols": "debug_symtab",
		"debug_source": ".gnu_debuglink", "types": "full"}' || return 1
	di_nested "$d" "$DI/dynsym/rsqserver"
}

# The debug file of another build: refused, naming both build-ids; given
# with --debuginfo it is an error (exit 2), for symbols and for run.
t_debuginfo_wrong() {
	di_setup || return 1
	d=$(newdir di-wrong)
	rc=0
	"$SP" symbols --debuginfo "$DI/wrong.debug" -s "$SYMS/rsqserver.syms" "$DI/nolink/rsqserver" \
		> "$d/sym.out" 2> "$d/sym.err" || rc=$?
	[ "$rc" = 2 ] || { fail "symbols with the wrong --debuginfo exited $rc, not 2"; return 1; }
	grep -q "build-id $DI_WRONG_ID.*$DI/nolink/rsqserver has build-id $DI_ID" "$d/sym.err" ||
		{ fail "the error does not name both build-ids"; show "$d/sym.err" "symbols stderr"; return 1; }
	run_sp "$d" 60 run --debuginfo "$DI/wrong.debug" -s "$SYMS/rsqserver.syms" -- \
		"$DI/nolink/rsqserver" -n 1 || return 1
	[ "$RC" != 0 ] && grep -q "build-id $DI_WRONG_ID.*has build-id $DI_ID" "$d/sp.err" ||
		{ fail "run with the wrong --debuginfo exited $RC"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	# where .gnu_debuglink points: refused with a warning, nothing decoded
	di_source "$d" "$DI/wrong/rsqserver" '{"debug_file": null, "types": "none"}' || return 1
	grep -q "refused .*has build-id $DI_WRONG_ID, .*has $DI_ID: not its debug file" "$d/sym.err" ||
		{ fail "no warning naming both build-ids"; show "$d/sym.err" "symbols stderr"; return 1; }
	echo "   wrong build-id: exit 2 for --debuginfo (symbols and run), refused debuglink target"
}

# free_port: a TCP port nobody listens on now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A real debuginfod (Debian's package) indexing $DI/srv, on a free port,
# with its own database; clients use 127.0.0.1 (debuginfod has no option to
# listen on loopback only). Killed with the test's other children.
start_debuginfod() {
	_d=$1
	for _try in 1 2 3; do
		DI_PORT=$(free_port)
		bg debuginfod -F -p "$DI_PORT" -d "$_d/db.sqlite" -t 0 -g 0 -c 1 "$DI/srv" \
			> "$_d/debuginfod.log" 2>&1
		# indexed once it serves the file
		if python3 - "$DI_PORT" "$DI_ID" <<'EOF'; then return 0; fi
import sys, time, urllib.request
url = "http://127.0.0.1:%s/buildid/%s/debuginfo" % (sys.argv[1], sys.argv[2])
for _ in range(600):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
EOF
		kill "$LAST" 2>/dev/null || :
	done
	fail "debuginfod did not serve the debug file"
	show "$_d/debuginfod.log" "debuginfod log"
	return 1
}

# Served by a real debuginfod server: no link, no --debuginfo.
t_debuginfod() {
	command -v debuginfod >/dev/null || { fail "debuginfod is not installed (make deps)"; return 1; }
	di_setup || return 1
	d=$(newdir di-debuginfod)
	start_debuginfod "$d" || return 1
	export DEBUGINFOD_URLS="http://127.0.0.1:$DI_PORT" DEBUGINFOD_CACHE_PATH="$d/cache"
	rc=0
	di_source "$d" "$DI/nolink/rsqserver" '{"debug_source": "debuginfod",
		"debug_file": "'"$d"'/cache/'"$DI_ID"'/*", "types": "full"}' &&
		di_nested "$d" "$DI/nolink/rsqserver" || rc=1
	unset DEBUGINFOD_URLS DEBUGINFOD_CACHE_PATH
	return $rc
}

# debuginfod down (connection refused) or silent (it accepts and never
# answers): a warning saying so, a bounded wait (libdebuginfod's own
# default is 90 s per silent server; run_sp kills at 60 s), and the
# out-of-line polls, which need no types, still traced against the truth.
t_debuginfod_down() {
	di_setup || return 1
	for mode in refused silent; do
		d=$(newdir "di-down-$mode")
		if [ $mode = refused ]; then
			port=$(free_port)
			expect="Connection refused"
		else
			bg python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
time.sleep(300)' > "$d/port"
			wait_file "$d/port" "$LAST" 10 || return 1
			port=$(cat "$d/port")
			expect="no answer in time"
		fi
		export DEBUGINFOD_URLS="http://127.0.0.1:$port" DEBUGINFOD_CACHE_PATH="$d/cache"
		# a silent server costs DEBUGINFOD_TIMEOUT per lookup (5 s by
		# default, several lookups): 1 s also shows the user's own is kept
		[ $mode = refused ] || export DEBUGINFOD_TIMEOUT=1
		run_sp "$d" 60 run -s "$SYMS/rsqserver-outofline.syms" --min-query 0 -o "$d/spans.bin" -- \
			"$DI/nolink/rsqserver" -n 8 --truth "$d/truth.jsonl"
		rc=$?
		unset DEBUGINFOD_URLS DEBUGINFOD_CACHE_PATH DEBUGINFOD_TIMEOUT
		[ $rc = 0 ] || return 1
		[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err" "spanprobe stderr"; return 1; }
		[ "$(grep -c "debuginfod (DEBUGINFOD_URLS=http://127.0.0.1:$port): $expect" "$d/sp.err")" -ge 1 ] ||
			{ fail "no '$expect' warning for debuginfod"; show "$d/sp.err" "spanprobe stderr"; return 1; }
		"$SP" dump "$d/spans.bin" --json > "$d/spans.json" || { fail "dump failed"; return 1; }
		echo "   debuginfod $mode: warned, then out-of-line polls traced:"
		# no DWARF: the task root's async block is named after its fn.
		# --tol 10ms: what is checked here is that tracing goes on, and
		# a fixture thread preempted between its timestamp and its
		# first poll on a loaded machine exceeds the default 1 ms
		python3 tests/integration/check_async.py --truth "$d/truth.jsonl" --spans "$d/spans.json" \
			--tol 10ms --root-name rsqserver::servers::spawn_query \
			--span-name rsqserver::lakehouse::materialized_view::MaterializedView::scan_partitions ||
			{ show "$d/sp.err" "spanprobe stderr"; return 1; }
	done
}

# split-debuginfo = "packed": the types are in rsqserver-packed.dwp, which
# libdw reads from elfutils 0.191 on (install-deps takes 0.192 from
# bookworm-backports). Without its .dwp, symbols says which units could
# not be read instead of blaming the build settings, and decodes nothing.
t_debuginfo_dwp() {
	[ -f "$FX/rsqserver-packed.dwp" ] || { fail "$FX/rsqserver-packed.dwp missing (make rust-fixtures)"; return 1; }
	d=$(newdir di-dwp)
	di_source "$d" "$FX/rsqserver-packed" '{"types": "full", "types_from": "split_dwarf",
		"split_missing": 0, "debug_file": null}' || return 1
	di_nested "$d" "$FX/rsqserver-packed" || return 1
	cp "$FX/rsqserver-packed" "$d/alone"
	di_source "$d" "$d/alone" '{"types": "lines", "split_units": 0}' || return 1
	grep -q "split DWARF units not found or not readable" "$d/sym.json" ||
		{ fail "symbols does not say the split DWARF could not be read"; return 1; }
}

# attach to a running binary stripped to .dynsym: the object is read
# through /proc/PID/root, and so is its debug file's place (beside it).
t_debuginfo_attach() {
	di_setup || return 1
	d=$(newdir di-attach)
	attach_gated "$d" "$DI/dynsym/rsqserver" -s "$SYMS/rsqserver.syms" || return 1
	python3 tests/integration/check_nested.py --attached --truth "$d/truth.jsonl" \
		--spans "$d/spans.json" || { show "$d/sp.err" "spanprobe stderr"; return 1; }
}
