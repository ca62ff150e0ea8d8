"""depth-sr (after Song, Dai & Qin) on ``depth-synth``: x4 depth super-resolution RMSE of bicubic, a joint
bilateral upsampler, a one-shot x4 CNN with (about) equal parameters, the progressive x2,x2 CNN, and the
progressive CNN followed by the colour-weighted refinement at several lambda, without and with texture inside
the colour image's regions, in one table.

Per condition (``texture`` off / on) the two CNNs are trained on that condition's training split (600 images,
Adam lr 1e-3 with cosine decay, batches of 32, MSE, refinement off; lr 3e-3 killed every ReLU of the one-shot
net's last hidden layer on the textured data once, so its residual stayed 0 and it scored exactly bicubic) and everything is measured on its test split (200 images): RMSE over all pixels and
over the pixels within 2 px of a depth discontinuity (the dataset's ``edge`` annotation), pooled over the split
(the root of the mean squared error). The joint bilateral upsampler (Kopf et al. 2007, written here) averages
the 5x5 low-resolution cells around each pixel with a spatial Gaussian (sigma_s = 1 low-resolution cell) times a
range Gaussian on the colour (the pixel's colour against the 4x4 block-mean colour of the cell; sigma_r picked
from 0.05 / 0.1 / 0.2 on the validation split). One thread.

    python benchmarks/depth_sr_claims.py [--steps 800] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from lstmviz.datasets.images.depth import build as build_depth
from lstmviz.engines.vision.depth_sr import build

LAMBDAS = (0.5, 2.0, 8.0)
SIGMA_C = 0.1


def joint_bilateral(images: np.ndarray, sigma_r: float, sigma_s: float = 1.0, radius: int = 2) -> np.ndarray:
    """``[N, 1, H, W]``: joint bilateral upsampling of the low-resolution depth (channel 3, 4x4 blocks) guided by
    the colour (channels 0-2) of ``images [N, 4, H, W]``."""
    n, _, h, w = images.shape
    colour = images[:, :3]
    low = images[:, 3].reshape(n, h // 4, 4, w // 4, 4).mean(axis=(2, 4))  # [N, h, w]
    block_colour = colour.reshape(n, 3, h // 4, 4, w // 4, 4).mean(axis=(3, 5))  # [N, 3, h, w]
    ys, xs = np.arange(h), np.arange(w)
    ty, tx = (ys - 1.5) / 4, (xs - 1.5) / 4  # each pixel's low-resolution coordinate
    cy, cx = ys // 4, xs // 4
    num = np.zeros((n, h, w))
    den = np.zeros((n, h, w))
    for dy in range(-radius, radius + 1):
        qy = np.clip(cy + dy, 0, h // 4 - 1)
        for dx in range(-radius, radius + 1):
            qx = np.clip(cx + dx, 0, w // 4 - 1)
            spatial = np.exp(-((ty - (cy + dy))[:, None] ** 2 + (tx - (cx + dx))[None] ** 2) / (2 * sigma_s ** 2))
            qc = block_colour[:, :, qy][:, :, :, qx]  # [N, 3, H, W]
            rng = np.exp(-((colour - qc) ** 2).sum(1) / (2 * sigma_r ** 2))
            wgt = spatial[None] * rng
            num += wgt * low[:, qy][:, :, qx]
            den += wgt
    return (num / np.maximum(den, 1e-300))[:, None].astype(np.float32)


def bicubic(images: np.ndarray) -> np.ndarray:
    low = torch.from_numpy(np.array(images[:, 3:4], np.float64))
    low = F.avg_pool2d(low, 4)
    return F.interpolate(low, scale_factor=4, mode="bicubic", align_corners=False).numpy()


def rmse(pred: np.ndarray, target: np.ndarray, edge: np.ndarray) -> tuple[float, float]:
    err = (pred - target)[:, 0] ** 2
    return float(np.sqrt(err.mean())), float(np.sqrt(err[edge].mean()))


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def train(model, images: np.ndarray, targets: np.ndarray, steps: int, seed: int) -> float:
    x, y = torch.from_numpy(np.array(images)), torch.from_numpy(np.array(targets))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=g)
        loss = F.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return float(loss.detach())


@torch.no_grad()
def predict(model, images: np.ndarray, lam: float = 0.0) -> np.ndarray:
    model.refine_lambda = lam
    out = model(torch.from_numpy(np.array(images, np.float64))).numpy()
    model.refine_lambda = 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows: dict[str, dict[bool, tuple[float, float]]] = {}
    counts = {}
    for texture in (False, True):
        split = {s: build_depth(s, texture=texture, seed=args.seed) for s in ("train", "valid", "test")}
        edge = {s: split[s].position["edge"].reshape(len(split[s]), 32, 32) > 0 for s in split}
        test_x, test_y = split["test"].images, split["test"].target_maps

        def put(name, pred):
            rows.setdefault(name, {})[texture] = rmse(pred, test_y, edge["test"])

        put("bicubic x4", bicubic(test_x))
        best = min((0.05, 0.1, 0.2), key=lambda s: rmse(joint_bilateral(split["valid"].images, s),
                                                            split["valid"].target_maps, edge["valid"])[0])
        put("joint bilateral upsampling", joint_bilateral(test_x, best))
        print(f"# texture={texture}: joint bilateral sigma_r = {best} (best of 0.05 / 0.1 / 0.2 on valid)")
        torch.manual_seed(args.seed)
        one = build(4, 32, 32, 1, hidden_size=14, num_layers=3, stages=1, sigma_c=SIGMA_C)
        torch.manual_seed(args.seed)
        prog = build(4, 32, 32, 1, hidden_size=16, num_layers=3, stages=2, sigma_c=SIGMA_C)
        counts = {"one-shot x4 CNN": params(one), "progressive x2,x2 CNN": params(prog)}
        for model in (one, prog):
            train(model, split["train"].images, split["train"].target_maps, args.steps, args.seed)
            model.double()
        put(f"one-shot x4 CNN ({counts['one-shot x4 CNN']} params)", predict(one, test_x))
        put(f"progressive x2,x2 CNN ({counts['progressive x2,x2 CNN']} params)", predict(prog, test_x))
        for lam in LAMBDAS:
            put(f"progressive + refinement lambda {lam:g} (sigma_c {SIGMA_C})", predict(prog, test_x, lam))
        print(f"# texture={texture}: done at {time.perf_counter() - start:.0f} s", flush=True)
    print(f"\ndepth-synth 32x32, x4, test split (200 images), trained {args.steps} steps per CNN, seed {args.seed}")
    print("RMSE in depth units ([0, 1]); 'edge' = pixels within 2 px of a depth discontinuity\n")
    head = f"{'method':58s} {'no texture':>11s} {'edge':>8s} {'texture':>9s} {'edge':>8s}"
    print(head)
    print("-" * len(head))
    for name, by in rows.items():
        a, b = by[False], by[True]
        print(f"{name:58s} {a[0]:11.4f} {a[1]:8.4f} {b[0]:9.4f} {b[1]:8.4f}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s (one thread)")


if __name__ == "__main__":
    main()
