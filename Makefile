# socks5d build. `make` builds build/socks5d; `make run` and `make test`
# first install whatever Debian packages are missing (as root), or print the
# apt-get line to run (as any other user).

CC      ?= cc
WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wvla -Wcast-align -Wundef
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) -D_GNU_SOURCE -Iinclude -MMD -MP
LDLIBS  := -lev -linih -lsodium -lcares -lssl -lcrypto -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

BUILD_PKGS := gcc libc6-dev make libev-dev libinih-dev libsodium-dev libc-ares-dev libssl-dev
TEST_PKGS  := libcmocka-dev python3 python3-pytest python3-socks curl ncat proxychains4 procps iproute2 \
              dnsmasq-base dante-client python3-pyftpdlib man-db systemd \
              clang libclang-rt-14-dev \
              dante-server microsocks strace linux-perf valgrind chromium git haproxy \
              torsocks tinyproxy openssl stunnel4 libnss3-tools squid-openssl mitmproxy
# Third-party Node.js SOCKS client for the black-box tests (npm "socks"),
# installed by `npm ci` from the npm registry. Any Node.js with npm will do;
# Debian's packages are wanted only when there is none (a node from another
# repository may already bundle its own npm). Expanded only when used.
NODE_CLIENTS := tests/clients/node_modules/.package-lock.json
NODE_PKGS = $(if $(and $(shell command -v node),$(shell command -v npm)),,nodejs npm)

