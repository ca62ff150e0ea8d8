"""ckn (Bietti & Mairal 2019) on scikit-learn's digits at 16x16: stability to translations and small
deformations against the pooling scale σ, against equal-norm noise, and against a plain CNN.

Claims checked (direction only):
1. stability: ‖Φ(L_τ x) − Φ(x)‖ / ‖Φ(x)‖ is small for small smooth deformations τ, of the order of
   ‖∇τ‖_∞ (the bound (C₁(1+n) ‖∇τ‖_∞ + C₂/σ_n ‖τ‖_∞) ‖x‖), and much smaller than the change under white
   noise of the same input L2 size;
2. translations: the ratio falls as the pooling scale σ grows (the C₂/σ_n ‖τ‖_∞ term); σ = 0 (plain
   subsampling, no anti-aliasing filter) aliases;
3. trade-off: a linear classifier on Φ loses accuracy when σ is too large;
4. contrast: a trained plain CNN (engine ``cnn``: 3x3 conv + ReLU, 2x2 max pool) is less stable.

Every model sees the same 200 test images and the same perturbations, drawn with fixed seeds.
Perturbations (pixel units, ``grid_sample`` bilinear with ``align_corners=False``, zeros outside):
translations by (1, 0), (1, 1), (2, 0), (2, 2) px; smooth deformations τ = a Gaussian-smoothed (σ_τ = 3 px)
random displacement field scaled to max |τ| = 0.5 or 1 px, with its ‖∇τ‖_∞ (largest Jacobian entry)
printed; noise: white Gaussian noise rescaled per image to the L2 norm ‖L_τ x − x‖ of the 1 px deformation.
CKN: 2 layers, 32 anchors by spherical k-means on the training images, 3x3 patches, κ(u) = e^{4(u−1)},
subsampling 2 per layer (and once α = 1, κ'(1) = 1 as the theory's non-expansive kernels), Φ the last pooled map flattened (``readout=flatten``); the per-layer rows use
the pooled maps. CNN: ``cnn`` with 16 channels and 4 blocks trained 400 Adam steps; its layers are the
block outputs after the max pool (8x8, 4x4) and the last block (4x4), Φ its global-average ``pooled``
vector and, to compare like with like, the last map flattened.
Accuracy: a linear classifier (Adam, 400 full-batch steps, weight decay 1e-4) on the centred, scaled
Φ of the 1078 training images; test accuracy on the 360 test images.

    python benchmarks/ckn_claims.py [--images 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from lstmviz.datasets.images.digits import build_digits
from lstmviz.engines.vision.ckn import build as build_ckn
from lstmviz.engines.vision.cnn import build as build_cnn

SIGMAS = (0.0, 0.5, 1.0, 2.0)


def split(name):
    ds = build_digits(name, size=16, resize="bilinear")
    x = torch.from_numpy(np.stack([ds[i].image for i in range(len(ds))]).astype(np.float32))
    y = torch.tensor([int(ds[i].target) for i in range(len(ds))])
    return x, y


def warp(x, disp):
    """``L_τ x(u) = x(u − τ(u))``; ``disp`` [B, 2, H, W] in pixels (dy, dx), bilinear, zeros outside."""
    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    sy, sx = ys - disp[:, 0], xs - disp[:, 1]
    grid = torch.stack([(2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1], dim=-1)  # align_corners=False
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def smooth_field(b, h, w, amplitude, seed, smooth=3.0):
    g = torch.Generator().manual_seed(seed)
    field = torch.randn(b, 2, h, w, generator=g)
    r = int(3 * smooth)
    i = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(i ** 2) / (2 * smooth ** 2))
    k = k / k.sum()
    field = F.conv2d(F.pad(field, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(2, 1, -1, 1), groups=2)
    field = F.conv2d(F.pad(field, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(2, 1, 1, -1), groups=2)
    field = field * (amplitude / field.abs().amax(dim=(1, 2, 3), keepdim=True))
    dy = field[..., 1:, :] - field[..., :-1, :]
    dx = field[..., :, 1:] - field[..., :, :-1]
    grad_inf = max(float(dy.abs().max()), float(dx.abs().max()))
    return field, grad_inf


def perturbations(x, seed=0):
    b, _, h, w = x.shape
    out = {}
    for dy, dx in ((1, 0), (1, 1), (2, 0), (2, 2)):
        disp = torch.zeros(b, 2, h, w)
        disp[:, 0], disp[:, 1] = dy, dx
        out[f"shift ({dy},{dx})"] = (warp(x, disp), 0.0)
    for amp, smooth in ((0.5, 3.0), (1.0, 3.0), (1.0, 6.0)):
        field, grad = smooth_field(b, h, w, amp, seed + int(10 * amp), smooth)
        out[f"deform {amp:g}px" + ("" if smooth == 3.0 else f" (σ_τ {smooth:g})")] = (warp(x, field), grad)
    deformed = out["deform 1px"][0]
    size = (deformed - x).flatten(1).norm(dim=1)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 99))
    noise = noise * (size / noise.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
    out["noise = deform 1px"] = (x + noise, float("nan"))
    return out


def ratios(reps, x, perturbed):
    """Per representation: mean over images of ‖Φ(x') − Φ(x)‖ / ‖Φ(x)‖."""
    base = reps(x)
    moved = reps(perturbed)
    return [float(((m - r).flatten(1).norm(dim=1) / r.flatten(1).norm(dim=1).clamp_min(1e-12)).mean())
            for r, m in zip(base, moved)]


@torch.enable_grad()
def linear_accuracy(features_train, y_train, features_test, y_test, steps=400, seed=0):
    torch.manual_seed(seed)
    features_train, features_test = features_train.detach(), features_test.detach()
    mu = features_train.mean(0)
    s = (features_train - mu).pow(2).sum(1).mean().sqrt()
    a, b = (features_train - mu) / s, (features_test - mu) / s
    head = torch.nn.Linear(a.shape[1], 10)
    opt = torch.optim.Adam(head.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(steps):
        loss = F.cross_entropy(head(a), y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((head(b).argmax(1) == y_test).float().mean())


def train_cnn(x, y, steps=400, seed=0):
    torch.manual_seed(seed)
    model = build_cnn(1, 16, 16, 10, hidden_size=16, num_layers=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (64,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def cnn_reps(model):
    def reps(x):
        out, h = [], x
        for i, conv in enumerate(model.convs):
            h = conv(h).relu()
            if i < 2:
                h = model.pool(h)
                out.append(h)
        out.append(h)  # last block's map (4x4)
        out.append(h.mean(dim=(2, 3)))  # pooled
        return out
    return reps


INPUT: dict = {}  # perturbation -> relative change of the input itself


def table(title, names, rows):
    print(f"\n{title}")
    print("| perturbation | ‖∇τ‖∞ | input | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for label, (grad, values) in rows.items():
        g = "" if grad != grad else f"{grad:.3f}"
        print(f"| {label} | {g} | {INPUT[label]:.4f} | " + " | ".join(f"{v:.4f}" for v in values) + " |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    xtr, ytr = split("train")
    xte, yte = split("test")
    probe = xte[: args.images]
    perturbed = perturbations(probe)
    for label, (v, _) in perturbed.items():
        INPUT[label] = ratios(lambda x: [x], probe, v)[0]
    print(f"digits 16x16 (bilinear): {len(xtr)} train, {len(xte)} test; stability over {len(probe)} test images")

    summary = {}
    for sigma, alpha in [(sigma, 4.0) for sigma in SIGMAS] + [(1.0, 1.0)]:
        torch.manual_seed(0)
        model = build_ckn(1, 16, 16, 10, hidden_size=32, num_layers=2, pool_sigma=sigma, kernel_alpha=alpha).eval()
        with torch.no_grad():
            model.fit_anchors(xtr, generator=torch.Generator().manual_seed(0))
            reps = lambda x: model.representations(x)[:2]  # noqa: E731  (pooled0 [32x8x8], Φ = pooled1 [32x4x4])
            rows = {k: (grad, ratios(reps, probe, v)) for k, (v, grad) in perturbed.items()}
            acc = linear_accuracy(model.representations(xtr)[-1], ytr, model.representations(xte)[-1], yte)
        name = f"CKN σ={sigma:g}" + ("" if alpha == 4.0 else f" α={alpha:g}")
        table(f"{name}: relative change per layer (test accuracy of a linear classifier on Φ: {acc:.3f})",
              ["layer 1 (8x8)", "Φ = layer 2 (4x4)"], rows)
        summary[name] = (rows, acc)

    # global pooling (readout mean) at σ = 1: invariance at the largest pooling scale
    torch.manual_seed(0)
    model = build_ckn(1, 16, 16, 10, hidden_size=32, num_layers=2, pool_sigma=1.0, readout="mean").eval()
    with torch.no_grad():
        model.fit_anchors(xtr, generator=torch.Generator().manual_seed(0))
        reps = lambda x: model.representations(x)[-1:]  # noqa: E731
        rows = {k: (grad, ratios(reps, probe, v)) for k, (v, grad) in perturbed.items()}
        acc = linear_accuracy(model.representations(xtr)[-1], ytr, model.representations(xte)[-1], yte)
    summary["CKN σ=1, global mean"] = (rows, acc)

    cnn = train_cnn(xtr, ytr)
    with torch.no_grad():
        reps = cnn_reps(cnn)
        rows = {k: (grad, ratios(reps, probe, v)) for k, (v, grad) in perturbed.items()}
        acc = float((cnn(xte).argmax(1) == yte).float().mean())
        acc_lin = linear_accuracy(reps(xtr)[2].flatten(1), ytr, reps(xte)[2].flatten(1), yte)
    table(f"CNN (trained, test accuracy {acc:.3f}; linear classifier on its last map {acc_lin:.3f})",
          ["block 0 + pool (8x8)", "block 1 + pool (4x4)", "last map (4x4)", "pooled (global mean)"], rows)

    names = list(summary) + ["CNN last map", "CNN pooled"]
    print("\nSummary: relative change of the final representation Φ")
    print("| perturbation | input | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for label in perturbed:
        values = [summary[n][0][label][1][-1] for n in summary] + [rows[label][1][2], rows[label][1][3]]
        print(f"| {label} | {INPUT[label]:.4f} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    print("| test accuracy | |" + " | ".join(f"{summary[n][1]:.3f}" for n in summary) + f" | {acc:.3f} | {acc:.3f} |")
    d1 = "deform 1px"
    print("\nratio / ‖∇τ‖∞ for the 1 px deformation (‖∇τ‖∞ = %.3f): " % perturbed[d1][1]
          + ", ".join(f"{n} {summary[n][0][d1][1][-1] / perturbed[d1][1]:.3f}" for n in summary))
    print("noise / deformation ratio of Φ's change: "
          + ", ".join(f"{n} {summary[n][0]['noise = deform 1px'][1][-1] / summary[n][0][d1][1][-1]:.2f}"
                      for n in summary)
          + f", CNN last map {rows['noise = deform 1px'][1][2] / rows[d1][1][2]:.2f}")
    rotation(xtr, ytr, xte, yte, probe)
    print(f"\n{time.perf_counter() - started:.0f} s")


def rotation(xtr, ytr, xte, yte, probe):
    """rot90 group pooling: relative change of Φ (global mean over cells and orientations) under rot90 of
    the input, with and without the group, at 16x16 (pooling grids not symmetric: (16 − 1) mod 2 ≠ 0) and
    at 17x17 (one zero row and column added: exact up to float32 rounding)."""
    print("\nrot90 (σ = 1, global mean readout): relative change of Φ under rot90 of the input; test accuracy")
    print("| group | size | rot90 change | test accuracy |")
    print("|---|---|---|---|")
    for size in (16, 17):
        pad = (lambda x: F.pad(x, (0, 1, 0, 1))) if size == 17 else (lambda x: x)  # noqa: E731
        for group in ("none", "rot90"):
            torch.manual_seed(0)
            model = build_ckn(1, size, size, 10, hidden_size=32, num_layers=2, pool_sigma=1.0, readout="mean",
                              group=group).eval()
            with torch.no_grad():
                model.fit_anchors(pad(xtr), generator=torch.Generator().manual_seed(0))
                reps = lambda x: model.representations(x)[-1:]  # noqa: E731
                change = ratios(reps, pad(probe), torch.rot90(pad(probe), 1, (-2, -1)))[0]
                acc = linear_accuracy(model.representations(pad(xtr))[-1], ytr,
                                      model.representations(pad(xte))[-1], yte)
            print(f"| {group} | {size}x{size} | {change:.2e} | {acc:.3f} |")


if __name__ == "__main__":
    main()
