#!/bin/sh
# make test: the suite, the suite under the sanitizers, and a short fuzz run
# of the file: loader; one closing line for all three: "N passed, M failed".
cd "$(dirname "$0")/.." || exit 2
total_p=0 total_f=0
phase() {                       # name, command...: its "N passed, M failed" added up
  name=$1; shift
  echo "== $name"
  out=$(mktemp)
  "$@" 2>&1 | tee "$out"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
  rm -f "$out"
  p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
  [ -n "$line" ] || { p=0; f=1; }
  total_p=$((total_p + p)); total_f=$((total_f + f))
}
fuzz_smoke() {
  if make -s FUZZ_SECONDS="${FUZZ_SMOKE_SECONDS:-30}" fuzz >build/fuzz.log 2>&1; then
    grep -E '^Done [0-9]+ runs' build/fuzz.log; echo "1 passed, 0 failed"
  else
    tail -40 build/fuzz.log; echo "0 passed, 1 failed"
  fi
}
phase "suite" tools/run-tests.sh
[ -n "$NO_SANITIZE" ] || phase "suite under ASan + UBSan + LeakSanitizer" tools/sanitized-tests.sh
[ -n "$NO_FUZZ" ] || phase "fuzz smoke: the file: loader" fuzz_smoke
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
