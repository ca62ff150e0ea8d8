"""Linear classifier probes on frozen states (Alain & Bengio), with control tasks (Hewitt & Liang).

A probe asks how much of a categorical label can be read off a tap *linearly*. For a position ``p``
with raw state ``x_p`` (one row of the tap) the probe sees the standardised state

    z_p = (x_p - mean) / std          (per unit, over the whole tap: ``transforms.tap_stats``;
                                       a constant unit has std 1, a non-finite value becomes 0)

and predicts

    P(y = k | z_p) = softmax(W · z_p + b)_k,        W: [classes, units], b: [classes]

trained by minimising the mean cross-entropy over the training positions plus an L2 penalty,

    loss(W, b) = mean_p [-log softmax(W · z_p + b)_{y_p}] + l2 · ||W||²    (b is not penalised).

**Fitting.** The objective is minimised to convergence by L-BFGS with a Kronecker-factored
preconditioner (``probe_solver``: full passes over the training rows, every l2 of a grid at once,
stopping when the estimated distance to the optimum is below ``TOLERANCE`` of the objective, not
after a step budget). Only the classes present in the training positions enter the softmax (an
absent class has no finite optimum; it is never predicted, its weights are 0 and its bias -inf).

**Choosing l2.** Fits at every value of ``l2_grid`` (to the looser ``SELECT_TOLERANCE``, or
``SELECT_MAX_ITERATIONS``) are scored on
the validation items; the chosen value is the largest within one standard error of the best
accuracy (``_L2Path``), and the grid is refined by a decade on either side of it while it moves,
within ``L2_RANGE`` (on real hidden states the best penalty is often far below 1e-4). The fits that
choose l2 use all training positions when there are few, else a random subset of them
(``SELECT_ROWS``). The chosen value is then fitted to ``TOLERANCE`` on every training
position, warm-started from its selection fit (its solution, curvature and L-BFGS memory,
``probe_solver``); when it was chosen on a subset its penalty is
rescaled to keep the prior fixed (``l2 · n`` constant, i.e. the same ``C = 1 / (2 · l2 · n)`` as
scikit-learn's). The probe is scored on the test items. Training, validation and test positions come
from disjoint sets of *items* (``split_items``), so no sequence contributes to both sides. A recording
of fewer than 3 items (one graph of a transductive node task) splits its positions instead
(``probe_split``, ``PositionSplit``); its scores are then optimistic, neighbouring nodes sharing inputs.

**Memory.** One pass over the tap (slab by slab) keeps the rows a fit needs in memory, up to
``MEMORY_BYTES`` counted honestly: the training rows, standardised once as they are read (float32,
so that no pass of the optimiser repeats the conversion) when they fit beside the rest, else as
stored (float16 or float32) and standardised per chunk on every pass; on large data a random
subset of them, standardised; and the validation and test rows, as stored. A training set larger
than the budget is read from the file again for every pass of the optimiser instead (standardised
per chunk), so taps larger than memory work; validation and test rows that do not fit are read
again for evaluation. A probe and its control probe share the rows read (``shared``).

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

DEFAULT_L2_GRID = (1e-7, 1e-5, 1e-3, 1e-1)
"""Every second decade; the fit refines around the best value by a decade each way (``_L2Path``)."""
L2_RANGE = (1e-9, 10.0)
"""The grid is refined (``fit_probe(refine_grid=True)``) only within this range."""
BOOTSTRAP_SAMPLES = 1000
MEMORY_BYTES = 2 * 1024**3
"""Rows up to this size in all (training rows standardised or as stored, the subset, the evaluation rows
as stored) are read once and kept; a larger training set is streamed from the file every epoch (module
docstring)."""
MIN_KEPT_ROWS = 10_000
"""Training rows (or a subset of them) kept in memory however small the budget, so that l2 can be chosen."""
SELECT_ROWS = 100_000
SELECT_MIN_ROWS = 40_000
SELECT_FRACTION = 7
"""l2 is chosen on a random subset of about 1/``SELECT_FRACTION`` of the training positions, at least
``SELECT_MIN_ROWS`` and at most ``SELECT_ROWS`` of them, when there are more than 1.5 x that many,
and only the chosen l2 is fitted on all of them. (The subset trades the cost of choosing against the
passes over all rows that the final fit needs from the subset's solution: measured on 512 units,
10 classes, 40k of 140k rows and 100k of 700k were the faster choices.)"""
CHUNK_ROWS = 16384
"""Rows standardised and multiplied at a time in a pass of the optimiser."""
TOLERANCE = 1e-6
"""A fit stops when its estimated distance to the optimum is below this fraction of the objective."""
SELECT_TOLERANCE = 1e-4
"""The fits that only choose l2 (by validation accuracy) stop at this looser tolerance; the chosen one is
then fitted on to ``TOLERANCE``."""
SELECT_MAX_ITERATIONS = 40
"""... and after at most this many iterations (a nearly separable label at a tiny l2 would take
hundreds, for a validation accuracy that has long stopped moving)."""
MAX_ITERATIONS = 1000
"""A fit that has not converged after this many L-BFGS iterations stops and says so (``converged``)."""
PRECONDITIONER_ROWS = 32768
"""Rows (a random sample) whose second moment the optimiser's preconditioner uses."""
EXPECTED_PASSES = 80
"""Passes of the optimiser that progress reports plan for (the total grows if a fit needs more)."""
INPUT_TAP = "<input tokens>"
"""The ``tap`` of the result of ``input_baseline``."""


