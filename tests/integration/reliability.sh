# Reliability tests ("never harm the target, never lose data silently"),
# sourced by tests/integration/run.sh, which provides the helpers (bg,
# wait_exit, reap, check_dump, fail, show, ...) and runs them by name.
# Fixtures: tests/stress/*.{c,cpp,rs}, built into $STRESS_FIXTURES
# (default build/stress) by `make fixtures`.
#
# STRESS_SCALE (default 1) multiplies the counts: `make test` runs 1,000
# of each abnormal exit and 10,000 threads; `make stress` runs 10 times
# that, plus the attach-mode matrix (storm_modes).

SX=${STRESS_FIXTURES:-build/stress}
SXSYMS=tests/stress
SXABS=$(cd "$SX" 2>/dev/null && pwd || echo "$SX")
SCALE=${STRESS_SCALE:-1}
# STRESS_DIV divides them (make test-asan: 10, a sanitized run is slower)
DIV=${STRESS_DIV:-1}
BPFMAPS="python3 tests/stress/bpfmaps.py"
# crashing fixtures must not leave core files behind
ulimit -c 0 2>/dev/null || :

need_fixture() {
	[ -x "$SX/$1" ] && return 0
	fail "$SX/$1 is missing (make stress-fixtures${2:+; $2})"
	return 1
}

# wait_file FILE PID SECONDS: FILE is non-empty; PID must stay alive.
wait_file() {
	wf_n=$(($3 * 10))
	until [ -s "$1" ]; do
		if ! alive "$2"; then
			fail "pid $2 exited before $1 was written"
			return 1
		fi
		if [ "$wf_n" -le 0 ]; then
			fail "$1 not written within $3 s"
			return 1
		fi
		wf_n=$((wf_n - 1))
		sleep 0.1
	done
}

# signal_pid SIG PIDFILE: signals the pid in PIDFILE, never pid 0.
signal_pid() {
	sg_p=$(pidfile "$2")
	[ "$sg_p" -gt 1 ] 2>/dev/null || { fail "no pid in $2"; return 1; }
	kill -"$1" "$sg_p"
}

# threads_left SP_PID COUNTER: spanprobe's count of per-thread stacks
# (stacks_alloc: threads holding one; stacks_open: threads inside a query),
# polled until 0 (or 5 s: before Linux 6.16 a thread's exit tracepoint may
# run a moment after pthread_join has returned); prints the last count.
# The stacks are task storage, which cannot be listed: the BPF programs
# count them in globals.
threads_left() {
	tl_n=50
	while :; do
		tl_c=$($BPFMAPS "$1" --global "$2") || return 1
		if [ "$tl_c" = 0 ] || [ "$tl_n" -le 0 ]; then break; fi
		tl_n=$((tl_n - 1))
		sleep 0.1
	done
	echo "$tl_c"
}

summary_field() {  # summary_field FILE REGEX-with-one-group
	sed -n "s/.*$2.*/\\1/p" "$1" | tail -n 1
}

# storm DIR FIXTURE QUERIES [SPANPROBE-OPTIONS...]: `spanprobe run` with
# (ST_FX_ARGS: more arguments for the fixture)
# --min-span 0 --min-query 0 on a fixture that serves QUERIES queries
# (thousands of abnormal exits among them) and then holds. While it holds
# no query is open: spanprobe's per-thread map must be empty. Then every
# span of every query is checked against the truth, the summary's count of
# abnormal exits against the truth's, and nothing may be lost or flagged
# incomplete; the target must not have aborted.
storm() {
	st_d=$1 st_fx=$2 st_n=$3
	shift 3
	need_fixture "$st_fx" || return 1
	bg "$SP" run --min-span 0 --min-query 0 "$@" -s "$SXSYMS/$st_fx.syms" -o "$st_d/spans.bin" -- \
		"$SX/$st_fx" -n "$st_n" ${ST_FX_ARGS:-} --truth "$st_d/truth.jsonl" --pid-file "$st_d/fx.pid" \
		--hold "$st_d/hold" >"$st_d/sp.out" 2>"$st_d/sp.err"
	st_sp=$LAST
	if ! wait_file "$st_d/hold" "$st_sp" $((180 * SCALE)); then
		show "$st_d/sp.out" stdout
		show "$st_d/sp.err" "spanprobe stderr"
		return 1
	fi
	st_left=$(threads_left "$st_sp" stacks_open) || { fail "cannot read spanprobe's BPF maps"; return 1; }
	$BPFMAPS "$st_sp" >"$st_d/maps.txt" 2>&1 || :
	signal_pid USR1 "$st_d/fx.pid" || return 1
	if ! wait_exit "$st_sp" 60; then
		fail "spanprobe run still running 60 s after the fixture was released"
		return 1
	fi
	reap "$st_sp"
	if [ "$RC" != 0 ]; then
		fail "spanprobe run exited $RC: the fixture crashed or aborted?"
		show "$st_d/sp.out" stdout
		show "$st_d/sp.err" "spanprobe stderr"
		return 1
	fi
	grep -q "served $st_n queries" "$st_d/sp.out" ||
		{ fail "the fixture did not serve its $st_n queries"; show "$st_d/sp.out" stdout; return 1; }
	if [ "$st_left" != 0 ]; then
		fail "no query open, yet spanprobe counts $st_left threads inside one: per-thread state leaked"
		sed 's/^/   | /' "$st_d/maps.txt"
		return 1
	fi
	grep -q ' (0 lost)' "$st_d/sp.err" ||
		{ fail "records were lost (see the summary)"; show "$st_d/sp.err" "spanprobe stderr"; return 1; }
	check_dump "$st_d/spans.bin" "$st_d/truth.jsonl" "$st_d" --min-span 0 --min-query 0 --margin 0 \
		--expect-queries "$st_n" --min-checked-queries "$st_n" --abnormal-roots \
		--pid "$(pidfile "$st_d/fx.pid")" || return 1
	st_want=$(grep -c '"abnormal":true' "$st_d/truth.jsonl")
	st_got=$(summary_field "$st_d/sp.err" ' \([0-9][0-9]*\) abnormal exits')
	if [ "$st_got" != "$st_want" ]; then
		fail "the summary counts '$st_got' abnormal exits, the truth has $st_want"
		show "$st_d/sp.err" "spanprobe stderr"
		return 1
	fi
	if grep -q '"incomplete"' "$st_d/dump.jsonl"; then
		fail "$(grep -c '"incomplete"' "$st_d/dump.jsonl") spans flagged incomplete, nothing was lost"
		return 1
	fi
	echo "   $st_want abnormal exits found, none invented; no thread stack open once the queries were over"
}

