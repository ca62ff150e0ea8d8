"""What recording costs, as a ratio to the plain forward pass of the same model over the same batches.

A word-level LM (Embedding 512 -> 2-layer nn.LSTM H=512 -> Linear to a 10k vocabulary), batch 64,
items of 35-100 tokens, over at least 200k tokens. Prints tokens/s for

  (a) the plain forward pass (eval, no_grad, same padded batches), no recording;
  (b) record() of h of all layers into a file;
  (c) record() of h, c and all gates of all layers into a file;
  (d) record() of h and c of all layers (c needs the gates i, f, g but not o);
  (m) the same signals as (c) recorded in memory only (Recorder + collect, no file), to split (c) into
      recovery and file cost;

and the ratios to (a) (goals: b/a <= 1.1 and c/a <= 2.0), by wall time and by this process's CPU
time (steadier when other processes share the cores). The configurations alternate over --chunks
parts of the data, best of --repeats per part. perf_limits.md L14-L16 and observation 8: h of every
layer comes from running the fused kernel layer by layer (~1.0x); gates and c are recomputed from the
weights, one more pass of the LSTM's 8*H*(I+H) FLOP per token per layer, so c/a >= ~2 for the LSTM
alone (--no-decoder); the 10k-way decoder of a real LM adds to (a) but not to the recording overhead.
Measured numbers only; nothing is asserted.

    python benchmarks/record.py                  # 200k tokens
    python benchmarks/record.py --tokens 50000   # quicker
    python benchmarks/record.py --no-decoder     # the LSTM alone as the baseline (stricter ratios)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmviz.recording.recorder import Recorder, record
from lstmviz.recording.recorder_data import DataSource, pad_batch


class LM(nn.Module):
    def __init__(self, vocab: int, emb: int, hidden: int, layers: int, decoder: bool):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=layers, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab) if decoder else nn.Identity()

    def forward(self, tokens):
        return self.decoder(self.lstm(self.embedding(tokens))[0])


def make_items(tokens: int, vocab: int, min_len: int, max_len: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    items, total = [], 0
    while total < tokens:
        n = int(rng.integers(min_len, max_len + 1))
        items.append(rng.integers(1, vocab, n))
        total += n
    return items


class Clock:
    """Wall-clock and CPU seconds of this process (the CPU is shared: CPU time is steadier than wall)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def plain(model, items, batch_size) -> Clock:
    with Clock() as clock, torch.no_grad():
        for batch in DataSource(items).batches(batch_size):
            tokens, _ = pad_batch(batch, 0, True, "cpu")
            model(tokens)
    return clock


def in_memory(model, items, batch_size, signals) -> Clock:
    with Clock() as clock, torch.no_grad(), Recorder(model, signals) as rec:
        for batch in DataSource(items).batches(batch_size):
            tokens, _ = pad_batch(batch, 0, True, "cpu")
            model(tokens)
            rec.collect()
    return clock


def to_file(model, items, batch_size, signals, out: Path, dtype: str) -> Clock:
    with Clock() as clock:
        record(model, items, out, signals=signals, batch_size=batch_size, dtype=dtype, progress=False)
    clock.size = out.stat().st_size
    out.unlink()
    return clock


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=200_000)
    ap.add_argument("--vocab", type=int, default=10_000)
    ap.add_argument("--embedding", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--min-len", type=int, default=35)
    ap.add_argument("--max-len", type=int, default=100)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="storage dtype in the file")
    ap.add_argument("--no-decoder", action="store_true", help="leave out the 10k-way output layer")
    ap.add_argument("--repeats", type=int, default=1, help="best of N runs per configuration and chunk")
    ap.add_argument("--chunks", type=int, default=8, help="data parts over which the configurations alternate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", default=None, help="where the recordings are written (default: a temp dir)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = LM(args.vocab, args.embedding, args.hidden, args.layers, not args.no_decoder).eval()
    items = make_items(args.tokens, args.vocab, args.min_len, args.max_len, seed=0)
    n_tokens = sum(len(t) for t in items)
    print(f"model: Embedding {args.embedding} -> nn.LSTM H={args.hidden} x{args.layers} -> "
          f"{'no decoder' if args.no_decoder else f'Linear to {args.vocab}'}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"data: {len(items)} items, {n_tokens} tokens, batch {args.batch_size}, storage {args.dtype}")
    plain(model, items[: args.batch_size * 2], args.batch_size)  # warm-up

    h_only = [f"lstm/layer{l}/h" for l in range(args.layers)]
    everything = ["lstm/*"]
    h_and_c = ["lstm/*/h", "lstm/*/c"]
    runs = {
        "a": ("(a) plain forward, no recording", lambda part, out: plain(model, part, args.batch_size)),
        "b": (f"(b) record h of {args.layers} layers to a file",
              lambda part, out: to_file(model, part, args.batch_size, h_only, out, args.dtype)),
        "c": (f"(c) record h, c, gates i f g o of {args.layers} layers to a file",
              lambda part, out: to_file(model, part, args.batch_size, everything, out, args.dtype)),
        "d": (f"(d) record h and c of {args.layers} layers to a file",
              lambda part, out: to_file(model, part, args.batch_size, h_and_c, out, args.dtype)),
        "m": ("(m) same signals as (c), in memory only (no file)",
              lambda part, out: in_memory(model, part, args.batch_size, everything)),
    }
    # The cores are shared with other processes whose load comes and goes: run the configurations
    # interleaved on consecutive chunks of the data, keep the best of --repeats per chunk, and sum.
    wall = dict.fromkeys(runs, 0.0)
    cpu = dict.fromkeys(runs, 0.0)
    size = dict.fromkeys(runs, 0)
    chunks = np.array_split(np.arange(len(items)), args.chunks)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for chunk in chunks:
            part = [items[i] for i in chunk]
            for key, (_, run) in runs.items():
                clocks = [run(part, Path(tmp) / "bench.h5") for _ in range(args.repeats)]
                wall[key] += min(c.wall for c in clocks)
                cpu[key] += min(c.cpu for c in clocks)
                size[key] += getattr(clocks[0], "size", 0)

    print(f"{'':62} {'tokens/s':>9}  {'wall s':>7}  {'CPU s':>7}")
    for key, (label, _) in runs.items():
        extra = f"   file {size[key] / 2**20:.0f} MiB" if size[key] else ""
        print(f"{label:<62} {n_tokens / wall[key]:9.0f}  {wall[key]:7.2f}  {cpu[key]:7.2f}{extra}")
    for key, goal in (("b", "<= 1.1"), ("c", "<= 2.0"), ("d", ""), ("m", "")):
        print(f"ratio {key}/a = {wall[key] / wall['a']:.3f} wall, {cpu[key] / cpu['a']:.3f} CPU time"
              + (f"   (goal {goal})" if goal else ""))


if __name__ == "__main__":
    main()
