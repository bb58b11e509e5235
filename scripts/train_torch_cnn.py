#!/usr/bin/env python3
"""The train example's CNN run in PyTorch, for its wall time: the same
SimpleConvNet (conv 30x5x5 -> ReLU -> max-pool 2x2/2 -> Linear 4320->100 ->
ReLU -> Linear 100->10), the same shipped MNIST scaled to [0, 1], the same
schedule (Adam lr 0.001 decayed x0.85 per epoch, batch 100, random shifts of
up to 2 pixels, He-normal weights, zero biases) and the same per-epoch
evaluation of the whole training and test sets.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch numpy
    /tmp/peers/bin/python scripts/train_torch_cnn.py --threads 2 [--epochs 15]
"""
import argparse
import gzip
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def idx(name):
    with gzip.open(os.path.join(ROOT, "data", "mnist", name + ".gz")) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    xtr = torch.from_numpy(idx("train-images-idx3-ubyte").astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    ytr = torch.from_numpy(idx("train-labels-idx1-ubyte").astype(np.int64))
    xte = torch.from_numpy(idx("t10k-images-idx3-ubyte").astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    yte = torch.from_numpy(idx("t10k-labels-idx1-ubyte").astype(np.int64))

    def he(*shape, fan_in):
        return (torch.randn(*shape) * math.sqrt(2 / fan_in)).requires_grad_(True)

    P = [he(30, 1, 5, 5, fan_in=25), torch.zeros(30, requires_grad=True),
         he(100, 4320, fan_in=4320), torch.zeros(100, requires_grad=True),
         he(10, 100, fan_in=100), torch.zeros(10, requires_grad=True)]

    def net(x):
        h = F.max_pool2d(F.relu(F.conv2d(x, P[0], P[1])), 2, 2).flatten(1)
        return F.linear(F.relu(F.linear(h, P[2], P[3])), P[4], P[5])

    def shift(x):
        # out[y, x] = in[y - dy, x - dx], zero outside; one slice per shift.
        d = torch.randint(-2, 3, (x.shape[0], 2))
        p = F.pad(x, (2, 2, 2, 2))
        out = torch.empty_like(x)
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                m = (d[:, 0] == dy) & (d[:, 1] == dx)
                if bool(m.any()):
                    out[m] = p[m, :, 2 - dy:30 - dy, 2 - dx:30 - dx]
        return out

    def evaluate(x, y):
        with torch.no_grad():
            loss, correct = 0.0, 0
            for i in range(0, len(x), 1000):
                z = net(x[i:i + 1000])
                loss += float(F.cross_entropy(z, y[i:i + 1000], reduction="sum"))
                correct += int((z.argmax(1) == y[i:i + 1000]).sum())
        return loss / len(x), correct / len(x)

    opt = torch.optim.Adam(P, lr=1e-3)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.85)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    train_start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 100):
            idx_ = perm[i:i + 100]
            loss = F.cross_entropy(net(shift(xtr[idx_])), ytr[idx_])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        trl, tra = evaluate(xtr, ytr)
        tel, tea = evaluate(xte, yte)
        print(f"{epoch:>5} | {trl:10.4f} | {tra * 100:8.2f}% | {tel:9.4f} | {tea * 100:7.2f}% | "
              f"{time.perf_counter() - t0:7.2f}", flush=True)
    train = time.perf_counter() - train_start
    print(f"final test accuracy {tea * 100:.2f}%; training {train:.1f} s "
          f"({train / args.epochs:.2f} s/epoch), wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