# 1,000 longjmp to the root, 1,000 siglongjmp out of a signal handler,
# 1,000 longjmp to a middle frame (C: uretprobes by default).
t_storm_longjmp() {
	d=$(newdir storm-jmp)
	storm "$d" jmpstorm $((4000 * SCALE / DIV))
}

# Under auto, which puts C++ methods and Rust functions under the unwind
# guard (issue 11): 1,000 each of C++ exceptions caught by the root,
# caught in a middle frame, rethrown with `throw;` from a middle frame,
# and pthread_exit (a forced unwind, destructors run) from a thread of its
# own; 1,000 each of Rust panics caught by catch_unwind in the root, in a
# middle frame, and escaping the root. Every span against the truth,
# abnormal exits counted exactly, no per-thread state left, no abort, and
# the guard in use.
guard_used() { # DIR
	w=$(summary_field "$1/sp.err" 'unwind guard: \([0-9][0-9]*\) return slots')
	[ "${w:-0}" -gt 0 ] || { fail "the guard wrote no return slot: it was not in use"; show "$1/sp.err" "spanprobe stderr"; return 1; }
	echo "   $w return slots restored or re-armed by the guard"
}

t_storm_cxx() {
	d=$(newdir storm-cxx)
	ST_FX_ARGS="-k NXRTE"
	storm "$d" throwstorm $((5000 * SCALE / DIV))
	_rc=$?
	ST_FX_ARGS=""
	[ "$_rc" = 0 ] && guard_used "$d"
}

t_storm_panic() {
	d=$(newdir storm-panic)
	need_fixture panicstorm "it needs rustc" || return 1
	storm "$d" panicstorm $((4000 * SCALE / DIV)) && guard_used "$d"
}

