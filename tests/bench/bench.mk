# `make bench` (included by the top-level Makefile): spanprobe's cost per
# call against the kernel's floor and bpftrace, its collector under load,
# its attach time, all in one run (~3 min), then pgbench on PostgreSQL 15
# with every backend traced (~3 min). `make bench BENCH_ARGS=--quick`
# for a shorter run (fewer repetitions, 10 s instead of 60 s under load).
# Figures: stdout and $(BUILD)/bench/results.json; docs/performance.md
# records one run.

BENCH_DIR     := $(BUILD)/bench
# -fno-omit-frame-pointer: bench_leaf must start with `push %rbp`, like
# most compiled functions (the harness checks it with objdump).
BENCH_CFLAGS  := -O2 -g -fno-omit-frame-pointer -std=c11 -Wall -Wextra -Werror
BENCH_BPFTRACE := $(BENCH_DIR)/.bpftrace
BENCH_ARGS    ?=
# pgbench side by side (tests/bench/pg_bench.py): plain, attach --exe
# postgres, bpftrace, and an untraced other binary; ~3 min.
PG_BENCH_ARGS ?=

.PHONY: bench
bench: $(BIN) $(BENCH_DIR)/floor $(BENCH_DIR)/verify_cost $(BENCH_DIR)/target \
       $(BENCH_DIR)/rust_target $(BENCH_DIR)/rust_target_abort $(BENCH_DIR)/cxx_target \
       $(BENCH_DIR)/many $(BENCH_BPFTRACE) $(BUILD)/spanprobe.bpf.o $(BUILD)/fixtures/hsrv
	python3 tests/bench/bench.py --build $(BUILD) $(BENCH_ARGS)
	python3 tests/bench/pg_bench.py --spanprobe $(BIN) --json $(BENCH_DIR)/pg_bench.json $(PG_BENCH_ARGS)

$(BENCH_DIR)/target: tests/bench/target.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

# A Rust async poll (issue 11), with std only: plain rustc, as rust-mini
# (RUST_MINI_RC, tests/fixtures/rust-mini/rust-mini.mk). panic = "unwind"
# is Rust's default; the abort build gets uretprobe exits.
$(BENCH_DIR)/rust_target: tests/bench/rust_target.rs
	@mkdir -p $(@D)
	$(RUST_MINI_RC) -O -g -o $@ $<

$(BENCH_DIR)/rust_target_abort: tests/bench/rust_target.rs
	@mkdir -p $(@D)
	$(RUST_MINI_RC) -O -g -C panic=abort -o $@ $<

# A C++ method in a program that throws (issue 11).
$(BENCH_DIR)/cxx_target: tests/bench/cxx_target.cpp
	@mkdir -p $(@D)
	$(CXX) -O2 -g -fno-omit-frame-pointer -std=c++17 -Wall -Wextra -Werror -o $@ $<

# The floor loader and the verifier-cost probe only need libbpf, not
# the whole of $(LDLIBS).
BENCH_LIBBPF := -Wl,-Bstatic -lbpf -Wl,-Bdynamic -lelf -lz

$(BENCH_DIR)/floor: tests/bench/floor.c $(BUILD)/floor.skel.h | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(USER_CFLAGS) -o $@ $< $(BENCH_LIBBPF)

$(BENCH_DIR)/verify_cost: tests/bench/verify_cost.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(USER_CFLAGS) -o $@ $< $(BENCH_LIBBPF)

$(BENCH_DIR)/many.c $(BENCH_DIR)/many.syms &: tests/bench/gen_many.py
	@mkdir -p $(BENCH_DIR)
	python3 $< $(BENCH_DIR)/many.c $(BENCH_DIR)/many.syms 1000

$(BENCH_DIR)/many: $(BENCH_DIR)/many.c
	$(CC) -O1 -o $@ $<

# bpftrace is only needed here: installed on first use, from Debian.
$(BENCH_BPFTRACE): | $(DEPS_STAMP)
	@mkdir -p $(@D)
	command -v bpftrace >/dev/null || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		 apt-get install -y -q --no-install-recommends bpftrace)
	touch $@