@dataclass
class ProbeResult:
    """One fitted probe and its held-out scores.

    ``weights`` ``[classes, units]`` and ``bias`` ``[classes]`` act on standardised units (see the
    module docstring); a class absent from the training positions has weights 0 and bias -inf. ``confusion[i, j]`` counts test positions of true class ``i`` predicted as
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
    objective: float = math.nan  # the minimised training objective (mean cross-entropy + penalty)
    converged: bool = True  # False: stopped after MAX_ITERATIONS before the convergence criterion held
    iterations: int = 0  # L-BFGS iterations of the final fit

    @property
    def n_classes(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------------------------- split


def split_items(n_items: int, *, fractions=(0.7, 0.15, 0.15), seed: int = 0, what: str = "items"):
    """Disjoint, sorted int64 arrays ``(train_items, valid_items, test_items)`` covering all items.

    Items are shuffled with ``seed`` and cut by ``fractions`` (normalised to sum to 1); validation and
    test get at least one item each. Raises ``ValueError`` with fewer than 3 items (``what`` names them).
    """
    n_items = int(n_items)
    if n_items < 3:
        raise ValueError(f"A probe needs at least 3 {what} (train, validation, test); the recording has "
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


@dataclass(frozen=True)
class PositionSplit:
    """A split of the *positions* of a recording with too few items to split items (one graph of a
    transductive node task, such as the karate club): ``roles`` int8 per position, 0 train, 1 valid,
    2 test. Positions of one item are not independent samples (neighbouring nodes share their
    inputs), so its held-out scores are optimistic next to an item split's; the accuracy intervals
    resample positions (there is no item to resample)."""

    roles: np.ndarray

    def __getitem__(self, role: int) -> np.ndarray:
        """The positions of role ``role`` (0 train, 1 valid, 2 test), like an item split's item arrays."""
        if role not in (0, 1, 2):
            raise IndexError(role)
        return np.flatnonzero(self.roles == role)

    def __iter__(self):
        return iter((self[0], self[1], self[2]))

    def __len__(self) -> int:
        return 3


def split_positions(n_positions: int, *, fractions=(0.7, 0.15, 0.15), seed: int = 0) -> PositionSplit:
    """A :class:`PositionSplit` of ``n_positions`` positions shuffled with ``seed`` and cut by
    ``fractions`` (as :func:`split_items` cuts items). Raises ``ValueError`` with fewer than 3."""
    train, valid, test = split_items(n_positions, fractions=fractions, seed=seed, what="positions")
    roles = np.full(int(n_positions), -1, np.int8)
    roles[train], roles[valid], roles[test] = 0, 1, 2
    return PositionSplit(roles)


