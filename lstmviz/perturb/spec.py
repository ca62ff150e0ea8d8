r"""What to change in a re-run: a :class:`Perturbation` of one tap, turned into hook-layer edits by :func:`resolve`.

A perturbation acts on the values :math:`x_{t,u}` of one tap at positions :math:`t \in P` (item-local,
0 = the item's first token) and units :math:`u \in U` (``None`` = all of them):

- ``ablate``: :math:`x_{t,u} \leftarrow 0` (``ablate_to="zero"``) or :math:`x_{t,u} \leftarrow \mu_u`, the
  unit's mean over every position of the recording (``ablate_to="mean"``, from the tap statistics,
  streamed in slabs and cached per tap beside the recording);
- ``clamp``: :math:`x_{t,u} \leftarrow v` (``value``);
- ``add``: :math:`x_{t,U} \leftarrow x_{t,U} + \alpha\, d / \lVert d \rVert_2` with the direction ``d`` over
  the units ``U``:

  * ``unit``: :math:`d = \mathbf{1}_U` (one unit: the basis vector :math:`e_u`),
  * ``random``: :math:`d \sim \mathcal{N}(0, I_{|U|})` drawn with ``seed`` -- the same norm as the unit
    direction after normalising (Szegedy et al. 2014 compare the two),
  * ``probe``: the weight row of class ``probe_class`` of a linear probe of annotation ``probe_label`` on
    this tap (:func:`lstmviz.analysis.probes.fit_probe`), mapped back to raw units:
    :math:`d_u = W_{k,u} / \sigma_u` (the probe reads standardised units :math:`(x_u - \mu_u) / \sigma_u`),
  * ``means``: :math:`d = \bar x_{a} - \bar x_{b}`, the mean state over positions of annotation class
    ``a`` minus that over class ``b`` (``means_label``, ``means_classes``),
  * ``vector``: the given ``vector`` (one value per unit of ``U``);
- ``patch``: :math:`x_{t_k,U} \leftarrow x'_{s + k,U}` where :math:`x'` are the states of the clean run of
  item ``source_item`` and :math:`s` = ``source_start`` (activation patching); the positions
  :math:`t_0 < t_1 < \dots` and the source range have the same count.

Every edit goes through :func:`lstmviz.hooks.intervene`: a recurrent model uses the edited value in
the following steps (a gated cell's ``c`` or gate edited at step t changes every later step).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from .errors import PerturbError

ACTIONS = ("ablate", "clamp", "add", "patch")
DIRECTIONS = ("unit", "random", "probe", "means", "vector")
ABLATE_TO = ("zero", "mean")


def _int_tuple(values, what: str) -> tuple[int, ...] | None:
    if values is None:
        return None
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    out = []
    try:
        for v in values:
            if isinstance(v, bool) or int(v) != v or int(v) < 0:
                raise ValueError
            out.append(int(v))
    except (TypeError, ValueError):
        raise PerturbError(f"{what} must be whole numbers >= 0, got {values!r}") from None
    if not out:
        raise PerturbError(f"{what}: give at least one (or None for all)")
    return tuple(out)


@dataclass(frozen=True)
class Perturbation:
    """One intervention on one tap (see the module docstring for what each action computes)."""

    tap: str
    action: str
    units: tuple[int, ...] | None = None
    positions: tuple[int, ...] | None = None
    ablate_to: str = "zero"
    value: float = 0.0
    direction: str = "unit"
    alpha: float = 1.0
    seed: int = 0
    vector: tuple[float, ...] | None = None
    probe_label: str | None = None
    probe_class: str | None = None
    means_label: str | None = None
    means_classes: tuple[str, str] | None = None
    source_item: int | None = None
    source_start: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tap, str) or not self.tap:
            raise PerturbError(f"a perturbation needs a tap name, got {self.tap!r}")
        if self.action not in ACTIONS:
            raise PerturbError(f"unknown action {self.action!r}; choose one of {', '.join(ACTIONS)}")
        if self.ablate_to not in ABLATE_TO:
            raise PerturbError(f"ablate to {self.ablate_to!r} is not known; choose zero or mean")
        if self.direction not in DIRECTIONS:
            raise PerturbError(f"unknown direction {self.direction!r}; choose one of {', '.join(DIRECTIONS)}")
        object.__setattr__(self, "units", _int_tuple(self.units, "units"))
        object.__setattr__(self, "positions", _int_tuple(self.positions, "positions"))
        if self.positions is not None:
            object.__setattr__(self, "positions", tuple(sorted(set(self.positions))))
        if self.vector is not None:
            try:
                object.__setattr__(self, "vector", tuple(float(v) for v in np.asarray(self.vector, float).ravel()))
            except (TypeError, ValueError):
                raise PerturbError(f"the vector must be numbers, got {self.vector!r}") from None
        if self.means_classes is not None:
            classes = tuple(str(c) for c in self.means_classes)
            if len(classes) != 2:
                raise PerturbError(f"a difference of means needs two classes, got {len(classes)}")
            object.__setattr__(self, "means_classes", classes)
        for name in ("value", "alpha"):
            try:
                object.__setattr__(self, name, float(getattr(self, name)))
            except (TypeError, ValueError):
                raise PerturbError(f"{name} must be a number, got {getattr(self, name)!r}") from None

    # --- files -------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain values (lists for tuples), for workspace files and CSV tables."""
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Perturbation":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PerturbError(f"unknown perturbation field(s) {', '.join(unknown)}")
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        try:
            return cls(**values)
        except TypeError as e:
            raise PerturbError(f"a perturbation needs a tap and an action ({e})") from None

    def with_positions(self, positions) -> "Perturbation":
        return replace(self, positions=None if positions is None else tuple(positions))

    # --- words -------------------------------------------------------------------------------

    def describe(self) -> str:
        """E.g. ``"ablate layer0/c units 3,17 at 5..9 to the mean"``."""
        units = "all units" if self.units is None else (
            f"unit {self.units[0]}" if len(self.units) == 1 else f"units {_list_text(self.units)}")
        at = "at all positions" if self.positions is None else f"at {_positions_text(self.positions)}"
        head = f"{self.action} {self.tap} {units} {at}"
        if self.action == "ablate":
            return head + (" to the mean" if self.ablate_to == "mean" else " to zero")
        if self.action == "clamp":
            return head + f" to {self.value:g}"
        if self.action == "add":
            what = {"unit": "the unit direction", "random": f"a random direction (seed {self.seed})",
                    "probe": f"the probe direction of {self.probe_label}={self.probe_class}",
                    "means": (f"mean({self.means_label}={self.means_classes[0]}) - "
                              f"mean({self.means_label}={self.means_classes[1]})") if self.means_classes else
                             "a difference of means",
                    "vector": "a given vector"}[self.direction]
            return head + f" plus {self.alpha:g} x {what}"
        return head + f" from item {self.source_item} at {self.source_start or 0}.."


