"""What recording an attention seq2seq costs, as a ratio to its plain batched decode of the same pairs.

Model: ``seq2seq-attn`` (default config: 2 layers, H=64, E=32), trained here for ``--train-steps`` on
``reverse`` (so outputs have realistic lengths and end in ``<eos>``), or loaded from ``--checkpoint``.
Data: ``--pairs`` test pairs of ``reverse`` (3-12 tokens). For each decoding mode, with the same batch
size and the same ``max_len`` (2 x longest source + 10):

  (a) the plain decode: teacher-forced forward / ``model.greedy`` / ``model.beam_search`` per batch, eval,
      no_grad, nothing recorded;
  (b) ``record_seq2seq`` of every tap into a file (float16, as ``lstmviz record`` stores);

and b/a (goal <= 2) by wall time and by this process's CPU time (steadier on shared cores). The two
alternate over ``--chunks`` parts of the data, best of ``--repeats`` per part. Measured numbers only.

    python benchmarks/seq2seq.py                       # 10,000 pairs, all three modes
    python benchmarks/seq2seq.py --pairs 2000 --modes greedy
    python benchmarks/seq2seq.py --profile greedy      # where the recording's time goes (cProfile)
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import torch

from lstmviz.datasets import load_dataset
from lstmviz.engines.families.seq2seq.api import batch_items
from lstmviz.recording.seq2seq_recorder import record_seq2seq


def model_for(args, workdir: Path):
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.training import train

    path = Path(args.checkpoint) if args.checkpoint else workdir / "s2s.pt"
    if not args.checkpoint:
        started = time.perf_counter()
        metrics = train("seq2seq-attn", load_dataset("reverse", "train"), load_dataset("reverse", "valid", items=200),
                        out=path, steps=args.train_steps, eval_every=0)
        print(f"trained seq2seq-attn on reverse for {args.train_steps} steps in {time.perf_counter() - started:.0f} s: "
              f"valid exact {metrics['valid_exact']:.3f}")
    model, _ = load_checkpoint(path)
    return model.eval()


def plain(model, items, mode: str, batch_size: int, max_len: int, beam: int) -> None:
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            b = batch_items(items[start : start + batch_size])
            if mode == "teacher-forced":
                model(b.src, b.src_lengths, b.tgt_in)
            elif mode == "greedy":
                model.greedy(b.src, b.src_lengths, max_len=max_len)
            else:
                model.beam_search(b.src, b.src_lengths, beam=beam, max_len=max_len)


class Subset:
    """The first items of a dataset, with its vocabulary and annotations (what record_seq2seq reads)."""

    def __init__(self, dataset, items):
        self._items = items
        self.vocab, self.annotation_specs, self.name, self.split = (dataset.vocab, dataset.annotation_specs,
                                                                    dataset.name, dataset.split)

    def __len__(self):
        return len(self._items)

    def __getitem__(self, i):
        return self._items[i]

    def provenance(self):
        return {"name": self.name, "split": self.split}


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=["teacher-forced", "greedy", "beam"])
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--checkpoint")
    parser.add_argument("--train-steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", choices=("teacher-forced", "greedy", "beam"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = model_for(args, workdir)
        dataset = load_dataset("reverse", "test", items=args.pairs)
        items = [dataset[i] for i in range(len(dataset))]
        max_len = 2 * max(len(item) for item in items) + 10
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            record_seq2seq(model, Subset(dataset, items), workdir / "p.h5", decode=args.profile, beam=args.beam,
                           max_len=max_len, batch_size=args.batch_size, dtype="float16")
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            return
        print(f"{len(items):,} pairs of reverse, batch {args.batch_size}, max_len {max_len}, "
              f"{torch.get_num_threads()} threads")
        print(f"{'mode':15s} {'plain s':>9s} {'record s':>9s} {'wall ratio':>10s} {'cpu ratio':>10s} {'MB':>7s}")
        size = len(items) // args.chunks
        for mode in args.modes:
            totals = {"plain": [0.0, 0.0], "record": [0.0, 0.0]}
            megabytes = 0.0
            for c in range(args.chunks):
                part = items[c * size : (c + 1) * size]
                best = {"plain": None, "record": None}
                for _ in range(args.repeats):
                    out = workdir / f"{mode}-{c}.h5"
                    for what, fn in (
                        ("plain", lambda: plain(model, part, mode, args.batch_size, max_len, args.beam)),
                        ("record", lambda: record_seq2seq(model, Subset(dataset, part), out, decode=mode,
                                                          beam=args.beam, max_len=max_len,
                                                          batch_size=args.batch_size, dtype="float16")),
                    ):
                        t = timed(fn)
                        if best[what] is None or t[0] < best[what][0]:
                            best[what] = t
                    megabytes += out.stat().st_size / 1e6 / args.repeats
                    out.unlink()
                for what in totals:
                    totals[what][0] += best[what][0]
                    totals[what][1] += best[what][1]
            (pw, pc), (rw, rc) = totals["plain"], totals["record"]
            print(f"{mode:15s} {pw:9.2f} {rw:9.2f} {rw / pw:10.2f} {rc / max(pc, 1e-9):10.2f} {megabytes:7.1f}")


if __name__ == "__main__":
    main()
