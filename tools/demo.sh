#!/bin/sh
# `make demo`: two demo servers in turn, each serving fast and slow queries
# while spanprobe, attached by PID, prints the span tree of every slow one:
#   1. qserver, a C server with nested calls (tests/fixtures/qserver.c);
#   2. rsqserver, a Rust tokio server shaped like micromegas' flight-sql-srv
#      (tests/fixtures/rust), its async fns traced through the task roots'
#      futures and the out-of-line polls.
set -eu

cd "$(dirname "$0")/.."
SP=${SPANPROBE:-build/spanprobe}
FX=${FIXTURES:-build/fixtures}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/spanprobe-demo.XXXXXX")
QPID=""
SPID=""

cleanup() {
	for p in $SPID $QPID; do kill -KILL "$p" 2>/dev/null || :; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Running, not a zombie (kill -0 succeeds on an unreaped child).
alive() {
	st=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null || :)
	[ -n "$st" ] && [ "$st" != Z ]
}

# wait_for CONDITION_CMD PID TENTHS: until the command succeeds, while PID lives
wait_for() {
	n=$3
	until eval "$1"; do
		if ! alive "$2" || [ "$n" -le 0 ]; then
			return 1
		fi
		n=$((n - 1))
		sleep 0.1
	done
}

# demo SERVER SYMBOLS DESCRIPTION SERVER_ARGS...
demo() {
	server=$1 syms=$2 what=$3
	shift 3
	[ -x "$server" ] || { echo "demo: $server is missing (make all fixtures rust-fixtures)" >&2; exit 1; }
	rm -f "$TMP/pid" "$TMP/err"
	"$server" --wait-signal --pid-file "$TMP/pid" "$@" > "$TMP/out" &
	QPID=$!
	# attach once the server has exec'd and reached main()
	wait_for '[ "$(cat "$TMP/pid" 2>/dev/null)" = "$QPID" ]' "$QPID" 100 ||
		{ echo "demo: $server did not start" >&2; exit 1; }
	echo "demo: $what running as pid $QPID"
	echo "demo: spanprobe attach -p $QPID -s $syms   (--min-span 5ms --min-query 1s)"
	"$SP" attach -p "$QPID" -s "$syms" 2>"$TMP/err" &
	SPID=$!
	if ! wait_for "grep -q '^spanprobe: attached ' '$TMP/err'" "$SPID" 300; then
		echo "demo: spanprobe did not attach:" >&2
		cat "$TMP/err" >&2
		exit 1
	fi
	grep '^spanprobe: attached ' "$TMP/err"
	echo "demo: slow queries as spanprobe prints them:"
	echo
	kill -USR1 "$QPID"
	# spanprobe stops by itself when the server exits; don't wait forever
	wait_for '! alive "$SPID"' "$SPID" 400 || :
	rc=0
	wait "$SPID" || rc=$?
	SPID=""
	wait "$QPID" || :
	QPID=""
	echo
	sed -n '/^spanprobe: attached /!p' "$TMP/err" >&2
	echo "demo: done (spanprobe exit status $rc)"
	echo
	[ "$rc" = 0 ] || exit "$rc"
}

# Two worker threads; of every 5 queries 2 are slow (~1.35 s), 3 are fast
# or medium (under 1 s), so only the slow ones are printed.
demo "$FX/qserver" tests/fixtures/qserver.syms \
	"qserver (C, nested calls; fast and slow queries for 12 s)" --for 12 -k DFMDF

# A tokio multi-thread runtime, 8 queries in flight, traced with the
# symbol list a user would write (the async fns of the seed plan): release
# builds inline most of them into the task root, whose future spanprobe
# decodes at each poll; the rest are polled out of line (Box<dyn Future>,
# a spawned task) across worker threads.
demo "$FX/rsqserver" tests/fixtures/rsqserver.syms \
	"rsqserver (Rust tokio, 2 workers, 8 concurrent queries)" -n 16
