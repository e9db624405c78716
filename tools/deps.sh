#!/bin/sh
# Install what the build and the tests need, from Debian's packages, when it
# is missing.  Runs as root (or with sudo) on a fresh Debian 12 machine.
set -e
need="lua5.4 liblua5.4-dev libuv1-dev zlib1g-dev libcurl4-openssl-dev libssl-dev ca-certificates libcjson-dev lua-busted luarocks pkg-config gcc make openssl procps util-linux clang"
# Node.js runs the pinned Chroma server and the specs' small servers
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need="$need nodejs npm"
[ -n "$EXTRA_DEPS" ] && need="$need $EXTRA_DEPS"
missing=""
for p in $need; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
