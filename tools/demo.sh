#!/bin/sh
# `make demo`: a demo server serves fast and slow queries for ~12 s while
# spanprobe, attached by PID, prints the span tree of every slow query.
set -eu

cd "$(dirname "$0")/.."
SP=${SPANPROBE:-build/spanprobe}
QS=${FIXTURES:-build/fixtures}/qserver
SYMS=tests/fixtures/qserver.syms
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

for f in "$SP" "$QS"; do
	[ -x "$f" ] || { echo "demo: $f is missing (make all fixtures)" >&2; exit 1; }
done

# Two worker threads; of every 5 queries 2 are slow (~1.35 s), 3 are fast
# or medium (under 1 s), so only the slow ones are printed.
"$QS" --wait-signal --for 12 -k DFMDF --pid-file "$TMP/pid" &
QPID=$!
n=100 # attach once qserver has exec'd and reached main()
until [ "$(cat "$TMP/pid" 2>/dev/null)" = "$QPID" ]; do
	if ! alive "$QPID" || [ $n -le 0 ]; then
		echo "demo: qserver did not start" >&2
		exit 1
	fi
	n=$((n - 1))
	sleep 0.1
done
echo "demo: qserver running as pid $QPID; serving fast and slow queries for 12 s"
echo "demo: spanprobe attach -p $QPID -s $SYMS   (--min-span 5ms --min-query 1s)"

"$SP" attach -p "$QPID" -s "$SYMS" 2>"$TMP/err" &
SPID=$!
n=300
until grep -q '^spanprobe: attached ' "$TMP/err"; do
	if ! alive "$SPID" || [ $n -le 0 ]; then
		echo "demo: spanprobe did not attach:" >&2
		cat "$TMP/err" >&2
		exit 1
	fi
	n=$((n - 1))
	sleep 0.1
done
grep '^spanprobe: attached ' "$TMP/err"
echo "demo: slow queries as spanprobe prints them:"
echo
kill -USR1 "$QPID"

# spanprobe stops by itself when qserver exits; don't wait forever.
n=400
while alive "$SPID" && [ $n -gt 0 ]; do
	n=$((n - 1))
	sleep 0.1
done
rc=0
wait "$SPID" || rc=$?
SPID=""
wait "$QPID" || :
QPID=""
echo
sed -n '/^spanprobe: attached /!p' "$TMP/err" >&2
echo "demo: done (spanprobe exit status $rc)"
exit "$rc"
