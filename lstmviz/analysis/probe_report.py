"""A probe study of one label: a probe per tap, its control task, the baselines, and curves over training.

``run_probes`` is what the Probes panel runs: it fits, for one categorical annotation (optionally
shifted, optionally only at the last position of each item), one probe and one control probe per tap
(``probes.fit_probe``), the input-token baseline (``probes.input_baseline``) and reports the majority
baseline, all on one item split. The result, a ``ProbeReport``, is cached with the recording's derived
data (``cache.cache_dir_for``) and reused while the recording and every option are unchanged.

``probe_curves`` does the same for every checkpoint of a recording made from several checkpoints of
one training run (``lstmviz record CKPT1 CKPT2 ... --out FILE``; ``Recording.checkpoints``) and
returns ``ProbeCurves``: accuracy per tap against training step, as in Alain & Bengio's figures.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from lstmviz.analysis import cache as cache_files
from lstmviz.analysis.probe_images import POOLS, RowPlan, cell_labels, is_image_recording, probe_rows
from lstmviz.analysis.probes import (
    DEFAULT_L2_GRID,
    PositionSplit,
    ProbeResult,
    fit_probe,
    input_baseline,
    probe_labels,
    probe_split,
)
from lstmviz.tasks import Task, ensure_task

REPORT_CACHE_VERSION = 5  # 3: converged probes (objective, converged, iterations kept); 4: split_unit;
# 5: rows per tap (image recordings: pooled feature maps, cells), pool
AT_CHOICES = ("all", "last")


@dataclass
class ProbeReport:
    """Probes of one label on several taps of one recording (one checkpoint), on one item split.

    ``taps`` is ordered by layer (then declaration order). ``probes[tap]`` is the probe on the real
    label, ``controls[tap]`` the same probe on Hewitt & Liang's control task (empty when controls were
    not asked for), ``baseline`` the input-token baseline (``None`` when not asked for).
    ``majority_accuracy`` is the test accuracy of always predicting the training majority class.
    """

    annotation: str
    labels: list[str]
    shift: int
    at: str
    taps: list[str]
    layers: dict[str, int | None]
    probes: dict[str, ProbeResult]
    controls: dict[str, ProbeResult] = field(default_factory=dict)
    baseline: ProbeResult | None = None
    majority_accuracy: float = math.nan
    split_sizes: tuple[int, int, int] = (0, 0, 0)  # split_unit in train, validation, test
    split_unit: str = "items"  # "positions": a PositionSplit (a recording of fewer than 3 items)
    checkpoint: str | None = None
    step: int | None = None
    from_cache: bool = False  # True when run_probes read this report from the cache
    axes: dict[str, str] = field(default_factory=dict)  # tap -> the axis whose rows were probed
    rows: dict[str, str] = field(default_factory=dict)  # tap -> the rows in words (probe_images.RowPlan)
    skipped: dict[str, str] = field(default_factory=dict)  # tap -> why it was not probed
    pool: str = "mean"  # how feature maps were pooled for an item label on an image recording

    def rows_of(self, tap: str) -> str:
        """The rows the probe of ``tap`` was fitted on, in words (``"positions"`` for an old report)."""
        return self.rows.get(tap, "last position of each item" if self.at == "last" else "positions")

    def short_rows(self, tap: str) -> str:
        """A few words for a chart label: ``""`` for positions, else ``"per image"``, ``"mean"``,
        ``"max"``, ``"pixels"`` (the input flattened) or ``"cells"``."""
        rows = self.rows_of(tap)
        if rows == "positions" or rows.startswith("last"):
            return ""
        if rows.startswith("cells"):
            return "cells"
        return {"one row per image": "per image", "pixels flattened": "pixels"}.get(rows, rows.split()[0])

    def row_unit(self, tap: str) -> str:
        """What one test row of ``tap``'s probe is: ``"images"``, ``"cells"`` or ``"positions"``."""
        short = self.short_rows(tap)
        return "cells" if short == "cells" else ("positions" if not short else "images")

    def axis_of(self, tap: str) -> str:
        return self.axes.get(tap, "positions")

    def mixed_rows(self) -> bool:
        """True when the taps were probed on rows of different kinds (so their majority baselines differ)."""
        def unit(t):
            rows = self.rows_of(t)
            if rows.startswith("cells"):
                return self.axis_of(t)
            return "positions" if rows == "positions" or rows.startswith("last") else "images"

        return len({unit(t) for t in self.taps}) > 1

    @property
    def majority_interval(self) -> tuple[float, float]:
        """95% interval of ``majority_accuracy`` (bootstrap over the test items)."""
        first = self.probes[self.taps[0]]
        return first.majority_ci_low, first.majority_ci_high

    def selectivity(self, tap: str) -> float:
        """Accuracy − control accuracy (NaN without a control probe)."""
        control = self.controls.get(tap)
        return self.probes[tap].accuracy - control.accuracy if control is not None else math.nan

    def best_tap(self) -> str:
        return max(self.taps, key=lambda t: self.probes[t].accuracy)

    def table(self) -> dict[str, list]:
        """One row per tap (then the input baseline), as columns for ``export_data.write_table``.

        The ``checkpoint`` column is there only for a report of one checkpoint of a multi-checkpoint
        recording (``Recording.at_checkpoint``), ``step`` only when that checkpoint's step is known.
        """
        names = (["checkpoint"] if self.checkpoint is not None else []) + \
            (["step"] if self.checkpoint is not None and self.step is not None else [])
        cols: dict[str, list] = {k: [] for k in (
            *names, "tap", "layer", "annotation", "shift", "at", "accuracy", "ci_low",
            "ci_high", "control_accuracy", "control_ci_low", "control_ci_high", "selectivity",
            "majority_accuracy", "majority_ci_low", "majority_ci_high", "l2", "n_train", "n_test",
            "objective", "converged", "axis", "rows")}

        def add(name, layer, result, control):
            if "checkpoint" in cols:
                cols["checkpoint"].append(self.checkpoint)
            if "step" in cols:
                cols["step"].append(int(self.step))
            cols["tap"].append(name)
            cols["layer"].append(-1 if layer is None else int(layer))
            cols["axis"].append(self.axis_of(name) if name in self.taps else "positions")
            cols["rows"].append(self.rows_of(name) if name in self.taps else "input tokens")
            cols["annotation"].append(self.annotation)
            cols["shift"].append(int(self.shift))
            cols["at"].append(self.at)
            cols["accuracy"].append(result.accuracy)
            cols["ci_low"].append(result.ci_low)
            cols["ci_high"].append(result.ci_high)
            cols["control_accuracy"].append(control.accuracy if control else math.nan)
            cols["control_ci_low"].append(control.ci_low if control else math.nan)
            cols["control_ci_high"].append(control.ci_high if control else math.nan)
            cols["selectivity"].append(result.accuracy - control.accuracy if control else math.nan)
            own = self.mixed_rows() and name in self.taps  # rows of another kind: its own majority
            cols["majority_accuracy"].append(result.majority_accuracy if own else self.majority_accuracy)
            cols["majority_ci_low"].append(result.majority_ci_low if own else self.majority_interval[0])
            cols["majority_ci_high"].append(result.majority_ci_high if own else self.majority_interval[1])
            cols["l2"].append(result.l2)
            cols["n_train"].append(result.n_train)
            cols["n_test"].append(result.n_test)
            cols["objective"].append(result.objective)
            cols["converged"].append(bool(result.converged))

        for tap in self.taps:
            add(tap, self.layers.get(tap), self.probes[tap], self.controls.get(tap))
        if self.baseline is not None:
            add(self.baseline.tap, None, self.baseline, None)
        return cols


