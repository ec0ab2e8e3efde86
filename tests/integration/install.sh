# Sourced by run.sh: the install a user expects (issue 15, part 3).

# tools/backports-source.sh on sample APT configurations: one-line and
# deb822, mirrors and proxies, with and without Signed-By; the entry for
# the main archive only (not -security/-updates, not deb-src, not a
# disabled stanza); none at all is exit 1 with nothing printed.
t_apt_backports() {
	d=$(newdir apt)
	cat > "$d/proxy.list" <<'L'
# a proxy (apt-cacher-ng) in front of the archive
deb-src http://deb.debian.org/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/proxy.gpg] http://apt-cache.internal:3142/debian bookworm main contrib
deb http://elsewhere.example/debian bookworm main
L
	cat > "$d/mirror.sources" <<'L'
Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb deb-src
# a comment inside a stanza
URIs: https://mirror.example.org/debian/ http://second.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
L
	cat > "$d/disabled.sources" <<'L'
Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: http://on.example/debian
Suites: bookworm
Components: main
L
	cat > "$d/nokey.list" <<'L'
deb http://snapshot.debian.org/archive/debian/20250520T000000Z/ bookworm main
L
	printf 'deb http://deb.debian.org/debian bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' > "$d/none.list"
	printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-updates\nComponents: main\n' > "$d/none.sources"
	bs="sh tools/backports-source.sh bookworm"
	ok=0
	expect() {  # expect WANT FILE...
		_want=$1; shift
		_got=$($bs "$@" 2>&1) || _got="exit $?${_got:+: $_got}"
		if [ "$_got" != "$_want" ]; then
			fail "backports-source.sh $*: got '$_got', want '$_want'"
			ok=1
		fi
	}
	expect "deb [signed-by=/usr/share/keyrings/proxy.gpg] http://apt-cache.internal:3142/debian bookworm-backports main" "$d/proxy.list"
	expect "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] https://mirror.example.org/debian/ bookworm-backports main" "$d/mirror.sources"
	expect "deb http://on.example/debian bookworm-backports main" "$d/disabled.sources"
	expect "deb http://snapshot.debian.org/archive/debian/20250520T000000Z/ bookworm-backports main" "$d/nokey.list"
	expect "exit 1" "$d/none.list" "$d/none.sources"
	# files are taken in order; unreadable ones skipped
	expect "deb http://snapshot.debian.org/archive/debian/20250520T000000Z/ bookworm-backports main" \
		"$d/missing.list" "$d/none.list" "$d/nokey.list" "$d/proxy.list"
	[ $ok = 0 ] || return 1
	# the machine's own configuration gives an entry APT can use
	live=$($bs) || { fail "no bookworm source found on this machine"; return 1; }
	echo "   6 samples derived as expected; this machine: $live"
}

