#!/usr/bin/env python3
"""densegrad beside PyTorch, JAX and NumPy on the same machine, in one sitting.

Runs each system on each workload at 1 and 2 threads in interleaved rounds
(densegrad, torch, jax, densegrad, ...), each measurement in a fresh process
with the peers' timing rule (warm-up, 7 samples of >= 0.2 s, median), and
prints a Markdown table of the medians over the rounds with the ratio
"densegrad / best peer" (below 1: densegrad is faster).

1 thread means one core: every process is pinned with `taskset -c 0`.
2 threads: `--threads 2` for densegrad, torch.set_num_threads(2), OMP/MKL/
OPENBLAS_NUM_THREADS=2, and JAX unpinned on the 2-core machine.

The peers live in a throwaway venv (nothing is installed into the project):

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch "jax[cpu]" numpy
    cargo build --release --example bench_step
    /tmp/peers/bin/python scripts/compare_peers.py --rounds 3             # W1-W5
    /tmp/peers/bin/python scripts/compare_peers.py w4_large w5 --rounds 5
    /tmp/peers/bin/python scripts/compare_peers.py --systems densegrad,numpy w3_100x10

`--baselines` adds densegrad-only rows measured in the same rounds: naive
loops, the raw sgemm calls of a step, and the owned-tensor API (see
examples/bench_step.rs).

`--busy-core ON:OFF` reproduces the shared machine's busy second core: for
the whole sitting a process pinned to the last CPU spins for ON ms, then
sleeps for OFF ms, over and over (4:6 takes 40% of that core in 4 ms
bursts). 1-thread runs are pinned to CPU 0 and do not see it; 2-thread
runs share a core with it, as they do when another VM's load lands there.

    /tmp/peers/bin/python scripts/compare_peers.py w4_large --threads 2 --busy-core 4:6

Workloads (DESIGN.md; the same definitions as the peers' anchor benchmarks):
  w1_NxKxM       Affine forward + backward (y, dX, dW, db), x (N,K), W (K,M)
                 std 1/sqrt(K), dy (N,M); 100x784x50, 256x1024x1024, 64x4096x4096
  w2_KIND_N      ReLU / Sigmoid forward + backward on N elements (65536, 4194304)
  w3_NxC         softmax with mean cross-entropy over index labels, forward +
                 gradient of the logits; 100x10, 256x1000, 32x32000
  w4_small       one SGD step (lr 0.1) of 784-50-10 (ReLU) at batch 100, weights std 0.01
  w4_large       the same for 784-1024-1024-10 at batch 256
  w5             one SGD step (lr 0.1) of the book's SimpleConvNet at batch 100:
                 conv 30x1x5x5 -> ReLU -> max-pool 2x2/2 -> Affine 4320->100 ->
                 ReLU -> Affine 100->10 -> mean cross-entropy; inputs (100, 1, 28, 28)
                 in [0, 1), weights std 0.01, biases 0. The input needs no gradient.
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
WORKLOADS = [
    "w1_100x784x50", "w1_256x1024x1024", "w1_64x4096x4096",
    "w2_relu_65536", "w2_relu_4194304", "w2_sigmoid_65536", "w2_sigmoid_4194304",
    "w3_100x10", "w3_256x1000", "w3_32x32000",
    "w4_small", "w4_large", "w5",
]
# densegrad-only rows: (name, the workload it is a baseline or variant of)
BASELINES = [
    ("relu_naive_4194304", "w2_relu_4194304"),
    ("relu_owned_4194304", "w2_relu_4194304"),
    ("w1_owned_256x1024x1024", "w1_256x1024x1024"),
    ("w3_naive_100x10", "w3_100x10"),
    ("w4_small_sgemm", "w4_small"),
    ("w4_large_sgemm", "w4_large"),
    ("w4_large_owned", "w4_large"),
]
MLPS = {"w4_small": ([784, 50, 10], 100), "w4_large": ([784, 1024, 1024, 10], 256)}


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


def dims(s):
    return [int(d) for d in s.split("x")]


# ------------------------------------------------------------------ shared inputs (NumPy)
def rng(tag):
    import numpy as np
    return np.random.default_rng([1234, sum(map(ord, tag))])


def randn(tag, shape, scale=1.0):
    import numpy as np
    return (rng(tag).standard_normal(shape) * scale).astype(np.float32)


def inputs(workload):
    import numpy as np
    kind, _, rest = workload.partition("_")
    if kind == "w1":
        n, k, m = dims(rest)
        return (randn("x", (n, k)), randn("w", (k, m), 1 / math.sqrt(k)),
                randn("b", (m,)), randn("dy", (n, m)))
    if kind == "w2":
        n = int(rest.split("_")[1])
        return randn("x", (n,), 3.0), randn("dy", (n,))
    if kind == "w3":
        n, c = dims(rest)
        return randn("logits", (n, c), 4.0), rng("t").integers(0, c, n)
    if kind == "w4":
        sizes, batch = MLPS[workload]
        ps = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            ps += [randn(f"W{i}", (a, b), 0.01), np.zeros(b, np.float32)]
        return randn("x", (batch, sizes[0])), rng("t").integers(0, sizes[-1], batch), ps
    if kind == "w5":
        x = rng("x").random((100, 1, 28, 28)).astype(np.float32)
        ps = [randn("c", (30, 1, 5, 5), 0.01), np.zeros(30, np.float32),
              randn("f1", (4320, 100), 0.01), np.zeros(100, np.float32),
              randn("f2", (100, 10), 0.01), np.zeros(10, np.float32)]
        return x, rng("t").integers(0, 10, 100), ps
    raise SystemExit(f"unknown workload {workload}")


# ------------------------------------------------------------------ PyTorch (autograd)
def torch_step(workload, threads):
    import numpy as np
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    T = lambda a, grad=False: torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(grad)
    kind = workload.split("_")[0]
    if kind == "w1":
        x, w, b, dy = inputs(workload)
        xt, wt, bt, dyt = T(x, True), T(w.T, True), T(b, True), T(dy)

        def step():
            y = F.linear(xt, wt, bt)
            return torch.autograd.grad(y, (xt, wt, bt), dyt)
        return step
    if kind == "w2":
        x, dy = inputs(workload)
        xt, dyt = T(x, True), T(dy)
        f = F.relu if "relu" in workload else torch.sigmoid
        return lambda: torch.autograd.grad(f(xt), xt, dyt)
    if kind == "w3":
        logits, t = inputs(workload)
        lt, tt = T(logits, True), torch.from_numpy(t.astype(np.int64))
        return lambda: torch.autograd.grad(F.cross_entropy(lt, tt), lt)
    x, t, ps = inputs(workload)
    xt, tt = T(x), torch.from_numpy(t.astype(np.int64))
    P = [T(p.T if p.ndim == 2 else p, True) for p in ps]  # Linear weights (out, in)

    def forward():
        if kind == "w4":
            h = xt
            for i in range(0, len(P), 2):
                h = F.linear(F.relu(h) if i else h, P[i], P[i + 1])
            return h
        h = F.max_pool2d(F.relu(F.conv2d(xt, P[0], P[1])), 2, 2).flatten(1)
        return F.linear(F.relu(F.linear(h, P[2], P[3])), P[4], P[5])

    def step():
        loss = F.cross_entropy(forward(), tt)
        gs = torch.autograd.grad(loss, P)
        with torch.no_grad():
            for p, g in zip(P, gs):
                p.add_(g, alpha=-LR)
        return loss
    return step


# ------------------------------------------------------------------ JAX (jit)
def jax_step(workload, threads):
    import jax
    import jax.numpy as jnp
    ready = jax.block_until_ready
    kind = workload.split("_")[0]

    def ce(h, t):
        return jnp.mean(jax.nn.logsumexp(h, axis=1) - jnp.take_along_axis(h, t[:, None], 1)[:, 0])

    if kind == "w1":
        x, w, b, dy = map(jnp.asarray, inputs(workload))
        f = lambda x, w, b: x @ w + b

        @jax.jit
        def fb(x, w, b, dy):
            y, vjp = jax.vjp(f, x, w, b)
            return (y,) + vjp(dy)
        return lambda: ready(fb(x, w, b, dy))
    if kind == "w2":
        x, dy = map(jnp.asarray, inputs(workload))
        f = jax.nn.relu if "relu" in workload else jax.nn.sigmoid

        @jax.jit
        def fb(x, dy):
            y, vjp = jax.vjp(f, x)
            return y, vjp(dy)[0]
        return lambda: ready(fb(x, dy))
    if kind == "w3":
        logits, t = map(jnp.asarray, inputs(workload))
        fb = jax.jit(jax.value_and_grad(ce))
        return lambda: ready(fb(logits, t))
    x, t, ps = inputs(workload)

    def loss_fn(P, x, t):
        if kind == "w4":
            h = x
            for i in range(0, len(P), 2):
                h = (jax.nn.relu(h) if i else h) @ P[i] + P[i + 1]
            return ce(h, t)
        h = jax.lax.conv_general_dilated(x, P[0], (1, 1), "VALID",
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.nn.relu(h + P[1][None, :, None, None])
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        h = jax.nn.relu(h.reshape(x.shape[0], -1) @ P[2] + P[3]) @ P[4] + P[5]
        return ce(h, t)

    @jax.jit
    def jstep(P, x, t):
        l, g = jax.value_and_grad(loss_fn)(P, x, t)
        return [p - LR * gi for p, gi in zip(P, g)], l

    state = {"P": [jnp.asarray(p) for p in ps]}
    xj, tj = jnp.asarray(x), jnp.asarray(t)

    def step():
        state["P"], l = jstep(state["P"], xj, tj)
        return ready(l)
    return step


# ------------------------------------------------------------------ NumPy (the book's layers)
def numpy_step(workload, threads):
    import numpy as np
    kind = workload.split("_")[0]

    def softmax_loss(x, t):
        y = np.exp(x - x.max(axis=1, keepdims=True))
        y /= y.sum(axis=1, keepdims=True)
        n = x.shape[0]
        loss = -np.log(y[np.arange(n), t]).sum() / n
        dx = y.copy()
        dx[np.arange(n), t] -= 1
        return loss, dx / n

    if kind == "w1":
        x, w, b, dy = inputs(workload)
        return lambda: (x @ w + b, dy @ w.T, x.T @ dy, dy.sum(axis=0))
    if kind == "w2":
        x, dy = inputs(workload)
        if "relu" in workload:
            def step():
                mask = x <= 0
                y = x.copy()
                y[mask] = 0
                d = dy.copy()
                d[mask] = 0
                return y, d
            return step
        def step():
            y = 1 / (1 + np.exp(-x))
            return y, dy * (1.0 - y) * y
        return step
    if kind == "w3":
        logits, t = inputs(workload)
        return lambda: softmax_loss(logits, t)
    if kind == "w5":
        raise SystemExit("numpy has no w5 here (the peers' anchors skip it too)")
    x, t, ps = inputs(workload)

    def step():
        hs, h = [x], x
        for i in range(0, len(ps), 2):
            if i:
                h = np.maximum(h, 0)
                hs.append(h)
            h = h @ ps[i] + ps[i + 1]
        loss, d = softmax_loss(h, t)
        for i in range(len(ps) - 2, -1, -2):
            a = hs[i // 2]
            dw, db = a.T @ d, d.sum(axis=0)
            if i:
                d = (d @ ps[i].T) * (a > 0)
            ps[i] -= LR * dw
            ps[i + 1] -= LR * db
        return loss
    return step


PEERS = {"torch": torch_step, "jax": jax_step, "numpy": numpy_step}


def child(system, workload, threads):
    """Runs in the measuring process: one JSON line."""
    step = PEERS[system](workload, threads)
    step()  # jit / first-call costs outside the timing
    t, reps = bench(step)
    print(json.dumps({"workload": workload, "system": system, "threads": threads,
                      "median_s": t, "reps": reps}))


def measure(system, workload, threads):
    pin = ["taskset", "-c", "0"] if threads == 1 and shutil.which("taskset") else []
    env = dict(os.environ)
    if system == "densegrad":
        exe = os.path.join(ROOT, "target", "release", "examples", "bench_step")
        cmd = pin + [exe, workload, "--threads", str(threads)]
    else:
        n = str(threads)
        env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n)
        if system == "numpy":
            # They slow a current NumPy on this CPU (../shared/peers/README.md).
            env.pop("OPENBLAS_CORETYPE", None)
            env.pop("OPENBLAS_L2_SIZE", None)
        cmd = pin + [sys.executable, os.path.abspath(__file__), "--child", system, workload, n]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["median_s"]


BURNER = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[3])})
on, off = float(sys.argv[1]) / 1e3, float(sys.argv[2]) / 1e3
while True:
    t = time.perf_counter()
    while time.perf_counter() - t < on:
        pass
    time.sleep(off)
"""