@dataclass
class ProbeCurves:
    """``ProbeReport``s of one label for every checkpoint of a recording, in training order."""

    annotation: str
    labels: list[str]
    shift: int
    at: str
    taps: list[str]
    checkpoints: list[str]
    steps: list[int | None]
    reports: list[ProbeReport]

    def _series(self, tap: str, what: str, control: bool = False) -> np.ndarray:
        out = []
        for r in self.reports:
            res = (r.controls if control else r.probes).get(tap)
            out.append(getattr(res, what) if res is not None else math.nan)
        return np.asarray(out, dtype=float)

    def accuracy(self, tap: str) -> np.ndarray:
        return self._series(tap, "accuracy")

    def interval(self, tap: str) -> tuple[np.ndarray, np.ndarray]:
        return self._series(tap, "ci_low"), self._series(tap, "ci_high")

    def control_accuracy(self, tap: str) -> np.ndarray:
        return self._series(tap, "accuracy", control=True)

    def majority_accuracy(self) -> np.ndarray:
        return np.asarray([r.majority_accuracy for r in self.reports], dtype=float)

    def x(self) -> np.ndarray:
        """The x axis: training steps when every checkpoint has one, else 0, 1, 2, ..."""
        if self.steps and all(s is not None for s in self.steps):
            return np.asarray(self.steps, dtype=float)
        return np.arange(len(self.reports), dtype=float)

    def table(self) -> dict[str, list]:
        cols: dict[str, list] = {}
        for r in self.reports:
            for k, v in r.table().items():
                cols.setdefault(k, []).extend(v)
        return cols


