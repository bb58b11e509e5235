#!/usr/bin/env bash
# Runs every test binary of `cargo test --release` under valgrind memcheck.
# Valgrind's CPUID hides AVX-512, so the AVX2+FMA path is the one checked on
# an x86-64 machine; DENSEGRAD_ISA=portable checks the portable one. Property
# tests run 8 cases each, and the 70-million-input accuracy sweep is skipped
# (hours under valgrind; the same code runs in the other tests).
#   scripts/valgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
mapfile -t bins < <(cargo test --release --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] != ["bench"] and m["profile"]["test"]:
        print(m["executable"])')
status=0
log=$(mktemp)
for b in "${bins[@]}"; do
  echo "==> valgrind $(basename "$b")"
  rc=0
  PROPTEST_CASES=8 valgrind --quiet --error-exitcode=99 --track-origins=yes "$b" \
    --skip exp_and_sigmoid_sampled_sweep --test-threads=2 >"$log" 2>&1 || rc=$?
  grep -E "test result|Invalid|uninitialised|==[0-9]+== [A-Z]" "$log" || true
  if [ "$rc" -ne 0 ]; then echo "exit $rc: valgrind or the tests reported errors in $b"; status=1; fi
done
rm -f "$log"
exit $status
