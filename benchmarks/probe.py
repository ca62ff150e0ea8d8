"""Linear probes: ``fit_probe`` against scikit-learn's ``LogisticRegression`` on the same data and objective.

Two cases, each printing measured numbers only (nothing is asserted):

**Real data** (``--real``, the default): a PTB language model trained and recorded with our own CLI
(``lstmviz train lstm --dataset ptb --steps 300 --set hidden_size=128 --set embedding_dim=128``, then
``lstmviz record ... --split test --max-items 1500 --dtype float32``; built once under --data-dir,
needs the ``ptb`` extra). Label: ``pos`` (45 Penn tags). Per tap it prints

  (a) ``fit_probe`` (reads the tap, chooses l2 on the validation items, fits to convergence, scores the
      test items): wall time, chosen l2, test accuracy, the training objective it reached, converged;
  (b) ``LogisticRegression(solver="lbfgs", C = 1 / (2 · l2 · n_train), max_iter=--max-iter)`` on the same
      standardised training rows (loaded separately, not timed): fit time, iterations, test accuracy,
      the same objective evaluated at its solution, and whether it converged;
  (c) the time ratio (b) / (a) and the objective difference (b) − (a) relative to (a);
  (d) one fit each at a fixed ``--fixed-l2`` (default 1e-4; no choice of l2), where scikit-learn
      converges too: the optimisers alone.

**Synthetic** (``--synthetic``): --positions × 512 units (float16, items of 100-300 positions), 10
classes with skewed frequencies, a class mean of norm ~--separation per class: linearly decodable
but not perfectly, and well conditioned (scikit-learn needs few iterations here). Same (a)-(c), with
our fit repeated (--repeat; the first run in a process also pays for first-touch memory).

The objective is mean cross-entropy + l2 · ||W||² over the classes present in training (the bias is
not penalised), computed here in float64 from each solution's weights, so the two are compared on
exactly the same function. scikit-learn is needed only here (``pip install scikit-learn``).

    python benchmarks/probe.py                       # real data (PTB), all four state taps
    python benchmarks/probe.py --synthetic           # 1M x 512 synthetic (builds ~1 GB once)
    python benchmarks/probe.py --synthetic --positions 200000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from lstmviz.analysis.probes import _roles, fit_probe, probe_labels, split_items
from lstmviz.analysis.transforms import tap_stats
from lstmviz.recording import RecordingWriter, open_recording

UNITS = 512
CLASSES = 10
REAL_TAPS = ("layer0/h", "layer0/c", "layer1/h", "layer1/c")


# ---------------------------------------------------------------------------------------------- data


def build_synthetic(path: Path, positions: int, separation: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    bias = rng.normal(0, 2, UNITS).astype(np.float32)
    scale = rng.uniform(0.3, 3.0, UNITS).astype(np.float32)
    centers = rng.standard_normal((CLASSES, UNITS)).astype(np.float32)
    centers *= separation / np.sqrt(UNITS)
    freq = np.linspace(3, 1, CLASSES)
    freq /= freq.sum()
    path.parent.mkdir(parents=True, exist_ok=True)
    with RecordingWriter(path, vocab=[f"w{i}" for i in range(1000)], dtype="float16") as w:
        w.add_tap("layer0/h", UNITS, layer=0, signal="h")
        w.add_annotation("cls", kind="categorical", labels=[f"c{i}" for i in range(CLASSES)])
        done = 0
        while done < positions:
            n = min(int(rng.integers(100, 301)), positions - done)
            y = rng.choice(CLASSES, n, p=freq)
            x = rng.standard_normal((n, UNITS), dtype=np.float32) + centers[y]
            w.append_item(rng.integers(0, 1000, n), {"layer0/h": (x * scale + bias).astype(np.float16)},
                          annotations={"cls": y})
            done += n


def build_real(directory: Path) -> Path:
    """The PTB recording, made with our own CLI (once)."""
    checkpoint, path = directory / "ptb-lstm-300.pt", directory / "ptb-lstm-300-test1500.h5"
    cli = [sys.executable, "-m", "lstmviz.cli"]
    directory.mkdir(parents=True, exist_ok=True)
    if not checkpoint.exists():
        print("training the PTB model with our CLI (300 steps, a few minutes on 2 cores) ...", flush=True)
        subprocess.run([*cli, "train", "lstm", "--dataset", "ptb", "--steps", "300", "--set", "hidden_size=128",
                        "--set", "embedding_dim=128", "--out", str(checkpoint), "--quiet"], check=True)
    if not path.exists():
        subprocess.run([*cli, "record", str(checkpoint), "--dataset", "ptb", "--split", "test", "--max-items",
                        "1500", "--dtype", "float32", "--out", str(path), "--quiet"], check=True)
    return path


def standardised_rows(rec, tap, labels, split, roles=(0, 2)):
    """Training and test rows of ``tap``, standardised (float32), read slab by slab, with their labels."""
    stats = tap_stats(rec, tap)
    mean = stats.mean.astype(np.float32)
    inv = (1.0 / stats.safe_std()).astype(np.float32)
    role = np.where(labels >= 0, _roles(rec, split), -1)
    out = {}
    for r in roles:
        mask = role == r
        x = np.empty((int(mask.sum()), rec.taps[tap].units), np.float32)
        at = 0
        for a in range(0, rec.n_positions, 65536):
            c = min(rec.n_positions, a + 65536)
            m = mask[a:c]
            rows = rec.raw_states(tap, a, c)[m].astype(np.float32)
            x[at:at + len(rows)] = (rows - mean) * inv
            at += len(rows)
        out[r] = (x, labels[mask])
    return out


def objective(x, y, weights, bias, l2) -> float:
    """mean cross-entropy + l2 ||W||² in float64, over the classes present in ``y`` (chunked)."""
    present = np.unique(y)
    w = np.asarray(weights, np.float64)[present]
    b = np.asarray(bias, np.float64)[present]
    idx = np.searchsorted(present, y)
    total = 0.0
    for s in range(0, len(y), 65536):
        z = x[s:s + 65536].astype(np.float64) @ w.T + b
        m = z.max(1, keepdims=True)
        lse = np.log(np.exp(z - m).sum(1)) + m[:, 0]
        total += float(np.sum(lse - z[np.arange(len(z)), idx[s:s + 65536]]))
    return total / len(y) + l2 * float(np.sum(w * w))


def sklearn_fit(x, y, l2, max_iter, n_classes):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0 / (2.0 * l2 * len(y)), solver="lbfgs", max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t = time.perf_counter()
        clf.fit(x, y)
        seconds = time.perf_counter() - t
    weights = np.zeros((n_classes, x.shape[1]))
    bias = np.full(n_classes, -np.inf)
    weights[clf.classes_] = clf.coef_
    bias[clf.classes_] = clf.intercept_
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return clf, weights, bias, seconds, converged


# --------------------------------------------------------------------------------------------- cases


def compare(rec, tap, label, *, max_iter, repeat=1, fixed_l2=None):
    labels = probe_labels(rec, label)
    split = split_items(rec.n_items, seed=0)
    names = list(rec.annotations[label].labels)
    tap_stats(rec, tap)  # cached statistics, as in the application (computed once per recording)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        ours = fit_probe(rec, tap, labels, split, annotation=label, label_names=names)
        times.append(time.perf_counter() - t)
    rows = standardised_rows(rec, tap, labels, split)
    (x, y), (x_test, y_test) = rows[0], rows[2]
    f_ours = objective(x, y, ours.weights, ours.bias, ours.l2)
    runs = " ".join(f"{s:.2f}" for s in times)
    print(f"{tap}: (a) ours {min(times):.2f} s (runs {runs}); l2 {ours.l2:.3g} (chosen among "
          f"{len(ours.valid_accuracy)}); test accuracy {100 * ours.accuracy:.2f}%; objective {f_ours:.6f}; "
          f"converged {ours.converged} after {ours.iterations} iterations", flush=True)
    clf, w, b, seconds, converged = sklearn_fit(x, y, ours.l2, max_iter, len(names))
    f_sk = objective(x, y, w, b, ours.l2)
    acc_sk = float(np.mean(clf.predict(x_test) == y_test))
    print(f"    (b) sklearn lbfgs at C = 1/(2 l2 n) {seconds:.2f} s, {int(np.max(clf.n_iter_))} iterations; test "
          f"accuracy {100 * acc_sk:.2f}%; objective {f_sk:.6f}; converged {converged}")
    print(f"    (c) time sklearn / ours: {seconds / min(times):.1f}x (fit only, against our whole fit with the "
          f"choice of l2); objective sklearn - ours: {(f_sk - f_ours) / f_ours:+.2e} relative; accuracy "
          f"ours - sklearn: {100 * (ours.accuracy - acc_sk):+.2f} points", flush=True)
    if fixed_l2:
        t = time.perf_counter()
        one = fit_probe(rec, tap, labels, split, annotation=label, label_names=names, l2_grid=(fixed_l2,),
                        refine_grid=False)
        mine = time.perf_counter() - t
        clf, w, b, theirs, converged = sklearn_fit(x, y, one.l2, max_iter, len(names))
        f_one, f_sk = objective(x, y, one.weights, one.bias, one.l2), objective(x, y, w, b, one.l2)
        print(f"    (d) both at l2 = {one.l2:g} (C = {1 / (2 * one.l2 * len(y)):.3g}): ours {mine:.2f} s, objective "
              f"{f_one:.6f}, converged {one.converged}; sklearn {theirs:.2f} s ({int(np.max(clf.n_iter_))} iterations), "
              f"objective {f_sk:.6f}, converged {converged}: {theirs / mine:.1f}x, objective sklearn - ours "
              f"{(f_sk - f_one) / f_one:+.2e} relative", flush=True)
    return min(times), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", action="store_true", help="the synthetic case instead of the real one")
    parser.add_argument("--taps", nargs="+", default=list(REAL_TAPS), help="taps of the real case")
    parser.add_argument("--positions", type=int, default=1_000_000)
    parser.add_argument("--separation", type=float, default=3.0)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/lstmviz-bench"))
    parser.add_argument("--max-iter", type=int, default=1000, help="sklearn lbfgs iterations at most")
    parser.add_argument("--repeat", type=int, default=2, help="fits of ours on the synthetic case")
    parser.add_argument("--fixed-l2", type=float, default=1e-4,
                        help="also compare one fit at this l2 (no choice of l2), where both converge (0: skip)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch  # noqa: F401 - the application has imported torch long before a probe runs

    if args.synthetic:
        path = args.data_dir / f"probe-{args.positions}x{UNITS}-s{args.separation:g}.h5"
        if not path.exists():
            build_synthetic(path, args.positions, args.separation)
        with open_recording(path) as rec:
            print(f"synthetic: {rec.n_positions} positions x {UNITS} units (float16), {rec.n_items} items")
            compare(rec, "layer0/h", "cls", max_iter=args.max_iter, repeat=args.repeat, fixed_l2=args.fixed_l2)
        return
    path = build_real(args.data_dir)
    with open_recording(path) as rec:
        print(f"real: {path.name}: {rec.n_positions} positions, {rec.n_items} sentences, label pos "
              f"({len(rec.annotations['pos'].labels)} tags)")
        ratios = [compare(rec, tap, "pos", max_iter=args.max_iter, fixed_l2=args.fixed_l2) for tap in args.taps]
        ours, theirs = sum(r[0] for r in ratios), sum(r[1] for r in ratios)
        print(f"all taps: ours {ours:.1f} s, sklearn {theirs:.1f} s: {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
