"""Does Tagger's claim show in direction here? Grouping accuracy rises across iterations, far above random masks.

Greff et al. (2016), shapes: trained without any labels (denoising only), Tagger's masks group the pixels by object
— the AMI between ``argmax_k m_k`` and the objects rises over the iterations (to ~0.98 after 3 iterations with the
full Ladder after 100 epochs of 50k images) — and random masks score ~0.

    python benchmarks/tagger_claims.py [--steps 2000] [--images 5000] [--iterations 3] [--eval-iterations 5]
        [--hidden 500] [--top 250] [--batch-size 32] [--lr 0.001] [--threads 1] [--seed 0] [--checkpoint T.pt]

Trains the ``tagger`` engine with the shared training loop (``lstmviz.engines.training.train``: Adam, the engine's
own denoising cost, bit-flip noise η = 0.2, K = 4 groups) on the ``shapes`` train split, then reports on its
**test** split (eval mode: clean input, the saved seeded initial masks), per iteration ``t``:

- ``AMI``: the mean over images of the AMI between ``argmax_k m_k`` and the objects over the pixels of exactly one
  object (``lstmviz.engines.vision.grouping``), with its standard error; ``t = 0`` is the initial random masks —
  the **random-mask baseline** (its expectation is 0 by construction of AMI);
- ``up``: the share of images whose AMI at ``t`` is above their AMI at ``t − 1``;
- ``cost``: the mean denoising cross-entropy of ``Σ_k m_k z_k`` against the clean image (nats per pixel).

``--checkpoint T.pt`` measures a trained checkpoint instead (``lstmviz train tagger --steps 2000 --out T.pt``
trains the same model as the defaults here: the same data, seed, settings and thread count give the same weights).
With ``--eval-iterations`` > ``--iterations`` the trained (tied) mapping is also run for more iterations than it
was trained for (the same weights, a longer unroll). Prints the ratio of the last trained iteration's AMI to the
first's and the margin over the random baseline in standard errors, and, for scale, the AMI of a label-free heuristic
that needs no training (each 8-connected component of the on pixels is one group: right wherever the shapes do
not touch). Times are never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lstmviz.datasets.images.shapes import build as build_shapes
from lstmviz.engines.checkpoint import load_checkpoint
from lstmviz.engines.training import train


def components_ami(data) -> np.ndarray:
    """Per image, the AMI of a label-free heuristic: each 8-connected component of the on pixels is a group."""
    from scipy import ndimage

    from lstmviz.engines.vision.grouping import adjusted_mutual_info

    out = np.full(len(data), np.nan)
    for i in range(len(data)):
        parts, _ = ndimage.label(data.images[i, 0] > 0.5, structure=np.ones((3, 3)))
        scored = data.masks[i] > 0
        if scored.any():
            out[i] = adjusted_mutual_info(data.masks[i][scored], parts[scored])
    return out


def unrolled(model, iterations: int):
    """The same weights with ``iterations`` tied iterations (a new model: the taps are per iteration)."""
    from lstmviz.engines.vision.tagger import Tagger

    longer = Tagger(model.channels, model.height, model.width, model.groups, iterations=iterations,
                    hidden_size=model.hidden_size, top_size=model.top_size, noise=model.noise, z_init=model.z_init,
                    init_seed=model.init_seed)
    longer.load_state_dict(model.state_dict())
    return longer.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--eval-iterations", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--top", type=int, default=250)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", type=Path, help="measure this trained tagger checkpoint instead of training one")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train_split = build_shapes("train", images=args.images)
    valid_split = build_shapes("valid", images=args.images)
    test_split = build_shapes("test", images=args.images)
    print(f"shapes: {len(train_split)} train / {len(test_split)} test images of 20x20, K = 4 groups; "
          f"tagger T = {args.iterations}, hidden {args.hidden}, top {args.top}, {args.steps} Adam steps of "
          f"{args.batch_size} (lr {args.lr}), seed {args.seed}, {args.threads} thread(s)")
    if args.checkpoint is not None:  # measure a trained model (e.g. `lstmviz train tagger --steps 2000 --out t.pt`)
        model, meta = load_checkpoint(args.checkpoint)
        print(f"checkpoint {args.checkpoint}: {meta['step']} steps, config {meta['config']}, dataset options "
              f"{meta.get('dataset_options')}")
    else:
        model = None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tagger.pt"
        started = time.perf_counter()
        if model is not None:
            metrics = None
        else:
            metrics = train("tagger", train_split, valid_split, out=out,
                            config={"iterations": args.iterations, "hidden_size": args.hidden, "top_size": args.top},
                            steps=args.steps, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                            eval_every=0, threads=args.threads)
            model, _ = load_checkpoint(out)
        seconds = time.perf_counter() - started
    if metrics is not None:
        print(f"trained in {seconds:.0f} s; final train cost {metrics['train_loss']:.4f}, valid cost "
              f"{metrics['valid_loss']:.4f}")
    runs = [(args.iterations, model)]
    if args.eval_iterations > args.iterations:
        runs.append((args.eval_iterations, unrolled(model, args.eval_iterations)))
    for iterations, m in runs:
        measures = {}
        m.eval()
        images = torch.from_numpy(test_split.images.copy())
        masks = torch.from_numpy(test_split.masks.copy())
        for start in range(0, len(images), 256):
            for name, values in m.item_measures(images[start:start + 256], {"mask": masks[start:start + 256]}).items():
                measures.setdefault(name, []).append(values)
        measures = {name: np.concatenate(v) for name, v in measures.items()}
        title = "trained unroll" if iterations == args.iterations else "longer unroll, same weights"
        print(f"\n{title} (T = {iterations}), test split, {len(test_split)} images:")
        print(f"  {'t':>3}  {'AMI':>7} {'± sem':>7}  {'up':>6}  {'cost':>7}")
        previous = None
        for t in range(iterations + 1):
            ami = measures[f"ami_iter{t}"]
            ok = np.isfinite(ami)
            sem = ami[ok].std(ddof=1) / np.sqrt(ok.sum())
            up = "" if previous is None else f"{np.mean(ami[ok] > previous[ok]):6.1%}"
            print(f"  {t:>3}  {ami[ok].mean():7.3f} {sem:7.3f}  {up:>6}  {measures[f'cost_iter{t}'].mean():7.4f}"
                  f"   {'<- random-mask baseline' if t == 0 else ''}")
            previous = ami
        if iterations == args.iterations:
            first = np.nanmean(measures["ami_iter1"])
            last = np.nanmean(measures[f"ami_iter{iterations}"])
            base = measures["ami_iter0"]
            ok = np.isfinite(base)
            margin = (last - base[ok].mean()) / (base[ok].std(ddof=1) / np.sqrt(ok.sum()))
            print(f"  AMI after iteration {iterations} / after iteration 1: {last / first:.2f}x; "
                  f"above the random-mask baseline by {last - base[ok].mean():.3f} ({margin:.0f} baseline sems)")
            parts = components_ami(test_split)
            print(f"  for scale, a label-free heuristic (8-connected components of the on pixels as groups): AMI "
                  f"{np.nanmean(parts):.3f}")


if __name__ == "__main__":
    main()
