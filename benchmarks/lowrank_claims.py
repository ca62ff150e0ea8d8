"""lowrank-cnn (Denton et al. 2014) on coloured digits: accuracy vs theoretical speed-up vs rank.

Trains the dense CNN (3 conv blocks 3→16→32→32, FC 128→64, head) on scikit-learn's digits made
colourful (foreground and background colours from small palettes, so the monochromatic approximation
has colours to cluster), then factorises it with ``factorise`` (no retraining) and with fine-tuning of
the unapproximated parameters, and prints per setting: the theoretical multiply-adds of the
approximated layers (formula; checked against the multiply-adds actually run), the theoretical
speed-up of those layers, the relative weight error and the relative output error of the approximated layers on test data
(data-aware), test accuracy before/after fine-tuning, and the measured wall-time speed-up of the
whole forward over the test set as a ratio against the dense model in the same run (noisy; PyTorch
CPU grouped/small convolutions are not where the paper's speed-ups come from).

    python benchmarks/lowrank_claims.py [--steps 500] [--finetune-steps 150] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from lstmviz.engines.vision.lowrank_cnn import build, count_macs, factorise
from minibatch_training import train

FOREGROUND = [(1.0, 0.2, 0.2), (0.2, 1.0, 0.2), (0.3, 0.4, 1.0), (1.0, 1.0, 0.2), (1.0, 0.3, 1.0)]
BACKGROUND = [(0.0, 0.0, 0.0), (0.25, 0.25, 0.35), (0.3, 0.2, 0.1)]


def coloured_digits(seed: int = 0):
    from sklearn.datasets import load_digits

    d = load_digits()
    g = np.random.default_rng(seed)
    ink = (d.images / 16.0).astype(np.float32)[:, None]  # [N, 1, 8, 8]
    fg = np.asarray(FOREGROUND, np.float32)[g.integers(len(FOREGROUND), size=len(ink))][:, :, None, None]
    bg = np.asarray(BACKGROUND, np.float32)[g.integers(len(BACKGROUND), size=len(ink))][:, :, None, None]
    images = bg * (1 - ink) + fg * ink
    order = g.permutation(len(images))
    x, y = torch.from_numpy(images[order]), torch.from_numpy(d.target[order]).long()
    return x[:1297], y[:1297], x[1297:], y[1297:]


@torch.no_grad()
def accuracy(model, x, y):
    return float((model(x).argmax(1) == y).float().mean())


@torch.no_grad()
def layer_error(dense, approx, x):
    """Relative error ‖ΔY‖/‖Y‖ of each approximated layer's own output on the dense network's inputs."""
    errors = {}
    h = x
    for i, (cd, ca) in enumerate(zip(dense.convs, approx.convs)):
        yd, ya = cd(h), ca(h)
        if type(ca).__name__ != "DenseConv":
            errors[f"conv{i}"] = float((ya - yd).norm() / yd.norm())
        h = yd
        if i > 0:
            h = F.max_pool2d(h, 2)
        h = F.relu(dense.norms[i](h))
    if type(approx.fc).__name__ == "SVDLinear":
        f = torch.flatten(h, 1)
        yd, ya = dense.fc(f), approx.fc(f)
        errors["fc"] = float((ya - yd).norm() / yd.norm())
    return errors


@torch.no_grad()
def weight_error(dense, approx):
    """Relative Frobenius error ‖W̃ − W‖/‖W‖ of each approximated layer's reconstructed weights."""
    pairs = [(f"conv{i}", cd, ca) for i, (cd, ca) in enumerate(zip(dense.convs, approx.convs))]
    pairs.append(("fc", dense.fc, approx.fc))
    return {name: float((a.reconstructed_weight() - d.reconstructed_weight()).norm() / d.reconstructed_weight().norm())
            for name, d, a in pairs if type(a) is not type(d)}


@torch.no_grad()
def wall_ratio(dense, model, x, reps=15):
    """min time of the dense forward / min time of the approximated one, measured interleaved."""
    td, ta = [], []
    for _ in range(reps):
        for m, out in ((dense, td), (model, ta)):
            t = time.perf_counter()
            m(x)
            out.append(time.perf_counter() - t)
    return min(td) / min(ta)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--finetune-steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # 2 threads on a shared 2-core machine spin: ~100x slower
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = coloured_digits(args.seed)
    t0 = time.perf_counter()
    dense = train(build(3, 8, 8, 10, conv_channels=(16, 32, 32), fc_size=64), xtr, ytr, args.steps, args.seed)
    base_acc = accuracy(dense, xte, yte)
    base_macs = dense.macs()
    print(f"dense CNN trained in {time.perf_counter() - t0:.1f} s: test accuracy {base_acc:.3f} "
          f"({len(xte)} test images); MACs/image {base_macs}")
    xbig = xte.repeat(4, 1, 1, 1)

    settings = [("mono", dict(mono_colours=c)) for c in (1, 2, 4, 8)]
    settings += [("bicluster", dict(bicluster_out=g, bicluster_in=g, rank=r)) for g in (2, 4) for r in (1, 2, 4, 8)]
    settings += [("none", dict(fc_rank=r)) for r in (4, 8, 16, 32)]
    settings += [("both", dict(mono_colours=4, bicluster_out=2, bicluster_in=2, rank=4, fc_rank=16))]
    print()
    print("| approx | setting | layers | MACs approx/dense | theor. speed-up | rel. weight error | "
          "rel. output error (data) | "
          "acc (no FT) | acc (FT) | wall ratio dense/approx |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for approx, cfg in settings:
        model = factorise(dense, approx=approx, seed=args.seed, **cfg)
        macs = model.macs()
        counted = count_macs(model, xte)
        assert counted == sum(macs.values()), (counted, macs)
        changed = [k for k in macs if macs[k] != base_macs[k]]
        a = sum(macs[k] for k in changed)
        b = sum(base_macs[k] for k in changed)
        errors = layer_error(dense, model, xte)
        acc = accuracy(model, xte, yte)
        tuned = factorise(dense, approx=approx, seed=args.seed, finetune=(xtr, ytr),
                          finetune_steps=args.finetune_steps, **cfg)
        acc_ft = accuracy(tuned, xte, yte)
        ratio = wall_ratio(dense, model, xbig)
        werr = ", ".join(f"{k} {v:.3f}" for k, v in weight_error(dense, model).items())
        setting = ", ".join(f"{k}={v}" for k, v in cfg.items())
        err = ", ".join(f"{k} {v:.3f}" for k, v in errors.items())
        print(f"| {approx} | {setting} | {'+'.join(changed)} | {a}/{b} | {b / a:.2f}x | {werr} | {err} | {acc:.3f} | "
              f"{acc_ft:.3f} | {ratio:.2f} |", flush=True)
    print(f"\nbaseline: dense test accuracy {base_acc:.3f}; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
