#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 20), printing
# libFuzzer's final statistics. New inputs go to fuzz/work/<target>; the
# seed corpus in fuzz/corpus/<target> is only read. Crashes land in
# fuzz/artifacts/<target> and fail the run.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cd fuzz
cargo fuzz build --sanitizer none
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
for t in "${targets[@]}"; do
  mkdir -p "work/$t"
  echo "==> fuzz $t for ${secs}s"
  cargo fuzz run --sanitizer none "$t" "work/$t" "corpus/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -max_len=4096 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|Done|ERROR|panicked|SUMMARY" || true
  if compgen -G "artifacts/$t/crash-*" >/dev/null || compgen -G "artifacts/$t/oom-*" >/dev/null; then
    echo "fuzz target $t found a failing input:"; ls "artifacts/$t"; exit 1
  fi
done
