#!/usr/bin/env python3
"""NumPy (the book's layers) beside densegrad: now one system of
scripts/compare_peers.py, which runs densegrad, PyTorch, JAX and NumPy on
W1-W5 in interleaved rounds. This runs it with NumPy included:

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch "jax[cpu]" numpy
    cargo build --release --example bench_step
    /tmp/peers/bin/python scripts/compare_numpy.py [workloads] [--rounds N]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
args = [a for a in sys.argv[1:]]
if not any(a.startswith("--systems") for a in args):
    args += ["--systems", "densegrad,torch,jax,numpy"]
os.execv(sys.executable, [sys.executable, os.path.join(HERE, "compare_peers.py")] + args)
