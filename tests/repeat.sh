#!/bin/sh
# `make test-repeat N=10 LOAD=2`: `make test` N times in a row, each in a
# fresh clone of HEAD with its own build, while LOAD busy loops keep the
# CPUs busy (CI runs beside other work). Stops at the first failure and
# keeps that run's clone and logs; prints each run's duration (and its
# stages', from make test's "== make STAGE: N s" lines) and a summary line
# last. Exit status 0 only if every run passed.
#
# The first run builds everything from nothing. Later runs build all of
# spanprobe, its fixtures and tests again too, but take the compiled Rust
# crates (cargo's dependency cache, build/rust) and the npm packages of
# the sink tests (build/npm-sinks) from the first run's clone: a missing
# build step would already have failed the first run, and the later runs
# do not spend minutes (and the network) redoing what cannot differ.
# REPEAT_REUSE=0 builds those from nothing every time too.
# REPEAT_DIR (default $TMPDIR or /tmp) holds the clones.
set -u

N=${1:-10}
LOAD=${2:-2}
REUSE=${REPEAT_REUSE:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $N in '' | *[!0-9]*) echo "test-repeat: N must be a number, not '$N'" >&2; exit 2 ;; esac
[ "$N" -ge 1 ] || { echo "test-repeat: N must be at least 1" >&2; exit 2; }
case $LOAD in '' | *[!0-9]*) echo "test-repeat: LOAD must be a number, not '$LOAD'" >&2; exit 2 ;; esac
HEAD=$(git -C "$ROOT" rev-parse HEAD) || exit 2
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]; then
	echo "test-repeat: warning: uncommitted changes are not tested (the clones are of HEAD $HEAD)"
fi
W=$(mktemp -d "${REPEAT_DIR:-${TMPDIR:-/tmp}}/spanprobe-repeat.XXXXXX") || exit 2
# searchable by all: the caps test runs the fixtures as uid 65534
chmod 755 "$W"
LOADPIDS=""

stop_load() {
	for p in $LOADPIDS; do kill "$p" 2>/dev/null || :; done
	for p in $LOADPIDS; do wait "$p" 2>/dev/null || :; done
	LOADPIDS=""
}
trap stop_load EXIT
trap 'exit 130' INT TERM HUP

# Busy loops that also end by themselves once this script is gone (even
# SIGKILLed): `kill -0` is a shell builtin, the loop never sleeps.
i=0
while [ "$i" -lt "$LOAD" ]; do
	sh -c 'while kill -0 "$1" 2>/dev/null; do :; done' busy $$ &
	LOADPIDS="$LOADPIDS $!"
	i=$((i + 1))
done
echo "test-repeat: $N runs of make test from fresh clones of $(git -C "$ROOT" log -1 --format='%h %s' "$HEAD" | cut -c1-70)"
echo "test-repeat: $LOAD busy loops (pids$LOADPIDS); $(nproc) CPUs; Linux $(uname -r); clones in $W"

passed=0 total=0 max=0 times=""
k=1
while [ "$k" -le "$N" ]; do
	d=$W/run$k
	t0=$(date +%s)
	if ! git clone -q --no-checkout "$ROOT" "$d" || ! git -C "$d" checkout -q "$HEAD"; then
		echo "test-repeat: run $k: cannot clone $ROOT at $HEAD"
		exit 1
	fi
	if [ "$REUSE" = 1 ] && [ "$k" -gt 1 ]; then
		mkdir -p "$d/build"
		for x in rust npm-sinks; do
			[ -d "$W/run1/build/$x" ] && cp -a "$W/run1/build/$x" "$d/build/$x"
		done
	fi
	mkdir -p "$d/tmp"
	# KEEP_TMP: a failing run keeps the integration tests' files (in its clone)
	( cd "$d" && KEEP_TMP=1 TMPDIR="$d/tmp" make test ) >"$d/test.log" 2>&1
	rc=$?
	secs=$(($(date +%s) - t0))
	stages=$(sed -n 's/^== make \([a-z-]*\): \([0-9]*\) s$/\1 \2s/p' "$d/test.log" | tr '\n' ' ')
	if [ "$rc" != 0 ]; then
		echo "test-repeat: run $k FAILED (make test exited $rc) after $secs s; stages: $stages"
		grep -E 'FAIL|Error|error:' "$d/test.log" | head -n 30 | sed 's/^/   | /'
		echo "test-repeat: the log is $d/test.log; the clone and its test files are kept in $d"
		echo "test-repeat: SUMMARY: FAILED at run $k of $N ($passed passed before it) with $LOAD busy loops; durations (s):$times"
		exit 1
	fi
	passed=$((passed + 1))
	total=$((total + secs))
	[ "$secs" -le "$max" ] || max=$secs
	times="$times $secs"
	echo "test-repeat: run $k of $N passed in $secs s (clone, build and make test); stages: $stages"
	cp "$d/test.log" "$W/run$k.log"
	# the first clone's build is what later runs reuse
	[ "$k" = 1 ] && [ "$REUSE" = 1 ] && [ "$N" -gt 1 ] || rm -rf "$d"
	k=$((k + 1))
done
rm -rf "$W/run1"
echo "test-repeat: logs in $W"
echo "test-repeat: SUMMARY: $passed of $N runs passed with $LOAD busy loops on $(nproc) CPUs; durations (s):$times; mean $((total / N)) s, max $max s"
