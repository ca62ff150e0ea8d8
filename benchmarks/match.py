"""Whole-corpus matching: index build cost, query time, and LSTMVis's precise matcher as the baseline.

On a synthetic recording of 10M positions x 512 units (float16, items of 100-500 positions; per-unit
biases, scales and AR(1) time constants so that a tanh-space threshold of 0.3 gives unit sparsities of
roughly 5-60 %; PLANTED: several hundred runs of length 2-15 where a fixed set of 30 units switch on
together, preceded by a position where they are off), built once and cached under --data-dir. In one
run it prints:

  (a) reading the tap once (row slabs through h5py) vs building the bit index
      (``open_index(rec, IndexKey(tap, "tanh", 0.3), cache=False)``) -> ratio (goal <= 3x);
  (b) query time for k = 3, 10, 30 planted units in both modes, median of --repeats runs
      (goal <= 100 ms; the floor for reading the selected units' bitsets is ~2 ms);
  (c) ``lstmvis_precise`` (LSTMVis's precise matcher, constrain_left) on the same HDF5 tap for the same
      k, the speed-up of our lstmvis mode (goal >= 100x), and whether the top matches agree: our lstmvis
      mode (min_length 2, pad_left 1, pad_right 0, limit 50, candidate_cap 10000) on the same stream
      without item boundaries (theirs has none) must give the identical (I, U, L) key sequence and the
      same (start, length) set for every result whose key is strictly better than the 50th.

  PTB: with --ptb FILE (or <data-dir>/ptb.h5 present), the same queries on a recording of a PTB
  language model, the units picked the way a user would: a random brushed range of 2-6 tokens, the
  units on (tanh >= 0.3) over all of it and off just before it.

The first and last positions of the synthetic tap are 0 for every unit (off in both directions), so
no run touches the ends of the stream, where LSTMVis skips candidates and we do not.

Measured numbers only; nothing is asserted.

    python benchmarks/match.py                              # 10M x 512 (builds ~10 GB once, minutes)
    python benchmarks/match.py --positions 1000000          # quicker, its own (smaller) file
    python benchmarks/match.py --skip-reference             # (a) and (b) only
    python benchmarks/match.py --reference-positions 2000000   # baseline on a prefix only (labelled)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import h5py
import numba
import numpy as np
from numba import njit, prange

from lstmviz.analysis.bitindex import BitIndex, IndexKey, open_index
from lstmviz.analysis.lstmvis_reference import lstmvis_precise
from lstmviz.analysis.match_types import MatchQuery
from lstmviz.analysis.matching import match
from lstmviz.recording import RecordingWriter, open_recording
from lstmviz.recording import format as fmt

TAP = "layer0/c"
THRESHOLD = 0.3
UNITS = 512
PLANTED_UNITS = 30
ON_RAW, OFF_RAW = 1.2, -1.0  # tanh: 0.83 (on), -0.76 (off)

# --- the synthetic recording ------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def _ar_block(z, rho, noise_scale, bias, scale, seed, out):
    """out[t, u] = bias[u] + scale[u] * z_t[u], z an AR(1) per unit with unit variance; z carries over.
    Noise: a sum of 3 uniforms from a xorshift generator per unit (cheap, smooth enough)."""
    n, d = out.shape
    for u in prange(d):
        x = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(u + 1) * np.uint64(0xBF58476D1CE4E5B9)
        zu = z[u]
        for t in range(n):
            e = 0.0
            for _ in range(3):
                x ^= x << np.uint64(13)
                x ^= x >> np.uint64(7)
                x ^= x << np.uint64(17)
                e += (x >> np.uint64(11)) * (1.0 / 9007199254740992.0)
            zu = rho[u] * zu + noise_scale[u] * (e - 1.5) * 2.0  # (sum of 3 U(0,1) - 1.5) * 2: variance 1
            out[t, u] = bias[u] + scale[u] * zu
        z[u] = zu


def synthetic_path(data_dir: Path, n: int) -> Path:
    return data_dir / f"synthetic-{n}x{UNITS}.h5"


def build_synthetic(path: Path, n: int, seed: int = 0) -> dict:
    """Write the synthetic recording; returns the planted units and runs."""
    rng = np.random.default_rng(seed)
    d = UNITS
    bias = rng.normal(-0.35, 0.45, d)
    scale = rng.uniform(0.4, 1.0, d)
    rho = rng.uniform(0.5, 0.95, d)
    noise_scale = np.sqrt(1 - rho ** 2)
    z = rng.normal(0, 1, d)
    planted = np.sort(rng.choice(d, PLANTED_UNITS, replace=False))
    vocab = ["<pad>"] + [f"w{i}" for i in range(1, 1000)]
    n_planted = max(20, n // 16000)
    mean_item = 300
    p_plant = min(1.0, n_planted * mean_item / n)
    runs = []
    block_target = 1 << 16
    done = 0
    block_seed = seed
    t0 = time.perf_counter()
    with RecordingWriter(path, vocab=vocab, dtype="float16",
                         provenance={"dataset": "synthetic (benchmarks/match.py)",
                                     "planted_units": planted.tolist()}) as w:
        w.add_tap(TAP, d, layer=0, signal="c", description="synthetic tanh-ish states with planted patterns")
        while done < n:
            lens = []
            while sum(lens) < block_target and done + sum(lens) < n:
                lens.append(int(min(rng.integers(100, 501), n - done - sum(lens))))
            m = sum(lens)
            block = np.empty((m, d), np.float32)
            block_seed += 1
            _ar_block(z, rho, noise_scale, bias, scale, block_seed, block)
            a = 0
            for length in lens:
                if length >= 20 and rng.random() < p_plant:
                    run = int(rng.integers(2, 16))
                    s = int(rng.integers(1, length - run))
                    block[a + s - 1, planted] = OFF_RAW
                    block[a + s:a + s + run, planted] = ON_RAW
                    runs.append((done + a + s, run))
                a += length
            if done == 0:
                block[0] = 0.0
            if done + m == n:
                block[-1] = 0.0
            block16 = block.astype(np.float16)
            a = 0
            for length in lens:
                w.append_item(rng.integers(1, len(vocab), length), {TAP: block16[a:a + length]})
                a += length
            done += m
            if done % (1 << 20) < m:
                print(f"  wrote {done:,} / {n:,} positions ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"planted": planted, "runs": runs}


# --- helpers ------------------------------------------------------------------------------------------


def median_time(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (compilation, page cache)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def read_once(ds: h5py.Dataset, slab_bytes: int = 64 << 20) -> float:
    rows = max(1, slab_bytes // (ds.shape[1] * ds.dtype.itemsize))
    t = time.perf_counter()
    for a in range(0, ds.shape[0], rows):
        ds[a:a + rows]
    return time.perf_counter() - t


class _Prefix:
    """The first n rows of an [N, D] dataset, for lstmvis_precise (reads stay h5py column slices)."""

    def __init__(self, ds, n):
        self.ds, self.shape = ds, (n, ds.shape[1])

    def __getitem__(self, key):
        rows, cols = key
        start, stop, _ = rows.indices(self.shape[0])
        return self.ds[start:stop, cols]


def prefix_index(index: BitIndex, n: int) -> BitIndex:
    """The index of the first n positions (n a multiple of 8), as one stream."""
    assert n % 8 == 0
    return dataclasses.replace(
        index, n_positions=n, item_offsets=np.array([0, n], np.int64),
        rows={s: r[:n] for s, r in index.rows.items()},
        units={s: np.ascontiguousarray(u[:, :n // 8]) for s, u in index.units.items()},
        row_counts={s: c[:n] for s, c in index.row_counts.items()})


def lstmvis_query(units) -> MatchQuery:
    return MatchQuery(units=tuple(int(u) for u in units), mode="lstmvis", pad_left=1, pad_right=0,
                      min_length=2, limit=50, candidate_cap=10000)


def scored_query(units, selection_length=6) -> MatchQuery:
    return MatchQuery(units=tuple(int(u) for u in units), mode="scored", pad_left=1, pad_right=0,
                      limit=1000, candidate_cap=10000, selection_length=selection_length)


def agreement(ours, theirs) -> str:
    key_o = list(zip(ours.intersection.tolist(), ours.union.tolist(), ours.lengths.tolist()))
    key_t = [(r["intersection"], r["union"], r["length"]) for r in theirs]
    if key_o != key_t:
        first = next((i for i, (a, b) in enumerate(zip(key_o, key_t)) if a != b), min(len(key_o), len(key_t)))
        return f"DIFFERENT keys from rank {first} (ours {key_o[first:first + 3]}, theirs {key_t[first:first + 3]})"
    if not key_t:
        return "agree (no results)"
    last = key_t[-1]

    def better(key):
        return (-key[0], key[1], -key[2]) < (-last[0], last[1], -last[2])

    set_o = {(s, n) for s, n, key in zip(ours.starts.tolist(), ours.lengths.tolist(), key_o) if better(key)}
    set_t = {(r["pos"], r["length"]) for r, key in zip(theirs, key_t) if better(key)}
    if set_o != set_t:
        return f"DIFFERENT sets above the cut ({len(set_o ^ set_t)} differ)"
    same_all = [(r["pos"], r["length"]) for r in theirs] == list(zip(ours.starts.tolist(), ours.lengths.tolist()))
    return (f"agree: {len(key_t)} identical keys, {len(set_t)} identical (start, length) above the cut"
            + ("; the whole list is identical" if same_all else "; ties at the cut ordered differently"))


def describe(res) -> str:
    top = ", ".join(f"({i},{u},{n})" for i, u, n in zip(res.intersection[:3], res.union[:3], res.lengths[:3]))
    return (f"{len(res)} results, {res.n_candidates} candidates, levels >= {res.lowest_level}, "
            f"exact={res.exact}, top (I,U,L): {top}")


def run_queries(index, sets, repeats, label):
    print(f"\n(b) query time, {label}: median of {repeats} (after one warm-up)")
    timings = {}
    for name, units in sets:
        for mode, make in (("lstmvis", lstmvis_query), ("scored", scored_query)):
            q = make(units)
            sec, res = median_time(lambda q=q: match(index, q), repeats)
            timings[(name, mode)] = (sec, res)
            ph = res.extra.get("timings", {})
            phases = " ".join(f"{p} {1e3 * ph[p]:.1f}" for p in ("count", "runs", "score") if p in ph)
            print(f"  {name:>8} {mode:<7} {1e3 * sec:8.1f} ms   [{phases} ms]  {describe(res)}")
    return timings


def run_reference(states, one_stream_index, sets, timings, n_ref, n_full, label):
    print(f"\n(c) LSTMVis precise (lstmvis_precise, constrain_left) on {label}")
    for name, units in sets:
        cells = [int(u) for u in units]
        t = time.perf_counter()
        theirs = lstmvis_precise(states, cells, THRESHOLD, constrain_left=True)
        t_ref = time.perf_counter() - t
        q = lstmvis_query(cells)
        sec_same, ours = median_time(lambda q=q: match(one_stream_index, q), 3)
        line = (f"  {name:>8} theirs {t_ref:8.2f} s   ours (same {n_ref:,} positions, one stream) "
                f"{1e3 * sec_same:7.1f} ms   speed-up {t_ref / sec_same:8.0f}x")
        print(line)
        if n_ref != n_full and (name, "lstmvis") in timings:
            sec_full = timings[(name, "lstmvis")][0]
            est = t_ref * n_full / n_ref
            print(f"  {'':>8} EXTRAPOLATED (theirs x {n_full / n_ref:.1f}, linear in N): theirs ~{est:.1f} s on "
                  f"{n_full:,} positions vs ours {1e3 * sec_full:.1f} ms measured there -> ~{est / sec_full:.0f}x")
        print(f"  {'':>8} top-50: {agreement(ours, theirs)}")


# --- PTB ---------------------------------------------------------------------------------------------


def ptb_section(path: Path, repeats: int, skip_reference: bool, seed: int):
    print(f"\n=== PTB recording {path}")
    with open_recording(path) as rec:
        taps = list(rec.taps)
        tap = next((t for t in reversed(taps) if t.endswith("/c")), taps[0])
        n, d = rec.axis_length(rec.taps[tap].axis), rec.taps[tap].units
        print(f"tap {tap}: {n:,} positions x {d} units, {rec.n_items:,} items, {rec.taps[tap].dtype}")
        with h5py.File(path, "r") as f:
            t_read = read_once(f[fmt.tap_path(tap)])
        t = time.perf_counter()
        index = open_index(rec, IndexKey(tap, "tanh", THRESHOLD), cache=False)
        t_build = time.perf_counter() - t
        print(f"(a) read once {t_read:.2f} s, index build {t_build:.2f} s -> ratio {t_build / t_read:.2f}x")
        # selections the way a user makes them: a random brush, units on over it and off just before it
        rng = np.random.default_rng(seed)
        offsets = index.item_offsets
        sets = []
        tries = 0
        while len(sets) < 3 and tries < 10000:
            tries += 1
            item = int(rng.integers(0, rec.n_items))
            a, b = int(offsets[item]), int(offsets[item + 1])
            width = int(rng.integers(2, 7))
            if b - a < width + 2:
                continue
            s = int(rng.integers(a + 1, b - width + 1))
            on = index.on(1, s - 1, s + width)
            chosen = np.flatnonzero(on[1:].all(axis=0) & ~on[0])
            want = (2, 6) if not sets else (6, 15) if len(sets) == 1 else (15, 60)
            if want[0] <= len(chosen) < want[1]:
                sets.append((f"k={len(chosen)}", chosen, (s, width)))
        for name, units, (s, width) in sets:
            print(f"  brush {s}..{s + width} ({' '.join(rec.tokens(s, s + width))!r}) -> {name}: units "
                  f"{units.tolist()[:12]}{' ...' if len(units) > 12 else ''}")
        timings = run_queries(index, [(nm, u) for nm, u, _ in sets], repeats, f"PTB {n:,} x {d}")
        if not skip_reference:
            one = dataclasses.replace(index, item_offsets=np.array([0, n], np.int64))
            with h5py.File(path, "r") as f:
                run_reference(f[fmt.tap_path(tap)], one, [(nm, u) for nm, u, _ in sets], timings, n, n,
                              f"the PTB tap ({n:,} positions; their single stream crosses sentences)")


def ptb_howto(data_dir: Path):
    print("\n=== PTB: no recording given (--ptb FILE) and none at", data_dir / "ptb.h5")
    print("  make one with:")
    print(f"    lstmviz train lstm --dataset ptb --out {data_dir}/ptb-lstm.pt")
    print(f"    lstmviz record {data_dir}/ptb-lstm.pt --dataset ptb --split train --signals 'layer*/c' "
          f"--dtype float16 --out {data_dir}/ptb.h5")


# --- main ----------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/lstmviz-bench"))
    ap.add_argument("--positions", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-reference", action="store_true", help="do not run lstmvis_precise")
    ap.add_argument("--reference-positions", type=int, default=None,
                    help="run lstmvis_precise on the first N positions only (the speed-up to the full size is "
                         "then an extrapolation, and labelled so)")
    ap.add_argument("--ptb", type=Path, default=None, help="a PTB recording (default: <data-dir>/ptb.h5 if present)")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    print(f"numba {numba.__version__} ({numba.get_num_threads()} threads), numpy {np.__version__}, "
          f"h5py {h5py.__version__}")

    if not args.skip_synthetic:
        n = args.positions
        path = synthetic_path(args.data_dir, n)
        if not path.exists():
            print(f"building {path} ({n:,} x {UNITS} float16, {n * UNITS * 2 / 1e9:.1f} GB) ...", flush=True)
            t = time.perf_counter()
            build_synthetic(path, n, seed=args.seed)
            print(f"  built in {time.perf_counter() - t:.0f} s")
        with open_recording(path) as rec:
            planted = np.asarray(rec.provenance["planted_units"])
            print(f"\n=== synthetic {path}: {rec.n_positions:,} x {UNITS}, {rec.n_items:,} items; "
                  f"planted units {planted.tolist()[:6]} ... ({len(planted)})")
            with h5py.File(path, "r") as f:
                ds = f[fmt.tap_path(TAP)]
                read_once(ds)  # bring the file into the page cache (as far as it fits)
                t_read = read_once(ds)
            t = time.perf_counter()
            index = open_index(rec, IndexKey(TAP, "tanh", THRESHOLD), cache=False)
            t_build = time.perf_counter() - t
            print(f"(a) read the tap once (64 MB row slabs, h5py, warm): {t_read:.2f} s "
                  f"({n * UNITS * 2 / t_read / 1e9:.2f} GB/s); index build (open_index, cache=False): "
                  f"{t_build:.2f} s -> ratio {t_build / t_read:.2f}x (goal <= 3x)")
            sets = [(f"k={k}", planted[:k]) for k in (3, 10, 30)]
            timings = run_queries(index, sets, args.repeats, f"synthetic {n:,} x {UNITS}")
            if not args.skip_reference:
                one_stream = dataclasses.replace(index, item_offsets=np.array([0, n], np.int64))
                with h5py.File(path, "r") as f:
                    ds = f[fmt.tap_path(TAP)]
                    if args.reference_positions and args.reference_positions < n:
                        n_ref = args.reference_positions // 64 * 64
                        run_reference(_Prefix(ds, n_ref), prefix_index(index, n_ref), sets, timings, n_ref, n,
                                      f"the first {n_ref:,} positions")
                    else:
                        run_reference(ds, one_stream, sets, timings, n, n, f"all {n:,} positions")
            del index

    ptb = args.ptb if args.ptb is not None else args.data_dir / "ptb.h5"
    if ptb.exists():
        ptb_section(ptb, args.repeats, args.skip_reference, args.seed)
    else:
        ptb_howto(args.data_dir)


if __name__ == "__main__":
    sys.exit(main())
