#!/usr/bin/env bash
# W2/W3 in a default release build (what a downstream crate gets) and in a
# `-C target-cpu=native` build, side by side: run-time dispatch should make
# them equal. Prints one table of medians and ratios.
#   scripts/native_vs_default.sh        (DENSEGRAD_BENCH=quick for shorter)
set -euo pipefail
cd "$(dirname "$0")/.."
filter="${1:-W2|W3}"
CARGO_TARGET_DIR=target/bench-default cargo bench --bench layers -- "$filter" >&2
RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=target/bench-native cargo bench --bench layers -- "$filter" >&2
python3 - <<'PY'
import json, os
rows = []
base = "target/bench-default/criterion"
for group in ("W2", "W3"):
    gdir = os.path.join(base, group)
    if not os.path.isdir(gdir):
        continue
    for bench in sorted(os.listdir(gdir)):
        bdir = os.path.join(gdir, bench)
        if not os.path.isdir(bdir) or bench == "report":
            continue
        for param in sorted(os.listdir(bdir)):
            f = os.path.join(bdir, param, "new", "estimates.json")
            g = f.replace("bench-default", "bench-native")
            if os.path.exists(f) and os.path.exists(g):
                d = json.load(open(f))["median"]["point_estimate"]
                n = json.load(open(g))["median"]["point_estimate"]
                rows.append((f"{group}/{bench}/{param}", d, n))
print("| benchmark | default build | target-cpu=native | default / native |")
print("|---|---|---|---|")
for name, d, n in rows:
    print(f"| {name} | {d/1e3:.1f} µs | {n/1e3:.1f} µs | {d/n:.2f}× |")
PY
