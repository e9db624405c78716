# lua-async: the `async` and `vdb` modules for Lua 5.4, on libuv.
#   make            build async.so
#   make demo       install what is missing, build, run the tutorial tour
#   make test       install what is missing, build, run the whole suite: as it is, under
#                   ASan + UBSan + LeakSanitizer, and a 30 s fuzz run of the file: loader
#   make sanitize   the suite under AddressSanitizer + UBSan alone
#   make fuzz       the file: loader under libFuzzer for FUZZ_SECONDS (300)
#   make valgrind   the suite under valgrind (leak check)
#   make bench      benchmarks beside asyncio, Node, cqueues, luv; numpy, faiss; Chroma's JS client, wrk
#   make install    into the system's Lua 5.4 module directory

LUA       ?= lua5.4
LUA_INC   ?= /usr/include/lua5.4
PKGS      := lua5.4 libuv
OPT       ?= -O2 -g
# Deferred (=, not :=) and with fallbacks: on a fresh machine `make test`
# parses this file before `deps` has installed libuv1-dev and friends, so
# pkg-config must be asked when a recipe runs, and a missing .pc file must
# still leave the library on the link line.
# -Werror only where the tree is tested (make test, sanitize, valgrind): a
# user's newer compiler may warn of something new, and that must not stop
# the build
WERROR    ?=
CFLAGS     = $(OPT) -std=c11 -D_POSIX_C_SOURCE=200809L -fPIC -Wall -Wextra $(WERROR) \
             -I$(LUA_INC) $(shell pkg-config --cflags libuv 2>/dev/null) -Iinclude -Ibuild -Isrc/common
LDLIBS     = $(shell pkg-config --libs libuv 2>/dev/null || echo -luv)
JSON_LIBS  = $(shell pkg-config --libs libcjson 2>/dev/null || echo -lcjson)
SSL_LIBS   = $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
CURL_LIBS  = $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
LIBFLAG   ?= -shared
BUILD     := build
# make install: PREFIX (/usr/local), DESTDIR (a staging root), LIBDIR (the
# Lua C module directory; LUA_CDIR is the same, as luarocks passes it) and
# INCDIR (for lua_async.h); the modules are all C, so LUADIR has nothing
PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib/lua/5.4
LUA_CDIR  ?= $(LIBDIR)
INCDIR    ?= $(PREFIX)/include

# one folder a module (docs/layout.md): src/async the runtime, src/io its I/O
# (async.http), src/common what both modules share, src/vdb the database
ASYNC_SRC := lua_async.c $(addprefix src/async/,loop.c report.c interrupt.c timers.c future.c capi.c coro.c await.c task.c combinators.c waiters.c sync.c queue.c) \
             src/common/json.c
ASYNC_HDR := include/lua_async.h src/async/core.h src/async/sync.h src/common/json.h $(BUILD)/prelude.h

VDB_SRC   := vdb.c $(addprefix src/vdb/,store.c filter.c codec.c replay.c log.c input.c ops.c commit.c index/exact.c chroma/wire.c) \
             src/common/json.c
VDB_HDR   := include/lua_async.h $(addprefix src/vdb/,store.h filter.h codec.h replay.h log.h input.h ops.h index/index.h chroma/wire.h) \
             src/common/json.h \
             $(BUILD)/vdb_prelude.h $(BUILD)/vdb_chroma.h

.PHONY: all deps demo test sanitize valgrind bench install install-lib release clean fuzz
# a generator that fails (lua5.4 not yet installed) must not leave an empty
# header that later builds take as up to date
.DELETE_ON_ERROR:

all: async.so async/http.so async/io.so vdb.so

$(BUILD)/vdb_prelude.h: src/vdb/prelude.lua tools/embed.lua
	@mkdir -p $(BUILD)
	$(LUA) tools/embed.lua vdb_prelude $< > $@

$(BUILD)/vdb_chroma.h: src/vdb/chroma/client.lua tools/embed.lua
	@mkdir -p $(BUILD)
	$(LUA) tools/embed.lua vdb_chroma $< > $@

vdb.so: $(VDB_SRC) $(VDB_HDR)
	$(CC) $(CFLAGS) -O3 -fopenmp-simd $(LIBFLAG) -o $@ $(VDB_SRC) $(LDLIBS) $(JSON_LIBS) -lz -lm

$(BUILD)/prelude.h: src/async/prelude.lua tools/embed.lua
	@mkdir -p $(BUILD)
	$(LUA) tools/embed.lua async_prelude $< > $@

async.so: $(ASYNC_SRC) $(ASYNC_HDR)
	$(CC) $(CFLAGS) $(LIBFLAG) -o $@ $(ASYNC_SRC) $(LDLIBS) $(JSON_LIBS)

