"""Linear classifier probes on frozen states (Alain & Bengio), with control tasks (Hewitt & Liang).

A probe asks how much of a categorical label can be read off a tap *linearly*. For a position ``p``
with raw state ``x_p`` (one row of the tap) the probe sees the standardised state

    z_p = (x_p - mean) / std          (per unit, over the whole tap: ``transforms.tap_stats``;
                                       a constant unit has std 1, a non-finite value becomes 0)

and predicts

    P(y = k | z_p) = softmax(W · z_p + b)_k,        W: [classes, units], b: [classes]

trained by minimising the mean cross-entropy over the training positions plus an L2 penalty,

    loss(W, b) = mean_p [-log softmax(W · z_p + b)_{y_p}] + l2 · ||W||²    (b is not penalised).

**Fitting.** Adam on shuffled minibatches with a linearly decaying learning rate (the gradient is
written out: no autograd graph per step). The L2 strength is chosen from ``l2_grid`` by accuracy on
the validation items: all values are trained together as one stacked matrix, on all training
positions when there are at most 1.5 × ``SELECT_ROWS`` of them; else on a random subset of
``SELECT_ROWS``, after which only the chosen value is fitted on every training position, warm-started
from the subset's solution, with the penalty rescaled to keep the prior fixed (``l2 · n`` constant,
i.e. the same ``C = 1 / (2 · l2 · n)`` as scikit-learn's). The probe is scored on the test items.
Training, validation and test positions come from disjoint sets of *items* (``split_items``), so no
sequence contributes to both sides.

**Memory.** One pass over the tap (slab by slab, in the stored dtype) keeps the rows a fit needs in
memory, as stored (float16 or float32), up to ``MEMORY_BYTES``: the training rows in a random order
(minibatches are then contiguous slices), and the validation and test rows. A training set larger
than that is streamed from the file once per epoch instead (slabs in a random order, their rows
pooled and shuffled), so taps larger than memory work; validation and test rows that do not fit are
read again for evaluation. Standardisation happens per minibatch, in float32. A probe and its control
probe share the rows read (``shared``).

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

from lstmviz.analysis._index_stream import SlabReader, slab_rows
from lstmviz.analysis.transforms import tap_stats
from lstmviz.tasks import Task, ensure_task

DEFAULT_L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
BOOTSTRAP_SAMPLES = 1000
MEMORY_BYTES = 2 * 1024**3
"""Rows (as stored) up to this size are read once and kept for training and evaluation; a larger
training set is streamed from the file every epoch (module docstring)."""
MIN_STEPS = 200
"""A fit takes at least this many optimiser steps however few training positions there are; on large
data it takes about this many in all (bigger minibatches, not more of them)."""
MIN_BATCH, MAX_BATCH = 128, 4096
SELECT_ROWS = 100_000
"""With more training positions than 1.5 x this, l2 is chosen on a random subset of this many, and
only the chosen l2 is fitted on all of them."""
POOL_ROWS = 32768
"""Streamed training pools the training rows of slabs read in a random order until it holds this many,
then hands them out in a random order (rows of many items in every minibatch)."""
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
    majority_ci_low: float = math.nan  # 95% interval of majority_accuracy (bootstrap over test items)
    majority_ci_high: float = math.nan

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


def probe_labels(recording, annotation: str, *, shift: int = 0, at: str = "all") -> np.ndarray:
    """Label ids (int32, one per position of the main axis; -1 = missing) of a categorical annotation.

    A position-level annotation is used as is; an item-level one is broadcast to all positions of its
    item. ``shift = s`` gives position ``p`` the label of position ``p + s`` of the same item
    (``shift=1``: the next token's label); positions whose ``p + s`` falls outside their item get -1.
    ``at="last"`` keeps only the last position of each item (all others get -1): the state after the
    whole item, for item-level labels such as a sentence's class.
    """
    if at not in ("all", "last"):
        raise ValueError(f"at must be 'all' or 'last', got {at!r}.")
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
    if shift != 0:
        values = _shifted(values, lengths, shift)
    if at == "last":
        last = np.full(len(values), -1, np.int32)
        last[offsets[1:] - 1] = values[offsets[1:] - 1]
        values = last
    return values


def _shifted(values, lengths, shift):
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
              annotation: str = "", label_names: list[str] | None = None, epochs: int | None = None,
              lr: float = 0.01, shift: int = 0, memory_bytes: int | None = None,
              shared: dict | None = None) -> ProbeResult:
    """Fit a linear softmax probe on ``tap`` to ``labels`` (``probe_labels``) and score it.

    ``split`` is ``(train_items, valid_items, test_items)`` (``split_items``). ``l2`` is chosen from
    ``l2_grid`` by validation accuracy. ``control=True`` replaces the labels by the control task's
    (module docstring). ``epochs``: passes over the training positions of the final fit (default 1 on
    large data; small data gets more, so that every fit takes at least ``MIN_STEPS`` minibatches).
    ``max_positions`` caps the training positions (a seeded random subset). ``memory_bytes`` (default
    ``MEMORY_BYTES``) bounds the rows kept in memory (as stored); beyond it, training streams from the
    file every epoch. ``shared``: a dict the caller keeps between fits on the same tap and positions (a
    probe and its control): the rows read for one are reused by the next (it holds one tap's rows at a
    time). ``annotation`` / ``label_names`` only name the result. Progress:
    ``task.progress(done, total, "Probe <tap>")``; cancel raises ``Cancelled``.
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
    if epochs is not None and int(epochs) < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs!r}.")
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

    message = f"Probe {tap}" + (" (control)" if control else "")
    stats = tap_stats(recording, tap, task=Task(on_progress=lambda d, t, m: task.progress(0, None, m)))
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    try:
        budget = MEMORY_BYTES if memory_bytes is None else int(memory_bytes)
        key = (str(recording.path), getattr(recording, "checkpoint", None), tap, seed, budget,
               hash(role.tobytes()))
        data = shared.get(key) if shared is not None else None
        if data is not None:  # the same rows were read for an earlier probe: only the labels differ
            progress = _Progress(task, message, data.planned_work(len(grid), epochs, collected=True))
            data = data.relabel(labels, progress)
        else:
            data = _ProbeData(recording, tap, labels, role, stats, seed=seed, budget=budget)
            progress = _Progress(task, message, data.planned_work(len(grid), epochs))
            data.collect(progress)
            if shared is not None:
                shared.clear()
                shared[key] = data
        gen = torch.Generator().manual_seed(seed)
        g = len(grid)
        if g > 1 and data.large:
            # choose l2 on a random subset, then fit the chosen l2 on every training position
            sub = data.subset
            w, b = _adam(sub.batches, sub.n, grid, k, data.units, lr, gen, progress, min_epochs=1)
            valid_acc = data.evaluate(w, b, grid, k, roles=(1,))[0]
            best = int(np.argmax(valid_acc))  # ties: the smallest l2 in grid order
            # the penalty per position shrinks with more positions (the same prior, C = 1 / (2 l2 n))
            chosen = grid[best] * sub.n / data.train.n
            w, b = _adam(data.train.batches, data.train.n, [chosen], k, data.units, lr, gen, progress,
                         min_epochs=epochs or 1, init=(w.view(data.units, g, k)[:, best, :], b[best:best + 1]))
            final_grid = [chosen]
            _, test_pos, test_pred = data.evaluate(w, b, final_grid, k, roles=(2,))
            final_best = 0
        else:
            w, b = _adam(data.train.batches, data.train.n, grid, k, data.units, lr, gen, progress,
                         min_epochs=epochs or 1)
            final_grid = grid
            valid_acc, test_pos, test_pred = data.evaluate(w, b, final_grid, k, roles=(1, 2))
            final_best = best = int(np.argmax(valid_acc))  # ties: the smallest l2 in grid order
        progress.finish()
    finally:
        torch.set_num_threads(threads)

    wk = w.detach().view(data.units, len(final_grid), k)
    weights = wk[:, final_best, :].T.numpy().astype(np.float32).copy()
    bias = b.detach()[final_best].numpy().astype(np.float32).copy()
    train_labels = labels[role == 0]
    return _score(recording, tap, annotation, names, labels, role, test_pos, test_pred[:, final_best],
                  train_labels, l2=final_grid[final_best], weights=weights, bias=bias, control=control, seed=seed,
                  shift=shift, valid_accuracy={grid[i]: float(valid_acc[i]) for i in range(g)})


