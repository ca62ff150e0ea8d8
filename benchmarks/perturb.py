"""What a perturbation costs, as a ratio to a plain forward of the same model on the same tokens.

On the bundled demo (assets/demo/parens-lstm.h5, a 2 x 128 LSTM on parens, 26 items of 200-255
tokens) and its checkpoint (found as the recording says: --checkpoint, the stored path, or
parens-lstm.pt beside the recording), in one run, alternating the configurations, best of --repeats:

  (a1) a plain forward of one item of 200 tokens (eval, no_grad, batch of one);
  (b1) ``perturb_item`` with an ablation (--tap, --units, all positions) on that item: the clean and
       the edited run as two rows of one batch, logits only (``taps=()``), dnll, KL and top-k;
  (c1) the same capturing every tap's Δ (what the panel's heatmaps need);
  (a2) a plain batched forward of all 26 items (one padded batch);
  (b2) ``perturb_items`` with the same ablation over all 26 items (batch_size 32: one padded batch of
       26 clean + 26 edited rows).

Goals: b1/a1 <= 1.5 and b2/a2 <= 1.5. Ratios by wall time. Measured numbers only; nothing is asserted.

    python benchmarks/perturb.py
    python benchmarks/perturb.py --recording /tmp/lstmviz-demo/parens-lstm.h5   # a demo made by make_demo.sh
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lstmviz.perturb import Perturbation, load_live_model, perturb_item, perturb_items
from lstmviz.perturb.run import pad
from lstmviz.recording import open_recording

ROOT = Path(__file__).resolve().parents[1]


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recording", default=str(ROOT / "assets" / "demo" / "parens-lstm.h5"))
    ap.add_argument("--checkpoint", help="the checkpoint, when it is not where the recording says")
    ap.add_argument("--tap", default="layer1/c")
    ap.add_argument("--units", default="3,17,40")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)

    with open_recording(args.recording) as rec:
        live = load_live_model(rec, args.checkpoint)
        lengths = np.diff(rec.item_offsets)
        item = int(np.argmin(np.abs(lengths - 200)))
        a, b = rec.item_range(item)
        one = torch.from_numpy(rec.token_ids(a, b))[None]
        every = pad([rec.token_ids(*rec.item_range(i)) for i in range(rec.n_items)])
        ablate = Perturbation(args.tap, "ablate", units=tuple(int(u) for u in args.units.split(",")))
        print(f"{rec.path.name}: {live.source}; item {item} ({len(one[0])} tokens); {rec.n_items} items padded "
              f"to {every.shape[1]}; torch {torch.__version__}, {torch.get_num_threads()} threads")
        print(f"perturbation: {ablate.describe()}")

        runs = {
            "a1": lambda: live.logits(one),
            "b1": lambda: perturb_item(live, rec, item, [ablate], taps=()),
            "c1": lambda: perturb_item(live, rec, item, [ablate]),
            "a2": lambda: live.logits(every),
            "b2": lambda: perturb_items(live, rec, ablate, batch_size=32),
        }
        for fn in runs.values():  # warm up (caches, allocator, the first resolve)
            fn()
        times = {name: [] for name in runs}
        for _ in range(3):  # alternate, so a busy moment of the machine hits every configuration
            for name, fn in runs.items():
                times[name].append(best(fn, max(1, args.repeats // 3)))
        t = {name: min(v) for name, v in times.items()}

    print(f"  (a1) plain forward, one item          {1e3 * t['a1']:8.1f} ms")
    print(f"  (b1) perturb_item, logits only         {1e3 * t['b1']:8.1f} ms   b1/a1 = {t['b1'] / t['a1']:.2f} "
          f"(goal <= 1.5)")
    print(f"  (c1) perturb_item, Δ of every tap      {1e3 * t['c1']:8.1f} ms   c1/a1 = {t['c1'] / t['a1']:.2f}")
    print(f"  (a2) plain batched forward, all items  {1e3 * t['a2']:8.1f} ms")
    print(f"  (b2) perturb_items, all items          {1e3 * t['b2']:8.1f} ms   b2/a2 = {t['b2'] / t['a2']:.2f} "
          f"(goal <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