def probe_split(recording, *, fractions=(0.7, 0.15, 0.15), seed: int = 0):
    """The split a probe of ``recording`` uses: of its items (:func:`split_items`) when it has at least
    3, else of its positions (:func:`split_positions`: one graph of a node task)."""
    if recording.n_items >= 3:
        return split_items(recording.n_items, fractions=fractions, seed=seed)
    return split_positions(recording.n_positions, fractions=fractions, seed=seed)


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
    if isinstance(train_items, PositionSplit):  # the training positions of a position split
        role = np.where(train_items.roles == 0, 0, -1)
    else:
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
    if isinstance(split, PositionSplit):
        if split.roles.shape != (recording.n_positions,):
            raise ValueError(f"the position split has {len(split.roles)} roles, the recording "
                             f"{recording.n_positions} positions.")
        return split.roles.astype(np.int8, copy=True)
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
              annotation: str = "", label_names: list[str] | None = None, shift: int = 0,
              memory_bytes: int | None = None, shared: dict | None = None, tol: float = TOLERANCE,
              max_iter: int | None = None, refine_grid: bool = True) -> ProbeResult:
    """Fit a linear softmax probe on ``tap`` to ``labels`` (``probe_labels``) and score it.

    ``split`` is ``(train_items, valid_items, test_items)`` (``split_items``), or a
    :class:`PositionSplit` for a recording of fewer than 3 items (``probe_split`` picks). ``l2`` is chosen from
    ``l2_grid`` by validation accuracy (module docstring); with ``refine_grid`` the grid grows by a
    decade on either side of the chosen value while it moves (``_L2Path``). ``control=True`` replaces
    the labels by the control task's (module docstring). ``max_positions`` caps the training positions (a seeded random subset).
    ``memory_bytes`` (default ``MEMORY_BYTES``) bounds the rows kept in memory (as stored); beyond it,
    every pass of the optimiser reads the training rows from the file. ``shared``: a dict the caller
    keeps between fits on the same tap and positions (a probe and its control): the rows read for one
    are reused by the next (it holds one tap's rows at a time). ``tol`` / ``max_iter``: the
    optimiser's convergence criterion and iteration limit (default ``MAX_ITERATIONS``; ``probe_solver``); the result says whether
    it converged. ``annotation`` / ``label_names`` only name the result. Progress:
    ``task.progress(done, total, "Probe <tap>")``; cancel raises ``Cancelled``.
    """
    import torch

    task = ensure_task(task)
    max_iter = MAX_ITERATIONS if max_iter is None else int(max_iter)
    info = recording.taps.get(tap)
    if info is None:
        recording.raw_states(tap, 0, 0)
        raise KeyError(tap)
    if info.axis != "positions":
        raise ValueError(f"Tap {tap!r} lies on the axis {info.axis!r}, not on the positions that the "
                         f"labels describe; a probe needs a tap on the main axis (on an image recording, "
                         f"probe_images.probe_rows gives the rows of a feature map or per-image tap).")
    labels = np.asarray(labels, dtype=np.int32)
    n = recording.n_positions
    if labels.shape != (n,):
        raise ValueError(f"labels must have one value per position ({n}), got shape {labels.shape}.")
    grid = [float(v) for v in l2_grid]
    if not grid or any(not v > 0 or not math.isfinite(v) for v in grid):
        raise ValueError(f"l2_grid must hold positive numbers (without a penalty a separable label has "
                         f"no optimum), got {l2_grid!r}.")
    k = len(label_names) if label_names else int(labels.max()) + 1
    k = max(k, int(labels.max()) + 1, 1)
    names = list(label_names) if label_names and len(label_names) == k else [str(i) for i in range(k)]
    if control:
        labels = control_labels(recording, labels, split if isinstance(split, PositionSplit) else split[0],
                                seed=seed, n_classes=k)
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
    stats_task = Task(on_progress=lambda d, t, m: task.progress(0, None, m))
    # a row view of an image recording (``probe_images.RowView``) has the statistics of its own rows
    stats = recording.probe_stats(tap, task=stats_task) if hasattr(recording, "probe_stats") else \
        tap_stats(recording, tap, task=stats_task)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    try:
        budget = MEMORY_BYTES if memory_bytes is None else int(memory_bytes)
        key = (str(recording.path), getattr(recording, "checkpoint", None), getattr(recording, "view_key", None),
               tap, seed, budget, hash(role.tobytes()))
        data = shared.get(key) if shared is not None else None
        if data is not None:  # the same rows were read for an earlier probe: only the labels differ
            progress = _Progress(task, message, data.planned_work(collected=True))
            data = data.relabel(labels, progress)
        else:
            data = _ProbeData(recording, tap, labels, role, stats, seed=seed, budget=budget)
            progress = _Progress(task, message, data.planned_work())
            data.collect(progress)
            if shared is not None:
                shared.clear()
                shared[key] = data
        fit = data.fitter(progress, tol=tol, max_iter=max_iter)
        # l2 is chosen on a random subset of large data, then fitted on every training position
        on_subset = data.large and len(grid) > 1
        only = len(grid) == 1 and not refine_grid  # nothing to choose: the one fit is the final one
        path = _L2Path(fit, data.subset if on_subset else data.train, data,
                       tol=tol if only else max(tol, SELECT_TOLERANCE),
                       max_iter=max_iter if only else min(max_iter, SELECT_MAX_ITERATIONS))
        path.add(grid)
        if refine_grid:
            path.refine()
        best = path.best()
        # the chosen l2 is fitted to the full tolerance, warm-started: on every training position
        # (with the penalty rescaled so that the prior stays fixed, C = 1 / (2 l2 n)) if it was chosen
        # on a subset, else from its own selection fit
        final_l2 = path.l2[best] * (data.subset.n / data.train.n if on_subset else 1.0)
        solution = path.solutions[best] if only else _Solution.of(
            fit(data.train, [final_l2], init=path.start(best), curvatures=[path.curvature[best]],
                memories=[path.memory[best]]), 0)
        _, test_pos, test_pred = data.evaluate(solution.weights[None], solution.bias[None], roles=(2,))
        progress.finish()
    finally:
        torch.set_num_threads(threads)

    weights = np.zeros((k, data.units), np.float32)
    bias = np.full(k, -np.inf, np.float32)
    weights[data.classes] = solution.weights
    bias[data.classes] = solution.bias
    train_labels = labels[role == 0]
    result = _score(recording, tap, annotation, names, labels, role, test_pos, test_pred[:, 0],
                    train_labels, l2=final_l2, weights=weights, bias=bias, control=control, seed=seed,
                    shift=shift, valid_accuracy=dict(sorted(zip(path.l2, path.valid))))
    result.objective = solution.objective
    result.converged = solution.converged
    result.iterations = solution.iterations
    return result