# async.io: threads (and the streams, processes, files and signals to come)
IO_SRC := $(addprefix src/io/,io.c thread.c copy.c signal.c fs.c stream.c tls.c tcp.c pipe.c server.c process.c udp.c)
async/io.so: $(IO_SRC) src/io/io.h src/io/copy.h src/io/stream.h src/io/tls.h include/lua_async.h
	@mkdir -p async
	$(CC) $(CFLAGS) $(LIBFLAG) -o $@ $(IO_SRC) $(LDLIBS) $(SSL_LIBS)

# async.http: its own module, so that libcurl loads only when a script uses it
$(BUILD)/http_prelude.h: src/io/http.lua tools/embed.lua
	@mkdir -p $(BUILD)
	$(LUA) tools/embed.lua http_prelude $< > $@

async/http.so: src/io/http.c include/lua_async.h $(BUILD)/http_prelude.h
	@mkdir -p async
	$(CC) $(CFLAGS) $(LIBFLAG) -o $@ src/io/http.c $(LDLIBS) $(CURL_LIBS) -lm

# a C host that owns its libuv loop and hands it to async (spec/async/run_spec.lua)
$(BUILD)/host: spec/host/host.c include/lua_async.h
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -o $@ $< $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -llua5.4 -luv) -lm

# a C module using the published C API (spec/async/capi_spec.lua)
$(BUILD)/capi_test.so: spec/host/capi_test.c include/lua_async.h
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(LIBFLAG) -o $@ $< $(LDLIBS)

deps:
	@tools/deps.sh

demo: deps all
	@$(LUA) examples/demo.lua

TEST_BINS := $(BUILD)/host $(BUILD)/capi_test.so

test sanitize valgrind: WERROR = -Werror

test: deps all $(TEST_BINS)
	@tools/chroma.sh install
	@tools/test-all.sh

sanitize: deps
	@tools/chroma.sh install
	@tools/sanitized-tests.sh

valgrind: deps all $(TEST_BINS)
	@tools/chroma.sh install
	VALGRIND=1 tools/run-tests.sh

bench: deps all
	@bench/run.sh
	@bench/vdb.sh
	@bench/chroma.sh

install: install-lib
	install -d $(DESTDIR)$(INCDIR)
	install -m 0644 include/lua_async.h $(DESTDIR)$(INCDIR)/lua_async.h

install-lib: all
	install -d $(DESTDIR)$(LUA_CDIR)
	install -m 0755 async.so $(DESTDIR)$(LUA_CDIR)/async.so
	install -d $(DESTDIR)$(LUA_CDIR)/async
	install -m 0755 async/http.so $(DESTDIR)$(LUA_CDIR)/async/http.so
	install -m 0755 async/io.so $(DESTDIR)$(LUA_CDIR)/async/io.so
	install -m 0755 vdb.so $(DESTDIR)$(LUA_CDIR)/vdb.so

# a release: the rockspec (from the scm one) and the source tarball it names
#   make release VERSION=0.1.0 SOURCE_URL=https://HOST/lua-async-0.1.0.tar.gz
# (or SOURCE_URL=git+https://HOST/OWNER/lua-async.git, with the tag v0.1.0)
release:
	@test -n "$(VERSION)" -a -n "$(SOURCE_URL)" || { echo "usage: make release VERSION=x.y.z SOURCE_URL=..."; exit 2; }
	@mkdir -p $(BUILD)
	git archive --format=tar.gz --prefix=lua-async-$(VERSION)/ -o $(BUILD)/lua-async-$(VERSION).tar.gz HEAD
	$(LUA) tools/release-rockspec.lua $(VERSION) $(SOURCE_URL) $(BUILD)/lua-async-$(VERSION)-1.rockspec
	@command -v luarocks >/dev/null && luarocks --lua-version 5.4 lint $(BUILD)/lua-async-$(VERSION)-1.rockspec

clean:
	rm -rf $(BUILD) async.so async/http.so vdb.so
	-rmdir async 2>/dev/null

# the file: loader under libFuzzer (Debian's clang), ASan and UBSan
FUZZ_SECONDS ?= 300
FUZZ_SRC := fuzz/replay_fuzz.c src/vdb/replay.c src/vdb/codec.c src/vdb/store.c src/vdb/filter.c
$(BUILD)/replay_fuzz: $(FUZZ_SRC) src/vdb/replay.h src/vdb/codec.h src/vdb/store.h
	@mkdir -p $(BUILD)
	clang -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc -I$(LUA_INC) \
	  -o $@ $(FUZZ_SRC) -llua5.4 -lz -lm -lpthread

fuzz: deps $(BUILD)/replay_fuzz
	@mkdir -p $(BUILD)/fuzz-corpus
	$(BUILD)/replay_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	  -print_final_stats=1 $(BUILD)/fuzz-corpus fuzz/corpus
