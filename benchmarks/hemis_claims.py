"""Does HeMIS's claim show in direction here? Graceful degradation with missing modalities vs early fusion.

Havaei et al. (2016): a HeMIS network trained with random modality dropping segments with any subset of the
modalities and degrades gracefully as modalities go missing, far better than imputing the missing ones
(mean-filling) in a network trained with all of them; with every modality present the two are similar.

    python benchmarks/hemis_claims.py [--steps 2500] [--curriculum 500] [--hidden 16] [--front 32] [--drop-max 0.5] [--batch-size 32]
        [--threads 1] [--seed 0] [--seeds 1] [--data-seed 0]

Data: the 4-modality digits (``lstmviz.datasets.images.modalities``: noisy, blurred, Sobel edges, inverted with a
bias field; 11 pixel classes: background, 1 + digit on stroke pixels), train split to train, test split to report.
Models, same optimiser (Adam, lr 3e-3), batch size, steps and seed:

- ``hemis``: the engine (``hidden_size 16``, ``front_size 32``: its defaults), trained by its own ``loss`` (random non-empty
  subsets per example, curriculum from all modalities to a drop probability ``--drop-max`` per modality in
  ``--curriculum`` steps; 0.5 would make the 15 subsets equally likely);
- ``early fusion``: the 4 modalities as 4 input channels of one back-end (two 3×3 convs of 32 = 2·16 channels, so
  the front-end sees as many channels as HeMIS's ``[μ, s²]``), then the same dilated front-end and 1×1
  classifier; trained with every modality present. At test time a missing modality is filled with **zeros**
  (``EF zeros``) or with **its per-pixel mean image over the training split** (``EF mean``, mean-filling).

Metrics on the test split, per subset of present modalities (``+`` present, ``.`` missing, order
noisy/blurred/edges/inverted):

- ``Dice``: per image, the mean over the digit classes (1..10, background excluded) present in the target **or**
  the prediction of ``2|P_c ∩ T_c| / (|P_c| + |T_c|)``; an image where neither has a digit class counts 1 (never
  happens: every image has a digit); then the mean over images. A stroke labelled with the wrong digit scores 0
  for both classes involved, so the number measures segmentation and naming together.
- ``acc``: the share of pixels (all 11 classes) whose arg-max class is the target.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lstmviz.datasets.images.modalities import MODALITIES, NUM_CLASSES, modality_split
from lstmviz.engines.vision.hemis import build

SUBSETS = [s for s in itertools.product((True, False), repeat=len(MODALITIES)) if any(s)]


class EarlyFusion(nn.Module):
    """All modalities as input channels: two 3×3 convs, then HeMIS's dilated front-end and 1×1 classifier."""

    def __init__(self, channels: int, num_classes: int, width: int = 16, front: int = 16):
        super().__init__()
        self.back = nn.ModuleList([nn.Conv2d(channels, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1)])
        self.front = nn.ModuleList([nn.Conv2d(width, front, 3, padding=2, dilation=2),
                                    nn.Conv2d(front, front, 3, padding=4, dilation=4)])
        self.classifier = nn.Conv2d(front, num_classes, 1)

    def forward(self, x):
        for conv in (*self.back, *self.front):
            x = conv(x).relu()
        return self.classifier(x)


def dice_and_accuracy(logits: torch.Tensor, masks: torch.Tensor) -> tuple[float, float]:
    pred = logits.argmax(1)
    acc = float((pred == masks).float().mean())
    scores = []
    for p, t in zip(pred, masks):
        per_class = []
        for c in range(1, NUM_CLASSES):
            pc, tc = p == c, t == c
            total = int(pc.sum() + tc.sum())
            if total:
                per_class.append(2.0 * int((pc & tc).sum()) / total)
        scores.append(float(np.mean(per_class)) if per_class else 1.0)
    return float(np.mean(scores)), acc


def train(model, loss_fn, images, masks, args) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    order = np.zeros(0, np.int64)
    model.train()
    start = time.perf_counter()
    for _ in range(args.steps):
        if len(order) < args.batch_size:
            order = np.concatenate([order, rng.permutation(len(images))])
        idx, order = torch.from_numpy(order[:args.batch_size]), order[args.batch_size:]
        loss = loss_fn(images[idx], masks[idx])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    model.eval()
    return time.perf_counter() - start