@dataclass
class _Solution:
    """One fit of the path: weights [classes present, units], bias, and how the optimiser ended."""

    weights: np.ndarray
    bias: np.ndarray
    objective: float
    converged: bool
    iterations: int

    @classmethod
    def of(cls, result, i):
        return cls(result.weights[i], result.bias[i], float(result.objective[i]), bool(result.converged[i]),
                   int(result.iterations[i]))


def _clustered_se(hits, totals) -> float:
    """Standard error of the accuracy sum(hits) / sum(totals) with items as the sampled units (the
    cluster-robust variance of a ratio estimator), at least the binomial error over the positions at
    the Laplace-smoothed accuracy (so that a perfect score has an error too)."""
    n, m = float(totals.sum()), len(totals)
    if n == 0:
        return 0.0
    a = float(hits.sum()) / n
    smoothed = (float(hits.sum()) + 1.0) / (n + 2.0)  # never 0 at an accuracy of 0 or 1 (Laplace)
    binomial = math.sqrt(smoothed * (1.0 - smoothed) / n)
    if m < 2:
        return binomial
    return max(binomial, math.sqrt(m / (m - 1) * float(np.sum((hits - a * totals) ** 2))) / n)


class _L2Path:
    """Fits of one set of training rows at several l2, with their validation accuracies.

    ``best`` applies the one-standard-error rule (Hastie, Tibshirani & Friedman, *Elements of
    Statistical Learning* §7.10): the largest l2 whose validation accuracy is within one standard error
    of the best, so that a difference of a few positions never buys a weaker penalty. The standard
    error is over validation *items* (``_clustered_se``: positions of an item are not independent),
    as the test intervals are. ``refine`` fits the decades on
    either side of the chosen value not fitted yet (warm-started from its solution, together in one
    run), and repeats while the chosen value moves, within ``L2_RANGE``; so the chosen l2 is never an
    end of the grid only because the grid stopped there.
    """

    def __init__(self, fit, rows, data, *, tol, max_iter):
        self.fit, self.rows, self.data, self.tol, self.max_iter = fit, rows, data, tol, max_iter
        self.l2, self.valid, self.se, self.solutions, self.curvature, self.memory = [], [], [], [], [], []

    def add(self, values, start=None, curvature=None):
        result = self.fit(self.rows, values, init=start, curvatures=curvature, tol=self.tol,
                          max_iter=self.max_iter)
        accuracy = self.data.evaluate(result.weights, result.bias, roles=(1,))[0]
        hits, totals = self.data.valid_items
        for i, value in enumerate(values):
            self.l2.append(float(value))
            self.valid.append(float(accuracy[i]))
            self.se.append(_clustered_se(hits[:, i], totals))
            self.solutions.append(_Solution.of(result, i))
            self.curvature.append(result.curvatures[i])
            self.memory.append(result.memories[i])

    def best(self) -> int:
        """The largest l2 within one standard error of the best validation accuracy (class docstring)."""
        top = int(np.argmax(self.valid))
        floor = self.valid[top] - self.se[top]
        return max((i for i, v in enumerate(self.valid) if v >= floor), key=lambda i: self.l2[i])

    def start(self, i):
        sol = self.solutions[i]
        return sol.weights[None], sol.bias[None]

    def refine(self):
        tried = set()
        while True:
            b = self.best()
            if b in tried:
                return
            tried.add(b)
            near = [float(f"{self.l2[b] * f:.6g}") for f in (0.1, 10.0)]
            new = [v for v in near if L2_RANGE[0] <= v <= L2_RANGE[1]
                   and not any(math.isclose(v, w, rel_tol=1e-6) for w in self.l2)]
            if not new:
                return
            sol = self.solutions[b]
            self.add(new, start=(np.stack([sol.weights] * len(new)), np.stack([sol.bias] * len(new))),
                     curvature=[self.curvature[b]] * len(new))


