"""Write a large recording and compare with writing the same bytes raw: peak memory and MB/s.

    python benchmarks/write_memory.py                       # 10M positions x 2 taps x 64 units float16
    python benchmarks/write_memory.py --positions 1000000 --units 512 --taps 4 --dir /scratch

The writer streams items (here of ``--item`` positions, default 1000) into row-chunked HDF5
datasets through a bounded buffer. The baseline writes exactly the bytes the recording holds
(int32 token ids and float16 states, already converted) with ``file.write`` in the same item order,
then fsyncs — the I/O floor — and once more converting float32 to float16 per item as the writer
must (numpy's cast runs at ≈ 2.5 ns per value and dominates). All are measured in this run on this machine and reported as a
ratio; nothing passes or fails on time. Peak RSS (``ru_maxrss``) is taken after the recording is
written and before the baseline runs, and compared with the RSS before writing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lstmviz.recording import RecordingWriter, open_recording


def peak_rss_mb() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20  # bytes on macOS


def make_pool(args) -> tuple[np.ndarray, list[np.ndarray]]:
    """States for a few distinct items, reused round-robin: generating data is not what is measured."""
    rng = np.random.default_rng(0)
    rows = args.item * 8
    tokens = rng.integers(0, 10_000, rows).astype(np.int64)
    taps = [np.tanh(rng.standard_normal((rows, args.units), dtype=np.float32)) for _ in range(args.taps)]
    return tokens, taps


def write_recording(path: Path, args, tokens, taps) -> float:
    start = time.perf_counter()
    with RecordingWriter(path, vocab=[f"w{i}" for i in range(10_000)], dtype="float16",
                         provenance={"engine": "benchmark"}) as w:
        for t in range(args.taps):
            w.add_tap(f"layer{t}/h", args.units, layer=t, signal="h")
        pool_items = len(tokens) // args.item
        for i in range(args.positions // args.item):
            a = (i % pool_items) * args.item
            w.append_item(tokens[a:a + args.item], {f"layer{t}/h": taps[t][a:a + args.item] for t in range(args.taps)})
    return time.perf_counter() - start


def write_raw(path: Path, args, tokens, taps, *, convert: bool) -> tuple[float, int]:
    """The same bytes with file.write; ``convert``: float32 -> float16 per item, as the writer must."""
    tokens32 = tokens.astype(np.int32)
    taps16 = taps if convert else [t.astype(np.float16) for t in taps]
    pool_items = len(tokens) // args.item
    written = 0
    start = time.perf_counter()
    with open(path, "wb") as f:
        for i in range(args.positions // args.item):
            a = (i % pool_items) * args.item
            written += f.write(tokens32[a:a + args.item].tobytes())
            for t in taps16:
                block = t[a:a + args.item]
                written += f.write((block.astype(np.float16) if convert else block).tobytes())
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - start, written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=10_000_000)
    parser.add_argument("--taps", type=int, default=2)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--item", type=int, default=1000, help="positions per item")
    parser.add_argument("--dir", default=None, help="where to write (default: the system temp directory)")
    args = parser.parse_args(argv)
    args.positions -= args.positions % args.item

    work = Path(tempfile.mkdtemp(prefix="lstmviz-bench-", dir=args.dir))
    try:
        tokens, taps = make_pool(args)
        rss_before = peak_rss_mb()
        rec_path = work / "recording.h5"
        t_rec = write_recording(rec_path, args, tokens, taps)
        rss_peak = peak_rss_mb()
        with open_recording(rec_path) as rec:
            assert rec.n_positions == args.positions
        rec_bytes = rec_path.stat().st_size
        rec_path.unlink()
        t_raw, raw_bytes = write_raw(work / "raw.bin", args, tokens, taps, convert=False)
        (work / "raw.bin").unlink()
        t_conv, _ = write_raw(work / "raw.bin", args, tokens, taps, convert=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = raw_bytes / 1e6
    print(f"{args.positions:,} positions, {args.taps} taps x {args.units} units float16, items of {args.item}")
    print(f"data              {mb:,.0f} MB (int32 tokens + float16 states); recording file {rec_bytes / 1e6:,.0f} MB")
    print(f"peak RSS          {rss_peak:,.0f} MB while writing (RSS before writing: {rss_before:,.0f} MB, "
          f"difference {rss_peak - rss_before:,.0f} MB)")
    print(f"RecordingWriter   {t_rec:6.2f} s  {mb / t_rec:8,.0f} MB/s  (incl. validation, float16 conversion, fsync)")
    print(f"raw file.write    {t_raw:6.2f} s  {mb / t_raw:8,.0f} MB/s  (same bytes, pre-converted, fsync)")
    print(f"  + float16 cast  {t_conv:6.2f} s  {mb / t_conv:8,.0f} MB/s  (same, converting float32 per item like the writer)")
    print(f"ratio             {t_rec / t_raw:.2f}x the raw write time; {t_rec / t_conv:.2f}x raw write + cast")


if __name__ == "__main__":
    main()