# ------------------------------------------------------------------------------------------- running


def ordered_taps(recording, taps=None) -> list[str]:
    """The taps to probe: the given ones (validated) or every tap on the main axis (on an image recording
    every tap: feature maps and per-image taps too, ``probe_images``), ordered by layer (taps without a
    layer last), then by declaration order."""
    declared = list(recording.taps)
    if taps is None:
        image = is_image_recording(recording)
        chosen = [t for t in declared if image or recording.taps[t].axis == "positions"]
    else:
        chosen = [taps] if isinstance(taps, str) else list(taps)
        for t in chosen:
            if t not in recording.taps:
                raise KeyError(f"The recording has no tap {t!r}; it has {', '.join(declared)}.")
    if not chosen:
        raise ValueError("No tap to probe: the recording has no tap on the main axis.")

    image = is_image_recording(recording)

    def key(t):
        info = recording.taps[t]
        layer = info.layer
        if image and info.axis == "positions" and (layer is None or layer < 0):  # the input's pixels first
            return (False, -1, declared.index(t))
        return (layer is None or layer < 0, layer if layer is not None else 0, declared.index(t))

    return sorted(dict.fromkeys(chosen), key=key)


def run_probes(recording, annotation: str, taps=None, *, shift: int = 0, at: str = "all",
               control: bool = True, baseline: bool = True, seed: int = 0, l2_grid=DEFAULT_L2_GRID,
               max_positions: int | None = None, task=None, cache: bool = True, pool: str = "mean") -> ProbeReport:
    """Probe ``annotation`` on ``taps`` (default: all main-axis taps); see the module docstring.

    On an image recording (``probe_images``) every tap is probed on the rows that fit the label: an
    item label on one row per image (scalar-axis taps as stored, feature maps pooled by ``pool``,
    ``"mean"`` or ``"max"``, the input's pixels flattened), a per-pixel label on the cells of a feature
    map (each with the label under its centre); a tap that cannot carry the label is left out and named
    in ``ProbeReport.skipped``. The input-token baseline is then only fitted for a per-pixel label (for
    an item label the flattened input is the baseline row).

    ``at="last"`` uses only the last position of each item (the state after reading the whole item;
    the natural choice for an item-level label such as a sentence's class). ``shift`` as in
    ``probes.probe_labels``. Progress: ``task.progress(done, total, message)`` over all probes;
    cancelling raises ``Cancelled`` and caches nothing.
    """
    task = ensure_task(task)
    if at not in AT_CHOICES:
        raise ValueError(f"at must be one of {', '.join(AT_CHOICES)}, got {at!r}.")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}.")
    taps = ordered_taps(recording, taps)
    labels = probe_labels(recording, annotation, shift=shift, at=at)
    names = list(recording.annotations[annotation].labels)
    image = is_image_recording(recording)
    item_label = recording.annotations[annotation].level == "item"
    if image and item_label:
        baseline = False  # the input's flattened pixels are probed as a tap: the honest input baseline
    key = _cache_key(recording, annotation, taps, shift, at, control, baseline, seed, l2_grid,
                     max_positions, pool)
    path = _cache_path(recording, annotation, key) if cache else None
    if path is not None:
        cached = cache_files.load_cached(path, lambda p: _load_report(p, key), "probe report")
        if cached is not None:
            task.progress(1, 1, "Probes (cached)")
            return cached
    split = probe_split(recording, seed=seed)
    plans, skipped = _plans(recording, taps, annotation, at=at, shift=shift, pool=pool, image=image, split=split)
    taps = [t for t in taps if t in plans]
    plan_labels = _plan_labels(recording, annotation, plans, labels)
    # a tap's probe and control probe are adjacent: the control reuses the rows read for the probe
    jobs = [(t, c) for t in taps for c in ((False, True) if control else (False,))]
    shared: dict = {}
    scale = 1000
    total = len(jobs) * scale + (1 if baseline else 0)
    probes: dict[str, ProbeResult] = {}
    controls: dict[str, ProbeResult] = {}
    for i, (tap, is_control) in enumerate(jobs):
        def forward(done, of, text, base=i * scale):
            frac = min(1.0, done / of) if of else 0.0
            task.progress(base + int(frac * (scale - 1)), total, text)

        task.progress(i * scale, total, f"Probe {tap}" + (" (control)" if is_control else ""))
        plan = plans[tap]
        source, tap_labels = plan.view or recording, plan_labels.get(tap, labels)
        result = fit_probe(source, tap, tap_labels, split, control=is_control, seed=seed,
                           annotation=annotation, label_names=names, shift=shift, l2_grid=l2_grid,
                           max_positions=max_positions, task=Task(on_progress=forward), shared=shared)
        (controls if is_control else probes)[tap] = result
    shared.clear()
    base = None
    if baseline:
        task.progress(len(jobs) * scale, total, "Input baseline")
        base = input_baseline(recording, labels, split, annotation=annotation, label_names=names,
                              seed=seed, shift=shift)
    first = probes[taps[0]]
    report = ProbeReport(
        annotation=annotation, labels=names, shift=int(shift), at=at, taps=taps,
        layers={t: recording.taps[t].layer for t in taps}, probes=probes, controls=controls,
        baseline=base, majority_accuracy=first.majority_accuracy,
        split_sizes=tuple(len(s) for s in split), split_unit="positions" if isinstance(split, PositionSplit) else "items",
        checkpoint=getattr(recording, "checkpoint", None),
        step=_step_of(recording), axes={t: plans[t].axis for t in taps}, rows={t: plans[t].rows for t in taps},
        skipped=skipped, pool=pool)
    task.progress(total, total, "Probes done")
    if path is not None:
        _save_report(path, key, report)
    return report


