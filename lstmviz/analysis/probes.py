"""Linear classifier probes on frozen states (Alain & Bengio), with control tasks (Hewitt & Liang).

A probe asks how much of a categorical label can be read off a tap *linearly*. For a position ``p``
with raw state ``x_p`` (one row of the tap) the probe sees the standardised state

    z_p = (x_p - mean) / std          (per unit, over the whole tap: ``transforms.tap_stats``;
                                       a constant unit has std 1, a non-finite value becomes 0)

and predicts

    P(y = k | z_p) = softmax(W · z_p + b)_k,        W: [classes, units], b: [classes]

trained by minimising the mean cross-entropy over the training positions plus an L2 penalty,

    loss(W, b) = mean_p [-log softmax(W · z_p + b)_{y_p}] + l2 · ||W||²    (b is not penalised).

One probe is trained per value of ``l2`` in ``l2_grid`` (all of them in the same passes over the tap,
as one stacked matrix, with Adam on shuffled minibatches and a linearly decaying learning rate); the
value with the best accuracy on the validation items is kept and scored on the test items. Training,
validation and test positions come from disjoint sets of *items* (``split_items``), so no sequence
contributes to both sides. The tap is read slab by slab in the stored dtype (``Recording.raw_states``),
so taps larger than memory work; memory is bounded by one slab plus the label arrays, plus the
standardised training rows when they fit in ``IN_MEMORY_BYTES`` (then the tap is read once for
training instead of once per epoch; ``max_positions`` subsamples the training positions to get there).

**Control task** (Hewitt & Liang 2019, "Designing and Interpreting Probes with Control Tasks"): every
token *type* (the vocabulary id at a position) gets one label drawn at random (fixed seed) from the
empirical distribution of the labels on the training positions; every labelled position then carries
the label of its token type. A probe that scores as well on this task as on the real one only
memorises token identity; *selectivity* = accuracy − control accuracy.

Accuracy intervals are 95% percentile bootstrap intervals over test *items* (the unit that was
sampled), not over positions, which are correlated within an item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lstmviz.analysis._index_stream import slab_rows
from lstmviz.analysis.transforms import tap_stats
from lstmviz.tasks import Task, ensure_task

DEFAULT_L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
BOOTSTRAP_SAMPLES = 1000
IN_MEMORY_BYTES = 512 * 1024 * 1024
"""Standardised training rows (float32) up to this size are read once and kept for all epochs."""
MIN_STEPS = 400
"""A probe takes at least this many optimiser steps however few training positions there are."""
INPUT_TAP = "<input tokens>"
"""The ``tap`` of the result of ``input_baseline``."""


@dataclass
class ProbeResult:
    """One fitted probe and its held-out scores.

    ``weights`` ``[classes, units]`` and ``bias`` ``[classes]`` act on standardised units (see the
    module docstring). ``confusion[i, j]`` counts test positions of true class ``i`` predicted as
    ``j``. ``per_class_accuracy[i]`` is NaN for a class absent from the test positions.
    """

    tap: str
    annotation: str
    labels: list[str]
    accuracy: float
    ci_low: float
    ci_high: float
    majority_accuracy: float
    l2: float
    weights: np.ndarray
    bias: np.ndarray
    confusion: np.ndarray
    per_class_accuracy: np.ndarray
    n_train: int
    n_test: int
    control: bool = False
    shift: int = 0
    valid_accuracy: dict = field(default_factory=dict)  # l2 -> validation accuracy

    @property
    def n_classes(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------------------------- split


def split_items(n_items: int, *, fractions=(0.7, 0.15, 0.15), seed: int = 0):
    """Disjoint, sorted int64 arrays ``(train_items, valid_items, test_items)`` covering all items.

    Items are shuffled with ``seed`` and cut by ``fractions`` (normalised to sum to 1); validation and
    test get at least one item each. Raises ``ValueError`` with fewer than 3 items.
    """
    n_items = int(n_items)
    if n_items < 3:
        raise ValueError(f"A probe needs at least 3 items (train, validation, test); the recording has "
                         f"{n_items}.")
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or np.any(f < 0) or f.sum() <= 0:
        raise ValueError(f"fractions must be three non-negative numbers (train, valid, test), got "
                         f"{fractions!r}.")
    f = f / f.sum()
    n_valid = max(1, round(f[1] * n_items))
    n_test = max(1, round(f[2] * n_items))
    while n_items - n_valid - n_test < 1:
        if n_valid >= n_test and n_valid > 1:
            n_valid -= 1
        else:
            n_test -= 1
    order = np.random.default_rng(seed).permutation(n_items)
    test = np.sort(order[:n_test])
    valid = np.sort(order[n_test:n_test + n_valid])
    train = np.sort(order[n_test + n_valid:])
    return train.astype(np.int64), valid.astype(np.int64), test.astype(np.int64)


# -------------------------------------------------------------------------------------------- labels


def probe_labels(recording, annotation: str, *, shift: int = 0) -> np.ndarray:
    """Label ids (int32, one per position of the main axis; -1 = missing) of a categorical annotation.

    A position-level annotation is used as is; an item-level one is broadcast to all positions of its
    item. ``shift = s`` gives position ``p`` the label of position ``p + s`` of the same item
    (``shift=1``: the next token's label); positions whose ``p + s`` falls outside their item get -1.
    """
    info = recording.annotations.get(annotation)
    if info is None:
        recording.annotation(annotation, 0, 0)  # the reader's error lists the annotations the file has
        raise KeyError(annotation)
    if info.kind != "categorical" or not info.labels:
        raise ValueError(f"A probe predicts a categorical label, but the annotation {annotation!r} is "
                         f"{info.kind}; choose a categorical annotation.")
    offsets = np.asarray(recording.item_offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    values = np.asarray(recording.annotation(annotation), dtype=np.int32)
    if info.level == "item":
        values = np.repeat(values, lengths)
    values = np.where((values >= 0) & (values < len(info.labels)), values, -1).astype(np.int32)
    shift = int(shift)
    if shift == 0:
        return values
    n = len(values)
    item = np.repeat(np.arange(len(lengths)), lengths)
    target = np.arange(n, dtype=np.int64) + shift
    inside = (target >= 0) & (target < n)
    ok = np.zeros(n, bool)
    ok[inside] = item[target[inside]] == item[inside]
    out = np.full(n, -1, np.int32)
    out[ok] = values[target[ok]]
    return out


def control_labels(recording, labels: np.ndarray, train_items, *, seed: int = 0,
                   n_classes: int | None = None) -> np.ndarray:
    """Hewitt & Liang's control labels: each token type gets one label drawn from the empirical label
    distribution of the labelled training positions; labelled positions take their type's label."""
    labels = np.asarray(labels)
    tokens = recording.token_ids(0, recording.n_positions)
    role = _roles(recording, (train_items, (), ()))
    train_labels = labels[(role == 0) & (labels >= 0)]
    k = int(n_classes if n_classes is not None else (labels.max() + 1 if labels.size else 1))
    counts = np.bincount(train_labels, minlength=k).astype(float)
    if counts.sum() == 0:
        counts[:] = 1.0
    n_types = max(len(recording.vocab), int(tokens.max()) + 1 if tokens.size else 0, 1)
    rng = np.random.default_rng(seed)
    per_type = rng.choice(k, size=n_types, p=counts / counts.sum()).astype(np.int32)
    out = np.where(labels >= 0, per_type[np.clip(tokens, 0, n_types - 1)], -1).astype(np.int32)
    return out


def _roles(recording, split) -> np.ndarray:
    """int8 per position: 0 train, 1 valid, 2 test, -1 in no split."""
    offsets = np.asarray(recording.item_offsets, dtype=np.int64)
    item_role = np.full(len(offsets) - 1, -1, np.int8)
    for r, items in enumerate(split):
        items = np.asarray(items, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= len(item_role)):
            raise ValueError(f"split names items outside 0..{len(item_role) - 1}.")
        if np.any(item_role[items] >= 0):
            raise ValueError("The split's item sets overlap; train, validation and test items must be "
                             "disjoint.")
        item_role[items] = r
    return np.repeat(item_role, np.diff(offsets))


# ----------------------------------------------------------------------------------------- the probe


def fit_probe(recording, tap: str, labels: np.ndarray, split, *, l2_grid=DEFAULT_L2_GRID,
              control: bool = False, task=None, seed: int = 0, max_positions: int | None = None,
              annotation: str = "", label_names: list[str] | None = None, epochs: int = 4,
              batch_size: int = 1024, lr: float = 0.01, shift: int = 0) -> ProbeResult:
    """Fit a linear softmax probe on ``tap`` to ``labels`` (``probe_labels``) and score it.

    ``split`` is ``(train_items, valid_items, test_items)`` (``split_items``). ``l2`` is chosen from
    ``l2_grid`` by validation accuracy. ``control=True`` replaces the labels by the control task's
    (module docstring). ``epochs`` passes over the training positions (more on small data, so that
    there are at least ``MIN_STEPS`` minibatches). ``max_positions`` caps the training positions (a seeded random subset).
    ``annotation`` / ``label_names`` only name the result (``probe_all`` fills them). Progress:
    ``task.progress(rows_done, rows_total, "Probe <tap>")``; cancel raises ``Cancelled``.
    """
    import torch

    task = ensure_task(task)
    info = recording.taps.get(tap)
    if info is None:
        recording.raw_states(tap, 0, 0)
        raise KeyError(tap)
    if info.axis != "positions":
        raise ValueError(f"Tap {tap!r} lies on the axis {info.axis!r}, not on the positions that the "
                         f"labels describe; a probe needs a tap on the main axis.")
    labels = np.asarray(labels, dtype=np.int32)
    n = recording.n_positions
    if labels.shape != (n,):
        raise ValueError(f"labels must have one value per position ({n}), got shape {labels.shape}.")
    grid = [float(v) for v in l2_grid]
    if not grid or any(v < 0 or not math.isfinite(v) for v in grid):
        raise ValueError(f"l2_grid must hold non-negative numbers, got {l2_grid!r}.")
    k = len(label_names) if label_names else int(labels.max()) + 1
    k = max(k, int(labels.max()) + 1, 1)
    names = list(label_names) if label_names and len(label_names) == k else [str(i) for i in range(k)]
    if control:
        labels = control_labels(recording, labels, split[0], seed=seed, n_classes=k)
    role = _roles(recording, split)
    role = np.where(labels >= 0, role, -1).astype(np.int8)
    if max_positions is not None:
        train_pos = np.flatnonzero(role == 0)
        if len(train_pos) > max_positions:
            drop = np.random.default_rng(seed + 1).choice(len(train_pos), len(train_pos) - int(max_positions),
                                                          replace=False)
            role[train_pos[drop]] = -1
    n_train = int(np.count_nonzero(role == 0))
    n_test = int(np.count_nonzero(role == 2))
    if n_train == 0 or n_test == 0 or not np.any(role == 1):
        raise ValueError(f"The label has no positions in one of the train/validation/test items "
                         f"({n_train} train, {n_test} test); pick another label or more items.")

    units = info.units
    g = len(grid)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    try:
        gen = torch.Generator().manual_seed(seed)
        w = torch.zeros(units, g * k, requires_grad=True)
        b = torch.zeros(g, k, requires_grad=True)
        l2 = torch.as_tensor(grid, dtype=torch.float32).view(g, 1, 1)
        opt = torch.optim.Adam([w, b], lr=lr)
        rows = slab_rows(units, np.dtype(info.dtype).itemsize, 64)
        slabs = [(a, min(n, a + rows)) for a in range(0, n, rows)]
        per_slab = [int(np.count_nonzero(role[a:c] == 0)) for a, c in slabs]
        per_epoch = max(1, sum(-(-m // batch_size) for m in per_slab))
        epochs = max(int(epochs), -(-MIN_STEPS // per_epoch))  # small data: enough steps to converge
        steps_total = epochs * per_epoch
        lr_at = lambda step: lr * max(0.02, 1.0 - step / steps_total)
        buf = np.empty((min(rows, n), units), np.dtype(info.dtype))
        work_total = (epochs + 2) * n  # statistics (cached after the first probe), epochs, evaluation
        stats = tap_stats(recording, tap, task=Task(on_progress=lambda d, t, m: task.progress(
            min(n, d), work_total, m)))
        mean = torch.as_tensor(stats.mean, dtype=torch.float32)
        inv_std = torch.as_tensor(1.0 / stats.safe_std(), dtype=torch.float32)
        message = f"Probe {tap}" + (" (control)" if control else "")
        rng = np.random.default_rng(seed)
        step = 0
        done = n
        task.progress(done, work_total, message)
        labels_t = torch.from_numpy(labels.astype(np.int64))
        in_memory = n_train * units * 4 <= IN_MEMORY_BYTES  # else every epoch re-reads the tap
        kept: dict[int, tuple] = {}
        for _epoch in range(epochs):
            for si in rng.permutation(len(slabs)):
                a, c = slabs[si]
                if per_slab[si] == 0:
                    done += c - a
                    continue
                if si in kept:
                    z, y = kept[si]
                else:
                    idx = np.flatnonzero(role[a:c] == 0)
                    z = _standardise(recording, tap, a, c, buf, idx, mean, inv_std)
                    y = labels_t[a + torch.from_numpy(idx)]
                    if in_memory:
                        kept[si] = (z, y)
                perm = torch.randperm(len(y), generator=gen)
                for s in range(0, len(y), batch_size):
                    sel = perm[s:s + batch_size]
                    for group in opt.param_groups:
                        group["lr"] = lr_at(step)
                    logits = (z[sel] @ w).view(-1, g, k) + b
                    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, k),
                                                           y[sel].repeat_interleave(g), reduction="sum")
                    loss = ce / len(sel) + (l2 * w.view(units, g, k).permute(1, 0, 2).square()).sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    step += 1
                done += c - a
                task.progress(done, work_total, message)
        # one pass: predictions of every l2 on validation and test positions
        with torch.no_grad():
            w_all = w.detach()
            valid_correct = np.zeros(g, np.int64)
            n_valid = 0
            test_pred = np.full(n, -1, np.int32)
            test_pred_all = []
            test_pos = []
            for a, c in slabs:
                idx = np.flatnonzero(role[a:c] >= 1)
                if len(idx):
                    z = _standardise(recording, tap, a, c, buf, idx, mean, inv_std)
                    pred = ((z @ w_all).view(-1, g, k) + b.detach()).argmax(-1).numpy()  # [rows, g]
                    r = role[a:c][idx]
                    y = labels[a + idx]
                    v = r == 1
                    valid_correct += (pred[v] == y[v, None]).sum(0)
                    n_valid += int(v.sum())
                    t = r == 2
                    test_pred_all.append(pred[t])
                    test_pos.append(a + idx[t])
                done += c - a
                task.progress(done, work_total, message)
    finally:
        torch.set_num_threads(threads)

    valid_acc = valid_correct / max(1, n_valid)
    best = int(np.argmax(valid_acc))  # ties: the smallest l2 in grid order
    test_pos = np.concatenate(test_pos)
    test_pred[test_pos] = np.concatenate(test_pred_all)[:, best]
    weights = w_all.view(units, g, k)[:, best, :].T.numpy().astype(np.float32).copy()
    bias = b.detach()[best].numpy().astype(np.float32).copy()
    train_labels = labels[role == 0]
    return _score(recording, tap, annotation, names, labels, role, test_pos, test_pred[test_pos],
                  train_labels, l2=grid[best], weights=weights, bias=bias, control=control, seed=seed,
                  shift=shift, valid_accuracy={grid[i]: float(valid_acc[i]) for i in range(g)})


def _standardise(recording, tap, a, c, buf, idx, mean, inv_std):
    import torch

    x = recording.raw_states(tap, a, c, out=buf[: c - a])
    z = torch.from_numpy(np.ascontiguousarray(x[idx])).float()
    z = (z - mean) * inv_std
    return torch.nan_to_num_(z, nan=0.0, posinf=0.0, neginf=0.0)


def _score(recording, tap, annotation, names, labels, role, test_pos, pred, train_labels, *, l2, weights,
           bias, control, seed, shift, valid_accuracy) -> ProbeResult:
    k = len(names)
    y = labels[test_pos]
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y, pred), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(confusion) / confusion.sum(1)
    correct = pred == y
    accuracy = float(correct.mean())
    majority = int(np.argmax(np.bincount(train_labels, minlength=k)))
    majority_accuracy = float(np.mean(y == majority))
    items = recording.item_of(test_pos)
    ci_low, ci_high = bootstrap_ci(items, correct, seed=seed)
    return ProbeResult(tap=tap, annotation=annotation, labels=names, accuracy=accuracy, ci_low=ci_low,
                       ci_high=ci_high, majority_accuracy=majority_accuracy, l2=float(l2),
                       weights=weights, bias=bias, confusion=confusion, per_class_accuracy=per_class,
                       n_train=len(train_labels), n_test=len(test_pos), control=bool(control),
                       shift=int(shift), valid_accuracy=valid_accuracy)


def bootstrap_ci(items, correct, *, samples: int = BOOTSTRAP_SAMPLES, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy, resampling *items* with replacement.

    ``items[i]`` is the item of test position ``i`` and ``correct[i]`` whether it was predicted right.
    """
    items = np.asarray(items)
    correct = np.asarray(correct, dtype=np.float64)
    if len(items) == 0:
        return math.nan, math.nan
    uniq, inv = np.unique(items, return_inverse=True)
    hits = np.bincount(inv, weights=correct)
    totals = np.bincount(inv).astype(np.float64)
    m = len(uniq)
    rng = np.random.default_rng(seed)
    accs = np.empty(samples)
    chunk = max(1, 4_000_000 // max(1, m))
    for s in range(0, samples, chunk):
        e = min(samples, s + chunk)
        draw = rng.integers(0, m, size=(e - s, m))
        accs[s:e] = hits[draw].sum(1) / totals[draw].sum(1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(accs, alpha)), float(np.quantile(accs, 1.0 - alpha))


# --------------------------------------------------------------------------------------- baselines


def input_baseline(recording, labels: np.ndarray, split, *, annotation: str = "",
                   label_names: list[str] | None = None, seed: int = 0, shift: int = 0) -> ProbeResult:
    """The probe on the model's inputs: one-hot token ids.

    Implemented as a per-token-type majority classifier fitted on the training items (an unseen type
    predicts the overall training majority). On one-hot inputs a linear softmax probe scores each
    position by the weight column of its token type alone, so its best possible accuracy is exactly
    this classifier's; an L2-regularised probe matches it up to regularisation. ``weights``
    ``[classes, vocab]`` is the one-hot table of each type's predicted class; ``l2`` is 0.
    """
    labels = np.asarray(labels, dtype=np.int32)
    n = recording.n_positions
    if labels.shape != (n,):
        raise ValueError(f"labels must have one value per position ({n}), got shape {labels.shape}.")
    k = max(len(label_names) if label_names else 0, int(labels.max()) + 1, 1)
    names = list(label_names) if label_names and len(label_names) == k else [str(i) for i in range(k)]
    role = np.where(labels >= 0, _roles(recording, split), -1).astype(np.int8)
    tokens = recording.token_ids(0, n)
    n_types = max(len(recording.vocab), int(tokens.max()) + 1 if tokens.size else 0, 1)
    tr = role == 0
    train_labels = labels[tr]
    if train_labels.size == 0 or not np.any(role == 2):
        raise ValueError("The label has no positions in the train or test items; pick another label.")
    majority = int(np.argmax(np.bincount(train_labels, minlength=k)))
    counts = np.zeros((n_types, k), np.int64)
    np.add.at(counts, (tokens[tr], train_labels), 1)
    table = np.where(counts.sum(1) > 0, counts.argmax(1), majority).astype(np.int32)
    test_pos = np.flatnonzero(role == 2)
    pred = table[tokens[test_pos]]
    weights = np.zeros((k, n_types), np.float32)
    weights[table, np.arange(n_types)] = 1.0
    return _score(recording, INPUT_TAP, annotation, names, labels, role, test_pos, pred, train_labels,
                  l2=0.0, weights=weights, bias=np.zeros(k, np.float32), control=False, seed=seed,
                  shift=shift, valid_accuracy={})


def top_units(result: ProbeResult, k: int = 10) -> dict[str, list[tuple[int, float]]]:
    """Per class label: the ``k`` units with the largest weights (most positive first)."""
    out = {}
    for c, name in enumerate(result.labels):
        row = np.asarray(result.weights[c])
        order = np.argsort(-row, kind="stable")[:k]
        out[name] = [(int(u), float(row[u])) for u in order]
    return out


def probe_all(recording, annotation: str, taps=None, *, shift: int = 0, task=None, split=None,
              seed: int = 0, control: bool = True, **fit_options) -> list[ProbeResult]:
    """A probe per tap (all taps on the main axis by default), each followed by its control probe.

    Labels come from ``probe_labels(recording, annotation, shift=shift)`` and items are split by
    ``split_items(recording.n_items, seed=seed)`` unless ``split`` is given, the same for every tap.
    Progress: ``task.progress(probes_done, probes_total, "Probe <tap>")``; cancel raises ``Cancelled``.
    """
    task = ensure_task(task)
    labels = probe_labels(recording, annotation, shift=shift)
    names = list(recording.annotations[annotation].labels)
    if split is None:
        split = split_items(recording.n_items, seed=seed)
    if taps is None:
        taps = [t for t, info in recording.taps.items() if info.axis == "positions"]
    elif isinstance(taps, str):
        taps = [taps]
    jobs = [(t, False) for t in taps]
    if control:
        jobs = [(t, c) for t in taps for c in (False, True)]
    results = []
    scale = 1000
    total = len(jobs) * scale
    for i, (tap, is_control) in enumerate(jobs):
        message = f"Probe {tap}" + (" (control)" if is_control else "")
        task.progress(i * scale, total, message)

        def forward(done, of, text, base=i * scale):
            frac = min(1.0, done / of) if of else 0.0
            task.progress(base + int(frac * (scale - 1)), total, text)

        results.append(fit_probe(recording, tap, labels, split, control=is_control, seed=seed,
                                 annotation=annotation, label_names=names, shift=shift,
                                 task=Task(on_progress=forward), **fit_options))
    task.progress(total, total, "Probes done")
    return results
