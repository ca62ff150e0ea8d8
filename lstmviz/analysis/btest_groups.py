"""The B-test (``btest``) between two groups of recorded states, with **items** as the sampling unit.

States at positions of one item (tokens of a sentence, nodes of a graph, pixels of an image) are not
independent, and the B-test assumes independent samples (models_graph_vision A2 (f)). So every item
contributes **one** vector to a group:

- ``per_item="sample"``: the state at one row drawn at random (seeded) among the item's rows in the group;
- ``per_item="mean"``: the mean state over the item's rows in the group. Means over more rows scatter
  less, so when one group has many rows per item and the other few (a node class against the rest)
  the test also sees that difference in spread; ``"sample"`` compares the states themselves.

and the two groups are made of **disjoint items**: an item with rows in both groups is given to one of
them (seeded; each such item goes to the group that has fewer items so far, ties at random), so no item
contributes to both sides. An item vector holding NaN or inf is left out (``ItemSamples.dropped``). The vectors are the tap's values restricted to ``units`` (all when None), as
stored (raw, no transform). Rows marked as filler (``Recording.filler``: graph padding) never enter.

Groups (``Groups``):
- ``annotation_groups``: two labels of a categorical annotation. An item-level annotation gives items
  (every row of the item on the tap's axis is a candidate, so it works on every tap and geometry); a
  position-level one gives main-axis positions (taps on the main axis only).
- ``match_groups``: the rows of matched runs (a ``MatchResults`` on one axis) against the **background**:
  the rows outside every match. Items with rows of both kinds are split as above, so the background is a
  sample of positions from items that do not serve as match samples.
- ``row_groups``: two explicit row sets on one axis.

``compare_groups`` runs one B-test per tap and corrects the decisions over the taps with
Benjamini-Hochberg at ``q = alpha`` (``TapTest.adjusted_p``, ``TapTest.reject_bh``). The same items,
and with ``"sample"`` the same rows, are used for every tap on one axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmviz.analysis.btest import BTestResult, b_test, bh_adjust
from lstmviz.tasks import ensure_task

PER_ITEM = ("sample", "mean")
#: rows read at once when streaming a tap
SLAB_ROWS = 1 << 16


@dataclass(frozen=True)
class Groups:
    """Two groups of states, as items (``axis is None``) or as rows of one axis.

    Item groups: ``a``/``b`` are item indices; row groups: rows of ``axis`` (sorted, unique).
    """

    name_a: str
    name_b: str
    a: np.ndarray
    b: np.ndarray
    axis: str | None = None
    description: str = ""

    @property
    def item_level(self) -> bool:
        return self.axis is None


@dataclass(frozen=True)
class ItemSamples:
    """One vector per item and group (``x``: group A, ``y``: group B)."""

    x: np.ndarray  # float64 [items of A, units]
    y: np.ndarray
    items_x: np.ndarray  # int64 item of each row of x
    items_y: np.ndarray
    dropped: int = 0  # item vectors left out because they held NaN or inf


@dataclass(frozen=True)
class TapTest:
    tap: str
    result: BTestResult
    items_a: int  # items available on each side (the test pairs min of them, trimmed to a multiple of B)
    items_b: int
    adjusted_p: float = float("nan")  # Benjamini-Hochberg over the taps of one comparison
    reject_bh: bool = False
    dropped: int = 0  # item vectors left out (non-finite)


@dataclass(frozen=True)
class GroupComparison:
    groups: Groups
    tests: tuple[TapTest, ...]
    per_item: str
    units: tuple[int, ...] | None
    alpha: float
    seed: int


def _label_id(info, label: str) -> int:
    labels = list(info.labels or [])
    if label in labels:
        return labels.index(label)
    raise ValueError(f"annotation {info.name!r} has no label {label!r} (labels: {', '.join(labels)})")


def annotation_groups(recording, name: str, label_a: str, label_b: str) -> Groups:
    """Two classes of a categorical annotation (item- or position-level)."""
    info = recording.annotations.get(name)
    if info is None:
        raise ValueError(f"the recording has no annotation {name!r} "
                         f"(annotations: {', '.join(recording.annotations) or 'none'})")
    if info.kind != "categorical":
        raise ValueError(f"annotation {name!r} is {info.kind}, not categorical: it has no classes to compare")
    if label_a == label_b:
        raise ValueError(f"compare two different labels of {name!r}, got {label_a!r} twice")
    ia, ib = _label_id(info, label_a), _label_id(info, label_b)
    values = recording.annotation(name)
    a = np.flatnonzero(values == ia).astype(np.int64)
    b = np.flatnonzero(values == ib).astype(np.int64)
    axis = None if info.level == "item" else "positions"
    return Groups(f"{name}={label_a}", f"{name}={label_b}", a, b, axis,
                  f"{info.level}-level annotation {name!r}: {label_a!r} against {label_b!r}")


def _runs_to_rows(starts, lengths) -> np.ndarray:
    starts = np.asarray(starts, np.int64)
    lengths = np.asarray(lengths, np.int64)
    if starts.size == 0:
        return np.zeros(0, np.int64)
    rows = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    return np.unique(rows)


def match_groups(recording, results, axis: str = "positions") -> Groups:
    """The rows of the matched runs against the rows outside every match, on ``axis`` (the matched tap's)."""
    n = recording.axis_length(axis)
    matched = _runs_to_rows(results.starts, results.lengths)
    if matched.size and (matched[0] < 0 or matched[-1] >= n):
        raise ValueError(f"the matches cover rows outside axis {axis!r} (0..{n - 1}); were they made on another tap?")
    outside = np.ones(n, bool)
    outside[matched] = False
    return Groups("matches", "background", matched, np.flatnonzero(outside).astype(np.int64), axis,
                  f"{len(results)} matches ({matched.size} rows) against the rows outside them")


def row_groups(rows_a, rows_b, axis: str = "positions", names=("A", "B")) -> Groups:
    """Two explicit sets of rows of ``axis``."""
    a = np.unique(np.asarray(rows_a).ravel())
    b = np.unique(np.asarray(rows_b).ravel())
    for arr, nm in ((a, names[0]), (b, names[1])):
        if arr.size and arr.dtype.kind not in "iu":
            raise ValueError(f"rows of group {nm} must be integers, got dtype {arr.dtype}")
    return Groups(names[0], names[1], a.astype(np.int64), b.astype(np.int64), axis,
                  f"rows {names[0]} ({a.size}) against rows {names[1]} ({b.size})")


def _rows_on(recording, groups: Groups, tap: str) -> tuple[np.ndarray, np.ndarray, str]:
    """The groups as rows of ``tap``'s axis (filler rows removed)."""
    info = recording.taps.get(tap)
    if info is None:
        raise ValueError(f"the recording has no tap {tap!r} (taps: {', '.join(recording.taps) or 'none'})")
    axis = info.axis
    offsets = recording.axis_offsets(axis)
    n = int(offsets[-1])
    if groups.item_level:
        out = []
        for items in (groups.a, groups.b):
            lo, hi = offsets[items], offsets[items + 1]
            lengths = hi - lo
            out.append(np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum())))
        a, b = out
    else:
        if groups.axis != axis:
            raise ValueError(
                f"the groups are rows of axis {groups.axis!r} but tap {tap!r} lives on axis {axis!r}; "
                "use an item-level annotation or a tap on that axis")
        a, b = groups.a, groups.b
        for rows, nm in ((a, groups.name_a), (b, groups.name_b)):
            if rows.size and (rows[0] < 0 or rows[-1] >= n):
                raise ValueError(f"group {nm} has rows outside axis {axis!r} (0..{n - 1})")
    filler = recording.filler(axis)
    if filler.any():
        a, b = a[~filler[a]], b[~filler[b]]
    return a.astype(np.int64), b.astype(np.int64), axis


