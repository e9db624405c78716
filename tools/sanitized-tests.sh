#!/bin/sh
# The whole suite again under AddressSanitizer, UBSan and LeakSanitizer, in
# a copy of the tree under build/asan (so the normal build stays as it is).
# Any report aborts the process that made it, which fails its spec; ends
# with run-tests.sh's "N passed, M failed".
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
tree=build/asan
rm -rf "$tree" && mkdir -p "$tree" || exit 2
tar --exclude=./build --exclude=./.cache --exclude=./.git -cf - . | (cd "$tree" && tar xf -) || exit 2
[ -d .cache ] && ln -s "$root/.cache" "$tree/.cache"
cd "$tree" || exit 2
make -s WERROR=-Werror all build/host build/capi_test.so \
  OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" >/dev/null || {
  echo "sanitized build failed"; echo "0 passed, 1 failed"; exit 1; }
ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$root/tools/lsan.supp \
  LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
  SANITIZED=1 tools/run-tests.sh "$@"