def probe_curves(recording, annotation: str, taps=None, *, shift: int = 0, at: str = "all",
                 control: bool = True, seed: int = 0, max_positions: int | None = None, task=None,
                 cache: bool = True, pool: str = "mean") -> ProbeCurves:
    """``run_probes`` at every checkpoint of ``recording`` (``Recording.checkpoints``), in order.

    Raises ``ValueError`` for a recording of a single model state. The same item split and seed are
    used at every checkpoint, so differences between checkpoints are differences between models.
    """
    task = ensure_task(task)
    checkpoints = list(getattr(recording, "checkpoints", []) or [])
    if len(checkpoints) < 2:
        raise ValueError("This recording holds the states of one model only; record several checkpoints "
                         "of one run (lstmviz record CKPT1 CKPT2 ... --out FILE) to draw probe "
                         "curves over training.")
    taps = ordered_taps(recording, taps)
    reports = []
    n = len(checkpoints)
    for i, ck in enumerate(checkpoints):
        def forward(done, of, text, base=i, name=ck.name):
            frac = min(1.0, done / of) if of else 0.0
            task.progress(int((base + frac) * 1000), n * 1000, f"{name}: {text}")

        view = recording.at_checkpoint(ck.name)
        reports.append(run_probes(view, annotation, taps, shift=shift, at=at, control=control,
                                  baseline=(i == n - 1), seed=seed, max_positions=max_positions,
                                  task=Task(on_progress=forward), cache=cache, pool=pool))
    task.progress(n * 1000, n * 1000, "Probe curves done")
    first = reports[0]
    return ProbeCurves(annotation=annotation, labels=first.labels, shift=first.shift, at=at, taps=taps,
                       checkpoints=[c.name for c in checkpoints], steps=[c.step for c in checkpoints],
                       reports=reports)