def _assign_items(items_a: np.ndarray, items_b: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint item sets: items in both groups fill the smaller side first, the rest split evenly
    (an odd one at random); which shared items go where is random."""
    ua, ub = np.unique(items_a), np.unique(items_b)
    shared = np.intersect1d(ua, ub)
    only_a = np.setdiff1d(ua, shared)
    only_b = np.setdiff1d(ub, shared)
    s, gap = len(shared), len(only_b) - len(only_a)
    if gap >= s:
        to_a = s
    elif -gap >= s:
        to_a = 0
    else:
        rest = s - abs(gap)
        to_a = max(gap, 0) + rest // 2 + (rest % 2 and rng.random() < 0.5)
    shared = shared[rng.permutation(s)]
    return np.union1d(only_a, shared[:to_a]), np.union1d(only_b, shared[to_a:])


def _keep_items(rows, row_items, keep):
    mask = np.isin(row_items, keep)
    return rows[mask], row_items[mask]


def _choose(rows, row_items, rng):
    """One row per item, uniformly among the item's rows (rows sorted by item)."""
    items, first, counts = np.unique(row_items, return_index=True, return_counts=True)
    pick = first + np.floor(rng.random(len(items)) * counts).astype(np.int64)
    return rows[pick], items


def _read_rows(recording, tap, rows, units, task) -> np.ndarray:
    """float64 states at sorted ``rows`` (streamed in slabs; slabs without rows are skipped)."""
    k = recording.states(tap, 0, 0, units).shape[1]
    out = np.empty((len(rows), k))
    if rows.size == 0:
        return out
    starts = np.arange(rows[0] - rows[0] % SLAB_ROWS, rows[-1] + 1, SLAB_ROWS)
    bounds = np.searchsorted(rows, np.append(starts, rows[-1] + 1))
    for s, lo, hi in zip(starts, bounds[:-1], bounds[1:]):
        task.check()
        if hi == lo:
            continue
        stop = int(rows[hi - 1]) + 1
        slab = recording.states(tap, int(rows[lo]), stop, units)
        out[lo:hi] = slab[rows[lo:hi] - rows[lo]]
    return out


def _item_means(recording, tap, rows, row_items, units, task):
    values = _read_rows(recording, tap, rows, units, task)
    items, first, counts = np.unique(row_items, return_index=True, return_counts=True)
    sums = np.add.reduceat(values, first, axis=0) if len(rows) else values[:0]
    return sums / counts[:, None], items


def item_samples(recording, tap: str, groups: Groups, *, units=None, per_item="sample", seed=0,
                 task=None) -> ItemSamples:
    """One vector per item of each group on ``tap`` (see the module doc for the rule)."""
    task = ensure_task(task)
    if per_item not in PER_ITEM:
        raise ValueError(f"per_item must be one of {', '.join(PER_ITEM)}, got {per_item!r}")
    rows_a, rows_b, axis = _rows_on(recording, groups, tap)
    offsets = recording.axis_offsets(axis)
    items_a = np.searchsorted(offsets, rows_a, side="right") - 1
    items_b = np.searchsorted(offsets, rows_b, side="right") - 1
    rng = np.random.default_rng(seed)
    keep_a, keep_b = _assign_items(items_a, items_b, rng)
    rows_a, items_a = _keep_items(rows_a, items_a, keep_a)
    rows_b, items_b = _keep_items(rows_b, items_b, keep_b)
    out = []
    for rows, row_items in ((rows_a, items_a), (rows_b, items_b)):
        if per_item == "sample":
            chosen, items = _choose(rows, row_items, rng)
            out.append((_read_rows(recording, tap, chosen, units, task), items))
        else:
            out.append(_item_means(recording, tap, rows, row_items, units, task))
    (x, ix), (y, iy) = out
    fx, fy = np.isfinite(x).all(axis=1), np.isfinite(y).all(axis=1)
    dropped = int((~fx).sum() + (~fy).sum())
    return ItemSamples(x[fx], y[fy], ix[fx].astype(np.int64), iy[fy].astype(np.int64), dropped)


def compare_groups(recording, taps, groups: Groups, *, units=None, per_item="sample", block_size=None,
                   alpha=0.05, seed=0, task=None) -> GroupComparison:
    """B-test of group A against group B on every tap of ``taps``; BH-corrected over the taps at ``alpha``.

    ``units``: unit indices kept on every tap (None: all). Raises ``ValueError`` in words for an unknown
    tap, groups on another axis than a tap, or fewer than ``2 B`` items on a side (4 with the default B).
    """
    task = ensure_task(task)
    taps = [taps] if isinstance(taps, str) else list(taps)
    if not taps:
        raise ValueError("name at least one tap to test")
    tests = []
    for k, tap in enumerate(taps):
        task.progress(k, len(taps), f"B-test on {tap}")
        s = item_samples(recording, tap, groups, units=units, per_item=per_item, seed=seed, task=task)
        na, nb = len(s.x), len(s.y)
        n = min(na, nb)
        need = 4 if block_size is None else 2 * int(block_size)
        if block_size is not None and int(block_size) == n >= 2:
            need = n  # one block: the quadratic-time MMD²_u alone (no p-value)
        if n < need and recording.n_items < 2 * need:
            raise ValueError(
                f"too few items for a B-test on {tap!r}: the recording has {recording.n_items} item(s), and the "
                f"test takes one vector per item (positions of one item are dependent), so it needs at least "
                f"{need} items on each side, {2 * need} in all; {groups.name_a} has {na} and {groups.name_b} {nb}")
        if n < need:
            raise ValueError(
                f"too few items for a B-test on {tap!r}: {groups.name_a} has {na} item(s) and "
                f"{groups.name_b} has {nb} (disjoint items, one vector each); it needs at least {need} per side")
        res = b_test(s.x, s.y, block_size=block_size, alpha=alpha, seed=seed)
        tests.append(TapTest(tap, res, na, nb, dropped=s.dropped))
    adj = bh_adjust([t.result.p_value for t in tests])
    tests = tuple(
        TapTest(t.tap, t.result, t.items_a, t.items_b, float(p), bool(np.isfinite(p) and p <= alpha), t.dropped)
        for t, p in zip(tests, adj)
    )
    task.progress(len(taps), len(taps), "B-test done")
    return GroupComparison(groups, tests, per_item, None if units is None else tuple(int(u) for u in units),
                           float(alpha), int(seed))