def run_seed(seed: int, data: tuple, args) -> list[tuple]:
    """Train both models with ``seed``, print their table, return ``(|K|, hemis, ef zeros, ef mean)`` per subset."""
    x_train, m_train, x_test, m_test = data
    train_mean = x_train.mean(0)  # [4, 16, 16]: per-pixel mean image of each modality
    args.seed = seed
    torch.manual_seed(seed)
    hemis = build(len(MODALITIES), 16, 16, NUM_CLASSES, hidden_size=args.hidden, front_size=args.front,
                  curriculum_steps=args.curriculum, drop_max=args.drop_max)
    t_hemis = train(hemis, lambda x, m: hemis.loss(x, {"mask": m})[0], x_train, m_train, args)
    torch.manual_seed(seed)
    fusion = EarlyFusion(len(MODALITIES), NUM_CLASSES, width=2 * args.hidden, front=args.front)
    t_fusion = train(fusion, lambda x, m: F.cross_entropy(fusion(x), m), x_train, m_train, args)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    print(f"seed {seed}: {args.steps} steps of {args.batch_size}, Adam lr {args.lr}, {args.threads} torch thread(s); "
          f"hemis (drop_max {args.drop_max}, ramp {args.curriculum} steps) {t_hemis:.1f} s ({count(hemis)} "
          f"parameters), early fusion {t_fusion:.1f} s ({count(fusion)} parameters); test split: {len(x_test)} images")
    rows = []
    with torch.no_grad():
        for subset in SUBSETS:
            keep = torch.tensor(subset)[None, :, None, None]
            zeros = torch.where(keep, x_test, torch.zeros(()))
            meaned = torch.where(keep, x_test, train_mean[None])
            rows.append((sum(subset), dice_and_accuracy(hemis(x_test, subset), m_test),
                         dice_and_accuracy(fusion(zeros), m_test), dice_and_accuracy(fusion(meaned), m_test)))
    print_table(rows)
    return rows


def print_table(rows: list[tuple]) -> None:
    header = f"{'present':<10}{'#':>3} | {'HeMIS Dice':>10} {'acc':>6} | {'EF zeros Dice':>13} {'acc':>6} | " \
             f"{'EF mean Dice':>12} {'acc':>6}"
    print()
    print(header)
    print("-" * len(header))
    for subset, (n, h, z, f) in zip(SUBSETS, rows):
        name = "".join("+" if s else "." for s in subset)
        print(f"{name:<10}{n:>3} | {h[0]:>10.3f} {h[1]:>6.3f} | {z[0]:>13.3f} {z[1]:>6.3f} | {f[0]:>12.3f} {f[1]:>6.3f}")
    print("-" * len(header))
    for label, sel in [(f"mean |K|={n}", [r for r in rows if r[0] == n]) for n in (4, 3, 2, 1)] + [("mean all 15", rows)]:
        m = [np.mean([r[i][j] for r in sel]) for i in (1, 2, 3) for j in (0, 1)]
        print(f"{label:<13} | {m[0]:>10.3f} {m[1]:>6.3f} | {m[2]:>13.3f} {m[3]:>6.3f} | {m[4]:>12.3f} {m[5]:>6.3f}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--curriculum", type=int, default=500, help="hemis: steps of the ramp from all modalities")
    parser.add_argument("--drop-max", type=float, default=0.5, help="hemis: drop probability after the ramp")
    parser.add_argument("--hidden", type=int, default=16, help="hemis: channels per back-end (early fusion: twice)")
    parser.add_argument("--front", type=int, default=32, help="front-end channels (both models)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="the first training seed (init, batches, subsets)")
    parser.add_argument("--seeds", type=int, default=1, help="train with seed, seed+1, ...; then print the mean")
    parser.add_argument("--data-seed", type=int, default=0, help="the data's split and noise (fixed across seeds)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x_train, m_train, _ = (torch.from_numpy(a) for a in modality_split("train", seed=args.data_seed))
    x_test, m_test, _ = (torch.from_numpy(a) for a in modality_split("test", seed=args.data_seed))
    data = (x_train, m_train, x_test, m_test)
    runs = [run_seed(seed, data, args) for seed in range(args.seed, args.seed + args.seeds)]
    if len(runs) > 1:
        print(f"mean over {len(runs)} seeds:")
        print_table([(runs[0][i][0], *(tuple(np.mean([run[i][m][j] for run in runs]) for j in (0, 1))
                                       for m in (1, 2, 3))) for i in range(len(SUBSETS))])


if __name__ == "__main__":
    main()