# 1,000 tokio tasks whose async fn panics after one suspension, caught by
# tokio's task harness (the JoinHandle gets a JoinError), under auto (the
# guard): each task's span, found by its captured number, abnormal, on its
# first thread and around its truth; none missing, none invented
# (check_task_panics.py). The first version lost about one in ten: the
# harness frees a panicked task, the next task spawned often gets its
# memory, and that task's first poll took over the dead one's entry and
# arguments before the dead poll's frame was ended.
t_tokio_panics() {
	d=$(newdir tokio-panics)
	tp_n=$((1000 * SCALE / DIV))
	printf 'root rsqserver::panics::panicking_task::{*} args\n' >"$d/panics.syms"
	bg "$SP" run --min-span 0 --min-query 0 -s "$d/panics.syms" -o "$d/spans.bin" -- \
		"$FX/rsqserver" --panic-tasks "$tp_n" --truth "$d/truth.jsonl" --pid-file "$d/fx.pid" \
		--hold "$d/hold" >"$d/sp.out" 2>"$d/sp.err"
	tp_sp=$LAST
	wait_file "$d/hold" "$tp_sp" $((120 * SCALE)) || { show "$d/sp.out" stdout; show "$d/sp.err" "spanprobe stderr"; return 1; }
	# every task is over, the 2 workers idle. A poll a panic unwound ends
	# (abnormal) at its thread's next probe hit, which an idle worker does
	# not have: each may hold its last task's frame, no more (1,000 panics
	# must not leave 1,000 states)
	tp_left=$($BPFMAPS "$tp_sp" --global stacks_open) || { fail "cannot read spanprobe's BPF maps"; return 1; }
	signal_pid USR1 "$d/fx.pid" || return 1
	wait_exit "$tp_sp" 60 || { fail "spanprobe run still running 60 s after the fixture was released"; return 1; }
	reap "$tp_sp"
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.out" stdout; show "$d/sp.err" "spanprobe stderr"; return 1; }
	grep -q "^rsqserver: $tp_n panicking tasks: $tp_n panics caught by tokio's task harness, $tp_n guards dropped$" "$d/sp.out" ||
		{ fail "not every panic was caught, or not every guard dropped"; show "$d/sp.out" stdout; return 1; }
	[ "$tp_left" -le 2 ] || { fail "every task is over, yet spanprobe counts $tp_left threads inside one (2 workers): per-thread state leaked"; return 1; }
	grep -q ' (0 lost)' "$d/sp.err" || { fail "records were lost"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	guard_used "$d" || return 1
	"$SP" dump "$d/spans.bin" --json >"$d/spans.json" || { fail "dump failed"; return 1; }
	python3 tests/integration/check_task_panics.py "$d/truth.jsonl" "$d/spans.json" "$tp_n"
}

# The same storms with ret-site exits, auto's choice where the guard
# cannot work (--follow, --exe, a debugger, no free signal): 1,000 C++
# exceptions caught by the root, 1,000 in a middle frame; 1,000 Rust
# panics caught in the root, in a middle frame, escaping the root.
t_storm_cxx_retsites() {
	d=$(newdir storm-cxx-ret)
	storm "$d" throwstorm $((3000 * SCALE / DIV)) --exit-probe retsites
}

t_storm_panic_retsites() {
	d=$(newdir storm-panic-ret)
	need_fixture panicstorm "it needs rustc" || return 1
	storm "$d" panicstorm $((4000 * SCALE / DIV)) --exit-probe retsites
}

# Rust async under load: the tokio fixture with 64 queries in flight on 2
# workers (make test: 200 queries; make stress: 2,000), traced with nested
# decoding. Every span >= 5 ms of every query >= 1 s against the truth
# (check_nested.py: presence, parents, uncertainty windows, nothing
# invented), every spawned task linked to its spawner, nothing lost.
t_rust_async_load() {
	d=$(newdir rust-load)
	rl_n=$((200 * SCALE / DIV))
	run_sp "$d" $((120 * SCALE)) run -s "$SYMS/rsqserver.syms" -o "$d/spans.bin" -- \
		"$FX/rsqserver" -n "$rl_n" --concurrency 64 -t 2 --truth "$d/truth.jsonl" || return 1
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	grep -q ' (0 lost)' "$d/sp.err" || { fail "records were lost"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	grep -q "spawned tasks: $rl_n linked to their spawner, 0 their own query" "$d/sp.err" ||
		{ fail "not every spawned task was linked to its spawner"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	"$SP" dump "$d/spans.bin" --json > "$d/spans.json" || { fail "dump failed"; return 1; }
	echo "   $rl_n queries, 64 in flight on 2 workers:"
	python3 tests/integration/check_nested.py --truth "$d/truth.jsonl" --spans "$d/spans.json" ||
		{ show "$d/sp.err" "spanprobe stderr"; return 1; }
}

# The storms with the other kernel mechanisms and exit probes (stress).
t_storm_modes() {
	for m in multi classic; do
		d=$(newdir "modes-jmp-$m")
		echo "   longjmp storm, --attach-mode $m:"
		storm "$d" jmpstorm $((400 * SCALE)) --attach-mode "$m" || return 1
		d=$(newdir "modes-cxx-$m")
		echo "   C++ storm, --attach-mode $m:"
		storm "$d" throwstorm $((300 * SCALE)) --attach-mode "$m" || return 1
		d=$(newdir "modes-panic-$m")
		echo "   Rust storm, --attach-mode $m:"
		storm "$d" panicstorm $((400 * SCALE)) --attach-mode "$m" || return 1
	done
	d=$(newdir modes-jmp-retsites)
	echo "   longjmp storm, --exit-probe retsites:"
	storm "$d" jmpstorm $((400 * SCALE)) --exit-probe retsites
}

# 10,000 threads created and gone while attached; one in ten exits with
# pthread_exit in the middle of its query. Every thread's query must be
# traced (they all started after attach), threads that died mid-query
# closed as abnormal, the thread stacks bounded while they churn (8
# threads alive at a time; a leak would leave one per dead thread), and
# none left at the end.
t_thread_churn() {
	d=$(newdir churn)
	need_fixture churn || return 1
	nt=$((10000 * SCALE / DIV))
	bg "$SP" run --min-span 0 --min-query 0 -s "$SXSYMS/churn.syms" -o "$d/spans.bin" -- \
		"$SX/churn" -t "$nt" -c 8 --truth "$d/truth.jsonl" --pid-file "$d/fx.pid" \
		--hold "$d/hold" >"$d/sp.out" 2>"$d/sp.err"
	sp=$LAST
	max=0 samples=0 n=$((1800 * SCALE))
	while [ ! -s "$d/hold" ] && alive "$sp" && [ $n -gt 0 ]; do
		if c=$($BPFMAPS "$sp" --global stacks_alloc 2>/dev/null); then
			samples=$((samples + 1))
			[ "$c" -le "$max" ] || max=$c
		fi
		n=$((n - 1))
		sleep 0.1
	done
	wait_file "$d/hold" "$sp" 5 || { show "$d/sp.err" "spanprobe stderr"; return 1; }
	left=$(threads_left "$sp" stacks_alloc) || { fail "cannot read spanprobe's BPF maps"; return 1; }
	$BPFMAPS "$sp" >"$d/maps.txt" 2>&1 || :
	signal_pid USR1 "$d/fx.pid" || return 1
	wait_exit "$sp" 60 || { fail "spanprobe run still running after the fixture was released"; return 1; }
	reap "$sp"
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	q=$(sed -n 's/^done \([0-9]*\)$/\1/p' "$d/hold")
	grep -q "churn: $nt threads, served $q queries" "$d/sp.out" ||
		{ fail "the fixture did not finish"; show "$d/sp.out" stdout; return 1; }
	echo "   $nt threads; thread stacks counted $samples times while they churned: at most $max"
	if [ "$left" != 0 ]; then
		fail "all threads gone, yet spanprobe holds $left thread stacks: per-thread state leaked"
		sed 's/^/   | /' "$d/maps.txt"
		return 1
	fi
	[ "$samples" -gt 0 ] || { fail "the thread stacks could not be counted during the run"; return 1; }
	# a stack lives as long as its thread; state left behind by dead
	# threads would grow by hundreds
	[ "$max" -le 8 ] ||
		{ fail "spanprobe held $max thread stacks with at most 8 threads alive at a time"; return 1; }
	grep -q ' (0 lost)' "$d/sp.err" || { fail "records were lost"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	check_dump "$d/spans.bin" "$d/truth.jsonl" "$d" --min-span 0 --min-query 0 --margin 0 \
		--expect-queries "$q" --min-checked-queries "$q" --abnormal-roots \
		--pid "$(pidfile "$d/fx.pid")"
}

# lifecycle_end DIR MODE WANT_RC: attach to the lifecycle fixture, let it
# serve 3 queries and end inside the 4th (exit(3), SIGSEGV); spanprobe must
# notice, flush, print its summary and exit 0, with the 3 queries intact
# and the 4th closed as abnormal where the target ended.
lifecycle_end() {
	le_d=$1 le_m=$2 le_want=$3
	bg "$SX/lifecycle" -n 3 --end "$le_m" --truth "$le_d/truth.jsonl" --pid-file "$le_d/fx.pid" \
		--wait-signal >"$le_d/fx.out" 2>&1
	le_fx=$LAST
	wait_pidfile "$le_d/fx.pid" "$le_fx" || return 1
	attach_sp "$le_d" "$le_fx" --min-span 0 --min-query 0 -s "$SXSYMS/lifecycle.syms" \
		-o "$le_d/spans.bin" || return 1
	le_sp=$SPPID
	kill -USR1 "$le_fx"
	wait_exit "$le_fx" 30 || { fail "the fixture did not end"; return 1; }
	reap "$le_fx"
	[ "$RC" = "$le_want" ] || { fail "the fixture exited $RC, expected $le_want"; show "$le_d/fx.out" output; return 1; }
	if ! wait_exit "$le_sp" 15; then
		fail "spanprobe attach still running 15 s after the target ended ($le_m)"
		show "$le_d/sp.err" "spanprobe stderr"
		return 1
	fi
	reap "$le_sp"
	[ "$RC" = 0 ] || { fail "spanprobe attach exited $RC after the target's $le_m"; show "$le_d/sp.err" "spanprobe stderr"; return 1; }
	grep -q 'traced for .* until the process exited: .* (0 lost)' "$le_d/sp.err" ||
		{ fail "no summary saying the process exited, nothing lost"; show "$le_d/sp.err" "spanprobe stderr"; return 1; }
	check_dump "$le_d/spans.bin" "$le_d/truth.jsonl" "$le_d" --min-span 0 --min-query 0 --margin 0 \
		--expect-queries 4 --min-checked-queries 4 --abnormal-roots --pid "$le_fx"
}

# The target exits, crashes or execs while attached; spanprobe is
# SIGKILLed while the target runs.
t_lifecycle() {
	need_fixture lifecycle || return 1
	bad=0
	echo "   the target calls exit(3) inside a query:"
	lifecycle_end "$(newdir life-exit)" exit 3 || bad=1
	echo "   the target dies of SIGSEGV inside a query:"
	lifecycle_end "$(newdir life-segv)" segv 139 || bad=1

	echo "   spanprobe run on a target that dies of SIGSEGV:"
	d=$(newdir life-run-segv)
	run_sp "$d" 60 run --min-span 0 --min-query 0 -s "$SXSYMS/lifecycle.syms" -o "$d/spans.bin" -- \
		"$SX/lifecycle" -n 3 --end segv --truth "$d/truth.jsonl" --pid-file "$d/fx.pid" || return 1
	if [ "$RC" != 139 ]; then
		fail "spanprobe run exited $RC, the command died of SIGSEGV (139)"; show "$d/sp.err" "spanprobe stderr"; bad=1
	elif grep -q 'lost)' "$d/sp.err"; then
		check_dump "$d/spans.bin" "$d/truth.jsonl" "$d" --min-span 0 --min-query 0 --margin 0 \
			--expect-queries 4 --min-checked-queries 4 --abnormal-roots \
			--pid "$(pidfile "$d/fx.pid")" || bad=1
	else
		fail "no summary after the command crashed"; show "$d/sp.err" "spanprobe stderr"; bad=1
	fi

	echo "   the target calls exec inside a query:"
	d=$(newdir life-exec)
	bg "$SX/lifecycle" -n 3 --end exec --truth "$d/truth.jsonl" --pid-file "$d/fx.pid" \
		--wait-signal >"$d/fx.out" 2>&1
	fx=$LAST
	wait_pidfile "$d/fx.pid" "$fx" || return 1
	attach_sp "$d" "$fx" --min-span 0 --min-query 0 -s "$SXSYMS/lifecycle.syms" \
		-o "$d/spans.bin" || return 1
	sp=$SPPID
	kill -USR1 "$fx"
	wait_file "$d/fx.out" "$fx" 30 || return 1
	n=100
	until grep -q "exec'd" "$d/fx.out" || [ $n -le 0 ]; do n=$((n - 1)); sleep 0.1; done
	if ! wait_exit "$sp" 15; then
		fail "spanprobe attach still running 15 s after the target called exec"
		show "$d/sp.err" "spanprobe stderr"
		kill -INT "$sp"
		bad=1
	else
		reap "$sp"
		if [ "$RC" != 0 ]; then
			fail "spanprobe attach exited $RC after the target's exec"; show "$d/sp.err" "spanprobe stderr"; bad=1
		elif ! grep -q 'until the process called exec' "$d/sp.err"; then
			fail "the summary does not say 'until the process called exec'"; show "$d/sp.err" "spanprobe stderr"; bad=1
		else
			check_dump "$d/spans.bin" "$d/truth.jsonl" "$d" --min-span 0 --min-query 0 --margin 0 \
				--expect-queries 4 --min-checked-queries 4 --abnormal-roots --pid "$fx" || bad=1
		fi
	fi
	# the new image runs on, unharmed
	alive "$fx" || { fail "the target died after its exec"; show "$d/fx.out" output; return 1; }
	kill -USR1 "$fx"
	wait_exit "$fx" 30 || { fail "the exec'd target did not finish"; return 1; }
	reap "$fx"
	[ "$RC" = 0 ] && grep -q 'after exec, served [0-9]* queries' "$d/fx.out" ||
		{ fail "the exec'd target exited $RC"; show "$d/fx.out" output; bad=1; }

	echo "   spanprobe is SIGKILLed while the target serves queries:"
	lifecycle_kill "$(newdir life-kill)" || bad=1
	return $bad
}

# Median of the second column of the lines FROM..TO of a file.
median_col2() {
	sed -n "$2,$3p" "$1" | awk '{print $2}' | sort -n | awk '{v[NR]=$1} END {print NR ? v[int((NR+1)/2)] : "?"}'
}

# wait_lines FILE N PID SECONDS: FILE has at least N lines.
wait_lines() {
	wl_n=$(($4 * 10))
	while [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -lt "$2" ]; do
		alive "$3" || { fail "pid $3 died"; return 1; }
		[ "$wl_n" -gt 0 ] || { fail "$1: fewer than $2 lines after $4 s"; return 1; }
		wl_n=$((wl_n - 1))
		sleep 0.1
	done
}

lifecycle_kill() {
	d=$1
	bg "$SX/lifecycle" --end serve --truth "$d/truth.jsonl" --pid-file "$d/fx.pid" \
		--spin "$d/spin.txt" >"$d/fx.out" 2>&1
	fx=$LAST
	wait_pidfile "$d/fx.pid" "$fx" || return 1
	wait_lines "$d/spin.txt" 20 "$fx" 30 || return 1
	"$SP" symbols -p "$fx" -s "$SXSYMS/lifecycle.syms" --json >"$d/syms.json" 2>"$d/syms.err" ||
		{ fail "spanprobe symbols -p $fx failed"; show "$d/syms.err" stderr; return 1; }
	b0=$(wc -l <"$d/spin.txt")
	attach_sp "$d" "$fx" -s "$SXSYMS/lifecycle.syms" -o "$d/spans.bin" || return 1
	sp=$SPPID
	python3 tests/stress/probe_bytes.py "$fx" "$d/syms.json" --expect probed >"$d/probed.txt" 2>&1 ||
		{ fail "while attached, the probe points do not hold int3 (this check sees nothing):"; sed 's/^/   /' "$d/probed.txt"; return 1; }
	a0=$(wc -l <"$d/spin.txt")
	wait_lines "$d/spin.txt" $((a0 + 3)) "$fx" 60 || return 1
	a1=$(wc -l <"$d/spin.txt")
	kill -KILL "$sp"
	wait_exit "$sp" 10 || { fail "spanprobe survived SIGKILL?"; return 1; }
	reap "$sp"
	# the kernel removes the probes once the dead process's links are released
	n=50
	until python3 tests/stress/probe_bytes.py "$fx" "$d/syms.json" --expect clean >"$d/clean.txt" 2>&1; do
		if [ $n -le 0 ]; then
			fail "5 s after spanprobe was SIGKILLed, probes are still in the target's code:"
			sed 's/^/   /' "$d/clean.txt"
			return 1
		fi
		n=$((n - 1))
		sleep 0.1
	done
	links=$(links_on "$fx")
	[ -z "$links" ] || { fail "BPF links on the target remain after SIGKILL: $links"; return 1; }
	k0=$(wc -l <"$d/spin.txt")
	wait_lines "$d/spin.txt" $((k0 + 20)) "$fx" 30 || return 1
	since=$(date +%s%N)
	# counted from the lines already there at `since`, not from k0: on a
	# loaded machine this shell may poll late, when 25 lines exist already.
	# A line written after `since` ends a query that may have begun before
	# it; the query after that one began after it.
	s0=$(wc -l <"$d/spin.txt")
	wait_lines "$d/spin.txt" $((s0 + 3)) "$fx" 30 || return 1
	kill -TERM "$fx"
	wait_exit "$fx" 10 || { fail "the target did not stop on SIGTERM"; return 1; }
	reap "$fx"
	[ "$RC" = 0 ] || { fail "the target exited $RC"; show "$d/fx.out" output; return 1; }
	n=$(sed -n 's/^lifecycle: served \([0-9]*\) queries$/\1/p' "$d/fx.out")
	: >"$d/none.jsonl"
	if ! $CHECK --truth "$d/truth.jsonl" --spans "$d/none.jsonl" --expect-queries "$n" \
	    --min-checked-queries 0 --queries-after "$since" >"$d/check.out" 2>&1; then
		fail "the target's queries after the kill are not all complete:"
		sed 's/^/   /' "$d/check.out"
		return 1
	fi
	echo "   $(cat "$d/clean.txt" | sed 's/probe_bytes: //') after the kill; the target served $n queries and exited 0"
	echo "   hot_call ns/call (median; information only): before attach $(median_col2 "$d/spin.txt" 1 "$b0")," \
	     "attached $(median_col2 "$d/spin.txt" $((a0 + 1)) "$a1"), after the kill $(median_col2 "$d/spin.txt" $((k0 + 1)) '$')"
}

# A burst overflows a 4 KiB ring buffer: every lost record counted,
# shown in the status line, the summary and the block headers; queries
# that lost records flagged incomplete (tests/stress/overload.py).
t_overload() {
	d=$(newdir overload)
	need_fixture burst || return 1
	if ! python3 tests/stress/overload.py --sp "$SP" --fixture "$SX/burst" --syms "$SXSYMS/burst.syms" \
	    --dir "$d" --ring-buffer 4K --burst $((50000 * SCALE)) >"$d/check.out" 2>&1; then
		sed 's/^/   /' "$d/check.out"
		show "$d/sp.err" "spanprobe stderr"
		return 1
	fi
	sed 's/^/   /' "$d/check.out"
}

# Output files are 0600 and never follow a symlink; tokens come from the
# environment and are never printed; the BPF programs call only the
# helpers they need: the target's user memory is read with
# bpf_probe_read_user only, nothing of the kernel's is read, nothing is
# written, no signal sent.
t_security() {
	d=$(newdir security)
	need_fixture lifecycle || return 1
	bad=0
	secret="sp-test-secret-$$"
	(
		umask 022
		MICROMEGAS_INGESTION_API_KEY="$secret" \
		OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer $secret" \
		"$SP" run --min-span 0 --min-query 0 -s "$SXSYMS/lifecycle.syms" -o "$d/new.bin" \
			--perfetto "$d/new.json" --otlp "http://user:$secret@127.0.0.1:9/v1/traces" \
			--micromegas http://127.0.0.1:9 -- "$SX/lifecycle" -n 2
	) >"$d/sp.out" 2>"$d/sp.err" || :
	for f in new.bin new.json; do
		m=$(stat -c %a "$d/$f" 2>/dev/null || echo missing)
		[ "$m" = 600 ] || { fail "$f created with mode $m under umask 022, expected 600"; bad=1; }
	done
	if grep -q "$secret" "$d/sp.out" "$d/sp.err"; then
		fail "the token from the environment was printed:"; grep -h "$secret" "$d/sp.out" "$d/sp.err" | sed 's/^/   | /'; bad=1
	fi
	grep -qi 'otlp\|micromegas\|127.0.0.1' "$d/sp.err" ||
		{ fail "no sign that the exports were tried (the token check would be vacuous)"; show "$d/sp.err" stderr; bad=1; }
	echo "   outputs created 0600; exports failed as expected without printing the token (env, URL password)"

	# a symlink at an output path is refused and its target left alone
	echo "precious" >"$d/victim"
	ln -s "$d/victim" "$d/link.bin"
	ln -s "$d/victim" "$d/link.json"
	for how in "-o $d/link.bin" "-o $d/ok.bin --perfetto $d/link.json"; do
		# shellcheck disable=SC2086
		run_sp "$d" 30 run --min-query 0 -s "$SXSYMS/lifecycle.syms" $how -- "$SX/lifecycle" -n 1 || { bad=1; continue; }
		if [ "$RC" = 0 ]; then
			fail "spanprobe run $how: exit 0 with a symlink at the output path"; bad=1
		elif ! grep -qi 'symbolic link\|symlink' "$d/sp.err"; then
			fail "spanprobe run $how: the error does not say the output is a symlink"; show "$d/sp.err" stderr; bad=1
		fi
		[ "$(cat "$d/victim")" = precious ] || { fail "spanprobe run $how wrote through the symlink"; bad=1; }
	done
	"$SP" dump "$d/new.bin" --perfetto "$d/link.json" >/dev/null 2>"$d/dump.err" && { fail "dump --perfetto followed a symlink"; bad=1; }
	[ "$(cat "$d/victim")" = precious ] || { fail "dump --perfetto wrote through the symlink"; bad=1; }
	echo "   symlinks at -o, --perfetto and dump --perfetto refused, their targets untouched"

	# the helpers the loaded programs call (bpftool prog dump xlated)
	bg "$SX/lifecycle" --end serve --pid-file "$d/fx.pid" >"$d/fx.out" 2>&1
	fx=$LAST
	wait_pidfile "$d/fx.pid" "$fx" || return 1
	attach_sp "$d" "$fx" -s "$SXSYMS/lifecycle.syms" -o "$d/a.bin" || return 1
	sp=$SPPID
	progs=$(progs_held "$sp")
	: >"$d/xlated.txt"
	for p in $progs; do bpftool prog dump xlated id "$p" >>"$d/xlated.txt" 2>&1 || :; done
	kill -INT "$sp"
	wait_exit "$sp" 15 || :
	kill -TERM "$fx"
	[ -s "$d/xlated.txt" ] || { fail "no program of spanprobe found to inspect"; return 1; }
	# (the kernel names some helpers after their inlined implementations)
	allowed="bpf_get_current_pid_tgid bpf_get_attach_cookie bpf_get_attach_cookie_uprobe_multi
		bpf_get_attach_cookie_trace bpf_get_attach_cookie_pe bpf_map_lookup_elem
		__htab_map_lookup_elem htab_lru_map_update_elem htab_lru_map_delete_elem
		bpf_map_update_elem bpf_map_delete_elem bpf_ktime_get_ns bpf_ringbuf_reserve
		bpf_ringbuf_submit bpf_ringbuf_discard bpf_probe_read_user bpf_session_is_return
		bpf_probe_read_user_str bpf_probe_read_kernel
		bpf_get_current_task_btf bpf_task_storage_get_recur bpf_task_storage_delete_recur
		bpf_task_storage_get"
	# shellcheck disable=SC2086
	allowed=$(printf '%s ' $allowed)
	# helper calls (not "call pc+N": calls of the programs' own functions)
	used=$(grep -o 'call [a-z_][a-z_0-9]*' "$d/xlated.txt" | sed 's/call //' | grep -vx 'pc' | sort -u | tr '\n' ' ')
	extra=$(minus "$used" "$allowed")
	if [ -n "$extra" ]; then
		fail "spanprobe's programs call helpers beyond the expected set: $extra"; bad=1
	fi
	# (the unwind guard's programs, which signal threads and read the
	# kernel's return instances through a task iterator, are loaded only
	# with --exit-probe guard: not here)
	# (bpf_probe_read_user_str: strings captured on request, user memory too;
	# bpf_probe_read_kernel: libbpf's bpf_usdt_arg (usdt.bpf.h) reading a
	# USDT argument's register out of the probe's own pt_regs, its ctx)
	reads=$(grep -c 'call bpf_probe_read_user' "$d/xlated.txt")
	echo "   programs $progs call only: $used(user memory: $reads bpf_probe_read_user sites; nothing else is read or written)"
	return $bad
}

# Without root: a non-root uid with only CAP_BPF and CAP_PERFMON traces
# its own processes (run and attach); another user's process also needs
# CAP_SYS_PTRACE, and without it the refusal is clear; with no capability
# at all the error names the missing ones. The command started by `run`
# must not inherit the tracer's capabilities.
t_caps() {
	need_fixture lifecycle || return 1
	command -v setpriv >/dev/null || { fail "setpriv not found (util-linux)"; return 1; }
	d=$(newdir caps)
	chmod 711 "$T"
	chmod 777 "$d"
	nb="setpriv --reuid=65534 --regid=65534 --clear-groups"
	# the checkout must be reachable by that uid (a clone in a 0700
	# directory is not): say so rather than fail on "command not found"
	$nb -- test -x "$SX/lifecycle" -a -x "$SP" -a -r "$SXSYMS/lifecycle.syms" ||
		{ fail "uid 65534 cannot reach $(pwd)/$SX/lifecycle, $SP or $SXSYMS (a directory on the way is not world-searchable)"; return 1; }
	two="--inh-caps=+bpf,+perfmon --ambient-caps=+bpf,+perfmon"
	bad=0
	# shellcheck disable=SC2086
	$nb $two -- "$SP" run --min-span 0 --min-query 0 -s "$SXSYMS/lifecycle.syms" -o "$d/run.bin" -- \
		"$SX/lifecycle" -n 3 --truth "$d/truth.jsonl" --pid-file "$d/fx.pid" >"$d/sp.out" 2>"$d/sp.err" ||
		{ fail "spanprobe run as uid 65534 with CAP_BPF+CAP_PERFMON failed"; show "$d/sp.err" stderr; bad=1; }
	if [ $bad = 0 ] && check_dump "$d/run.bin" "$d/truth.jsonl" "$d" --min-span 0 --min-query 0 \
	    --margin 0 --expect-queries 3 --min-checked-queries 3 --pid "$(pidfile "$d/fx.pid")"; then
		echo "   run as uid 65534 with only CAP_BPF+CAP_PERFMON: traced"
	else
		bad=1
	fi

	# the traced command runs with the user's privileges, not the tracer's
	# shellcheck disable=SC2086
	$nb $two -- "$SP" run -s "$SXSYMS/lifecycle.syms" -o "$d/run2.bin" -- \
		"$SX/lifecycle" --end serve --pid-file "$d/fx2.pid" >"$d/sp2.out" 2>"$d/sp2.err" &
	sp=$!
	KIDS="$KIDS $sp"
	fx=0 n=100
	while [ "$fx" = 0 ] && [ $n -gt 0 ] && alive "$sp"; do fx=$(pidfile "$d/fx2.pid"); n=$((n - 1)); sleep 0.1; done
	if [ "$fx" -gt 1 ] 2>/dev/null; then
		caps=$(sed -n 's/^CapEff:[[:space:]]*//p' "/proc/$fx/status")
		amb=$(sed -n 's/^CapAmb:[[:space:]]*//p' "/proc/$fx/status")
		kill -TERM "$fx"
		if [ "$caps" != 0000000000000000 ] || [ "$amb" != 0000000000000000 ]; then
			fail "the command started by spanprobe run inherited capabilities (CapEff $caps, CapAmb $amb)"
			bad=1
		else
			echo "   the command started by run has no capability"
		fi
	else
		fail "spanprobe run did not start the command"; show "$d/sp2.err" stderr; bad=1
	fi
	wait_exit "$sp" 15 || kill -KILL "$sp"
	reap "$sp"

	# attach: own process with the two capabilities; root's process needs
	# CAP_SYS_PTRACE as well
	for who in own root; do
		if [ $who = own ]; then
			# shellcheck disable=SC2086
			bg $nb -- "$SX/lifecycle" --end serve --pid-file "$d/$who.pid" >/dev/null 2>&1
		else
			bg "$SX/lifecycle" --end serve --pid-file "$d/$who.pid" >/dev/null 2>&1
		fi
		fx=$LAST
		n=100
		until [ "$(pidfile "$d/$who.pid")" != 0 ] || [ $n -le 0 ]; do n=$((n - 1)); sleep 0.1; done
		fx=$(pidfile "$d/$who.pid")
		# shellcheck disable=SC2086
		$nb $two -- "$SP" attach -p "$fx" -s "$SXSYMS/lifecycle.syms" --duration 1s \
			-o "$d/$who.bin" >"$d/$who.out" 2>"$d/$who.err"
		rc=$?
		if [ $who = own ] && [ $rc != 0 ]; then
			fail "attach to its own process with CAP_BPF+CAP_PERFMON exited $rc"; show "$d/$who.err" stderr; bad=1
		elif [ $who = root ] && [ $rc = 0 ]; then
			fail "attach to a root process without CAP_SYS_PTRACE succeeded"; bad=1
		elif [ $who = root ] && ! grep -q 'Permission denied\|CAP_SYS_PTRACE\|permission' "$d/$who.err"; then
			fail "attach to a root process without CAP_SYS_PTRACE: no clear error"; show "$d/$who.err" stderr; bad=1
		fi
		if [ $who = root ]; then
			# shellcheck disable=SC2086
			$nb --inh-caps=+bpf,+perfmon,+sys_ptrace --ambient-caps=+bpf,+perfmon,+sys_ptrace -- \
				"$SP" attach -p "$fx" -s "$SXSYMS/lifecycle.syms" --duration 1s \
				-o "$d/root2.bin" >"$d/root2.out" 2>"$d/root2.err" ||
				{ fail "attach to a root process with CAP_SYS_PTRACE too failed"; show "$d/root2.err" stderr; bad=1; }
		fi
		# never `kill 0` (our whole process group) when no pid file came
		[ "$fx" -gt 1 ] 2>/dev/null && kill -TERM "$fx" 2>/dev/null || :
	done
	echo "   attach: own process with CAP_BPF+CAP_PERFMON; another user's needs CAP_SYS_PTRACE too ($(head -n 1 "$d/root.err"))"

	# shellcheck disable=SC2086
	$nb -- "$SP" run -s "$SXSYMS/lifecycle.syms" -o "$d/none.bin" -- "$SX/lifecycle" -n 1 \
		>"$d/none.out" 2>"$d/none.err" && { fail "spanprobe run with no capability succeeded"; bad=1; }
	grep -q 'CAP_BPF' "$d/none.err" && grep -q 'CAP_PERFMON' "$d/none.err" ||
		{ fail "with no capability the error does not name CAP_BPF and CAP_PERFMON"; show "$d/none.err" stderr; bad=1; }
	echo "   no capability: $(head -n 1 "$d/none.err")"
	return $bad
}