def busy_spec(spec):
    """(ms busy, ms idle) from "ON:OFF"."""
    try:
        on, off = (float(v) for v in spec.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ON:OFF in milliseconds, got {spec!r}")
    if on <= 0 or off < 0:
        raise argparse.ArgumentTypeError(f"ON must be > 0 and OFF >= 0 ms, got {spec!r}")
    return on, off


def start_burner(on, off):
    """A process that keeps the last CPU busy `on` ms out of every `on + off`."""
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        # On one CPU the burner would share it with the 1-thread runs too.
        raise SystemExit("--busy-core needs at least 2 CPUs")
    cpu = max(cpus)
    return subprocess.Popen([sys.executable, "-c", BURNER, str(on), str(off), str(cpu)])


def fmt(s):
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workloads", nargs="*", choices=WORKLOADS + [[]], default=[],
                    help="default: all of W1-W5")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--systems", default="densegrad,torch,jax")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--baselines", action="store_true",
                    help="add densegrad-only baselines and variants of the chosen workloads")
    ap.add_argument("--busy-core", type=busy_spec, metavar="ON:OFF",
                    help="keep the last CPU busy ON ms of every ON+OFF ms during the sitting")
    args = ap.parse_args()
    workloads = args.workloads or WORKLOADS
    systems = args.systems.split(",")
    thread_counts = [int(t) for t in args.threads.split(",")]
    extras = [b for b, of in BASELINES if of in workloads] if args.baselines else []
    if not os.path.exists(os.path.join(ROOT, "target", "release", "examples", "bench_step")):
        raise SystemExit("build it first: cargo build --release --example bench_step")
    burner = start_burner(*args.busy_core) if args.busy_core else None
    try:
        times = sitting(args, workloads, extras, systems, thread_counts)
    finally:
        if burner:
            burner.kill()
            burner.wait()
    if args.busy_core:
        on, off = args.busy_core
        print(f"With the last CPU busy {on:g} ms of every {on + off:g} ms (`--busy-core`).\n")
    report(args, workloads, extras, systems, thread_counts, times)


