"""Linear probes at scale: ``fit_probe`` vs scikit-learn's ``LogisticRegression`` on the same data.

A synthetic recording of --positions positions x 512 units (float16, items of 100-300 positions) is
built once under --data-dir. Each position carries one of 10 classes (skewed frequencies); a tap holds
per-unit bias and scale + N(0, 1) noise + a class mean (a random vector of norm ~--separation) so that
the label is linearly decodable but not perfectly. In one run it prints:

  (a) ``fit_probe`` --repeat times (the first run in a process also pays for first-touch memory):
      wall time of the whole fit from the file (read the tap, choose l2 among 4 on the validation
      items, fit, score the test items), chosen l2, held-out accuracy with its 95% item-bootstrap
      interval;
  (a') optionally, the same with ``max_positions=--max-positions`` (a seeded subset of the training
       positions);
  (b) ``sklearn.linear_model.LogisticRegression(solver="lbfgs")`` --sklearn-repeat times on the same
      standardised training positions (float32, loaded into memory slab by slab; the load is timed
      separately), at C = 1 / (2 · l2 · n_train), the same objective as ours at the chosen l2, scored
      on the same test positions;
  (c) the time ratios, best run of each (sklearn fit only, and sklearn load + fit, over our whole fit;
      also against our first run) and the accuracy difference (goal: >= 5x, within 1 point).

Measured numbers only; nothing is asserted. scikit-learn is needed only here (``pip install
scikit-learn``), never by lstmviz.

    python benchmarks/probe.py                         # 1M x 512 (builds ~1 GB once)
    python benchmarks/probe.py --positions 200000      # quicker
    python benchmarks/probe.py --max-positions 100000  # also fit on a training subsample
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from lstmviz.analysis.probes import fit_probe, probe_labels, split_items
from lstmviz.analysis.transforms import tap_stats
from lstmviz.recording import RecordingWriter, open_recording

TAP = "layer0/h"
UNITS = 512
CLASSES = 10


def build(path: Path, positions: int, separation: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    bias = rng.normal(0, 2, UNITS).astype(np.float32)
    scale = rng.uniform(0.3, 3.0, UNITS).astype(np.float32)
    centers = rng.standard_normal((CLASSES, UNITS)).astype(np.float32)
    centers *= separation / np.sqrt(UNITS)
    freq = np.linspace(3, 1, CLASSES)
    freq /= freq.sum()
    path.parent.mkdir(parents=True, exist_ok=True)
    with RecordingWriter(path, vocab=[f"w{i}" for i in range(1000)], dtype="float16") as w:
        w.add_tap(TAP, UNITS, layer=0, signal="h")
        w.add_annotation("cls", kind="categorical", labels=[f"c{i}" for i in range(CLASSES)])
        done = 0
        while done < positions:
            n = min(int(rng.integers(100, 301)), positions - done)
            y = rng.choice(CLASSES, n, p=freq)
            x = rng.standard_normal((n, UNITS), dtype=np.float32) + centers[y]
            w.append_item(rng.integers(0, 1000, n), {TAP: (x * scale + bias).astype(np.float16)},
                          annotations={"cls": y})
            done += n


def load_for_sklearn(rec, split, labels):
    """The training and test rows, standardised as float32 arrays in memory, read slab by slab."""
    stats = tap_stats(rec, TAP)
    mean = stats.mean.astype(np.float32)
    inv = (1.0 / stats.safe_std()).astype(np.float32)
    items = rec.item_of(np.arange(rec.n_positions))
    train = np.isin(items, split[0]) & (labels >= 0)
    test = np.isin(items, split[2]) & (labels >= 0)
    x_train = np.empty((int(train.sum()), UNITS), np.float32)
    x_test = np.empty((int(test.sum()), UNITS), np.float32)
    i = j = 0
    buf = np.empty((65536, UNITS), np.float16)
    for a in range(0, rec.n_positions, len(buf)):
        c = min(rec.n_positions, a + len(buf))
        x = rec.raw_states(TAP, a, c, out=buf[: c - a])
        for mask, out, at in ((train[a:c], x_train, i), (test[a:c], x_test, j)):
            rows = x[mask]
            np.subtract(rows, mean, out=out[at:at + len(rows)])
            out[at:at + len(rows)] *= inv
        i += int(train[a:c].sum())
        j += int(test[a:c].sum())
    return x_train, labels[train], x_test, labels[test]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=1_000_000)
    parser.add_argument("--separation", type=float, default=3.0)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/lstmviz-bench"))
    parser.add_argument("--max-positions", type=int, default=0,
                        help="also fit on a random subset of this many training positions (0: skip)")
    parser.add_argument("--max-iter", type=int, default=1000, help="sklearn lbfgs iterations at most")
    parser.add_argument("--repeat", type=int, default=3, help="fits of ours (the machine is noisy)")
    parser.add_argument("--sklearn-repeat", type=int, default=2, help="fits of scikit-learn's")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    path = args.data_dir / f"probe-{args.positions}x{UNITS}-s{args.separation:g}.h5"
    if not path.exists():
        t = time.perf_counter()
        build(path, args.positions, args.separation)
        print(f"built {path} in {time.perf_counter() - t:.1f} s")
    import torch  # noqa: F401 - the application has imported torch long before a probe runs

    with open_recording(path) as rec:
        labels = probe_labels(rec, "cls")
        split = split_items(rec.n_items, seed=0)
        names = list(rec.annotations["cls"].labels)
        tap_stats(rec, TAP)  # cached statistics, as in the application (computed once per recording)
        print(f"recording: {rec.n_positions} positions x {UNITS} units (float16), {rec.n_items} items")

        times = []
        for attempt in range(args.repeat):
            t = time.perf_counter()
            ours = fit_probe(rec, TAP, labels, split, annotation="cls", label_names=names)
            times.append(time.perf_counter() - t)
            print(f"(a) fit_probe run {attempt + 1}{' (first in this process)' if attempt == 0 else ''}: "
                  f"{times[-1]:.2f} s (reads the tap, chooses l2 among {len(ours.valid_accuracy)}, fits "
                  f"{ours.n_train} train positions); l2 = {ours.l2:.3g}; test accuracy "
                  f"{100 * ours.accuracy:.2f}% [{100 * ours.ci_low:.2f}, {100 * ours.ci_high:.2f}] on "
                  f"{ours.n_test} positions; majority {100 * ours.majority_accuracy:.2f}%", flush=True)

        if args.max_positions:
            t = time.perf_counter()
            sub = fit_probe(rec, TAP, labels, split, annotation="cls", label_names=names,
                            max_positions=args.max_positions)
            print(f"(a') fit_probe(max_positions={args.max_positions}): {time.perf_counter() - t:.2f} s; "
                  f"test accuracy {100 * sub.accuracy:.2f}% [{100 * sub.ci_low:.2f}, {100 * sub.ci_high:.2f}]")

        from sklearn.linear_model import LogisticRegression  # after our fits: its OpenMP runtime is not ours

        t = time.perf_counter()
        x_train, y_train, x_test, y_test = load_for_sklearn(rec, split, labels)
        t_load = time.perf_counter() - t
        c = 1.0 / (2.0 * ours.l2 * len(y_train))
        sk_times = []
        for attempt in range(args.sklearn_repeat):
            t = time.perf_counter()
            clf = LogisticRegression(C=c, solver="lbfgs", max_iter=args.max_iter)
            clf.fit(x_train, y_train)
            sk_times.append(time.perf_counter() - t)
            print(f"(b) sklearn LogisticRegression(lbfgs, C={c:.3g}, the objective of (a)) run {attempt + 1}: "
                  f"fit {sk_times[-1]:.2f} s ({int(np.max(clf.n_iter_))} iterations)", flush=True)
        acc_sk = float(np.mean(clf.predict(x_test) == y_test))
        print(f"    its test accuracy {100 * acc_sk:.2f}% on {len(y_test)} positions; loading and "
              f"standardising its data took {t_load:.2f} s")
        best, first, sk = min(times), times[0], min(sk_times)
        print(f"(c) speed-up, best of each (ours {best:.2f} s, sklearn {sk:.2f} s): {sk / best:.1f}x "
              f"(sklearn fit only), {(sk + t_load) / best:.1f}x (sklearn load + fit); against our first run "
              f"in the process: {sk / first:.1f}x / {(sk + t_load) / first:.1f}x. Accuracy ours - sklearn = "
              f"{100 * (ours.accuracy - acc_sk):+.2f} points. Goal: >= 5x, within 1 point.")

if __name__ == "__main__":
    main()
