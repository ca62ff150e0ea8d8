"""DP-SGD (Abadi et al. 2016, arXiv:1607.00133): validation accuracy against ε on scikit-learn's digits.

Every run is ``lstmviz train cnn --dataset digits --train privacy=dpsgd ...`` through the shared training loop
(``lstmviz.engines.training.train``): the ``cnn`` engine (``--hidden`` channels, ``--layers`` conv blocks),
SGD, Poisson sampling at rate ``--rate`` over the 1,078 training images for ``--epochs`` epochs
(steps = epochs / rate), δ = 1e-5, and the same seed (initial weights) for every run. Two sweeps:

- the noise multiplier σ ∈ ``--sigmas`` at clip C = ``--clip`` (ε falls as σ grows);
- the clip C ∈ ``--clips`` at σ = ``--sigma`` (the same ε for every C; C = ``--clip`` is the first sweep's row).

Plus the non-private reference: the same engine, SGD, fixed batches of the expected lot size, the same steps.
Printed: ε (the run's accountant), the final validation accuracy and loss, the mean fraction of clipped
examples, and the seconds per step against the non-private step.

Claims in direction (the paper's MNIST results; the reference's digits experiment): accuracy degrades
gracefully as ε shrinks; the clip C has an interior optimum. Reported as it comes out.

    python benchmarks/dpsgd_claims.py [--epochs 30] [--rate 0.05] [--sigmas 0.7 1 2 4] [--clips 0.5 2 8 32]
        [--lr 0.5] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lstmviz.datasets import load_dataset
from lstmviz.engines.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=30)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.7, 1.0, 2.0, 4.0])
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--clips", type=float, nargs="+", default=[0.5, 2.0, 8.0, 32.0])
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    train_data, valid_data = load_dataset("digits", "train"), load_dataset("digits", "valid")
    steps = max(1, round(args.epochs / args.rate))
    lot = round(args.rate * len(train_data))
    common = dict(steps=steps, lr=args.lr, optimizer="sgd", eval_every=0, seed=args.seed, threads=args.threads,
                  config={"hidden_size": args.hidden, "num_layers": args.layers})
    print(f"cnn (hidden {args.hidden}, {args.layers} blocks) on digits: {len(train_data)} training images, "
          f"q = {args.rate} (expected lot {lot}), {steps} steps ({args.epochs:g} epochs), lr {args.lr}, SGD, delta 1e-5")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.pt"

        def one(**settings) -> tuple[dict, float]:
            tick = time.perf_counter()
            metrics = train("cnn", train_data, valid_data, out=out, **common, **settings)
            return metrics, (time.perf_counter() - tick) / steps

        base, base_seconds = one(batch_size=lot, clip=0)
        print(f"\n  non-private: valid accuracy {base['valid_accuracy']:.3f}, valid loss {base['valid_loss']:.3f}, "
              f"{1000 * base_seconds:.1f} ms/step")

        def row(label: str, metrics: dict, seconds: float) -> None:
            p = metrics["privacy"]
            print(f"  {label:14s} eps {metrics['dp_epsilon']:7.2f}  valid accuracy {metrics['valid_accuracy']:.3f}  "
                  f"valid loss {metrics['valid_loss']:.3f}  clipped {p['clipped_fraction_mean']:.2f}  "
                  f"{seconds / base_seconds:.1f}x the non-private step")

        print(f"\n  sweep of sigma at C = {args.clip}:")
        for sigma in args.sigmas:
            row(f"sigma {sigma:g}", *one(privacy="dpsgd", dp_rate=args.rate, dp_noise=sigma, dp_clip=args.clip))
        print(f"\n  sweep of C at sigma = {args.sigma}:")
        for clip in args.clips:
            row(f"C {clip:g}", *one(privacy="dpsgd", dp_rate=args.rate, dp_noise=args.sigma, dp_clip=clip))


if __name__ == "__main__":
    main()
