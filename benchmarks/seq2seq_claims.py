"""seq2seq-attn (Luong, Pham & Manning 2015): do the paper's claims show in direction on ``reverse``?

1. Input feeding helps (the paper's Table 1: "+feed input" improves every attentional model): the same
   model trained the same steps with and without feeding ``h~_{t-1}`` into step ``t``
   (``input_feeding=False``); validation loss, token accuracy and greedy exact-match accuracy at
   several points of training (same seed, same batches).
2. Attention learns the alignment (the paper's Figure 7, alignment quality): on ``reverse`` the token
   emitted at decoder step ``t`` of an item of length ``n`` is source position ``n - 1 - t``; printed: the
   share of decoder steps (``<eos>`` excluded) whose attention arg-max is that position, and the share
   whose arg-max is the neighbour ``n - t`` (the position of the token read at step ``t``, the previous
   output).

    python benchmarks/seq2seq_claims.py                 # 1200 steps per model, ~3 min on 2 shared cores
    python benchmarks/seq2seq_claims.py --steps 600
Measured numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lstmviz.datasets import load_dataset
from lstmviz.engines.families.seq2seq.api import batch_items
from lstmviz.engines.families.seq2seq.objective import evaluate_pairs
from lstmviz.engines.training import train
from lstmviz.hooks import HookScope, find_taps


def curve(input_feeding: bool, args, workdir: Path, train_data, valid) -> tuple[list[tuple], object, float]:
    """One training run, evaluated at ``--points`` kept checkpoints; both models see the same batches in the
    same order (same seed). Returns the rows, the final model and the training seconds."""
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.training import kept_checkpoint_path

    out = workdir / f"feed{int(input_feeding)}.pt"
    every = args.steps // args.points
    started = time.perf_counter()
    train("seq2seq-attn", train_data, None, out=out, steps=args.steps, seed=args.seed, checkpoint_every=every,
          keep_checkpoints=True, config={"input_feeding": input_feeding})
    seconds = time.perf_counter() - started
    pairs = [(item.tokens, item.target) for item in valid]
    rows = []
    model = None
    for step in range(every, args.steps + 1, every):
        model, _ = load_checkpoint(kept_checkpoint_path(out, step))
        m = evaluate_pairs(model, pairs, 100, "cpu")
        rows.append((step, m["loss"], m["token_accuracy"], m["exact"]))
    return rows, model, seconds


def alignment(model, valid) -> tuple[float, float]:
    """Share of decoder steps whose attention arg-max is the emitted token's source position, and its neighbour."""
    taps = find_taps(model)
    hit = neighbour = count = 0
    items = [valid[i] for i in range(len(valid))]
    for start in range(0, len(items), 100):
        chunk = items[start : start + 100]
        b = batch_items(chunk)
        rows = []
        with HookScope() as hooks, torch.no_grad():
            hooks.read(taps["decoder/attention"], lambda m, a, k, out: rows.append(out.clone()))
            model(b.src, b.src_lengths, b.tgt_in)
        a = torch.stack(rows, 1).argmax(-1).numpy()  # [B, T]
        for j, item in enumerate(chunk):
            n = len(item)
            t = np.arange(n)
            hit += int((a[j, :n] == n - 1 - t).sum())
            neighbour += int((a[j, :n] == n - t).sum())
            count += n
    return hit / count, neighbour / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--points", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_data = load_dataset("reverse", "train")
    valid = load_dataset("reverse", "valid")
    print(f"reverse: {len(train_data):,} training pairs, {len(valid)} validation pairs; seq2seq-attn default config, "
          f"{args.steps} steps, seed {args.seed}")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for feeding in (True, False):
            results[feeding] = curve(feeding, args, Path(tmp), train_data, valid)
        print(f"\n{'input feeding':14s} {'step':>5s} {'valid loss':>10s} {'token acc':>9s} {'exact':>6s}")
        for feeding in (True, False):
            rows, _, seconds = results[feeding]
            for step, loss, acc, exact in rows:
                print(f"{'yes' if feeding else 'no':14s} {step:5d} {loss:10.4f} {acc:9.4f} {exact:6.3f}")
            print(f"{'':14s} trained in {seconds:.0f} s")
        print("\nattention arg-max on reverse (decoder steps before <eos>):")
        for feeding in (True, False):
            hit, neighbour = alignment(results[feeding][1], valid)
            print(f"  input feeding {'yes' if feeding else 'no '}: at the emitted token's position n-1-t {hit:.3f}, "
                  f"at n-t {neighbour:.3f}")


if __name__ == "__main__":
    main()
