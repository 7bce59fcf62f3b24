# socks5d build. `make` builds build/socks5d; `make run` and `make test`
# first install whatever Debian packages are missing (as root), or print the
# apt-get line to run (as any other user).

CC      ?= cc
WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wvla -Wcast-align -Wundef
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) -D_GNU_SOURCE -Iinclude -MMD -MP
LDLIBS  := -lev -linih -lsodium -lcares -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

BUILD_PKGS := gcc libc6-dev make libev-dev libinih-dev libsodium-dev libc-ares-dev
TEST_PKGS  := libcmocka-dev python3 python3-pytest python3-socks curl ncat proxychains4 procps \
              dnsmasq-base dante-client python3-pyftpdlib
# Third-party Node.js SOCKS client for the black-box tests (npm "socks").
NODE_CLIENTS := tests/clients/node_modules/.package-lock.json

SRCS      := $(wildcard src/*.c)
LIB_SRCS  := $(filter-out src/main.c,$(SRCS))
OBJS      := $(SRCS:src/%.c=build/obj/%.o)
LIB_OBJS  := $(LIB_SRCS:src/%.c=build/obj/%.o)
ASAN_OBJS := $(SRCS:src/%.c=build/asan-obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)

.PHONY: all asan unit run test deps deps-test node-clients clean
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

build/obj build/asan-obj build/asan build/tests:
	mkdir -p $@

# Install missing Debian packages: $(1) is the package list.
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
	$(call install_missing,$(BUILD_PKGS) $(TEST_PKGS))
	@# Any Node.js with npm will do; Debian's only when there is none (a
	@# node from another repository may already bundle its own npm).
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory deps BUILD_PKGS="nodejs npm"; fi
	$(MAKE) --no-print-directory node-clients

node-clients: $(NODE_CLIENTS)
$(NODE_CLIENTS): tests/clients/package.json tests/clients/package-lock.json
	cd tests/clients && npm ci --no-audit --no-fund

run: deps
	$(MAKE) all
	./build/socks5d -c conf/socks5d.conf

test: deps-test
	$(MAKE) all asan unit
	tests/run-all

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(ASAN_OBJS:.o=.d)
