"""What the match-index cache's CRC-32 checksums cost: build into the cache and open from it, with and
without them.

On the synthetic float16 recording of ``benchmarks/match.py`` (N positions x 512 units, cached under
--data-dir), in one run it prints:

  (a) reading the tap once (row slabs through h5py, warm page cache);
  (b) building the index into a fresh cache folder (``open_index(rec, key)``) with this version
      (checksums computed while the bits are written) and with the version before checksums
      (``lstmviz/analysis/bitindex.py`` at --before, loaded from git), each as a ratio to (a)
      (goal: <= 3x);
  (c) opening the cached index again: before, only its attributes were read and the arrays mapped;
      now every block is checked against its CRC-32 (on several threads) -- the price of never
      matching on flipped bits.

Medians of --repeats runs after one warm-up. Measured numbers only; nothing is asserted.

    python benchmarks/index_checksums.py                    # 2M x 512 (2 GB, built once)
    python benchmarks/index_checksums.py --positions 10000000
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numba

sys.path.insert(0, str(Path(__file__).resolve().parent))
from match import TAP, THRESHOLD, UNITS, build_synthetic, read_once, synthetic_path  # noqa: E402

from lstmviz.analysis import bitindex  # noqa: E402
from lstmviz.analysis.bitindex import IndexKey  # noqa: E402
from lstmviz.recording import format as fmt  # noqa: E402
from lstmviz.recording import open_recording  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def module_at(commit: str):
    """``lstmviz/analysis/bitindex.py`` as it was at ``commit``, as a module of its own."""
    source = subprocess.run(["git", "show", f"{commit}:lstmviz/analysis/bitindex.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    spec = importlib.util.spec_from_loader("bitindex_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, f"bitindex.py@{commit}", "exec"), module.__dict__)
    return module


def timed(fn, repeats):
    fn()  # warm-up: compilation, page cache
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/lstmviz-bench"))
    ap.add_argument("--positions", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", default="25826dc", help="a commit of the version without checksums")
    args = ap.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    n = args.positions
    path = synthetic_path(args.data_dir, n)
    if not path.exists():
        print(f"building {path} ({n:,} x {UNITS} float16, {n * UNITS * 2 / 1e9:.1f} GB) ...", flush=True)
        build_synthetic(path, n)
    before = module_at(args.before)
    key = IndexKey(TAP, "tanh", THRESHOLD)
    print(f"numba {numba.get_num_threads()} threads, {os.cpu_count()} CPUs; {n:,} x {UNITS} float16")
    with open_recording(path) as rec, tempfile.TemporaryDirectory(dir=args.data_dir) as scratch:
        with h5py.File(path, "r") as f:
            ds = f[fmt.tap_path(TAP)]
            read_once(ds)
            t_read = statistics.median(read_once(ds) for _ in range(args.repeats))
        print(f"(a) read the tap once: {t_read:.2f} s")
        results = {}
        for label, module in (("before (no checksums)", before), ("now (CRC-32)", bitindex)):
            cache = Path(scratch) / label.split()[0]

            def build(module=module, cache=cache):
                shutil.rmtree(cache, ignore_errors=True)
                os.environ["LSTMVIZ_CACHE_DIR"] = str(cache)
                module.open_index(rec, key)

            t_build = timed(build, args.repeats)
            t_open = timed(lambda module=module: module.open_index(rec, key), args.repeats)
            results[label] = (t_build, t_open)
            size = sum(p.stat().st_size for p in cache.rglob("*.h5"))
            print(f"(b) {label}: build into the cache {t_build:.2f} s = {t_build / t_read:.2f}x the read "
                  f"(goal <= 3x); (c) open from the cache {1000 * t_open:.0f} ms; cache file {size / 1e9:.2f} GB")
        (b0, o0), (b1, o1) = results.values()
        print(f"checksums: build {b1 / b0:.2f}x before, open +{1000 * (o1 - o0):.0f} ms "
              f"({(o1 - o0) / t_read:.2f}x the read of the tap)")


if __name__ == "__main__":
    main()
