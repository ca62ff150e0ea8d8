r"""Units against random directions (Szegedy et al. 2013, §3): the images that maximise ``<φ(x), v>``.

For a tap of an image recording, ``φ(x)[cell, u]`` is image ``x``'s state at a cell (one cell per image
for a tap on a scalar axis: ``pooled``, ``logits``, a fully connected layer) and unit ``u``. A direction
``v`` (``[units]``) scores every cell by the projection

.. math::
    s(x, \mathrm{cell}) = \langle \varphi(x)[\mathrm{cell}, :],\, v \rangle

and the image by the **max** over its cells (``reduce="max"``, as the top-activating images rank a unit)
or their **mean** (``reduce="mean"``: equal to projecting the cell-averaged feature vector). A unit
direction ``v = e_i`` gives exactly :func:`lstmviz.analysis.image_top.top_activating`'s ranking of unit ``i``
(same scores, peak cells and tie rule). A cell with a NaN in a unit of non-zero weight scores NaN (NaN in
a unit that ``v`` ignores does not count), and NaN cells are left out as in ``image_top``.

Random directions are drawn i.i.d. Gaussian and normalised (uniform on the unit sphere), seeded; they,
the label purity, the bootstrap interval and the Mann-Whitney test are those of
:mod:`lstmviz.analysis.direction_coherence` (the same comparison on token recordings, whose positions are
tokens, not images).

**Label purity** of a set of images: the fraction that share the set's most frequent label (an image
without a label counts as not sharing it). :func:`purity_units_vs_random` compares the purity of the
top-``k`` images of ``n`` units (``n`` distinct units, seeded, when the tap has more) with that of ``n``
random directions, and with two baselines: ``1 / classes`` and the purity of ``k`` images drawn at random
(the mean over 2000 seeded draws; above ``1 / classes``, since the modal label of a few random images
is over-represented by construction). The paper's claim: units and random directions are about equally
"semantically coherent" -- both purities far above the baselines and close to each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmviz.analysis.direction_coherence import (bootstrap_mean_ci, chance_purity, mann_whitney_p, purity,
                                                  random_directions, unit_directions)
from lstmviz.analysis.image_top import REDUCE, item_reduce, item_slabs, rank
from lstmviz.tasks import ensure_task

__all__ = ["DirectionTop", "PurityComparison", "cell_projections", "direction_scores", "item_labels",
           "purity_units_vs_random", "random_directions", "top_along", "unit_direction"]


@dataclass(frozen=True)
class DirectionTop:
    """The images ranked along one direction: ``items`` int64 [n], ``scores`` float64 [n], ``cells`` int64
    [n] (each image's peak cell, item-local raster index), ``peaks`` float64 [n] (its score)."""

    tap: str
    direction: np.ndarray  # float64 [units]
    reduce: str
    items: np.ndarray
    scores: np.ndarray
    cells: np.ndarray
    peaks: np.ndarray
    label: str = ""  # what the direction is ("unit 3", "random direction, seed 7")

    def __len__(self) -> int:
        return len(self.items)


def unit_direction(units: int, unit: int) -> np.ndarray:
    """float64 ``[units]``: the natural basis vector ``e_unit``."""
    return unit_directions(units, [unit])[0]


def cell_projections(values: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``[rows, d]``: each row's projection on each direction; NaN where a unit of non-zero weight is NaN."""
    values = np.asarray(values, dtype=np.float64)
    nan = np.isnan(values)
    out = np.nan_to_num(values, nan=0.0) @ directions.T
    if nan.any():
        out[(nan.astype(np.float64) @ (directions != 0).T.astype(np.float64)) > 0] = np.nan
    return out


def direction_scores(recording, tap: str, directions, *, reduce: str = "max", task=None):
    """Per direction and image: ``(scores [d, items], cells [d, items], peaks [d, items])`` (module
    docstring), streaming the tap in slabs of whole images. ``directions``: ``[units]`` or ``[d, units]``."""
    task = ensure_task(task)
    if reduce not in REDUCE:
        raise ValueError(f"reduce must be one of {', '.join(REDUCE)}, got {reduce!r}")
    info = recording.taps[tap]
    directions = np.atleast_2d(np.asarray(directions, dtype=np.float64))
    if directions.shape[1] != info.units:
        raise ValueError(f"a direction for tap {tap} needs {info.units} values (one per unit), got "
                         f"{directions.shape[1]}")
    d = directions.shape[0]
    offsets = np.asarray(recording.axis_offsets(info.axis), dtype=np.int64)
    n_items = len(offsets) - 1
    scores = np.full((d, n_items), np.nan)
    cells = np.full((d, n_items), -1, np.int64)
    peaks = np.full((d, n_items), np.nan)
    for i, j, a, b in item_slabs(offsets, task, f"Projecting {tap} on {d} direction{'s' if d != 1 else ''}"):
        proj = cell_projections(recording.states(tap, a, b), directions)
        for k in range(d):
            scores[k, i:j], cells[k, i:j], peaks[k, i:j] = item_reduce(proj[:, k], offsets[i:j + 1] - a, reduce)
    return scores, cells, peaks


def top_along(recording, tap: str, direction, *, limit: int = 24, reduce: str = "max", label: str = "",
              task=None) -> DirectionTop:
    """The ``limit`` images of ``recording`` with the largest projection of ``tap`` on ``direction``
    (``[units]``), best first, ties by image index."""
    direction = np.asarray(direction, dtype=np.float64).reshape(-1)
    scores, cells, peaks = direction_scores(recording, tap, direction, reduce=reduce, task=task)
    order = rank(scores[0], limit)
    return DirectionTop(tap, direction, reduce, order.astype(np.int64), scores[0][order], cells[0][order],
                        peaks[0][order], label)


def item_labels(recording, annotation: str = "target") -> tuple[np.ndarray, list[str]]:
    """int64 per image (-1 = missing) of a categorical item-level annotation, and its label names."""
    info = recording.annotations.get(annotation)
    if info is None:
        raise ValueError(f"the recording has no annotation {annotation!r}; it has "
                         f"{', '.join(sorted(recording.annotations)) or 'none'}")
    if info.kind != "categorical" or info.level != "item" or not info.labels:
        raise ValueError(f"label purity needs a categorical label per image, but {annotation!r} is a "
                         f"{info.level}-level "
                         f"{info.kind} annotation")
    values = np.asarray(recording.annotation(annotation), dtype=np.int64)
    return np.where((values >= 0) & (values < len(info.labels)), values, -1), list(info.labels)


@dataclass(frozen=True)
class PurityComparison:
    """Label purity of the top-``k`` images of ``units`` and of ``directions`` (random), with baselines."""

    tap: str
    annotation: str
    reduce: str
    k: int
    units: np.ndarray  # int64 [n]
    directions: np.ndarray  # float64 [n, units]
    unit_purity: np.ndarray  # float64 [n]
    random_purity: np.ndarray  # float64 [n]
    random_images_purity: float  # mean purity of k images drawn at random (2000 draws)
    chance: float  # 1 / number of classes
    unit_ci: tuple[float, float]  # 95% bootstrap interval of the mean unit purity (resampling units)
    random_ci: tuple[float, float]  # the same for the random directions
    p_value: float  # two-sided Mann-Whitney U, unit against random purities
    constant: np.ndarray  # bool [n]: the unit's score is the same for every image (a dead unit; its top-k is by index)

    @property
    def constant_units(self) -> int:
        return int(self.constant.sum())

    @property
    def mean_live_unit(self) -> float:
        """The mean purity over the units that are not constant (NaN when every unit is)."""
        live = self.unit_purity[~self.constant]
        return float(np.nanmean(live)) if live.size else float("nan")

    @property
    def mean_unit(self) -> float:
        return float(np.nanmean(self.unit_purity)) if self.unit_purity.size else float("nan")

    @property
    def mean_random(self) -> float:
        return float(np.nanmean(self.random_purity)) if self.random_purity.size else float("nan")

    def summary(self) -> dict:
        return {"tap": self.tap, "reduce": self.reduce, "k": self.k, "n_units": len(self.units),
                "n_random": len(self.directions), "unit_purity": self.mean_unit,
                "live_unit_purity": self.mean_live_unit, "random_purity": self.mean_random,
                "unit_ci": self.unit_ci, "random_ci": self.random_ci, "p_value": self.p_value,
                "random_images_purity": self.random_images_purity, "chance": self.chance,
                "constant_units": self.constant_units}


def purity_units_vs_random(recording, tap: str, annotation: str = "target", *, n: int = 50, k: int = 8,
                           units=None, seed: int = 0, reduce: str = "max", task=None) -> PurityComparison:
    """Top-``k`` label purity of ``n`` units against ``n`` random directions of ``tap`` (module docstring).

    ``units``: the units to use (default: ``n`` distinct units drawn with ``seed``, all of them when the tap
    has ``n`` or fewer); the random directions are drawn with ``seed + 1``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    labels, names = item_labels(recording, annotation)
    n_units = recording.taps[tap].units
    rng = np.random.default_rng(seed)
    if units is None:
        units = np.sort(rng.choice(n_units, size=min(n, n_units), replace=False))
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    basis = np.stack([unit_direction(n_units, int(u)) for u in units]) if len(units) else np.zeros((0, n_units))
    randoms = random_directions(n_units, n, seed + 1)
    scores, _, _ = direction_scores(recording, tap, np.concatenate([basis, randoms]), reduce=reduce, task=task)

    purities = np.array([purity(labels[rank(row, k)]) for row in scores])
    random_images = chance_purity(labels, min(k, len(labels)), seed=seed + 2)
    unit_scores = scores[:len(units)]
    constant = np.array([bool(np.nanmax(row) == np.nanmin(row)) if np.isfinite(row).any() else True
                         for row in unit_scores], dtype=bool)
    unit_p, random_p = purities[:len(units)], purities[len(units):]
    return PurityComparison(tap, annotation, reduce, int(k), units, randoms, unit_p, random_p, random_images,
                            1.0 / len(names), bootstrap_mean_ci(unit_p, seed=seed),
                            bootstrap_mean_ci(random_p, seed=seed),
                            mann_whitney_p(unit_p, random_p) if len(unit_p) and len(random_p) else float("nan"),
                            constant)
