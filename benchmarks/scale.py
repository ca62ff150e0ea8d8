"""Scaling out (issue 21): recording throughput with 1, 2 and 4 processes under torchrun.

Recording: ``torchrun --standalone --nproc-per-node N -m lstmviz record`` of an untrained ``lstm``
(``--hidden`` units, 2 layers, every tap, float16) over ``--items`` items of the ``parens`` dataset, for N in
``--procs`` (default 1 2 4), each into a fresh folder (no resume). The baseline is N = 1 under the same launcher,
measured in the same run; a plain ``lstmviz record`` without torchrun is printed too (the launcher's cost).
Per N it prints:

* end to end: the command's wall time (process start, imports, gloo rendezvous, recording, checks, the
  logical file), items/s and positions/s, and the ratio of that throughput to N = 1;
* recording only: the slowest rank's time to record its shard (what the ranks print: ``recorded ... in X s``),
  the same rates and ratio.

Measured numbers only; nothing is asserted. docs/scale.md quotes a run of

    python benchmarks/scale.py

(a machine with P cores cannot go past about P x; startup is per process and does not shrink with N).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def record_command(args, out: Path) -> list[str]:
    return ["-m", "lstmviz", "record", "lstm", "--dataset", "parens", "--set", f"hidden_size={args.hidden}",
            "--set", "num_layers=2", "--dataset-option", f"tokens={args.tokens}", "--dataset-option",
            "item_length=200", "--max-items", str(args.items), "--batch-size", str(args.batch_size),
            "--dtype", "float16", "--max-size", "none", "--quiet", "--out", str(out)]


def run_recording(args, procs: int | None, folder: Path) -> dict:
    """One recording; ``procs`` None: plain ``python -m lstmviz record`` (no torchrun)."""
    folder.mkdir(parents=True)
    out = folder / "states.h5"
    launcher = [] if procs is None else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
    command = [sys.executable, *launcher, *record_command(args, out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"recording with {procs} processes failed:\n{done.stderr[-3000:]}")
    shards = [float(x) for x in re.findall(r"recorded shard-\S+ \(items [0-9.]+\) in ([0-9.]+) s", done.stderr)]
    from lstmviz.recording import open_recording

    with open_recording(out) as rec:
        items, positions = rec.n_items, rec.n_positions
    return {"wall": wall, "recording": max(shards) if shards else None, "items": items, "positions": positions}


def record_scaling(args) -> None:
    print(f"recording: lstm {args.hidden} units x 2 layers, every tap, float16, {args.items} items of parens, "
          f"batch {args.batch_size}, {args.threads} torch thread(s) per process, {os.cpu_count()} CPUs here")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        plain = run_recording(args, None, Path(tmp) / "plain")
        for n in args.procs:
            results[n] = run_recording(args, n, Path(tmp) / f"n{n}")
    base = results[args.procs[0]]
    print(f"  plain `lstmviz record` (no torchrun): {plain['wall']:.2f} s end to end, "
          f"{plain['positions'] / plain['wall']:,.0f} positions/s")
    print(f"  {'procs':>5}  {'end to end':>10}  {'items/s':>8}  {'positions/s':>11}  {'ratio':>5}   "
          f"{'recording':>9}  {'items/s':>8}  {'positions/s':>11}  {'ratio':>5}")
    for n, r in results.items():
        line = (f"  {n:>5}  {r['wall']:>9.2f}s  {r['items'] / r['wall']:>8.1f}  {r['positions'] / r['wall']:>11,.0f}  "
                f"{base['wall'] / r['wall']:>4.2f}x")
        if r["recording"] and base["recording"]:
            line += (f"   {r['recording']:>8.2f}s  {r['items'] / r['recording']:>8.1f}  "
                     f"{r['positions'] / r['recording']:>11,.0f}  {base['recording'] / r['recording']:>4.2f}x")
        print(line)
    print(f"  ({base['positions']:,} positions; ratio = throughput / "
          f"throughput with {args.procs[0]} process)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4], help="process counts (default 1 2 4)")
    p.add_argument("--items", type=int, default=400, help="items to record (default 400)")
    p.add_argument("--tokens", type=int, default=100_000, help="parens tokens generated (default 100000)")
    p.add_argument("--hidden", type=int, default=256, help="LSTM units per layer (default 256)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    args = p.parse_args(argv)
    if any(n < 1 for n in args.procs):
        p.error("--procs: process counts must be positive")
    record_scaling(args)


if __name__ == "__main__":
    main()
