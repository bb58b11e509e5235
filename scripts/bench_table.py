#!/usr/bin/env python3
"""Turns criterion's medians (target/criterion/**/new/estimates.json) into the
BENCHMARKS.md tables: median time, throughput and the ratio to the baseline
measured in the same run. Usage: scripts/bench_table.py [CRITERION_DIR]"""
import json
import os
import platform
import subprocess
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"


def median(group, bench, param):
    """Median time in seconds of one benchmark, or None if it did not run."""
    safe = lambda s: s.replace("/", "_").replace("+", "_").replace(" ", "_")
    for cand in (os.path.join(root, group, bench, str(param)), os.path.join(root, group, safe(bench), safe(str(param)))):
        f = os.path.join(cand, "new", "estimates.json")
        if os.path.exists(f):
            with open(f) as fh:
                return json.load(fh)["median"]["point_estimate"] * 1e-9
    return None


def fmt_t(s):
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    return f"{s * 1e3:.2f} ms"


def ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}×"


out = []
cpu = "unknown"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
out.append(f"Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; {rustc}.\n")

out.append("### W1 Affine (N, K, M): forward+backward vs its three raw sgemm calls (1 thread)\n")
out.append("| shape | raw sgemm ×3 | fwd+bwd t1 | ratio t1 | GFLOP/s t1 | fwd+bwd t2 | t1/t2 | fwd t1 | raw fwd | ratio fwd |")
out.append("|---|---|---|---|---|---|---|---|---|---|")
for (n, k, m) in [(100, 784, 50), (256, 1024, 1024), (64, 4096, 4096)]:
    s = f"{n}x{k}x{m}"
    raw = median("W1", "raw sgemm x3", s)
    t1 = median("W1", "affine fwd+bwd t1", s)
    t2 = median("W1", "affine fwd+bwd t2", s)
    f1 = median("W1", "affine fwd t1", s)
    rf = median("W1", "raw sgemm fwd", s)
    gf = "—" if t1 is None else f"{6 * n * k * m / t1 / 1e9:.0f}"
    out.append(f"| {s} | {fmt_t(raw)} | {fmt_t(t1)} | {ratio(t1, raw)} | {gf} | {fmt_t(t2)} | {ratio(t1, t2)} | {fmt_t(f1)} | {fmt_t(rf)} | {ratio(f1, rf)} |")

out.append("\n### W2 activations: vs `copy_from_slice` of the same bytes (bandwidth = bytes read + written / time)\n")
out.append("| elements | copy | relu fwd t1 | relu/copy | sigmoid fwd t1 | ns/elem | sigmoid/copy | relu fwd+bwd t1 | sigmoid fwd+bwd t1 | sigmoid fwd+bwd t2 |")
out.append("|---|---|---|---|---|---|---|---|---|---|")
for n in [4096, 65536, 4194304]:
    c = median("W2", "copy", n)
    r = median("W2", "relu fwd t1", n)
    sg = median("W2", "sigmoid fwd t1", n)
    rb = median("W2", "relu fwd+bwd t1", n)
    sb = median("W2", "sigmoid fwd+bwd t1", n)
    sb2 = median("W2", "sigmoid fwd+bwd t2", n)
    ns = "—" if sg is None else f"{sg / n * 1e9:.2f}"
    out.append(f"| {n} | {fmt_t(c)} | {fmt_t(r)} | {ratio(r, c)} | {fmt_t(sg)} | {ns} | {ratio(sg, c)} | {fmt_t(rb)} | {fmt_t(sb)} | {fmt_t(sb2)} |")

out.append("\n### W3 SoftmaxWithLoss fwd+bwd, index labels: vs Sigmoid forward on as many elements\n")
out.append("| (N, C) | softmax loss t1 | sigmoid fwd t1 | ratio | softmax loss t2 |")
out.append("|---|---|---|---|---|")
for (n, c) in [(100, 10), (256, 1000), (32, 32000)]:
    s = f"{n}x{c}"
    a = median("W3", "softmax loss fwd+bwd t1", s)
    b = median("W3", "sigmoid fwd t1", s)
    a2 = median("W3", "softmax loss fwd+bwd t2", s)
    out.append(f"| {s} | {fmt_t(a)} | {fmt_t(b)} | {ratio(a, b)} | {fmt_t(a2)} |")

out.append("\n### W4 one SGD step (forward, backward, update): vs the raw sgemm calls of the step (1 thread)\n")
out.append("| net | raw sgemm calls | step t1 | ratio t1 | step t2 | t1/t2 |")
out.append("|---|---|---|---|---|---|")
for name in ["small", "large"]:
    raw = median("W4", "raw sgemm calls", name)
    t1 = median("W4", "sgd step t1", name)
    t2 = median("W4", "sgd step t2", name)
    out.append(f"| {name} | {fmt_t(raw)} | {fmt_t(t1)} | {ratio(t1, raw)} | {fmt_t(t2)} | {ratio(t1, t2)} |")

out.append("\n### GEMM single products through `kernels::gemm::gemm` vs raw sgemm (1 thread; `_at`/`_bt`: A/B stored transposed)\n")
out.append("| m x k x n | raw sgemm | gemm | ratio | GFLOP/s gemm |")
out.append("|---|---|---|---|---|")
# The shapes are benches/layers.rs's GEMM_SHAPES, read back from the ids
# criterion stored ("MxKxN", "_at"/"_bt" for a transposed A/B), largest first.
gemm_dir = os.path.join(root, "GEMM", "gemm")
shapes = []
for s in os.listdir(gemm_dir) if os.path.isdir(gemm_dir) else []:
    dims = s.split("_")[0].split("x")
    if len(dims) == 3 and all(d.isdigit() for d in dims):
        shapes.append(tuple(map(int, dims)) + (s,))
for m, k, n, s in sorted(shapes, key=lambda t: (-t[0] * t[1] * t[2], t[3])):
    raw = median("GEMM", "raw sgemm", s)
    t = median("GEMM", "gemm", s)
    gf = "—" if t is None else f"{2 * m * k * n / t / 1e9:.0f}"
    out.append(f"| {s} | {fmt_t(raw)} | {fmt_t(t)} | {ratio(t, raw)} | {gf} |")

print("\n".join(out))
