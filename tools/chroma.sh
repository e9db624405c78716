#!/bin/sh
# The pinned Chroma server for the tests and the bench, installed locally
# under .cache/chroma (git-ignored) from npm when missing.
#   tools/chroma.sh install          install if missing
#   tools/chroma.sh start DIR PORT   run it in the foreground on 127.0.0.1:PORT
# The pin: chromadb@3.0.12 with bindings 1.0.5, the newest whose binary runs
# on Debian 12's glibc.
set -e
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/.cache/chroma"
case "$1" in
  install)
    if [ -x "$prefix/node_modules/.bin/chroma" ] &&
       [ -d "$prefix/node_modules/chromadb-js-bindings-linux-x64-gnu" ]; then exit 0; fi
    command -v npm >/dev/null || EXTRA_DEPS="nodejs npm" "$root/tools/deps.sh"
    mkdir -p "$prefix"
    [ -f "$prefix/package.json" ] || echo '{"name":"lua-async-chroma","private":true}' > "$prefix/package.json"
    echo "installing chromadb@3.0.12 (npm) into $prefix" >&2
    (cd "$prefix" && npm install --no-audit --no-fund --loglevel=error \
        chromadb@3.0.12 chromadb-js-bindings-linux-x64-gnu@1.0.5 >&2)
    ;;
  start)
    "$0" install
    cd "$prefix"
    exec ./node_modules/.bin/chroma run --path "$2" --host 127.0.0.1 --port "$3"
    ;;
  *) echo "usage: $0 install | start DIR PORT" >&2; exit 2 ;;
esac