SRCS      := $(wildcard src/*.c)
LIB_SRCS  := $(filter-out src/main.c,$(SRCS))
OBJS      := $(SRCS:src/%.c=build/obj/%.o)
LIB_OBJS  := $(LIB_SRCS:src/%.c=build/obj/%.o)
ASAN_OBJS := $(SRCS:src/%.c=build/asan-obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)

# libFuzzer targets: tests/fuzz/fuzz_NAME.c linked against the daemon's own
# objects, rebuilt with clang and the sanitizers under build/fuzz-obj/.
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer \
                -fno-sanitize-recover=undefined
# Two clang-only warnings are turned off: -Wcast-align fires on every target
# (gcc's only where unaligned access traps, so never on x86) at the
# offsetof() container casts, which UBSan checks at run time; and
# -Wformat-nonliteral (from -Wformat=2) fires on a va_list passed on to
# vsnprintf in a function without a format attribute, which gcc exempts.
FUZZ_CFLAGS  := -O1 -g -std=gnu11 $(WARN) -Wno-cast-align \
                -Wno-format-nonliteral -D_GNU_SOURCE \
                -Iinclude -MMD -MP
FUZZ_SECONDS ?= 60
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES   := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=%)
FUZZ_BINS    := $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
FUZZ_OBJS    := $(LIB_SRCS:src/%.c=build/fuzz-obj/%.o)

# Install layout; DESTDIR is prepended to every path.
PREFIX      ?= /usr/local
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
SYSCONFDIR  ?= $(PREFIX)/etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d

.PHONY: all asan unit fuzz-build fuzz fuzz-smoke valgrind run test deps deps-test \
        node-clients install uninstall clean bench bench-build soak
all: build/socks5d

build/socks5d: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

build/obj/%.o: src/%.c | build/obj
	$(CC) $(CFLAGS) -c -o $@ $<

build/libsocks5d.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

asan: build/asan/socks5d
build/asan/socks5d: $(ASAN_OBJS) | build/asan
	$(CC) $(CFLAGS) -O1 $(SAN) -o $@ $^ $(LDFLAGS) $(LDLIBS)

build/asan-obj/%.o: src/%.c | build/asan-obj
	$(CC) $(CFLAGS) -O1 $(SAN) -c -o $@ $<

unit: $(UNIT_BINS)
build/tests/%: tests/unit/%.c build/libsocks5d.a | build/tests
	$(CC) $(CFLAGS) -o $@ $< build/libsocks5d.a $(LDFLAGS) -lcmocka $(LDLIBS)

fuzz-build: $(FUZZ_BINS)
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS) | build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< \
	    $(FUZZ_OBJS) $(LDFLAGS) $(LDLIBS)

# Not intermediate: make would delete them after every link.
.SECONDARY: $(FUZZ_OBJS)
build/fuzz-obj/%.o: src/%.c | build/fuzz-obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c -o $@ $<

# Run each target for FUZZ_SECONDS on a scratch copy of its corpus (the
# committed one under tests/fuzz/corpus/ never grows); fail on any crash.
fuzz: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_NAMES); do \
	  work=build/fuzz/corpus/$$t; rm -rf $$work; mkdir -p $$work; \
	  cp tests/fuzz/corpus/$$t/* $$work/ 2>/dev/null || true; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	      -rss_limit_mb=2048 -print_final_stats=1 \
	      -artifact_prefix=build/fuzz/crash-$$t- $$work \
	      > build/fuzz/$$t.log 2>&1 || { tail -60 build/fuzz/$$t.log; \
	      echo "fuzz: $$t FAILED (log build/fuzz/$$t.log)"; exit 1; }; \
	  grep -E '^(Done|stat::number_of_executed_units)' build/fuzz/$$t.log || true; \
	done

# The committed corpus, then a few seconds of fuzzing per target.
fuzz-smoke: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_NAMES); do \
	  build/fuzz/fuzz_$$t -runs=0 -artifact_prefix=build/fuzz/crash-$$t- \
	      tests/fuzz/corpus/$$t \
	      > build/fuzz/$$t-corpus.log 2>&1 || { tail -60 build/fuzz/$$t-corpus.log; \
	      echo "fuzz-smoke: $$t FAILED on its corpus"; exit 1; }; \
	done
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(or $(FUZZ_SMOKE_SECONDS),3)

# The whole black-box suite with build/socks5d under valgrind memcheck
# (tests/integration/harness/daemon.py): any memcheck error or definite or
# indirect leak fails the test that ran the daemon.
valgrind: all
	SOCKS5D_VALGRIND=1 SOCKS5D_BIN=build/socks5d PYTHONDONTWRITEBYTECODE=1 \
	    /usr/bin/python3 -m pytest -p no:cacheprovider tests/integration \
	    $(PYTEST_ARGS)

# The benchmark (tests/bench/): load generator and target servers, then
# tests/bench/run against direct, socks5d, Dante and microsocks (and, over
# TLS, socks5d's [tls] port against stunnel in front of Dante), which
# writes tests/bench/RESULTS.md. Knobs: BENCH_SECONDS, BENCH_REPS,
# BENCH_SCENARIOS, BENCH_SERVERS (tests/bench/README).
BENCH_BINS := build/bench/loadgen build/bench/targets build/bench/mintrate
bench-build: $(BENCH_BINS)
# The load generator speaks TLS to the proxy (-T) and to the HTTPS origin
# that the targets serve (-C/-K): both link OpenSSL.
build/bench/loadgen: BENCH_LIBS := -lssl -lcrypto
build/bench/targets: BENCH_LIBS := -lssl -lcrypto
build/bench/%: tests/bench/%.c tests/bench/common.c tests/bench/bench.h | build/bench
	$(CC) $(CFLAGS) -Itests/bench -o $@ $< tests/bench/common.c $(LDFLAGS) $(BENCH_LIBS)

# Leaves per second of the interception CA (mint.c), against the library.
build/bench/mintrate: tests/bench/mintrate.c build/libsocks5d.a | build/bench
	$(CC) $(CFLAGS) -o $@ $< build/libsocks5d.a $(LDFLAGS) $(LDLIBS)

bench: deps-test
	$(MAKE) all bench-build
	tests/bench/run --write

build/obj build/asan-obj build/asan build/tests build/fuzz build/fuzz-obj build/bench:
	mkdir -p $@

# Install missing Debian packages: $(1) is the package list. As any other
# user, print one apt-get line that names every missing package, and stop.
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -eq 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "missing packages; as root run: apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi
endef

deps:
	$(call install_missing,$(BUILD_PKGS))

deps-test:
	$(call install_missing,$(BUILD_PKGS) $(TEST_PKGS) $(NODE_PKGS))
	$(MAKE) --no-print-directory node-clients

node-clients: $(NODE_CLIENTS)
$(NODE_CLIENTS): tests/clients/package.json tests/clients/package-lock.json
	cd tests/clients && npm ci --no-audit --no-fund

# As root, the daemon drops to nobody once it has bound its port, as a
# service would to its own user (and says nothing of running as root).
run: deps
	$(MAKE) all
	./build/socks5d -c conf/socks5d.conf $$([ "$$(id -u)" = 0 ] && echo -u nobody)

test: deps-test
	$(MAKE) all asan unit fuzz-build bench-build
	tests/run-all

# Mixed load with SIGHUPs for SOAK_SECONDS against SOCKS5D_BIN (default
# build/socks5d); fails on any corrupted byte, crash or growth (tests/soak/).
SOAK_SECONDS ?= 600
soak: all
	/usr/bin/python3 tests/soak/soak.py --seconds $(SOAK_SECONDS) \
	    --binary $(or $(SOCKS5D_BIN),build/socks5d)

# The example config is never overwritten: an operator's edits win.
install: build/socks5d
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(SYSCONFDIR)/socks5d \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 755 build/socks5d $(DESTDIR)$(SBINDIR)/socks5d
	install -m 644 man/socks5d.8 $(DESTDIR)$(MANDIR)/man8/socks5d.8
	install -m 644 man/socks5d.conf.5 $(DESTDIR)$(MANDIR)/man5/socks5d.conf.5
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/socks5d/socks5d.conf ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/socks5d/socks5d.conf"; \
	else \
	  sed -e 's|/etc/socks5d/|$(SYSCONFDIR)/socks5d/|g' conf/socks5d.conf \
	    > $(DESTDIR)$(SYSCONFDIR)/socks5d/socks5d.conf && \
	  chmod 644 $(DESTDIR)$(SYSCONFDIR)/socks5d/socks5d.conf; \
	fi
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    conf/socks5d.service > $(DESTDIR)$(UNITDIR)/socks5d.service
	chmod 644 $(DESTDIR)$(UNITDIR)/socks5d.service
	install -m 644 conf/socks5d.socket $(DESTDIR)$(UNITDIR)/socks5d.socket
	install -m 644 conf/socks5d.sysusers $(DESTDIR)$(SYSUSERSDIR)/socks5d.conf

# The config goes only if it is still the example as installed.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/socks5d $(DESTDIR)$(MANDIR)/man8/socks5d.8 \
	    $(DESTDIR)$(MANDIR)/man5/socks5d.conf.5 \
	    $(DESTDIR)$(UNITDIR)/socks5d.service $(DESTDIR)$(UNITDIR)/socks5d.socket \
	    $(DESTDIR)$(SYSUSERSDIR)/socks5d.conf
	@conf=$(DESTDIR)$(SYSCONFDIR)/socks5d/socks5d.conf; \
	if [ -e $$conf ]; then \
	  if sed -e 's|/etc/socks5d/|$(SYSCONFDIR)/socks5d/|g' conf/socks5d.conf | cmp -s - $$conf; then \
	    rm -f $$conf; rmdir $(DESTDIR)$(SYSCONFDIR)/socks5d 2>/dev/null || true; \
	  else \
	    echo "keeping modified $$conf"; \
	  fi; \
	fi

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(ASAN_OBJS:.o=.d) $(FUZZ_OBJS:.o=.d) \
    $(FUZZ_BINS:=.d)