class _Progress:
    """Monotonic progress over the planned rows of work (rows read, passed over, evaluated), reported
    as a fraction in ``STEPS`` steps; when the optimiser needs more passes than planned the plan grows
    and the fraction creeps on towards 99% instead of going back."""

    STEPS = 1_000_000

    def __init__(self, task, message, total):
        self.task, self.message, self.total, self.done, self.frac = task, message, max(1, int(total)), 0, 0.0

    def add(self, rows):
        self.done += int(rows)
        if self.done >= self.total:
            self.total *= 2
        self.frac = max(self.frac, min(0.99, self.done / self.total))
        self.task.progress(int(self.frac * self.STEPS), self.STEPS, self.message)

    def finish(self):
        self.task.progress(self.STEPS, self.STEPS, self.message)


def _rows_buffer(rows, units, dtype) -> np.ndarray:
    """An uninitialised [rows, units] array for rows read from a tap, allocated by torch: on this kind of
    virtual machine a fresh numpy allocation of a gigabyte costs seconds of page faults on first touch
    (measured 0.6-6 s), torch's allocator a quarter of a second."""
    import torch

    return torch.empty((rows, units), dtype=getattr(torch, np.dtype(dtype).name)).numpy()


def _copy_runs(x, mask, out, at):
    """Copy the rows of ``x`` where ``mask`` holds to ``out[at:]``, run by run (the positions of an item
    are contiguous and share its role, so a slab has few runs; slice copies beat a gather by far).
    Returns the next free row of ``out``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], mask, [False])).astype(np.int8)))
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
        out[at:at + b - a] = x[a:b]
        at += b - a
    return at


class _InMemoryRows:
    """Training rows in memory, with their positions and labels: standardised (float32) when
    ``standardised``, else as stored in the file (float16 or float32) and standardised per chunk on
    every iteration. Iterating gives standardised ``(z float32, y int64)`` chunks of all of them, in
    order, the class ids compacted to the classes present (``_ProbeData.classes``)."""

    def __init__(self, data, x, pos, *, standardised):
        self.data, self.x, self.pos, self.n, self.standardised = data, x, pos, len(pos), bool(standardised)

    def for_data(self, data):
        """The same rows, labelled by another ``_ProbeData`` (``relabel``)."""
        return _InMemoryRows(data, self.x, self.pos, standardised=self.standardised)

    def __iter__(self):
        import torch

        y = self.data.compact_t[torch.from_numpy(self.pos)]
        for s in range(0, self.n, CHUNK_ROWS):
            self.data.progress.add(min(CHUNK_ROWS, self.n - s))
            x = self.x[s:s + CHUNK_ROWS]
            yield (x if self.standardised else self.data.standardise(x)), y[s:s + CHUNK_ROWS]

    def standardised_rows(self, pick):
        """A new float32 tensor of the standardised rows ``pick`` (sorted indices)."""
        import torch

        x = self.x[torch.from_numpy(np.asarray(pick, np.int64))]
        if self.standardised:
            return x
        return torch.cat([self.data.standardise(x[s:s + CHUNK_ROWS]).clone() for s in range(0, len(x), CHUNK_ROWS)]) \
            if len(x) else torch.zeros((0, self.data.units))

    def sample(self, rows, seed=0):
        """A random sample of ``rows`` of the rows, standardised (float32)."""
        return self.standardised_rows(np.sort(np.random.default_rng(seed).choice(self.n, min(rows, self.n),
                                                                                 replace=False)))


class _StreamedRows:
    """All training rows, read from the file on every iteration (one pass over the tap each)."""

    def __init__(self, data):
        self.data = data
        self.n = data.n_train

    def __iter__(self):
        import torch

        d = self.data
        with SlabReader(d.recording, d.tap, len(d.buf)) as slabs:
            for a, c, x in slabs:
                idx = np.flatnonzero(d.role[a:c] == 0)
                d.progress.add(c - a)
                for s in range(0, len(idx), CHUNK_ROWS):
                    part = idx[s:s + CHUNK_ROWS]
                    rows = torch.from_numpy(np.take(x, part, axis=0))
                    yield d.standardise(rows), d.compact_t[torch.from_numpy(a + part)]


class _ProbeData:
    """The rows a probe reads (module docstring).

    One pass over the tap (``collect``) keeps in memory every training row when they fit in
    ``budget`` bytes: standardised (float32) when that fits beside the subset and the evaluation rows
    (``standardised``), else as stored; and on large data a random subset of them (``SELECT_ROWS``),
    standardised, to choose l2 on. When the training rows do not fit, only a subset is kept (for
    choosing l2 and the preconditioner), and every pass of the optimiser reads all of them from the
    file, so memory never holds the training set. The validation and test rows are kept too, as
    stored, when they also fit; else they are read again for each evaluation. Rows not kept
    standardised are standardised per chunk, in float32.
    """

    def __init__(self, recording, tap, labels, role, stats, *, seed, budget):
        import torch

        info = recording.taps[tap]
        self.recording, self.tap, self.role = recording, tap, role
        self.units = info.units
        self.n = recording.n_positions
        self.mean = torch.as_tensor(stats.mean, dtype=torch.float32)
        self.inv_std = torch.as_tensor(1.0 / stats.safe_std(), dtype=torch.float32)
        self.shift = -self.mean * self.inv_std
        finite = stats.finite if stats.finite is not None else np.zeros(self.units, np.int64)
        self.all_finite = bool(np.all(finite == stats.count))  # else NaN and inf become 0
        self._set_labels(labels)
        dtype = np.dtype(info.dtype)
        rows = slab_rows(self.units, dtype.itemsize, 64)
        self.slabs = [(a, min(self.n, a + rows)) for a in range(0, self.n, rows)]
        self.buf = np.empty((min(rows, self.n), self.units), dtype)
        self.raw_buf = torch.empty((0, self.units))
        self.z_buf = torch.empty((0, self.units))
        self.rng = np.random.default_rng(seed + 2)
        row_bytes = dtype.itemsize * self.units  # a row as stored
        z_bytes = 4 * self.units  # a standardised row (float32)
        self.n_train = int(np.count_nonzero(role == 0))
        self.n_valid = int(np.count_nonzero(role == 1))
        n_eval = int(np.count_nonzero(role >= 1))
        select = min(SELECT_ROWS, max(SELECT_MIN_ROWS, self.n_train // SELECT_FRACTION))
        self.large = self.n_train > select * 3 // 2  # l2 chosen on a subset
        # a usable subset even on a tiny budget
        self.n_subset = min(self.n_train, select, max(budget // z_bytes, MIN_KEPT_ROWS))
        subset_bytes = self.n_subset * z_bytes if self.large else 0  # kept standardised
        eval_bytes = n_eval * row_bytes
        self.train_in_memory = (self.n_train <= MIN_KEPT_ROWS
                                or self.n_train * row_bytes + subset_bytes <= budget)
        # the training rows are kept standardised (float32) when they fit beside the subset and the
        # evaluation rows; else as stored, standardised per chunk on every pass
        self.standardised = self.train_in_memory and (
            self.n_train * z_bytes + subset_bytes + eval_bytes <= budget)
        train_bytes = (self.n_train * (z_bytes if self.standardised else row_bytes) if self.train_in_memory
                       else self.n_subset * z_bytes)
        self.eval_in_memory = train_bytes + (subset_bytes if self.train_in_memory else 0) + eval_bytes <= budget
        self.train = None  # _InMemoryRows of every training row (small data) or _StreamedRows
        self.subset = None  # _InMemoryRows for choosing l2 (large data)
        self.eval = None  # (rows, positions): validation rows first, then test rows
        self.progress = None

    def _set_labels(self, labels):
        """The labels, and the classes present in the training positions: ``classes`` (label ids),
        ``compact_t`` (each position's index into ``classes``, -1 elsewhere) and their counts."""
        import torch

        self.labels = labels
        train = labels[self.role == 0]
        counts = np.bincount(train, minlength=int(labels.max()) + 1 if labels.size else 1)
        self.classes = np.flatnonzero(counts)
        self.class_counts = counts[self.classes]
        compact = np.full(max(int(labels.max()) + 1, 1) + 1, -1, np.int64)
        compact[self.classes] = np.arange(len(self.classes))
        self.compact = compact[labels]  # label -1 reads the last entry: -1
        self.compact_t = torch.from_numpy(self.compact)

    def planned_work(self, collected=False):
        work = 0 if collected else self.n  # the collecting pass
        if self.large:
            work += self.n_subset * EXPECTED_PASSES
        work += (self.n_train if self.train_in_memory else self.n) * (EXPECTED_PASSES // (4 if self.large else 1))
        if not self.eval_in_memory:
            work += 2 * self.n  # two evaluation passes at most
        return work

    def standardise(self, x, out=None):
        """``(x - mean) / std`` as float32 (non-finite values become 0) for a torch tensor ``x`` of
        stored rows, into ``out`` if given, else into a buffer that the next call overwrites."""
        import torch

        if len(x) > len(self.z_buf):
            self.raw_buf = torch.empty((len(x), self.units))
            self.z_buf = torch.empty((len(x), self.units))
        raw = x if x.dtype == torch.float32 else self.raw_buf[: len(x)].copy_(x)
        z = torch.addcmul(self.shift, raw, self.inv_std, out=self.z_buf[: len(x)] if out is None else out)
        if not self.all_finite:
            torch.nan_to_num_(z, nan=0.0, posinf=0.0, neginf=0.0)
        return z

    def fitter(self, progress, *, tol, max_iter):
        """``fit(rows, grid, init=None) -> probe_solver.SolverResult`` on these rows' classes, with the
        preconditioner's second moment from the in-memory rows (computed once)."""
        import torch

        from lstmviz.analysis.probe_solver import fit_softmax, second_moment

        self.progress = progress
        memory = self.subset if self.subset is not None else self.train
        second = torch.linalg.eigh(second_moment(memory.sample(PRECONDITIONER_ROWS)))  # shared by every fit

        def fit(rows, grid, init=None, curvatures=None, memories=None, tol=tol, max_iter=max_iter):
            # the classes present in a subset can be fewer: absent ones get a prior of ~0 (the solver
            # clamps it) and are pushed down by the data; they occur in the full set's optimum
            counts = np.bincount(self.compact[rows.pos], minlength=len(self.classes)) \
                if isinstance(rows, _InMemoryRows) else self.class_counts
            return fit_softmax(rows, rows.n, self.units, counts, grid, init=init, curvatures=curvatures, memories=memories,
                               second=second, tol=tol, max_iter=max_iter)

        return fit

    def collect(self, progress):
        """The pass over the tap that fills the in-memory rows (class docstring)."""
        import torch

        self.progress = progress
        train_pos = np.flatnonzero(self.role == 0)
        if self.train_in_memory:
            keep, self.train = train_pos, None
        else:
            keep = np.sort(self.rng.choice(train_pos, self.n_subset, replace=False))
            self.train = _StreamedRows(self)
        # kept rows are standardised as they arrive, slab by slab, when they are kept standardised
        standardise = self.standardised or not self.train_in_memory
        kept = np.zeros(self.n, bool)
        kept[keep] = True
        x_train = _rows_buffer(len(keep), self.units, np.float32 if standardise else self.buf.dtype)
        z_train = torch.from_numpy(x_train)
        staging = np.empty_like(self.buf) if standardise else None
        if self.eval_in_memory:
            eval_pos = np.concatenate([np.flatnonzero(self.role == 1), np.flatnonzero(self.role == 2)])
            x_eval = _rows_buffer(len(eval_pos), self.units, self.buf.dtype)
            cursor = {0: 0, 1: 0, 2: self.n_valid}
        else:
            cursor = {0: 0}
        with SlabReader(self.recording, self.tap, len(self.buf)) as slabs:
            for a, c, x in slabs:
                if standardise:
                    got = _copy_runs(x, kept[a:c], staging, 0)
                    at = cursor[0]
                    self.standardise(torch.from_numpy(staging[:got]), out=z_train[at:at + got])
                    cursor[0] = at + got
                else:
                    cursor[0] = _copy_runs(x, kept[a:c], x_train, cursor[0])
                if self.eval_in_memory:
                    r = self.role[a:c]
                    for side in (1, 2):
                        cursor[side] = _copy_runs(x, r == side, x_eval, cursor[side])
                progress.add(c - a)
        rows = _InMemoryRows(self, z_train, keep, standardised=standardise)
        if not self.train_in_memory:
            self.subset = rows
        else:
            self.train = rows
            if self.large:  # a random subset of the rows, in their order, standardised
                pick = np.sort(self.rng.choice(len(keep), self.n_subset, replace=False))
                self.subset = _InMemoryRows(self, rows.standardised_rows(pick), keep[pick], standardised=True)
        if self.eval_in_memory:
            self.eval = (torch.from_numpy(x_eval), eval_pos)

    def relabel(self, labels, progress):
        """A copy that shares the rows read already but trains on ``labels`` (labelled at the same
        positions as before)."""
        import copy

        other = copy.copy(self)
        other._set_labels(labels)
        other.progress = progress
        if self.subset is not None:
            other.subset = self.subset.for_data(other)
        if isinstance(self.train, _InMemoryRows):
            other.train = self.train.for_data(other)
        else:
            other.train = _StreamedRows(other)
        return other

    def evaluate(self, weights, bias, roles):
        """Validation accuracy per fit (when 1 in ``roles``) and the test positions and predicted
        labels [positions, fits] (when 2 in ``roles``); ``weights`` [fits, classes present, units]."""
        import torch

        g = len(weights)
        kk = len(self.classes)
        w = torch.from_numpy(np.ascontiguousarray(weights.transpose(2, 0, 1).reshape(self.units, g * kk)))
        b = torch.from_numpy(np.ascontiguousarray(bias.reshape(g * kk)))
        valid_correct = np.zeros(g, np.int64)
        n_valid = 0
        test_pos, test_pred = [np.zeros(0, np.int64)], [np.zeros((0, g), np.int64)]
        item_hits = np.zeros((self.recording.n_items, g), np.int64)  # validation hits per item and fit
        item_totals = np.zeros(self.recording.n_items, np.int64)

        def score(z, pos):
            nonlocal n_valid
            pred = self.classes[torch.addmm(b, z, w).view(-1, g, kk).argmax(-1).numpy()]
            r = self.role[pos]
            y = self.labels[pos]
            v = r == 1
            hits = pred[v] == y[v, None]
            valid_correct[:] += hits.sum(0)
            n_valid += int(v.sum())
            if v.any():
                items = np.asarray(self.recording.item_of(pos[v]), np.int64)
                np.add.at(item_hits, items, hits.astype(np.int64))
                item_totals[:] += np.bincount(items, minlength=len(item_totals))
            t = r == 2
            test_pos.append(pos[t])
            test_pred.append(pred[t])

        if self.eval is not None:
            x_eval, eval_pos = self.eval
            start = 0 if 1 in roles else self.n_valid
            stop = len(eval_pos) if 2 in roles else self.n_valid
            for s in range(start, stop, CHUNK_ROWS):
                e = min(stop, s + CHUNK_ROWS)
                score(self.standardise(x_eval[s:e]), eval_pos[s:e])
        else:
            with SlabReader(self.recording, self.tap, len(self.buf)) as slabs:
                for a, c, x in slabs:
                    idx = np.flatnonzero(np.isin(self.role[a:c], roles))
                    if len(idx):
                        score(self.standardise(torch.from_numpy(np.take(x, idx, axis=0))), a + idx)
                    self.progress.add(c - a)
        accs = valid_correct / max(1, n_valid)
        kept = item_totals > 0
        self.valid_items = (item_hits[kept], item_totals[kept])  # for the standard error of the accuracy
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
    items = np.asarray(recording.item_of(test_pos))
    if len(np.unique(items)) < 2:  # one test item (a position split): positions are the resampled units
        items = np.asarray(test_pos)
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
