#!/usr/bin/env python3
"""Loads a densegrad checkpoint with safetensors.numpy, evaluates the MLP in
NumPy on the MNIST test set and compares with densegrad's own predictions.

    python3 scripts/check_checkpoint.py target/train [--data data/mnist] [--activation relu]

`target/train` is the --out directory of `cargo run --example train`: it holds
model.safetensors and test_predictions.txt. Exits non-zero unless every
prediction agrees, except where NumPy's two largest logits are within 1e-4
(float32 summation order may break such near-ties either way).
"""
import argparse
import gzip
import os
import sys

import numpy as np
from safetensors.numpy import load_file


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data", "mnist"))
    ap.add_argument("--activation", default="relu", choices=["relu", "sigmoid", "tanh"])
    args = ap.parse_args()

    tensors = load_file(os.path.join(args.out_dir, "model.safetensors"))
    layers = sorted({int(name.split(".")[0]) for name in tensors})
    for name, t in sorted(tensors.items()):
        print(f"  {name}: {t.dtype} {list(t.shape)}")
    x = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")).reshape(10000, -1).astype(np.float32) / np.float32(255)
    labels = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)

    act = {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh}[args.activation]
    h = x
    for i, idx in enumerate(layers):
        h = h @ tensors[f"{idx}.weight"] + tensors[f"{idx}.bias"]
        if i + 1 < len(layers):
            h = act(h)
    numpy_pred = h.argmax(axis=1)
    with open(os.path.join(args.out_dir, "test_predictions.txt")) as f:
        dg_pred = np.array([int(line) for line in f if line.strip()])

    top2 = np.sort(h, axis=1)[:, -2:]
    near_tie = (top2[:, 1] - top2[:, 0]) < 1e-4
    differ = numpy_pred != dg_pred
    unexplained = differ & ~near_tie
    print(f"NumPy accuracy {np.mean(numpy_pred == labels) * 100:.2f}%, densegrad accuracy {np.mean(dg_pred == labels) * 100:.2f}%")
    print(f"predictions that differ: {differ.sum()} of {len(dg_pred)} ({(differ & near_tie).sum()} near-ties)")
    if len(dg_pred) != len(labels) or unexplained.any():
        print("FAIL: densegrad and NumPy disagree beyond near-ties", file=sys.stderr)
        return 1
    print("OK: the checkpoint reads by name in NumPy and gives densegrad's predictions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