# make install into a DESTDIR: the files where a user expects them, the
# installed binary runs, the man page has no lint warning and describes
# every option the usage texts list, the completion offers them all (and
# PIDs, files, values); make uninstall removes what install put.
t_install() {
	d=$(newdir install)
	r="$d/root"
	make -s --no-print-directory install DESTDIR="$r" PREFIX=/usr >"$d/make.out" 2>&1 ||
		{ fail "make install DESTDIR=$r PREFIX=/usr failed"; show "$d/make.out"; return 1; }
	bin=$r/usr/sbin/spanprobe man8=$r/usr/share/man/man8/spanprobe.8
	comp=$r/usr/share/bash-completion/completions/spanprobe
	for f in "$bin" "$man8" "$comp"; do
		[ -f "$f" ] || { fail "make install did not install $f"; return 1; }
	done
	[ "$(stat -c %a "$bin" "$man8" "$comp" | tr '\n' ' ')" = "755 644 644 " ] ||
		{ fail "modes: $(stat -c '%n %a' "$bin" "$man8" "$comp")"; return 1; }
	# the installed binary: its version and the kernel features it finds,
	# compared with what bpftool and the kernel version say
	"$bin" --version >"$d/version.out" 2>&1 || { fail "installed spanprobe --version failed"; show "$d/version.out"; return 1; }
	"$bin" --version --json >"$d/version.json" 2>"$d/version.err" ||
		{ fail "installed spanprobe --version --json failed"; show "$d/version.err"; return 1; }
	python3 tests/integration/check_version.py --text "$d/version.out" --json "$d/version.json" \
		--version "$(cat VERSION)" || { show "$d/version.out"; return 1; }
	grep -q "spanprobe $(cat VERSION)\"" "$man8" || { fail "the man page's title does not carry the version"; return 1; }
	# the man page: lint with warnings as errors, then render
	mandoc -Tlint -W warning "$man8" >"$d/lint.out" 2>&1 || { fail "mandoc -Tlint:"; show "$d/lint.out"; return 1; }
	groff -man -Tutf8 -ww -z "$man8" >"$d/groff.out" 2>&1
	[ ! -s "$d/groff.out" ] || { fail "groff -ww warnings:"; show "$d/groff.out"; return 1; }
	MANWIDTH=80 man --warnings -l "$man8" >"$d/man.out" 2>"$d/man.err" ||
		{ fail "man -l failed"; show "$d/man.err"; return 1; }
	[ ! -s "$d/man.err" ] || { fail "man -l --warnings:"; show "$d/man.err"; return 1; }
	grep -q "^EXIT STATUS" "$d/man.out" && grep -q "^SYMBOL LIST" "$d/man.out" ||
		{ fail "the man page lacks EXIT STATUS or SYMBOL LIST"; return 1; }
	python3 tests/integration/usage_options.py "$bin" >"$d/options" || return 1
	mandoc -Tascii -Owidth=300 "$man8" | col -b >"$d/man.txt"
	python3 tests/integration/check_manpage.py --man "$d/man.txt" --options "$d/options" || return 1
	# bash completion, sourced alone
	touch "$d/app.syms"
	sleep 300 & sl=$!
	KIDS="$KIDS $sl"
	bash -c '
	. "$1"; opts=$2 dir=$3 pid=$4 bad=0
	complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _spanprobe; }
	offers() { local w; for w in "${COMPREPLY[@]}"; do [[ $w == "$1" ]] && return 0; done; return 1; }
	expect() {  # expect WANT WORDS...: completing WORDS offers WANT
		local want=$1; shift
		complete_words "$@"
		offers "$want" || { echo "   completing [$*] does not offer $want (got: ${COMPREPLY[*]:0:12})"; bad=1; }
	}
	n=0
	while read -r cmd opt; do
		n=$((n + 1))
		if [ "$cmd" = - ]; then
			# a global option, first or after --version (--json)
			complete_words spanprobe "${opt%"${opt#??}"}"
			offers "$opt" || expect "$opt" spanprobe --version "${opt%"${opt#??}"}"
		else expect "$opt" spanprobe "$cmd" "${opt%"${opt#??}"}"; fi
	done < "$opts"
	for c in attach run symbols dump stats; do expect $c spanprobe ""; done
	expect "$pid" spanprobe attach -p "${pid%?}"
	expect "$pid" spanprobe symbols --pid ""
	expect "$dir/app.syms" spanprobe attach -p 1 -s "$dir/app"
	expect "$dir/app.syms" spanprobe dump "$dir/ap"
	expect 5ms spanprobe run --min-span ""
	expect 1s spanprobe attach --min-query ""
	expect retsites spanprobe attach --exit-probe r
	expect classic spanprobe run --attach-mode ""
	expect --json spanprobe --version ""
	[ $bad = 0 ] && echo "   completion offers the $n options of the usage texts, commands, PIDs, files, durations and modes"
	exit $bad' sh "$comp" "$d/options" "$d" "$sl" || return 1
	kill "$sl" 2>/dev/null || :
	# uninstall removes exactly what install put
	make -s --no-print-directory uninstall DESTDIR="$r" PREFIX=/usr >"$d/make.out" 2>&1 ||
		{ fail "make uninstall failed"; show "$d/make.out"; return 1; }
	left=$(find "$r" -type f)
	[ -z "$left" ] || { fail "left after make uninstall: $left"; return 1; }
	echo "   installed $(find "$r" -type d | wc -l) dirs, uninstalled every file"
}

# docs/examples/flight-sql-srv.syms against the stand-in with micromegas'
# crate names and module paths (tests/fixtures/micromegas): every line
# resolves to the function it is written for, in the right form (sync,
# boxed #[async_trait] poll, inherent async fn), nothing unmatched; then
# traced for real: every query has one span of each line.
t_syms_example() {
	d=$(newdir syms-example)
	syms=docs/examples/flight-sql-srv.syms
	"$SP" symbols --json -s "$syms" "$FX/flight-sql-srv" >"$d/sym.json" 2>"$d/sym.err" ||
		{ fail "spanprobe symbols --json -s $syms failed"; show "$d/sym.err"; return 1; }
	run_sp "$d" 60 run --min-span 0 --min-query 0 -s "$syms" -o "$d/spans.bin" -- \
		"$FX/flight-sql-srv" -n 4 || return 1
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	grep -q '^flight-sql-srv: served 4 queries' "$d/sp.out" || { fail "flight-sql-srv did not serve 4 queries"; return 1; }
	"$SP" dump --json "$d/spans.bin" >"$d/spans.jsonl" || { fail "dump failed"; return 1; }
	python3 tests/integration/check_syms_example.py --symbols "$d/sym.json" \
		--spans "$d/spans.jsonl" --queries 4 || { show "$d/sp.err" "spanprobe stderr"; return 1; }
}

# Collapsed siblings in the trees (issue 15, part 4): qserver -k MF has
# runs of 40 and 4 process_block calls (spill_block below some), of 3
# tokenize and 3 read_partition. `dump` collapses them with the fixture's
# counts and the figures of dump --json; `dump --expand` and `run --expand`
# print every span; the live trees of `run` collapse the same way.
t_collapse() {
	d=$(newdir collapse)
	run_sp "$d" 60 run --min-span 0 --min-query 0 -s "$SYMS/qserver.syms" -o "$d/spans.bin" -- \
		"$FX/qserver" -n 3 -k MF --truth "$d/truth.jsonl" || return 1
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	"$SP" dump "$d/spans.bin" >"$d/tree.txt" && "$SP" dump --expand "$d/spans.bin" >"$d/expanded.txt" &&
		"$SP" dump --json "$d/spans.bin" >"$d/spans.jsonl" || { fail "dump failed"; return 1; }
	echo "   dump:"
	python3 tests/integration/check_collapse.py --tree "$d/tree.txt" --expanded "$d/expanded.txt" \
		--spans "$d/spans.jsonl" --truth "$d/truth.jsonl" || return 1
	# JSON keeps every span: as many as the fixture made inside queries
	inq=$(grep -vc '"query":null' "$d/truth.jsonl")
	[ "$(wc -l <"$d/spans.jsonl")" = "$inq" ] ||
		{ fail "dump --json has $(wc -l <"$d/spans.jsonl") spans, the truth $inq inside queries"; return 1; }
	d=$(newdir collapse-live)
	run_sp "$d" 60 run --min-span 0 --min-query 0 -s "$SYMS/qserver.syms" -- \
		"$FX/qserver" -n 3 -k MF --truth "$d/truth.jsonl" || return 1
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	echo "   run (trees on stdout):"
	python3 tests/integration/check_collapse.py --tree "$d/sp.out" --truth "$d/truth.jsonl" || return 1
	d=$(newdir collapse-expand)
	run_sp "$d" 60 run --expand --min-span 0 --min-query 0 -s "$SYMS/qserver.syms" -- \
		"$FX/qserver" -n 3 -k MF --truth "$d/truth.jsonl" || return 1
	[ "$RC" = 0 ] || { fail "spanprobe run --expand exited $RC"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	echo "   run --expand:"
	python3 tests/integration/check_collapse.py --expanded "$d/sp.out" --truth "$d/truth.jsonl"
}

# A data-only library (libspdata.so, shaped like PostgreSQL's libicudata:
# one table, no function) is not worth a warning at every attach: attach
# and run say nothing of it but one count in the summary; -v names it
# once. The executable without symbols still warns (bad_input). Spans
# are unaffected (checked against the truth).
t_data_only_lib() {
	d=$(newdir datalib)
	bg "$FX/qserver-data" -n 2 -k F --wait-signal --truth "$d/truth.jsonl" --pid-file "$d/qs.pid" >"$d/qs.out" 2>&1
	qs=$LAST
	wait_pidfile "$d/qs.pid" "$qs" || return 1
	grep -q 'libspdata\.so' "/proc/$qs/maps" || { fail "qserver-data has not mapped libspdata.so"; return 1; }
	# symbols -p: no warning, one line saying why nothing is there
	"$SP" symbols -s "$SYMS/qserver.syms" -p "$qs" >"$d/sym.out" 2>"$d/sym.err" || { fail "symbols -p failed"; show "$d/sym.err"; return 1; }
	[ "$(grep -c 'libspdata\.so: no function symbols (data only): not searched$' "$d/sym.out")" = 1 ] &&
		! grep -q libspdata "$d/sym.err" || { fail "symbols -p on qserver-data"; show "$d/sym.out"; show "$d/sym.err"; return 1; }
	attach_sp "$d" "$qs" -s "$SYMS/qserver.syms" --min-query 0 -o "$d/spans.bin" || return 1
	sp=$SPPID
	kill -USR1 "$qs"
	wait_exit "$qs" 60 || { fail "qserver-data still running after 60 s"; return 1; }
	wait_exit "$sp" 15 || { fail "spanprobe still running after its target exited"; return 1; }
	reap "$sp"
	[ "$RC" = 0 ] || { fail "spanprobe attach exited $RC"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	[ "$(grep -c 'libspdata' "$d/sp.err")" = 1 ] && grep -q '^spanprobe: pid .*; 1 library without function symbols skipped (libspdata.so)' "$d/sp.err" ||
		{ fail "the summary does not count libspdata.so once"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	! grep -q 'warning' "$d/sp.err" || { fail "attach warned"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	check_dump "$d/spans.bin" "$d/truth.jsonl" "$d" --min-query 0 --expect-queries 2 --pid "$qs" || return 1
	# run resolves the libraries the loader will map: same; -v names it
	d=$(newdir datalib-v)
	run_sp "$d" 60 run -v -s "$SYMS/qserver.syms" -- "$FX/qserver-data" -n 1 -k F || return 1
	[ "$RC" = 0 ] || { fail "spanprobe run exited $RC"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	[ "$(grep -c '^spanprobe: .*/libspdata\.so: no function symbols (data only)' "$d/sp.err")" = 1 ] ||
		{ fail "run -v does not name libspdata.so once"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	! grep -q 'warning' "$d/sp.err" || { fail "run warned"; show "$d/sp.err" "spanprobe stderr"; return 1; }
	echo "   no warning for the data-only library; counted once in the summary; named once with -v"
}

# A second spanprobe on a process one already traces (issue 15): it warns,
# naming the first one's pid (from the kernel's links: uprobe_multi links
# name the traced pid; classic perf-event uprobes are matched by file and
# offset), in session and classic mode; the first does not warn; both
# still record every span (checked against the truth). After the first
# is SIGKILLed, the kernel's links are gone and nothing is reported: no
# lock file to leave behind.
t_second_tracer() {
	for mode in session classic; do
		d=$(newdir "second-$mode")
		bg "$FX/qserver" -n 2 -k F --wait-signal --truth "$d/truth.jsonl" --pid-file "$d/qs.pid" >"$d/qs.out" 2>&1
		qs=$LAST
		wait_pidfile "$d/qs.pid" "$qs" || return 1
		mkdir -p "$d/1" "$d/2"
		attach_sp "$d/1" "$qs" --attach-mode $mode -s "$SYMS/qserver.syms" --min-query 0 -o "$d/1/spans.bin" || return 1
		sp1=$SPPID
		attach_sp "$d/2" "$qs" --attach-mode $mode -s "$SYMS/qserver.syms" --min-query 0 -o "$d/2/spans.bin" || return 1
		sp2=$SPPID
		kill -USR1 "$qs"
		wait_exit "$qs" 60 || { fail "qserver still running after 60 s"; return 1; }
		for p in $sp1 $sp2; do
			wait_exit "$p" 15 || { fail "spanprobe $p still running after its target exited"; return 1; }
			reap "$p"
			[ "$RC" = 0 ] || { fail "spanprobe $p exited $RC"; return 1; }
		done
		! grep -q 'already traced' "$d/1/sp.err" || { fail "the first tracer warned"; show "$d/1/sp.err"; return 1; }
		case $mode in
		session) what="is already traced: [0-9]* uprobe links\{0,1\} of pid $sp1 (spanprobe) probe it" ;;
		*) what="may already be traced: [0-9]* uprobe links\{0,1\} of pid $sp1 (spanprobe) sit on the same functions of the same file" ;;
		esac
		grep -q "^spanprobe: warning: pid $qs $what; every probe will fire twice" "$d/2/sp.err" ||
			{ fail "$mode: the second tracer did not name the first (pid $sp1)"; show "$d/2/sp.err"; return 1; }
		echo "   $mode: $(grep -o 'already be traced: [^;]*\|already traced: [^;]*' "$d/2/sp.err")"
		for n in 1 2; do
			check_dump "$d/$n/spans.bin" "$d/truth.jsonl" "$d/$n" --min-query 0 --expect-queries 2 --pid "$qs" || return 1
		done
	done
	d=$(newdir second-killed)
	bg "$FX/qserver" -n 1 -k F --wait-signal --pid-file "$d/qs.pid" >"$d/qs.out" 2>&1
	qs=$LAST
	wait_pidfile "$d/qs.pid" "$qs" || return 1
	mkdir -p "$d/1" "$d/2"
	attach_sp "$d/1" "$qs" -s "$SYMS/qserver.syms" || return 1
	kill -KILL "$SPPID"
	wait_exit "$SPPID" 10 || { fail "SIGKILLed spanprobe still there"; return 1; }
	reap "$SPPID"
	attach_sp "$d/2" "$qs" -s "$SYMS/qserver.syms" || return 1
	sp2=$SPPID
	kill -USR1 "$qs"
	wait_exit "$sp2" 30 || { fail "spanprobe still running after its target exited"; return 1; }
	reap "$sp2"
	! grep -q 'already traced' "$d/2/sp.err" || { fail "warned about a SIGKILLed tracer"; show "$d/2/sp.err"; return 1; }
	echo "   after SIGKILL of the first: no warning"
	second_exe
}

# attach --exe probes the file for every process: a tracer of one of its
# processes (-p) and another --exe tracer of the file are named; what
# each tracer wrote still matches the truth.
second_exe() {
	d=$(newdir second-exe)
	bg "$FX/qserver" -n 2 -k F --wait-signal --truth "$d/truth.jsonl" --pid-file "$d/qs.pid" >"$d/qs.out" 2>&1
	qs=$LAST
	wait_pidfile "$d/qs.pid" "$qs" || return 1
	mkdir -p "$d/1" "$d/2" "$d/3"
	attach_sp "$d/1" "$qs" -s "$SYMS/qserver.syms" --min-query 0 -o "$d/1/spans.bin" || return 1
	sp1=$SPPID
	for n in 2 3; do
		bg "$SP" attach --exe "$FX/qserver" -s "$SYMS/qserver.syms" --min-query 0 \
			-o "$d/$n/spans.bin" >"$d/$n/sp.out" 2>"$d/$n/sp.err"
		eval "sp$n=\$LAST"
		wait_attached "$d/$n/sp.err" "$LAST" 30 || { show "$d/$n/sp.err"; return 1; }
	done
	kill -USR1 "$qs"
	wait_exit "$qs" 60 || { fail "qserver still running after 60 s"; return 1; }
	wait_exit "$sp1" 15 || { fail "spanprobe -p still running after its target exited"; return 1; }
	reap "$sp1"
	kill -INT "$sp2" "$sp3"
	for p in $sp2 $sp3; do
		wait_exit "$p" 15 || { fail "spanprobe --exe $p still running after SIGINT"; return 1; }
		reap "$p"
		[ "$RC" = 0 ] || { fail "spanprobe --exe $p exited $RC"; return 1; }
	done
	exe=$(realpath "$FX/qserver")
	what="may already be traced: [0-9]* uprobe links\{0,1\} of pid"
	grep -q "^spanprobe: warning: $exe $what $sp1 (spanprobe) sit on the same functions of the same file; every probe will fire twice" "$d/2/sp.err" ||
		{ fail "--exe did not name the -p tracer (pid $sp1)"; show "$d/2/sp.err"; return 1; }
	for p in $sp1 $sp2; do
		grep -q "^spanprobe: warning: $exe $what $p (spanprobe) sit on the same functions" "$d/3/sp.err" ||
			{ fail "the second --exe did not name pid $p"; show "$d/3/sp.err"; return 1; }
	done
	echo "   --exe: $(grep -c 'may already be traced' "$d/3/sp.err") tracers named by the second --exe"
	for n in 1 2 3; do
		check_dump "$d/$n/spans.bin" "$d/truth.jsonl" "$d/$n" --min-query 0 --expect-queries 2 --pid "$qs" || return 1
	done
}
