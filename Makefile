# spanprobe — zero-code span tracing for running processes.
# `make demo` and `make test` do all set-up (packages included) as root.

CC        ?= gcc
CLANG     ?= clang
BPFTOOL   ?= bpftool
ARCH      := x86
BUILD     := build

CFLAGS    ?= -O2 -g
USER_CFLAGS := $(CFLAGS) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
	       -I$(BUILD) -Ibpf -Iuser -I/usr/include/capstone
# libbpf is linked statically (the backports build); the rest dynamically.
# libdebuginfod is not linked: user/symbols/debuginfod_fetch.c dlopens it
# when a debug file is to be fetched (a host without it still runs).
LDLIBS    := -Wl,-Bstatic -lbpf -Wl,-Bdynamic -lelf -lz -lzstd -lcapstone \
	     -liberty -lm -lcurl -llz4 -lpthread -ldw
# usdt.bpf.h includes <linux/errno.h>, which needs the multiarch asm/ headers
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Ivmlinux -Ibpf -mcpu=v3 \
	      -idirafter /usr/include/$(shell $(CC) -dumpmachine) \
	      -Wall -Werror

USER_SRCS := $(filter-out user/cli/main.c,$(wildcard user/*/*.c))
USER_OBJS := $(patsubst user/%.c,$(BUILD)/user/%.o,$(USER_SRCS))
BPF_SRCS  := $(wildcard bpf/*.bpf.c)
SKELS     := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
LIB       := $(BUILD)/libspanprobe.a
BIN       := $(BUILD)/spanprobe

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

DEPS_STAMP := /var/lib/spanprobe-deps.v9

.SECONDARY:
.PHONY: all deps test test-repeat test-guard unit integration demo clean vmlinux fixtures check-layers
all: $(BIN)

deps: $(DEPS_STAMP)
$(DEPS_STAMP): tools/install-deps.sh
	sh tools/install-deps.sh $@

# Regenerate the committed vmlinux.h from this machine's kernel BTF.
vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) vmlinux/vmlinux.h | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

$(BUILD)/user/%.o: user/%.c $(wildcard user/*/*.h) bpf/spanprobe.h $(SKELS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(USER_CFLAGS) -c $< -o $@

$(LIB): $(USER_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/user/cli/main.o $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(USER_CFLAGS) -Itests/unit -o $@ $< $(LIB) $(LDLIBS) -lcmocka

-include tests/fixtures/fixtures.mk
-include tests/fixtures/rust/rust.mk
-include tests/fixtures/micromegas/micromegas.mk
-include tests/fixtures/hyper/hyper.mk
-include tests/fixtures/tower/tower.mk
-include tests/fixtures/rust-mini/rust-mini.mk
-include tests/fixtures/rust-err/rust-err.mk
-include tests/bench/bench.mk
-include tests/stress/stress.mk
-include tests/fuzz/fuzz.mk
-include tests/asan.mk
include tools/install.mk

# user/ is layered by pipeline stage (tools/check-layers.py): no folder uses
# one above it, no file of the DWARF analysis calls back into one that
# calls it. Read from the #include lines and the built objects' symbols.
check-layers: $(BUILD)/user/cli/main.o $(LIB)
	python3 tools/check-layers.py $(BUILD)

# The DWARF tests read the rust-mini and rsqserver binaries; a missing one fails rather
# than skips.
unit: $(UNIT_BINS) rust-mini rust-fixtures fixtures
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; SP_REQUIRE_FIXTURES=1 $$t; done

integration: $(BIN) fixtures rust-fixtures
	sh tests/integration/run.sh $(IT)

# The unwind guard's tests (opt-in --exit-probe guard; not in make test:
# README "Unwind guard" says why).
test-guard: $(BIN) fixtures rust-fixtures
	sh tests/integration/run.sh guard_idle guard_refused guard_sigkill guard_reuse guard_stale guard_backtrace

# Each stage's duration is printed ("== make STAGE: N s"; test-repeat
# collects them). The builds and the unit tests under valgrind (CPU only,
# nothing timed) run two at a time; the integration tests one at a time.
# While the integration tests run (they mostly wait on their fixtures),
# TEST_BESIDE builds the ASan binaries and runs the unit tests under ASan
# (at nice 10: they attach nothing and time nothing), then the ASan
# integration subset (asan-it, at the same priority as the main run: a
# starved tracer would lose records; on copies of the fixtures, so that
# the two runs' probes never meet). Its output is shown when the
# integration tests are done; then valgrind runs alone. Not valgrind
# beside probes: a uprobe is an int3 in the probed file's code (ld.so's,
# for the tests that follow every process), which valgrind translates and
# delivers as SIGTRAP. TEST_BESIDE= runs everything in turn.
TEST_STAGES := all check-layers unit
TEST_BESIDE ?= asan-build asan-units asan-it
TEST_AFTER  := $(filter-out $(TEST_BESIDE),asan-build asan-units asan-it) test-valgrind
TEST_JOBS   ?= -j2
test: deps
	@t0=$$(date +%s); for s in $(TEST_STAGES); do \
		t=$$(date +%s); $(MAKE) $(TEST_JOBS) $$s || exit 1; echo "== make $$s: $$(($$(date +%s) - t)) s"; \
	done; \
	t=$$(date +%s); rm -f $(BUILD)/beside.rc; \
	[ -z "$(TEST_BESIDE)" ] || { ( for s in $(TEST_BESIDE); do tb=$$(date +%s); \
		case $$s in asan-it) n=0 ;; *) n=10 ;; esac; \
		nice -n $$n $(MAKE) $(TEST_JOBS) $$s || { echo $$s > $(BUILD)/beside.rc; exit 1; }; \
		echo "== make $$s: $$(($$(date +%s) - tb)) s"; done; \
		echo 0 > $(BUILD)/beside.rc ) > $(BUILD)/beside.log 2>&1 & }; \
	$(MAKE) integration; st=$$?; echo "== make integration: $$(($$(date +%s) - t)) s"; \
	wait; [ -z "$(TEST_BESIDE)" ] || { echo "== beside integration: make $(TEST_BESIDE)"; \
		cat $(BUILD)/beside.log; }; \
	[ $$st = 0 ] || exit 1; \
	[ -z "$(TEST_BESIDE)" ] || [ "$$(cat $(BUILD)/beside.rc 2>/dev/null)" = 0 ] || \
		{ echo "make test: $$(cat $(BUILD)/beside.rc 2>/dev/null || echo ?) FAILED (beside integration)"; exit 1; }; \
	echo "== beside integration: $$(($$(date +%s) - t)) s for both"; \
	for s in $(TEST_AFTER); do t=$$(date +%s); $(MAKE) $(TEST_JOBS) $$s || exit 1; \
		echo "== make $$s: $$(($$(date +%s) - t)) s"; done; \
	echo "== make test: $$(($$(date +%s) - t0)) s"

# `make test` N times from fresh clones of HEAD beside LOAD busy loops,
# stopping at the first failure (tests/repeat.sh).
N    ?= 10
LOAD ?= 2
test-repeat:
	sh tests/repeat.sh $(N) $(LOAD)

demo: deps
	$(MAKE) all fixtures rust-fixtures
	sh tools/demo.sh

clean:
	rm -rf $(BUILD)
