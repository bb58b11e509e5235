#!/usr/bin/env python3
"""Writes tests/data/torch_conv.txt: PyTorch's values for tests/conv.rs.

conv2d (x 2×3×7×6, W 4×3×3×2, stride 2, pad 1) → ReLU → max_pool2d (3×2,
stride 2, pad 1), the loss sum(pool · R), and its gradients dx, dW, db.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch numpy
    /tmp/peers/bin/python scripts/torch_conv_reference.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(7)
x = torch.tensor(rng.standard_normal((2, 3, 7, 6)).astype(np.float32), requires_grad=True)
w = torch.tensor((rng.standard_normal((4, 3, 3, 2)) * 0.5).astype(np.float32), requires_grad=True)
b = torch.tensor((rng.standard_normal(4) * 0.1).astype(np.float32), requires_grad=True)
conv = F.conv2d(x, w, b, stride=2, padding=1)
pool = F.max_pool2d(F.relu(conv), (3, 2), stride=2, padding=1)
r = torch.tensor(rng.standard_normal(tuple(pool.shape)).astype(np.float32))
(pool * r).sum().backward()

out = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "torch_conv.txt")
with open(out, "w") as f:
    f.write(f"# written by scripts/torch_conv_reference.py with torch {torch.__version__}\n")
    for name, t in [("x", x), ("w", w), ("b", b), ("conv", conv), ("pool", pool), ("r", r),
                    ("dx", x.grad), ("dw", w.grad), ("db", b.grad)]:
        vals = t.detach().numpy().astype(np.float32).ravel()
        f.write(name + ": " + " ".join(repr(float(v)) for v in vals) + "\n")
print("wrote", out)
