# `make install` / `make uninstall`, included by the top-level Makefile.
#   make install [PREFIX=/usr/local] [DESTDIR=]
# installs
#   $(PREFIX)/sbin/spanprobe                                 (a root tool, like bpftool)
#   $(PREFIX)/share/man/man8/spanprobe.8                     (docs/spanprobe.8)
#   $(PREFIX)/share/bash-completion/completions/spanprobe   (tools/spanprobe.bash-completion)
# Nothing is built as root's side effect of installing: `make install`
# depends on the binary like any target.

PREFIX     ?= /usr/local
DESTDIR    ?=
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
INSTALL    ?= install

# The version: VERSION, plus what git says of the tree when there is one
# (commit, -dirty); $(BUILD)/version.h is rewritten only when it changes,
# so that only cmd_version.o is rebuilt.
SP_VERSION := $(shell cat VERSION 2>/dev/null || echo unknown)
SP_GIT     := $(shell git describe --tags --always --dirty 2>/dev/null)
SP_VERSION_FULL := $(SP_VERSION)$(if $(SP_GIT), ($(SP_GIT)))

.PHONY: install uninstall FORCE
# cli/cmd_version.c prints them (--version), in every build of it
$(BUILD)/user/cli/cmd_version.o $(ASAN_BUILD)/user/cli/cmd_version.o \
$(FUZZ_DIR)/obj/cli/cmd_version.o: $(BUILD)/version.h
$(BUILD)/version.h: FORCE
	@mkdir -p $(@D)
	@printf '#define SP_VERSION "%s"\n#define SP_VERSION_FULL "%s"\n' \
		'$(SP_VERSION)' '$(SP_VERSION_FULL)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

install: $(BIN)
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/spanprobe
	sed 's/@VERSION@/$(SP_VERSION)/' docs/spanprobe.8 > $(DESTDIR)$(MANDIR)/man8/spanprobe.8.tmp
	chmod 0644 $(DESTDIR)$(MANDIR)/man8/spanprobe.8.tmp
	mv -f $(DESTDIR)$(MANDIR)/man8/spanprobe.8.tmp $(DESTDIR)$(MANDIR)/man8/spanprobe.8
	$(INSTALL) -m 0644 tools/spanprobe.bash-completion $(DESTDIR)$(BASHCOMPDIR)/spanprobe

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/spanprobe $(DESTDIR)$(MANDIR)/man8/spanprobe.8 \
	      $(DESTDIR)$(BASHCOMPDIR)/spanprobe