def _plans(recording, taps, annotation, *, at, shift, pool, image, split):
    """``({tap: RowPlan}, {tap: why skipped})`` for the taps (``probe_images.probe_rows``)."""
    plans, skipped = {}, {}
    for t in taps:
        if not image and recording.taps[t].axis == "positions":
            plan = RowPlan(t, "positions", "last position of each item" if at == "last" else "positions")
        else:
            plan = probe_rows(recording, t, annotation, pool=pool)
        if isinstance(plan, str):
            skipped[t] = plan
            continue
        if plan.view is None and at == "last":
            plan = RowPlan(t, plan.axis, "last position of each item")
        if plan.view is not None and plan.rows.startswith("cells") and at == "last":
            raise ValueError(f"Positions 'last of each item' apply to the main axis only; tap {t!r} is probed "
                             f"on the cells of axis {plan.axis!r} (use all positions for a per-pixel label).")
        if plan.view is not None and shift:
            raise ValueError(f"A shift applies to the positions of the main axis only; tap {t!r} is probed "
                             f"on {plan.rows} of axis {plan.axis!r}.")
        if plan.view is not None and isinstance(split, PositionSplit):
            raise ValueError(f"Tap {t!r} is probed on {plan.rows}, which needs at least 3 items to split.")
        plans[t] = plan
    if not plans:
        raise ValueError("No tap can be probed for this label: " + "; ".join(skipped.values()))
    return plans, skipped


def _plan_labels(recording, annotation, plans, labels):
    """The labels of each tap's rows where they are not the main axis's (``labels``)."""
    out, per_image, per_pixel, per_axis = {}, None, None, {}
    for t, plan in plans.items():
        if plan.view is None:
            continue
        if plan.rows.startswith("cells"):
            if per_pixel is None:
                per_pixel = probe_labels(recording, annotation)
            if plan.axis not in per_axis:
                per_axis[plan.axis] = cell_labels(recording, annotation, plan.axis, pixel_labels=per_pixel)
            out[t] = per_axis[plan.axis]
        else:
            if per_image is None:
                last = probe_labels(recording, annotation, at="last")
                per_image = last[np.asarray(recording.item_offsets, np.int64)[1:] - 1]
            out[t] = per_image
    return out


def _step_of(recording):
    name = getattr(recording, "checkpoint", None)
    for ck in getattr(recording, "checkpoints", []) or []:
        if ck.name == name:
            return ck.step
    return None


# --------------------------------------------------------------------------------------------- cache


def _cache_key(recording, annotation, taps, shift, at, control, baseline, seed, l2_grid, max_positions,
               pool="mean"):
    return {
        "version": REPORT_CACHE_VERSION,
        "fingerprint": cache_files.recording_fingerprint(recording),
        "checkpoint": getattr(recording, "checkpoint", None),
        "annotation": annotation, "taps": list(taps), "shift": int(shift), "at": at,
        "control": bool(control), "baseline": bool(baseline), "seed": int(seed),
        "l2_grid": [float(v) for v in l2_grid],
        "max_positions": None if max_positions is None else int(max_positions),
        "pool": pool,
    }


