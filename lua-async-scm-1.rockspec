rockspec_format = "3.0"
package = "lua-async"
version = "scm-1"
source = { url = "git+file://." }
description = {
  summary = "Python-asyncio-style concurrency for Lua 5.4 on libuv, and an async vector database",
  detailed = [[
    async/await, tasks, futures, gather, wait_for, timeout scopes,
    cancellation, Semaphore, Lock, Event, Condition, Queue and async
    generators, an HTTP client on libcurl, written in C over libuv; and vdb,
    an async vector database: embedded, or a Chroma server.
  ]],
  license = "MIT",
}
dependencies = { "lua >= 5.4, < 5.5" }
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  ZLIB = { header = "zlib.h", library = "z" },
  -- libcurl too (libcurl4-openssl-dev): Debian keeps curl.h in a multiarch
  -- directory that luarocks does not search; the Makefile finds it with pkg-config
  CJSON = { header = "cjson/cJSON.h", library = "cjson" },
}
build = {
  type = "make",
  -- the Makefile builds async.so with Debian's libuv; no network needed
  build_variables = {
    OPT = "$(CFLAGS)",
    LUA = "$(LUA)",
    LUA_INC = "$(LUA_INCDIR)",
  },
  install_variables = {
    LUA_CDIR = "$(LIBDIR)",
    DESTDIR = "",
  },
  install_target = "install-lib",
  copy_directories = { "examples" },
}
