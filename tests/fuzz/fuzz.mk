# `make fuzz` (included by the top-level Makefile): libFuzzer harnesses for
# the inputs spanprobe reads from outside, each run for FUZZ_SECONDS
# (default 60) from its checked-in seed corpus under ASan and UBSan:
#   fuzz_symlist      symbol list files (sp_symlist_parse_buf)
#   fuzz_block        block files: one block (sp_block_decode) and the
#                     file reader with resynchronisation
#   fuzz_elf          symbol resolution on a corrupted binary (sp_resolve)
#   fuzz_async_dwarf  DWARF analysis of Rust async code (sp_async_analyze)
#   fuzz_usdt         .note.stapsdt sections and argument specs
#                     (sp_usdt_parse_notes)
# Any crash, sanitizer report, leak, timeout or rejected input without a
# clear error fails the target; the input is kept in $(FUZZ_DIR)/artifacts.
# New corpus entries found go to $(FUZZ_DIR)/corpus (not checked in).
# `make fuzz-build` only builds; `make fuzz FUZZ_SECONDS=600` runs longer.

FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
		-fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
		-Wno-unknown-warning-option $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
		-I$(BUILD) -Ibpf -Iuser -I/usr/include/capstone
FUZZ_HARNESSES := fuzz_symlist fuzz_block fuzz_elf fuzz_async_dwarf fuzz_usdt
FUZZ_BINS    := $(addprefix $(FUZZ_DIR)/,$(FUZZ_HARNESSES))
FUZZ_OBJS    := $(patsubst user/%.c,$(FUZZ_DIR)/obj/%.o,$(USER_SRCS))
FUZZ_LIB     := $(FUZZ_DIR)/libspanprobe-fuzz.a
# libFuzzer options: bounded time, per-input timeout and memory; leaks
# are errors (-detect_leaks is on by default with ASan)
FUZZ_RUN_OPTS = -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=2560 \
		-max_len=65536 -print_final_stats=1

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/obj/%.o: user/%.c $(wildcard user/*/*.h) bpf/spanprobe.h $(SKELS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJS)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/%: tests/fuzz/%.c tests/fuzz/fuzz_common.h $(FUZZ_LIB)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ $< $(FUZZ_LIB) $(LDLIBS)

# One harness after the other; all run even if one fails, then the status.
fuzz: $(FUZZ_BINS)
	@mkdir -p $(FUZZ_DIR)/artifacts
	@st=0; for h in $(FUZZ_HARNESSES); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$h; \
		echo "== $$h ($(FUZZ_SECONDS) s)"; \
		if $(FUZZ_DIR)/$$h $(FUZZ_RUN_OPTS) \
		    -artifact_prefix=$(FUZZ_DIR)/artifacts/$$h- \
		    $(FUZZ_DIR)/corpus/$$h tests/fuzz/corpus/$$h \
		    >$(FUZZ_DIR)/$$h.log 2>&1; then \
			grep -E '^stat::number_of_executed_runs|^Done|^#[0-9]+.*DONE' \
				$(FUZZ_DIR)/$$h.log | sed 's/^/   /'; \
			echo "   ok: $$h, 0 crashes"; \
		else \
			tail -n 40 $(FUZZ_DIR)/$$h.log | sed 's/^/   | /'; \
			echo "   FAILED: $$h (log: $(FUZZ_DIR)/$$h.log, input: $(FUZZ_DIR)/artifacts/$$h-*)"; \
			st=1; \
		fi; \
	done; exit $$st
