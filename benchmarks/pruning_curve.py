"""Predicted against measured loss change when pruning the demo model (Laurent et al. 2020, in direction).

Loads the demo LSTM (2 x 128 on parens) beside the demo recording -- ``assets/demo/parens-lstm.pt``, or
``--checkpoint PATH``; ``--train`` trains it first as ``assets/demo/make_demo.sh`` does (a few minutes) --
and, on the first ``--items`` items of the demo recording (mean next-token NLL), prunes for each fraction
the lowest-saliency units of a tap (structured, exact Hessian diagonal of the unit mask) and weights of a
parameter (unstructured, Hutchinson's estimator), ranked by magnitude, first-order Taylor, QM and OBD. It prints,
per method and fraction, the first-order (linear) and quadratic (QM) predictions and the measured ΔL.
Measured numbers only; nothing is asserted.

    python benchmarks/pruning_curve.py
    python benchmarks/pruning_curve.py --items 26 --tap layer1/c --parameter layers.1.weight_hh --samples 64
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets" / "demo"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recording", type=Path, default=DEMO / "parens-lstm.h5")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the recording's, or beside it")
    ap.add_argument("--train", action="store_true", help="train the demo model first (as make_demo.sh does)")
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--tap", default="layer1/c", help="'' to skip the units")
    ap.add_argument("--parameter", default="layers.1.weight_hh", help="'' to skip the weights")
    ap.add_argument("--samples", type=int, default=32, help="Hutchinson samples for the weights")
    ap.add_argument("--fractions", default="0.01,0.02,0.05,0.1,0.2,0.5")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lstmviz.perturb import load_live_model
    from lstmviz.perturb.pruning import pruning_curve_items
    from lstmviz.recording import open_recording

    checkpoint = args.checkpoint
    if args.train:
        checkpoint = Path(tempfile.mkdtemp()) / "parens-lstm.pt"
        subprocess.run([sys.executable, "-m", "lstmviz.cli", "train", "lstm", "--dataset", "parens", "--seed", "0",
                        "--out", str(checkpoint)], check=True)
    fractions = [float(f) for f in args.fractions.split(",")]
    with open_recording(args.recording) as rec:
        live = load_live_model(rec, checkpoint)
        items = list(range(min(args.items, rec.n_items)))
        print(f"model {live.source}; {len(items)} items of {args.recording.name}; torch threads {args.threads}")
        jobs = []
        if args.tap:
            jobs.append((args.tap, {"hessian": "exact"}))
        if args.parameter:
            jobs.append((args.parameter, {"hessian": "hutchinson", "samples": args.samples, "seed": 0}))
        for target, options in jobs:
            t0 = time.perf_counter()
            curve = pruning_curve_items(live, rec, items, target, fractions=fractions, **options)
            seconds = time.perf_counter() - t0
            what = "units of tap" if curve.kind == "units" else "weights of parameter"
            print(f"\n{what} {target} ({curve.size}); baseline L = {curve.baseline:.5f} nats; Hessian diagonal "
                  f"{curve.hessian}{' x %d' % args.samples if curve.hessian == 'hutchinson' else ''}; {seconds:.1f} s")
            print(f"{'method':>9} {'fraction':>8} {'pruned':>6} {'linear':>10} {'quadratic':>10} {'measured':>10}"
                  f" {'|lin-meas|':>10} {'|quad-meas|':>10}")
            for row in curve.to_table():
                lin, quad, meas = row["linear"], row["quadratic"], row["measured"]
                print(f"{row['method']:>9} {row['fraction']:>8.2f} {row['pruned']:>6d} {lin:>10.2e} {quad:>10.2e} "
                      f"{meas:>10.2e} {abs(lin - meas):>10.2e} {abs(quad - meas):>10.2e}")
            errs = {m: (np.abs(curve.linear[m] - curve.measured[m]), np.abs(curve.quadratic[m] - curve.measured[m]))
                    for m in curve.methods}
            better = sum(int(np.sum(q < lin)) for lin, q in errs.values())
            print(f"quadratic closer than linear in {better} of {len(curve.methods) * len(fractions)} cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
