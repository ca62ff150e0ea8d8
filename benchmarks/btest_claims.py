"""Does the B-test (Zaremba, Gretton, Blaschko 2013) behave as the paper says? (models_graph_vision A2 (c), (d))

    python benchmarks/btest_claims.py [--reps 200] [--splits 40] [--recording FILE]

1. Type-I and power on synthetic data (``lstmviz.analysis.btest.b_test``, Gaussian kernel, median heuristic):
   5-D standard Gaussians, P = Q, n = 400, B = 20 (``--reps`` seeded repetitions): the rejection rate at
   α = 0.05. Power for a mean shift of 0.3 in one coordinate and in all five, n = 100 .. 3200, B = √n.
   Power against B at n = 1600 (shift 0.3 in all coordinates): B = 2 (linear time) .. B = n / 2.
   The sampling unit: items with an item effect, P = Q over items; type-I with every position a sample
   against one random position per item.
2. Runtime against B at n = 4000 (d = 5): B = 2, √n, n (one block: the quadratic-time MMD²_u, no p-value),
   each the median of 5 calls; the ratio to B = 2 measured in the same run.
3. States of a digits model (the bundled CNN ``assets/demo/digits-cnn.pt`` recorded over the digits train
   split, 1,078 images, float32; or ``--recording FILE`` of an image recording with the item annotation
   ``class``), one vector per image (``btest_groups``, items as the sampling unit):
   - "3" against "8" per tap (pooled, logits, conv3 and conv1: one random cell per image, and the mean
     over the map), p-value against B (2, √n, n);
   - two random halves of the "3"s (``--splits`` seeded splits): rejection rate per tap;
   - the sampling-unit rule on real states: the same random halves of "3"s on conv1 with every *cell*
     taken as a sample (the positions of one image are dependent) against one random cell per image.

Prints tables; never passes or fails on time (2 shared cores: timings are noisy, ratios are what count).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from lstmviz.analysis.btest import b_test, median_bandwidth
from lstmviz.analysis.btest_groups import Groups, annotation_groups, compare_groups, row_groups
from lstmviz.recording import open_recording

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "assets" / "demo" / "digits-cnn.pt"


def rate(n, shift, reps, *, block_size=None, d=5, shift_all=False, seed0=0):
    hits = 0
    for r in range(reps):
        rng = np.random.default_rng(seed0 + r)
        x = rng.normal(size=(n, d))
        y = rng.normal(size=(n, d))
        if shift_all:
            y += shift
        else:
            y[:, 0] += shift
        hits += b_test(x, y, block_size=block_size, seed=r).reject
    return hits / reps


def binomial_ci(p, n):
    half = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n)
    return max(0.0, p - half), min(1.0, p + half)


def synthetic(reps):
    print("1. Type-I and power, 5-D Gaussians, alpha = 0.05")
    t0 = time.perf_counter()
    typ1 = rate(400, 0.0, reps, block_size=20, seed0=10_000)
    lo, hi = binomial_ci(typ1, reps)
    print(f"   type-I at n = 400, B = 20 over {reps} repetitions: {typ1:.3f} (95% binomial interval {lo:.3f}-{hi:.3f})"
          f"   [{time.perf_counter() - t0:.1f} s]")
    preps = max(40, reps // 4)
    print(f"   power against n (B = floor(sqrt n), {preps} repetitions each):")
    print("        n   B   shift 0.3 in x_1   shift 0.3 in every x_i")
    for n in (100, 400, 1600, 3200):
        one = rate(n, 0.3, preps, seed0=20_000)
        allc = rate(n, 0.3, preps, shift_all=True, seed0=30_000)
        print(f"   {n:6d} {math.isqrt(n):3d}   {one:16.2f}   {allc:21.2f}")
    print(f"   power against B at n = 1600 (shift 0.3 in every x_i, {preps} repetitions), and type-I at the same B:")
    print("        B  blocks   power   type-I")
    for b in (2, 10, 40, 160, 800):
        pw = rate(1600, 0.3, preps, block_size=b, shift_all=True, seed0=40_000)
        t1 = rate(1600, 0.0, preps, block_size=b, seed0=50_000)
        print(f"   {b:6d} {1600 // b:7d}   {pw:5.2f}   {t1:6.2f}")
    sampling_unit(reps)


def sampling_unit(reps, items=40, per=25, d=5):
    """P = Q at the level of items: every item has its own offset (item effect, N(0, I)) and its positions
    scatter around it (N(0, 0.25 I)); two groups of ``items`` different items, ``per`` positions each."""
    pos = one = 0
    for r in range(reps):
        rng = np.random.default_rng(60_000 + r)
        xa = rng.normal(size=(items, 1, d)) + 0.5 * rng.normal(size=(items, per, d))
        xb = rng.normal(size=(items, 1, d)) + 0.5 * rng.normal(size=(items, per, d))
        pos += b_test(xa.reshape(-1, d), xb.reshape(-1, d), seed=r).reject
        pick = rng.integers(0, per, items)
        one += b_test(xa[np.arange(items), pick], xb[np.arange(items), pick], seed=r).reject
    print(f"   the sampling unit (P = Q over items; {items} items a side, {per} positions each, item effect "
          f"var 1, within-item var 0.25; {reps} repetitions):")
    print(f"     every position a sample (n = {items * per}): type-I {pos / reps:.2f};"
          f"  one random position per item (n = {items}): type-I {one / reps:.2f}")


def runtimes():
    print("\n2. Runtime against B, n = 4000 per side, d = 5 (median of 5 calls, bandwidth fixed)")
    rng = np.random.default_rng(0)
    n = 4000
    x, y = rng.normal(size=(n, 5)), rng.normal(size=(n, 5)) + 0.1
    sigma = median_bandwidth(x, y)
    base = None
    for b in (2, math.isqrt(n), n):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            res = b_test(x, y, block_size=b, bandwidth=sigma)
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        base = med if base is None else base
        p = "  (one block: no p)" if res.n_blocks == 1 else f"  p = {res.p_value:.3g}"
        print(f"   B = {b:5d}: {1000 * med:8.2f} ms  ({med / base:6.1f}x B = 2)  statistic {res.statistic:.4f}{p}")


def record_digits(out: Path) -> Path:
    from lstmviz.cli import main

    t0 = time.perf_counter()
    code = main(["record", str(CHECKPOINT), "--split", "train", "--dtype", "float32", "--out", str(out), "--quiet"])
    if code != 0:
        raise SystemExit(f"recording the digits CNN failed (exit {code})")
    print(f"   recorded {CHECKPOINT.name} over the digits train split in {time.perf_counter() - t0:.1f} s")
    return out


def digits(path: Path, splits: int):
    print(f"\n3. Digits CNN states ({path.name}), one vector per image")
    with open_recording(path) as rec:
        g38 = annotation_groups(rec, "class", "3", "8")
        print(f"   images: '3' {len(g38.a)}, '8' {len(g38.b)}")
        print("   '3' vs '8' (alpha 0.05): p-value and runtime against B")
        print("   tap (per image)         B=2: p       ms     B=sqrt(n): p    ms     B=n: statistic  ms")
        taps = [("pooled", "sample"), ("logits", "sample"), ("conv3", "sample"), ("conv3", "mean"),
                ("conv1", "sample"), ("conv1", "mean")]
        for tap, per_item in taps:
            cells = []
            n_items = None
            for b in (2, None, "n"):
                t0 = time.perf_counter()
                if b == "n":
                    probe = compare_groups(rec, [tap], g38, per_item=per_item, block_size=2)
                    bsz = min(probe.tests[0].items_a, probe.tests[0].items_b)
                else:
                    bsz = b
                c = compare_groups(rec, [tap], g38, per_item=per_item, block_size=bsz)
                ms = 1000 * (time.perf_counter() - t0)
                r = c.tests[0].result
                n_items = r.n
                cells.append(f"{r.statistic:12.4f} {ms:5.0f}" if r.n_blocks == 1 else f"{r.p_value:9.2g} {ms:6.0f}")
            label = f"{tap} ({'random cell' if per_item == 'sample' and tap.startswith('conv') else per_item})"
            print(f"   {label:<22} {cells[0]}   {cells[1]}    {cells[2]}   (n = {n_items})")

        threes = np.asarray(g38.a)
        print(f"\n   two random halves of the '3's ({len(threes) // 2} images each), {splits} seeded splits, B = sqrt(n):")
        print("   tap (per image)        rejections   mean p")
        rows = {}
        for tap, per_item in taps:
            rej, ps = 0, []
            for s in range(splits):
                perm = np.random.default_rng(100 + s).permutation(threes)
                half = len(perm) // 2
                g = Groups("3 (half A)", "3 (half B)", np.sort(perm[:half]), np.sort(perm[half:2 * half]), None,
                           "two random halves of the 3s")
                r = compare_groups(rec, [tap], g, per_item=per_item, seed=s).tests[0].result
                rej += r.reject
                ps.append(r.p_value)
            rows[(tap, per_item)] = rej
            label = f"{tap} ({'random cell' if per_item == 'sample' and tap.startswith('conv') else per_item})"
            print(f"   {label:<22} {rej:4d}/{splits:<4}   {np.mean(ps):6.2f}")

        print("\n   the sampling unit: the same halves of the '3's on conv1, every cell a sample vs one cell per image")
        offsets = rec.axis_offsets(rec.taps["conv1"].axis)
        rej_cells, rej_items = 0, 0
        n_cells = 0
        conv1 = rec.states("conv1")
        for s in range(splits):
            perm = np.random.default_rng(100 + s).permutation(threes)
            half = len(perm) // 2
            a, b = np.sort(perm[:half]), np.sort(perm[half:2 * half])
            rows_a = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in a])
            rows_b = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in b])
            xa, xb = conv1[rows_a], conv1[rows_b]
            n_cells = min(len(xa), len(xb))
            rej_cells += b_test(xa, xb, seed=s).reject
            rej_items += compare_groups(rec, ["conv1"], row_groups(rows_a, rows_b, rec.taps["conv1"].axis),
                                        seed=s).tests[0].result.reject
        print(f"   every cell a sample (n = {n_cells} per side): {rej_cells}/{splits} rejections")
        print(f"   one random cell per image (n = {half}):        {rej_items}/{splits} rejections   (alpha = 0.05)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--splits", type=int, default=40)
    ap.add_argument("--recording", type=Path, help="an image recording with the item annotation 'class'")
    args = ap.parse_args()
    t0 = time.perf_counter()
    synthetic(args.reps)
    runtimes()
    if args.recording is not None:
        digits(args.recording, args.splits)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            digits(record_digits(Path(tmp) / "digits-train.h5"), args.splits)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
