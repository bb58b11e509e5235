#!/usr/bin/env python3
"""densegrad beside PyTorch and JAX on the same machine, in one sitting.

Runs each system on each workload at 1 and 2 threads in interleaved rounds
(densegrad, torch, jax, densegrad, ...), each measurement in a fresh process
with the peers' timing rule (warm-up, 7 samples of >= 0.2 s, median), and
prints a Markdown table of the medians over the rounds and the ratio
"best peer / densegrad" (above 1: densegrad is faster).

1 thread means one core: every process is pinned with `taskset -c 0`.
2 threads: `--threads 2` for densegrad, torch.set_num_threads(2), and JAX
unpinned on the 2-core machine.

The peers live in a throwaway venv (nothing is installed into the project):

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch "jax[cpu]" numpy
    cargo build --release --example bench_step
    /tmp/peers/bin/python scripts/compare_peers.py w5 --rounds 5

Workloads (DESIGN.md):
  w5  one SGD step (lr 0.1) of the book's SimpleConvNet at batch 100:
      conv 30x1x5x5 -> ReLU -> max-pool 2x2/2 -> Affine 4320->100 -> ReLU ->
      Affine 100->10 -> mean cross-entropy; inputs (100, 1, 28, 28) in [0, 1),
      weights std 0.01, biases 0. The input image needs no gradient.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LR = 0.1


def bench(fn):
    """(median seconds per call over 7 samples of >= 0.2 s, reps per sample)."""
    t0 = time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - t0 < 0.1:
        fn()
        n += 1
    per = (time.perf_counter() - t0) / n
    reps = max(1, math.ceil(0.2 / per))
    ts = []
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        ts.append((time.perf_counter() - t) / reps)
    return statistics.median(ts), reps


def w5_inputs():
    import numpy as np
    rng = np.random.default_rng(1234)
    x = rng.random((100, 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, 100)
    ps = [(rng.standard_normal((30, 1, 5, 5)) * 0.01).astype(np.float32), np.zeros(30, np.float32),
          (rng.standard_normal((4320, 100)) * 0.01).astype(np.float32), np.zeros(100, np.float32),
          (rng.standard_normal((100, 10)) * 0.01).astype(np.float32), np.zeros(10, np.float32)]
    return x, t, ps


def torch_w5(threads):
    import numpy as np
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    x, t, ps = w5_inputs()
    xt, tt = torch.from_numpy(x), torch.from_numpy(t.astype(np.int64))
    P = [torch.from_numpy(p.T.copy() if p.ndim == 2 else p).requires_grad_(True) for p in ps]

    def step():
        h = F.max_pool2d(F.relu(F.conv2d(xt, P[0], P[1])), 2, 2).flatten(1)
        h = F.linear(F.relu(F.linear(h, P[2], P[3])), P[4], P[5])
        loss = F.cross_entropy(h, tt)
        gs = torch.autograd.grad(loss, P)
        with torch.no_grad():
            for p, g in zip(P, gs):
                p.add_(g, alpha=-LR)
        return loss
    return step


def jax_w5(threads):
    import jax
    import jax.numpy as jnp
    x, t, ps = w5_inputs()

    def loss_fn(P, x, t):
        h = jax.lax.conv_general_dilated(x, P[0], (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.nn.relu(h + P[1][None, :, None, None])
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        h = h.reshape(x.shape[0], -1)
        h = jax.nn.relu(h @ P[2] + P[3]) @ P[4] + P[5]
        return jnp.mean(jax.nn.logsumexp(h, axis=1) - jnp.take_along_axis(h, t[:, None], 1)[:, 0])

    @jax.jit
    def jstep(P, x, t):
        l, g = jax.value_and_grad(loss_fn)(P, x, t)
        return [p - LR * gi for p, gi in zip(P, g)], l

    state = {"P": [jnp.asarray(p) for p in ps]}
    xj, tj = jnp.asarray(x), jnp.asarray(t)

    def step():
        state["P"], l = jstep(state["P"], xj, tj)
        return l.block_until_ready()
    return step


PEERS = {"torch": {"w5": torch_w5}, "jax": {"w5": jax_w5}}


def child(system, workload, threads):
    """Runs in the measuring process: one JSON line."""
    step = PEERS[system][workload](threads)
    step()  # jit / first-call costs outside the timing
    t, reps = bench(step)
    print(json.dumps({"workload": workload, "system": system, "threads": threads, "median_s": t, "reps": reps}))


def measure(system, workload, threads):
    pin = ["taskset", "-c", "0"] if threads == 1 and shutil.which("taskset") else []
    env = dict(os.environ)
    if system == "densegrad":
        exe = os.path.join(ROOT, "target", "release", "examples", "bench_step")
        cmd = pin + [exe, workload, "--threads", str(threads)]
    else:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        cmd = pin + [sys.executable, os.path.abspath(__file__), "--child", system, workload, str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["median_s"]


def fmt(s):
    return f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("workloads", nargs="+", choices=["w5"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--systems", default="densegrad,torch,jax")
    args = ap.parse_args()
    systems = args.systems.split(",")
    times = {}
    for r in range(args.rounds):
        for w in args.workloads:
            for threads in (1, 2):
                for s in systems:
                    t = measure(s, w, threads)
                    times.setdefault((w, threads, s), []).append(t)
                    print(f"round {r + 1}: {w} {s} {threads}t {fmt(t)}", file=sys.stderr)
    print(f"medians of {args.rounds} interleaved rounds; each round a fresh process per system "
          f"(7 samples of >= 0.2 s, median)\n")
    peers = [s for s in systems if s != "densegrad"]
    print("| workload | threads | " + " | ".join(systems) + " | best peer ÷ densegrad |")
    print("|:--|--:|" + "--:|" * len(systems) + "--:|")
    for w in args.workloads:
        for threads in (1, 2):
            med = {s: statistics.median(times[(w, threads, s)]) for s in systems}
            row = " | ".join(fmt(med[s]) for s in systems)
            ratio = min(med[s] for s in peers) / med["densegrad"] if peers and "densegrad" in med else float("nan")
            print(f"| {w} | {threads} | {row} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