def sitting(args, workloads, extras, systems, thread_counts):
    """{(workload, threads, system): [seconds per round]}, in interleaved rounds."""
    times = {}
    for r in range(args.rounds):
        for w in workloads + extras:
            for threads in thread_counts:
                for s in (systems if w in workloads else ["densegrad"]):
                    if s == "numpy" and w == "w5":
                        continue
                    t = measure(s, w, threads)
                    times.setdefault((w, threads, s), []).append(t)
                    print(f"round {r + 1}: {w} {s} {threads}t {fmt(t)}", file=sys.stderr, flush=True)
    return times


def report(args, workloads, extras, systems, thread_counts, times):
    """The Markdown tables of a sitting's medians."""
    print(f"Medians of {args.rounds} interleaved rounds; each measurement a fresh process "
          f"(7 samples of >= 0.2 s, median). `densegrad ÷ best peer` below 1: densegrad is faster.\n")
    peers = [s for s in systems if s != "densegrad"]
    print("| workload | threads | " + " | ".join(systems) + " | densegrad ÷ best peer |")
    print("|:--|--:|" + "--:|" * len(systems) + "--:|")
    for w in workloads:
        for threads in thread_counts:
            med = {s: statistics.median(times[(w, threads, s)]) for s in systems
                   if (w, threads, s) in times}
            row = " | ".join(fmt(med[s]) if s in med else "–" for s in systems)
            have = [med[s] for s in peers if s in med]
            ratio = med["densegrad"] / min(have) if have and "densegrad" in med else float("nan")
            print(f"| {w} | {threads} | {row} | {ratio:.2f} |")
    if extras:
        print("\n| densegrad variant or baseline | threads | time | workload ÷ this |")
        print("|:--|--:|--:|--:|")
        for b, of in BASELINES:
            if b not in extras:
                continue
            for threads in thread_counts:
                tb = statistics.median(times[(b, threads, "densegrad")])
                tw = statistics.median(times[(of, threads, "densegrad")]) \
                    if (of, threads, "densegrad") in times else float("nan")
                print(f"| {b} (of {of}) | {threads} | {fmt(tb)} | {tw / tb:.2f} |")
    if 1 in thread_counts and 2 in thread_counts and "densegrad" in systems:
        print("\n| workload | densegrad 1 thread ÷ 2 threads |")
        print("|:--|--:|")
        for w in workloads:
            t1 = statistics.median(times[(w, 1, "densegrad")])
            t2 = statistics.median(times[(w, 2, "densegrad")])
            print(f"| {w} | {t1 / t2:.2f}× |")


if __name__ == "__main__":
    main()
