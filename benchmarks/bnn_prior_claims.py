"""Does Vladimirova et al.'s claim show in direction here? Unit priors of Gaussian-weight ReLU MLPs get heavier
tailed with depth (sub-Weibull, θ = l/2), and lighter (towards Gaussian) as the width grows.

    python benchmarks/bnn_prior_claims.py [--draws 100000] [--widths 1,3,10,100] [--layers 5] [--no-train]

For a fixed input (test digit 0 of scikit-learn's digits, 8x8) and He-scaled weights N(0, 2/fan_in), no
biases, it samples ``--draws`` prior draws of every layer's pre-activations (``prior_unit_samples``,
method "rows": exact in law for one input, O(width) per layer and draw; cross-checked against method
"weights", which samples the weight matrices, at widths 1 and 3), and prints per width and layer l:

- the excess kurtosis (moments about 0) ± its standard error (20 batches of draws), next to the closed
  form 3 (1 + 5/n)^(l-1) − 3 derived in engines/vision/bnn_prior.py;
- the log-moment slope (least squares of log ||h||_k on log k, k = 2..8), next to its exact value at
  width 1 for the same orders and next to the theorem's l/2 (the slope's limit as k grows);
- the Weibull-plot tail parameter θ̂ (1 / slope of log(−log Ŝ(t)) on log t over Ŝ ∈ [30/N, 0.1]);
- ratios to layer 1 (the Gaussian baseline of the same run): slope_l / slope_1 and θ̂_l / θ̂_1 against l.

Then (unless --no-train) trains ``bnn-prior`` on digits twice with the engine's defaults: the head only on
the frozen prior draw (the default) and every layer by Adam from the prior draw (train_hidden=true, the
baseline), and prints both validation accuracies.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lstmviz.datasets.images.digits import build_digits
from lstmviz.engines.vision.bnn_prior import (
    build, excess_kurtosis, kurtosis_closed_form, moment_slope, prior_unit_samples, weibull_tail_theta,
    width1_moment_slope,
)


def table(width: int, layers: int, draws: int, image, seed: int, method: str = "rows") -> list[dict]:
    model = build(1, 8, 8, 10, hidden_size=width, num_layers=layers)
    samples = prior_unit_samples(model, image, draws, seed=seed, method=method, include_output=False)
    rows = []
    for layer, values in enumerate(samples.values(), start=1):
        v = values.numpy()
        k, se = excess_kurtosis(v)
        rows.append({"layer": layer, "excess": k, "se": se, "closed": kurtosis_closed_form(layer, width) - 3,
                     "slope": moment_slope(v), "slope_w1": width1_moment_slope(layer),
                     "theta_hat": weibull_tail_theta(v)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=100_000)
    parser.add_argument("--widths", default="1,3,10,100")
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-train", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    digits = build_digits("test")
    image = torch.from_numpy(digits.images[0].copy()).double()
    print(f"fixed input: test digit 0 (class {int(digits.targets[0])}); He prior N(0, 2/fan_in), no bias; "
          f"{args.draws} draws, seed {args.seed}")
    for width in [int(w) for w in args.widths.split(",")]:
        start = time.perf_counter()
        rows = table(width, args.layers, args.draws, image, args.seed)
        took = time.perf_counter() - start
        print(f"\nwidth {width} ({took:.1f} s)")
        print(f"  {'l':>2} {'excess kurtosis':>20} {'closed form':>11} {'slope k=2..8':>12} {'(w=1 exact)':>11} "
              f"{'l/2':>4} {'theta_hat':>9} {'slope/slope1':>12} {'theta/theta1':>12}")
        for r in rows:
            print(f"  {r['layer']:>2} {r['excess']:>11.3f} ± {r['se']:<6.3f} {r['closed']:>11.3f} {r['slope']:>12.3f} "
                  f"{r['slope_w1']:>11.3f} {r['layer'] / 2:>4.1f} {r['theta_hat']:>9.3f} "
                  f"{r['slope'] / rows[0]['slope']:>12.2f} {r['theta_hat'] / rows[0]['theta_hat']:>12.2f}")
    print("\ncross-check, method 'weights' (the weight matrices sampled) against 'rows', excess kurtosis per layer:")
    for width in (1, 3):
        a = table(width, min(args.layers, 4), args.draws, image, args.seed + 1, method="weights")
        b = table(width, min(args.layers, 4), args.draws, image, args.seed + 2, method="rows")
        print(f"  width {width}: weights " + ", ".join(f"{r['excess']:.2f}±{r['se']:.2f}" for r in a)
              + " | rows " + ", ".join(f"{r['excess']:.2f}±{r['se']:.2f}" for r in b)
              + " | closed " + ", ".join(f"{r['closed']:.2f}" for r in a))
    if args.no_train:
        return
    from lstmviz.datasets.registry import load_dataset
    from lstmviz.engines.training import train

    train_data, valid_data = load_dataset("digits", split="train"), load_dataset("digits", split="valid")
    print("\ndigits, engine defaults (hidden_size 64, num_layers 4, 600 Adam steps of 64 images):")
    with tempfile.TemporaryDirectory() as tmp:
        for label, config in (("head only on the frozen prior draw (default)", {}),
                              ("every layer, from the prior draw (train_hidden=true)", {"train_hidden": True})):
            start = time.perf_counter()
            metrics = train("bnn-prior", train_data, valid_data, out=Path(tmp) / "m.pt", config=config, threads=1)
            print(f"  {label}: valid accuracy {metrics['valid_accuracy']:.3f}, valid loss {metrics['valid_loss']:.3f} "
                  f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
