"""See, Luong & Manning's NMT pruning claims, in direction, on ``translit`` (models_recurrent.md §15 (d)).

A seq2seq-attn teacher (2-layer LSTM) is trained on ``translit`` (or reused with ``--teacher``), then
pruned by each scheme (class-blind, class-uniform, class-distribution; engines/seq2seq/prune.py) at
fractions 0 .. 90 %, and measured on the validation split as pruned and after one retraining epoch with
the masks fixed (Adam 1e-3, batch 64). Measures: teacher-forced loss (nats per target token) and
``valid``, the share of greedy outputs that are a correct transliteration of their source (``translit``
has several correct outputs per source; see seq2seq_kd_claims.py). Claims: class-blind >= class-uniform;
40 % pruned ≈ no loss; retraining recovers most of the loss. Measured numbers only; nothing asserted.

    python benchmarks/nmt_pruning_claims.py                              # trains its teacher
    python benchmarks/nmt_pruning_claims.py --teacher /tmp/kd/teacher.pt # reuse one (e.g. --keep of the KD claims)
    python benchmarks/nmt_pruning_claims.py --quick
    python benchmarks/nmt_pruning_claims.py --teacher T.pt --fractions 0.8 --schemes class-blind --retrain-epochs 5
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from seq2seq_kd_claims import TEACHER, datasets, is_valid, train_model


def measure(model, dataset, batch: int = 100) -> tuple[float, float]:
    import torch

    from lstmviz.engines.families.seq2seq.api import batch_items
    from lstmviz.engines.families.seq2seq.objective import evaluate_pairs

    items = list(dataset)
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(items), batch):
            b = batch_items(items[start : start + batch])
            outputs += model.greedy(b.src, b.src_lengths)
    loss = evaluate_pairs(model, dataset.pairs(), batch, torch.device("cpu"), decode=False)["loss"]
    return loss, sum(is_valid(dataset, it, o) for it, o in zip(items, outputs)) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--items", type=int, default=2000, help="training pairs (one retraining epoch = these)")
    parser.add_argument("--teacher-steps", type=int, default=1500)
    parser.add_argument("--valid-items", type=int, default=200)
    parser.add_argument("--fractions", default="0,0.2,0.4,0.6,0.8,0.9")
    parser.add_argument("--schemes", default="class-blind,class-uniform,class-distribution")
    parser.add_argument("--retrain-epochs", type=float, default=1.0, help="retraining epochs (default 1)")
    parser.add_argument("--teacher", help="reuse this translit teacher checkpoint (max_length 6) instead of training")
    args = parser.parse_args()
    if args.quick:
        args.items, args.teacher_steps, args.valid_items, args.fractions = 600, 150, 60, "0,0.4,0.8"

    import torch

    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.seq2seq.prune import SCHEMES, apply_masks, magnitude_masks, retrain

    torch.set_num_threads(1)
    started = time.perf_counter()
    train, _, valid = datasets(args.items, args.valid_items)  # measured on the test split, named valid here
    if args.teacher:
        path = Path(args.teacher)
    else:
        path = Path(tempfile.mkdtemp(prefix="prune-claims-")) / "teacher.pt"
        train_model(path, TEACHER, train, None, args.teacher_steps)
    teacher, meta = load_checkpoint(path)
    fractions = [float(f) for f in args.fractions.split(",")]
    base_loss, base_valid = measure(teacher, valid)
    print(f"teacher {meta['config']} step {meta['step']}, {sum(p.numel() for p in teacher.parameters()):,} "
          f"parameters; translit {len(train)} training pairs, {len(valid)} measured; unpruned: loss "
          f"{base_loss:.3f}, greedy valid {base_valid:.3f}")
    print(f"{'scheme':<20}{'pruned':>7}{'loss':>8}{'valid':>7}{'loss retrained':>16}{'valid retrained':>17}"
          f"{'  removed per class (embedding, enc..., dec..., attention, softmax)'}")
    results = {}
    schemes = args.schemes.split(",")
    unknown = set(schemes) - set(SCHEMES)
    if unknown:
        parser.error(f"unknown schemes {sorted(unknown)}; known: {', '.join(SCHEMES)}")
    print(f"retraining: {args.retrain_epochs:g} epoch(s), Adam 1e-3, batch 64, masks fixed")
    for scheme in schemes:
        for fraction in fractions:
            model = copy.deepcopy(teacher)
            plan = magnitude_masks(model, scheme, fraction)
            apply_masks(model, plan.masks)
            loss, ok = measure(model, valid)
            retrain(model, plan.masks, train, epochs=args.retrain_epochs, batch_size=64, lr=1e-3, seed=0)
            loss_r, ok_r = measure(model, valid)
            results[scheme, fraction] = (loss, ok, loss_r, ok_r)
            shares = " ".join(f"{plan.removed[c] / plan.sizes[c]:.2f}" for c in plan.classes)
            print(f"{scheme:<20}{fraction:>7.0%}{loss:>8.3f}{ok:>7.3f}{loss_r:>16.3f}{ok_r:>17.3f}  {shares}",
                  flush=True)
    print()
    for fraction in fractions if {"class-blind", "class-uniform"} <= set(schemes) else []:
        blind, uniform = results["class-blind", fraction], results["class-uniform", fraction]
        print(f"{fraction:>4.0%}: class-blind - class-uniform: loss {blind[0] - uniform[0]:+.3f} "
              f"(retrained {blind[2] - uniform[2]:+.3f}), valid {blind[1] - uniform[1]:+.3f} "
              f"(retrained {blind[3] - uniform[3]:+.3f})")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
