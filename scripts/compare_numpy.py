#!/usr/bin/env python3
"""NumPy on DESIGN.md's workloads, on this machine, for comparison with
BENCHMARKS.md (medians of repeated runs, f32, the same shapes).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python3 scripts/compare_numpy.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=2 python3 scripts/compare_numpy.py
"""
import os
import statistics
import time

import numpy as np

rng = np.random.default_rng(0)


def median_time(f, reps):
    f()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def fmt(s):
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def w1(n, k, m):
    x = rng.standard_normal((n, k), dtype=np.float32)
    w = rng.standard_normal((k, m), dtype=np.float32) * 0.03
    b = np.zeros(m, np.float32)
    dy = rng.standard_normal((n, m), dtype=np.float32)

    def step():
        y = x @ w + b
        dx = dy @ w.T
        dw = x.T @ dy
        db = dy.sum(axis=0)
        return y, dx, dw, db

    return step


def w2(n):
    x = rng.standard_normal(n, dtype=np.float32)
    dy = rng.standard_normal(n, dtype=np.float32)

    def step():
        y = 1 / (1 + np.exp(-x))
        return dy * y * (1 - y)

    return step


def w3(n, c):
    x = rng.standard_normal((n, c), dtype=np.float32)
    t = np.arange(n) * 7919 % c

    def step():
        m = x.max(axis=1, keepdims=True)
        e = np.exp(x - m)
        s = e.sum(axis=1, keepdims=True)
        y = e / s
        loss = np.mean(np.log(s[:, 0]) + m[:, 0] - x[np.arange(n), t])
        dx = y.copy()
        dx[np.arange(n), t] -= 1
        return loss, dx / n

    return step


def w4(dims, batch):
    ws = [rng.standard_normal((a, b), dtype=np.float32) * np.float32(np.sqrt(2 / a)) for a, b in zip(dims, dims[1:])]
    bs = [np.zeros(b, np.float32) for b in dims[1:]]
    x = rng.standard_normal((batch, dims[0]), dtype=np.float32)
    t = np.arange(batch) % dims[-1]

    def step():
        hs = [x]
        for i, (w, b) in enumerate(zip(ws, bs)):
            z = hs[-1] @ w + b
            hs.append(np.maximum(z, 0) if i + 1 < len(ws) else z)
        z = hs[-1]
        m = z.max(axis=1, keepdims=True)
        e = np.exp(z - m)
        g = e / e.sum(axis=1, keepdims=True)
        g[np.arange(batch), t] -= 1
        g /= batch
        for i in reversed(range(len(ws))):
            dw = hs[i].T @ g
            db = g.sum(axis=0)
            if i > 0:
                g = (g @ ws[i].T) * (hs[i] > 0)
            ws[i] -= 0.1 * dw
            bs[i] -= 0.1 * db

    return step


threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
print(f"NumPy {np.__version__}, BLAS threads {threads}")
for name, f, reps in [
    ("W1 100x784x50 fwd+bwd", w1(100, 784, 50), 200),
    ("W1 256x1024x1024 fwd+bwd", w1(256, 1024, 1024), 20),
    ("W1 64x4096x4096 fwd+bwd", w1(64, 4096, 4096), 10),
    ("W2 sigmoid fwd+bwd 65536", w2(65536), 200),
    ("W2 sigmoid fwd+bwd 4194304", w2(4194304), 10),
    ("W3 32x32000 fwd+bwd", w3(32, 32000), 20),
    ("W3 256x1000 fwd+bwd", w3(256, 1000), 50),
    ("W4 small step", w4([784, 50, 10], 100), 100),
    ("W4 large step", w4([784, 1024, 1024, 10], 256), 10),
]:
    print(f"| {name} | {fmt(median_time(f, reps))} |")