class _Progress:
    """Monotonic progress over the planned rows of work (rows read, trained on, evaluated)."""

    def __init__(self, task, message, total):
        self.task, self.message, self.total, self.done = task, message, max(1, int(total)), 0

    def add(self, rows):
        self.done = min(self.total - 1, self.done + int(rows))
        self.task.progress(self.done, self.total, self.message)

    def finish(self):
        self.task.progress(self.total, self.total, self.message)


def _batch_plan(rows: int, min_epochs: int) -> tuple[int, int]:
    """(batch size, epochs) for ``rows`` training rows: about ``MIN_STEPS`` minibatches per epoch on
    large data (at most ``MAX_BATCH`` rows each), more epochs on small data."""
    batch = int(min(MAX_BATCH, max(MIN_BATCH, rows * max(1, int(min_epochs)) // MIN_STEPS)))
    per_epoch = max(1, -(-rows // batch))
    return batch, max(int(min_epochs), -(-MIN_STEPS // per_epoch))


def _adam(batches, rows, grid, k, units, lr, gen, progress, *, min_epochs, init=None):
    """Adam on the stacked probes of every l2 in ``grid`` (one ``[units, len(grid) * k]`` matrix) with
    a linearly decaying learning rate; ``batches(gen, batch)`` yields ``(z float32, y int64)``.

    The gradient of the loss in the module docstring is written out (no autograd graph per step):
    with ``P = softmax(z W + b)`` and ``Y`` the one-hot labels of a minibatch of ``B`` rows,
    ``dW = zᵀ (P − Y) / B + 2 · l2 · W`` and ``db = Σ (P − Y) / B``.
    """
    import torch

    g = len(grid)
    batch, epochs = _batch_plan(rows, min_epochs)
    # W is kept as [g * k, units]: z @ Wᵀ and (P − Y)ᵀ z are the fast orientations for MKL here
    if init is None:
        w = torch.zeros(g * k, units)
        b = torch.zeros(g * k)
    else:
        w = init[0].reshape(units, g * k).T.contiguous()
        b = init[1].reshape(g * k).clone()
    decay = 2.0 * torch.as_tensor(grid, dtype=torch.float32).repeat_interleave(k).unsqueeze(1)
    adam = _Adam((w, b), lr)
    steps_total = epochs * max(1, -(-rows // batch))
    step = 0
    cols = torch.arange(g) * k
    for _ in range(epochs):
        for z, y in batches(gen, batch):
            n = len(y)
            p = torch.addmm(b, z, w.T).view(n, g, k).softmax(-1).view(n, g * k)
            p[torch.arange(n).unsqueeze(1), y.unsqueeze(1) + cols] -= 1.0  # P - Y
            p.mul_(1.0 / n)
            adam.step((torch.addmm(w * decay, p.T, z), p.sum(0)), max(0.02, 1.0 - step / steps_total))
            step += 1
            progress.add(n)
    return w.T, b.view(g, k)


class _Adam:
    """Adam (Kingma & Ba) on a few tensors, in place: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
    θ ← θ − lr·scale · m̂ / (√v̂ + ε) with the bias-corrected m̂, v̂. (torch.optim.Adam spends more
    time per step than these small probes' whole gradient, and seconds importing on first use.)"""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = [p.new_zeros(p.shape) for p in params]
        self.v = [p.new_zeros(p.shape) for p in params]

    def step(self, grads, scale=1.0):
        b1, b2 = self.betas
        self.t += 1
        step = self.lr * scale * math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, v.sqrt().add_(self.eps * math.sqrt(1 - b2 ** self.t)), value=-step)


class _InMemoryRows:
    """Training rows as stored in the file (float16 or float32) in a random order, with their positions
    and labels. Minibatches are contiguous slices (several times faster than gathering random rows),
    standardised on the way out; each epoch visits the slices in a new order."""

    def __init__(self, data, x, pos):
        self.data, self.x, self.pos, self.n = data, x, pos, len(pos)

    def batches(self, gen, batch):
        import torch

        y = self.data.labels_t[torch.from_numpy(self.pos)]
        starts = torch.arange(0, self.n, batch)
        for s in starts[torch.randperm(len(starts), generator=gen)].tolist():
            yield self.data.standardise(self.x[s:s + batch]), y[s:s + batch]


class _StreamedRows:
    """All training rows, read from the file once per epoch: slabs in a random order, their training
    rows pooled until about ``POOL_ROWS`` (rows of many items) and handed out in a random order."""

    def __init__(self, data):
        self.data = data
        self.n = data.n_train

    def batches(self, gen, batch):
        import torch

        d = self.data
        order = [d.slabs[i] for i in torch.randperm(len(d.slabs), generator=gen).tolist()]
        cap = max(POOL_ROWS, 4 * batch)
        pool = np.empty((cap + len(d.buf), d.units), d.buf.dtype)
        pool_pos = np.empty(len(pool), np.int64)
        mixed = np.empty_like(pool)
        rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen)))
        count = 0
        with SlabReader(d.recording, d.tap, len(d.buf), ranges=order) as slabs:
            for a, c, x in slabs:
                idx = np.flatnonzero(d.role[a:c] == 0)
                np.take(x, idx, axis=0, out=pool[count:count + len(idx)])
                pool_pos[count:count + len(idx)] = a + idx
                count += len(idx)
                d.progress.add(c - a)
                if count >= cap:
                    count = yield from self._hand_out(pool, pool_pos, mixed, count, rng, batch, last=False)
        if count:
            yield from self._hand_out(pool, pool_pos, mixed, count, rng, batch, last=True)

    def _hand_out(self, pool, pool_pos, mixed, count, rng, batch, last):
        """Minibatches of the first ``count`` pooled rows in a random order; unless ``last``, the rows
        left over (fewer than ``batch``) move to the front of the pool and their number is returned."""
        import torch

        order = rng.permutation(count)
        np.take(pool[:count], order, axis=0, out=mixed[:count])
        pos = pool_pos[:count][order]
        full = count if last else count // batch * batch
        y = self.data.labels_t[torch.from_numpy(pos[:full])]
        x = torch.from_numpy(mixed)
        for s in range(0, full, batch):
            yield self.data.standardise(x[s:min(full, s + batch)]), y[s:s + batch]
        rest = count - full
        pool[:rest] = mixed[full:count]
        pool_pos[:rest] = pos[full:]
        return rest


class _ProbeData:
    """The rows a probe reads (module docstring).

    One pass over the tap (``collect``) keeps in memory, as stored, every training row in a random
    order when they fit in ``budget`` bytes; else only a random subset of ``SELECT_ROWS`` of them (for
    choosing l2), and training streams all of them from the file, one pass per epoch, so memory never
    holds the training set. The validation and test rows are kept too when they also fit; else they
    are read again for each evaluation. Rows are standardised per minibatch, in float32.
    """

    def __init__(self, recording, tap, labels, role, stats, *, seed, budget):
        import torch

        info = recording.taps[tap]
        self.recording, self.tap, self.role, self.labels = recording, tap, role, labels
        self.units = info.units
        self.n = recording.n_positions
        self.mean = torch.as_tensor(stats.mean, dtype=torch.float32)
        self.inv_std = torch.as_tensor(1.0 / stats.safe_std(), dtype=torch.float32)
        self.shift = -self.mean * self.inv_std
        finite = stats.finite if stats.finite is not None else np.zeros(self.units, np.int64)
        self.all_finite = bool(np.all(finite == stats.count))  # else NaN and inf become 0
        self.labels_t = torch.from_numpy(labels.astype(np.int64))
        dtype = np.dtype(info.dtype)
        rows = slab_rows(self.units, dtype.itemsize, 64)
        self.slabs = [(a, min(self.n, a + rows)) for a in range(0, self.n, rows)]
        self.buf = np.empty((min(rows, self.n), self.units), dtype)
        self.raw_buf = torch.empty((0, self.units))
        self.z_buf = torch.empty((0, self.units))
        self.rng = np.random.default_rng(seed + 2)
        row_bytes = dtype.itemsize * self.units
        self.n_train = int(np.count_nonzero(role == 0))
        self.n_valid = int(np.count_nonzero(role == 1))
        n_eval = int(np.count_nonzero(role >= 1))
        budget_rows = max(budget // row_bytes, 10_000)  # a usable subset even on a tiny budget
        self.large = self.n_train > SELECT_ROWS * 3 // 2  # l2 chosen on a subset
        self.n_subset = min(self.n_train, SELECT_ROWS, budget_rows)
        self.train_in_memory = self.n_train <= budget_rows
        kept_train = self.n_train if self.train_in_memory else self.n_subset
        self.eval_in_memory = (kept_train + n_eval) * row_bytes <= budget
        self.train = None  # _InMemoryRows of every training row (small data) or _StreamedRows
        self.subset = None  # _InMemoryRows for choosing l2 (large data)
        self.eval = None  # (rows, positions): validation rows first, then test rows
        self.progress = None

    def planned_work(self, g, epochs, collected=False):
        work = 0 if collected else self.n  # the collecting pass
        if self.large and g > 1:
            work += self.n_subset * _batch_plan(self.n_subset, 1)[1]
        epochs = _batch_plan(self.n_train, epochs or 1)[1]
        work += (self.n_train if self.train_in_memory else self.n) * epochs
        if not self.eval_in_memory:
            work += 2 * self.n  # two evaluation passes at most
        return work

    def standardise(self, x):
        """``(x - mean) / std`` as float32 (non-finite values become 0) for a torch tensor ``x`` of
        stored rows. The result lives in a buffer that the next call overwrites."""
        import torch

        if len(x) > len(self.z_buf):
            self.raw_buf = torch.empty((len(x), self.units))
            self.z_buf = torch.empty((len(x), self.units))
        raw = self.raw_buf[: len(x)].copy_(x)
        z = torch.addcmul(self.shift, raw, self.inv_std, out=self.z_buf[: len(x)])
        if not self.all_finite:
            torch.nan_to_num_(z, nan=0.0, posinf=0.0, neginf=0.0)
        return z

    def collect(self, progress):
        """The pass over the tap that fills the in-memory rows (class docstring)."""
        import torch

        self.progress = progress
        train_pos = np.flatnonzero(self.role == 0)
        keep = train_pos
        if not self.train_in_memory:
            keep = np.sort(self.rng.choice(train_pos, self.n_subset, replace=False))
            self.train = _StreamedRows(self)
        slot = np.full(self.n, -1, np.int64)
        slot[keep] = self.rng.permutation(len(keep))  # each kept training row's place: a shuffle
        x_train = np.empty((len(keep), self.units), self.buf.dtype)
        kept_pos = np.empty(len(keep), np.int64)
        kept_pos[slot[keep]] = keep
        if self.eval_in_memory:
            eval_pos = np.concatenate([np.flatnonzero(self.role == 1), np.flatnonzero(self.role == 2)])
            x_eval = np.empty((len(eval_pos), self.units), self.buf.dtype)
            cursor = {1: 0, 2: self.n_valid}
        with SlabReader(self.recording, self.tap, len(self.buf)) as slabs:
            for a, c, x in slabs:
                idx = np.flatnonzero(slot[a:c] >= 0)
                if len(idx):
                    x_train[slot[a + idx]] = np.take(x, idx, axis=0)
                if self.eval_in_memory:
                    r = self.role[a:c]
                    for side in (1, 2):
                        idx = np.flatnonzero(r == side)
                        at = cursor[side]
                        np.take(x, idx, axis=0, out=x_eval[at:at + len(idx)])
                        cursor[side] += len(idx)
                progress.add(c - a)
        kept = _InMemoryRows(self, torch.from_numpy(x_train), kept_pos)
        if self.train_in_memory:
            self.train = kept
            if self.large:  # the rows are in a random order: the first ones are a random subset
                self.subset = _InMemoryRows(self, kept.x[: self.n_subset], kept_pos[: self.n_subset])
        else:
            self.subset = kept
        if self.eval_in_memory:
            self.eval = (torch.from_numpy(x_eval), eval_pos)

    def relabel(self, labels, progress):
        """A copy that shares the rows read already but trains on ``labels`` (labelled at the same
        positions as before)."""
        import copy

        import torch

        other = copy.copy(self)
        other.labels = labels
        other.labels_t = torch.from_numpy(labels.astype(np.int64))
        other.progress = progress
        if self.subset is not None:
            other.subset = _InMemoryRows(other, self.subset.x, self.subset.pos)
        if isinstance(self.train, _InMemoryRows):
            other.train = _InMemoryRows(other, self.train.x, self.train.pos)
        else:
            other.train = _StreamedRows(other)
        return other

    def evaluate(self, w, b, grid, k, roles):
        """Validation accuracy per l2 (when 1 in ``roles``) and the test positions and predictions
        [positions, l2] (when 2 in ``roles``)."""
        import torch

        g = len(grid)
        valid_correct = np.zeros(g, np.int64)
        n_valid = 0
        test_pos, test_pred = [np.zeros(0, np.int64)], [np.zeros((0, g), np.int64)]

        def score(z, pos):
            nonlocal n_valid
            pred = torch.addmm(b.reshape(-1), z, w).view(-1, g, k).argmax(-1).numpy()
            r = self.role[pos]
            y = self.labels[pos]
            v = r == 1
            valid_correct[:] += (pred[v] == y[v, None]).sum(0)
            n_valid += int(v.sum())
            t = r == 2
            test_pos.append(pos[t])
            test_pred.append(pred[t])

        if self.eval is not None:
            x_eval, eval_pos = self.eval
            start = 0 if 1 in roles else self.n_valid
            stop = len(eval_pos) if 2 in roles else self.n_valid
            for s in range(start, stop, 16384):
                e = min(stop, s + 16384)
                score(self.standardise(x_eval[s:e]), eval_pos[s:e])
        else:
            with SlabReader(self.recording, self.tap, len(self.buf)) as slabs:
                for a, c, x in slabs:
                    idx = np.flatnonzero(np.isin(self.role[a:c], roles))
                    if len(idx):
                        score(self.standardise(torch.from_numpy(np.take(x, idx, axis=0))), a + idx)
                    self.progress.add(c - a)
        accs = valid_correct / max(1, n_valid)
        return accs, np.concatenate(test_pos), np.concatenate(test_pred)


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
    majority_ci = bootstrap_ci(items, y == majority, seed=seed)
    return ProbeResult(tap=tap, annotation=annotation, labels=names, accuracy=accuracy, ci_low=ci_low,
                       ci_high=ci_high, majority_accuracy=majority_accuracy, l2=float(l2),
                       weights=weights, bias=bias, confusion=confusion, per_class_accuracy=per_class,
                       n_train=len(train_labels), n_test=len(test_pos), control=bool(control),
                       shift=int(shift), valid_accuracy=valid_accuracy, majority_ci_low=majority_ci[0],
                       majority_ci_high=majority_ci[1])


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
