"""Input-side attacks on the demo model: Szegedy's L-BFGS, PGD and HotFlip at a few positions of one item.

Prints, per position, the clean prediction, the smallest L-BFGS flip (l2 norm, new prediction, c, time),
whether PGD with the same budget flips at eps = r, 2r, 4r (r = max(l2 of L-BFGS, 1)), and HotFlip with its
top-10 first-order candidates verified and with every substitution verified. Measured numbers only;
nothing is asserted. The table in docs/analysis.md ("Adversarial inputs") comes from

    python benchmarks/attacks.py                      # item 0, positions 40, 90, 150
    python benchmarks/attacks.py --item 3 --positions 20,60
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets" / "demo" / "parens-lstm.h5"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recording", type=Path, default=DEMO)
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the recording's, or beside it")
    ap.add_argument("--item", type=int, default=0)
    ap.add_argument("--positions", default="40,90,150")
    args = ap.parse_args(argv)

    # lstmviz before torch: it sets the OpenMP wait policy that shared cores need
    from lstmviz.perturb import load_live_model
    from lstmviz.perturb.adversarial import attack_item
    from lstmviz.recording import open_recording

    import torch

    torch.set_num_threads(1)
    positions = [int(p) for p in args.positions.split(",")]
    with open_recording(args.recording) as rec:
        live = load_live_model(rec, args.checkpoint)
        vocab = rec.vocab
        print(f"{args.recording.name}: item {args.item}, positions {positions}; one torch thread")
        print("position | clean (p) | L-BFGS: l2 -> new (c, s) | PGD flips at r/2r/4r | HotFlip k=10 | HotFlip all")
        for p in positions:
            t0 = time.perf_counter()
            lb = attack_item(live, rec, args.item, p, method="lbfgs", taps=())
            t_lb = time.perf_counter() - t0
            r = max(lb.l2, 1.0) if lb.flipped else 1.0
            pgd = [attack_item(live, rec, args.item, p, method="pgd", eps=m * r, taps=()).flipped for m in (1, 2, 4)]
            hot10 = attack_item(live, rec, args.item, p, method="hotflip", taps=())
            t0 = time.perf_counter()
            hot = attack_item(live, rec, args.item, p, method="hotflip", k=None, taps=())
            t_hot = time.perf_counter() - t0
            clean = f"{vocab[lb.prediction_before]!r} ({lb.top_before_p[0]:.2f})"
            lbfgs = (f"{lb.l2:.2f} -> {vocab[lb.prediction_after]!r} (c={lb.details.get('c', float('nan')):.2g}, "
                     f"{t_lb:.0f} s)" if lb.flipped else f"no flip ({t_lb:.0f} s)")
            pgd_text = " / ".join("yes" if f else "no" for f in pgd)

            def hot_text(h, seconds=None):
                dl = h.loss_after - h.loss_before
                took = "" if seconds is None else f", {seconds:.1f} s"
                return f"{'flips' if h.flipped else 'no flip'}, loss {dl:+.2f} nats{took}"

            print(f"{p} | {clean} | {lbfgs} | {pgd_text} | {hot_text(hot10)} | {hot_text(hot, t_hot)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
