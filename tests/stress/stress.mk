# Reliability fixtures and `make stress` (included by the top-level
# Makefile). The quick, deterministic reliability tests (1,000 of each
# abnormal exit, 10,000 threads, lifecycle, overload, security) are part
# of `make test` through tests/integration/run.sh; `make stress` runs them
# STRESS_SCALE times bigger (default 10: 10,000 of each abnormal exit,
# 100,000 threads), with every attach mode, then the 10-minute soak
# (SOAK_SECONDS, default 600; tests/stress/soak.py).
#
# Fixtures go to $(BUILD)/stress/; they are built by `make fixtures`. Frame
# pointers everywhere, leaves included: probed functions start with
# `push %rbp`, which the kernel emulates (cheap), like most real code.

STRESS_DIR    := $(BUILD)/stress
STRESS_CFLAGS := -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -Wall -Wextra -Werror -pthread
STRESS_SCALE  ?= 10
SOAK_SECONDS  ?= 600
SOAK_RATE     ?= 100000
# rustc from PATH, else rustup's default place
RUSTC         ?= $(firstword $(shell command -v rustc 2>/dev/null) \
		   $(wildcard $(HOME)/.cargo/bin/rustc /root/.cargo/bin/rustc))

STRESS_C_BINS := $(addprefix $(STRESS_DIR)/,jmpstorm churn lifecycle burst soak)
STRESS_BINS   := $(STRESS_C_BINS) $(STRESS_DIR)/throwstorm $(STRESS_DIR)/panicstorm
STRESS_TESTS  := storm_longjmp storm_cxx storm_panic rust_async_load thread_churn lifecycle overload \
		 storm_modes

.PHONY: stress stress-fixtures soak
stress-fixtures: $(STRESS_BINS)
fixtures: stress-fixtures

$(STRESS_C_BINS): $(STRESS_DIR)/%: tests/stress/%.c tests/stress/truth.h
	@mkdir -p $(@D)
	$(CC) $(STRESS_CFLAGS) -o $@ $<

$(STRESS_DIR)/throwstorm: tests/stress/throwstorm.cpp tests/stress/truth.h
	@mkdir -p $(@D)
	$(CXX) $(STRESS_CFLAGS) -std=c++17 -o $@ $<

# A missing rustc is not a build error: the Rust test reports it and fails.
$(STRESS_DIR)/panicstorm: tests/stress/panicstorm.rs
	@mkdir -p $(@D)
	@if [ -z "$(RUSTC)" ]; then \
		echo "warning: rustc not found (set RUSTC=): $@ not built, its test will fail"; \
	else \
		echo "$(RUSTC) -O -g -C force-frame-pointers=yes -o $@ $<"; \
		$(RUSTC) -O -g -C force-frame-pointers=yes -o $@ $<; \
	fi

stress: $(BIN) fixtures
	STRESS_SCALE=$(STRESS_SCALE) sh tests/integration/run.sh $(STRESS_TESTS)
	python3 tests/stress/soak.py --sp $(BIN) --fixture $(STRESS_DIR)/soak \
		--syms tests/stress/soak.syms --seconds $(SOAK_SECONDS) --rate $(SOAK_RATE) \
		--out $(BUILD)/stress/soak-results.md

# The soak alone: `make soak SOAK_SECONDS=60` for a short one.
soak: $(BIN) $(STRESS_DIR)/soak
	python3 tests/stress/soak.py --sp $(BIN) --fixture $(STRESS_DIR)/soak \
		--syms tests/stress/soak.syms --seconds $(SOAK_SECONDS) --rate $(SOAK_RATE) \
		--out $(BUILD)/stress/soak-results.md