def _cache_path(recording, annotation, key):
    text = json.dumps(key, sort_keys=True)
    name = cache_files.cache_name("probes", annotation, key["checkpoint"] or "main", text, suffix=".npz")
    return cache_files.cache_dir_for(recording.path) / name


_RESULT_ARRAYS = ("weights", "bias", "confusion", "per_class_accuracy")


def _save_report(path, key, report: ProbeReport) -> None:
    arrays = {}
    meta = {"key": key, "report": {}, "results": []}
    for k in ("annotation", "labels", "shift", "at", "taps", "majority_accuracy", "checkpoint", "step"):
        meta["report"][k] = getattr(report, k)
    meta["report"]["layers"] = report.layers
    meta["report"]["split_sizes"] = list(report.split_sizes)
    meta["report"]["split_unit"] = report.split_unit
    for k in ("axes", "rows", "skipped", "pool"):
        meta["report"][k] = getattr(report, k)
    results = [("probe", t, r) for t, r in report.probes.items()]
    results += [("control", t, r) for t, r in report.controls.items()]
    if report.baseline is not None:
        results.append(("baseline", report.baseline.tap, report.baseline))
    for i, (role, tap, r) in enumerate(results):
        fields = {k: getattr(r, k) for k in ("tap", "annotation", "labels", "accuracy", "ci_low", "ci_high",
                                             "majority_accuracy", "l2", "n_train", "n_test", "control",
                                             "shift", "majority_ci_low", "majority_ci_high", "objective",
                                             "converged", "iterations")}
        fields["valid_accuracy"] = [[float(a), float(b)] for a, b in r.valid_accuracy.items()]
        meta["results"].append({"role": role, "fields": fields})
        for name in _RESULT_ARRAYS:
            arrays[f"{i}_{name}"] = np.asarray(getattr(r, name))
    arrays["meta"] = np.array(json.dumps(meta, default=_json_default))
    try:
        with cache_files.atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    except OSError:
        pass  # an unwritable cache directory only costs a recomputation next time


def _load_report(path, key) -> ProbeReport | None:
    """The cached report (None: built from other inputs); raises when the file is damaged (an empty,
    truncated or bit-flipped archive, missing arrays); read through ``cache.load_cached``."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("key") != json.loads(json.dumps(key)):
            return None
        r = meta["report"]
        probes, controls, baseline = {}, {}, None
        for i, entry in enumerate(meta["results"]):
            f = dict(entry["fields"])
            f["valid_accuracy"] = {a: b for a, b in f["valid_accuracy"]}
            arrays = {name: np.array(data[f"{i}_{name}"]) for name in _RESULT_ARRAYS}
            result = ProbeResult(**f, **arrays)
            if entry["role"] == "probe":
                probes[result.tap] = result
            elif entry["role"] == "control":
                controls[result.tap] = result
            else:
                baseline = result
        if not set(r["taps"]) <= set(key["taps"]) or set(probes) != set(r["taps"]):
            raise cache_files.CacheDamaged("the cached probes are not those of its key")
        return ProbeReport(annotation=r["annotation"], labels=r["labels"], shift=r["shift"], at=r["at"],
                           taps=r["taps"], layers=r["layers"], probes=probes, controls=controls,
                           baseline=baseline, majority_accuracy=r["majority_accuracy"],
                           split_sizes=tuple(r["split_sizes"]), split_unit=r.get("split_unit", "items"),
                           checkpoint=r["checkpoint"],
                           step=r["step"], from_cache=True, axes=r.get("axes", {}), rows=r.get("rows", {}),
                           skipped=r.get("skipped", {}), pool=r.get("pool", "mean"))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
