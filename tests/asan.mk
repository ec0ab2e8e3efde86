# Sanitizers (included by the top-level Makefile):
#   make test-asan      spanprobe and the unit tests built with ASan+UBSan
#                       (and LeakSanitizer) into $(ASAN_BUILD), then the unit
#                       tests and a subset of the integration tests run with
#                       SPANPROBE= pointing at that binary. Any report is an
#                       error: every sanitizer aborts / exits non-zero.
#   make test-valgrind  the unit tests (normal build) under valgrind memcheck:
#                       invalid accesses, uninitialised reads, definite leaks.
# The BPF object and its skeleton are the normal build's.

ASAN_BUILD   := build-asan
ASAN_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
		-fno-omit-frame-pointer
ASAN_CFLAGS  := -O1 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(ASAN_SAN) \
		-I$(BUILD) -Ibpf -Iuser -I/usr/include/capstone
ASAN_OBJS    := $(patsubst user/%.c,$(ASAN_BUILD)/user/%.o,$(USER_SRCS))
ASAN_LIB     := $(ASAN_BUILD)/libspanprobe.a
ASAN_BIN     := $(ASAN_BUILD)/spanprobe
ASAN_UNITS   := $(patsubst tests/unit/%.c,$(ASAN_BUILD)/tests/%,$(UNIT_SRCS))
# The integration tests that exercise the most userspace code: attach and
# run, thresholds, exceptions, longjmp, bad input (truncated blocks),
# detaching, Rust async (nested decoding, spawned-task links), and the
# reliability tests at a tenth of their size.
ASAN_IT      ?= attach run dlopen exe_restarts fork_storm follow_children thresholds cxx_exception longjmp dynsym bad_input no_leftovers async_visibility \
		rust_async rust_attach debuginfo_dynsym debuginfo_wrong \
		storm_longjmp storm_cxx storm_panic tokio_panics thread_churn lifecycle overload security captures
# ASan reports also go to files, and the integration tests keep their
# output (in $(ASAN_BUILD)/it) to be searched for UBSan's: a sanitized
# spanprobe expected to fail (bad input) must not hide a report behind its
# non-zero exit status.
ASAN_REPORTS := $(CURDIR)/$(ASAN_BUILD)/reports
ASAN_ENV     := ASAN_OPTIONS=abort_on_error=0:exitcode=99:detect_leaks=1:detect_stack_use_after_return=1:log_path=$(ASAN_REPORTS)/asan \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99:log_path=$(ASAN_REPORTS)/ubsan
VALGRIND_OPTS := --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
		--track-origins=yes --quiet

.PHONY: test-asan asan-build asan-it test-valgrind
asan-build: $(ASAN_BIN) $(ASAN_UNITS)

$(ASAN_BUILD)/user/%.o: user/%.c $(wildcard user/*/*.h) bpf/spanprobe.h $(SKELS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -c $< -o $@

$(ASAN_LIB): $(ASAN_OBJS)
	rm -f $@
	ar rcs $@ $^

$(ASAN_BIN): $(ASAN_BUILD)/user/cli/main.o $(ASAN_LIB)
	$(CC) $(ASAN_SAN) -o $@ $^ $(LDLIBS)

$(ASAN_BUILD)/tests/%: tests/unit/%.c $(ASAN_LIB)
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -Itests/unit -o $@ $< $(ASAN_LIB) $(LDLIBS) -lcmocka

# The unit tests under ASan (they attach nothing: make test runs them
# beside the integration tests).
.PHONY: asan-units
asan-units: asan-build
	@rm -rf $(ASAN_REPORTS)-units && mkdir -p $(ASAN_REPORTS)-units
	@st=0; for t in $(ASAN_UNITS); do echo "== $$t (ASan+UBSan)"; \
		$(subst $(ASAN_REPORTS),$(ASAN_REPORTS)-units,$(ASAN_ENV)) $$t >$(ASAN_REPORTS)-units/.out 2>&1 || \
			{ cat $(ASAN_REPORTS)-units/.out; st=1; }; \
	done; rm -f $(ASAN_REPORTS)-units/.out; \
	for r in $(ASAN_REPORTS)-units/*; do [ -e "$$r" ] || continue; \
		echo "== sanitizer report $$r:"; head -n 40 "$$r"; st=1; done; \
	[ $$st = 0 ] && echo "asan-units: 0 sanitizer reports" || { echo "asan-units: FAILED"; exit 1; }

test-asan: asan-units asan-it

# The integration subset under ASan. Its fixtures are copies
# ($(ASAN_BUILD)/fixtures, /stress): other inodes, so that when make test
# runs it beside the main integration tests, neither run's uprobes or
# --exe sessions see the other's processes, and no test sees the other's
# probes on its files as "already traced".
ASAN_FX := $(ASAN_BUILD)/fixtures
ASAN_SX := $(ASAN_BUILD)/stress
asan-it: asan-build fixtures rust-fixtures
	@rm -rf $(ASAN_REPORTS) $(ASAN_BUILD)/it $(ASAN_FX) $(ASAN_SX) && \
		mkdir -p $(ASAN_REPORTS) $(ASAN_BUILD)/it && \
		cp -a $(FIXTURE_DIR) $(ASAN_FX) && cp -a $(STRESS_DIR) $(ASAN_SX)
	@st=0; $(ASAN_ENV) SPANPROBE=$(ASAN_BIN) FIXTURES=$(ASAN_FX) STRESS_FIXTURES=$(ASAN_SX) \
		STRESS_DIV=10 KEEP_TMP=1 TMPDIR=$(CURDIR)/$(ASAN_BUILD)/it \
		sh tests/integration/run.sh $(ASAN_IT) || st=1; \
	for r in $(ASAN_REPORTS)/*; do [ -e "$$r" ] || continue; \
		echo "== sanitizer report $$r:"; head -n 40 "$$r"; st=1; done; \
	for r in $$(grep -rlIE 'runtime error:|ERROR: (Address|Leak)Sanitizer' $(ASAN_BUILD)/it); do \
		echo "== sanitizer report in $$r:"; grep -A12 -E 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$$r" | head -n 40; st=1; done; \
	[ $$st = 0 ] && echo "asan-it: 0 sanitizer reports" || { echo "asan-it: FAILED"; exit 1; }

# One target per unit test, so that `make -j2` runs two at a time.
VALGRIND_RUNS := $(addsuffix .valgrind,$(UNIT_BINS))
.PHONY: $(VALGRIND_RUNS)
test-valgrind: $(VALGRIND_RUNS)
$(VALGRIND_RUNS): %.valgrind: %
	@valgrind $(VALGRIND_OPTS) $< >/dev/null 2>$@.err || \
		{ echo "== $< (valgrind): FAILED"; cat $@.err; exit 1; }
	@cat $@.err; echo "== $< (valgrind): 0 errors"
