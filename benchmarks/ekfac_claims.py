"""EKFAC vs K-FAC vs SGD vs Adam (George et al. 2018, arXiv:1806.03884): training loss per iteration and per
second on scikit-learn's digits.

Two small problems, the ones the reference suggests for CPU: an MLP classifier 64-128-64-10 (tanh,
cross-entropy) and a deep auto-encoder 64-32-16-32-64 (tanh, squared error). Every method trains the same
initial weights (per seed) on the same mini-batch sequence (batch 64 of the 1,437 training images scaled to
[0, 1]) with the shared pieces of ``--train optimizer=...``: ``torch.optim.SGD`` after
``engines/ekfac.KroneckerPreconditioner`` for kfac / ekfac (eigenbasis refreshed every ``--refresh`` steps,
damping ``--damping``, the Fisher from labels sampled from the model as in the paper: a class drawn from the
softmax, or the output plus unit Gaussian noise for the auto-encoder), SGD with momentum 0.9, Adam.

Each method's learning rate is the best of a small grid by the final full-training-set loss of seed 0 (the grid
and the choice are printed), then all seeds run with it. Printed: the full-training-set loss at a few
iterations (mean over seeds), the loss each method reached within the fastest method's total training time
(per second), and the milliseconds per step (evaluation excluded).

Claim in direction (the paper): EKFAC is at least as good as K-FAC per iteration, and both beat SGD per
iteration; EKFAC gives more progress per second than K-FAC. Reported as it comes out.

    python benchmarks/ekfac_claims.py [--steps 300] [--seeds 0 1 2] [--refresh 20] [--damping 1e-3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from lstmviz.engines.ekfac import KroneckerPreconditioner, sampled_cross_entropy

GRIDS = {"sgd": [0.03, 0.1, 0.3, 1.0], "adam": [1e-3, 3e-3, 1e-2, 3e-2],
         "kfac": [0.03, 0.1, 0.3, 1.0], "ekfac": [0.03, 0.1, 0.3, 1.0]}


def _data():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = np.random.default_rng(0).permutation(len(x))[:1437]
    return x[order], y[order]


def _model(problem: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    sizes = [64, 128, 64, 10] if problem == "mlp" else [64, 32, 16, 32, 64]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _loss(problem, out, x, y):
    if problem == "mlp":
        return nn.functional.cross_entropy(out, y)
    return 0.5 * ((out - x) ** 2).sum(1).mean()


def _sampled_loss(problem, out):
    if problem == "mlp":
        return sampled_cross_entropy(out)
    target = (out + torch.randn_like(out)).detach()  # Gaussian likelihood of unit variance
    return 0.5 * ((out - target) ** 2).sum(1).mean()


def run(problem, method, lr, seed, steps, refresh, damping, x, y, every=10):
    model = _model(problem, seed)
    if method == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9 if method == "sgd" else 0.0)
    pre = (KroneckerPreconditioner(model, mode=method, damping=damping, refresh=refresh, fisher="sampled")
           if method in ("kfac", "ekfac") else None)
    batches = np.random.default_rng(100 + seed)
    curve, times, elapsed = [], [], 0.0
    for step in range(steps + 1):
        if step % every == 0:
            with torch.no_grad():
                curve.append(float(_loss(problem, model(x), x, y)))
            times.append(elapsed)
        if step == steps:
            break
        idx = torch.from_numpy(batches.choice(len(x), 64, replace=False))
        tick = time.perf_counter()
        opt.zero_grad()
        out = model(x[idx])
        _loss(problem, out, x[idx], y[idx]).backward()
        if pre is not None:
            pre.collect_sampled(lambda: _sampled_loss(problem, model(x[idx])))
            pre.step()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # the training loop's default clip
        opt.step()
        elapsed += time.perf_counter() - tick
    if pre is not None:
        pre.remove()
    curve = np.array(curve)
    return np.where(np.isfinite(curve), curve, np.inf), np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--refresh", type=int, default=20)
    parser.add_argument("--damping", type=float, default=1e-3)
    parser.add_argument("--problems", nargs="+", default=["mlp", "autoencoder"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = _data()
    for problem in args.problems:
        print(f"\n== {problem}: {args.steps} steps of batch 64, refresh {args.refresh}, damping {args.damping}")
        chosen = {}
        for method, grid in GRIDS.items():
            finals = [run(problem, method, lr, args.seeds[0], args.steps, args.refresh, args.damping, x, y)[0][-1]
                      for lr in grid]
            chosen[method] = grid[int(np.argmin(finals))]
            print(f"  lr grid {method:5s}: " + ", ".join(f"{lr:g}->{f:.4f}" for lr, f in zip(grid, finals))
                  + f"  (chosen {chosen[method]:g})")
        results = {}
        for method, lr in chosen.items():
            runs = [run(problem, method, lr, s, args.steps, args.refresh, args.damping, x, y) for s in args.seeds]
            results[method] = (np.mean([c for c, _ in runs], axis=0), np.mean([t for _, t in runs], axis=0))
        marks = [i for i in (1, 3, 10, len(results["sgd"][0]) - 1) if i < len(results["sgd"][0])]
        print("  training loss (mean over seeds) at iteration " + " / ".join(str(10 * i) for i in marks)
              + "; seconds per step")
        for method, (curve, times) in results.items():
            print(f"    {method:5s} " + " / ".join(f"{curve[i]:.4f}" for i in marks)
                  + f"   {1000 * times[-1] / args.steps:.2f} ms/step")
        budget = min(times[-1] for _, times in results.values())
        print(f"  loss after the fastest method's total time ({budget:.2f} s):")
        for method, (curve, times) in results.items():
            reached = curve[np.searchsorted(times, budget, side="right") - 1]
            print(f"    {method:5s} {reached:.4f}")
        ek, kf, sg = (results[m][0][1:] for m in ("ekfac", "kfac", "sgd"))
        print(f"  per iteration: EKFAC <= K-FAC at {np.mean(ek <= kf):.0%} of the checkpoints; "
              f"K-FAC < SGD at {np.mean(kf < sg):.0%}, EKFAC < SGD at {np.mean(ek < sg):.0%}")


if __name__ == "__main__":
    main()
