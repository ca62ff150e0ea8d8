"""cnmm (Ruiz & Verbeek 2019, reconstruction) on the 8x8 digits: one trained mixture, many accuracy–FLOPs points.

Trains one CNMM (dense two-scale DAG, 12 gated edges, hidden 16) with relaxed-Bernoulli gates and the FLOPs
penalty, then sweeps the pruning threshold over the learned edge probabilities (no re-training) and prints, per
distinct live-edge set, the multiply-adds per image (``model.flops()``, checked against the multiply-adds the
convolutions actually run, counted by forward hooks) and the test accuracy with the expectation gates (``p_e`` on
the live edges) and with hard gates (1 on the live edges: one deterministic CNN). Then, for ``--compare`` of those operating
points (spread evenly in log MACs; the cheapest and the full network included), it trains the *same* sub-network independently from scratch
(hard gates fixed, cross-entropy only, same steps), and three plain ``cnn`` engines (3 blocks) at widths chosen to
bracket the range of FLOPs. Direction to show: one CNMM's pruned operating points are close in accuracy to the
individually trained networks of the same cost. One torch thread; test split of the ``digits`` dataset.

    python benchmarks/cnmm_claims.py [--steps 1000] [--cost 0.5] [--seed 0] [--compare 4] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lstmviz.datasets.images.digits import build_digits
from lstmviz.engines.families.image import describe_dataset
from lstmviz.engines.families.image.objective import stack_split
from lstmviz.engines.vision.cnmm import build as build_cnmm
from lstmviz.engines.vision.cnn import build as build_cnn


def split(name):
    ds = build_digits(name)
    images, target, _ = stack_split(ds, describe_dataset(ds), name)
    return torch.from_numpy(images), torch.from_numpy(target)


def train(model, x, y, steps, seed, lr=3e-3, batch=64, gates=None):
    """Adam; ``model.loss`` (relaxed gates + FLOPs penalty) unless ``gates`` fixes the sub-network (cross-entropy)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=g)
        if gates is not None:
            loss = F.cross_entropy(model(x[idx], gates=gates), y[idx])
        elif hasattr(model, "loss"):
            loss, _ = model.loss(x[idx], {"target": y[idx], "targets": None})
        else:
            loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    model.eval()
    return model


@torch.no_grad()
def accuracy(model, x, y, gates=None):
    model.eval()
    logits = model(x) if gates is None else model(x, gates=gates)
    return float((logits.argmax(1) == y).float().mean())


def counted_macs(model, x) -> int:
    """Multiply-adds per image that the model's Conv2d and Linear modules actually run (forward hooks)."""
    total = [0]

    def hook(module, args, out):
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total[0] += out[0].numel() * k
        else:
            total[0] += out[0].numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(x[:1])
    finally:
        for h in handles:
            h.remove()
    return total[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--cost", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="another cnmm hyperparameter, e.g. --set init_logit=0 (numbers)")
    ap.add_argument("--compare", type=int, default=4, help="operating points to train independently (spread by MACs)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    xtr, ytr = split("train")
    xte, yte = split("test")
    print(f"digits: {len(xtr)} train, {len(xte)} test images, 8x8; {args.steps} Adam steps (lr 3e-3, batch 64) each; "
          f"one torch thread")
    started = time.perf_counter()
    cfg = dict(hidden_size=16, num_layers=3, cost=args.cost, anneal_steps=args.steps)
    for item in args.set:
        key, value = item.split("=", 1)
        cfg[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    print("cnmm config:", cfg)
    torch.manual_seed(args.seed)  # every network's initialisation is seeded too
    model = train(build_cnmm(1, 8, 8, 10, **cfg), xtr, ytr, args.steps, args.seed)
    t_cnmm = time.perf_counter() - started
    p = model.edge_probs().detach()
    print(f"\nCNMM trained in {t_cnmm:.1f}s (cost λ={args.cost}); edge probabilities p_e (edge: src->dst, MACs):")
    for e, ((a, b), macs) in enumerate(zip(model.dag.edges, model.edge_flops)):
        print(f"  e{e:<2d} {a}->{b}  {macs:>7,d}  p={float(p[e]):.3f}")
    full = model.flops()
    print(f"\nunpruned expectation output: {full:,d} MACs, test accuracy {accuracy(model, xte, yte):.4f}")

    print("\nthreshold sweep (no re-training):")
    print(f"{'threshold':>10} {'live edges':>11} {'MACs':>9} {'of full':>8} {'acc (p gates)':>14} {'acc (hard)':>11}")
    points, seen = [], set()
    for t in sorted({0.0, *[float(v) for v in p]}):
        mask = model.prune(t)
        key = tuple(mask.tolist())
        if key in seen:
            continue
        seen.add(key)
        soft = accuracy(model, xte, yte)
        model.prune(t, hard=True)
        hard = accuracy(model, xte, yte)
        macs = model.flops()
        assert counted_macs(model, xte) == macs, "model.flops() disagrees with the multiply-adds actually run"
        points.append((macs, key, soft, hard))
        print(f"{t:>10.3f} {sum(key):>11d} {macs:>9,d} {macs / full:>8.3f} {soft:>14.4f} {hard:>11.4f}")
        if not any(key):
            break
    model.unprune()

    live = sorted((pt for pt in points if any(pt[1])), key=lambda pt: pt[0])
    # targets spread evenly in log MACs between the cheapest and the full network; the nearest point to each
    lo, hi = np.log(live[0][0]), np.log(live[-1][0])
    targets = [lo + (hi - lo) * i / max(1, args.compare - 1) for i in range(args.compare)]
    picks = sorted({min(range(len(live)), key=lambda k: abs(np.log(live[k][0]) - t)) for t in targets})
    chosen = [live[i] for i in picks]
    print("\nthe same sub-networks trained independently (hard gates fixed, cross-entropy only, same steps):")
    print(f"{'MACs':>9} {'edges':>6} {'CNMM (p gates)':>15} {'CNMM (hard)':>12} {'independent':>12}")
    t0 = time.perf_counter()
    for macs, key, soft, hard in chosen:
        torch.manual_seed(args.seed + 1)
        fresh = build_cnmm(1, 8, 8, 10, **cfg)
        gates = torch.tensor(key, dtype=torch.float32)
        fresh.set_mask(key, hard=True)
        train(fresh, xtr, ytr, args.steps, args.seed + 1, gates=gates)
        ind = accuracy(fresh, xte, yte)
        edges = [e for e, k in enumerate(key) if k]
        print(f"{macs:>9,d} {len(edges):>6d} {soft:>15.4f} {hard:>12.4f} {ind:>12.4f}   edges {edges}")
    print("\nplain `cnn` engines (3 conv blocks, 2x2 max pools after the first two), widths matching those MACs, "
          "trained independently:")
    print(f"{'hidden':>7} {'MACs':>9} {'accuracy':>9}")
    widths = {h: counted_macs(build_cnn(1, 8, 8, 10, hidden_size=h, num_layers=3), xte) for h in range(1, 65)}
    for macs, *_ in chosen:
        hidden = min(widths, key=lambda h: abs(widths[h] - macs))
        torch.manual_seed(args.seed + 2)
        cnn = train(build_cnn(1, 8, 8, 10, hidden_size=hidden, num_layers=3), xtr, ytr, args.steps, args.seed + 2)
        print(f"{hidden:>7d} {widths[hidden]:>9,d} {accuracy(cnn, xte, yte):>9.4f}")
    print(f"\nindependent trainings took {time.perf_counter() - t0:.1f}s; total {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
