"""Analysis over shards, query half of benchmarks/scale.py (issue 21): query time on 4 shards vs one file.

The synthetic recording of ``benchmarks/match.py`` (float16, 512 units, items of 100-500 positions,
AR(1) units and 30 planted units switching on together), generated once and written twice in the same
pass: as one file and as ``--shards`` shard files of contiguous item ranges (near-equal positions).
Then, in one run:

  (a) index build: ``open_index`` of the single file vs ``sharded.build_indices`` of the shards on
      each backend (the first backend builds them; each shard's index is cached beside it);
  (b) query time for k = 3, 10, 30 planted units in both modes (``benchmarks/match.py``'s queries),
      median of --repeats after one warm-up, timed alternately, on the single file (``matching.match``) and over the
      shards (``sharded.match``) on each backend, the ratio sharded / single (goal <= 1.5x), and
      whether the results are identical (starts, lengths, items, scores, order).

Backends: ``inline`` (this process, shard after shard: the cost of sharding itself), ``processes``
(one worker process per shard, at most one per core), ``dask`` (a LocalCluster of as many worker
processes; only when dask.distributed is installed). All files, caches included, live under
--data-dir and are deleted at the end unless --keep.

    python benchmarks/scale_query.py                          # 10M x 512: ~20 GB of data, minutes
    python benchmarks/scale_query.py --positions 1000000      # quicker
    python benchmarks/scale_query.py --backends inline,processes

Measured numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np

HERE = Path(__file__).resolve().parent
FIELDS = ("starts", "lengths", "items", "levels", "intersection", "union", "score")


def _match_benchmark():
    if "match_benchmark" in sys.modules:
        return sys.modules["match_benchmark"]
    spec = importlib.util.spec_from_file_location("match_benchmark", HERE / "match.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["match_benchmark"] = module  # numba's cache of its kernels imports it by this name
    spec.loader.exec_module(module)
    return module


def build(folder: Path, n: int, n_shards: int, seed: int = 0) -> tuple[Path, list[Path], np.ndarray]:
    """Write the synthetic recording as one file and as shards in the same pass; returns the paths and
    the planted units."""
    from lstmviz.recording import RecordingWriter

    mb = _match_benchmark()
    rng = np.random.default_rng(seed)
    d = mb.UNITS
    bias = rng.normal(-0.35, 0.45, d)
    scale = rng.uniform(0.4, 1.0, d)
    rho = rng.uniform(0.5, 0.95, d)
    noise_scale = np.sqrt(1 - rho ** 2)
    z = rng.normal(0, 1, d)
    planted = np.sort(rng.choice(d, mb.PLANTED_UNITS, replace=False))
    vocab = ["<pad>"] + [f"w{i}" for i in range(1, 1000)]
    p_plant = min(1.0, max(20, n // 16000) * 300 / n)
    provenance = {"dataset": "synthetic (benchmarks/scale_query.py)", "planted_units": planted.tolist()}

    def writer(path):
        w = RecordingWriter(path, vocab=vocab, dtype="float16", provenance=provenance)
        w.add_tap(mb.TAP, d, layer=0, signal="c")
        return w

    single_path = folder / "single.h5"
    shard_paths = [folder / f"shard{j}.h5" for j in range(n_shards)]
    single = writer(single_path)
    shards = [writer(p) for p in shard_paths]
    done, block_seed, t0 = 0, seed, time.perf_counter()
    try:
        while done < n:
            lens = []
            while sum(lens) < (1 << 16) and done + sum(lens) < n:
                lens.append(int(min(rng.integers(100, 501), n - done - sum(lens))))
            m = sum(lens)
            block = np.empty((m, d), np.float32)
            block_seed += 1
            mb._ar_block(z, rho, noise_scale, bias, scale, block_seed, block)
            a = 0
            for length in lens:
                if length >= 20 and rng.random() < p_plant:
                    run = int(rng.integers(2, 16))
                    s = int(rng.integers(1, length - run))
                    block[a + s - 1, planted] = mb.OFF_RAW
                    block[a + s:a + s + run, planted] = mb.ON_RAW
                a += length
            block16 = block.astype(np.float16)
            a = 0
            for length in lens:
                tokens = rng.integers(1, len(vocab), length)
                states = {mb.TAP: block16[a:a + length]}
                single.append_item(tokens, states)
                shards[min(n_shards - 1, (done + a) * n_shards // n)].append_item(tokens, states)
                a += length
            done += m
            if done % (1 << 21) < m:
                print(f"  wrote {done:,} / {n:,} positions ({time.perf_counter() - t0:.0f} s)", flush=True)
        for w in (single, *shards):
            w.close()
    except BaseException:
        for w in (single, *shards):
            w.abort()
        raise
    return single_path, shard_paths, planted


def paired_times(fn_a, fn_b, repeats: int):
    """Medians of ``fn_a`` and ``fn_b`` timed alternately (so both see the same load of a shared
    machine), after one warm-up each (compilation, page cache, opening the indices in the workers)."""
    out_a, out_b = fn_a(), fn_b()
    times_a, times_b = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        out_a = fn_a()
        times_a.append(time.perf_counter() - t)
        t = time.perf_counter()
        out_b = fn_b()
        times_b.append(time.perf_counter() - t)
    return statistics.median(times_a), out_a, statistics.median(times_b), out_b


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in FIELDS)


def make(name: str, n_shards: int):
    from lstmviz.analysis import sharded

    workers = max(1, min(n_shards, os.cpu_count() or 1))
    if name == "inline":
        return sharded.InlineBackend()
    if name == "processes":
        return sharded.ProcessBackend(workers)
    if name == "dask":
        return sharded.DaskBackend(workers=workers)
    raise SystemExit(f"unknown backend {name!r}; choose from inline, processes, dask")


def query_benchmark(positions: int = 10_000_000, n_shards: int = 4, data_dir: Path = Path("/tmp/lstmviz-scale"),
                    repeats: int = 5, backends=("inline", "processes", "dask"), keep: bool = False,
                    seed: int = 0) -> dict:
    """Run (a) and (b) of the module docstring; returns {(backend, k, mode): (single s, sharded s, same)}."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["LSTMVIZ_CACHE_DIR"] = str(data_dir / "cache")  # caches go where the files go (deleted after)
    from lstmviz.analysis import shard_exec, sharded
    from lstmviz.analysis.bitindex import IndexKey, open_index
    from lstmviz.analysis.matching import match
    from lstmviz.recording import open_recording

    mb = _match_benchmark()
    backends = [b for b in backends if b != "dask" or shard_exec.have_dask()]
    print(f"numba {numba.__version__} ({numba.get_num_threads()} threads), {os.cpu_count()} cores; "
          f"{positions:,} x {mb.UNITS} float16 in 1 file and in {n_shards} shards under {data_dir}")
    out = {}
    try:
        t = time.perf_counter()
        single_path, shard_paths, planted = build(data_dir, positions, n_shards, seed)
        print(f"  generated and written twice ({2 * positions * mb.UNITS * 2 / 1e9:.1f} GB) in "
              f"{time.perf_counter() - t:.0f} s")
        key = IndexKey(mb.TAP, "tanh", mb.THRESHOLD)
        shards = sharded.open_shards(shard_paths)
        print(f"  shards: {[s.rows['positions'] for s in shards.shards]} positions")
        with open_recording(single_path) as rec:
            t = time.perf_counter()
            one = open_index(rec, key)
            print(f"\n(a) index build: single file {time.perf_counter() - t:.1f} s", flush=True)
            sets = [(f"k={k}", planted[:k]) for k in (3, 10, 30)]
            queries = [(name, mode, make_q(units)) for name, units in sets
                       for mode, make_q in (("lstmvis", mb.lstmvis_query), ("scored", mb.scored_query))]
            for b in backends:
                with make(b, n_shards) as backend:
                    t = time.perf_counter()
                    sharded.build_indices(shards, key, backend)
                    print(f"    {len(shard_paths)} shards on {b} ({backend.workers} workers): "
                          f"{time.perf_counter() - t:.1f} s (cached after the first backend)", flush=True)
                    print(f"\n(b) query time, median of {repeats} (timed alternately): single file vs "
                          f"{n_shards} shards on {b}")
                    for name, mode, q in queries:
                        base, expected, sec, res = paired_times(
                            lambda q=q: match(one, q), lambda q=q: sharded.match(shards, key, q, backend), repeats)
                        ok = same(res, expected)
                        out[b, name, mode] = (base, sec, ok)
                        print(f"  {name:>5} {mode:<7} single {1e3 * base:7.1f} ms  shards {1e3 * sec:7.1f} ms  "
                              f"ratio {sec / base:5.2f}x (goal <= 1.5x)  {len(res)} results, "
                              f"{'identical' if ok else 'DIFFERENT'}", flush=True)
            del one
    finally:
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
            print(f"\nremoved {data_dir}")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--positions", type=int, default=10_000_000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/lstmviz-scale"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backends", default="inline,processes,dask")
    ap.add_argument("--keep", action="store_true", help="keep the files (and caches) under --data-dir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    query_benchmark(args.positions, args.shards, args.data_dir, args.repeats, args.backends.split(","), args.keep,
                    args.seed)


if __name__ == "__main__":
    sys.exit(main())
