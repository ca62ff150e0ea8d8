"""The small training loop several claim benchmarks share: Adam on the cross-entropy of random mini-batches."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def train(model, x, y, steps, seed, lr=3e-3, batch=64):
    """``steps`` Adam steps of ``lr`` on batches of ``batch`` rows of ``x``/``y`` drawn with replacement by a
    generator seeded with ``seed``; returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model
