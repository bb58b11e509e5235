#!/usr/bin/env bash
# Runs the criterion benchmarks (W1–W4 beside their baselines, 1 and 2
# threads) and prints the BENCHMARKS.md tables from the medians of this run.
#   scripts/bench.sh            full measurement (~6 min on 2 cores)
#   DENSEGRAD_BENCH=quick scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench layers -- "${1:-}" >&2
python3 scripts/bench_table.py target/criterion
