"""Szegedy et al. 2013 ("Intriguing properties of neural networks") on scikit-learn's digits (8x8, [0, 1]).

Models: an MLP 64-128-64-10 (ReLU; taps ``fc0``, ``fc1``, ``logits``) and the ``cnn`` engine (default
config: 4 conv blocks 16-32-64-64, taps ``conv0..3``, ``pooled``, ``logits``), each trained twice with the
same settings: model A on one half of the ``digits`` train split, model B on the other, disjoint half
(seeded split). Printed (numbers only, nothing asserted):

1. **Units vs random directions** (§3): model A's test split recorded with ``record_images``; for the last
   hidden layer (MLP ``fc1``, CNN ``pooled``; CNN ``conv3`` with max over cells as well), the label purity of
   the top-8 test images of 50 units against 50 random unit directions
   (``image_directions.purity_units_vs_random``), beside two baselines measured in the same run: 1/10 and
   the purity of 8 test images drawn at random.
2. **Adversarial examples** (§4.1): targeted box L-BFGS (``lbfgs_image_attack``, box [0, 1]) on the first
   ``--n`` test images model A classifies correctly, target a seeded random other class: success rate,
   ``|r|_2`` (mean, median), relative ``|r|_2/|x|_2`` and the paper's distortion ``sqrt(mean r^2)``.
3. **Transfer** (§4.2): the adversarial images of model A given to model B (trained on the disjoint half)
   and to the other architecture's B; B's error rate (prediction != true class) and the rate at which B
   predicts A's target, at ``x + s r`` for s = 1, 2, 3 (clipped to the box), against the same images with
   random noise of the same L2 norm (``|s r|_2``, clipped) and the clean images: the baseline.
4. **Layer-wise amplification** (§4.3): ``|Δφ_l|_F / |r|_2`` for every tap (mean and max over the
   attacks) against the upper Lipschitz bound: the product of the operator norms of the layers up to l
   (ReLU and the non-overlapping 2x2 max pool are 1-Lipschitz; the global average over the final 2x2 cells
   has norm 1/2). A conv layer's operator norm is the largest singular value of its dense matrix
   (zero padding 1, at that layer's input size) from ``torch.linalg.matrix_norm(ord=2)``, not the
   reshaped kernel's.

    python benchmarks/szegedy_claims.py [--n 100] [--seed 0] [--bisect-steps 5] [--maxiter 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

# lstmviz before torch: it sets the OpenMP wait policy that shared cores need
from lstmviz.analysis.image_directions import purity_units_vs_random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lstmviz.engines import build_engine
from lstmviz.engines.families.image.api import SCALAR_AXIS
from lstmviz.hooks import SCALAR, Tap
from lstmviz.perturb.image_attack import lbfgs_image_attack
from lstmviz.recording import open_recording
from lstmviz.recording.image_recorder import record_images
from minibatch_training import train


class MLP(nn.Module):
    """64-128-64-10 with ReLU; taps ``fc0`` (128), ``fc1`` (64), ``logits`` (one row per image)."""

    task = "class"

    def __init__(self, sizes=(64, 128, 64, 10)):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.taps = nn.ModuleList(Tap(f"fc{i}", layout=SCALAR, axis="image") for i in range(len(sizes) - 2))
        self.logits_tap = Tap("logits", layout=SCALAR, axis="image")

    def image_axes(self, height, width):
        return {"image": SCALAR_AXIS}

    def forward(self, images):
        h = images.flatten(1)
        for layer, tap in zip(self.layers[:-1], self.taps):
            h = tap(layer(h).relu())
        return self.logits_tap(self.layers[-1](h))


def digits():
    from lstmviz.datasets.images.digits import build_digits

    train, test = build_digits("train"), build_digits("test")
    as_t = lambda d: (torch.tensor(np.array(d.images)), torch.tensor(np.array(d.targets)).long())  # noqa: E731
    return train, test, as_t(train), as_t(test)


@torch.no_grad()
def predict(model, x):
    return model(x).argmax(1)


def make(kind: str, seed: int):
    torch.manual_seed(seed)
    if kind == "mlp":
        return MLP(), 1500
    return build_engine("cnn", channels=1, height=8, width=8, num_classes=10, task="class"), 600


# ------------------------------------------------------------------------------------------ operator norms


def conv_operator_norm(conv: nn.Conv2d, channels: int, height: int, width: int) -> float:
    """Largest singular value of the convolution (no bias) as a dense matrix on [channels, height, width]."""
    n = channels * height * width
    basis = torch.eye(n, dtype=torch.float64).reshape(n, channels, height, width)
    w = conv.weight.detach().double()
    out = F.conv2d(basis, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    return float(torch.linalg.matrix_norm(out.reshape(n, -1), ord=2))


def linear_norm(layer: nn.Linear) -> float:
    return float(torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2))


def lipschitz_bounds(kind: str, model) -> tuple[dict[str, float], dict[str, float]]:
    """Per tap: (the layer's own operator norm, the product up to that tap)."""
    own, bound = {}, {}
    if kind == "mlp":
        running = 1.0
        for i, layer in enumerate(model.layers):
            name = f"fc{i}" if i < len(model.layers) - 1 else "logits"
            own[name] = linear_norm(layer)
            running *= own[name]
            bound[name] = running
        return own, bound
    running, c, h, w = 1.0, 1, 8, 8
    for i, conv in enumerate(model.convs):
        own[f"conv{i}"] = conv_operator_norm(conv, c, h, w)
        running *= own[f"conv{i}"]
        bound[f"conv{i}"] = running
        c = conv.out_channels
        if i < 2:  # the 2x2 max pool after blocks 0 and 1 (1-Lipschitz)
            h, w = h // 2, w // 2
    own["pooled"] = 1.0 / np.sqrt(h * w)  # the global average over the last h x w cells
    running *= own["pooled"]
    bound["pooled"] = running
    own["logits"] = linear_norm(model.head)
    bound["logits"] = running * own["logits"]
    return own, bound


# ------------------------------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="test images attacked per model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bisect-steps", type=int, default=5)
    ap.add_argument("--maxiter", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    train_set, test_set, (xtr, ytr), (xte, yte) = digits()
    perm = np.random.default_rng(args.seed).permutation(len(xtr))
    half_a, half_b = torch.as_tensor(perm[:len(perm) // 2]), torch.as_tensor(perm[len(perm) // 2:])
    print(f"digits: {len(xtr)} train images split into two disjoint halves of {len(half_a)} / {len(half_b)}, "
          f"{len(xte)} test images; one torch thread")
    models = {}
    for kind in ("mlp", "cnn"):
        for half, idx in (("A", half_a), ("B", half_b)):
            model, steps = make(kind, args.seed + (0 if half == "A" else 1))
            t0 = time.perf_counter()
            train(model, xtr[idx], ytr[idx], steps, args.seed + (0 if half == "A" else 1))
            acc = float((predict(model, xte) == yte).float().mean())
            models[kind, half] = model
            print(f"{kind} {half}: {steps} Adam steps in {time.perf_counter() - t0:.1f} s, test accuracy {acc:.3f}")

    # 1. units vs random directions
    print("\n## Units vs random directions (model A, test split, top-8 label purity, 50 units / 50 directions)\n")
    print("Means with 95% bootstrap intervals (resampling directions); p: two-sided Mann-Whitney U, all units "
          "against random directions. Dead units (the same value on every test image) rank images by index.\n")
    print("| model | tap | reduce | units (all) | units (not dead) | random directions | p | random images "
          "(baseline) | chance | dead units |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, taps in (("mlp", [("fc1", "max")]), ("cnn", [("pooled", "max"), ("conv3", "max")])):
            path = record_images(models[kind, "A"], test_set, Path(tmp) / f"{kind}.h5", signals=[t for t, _ in taps])
            with open_recording(path) as rec:
                for tap, reduce in taps:
                    p = purity_units_vs_random(rec, tap, "class", n=50, k=8, seed=args.seed, reduce=reduce)
                    ci = lambda c: f"[{c[0]:.2f}, {c[1]:.2f}]"  # noqa: E731
                    print(f"| {kind} | {tap} | {reduce} | {p.mean_unit:.3f} {ci(p.unit_ci)} | {p.mean_live_unit:.3f} | "
                          f"{p.mean_random:.3f} {ci(p.random_ci)} | {p.p_value:.2g} | {p.random_images_purity:.3f} | "
                          f"{p.chance:.2f} | {p.constant_units} of {len(p.units)} |", flush=True)

    # 2. attacks, 3. transfer, 4. amplification
    g = np.random.default_rng(args.seed + 10)
    attacks = {}
    print(f"\n## Targeted box L-BFGS on the first {args.n} correctly classified test images (model A)\n")
    print("| model | success | mean |r| | median |r| | mean |r|/|x| | mean sqrt(mean r^2) | mean c | s/image |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("mlp", "cnn"):
        model = models[kind, "A"]
        ok = torch.nonzero(predict(model, xte) == yte).flatten()[:args.n]
        taps = ["fc0", "fc1", "logits"] if kind == "mlp" else ["conv0", "conv1", "conv2", "conv3", "pooled", "logits"]
        out = []
        t0 = time.perf_counter()
        for i in ok.tolist():
            target = int((int(yte[i]) + g.integers(1, 10)) % 10)
            out.append((i, target, lbfgs_image_attack(model, xte[i], target, bisect_steps=args.bisect_steps,
                                                      maxiter=args.maxiter, c_grid=10.0 ** np.arange(-2, 3),
                                                      taps=taps)))
        seconds = (time.perf_counter() - t0) / max(1, len(out))
        attacks[kind] = out
        hit = [a for _, _, a in out if a.flipped]
        l2 = np.array([a.l2 for a in hit])
        rel = np.array([a.relative_l2 for a in hit])
        rms = np.array([a.l2 / np.sqrt(a.r.size) for a in hit])
        cs = np.array([a.details["c"] for a in hit])
        print(f"| {kind} | {len(hit)}/{len(out)} | {l2.mean():.3f} | {np.median(l2):.3f} | {rel.mean():.3f} | "
              f"{rms.mean():.4f} | {cs.mean():.3g} | {seconds:.2f} |", flush=True)

    print("\n## Transfer: model A's adversarial images given to models trained on the disjoint half (B)\n")
    print("Error = prediction != true class; 'to target' = B predicts A's target. Noise: a random direction of "
          "the same L2 norm as s*r, clipped to [0, 1]. Clean error of B on the same images in the first row.\n")
    print("| from | to | s | adv. error | adv. to target | noise error | noise to target | clean error |")
    print("|---|---|---|---|---|---|---|---|")
    for src in ("mlp", "cnn"):
        hit = [(i, t, a) for i, t, a in attacks[src] if a.flipped]
        if not hit:
            continue
        idx = torch.as_tensor([i for i, _, _ in hit])
        y = yte[idx]
        tgt = torch.as_tensor([t for _, t, _ in hit])
        x = xte[idx].double()
        r = torch.stack([torch.as_tensor(a.r) for _, _, a in hit])
        noise = torch.randn(r.shape, generator=torch.Generator().manual_seed(args.seed + 20), dtype=torch.float64)
        noise = noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * r.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        for dst in ("mlp", "cnn"):
            model = models[dst, "B"]
            clean = float((predict(model, x.float()) != y).float().mean())
            for s in (1, 2, 3):
                adv = predict(model, (x + s * r).clamp(0, 1).float())
                noisy = predict(model, (x + s * noise).clamp(0, 1).float())
                print(f"| {src} A | {dst} B | {s} | {float((adv != y).float().mean()):.2f} | "
                      f"{float((adv == tgt).float().mean()):.2f} | {float((noisy != y).float().mean()):.2f} | "
                      f"{float((noisy == tgt).float().mean()):.2f} | {clean:.2f} |")
        own_a = models[src, "A"]
        for s in (1, 2, 3):
            adv = predict(own_a, (x + s * r).clamp(0, 1).float())
            print(f"| {src} A | {src} A (itself) | {s} | {float((adv != y).float().mean()):.2f} | "
                  f"{float((adv == tgt).float().mean()):.2f} | | | |")

    print("\n## Layer-wise amplification |Δφ_l| / |r| (model A, successful attacks) vs the upper Lipschitz bound\n")
    print("| model | tap | layer's operator norm | bound (product up to l) | mean amplification | max amplification | "
          "max / bound |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("mlp", "cnn"):
        own, bound = lipschitz_bounds(kind, models[kind, "A"])
        hit = [a for _, _, a in attacks[kind] if a.flipped]
        for tap in bound:
            amp = np.array([a.amplification[tap] for a in hit])
            print(f"| {kind} | {tap} | {own[tap]:.3g} | {bound[tap]:.3g} | {amp.mean():.3g} | {amp.max():.3g} | "
                  f"{amp.max() / bound[tap]:.3g} |")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
