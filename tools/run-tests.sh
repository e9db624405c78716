#!/bin/sh
# Run the busted suite on Lua 5.4 and end with one line: "N passed, M failed".
# VALGRIND=1 runs every Lua process under valgrind's leak checker.
cd "$(dirname "$0")/.." || exit 2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if [ -n "$VALGRIND" ]; then
  LUA="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite lua5.4"
else
  LUA=lua5.4
fi
export LUA
# busted's TAP output: one "ok N" / "not ok N" line per test
# (lua5.4 runs busted itself, so that valgrind sees the very process)
[ $# -eq 0 ] && set -- spec
$LUA /usr/bin/busted -o TAP "$@" >"$out" 2>&1
status=$?
cat "$out"
grep -q '^1\.\.[0-9]' "$out" || { echo "busted did not finish (crash?)"; status=1; }
passed=$(grep -c '^ok ' "$out")
failed=$(grep -c '^not ok ' "$out")
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