def _list_text(values) -> str:
    return ",".join(str(v) for v in values) if len(values) <= 8 else \
        ",".join(str(v) for v in values[:8]) + f",... ({len(values)})"


def _positions_text(positions) -> str:
    p = list(positions)
    if len(p) > 1 and p == list(range(p[0], p[-1] + 1)):
        return f"{p[0]}..{p[-1]}"
    return _list_text(p)


# --------------------------------------------------------------------------------------- resolving


_CACHE: dict[tuple, np.ndarray] = {}
_CACHE_LIMIT = 64


def _cached(key: tuple, make):
    if key in _CACHE:
        return _CACHE[key]
    value = make()
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = value
    return value


def _recording_key(recording) -> tuple:
    try:
        stat = recording.path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
    except OSError:
        stamp = None
    return (str(recording.path), getattr(recording, "checkpoint", None), stamp)


def tap_units(live, recording, tap: str) -> int | None:
    """How many units ``tap`` has (from the recording, else from the model when it is known beforehand)."""
    info = recording.taps.get(tap) if recording is not None else None
    if info is not None:
        return int(info.units)
    from lstmviz.hooks import signal_catalog

    found = signal_catalog(live.model).get(tap)
    return None if found is None else found.units


def check_tap(live, recording, tap: str) -> None:
    from lstmviz.hooks import signal_catalog

    catalog = signal_catalog(live.model)
    if tap not in catalog:
        taps = [n for n, i in catalog.items() if i.kind in ("tap", "rnn")]
        shown = ", ".join(taps[:12]) + (" ..." if len(taps) > 12 else "")
        raise PerturbError(f"the model has no tap {tap!r}; its taps are {shown or 'none'}")


def unit_means(recording, tap: str, task=None) -> np.ndarray:
    """float64 ``[units]``: each unit's mean over all positions (``tap_stats``, cached per tap)."""
    from lstmviz.analysis.transforms import tap_stats

    def make():
        return np.asarray(tap_stats(recording, tap, task=task).mean, dtype=np.float64)

    return _cached(("mean", _recording_key(recording), tap), make)


