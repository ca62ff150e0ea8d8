"""pkm (Lample et al. 2019) on scikit-learn's digits: accuracy and memory usage against the number of slots.

The same classifier (conv stem 1→16→32 at 8x8, 4x4; product-key memory with k=8 slots read per head,
2 heads, query size 32, values of 64; linear head) with n_keys ∈ {4, 8, 16, 32} (16 .. 1024 slots).
The compute per image is the same up to the sub-key scoring (2 n d_q/2 per head: 256 .. 2048
multiply-adds against the stem's ~80k), so this checks the paper's direction "more memory at the same
compute is better". Two tasks: the real labels (test accuracy, 1297 train / 500 test) and random
labels on the 1297 training images (training accuracy: memorisation capacity, where the memory size
should matter most). Memory usage as in the paper's Table: the fraction of slots read at least once
on the test set and KL(usage ‖ uniform) of the summed read weights. The last rows switch the query
BatchNorm off (the paper's claim: query BN raises usage). Each row: mean over seeds.

    python benchmarks/pkm_claims.py [--steps 600] [--seeds 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from lstmviz.engines.vision.pkm import build, slot_usage


def digits(seed: int = 0):
    from sklearn.datasets import load_digits

    d = load_digits()
    g = np.random.default_rng(seed)
    order = g.permutation(len(d.images))
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)[order][:, None])
    y = torch.from_numpy(d.target[order]).long()
    return x[:1297], y[:1297], x[1297:], y[1297:]


def train(model, x, y, steps, seed, lr=3e-3, batch=64):
    g = torch.Generator().manual_seed(seed)
    memory = [model.memory.values.weight]
    rest = [p for p in model.parameters() if p is not model.memory.values.weight]
    # the paper: the values need a larger learning rate than the rest
    opt = torch.optim.Adam([{"params": rest, "lr": lr}, {"params": memory, "lr": 3 * lr}])
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


@torch.no_grad()
def evaluate(model, x, y):
    logits = model(x)
    _, _, weights, slots = model.memory(model.features(x))
    usage = torch.zeros(model.memory.num_slots).index_add_(0, slots.flatten(), weights.flatten())
    return float((logits.argmax(1) == y).float().mean()), *slot_usage(usage)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)  # 2 threads on a shared 2-core machine spin: ~100x slower
    xtr, ytr, xte, yte = digits(0)
    rand = torch.randint(10, (len(ytr),), generator=torch.Generator().manual_seed(123))
    t0 = time.perf_counter()
    print("| n_keys | slots | query BN | test acc | slots used (test) | KL from uniform | "
          "random-label train acc | slots used (random) |")
    print("|---|---|---|---|---|---|---|---|")
    for n_keys, bn in [(4, True), (8, True), (16, True), (32, True), (16, False), (32, False)]:
        rows = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model = train(build(1, 8, 8, 10, n_keys=n_keys, query_bn=bn), xtr, ytr, args.steps, seed)
            acc, used, kl = evaluate(model, xte, yte)
            torch.manual_seed(seed)
            memo = train(build(1, 8, 8, 10, n_keys=n_keys, query_bn=bn), xtr, rand, args.steps, seed)
            macc, mused, _ = evaluate(memo, xtr, rand)
            rows.append((acc, used, kl, macc, mused))
        m = np.mean(rows, axis=0)
        print(f"| {n_keys} | {n_keys ** 2} | {'yes' if bn else 'no'} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} | "
              f"{m[3]:.3f} | {m[4]:.3f} |", flush=True)
    print(f"\n{args.seeds} seeds, {args.steps} Adam steps of 64 images each; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