def class_means(recording, tap: str, annotation: str, classes: tuple[str, str], task=None) -> np.ndarray:
    """float64 ``[2, units]``: mean state over the positions of each of two classes of ``annotation``."""
    from lstmviz.analysis.probes import probe_labels

    info = recording.annotations.get(annotation)
    if info is None:
        raise PerturbError(f"the recording has no annotation {annotation!r} (annotations: "
                           f"{', '.join(recording.annotations) or 'none'})")
    if info.kind != "categorical" or not info.labels:
        raise PerturbError(f"a difference of means needs a categorical annotation; {annotation!r} is {info.kind}")
    ids = []
    for c in classes:
        if c not in info.labels:
            raise PerturbError(f"annotation {annotation!r} has no class {c!r} (classes: {', '.join(info.labels)})")
        ids.append(info.labels.index(c))

    def make():
        labels = probe_labels(recording, annotation)
        units = recording.taps[tap].units
        sums = np.zeros((2, units))
        counts = np.zeros(2)
        step = max(1, (8 << 20) // max(1, 4 * units))
        for a in range(0, recording.n_positions, step):
            b = min(recording.n_positions, a + step)
            x = recording.states(tap, a, b).astype(np.float64)
            lab = labels[a:b]
            for k, cid in enumerate(ids):
                rows = lab == cid
                counts[k] += rows.sum()
                sums[k] += x[rows].sum(axis=0)
            if task is not None:
                task.check()
        for k, c in enumerate(classes):
            if counts[k] == 0:
                raise PerturbError(f"no position of the recording has {annotation}={c}, so it has no mean state")
        return sums / counts[:, None]

    return _cached(("means", _recording_key(recording), tap, annotation, tuple(classes)), make)


def probe_direction(recording, tap: str, annotation: str, label: str, task=None) -> np.ndarray:
    """float64 ``[units]``: class ``label``'s weight row of a probe of ``annotation`` on ``tap``, in raw units."""
    from lstmviz.analysis.probes import fit_probe, probe_labels, probe_split
    from lstmviz.analysis.transforms import tap_stats

    info = recording.annotations.get(annotation)
    if info is None:
        raise PerturbError(f"the recording has no annotation {annotation!r} (annotations: "
                           f"{', '.join(recording.annotations) or 'none'})")
    if info.kind != "categorical" or not info.labels:
        raise PerturbError(f"a probe direction needs a categorical annotation; {annotation!r} is {info.kind}")
    if label not in info.labels:
        raise PerturbError(f"annotation {annotation!r} has no class {label!r} (classes: {', '.join(info.labels)})")

    def make():
        try:
            result = fit_probe(recording, tap, probe_labels(recording, annotation), probe_split(recording),
                               annotation=annotation, label_names=list(info.labels), task=task)
        except ValueError as e:
            raise PerturbError(f"the probe of {annotation!r} on {tap!r} cannot be fitted: {e}") from None
        std = np.asarray(tap_stats(recording, tap).std, dtype=np.float64)
        std = np.where(std > 0, std, 1.0)
        return np.asarray(result.weights, dtype=np.float64) / std[None, :]

    weights = _cached(("probe", _recording_key(recording), tap, annotation), make)
    return weights[info.labels.index(label)]


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise PerturbError(f"{name} must be a finite number, got {value!r}")


def direction_vector(p: Perturbation, live, recording, n_units: int | None, task=None) -> np.ndarray:
    """The unit-norm direction of an ``add`` over the selected units (float64 ``[|U|]``)."""
    units = p.units
    count = len(units) if units is not None else n_units
    if count is None:
        raise PerturbError(f"the number of units of {p.tap!r} is not known before a run; give units=...")
    cols = list(units) if units is not None else slice(None)
    if p.direction == "unit":
        d = np.ones(count)
    elif p.direction == "random":
        d = np.random.default_rng(int(p.seed)).standard_normal(count)
    elif p.direction == "vector":
        if p.vector is None:
            raise PerturbError("direction vector needs a vector (one value per selected unit)")
        d = np.asarray(p.vector, dtype=np.float64)
        if len(d) != count:
            raise PerturbError(f"the vector has {len(d)} values, but {count} units are selected on {p.tap!r}")
        if not np.all(np.isfinite(d)):
            raise PerturbError("the vector must hold finite numbers")
    else:
        _need_recorded(p, recording)
        if p.direction == "probe":
            if not p.probe_label or p.probe_class is None:
                raise PerturbError("a probe direction needs an annotation and a class (probe:ANNOTATION:CLASS)")
            d = probe_direction(recording, p.tap, p.probe_label, str(p.probe_class), task)[cols]
        else:
            if not p.means_label or not p.means_classes:
                raise PerturbError("a difference of means needs an annotation and two classes "
                                   "(means:ANNOTATION:A:B)")
            m = class_means(recording, p.tap, p.means_label, p.means_classes, task)
            d = (m[0] - m[1])[cols]
    norm = float(np.linalg.norm(d))
    if not norm > 0 or not math.isfinite(norm):
        raise PerturbError(f"the {p.direction} direction on {p.tap!r} is zero over the selected units, so it "
                           f"cannot be scaled to unit length")
    return d / norm


def _need_recorded(p: Perturbation, recording) -> None:
    if p.tap not in recording.taps:
        raise PerturbError(f"the recording has no states of {p.tap!r}, which {p.describe()} needs; record that tap")


def check(p: Perturbation, live, recording, item: int | None, length: int | None) -> int | None:
    """Validate ``p`` against the model, the recording and the item (``length`` tokens); the tap's unit count."""
    check_tap(live, recording, p.tap)
    n_units = tap_units(live, recording, p.tap)
    if p.units is not None and n_units is not None and max(p.units) >= n_units:
        raise PerturbError(f"unit {max(p.units)} does not exist on {p.tap!r}, which has {n_units} units "
                           f"(0 to {n_units - 1})")
    if length is not None and p.positions is not None and max(p.positions) >= length:
        raise PerturbError(f"position {max(p.positions)} is beyond item {item}, which has {length} tokens "
                           f"(positions 0 to {length - 1})")
    _finite("alpha", p.alpha)
    _finite("the clamp value", p.value)
    if p.action == "patch":
        if p.source_item is None:
            raise PerturbError("a patch needs a source item (--source-item)")
        if not 0 <= int(p.source_item) < recording.n_items:
            raise PerturbError(f"the patch source item {p.source_item} does not exist; the recording has items 0 to "
                               f"{recording.n_items - 1}")
    return n_units


def patch_source(p: Perturbation, live, recording, item: int, length: int) -> tuple[tuple[int, ...], np.ndarray]:
    """Target positions and the source item's clean states ``[count, |U|]`` copied into them."""
    from .run import run_item

    targets = p.positions if p.positions is not None else tuple(range(length))
    start = int(p.source_start or 0)
    a, b = recording.item_range(int(p.source_item))
    source_length = b - a
    if start < 0 or start + len(targets) > source_length:
        raise PerturbError(
            f"the patch copies {len(targets)} positions from item {p.source_item} at {start}, but that item has "
            f"{source_length} tokens, so the source has another length; choose a range of the same length")
    source = run_item(live, recording, int(p.source_item), taps=[p.tap]).states[p.tap][start:start + len(targets)]
    if p.units is not None:
        source = source[:, list(p.units)]
    return targets, source


def resolve(perturbations, live, recording, item: int, *, length: int | None = None, task=None) -> list:
    """The hook-layer :class:`~lstmviz.hooks.Edit` objects that apply ``perturbations`` on ``item``.

    Validates each against the recording and the model (unknown tap or unit, non-finite alpha or value,
    positions beyond the item, a patch source of another length) with :class:`PerturbError` sentences,
    and computes the means and directions they need. ``length``: the item's token count (read from the
    recording when None).
    """
    from lstmviz.hooks import Edit

    if isinstance(perturbations, Perturbation):
        perturbations = [perturbations]
    if length is None:
        a, b = recording.item_range(int(item))
        length = b - a
    edits = []
    for p in perturbations:
        if not isinstance(p, Perturbation):
            raise PerturbError(f"expected Perturbation objects, got a {type(p).__name__}")
        n_units = check(p, live, recording, item, length)
        units = None if p.units is None else list(p.units)
        positions = None if p.positions is None else list(p.positions)
        if p.action == "ablate":
            if p.ablate_to == "mean":
                _need_recorded(p, recording)
                mean = unit_means(recording, p.tap, task)
                value = mean if units is None else mean[units]
            else:
                value = 0.0
            edits.append(Edit(p.tap, "replace", np.asarray(value, np.float32), positions=positions, units=units))
        elif p.action == "clamp":
            edits.append(Edit(p.tap, "replace", p.value, positions=positions, units=units))
        elif p.action == "add":
            d = direction_vector(p, live, recording, n_units, task)
            edits.append(Edit(p.tap, "add", (p.alpha * d).astype(np.float32), positions=positions, units=units))
        else:
            targets, source = patch_source(p, live, recording, int(item), length)
            for t, row in zip(targets, source):
                edits.append(Edit(p.tap, "replace", row, positions=[t], units=units))
    return edits


__all__ = ["ACTIONS", "DIRECTIONS", "Perturbation", "resolve"]
