"""Saved workspaces: what the user was looking at, as a small versioned JSON file.

A workspace names the recording (relative to the JSON file when possible, and absolute), the window of
positions, one entry per pane (tap, transform, threshold, brush, padding, tolerance, direction, units
added and removed by hand), the match settings, the visible annotation tracks, the annotation being
aggregated and, optionally, the Probes panel's settings (``ProbeState``: label, shift, positions, taps,
control task, input baseline, curves over training, and whether a result was shown with which probe
open). ``load_workspace`` checks everything and raises ``WorkspaceFileError`` with a sentence for
any problem; ``restore_valid`` / ``validate_against`` compare a loaded workspace with the recording it
names, so the GUI restores what still fits and says what it dropped. The format is in docs/analysis.md.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from lstmviz.analysis.match_types import MODES
from lstmviz.analysis.probe_report import AT_CHOICES as PROBE_POSITIONS
from lstmviz.analysis.probes import INPUT_TAP as PROBE_INPUT
from lstmviz.analysis.selection_types import DIRECTIONS, SelectionSpec

WORKSPACE_VERSION = 1
MARKER = "lstmviz_workspace"
#: the value transforms a pane may use (as ``lstmviz.analysis.transforms.TRANSFORMS``)
TRANSFORMS = ("raw", "tanh", "zscore")
#: the label shifts the Probes panel offers (its spin box's range), inclusive
PROBE_SHIFT_RANGE = (-3, 3)


class WorkspaceFileError(ValueError):
    """A workspace file that cannot be loaded or a state that cannot be saved; the text says why."""


@dataclass
class PaneState:
    """One state view: a tap, how its values are shown, and the hypothesis brushed on it."""

    tap: str
    transform: str = "tanh"
    threshold: float = 0.3
    brush: tuple[int, int] | None = None  # [start, stop) absolute positions
    pad_left: int = 1
    pad_right: int = 0
    tolerance: float = 1.0
    direction: str = "positive"
    added: tuple[tuple[int, int], ...] = ()  # (unit, sign)
    removed: tuple[tuple[int, int], ...] = ()

    def selection_spec(self) -> SelectionSpec | None:
        """The ``SelectionSpec`` this pane asks for, or None without a brush."""
        if self.brush is None:
            return None
        return SelectionSpec(self.brush[0], self.brush[1], self.threshold, self.pad_left, self.pad_right,
                             self.tolerance, self.direction, self.added, self.removed)


@dataclass
class MatchSettings:
    """How matches are searched and shown (see ``MatchQuery``); ``left``/``right``: context columns."""

    mode: str = "lstmvis"
    limit: int | None = 1000
    min_length: int = 1
    length_weight: float = 0.5
    candidate_cap: int | None = 10000
    left: int = 3
    right: int = 20


@dataclass(frozen=True)
class ProbeState:
    """The Probes panel: what Run asks for (as ``lstmviz.qt.probe_panel.ProbeSettings``) and what it showed.

    ``label``: the categorical annotation (None: the panel's default, the first one); ``taps``: the
    ticked taps (None: every tap); ``curves``: curves over training were asked for; ``shown``: a result
    was shown (or being computed), so reopening the workspace runs the probes again (instant from the
    cache); ``open_probe``: the probe open in the detail (a tap, or ``PROBE_INPUT``).
    """

    label: str | None = None
    shift: int = 0
    at: str = "all"
    taps: tuple[str, ...] | None = None
    control: bool = True
    baseline: bool = True
    curves: bool = False
    shown: bool = False
    open_probe: str | None = None

    def __post_init__(self):
        if self.taps is not None and not isinstance(self.taps, tuple):
            object.__setattr__(self, "taps", tuple(self.taps))


@dataclass
class WorkspaceState:
    """Everything a saved workspace restores."""

    recording: str  # path of the recording (absolute after loading)
    window_start: int = 0
    window_width: int = 100
    panes: list[PaneState] = field(default_factory=list)
    active_pane: int = 0
    match: MatchSettings = field(default_factory=MatchSettings)
    annotations: list[str] = field(default_factory=list)  # visible annotation tracks, in order
    aggregate_annotation: str | None = None
    probes: ProbeState | None = None  # None: the file has no "probes" entry (the panel keeps its defaults)


# ---------------------------------------------------------------------------------------- checking values

class _Reader:
    """Reads typed values out of parsed JSON, raising ``WorkspaceFileError`` that names the file and key."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, problem: str):
        raise WorkspaceFileError(f"{self.path}: {problem}")

    def get(self, obj: dict, key: str, where: str, default=..., required=False):
        if key not in obj:
            if required or default is ...:
                self.fail(f"{where} has no {key!r} entry")
            return default
        return obj[key]

    def integer(self, value, where: str, minimum: int | None = None, allow_none=False):
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{where} must be a whole number, got {json.dumps(value)}")
        if minimum is not None and value < minimum:
            self.fail(f"{where} must be >= {minimum}, got {value}")
        return value

    def number(self, value, where: str):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(f"{where} must be a finite number, got {json.dumps(value)}")
        return float(value)

    def string(self, value, where: str, allow_none=False):
        if value is None and allow_none:
            return None
        if not isinstance(value, str):
            self.fail(f"{where} must be a string, got {json.dumps(value)}")
        return value

    def choice(self, value, where: str, choices: tuple[str, ...]):
        self.string(value, where)
        if value not in choices:
            self.fail(f"{where} is {value!r}, which is not one of {', '.join(choices)}")
        return value

    def boolean(self, value, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(f"{where} must be true or false, got {json.dumps(value)}")
        return value

    def obj(self, value, where: str) -> dict:
        if not isinstance(value, dict):
            self.fail(f"{where} must be a JSON object, got {type(value).__name__ if value is not None else 'null'}")
        return value

    def array(self, value, where: str) -> list:
        if not isinstance(value, list):
            self.fail(f"{where} must be a list, got {json.dumps(value)}")
        return value


def _pane(r: _Reader, raw, where: str) -> PaneState:
    d = r.obj(raw, where)
    defaults = PaneState(tap="")
    tap = r.string(r.get(d, "tap", where, required=True), f"{where} tap")
    brush = d.get("brush")
    if brush is not None:
        brush = r.array(brush, f"{where} brush")
        if len(brush) != 2:
            r.fail(f"{where} brush must be [start, stop], got {json.dumps(brush)}")
        start = r.integer(brush[0], f"{where} brush start", 0)
        stop = r.integer(brush[1], f"{where} brush stop", 0)
        if stop <= start:
            r.fail(f"{where} brush [{start}, {stop}) is empty")
        brush = (start, stop)
    tolerance = r.number(d.get("tolerance", defaults.tolerance), f"{where} tolerance")
    if not 0.0 < tolerance <= 1.0:
        r.fail(f"{where} tolerance must be in (0, 1], got {tolerance}")
    return PaneState(
        tap=tap,
        transform=r.choice(d.get("transform", defaults.transform), f"{where} transform", TRANSFORMS),
        threshold=r.number(d.get("threshold", defaults.threshold), f"{where} threshold"),
        brush=brush,
        pad_left=r.integer(d.get("pad_left", defaults.pad_left), f"{where} pad_left", 0),
        pad_right=r.integer(d.get("pad_right", defaults.pad_right), f"{where} pad_right", 0),
        tolerance=tolerance,
        direction=r.choice(d.get("direction", defaults.direction), f"{where} direction", DIRECTIONS),
        added=_unit_pairs(r, d.get("added", []), f"{where} added"),
        removed=_unit_pairs(r, d.get("removed", []), f"{where} removed"),
    )


def _unit_pairs(r: _Reader, raw, where: str) -> tuple[tuple[int, int], ...]:
    pairs = []
    for i, pair in enumerate(r.array(raw, where)):
        if not isinstance(pair, list) or len(pair) != 2:
            r.fail(f"{where}[{i}] must be [unit, sign], got {json.dumps(pair)}")
        unit = r.integer(pair[0], f"{where}[{i}] unit", 0)
        sign = r.integer(pair[1], f"{where}[{i}] sign")
        if sign not in (1, -1):
            r.fail(f"{where}[{i}] sign must be 1 or -1, got {sign}")
        pairs.append((unit, sign))
    return tuple(pairs)


def _match(r: _Reader, raw) -> MatchSettings:
    d = r.obj(raw, "match")
    m = MatchSettings()
    weight = r.number(d.get("length_weight", m.length_weight), "match length_weight")
    if weight < 0:
        r.fail(f"match length_weight must be >= 0, got {weight}")
    return MatchSettings(
        mode=r.choice(d.get("mode", m.mode), "match mode", MODES),
        limit=r.integer(d.get("limit", m.limit), "match limit", 1, allow_none=True),
        min_length=r.integer(d.get("min_length", m.min_length), "match min_length", 1),
        length_weight=weight,
        candidate_cap=r.integer(d.get("candidate_cap", m.candidate_cap), "match candidate_cap", 1, allow_none=True),
        left=r.integer(d.get("left", m.left), "match left", 0),
        right=r.integer(d.get("right", m.right), "match right", 0),
    )


def _probes(r: _Reader, raw) -> ProbeState | None:
    if raw is None:
        return None
    d = r.obj(raw, "probes")
    p = ProbeState()
    shift = r.integer(d.get("shift", p.shift), "probes shift")
    low, high = PROBE_SHIFT_RANGE
    if not low <= shift <= high:
        r.fail(f"probes shift must be between {low} and {high}, got {shift}")
    taps = d.get("taps")
    if taps is not None:
        taps = tuple(dict.fromkeys(r.string(t, f"probes taps[{i}]")
                                   for i, t in enumerate(r.array(taps, "probes taps"))))
    return ProbeState(
        label=r.string(d.get("label"), "probes label", allow_none=True),
        shift=shift,
        at=r.choice(d.get("at", p.at), "probes at", PROBE_POSITIONS),
        taps=taps,
        control=r.boolean(d.get("control", p.control), "probes control"),
        baseline=r.boolean(d.get("baseline", p.baseline), "probes baseline"),
        curves=r.boolean(d.get("curves", p.curves), "probes curves"),
        shown=r.boolean(d.get("shown", p.shown), "probes shown"),
        open_probe=r.string(d.get("open_probe"), "probes open_probe", allow_none=True),
    )


def _probes_to_dict(p: ProbeState) -> dict:
    return {
        "label": p.label, "shift": p.shift, "at": p.at, "taps": None if p.taps is None else list(p.taps),
        "control": p.control, "baseline": p.baseline, "curves": p.curves,
        "shown": p.shown, "open_probe": p.open_probe,
    }


def _state_from_dict(r: _Reader, d: dict, recording: str) -> WorkspaceState:
    window = r.obj(d.get("window", {}), "window")
    raw_panes = r.array(r.get(d, "panes", "the workspace", required=True), "panes")
    panes = [_pane(r, p, f"pane {i}") for i, p in enumerate(raw_panes)]
    active = r.integer(d.get("active_pane", 0), "active_pane", 0)
    if active >= max(1, len(panes)):
        r.fail(f"active_pane is {active} but the workspace has {len(panes)} pane(s)")
    annotations = [r.string(a, f"annotations[{i}]") for i, a in enumerate(r.array(d.get("annotations", []), "annotations"))]
    return WorkspaceState(
        recording=recording,
        window_start=r.integer(window.get("start", 0), "window start", 0),
        window_width=r.integer(window.get("width", 100), "window width", 1),
        panes=panes,
        active_pane=active,
        match=_match(r, d.get("match", {})),
        annotations=annotations,
        aggregate_annotation=r.string(d.get("aggregate_annotation"), "aggregate_annotation", allow_none=True),
        probes=_probes(r, d.get("probes")),
    )


def _state_to_dict(state: WorkspaceState, recording: dict) -> dict:
    data = {
        MARKER: WORKSPACE_VERSION,
        "recording": recording,
        "window": {"start": state.window_start, "width": state.window_width},
        "panes": [
            {
                "tap": p.tap, "transform": p.transform, "threshold": p.threshold,
                "brush": None if p.brush is None else [p.brush[0], p.brush[1]],
                "pad_left": p.pad_left, "pad_right": p.pad_right, "tolerance": p.tolerance,
                "direction": p.direction,
                "added": [[u, s] for u, s in p.added], "removed": [[u, s] for u, s in p.removed],
            }
            for p in state.panes
        ],
        "active_pane": state.active_pane,
        "match": {
            "mode": state.match.mode, "limit": state.match.limit, "min_length": state.match.min_length,
            "length_weight": state.match.length_weight, "candidate_cap": state.match.candidate_cap,
            "left": state.match.left, "right": state.match.right,
        },
        "annotations": list(state.annotations),
        "aggregate_annotation": state.aggregate_annotation,
    }
    if state.probes is not None:  # left out otherwise: the file reads as one without probes
        data["probes"] = _probes_to_dict(state.probes)
    return data


def _plain(value):
    """numpy scalars and tuples as plain JSON values (a GUI may hand over np.int64 positions)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


# ---------------------------------------------------------------------------------------- files

def save_workspace(path, state: WorkspaceState) -> Path:
    """Write ``state`` to ``path`` as pretty JSON (temp file + rename) and return the path.

    The recording is stored both relative to the JSON file's folder (when one exists, e.g. not on
    another Windows drive) and absolute. Raises ``WorkspaceFileError`` if ``state`` would not load back.
    """
    path = Path(path)
    recording_abs = Path(os.path.abspath(state.recording))
    try:
        relative = os.path.relpath(recording_abs, os.path.abspath(path.parent))
    except ValueError:
        relative = None
    data = _plain(_state_to_dict(state, {"path": relative, "absolute": str(recording_abs)}))
    # the same checks as loading, so a saved file always loads (apart from a recording moved since)
    _state_from_dict(_Reader(path), data, str(recording_abs))
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def load_workspace(path) -> WorkspaceState:
    """Read a workspace file; ``WorkspaceFileError`` (naming the file) for anything wrong with it.

    The recording is looked up at the stored relative path (against the JSON file's folder), then at
    the absolute path; ``recording`` of the result is the absolute path that exists.
    """
    path = Path(path)
    r = _Reader(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        r.fail("no such file")
    except IsADirectoryError:
        r.fail("is a folder, not a workspace file")
    except UnicodeDecodeError:
        r.fail("not a workspace file: it is not JSON text (not UTF-8)")
    except OSError as e:
        r.fail(f"cannot be read ({e.strerror or e})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        r.fail(f"not a workspace file: it is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})")
    if not isinstance(data, dict) or MARKER not in data:
        r.fail(f"not an lstmviz workspace file (no {MARKER!r} entry)")
    version = data[MARKER]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        r.fail(f"the workspace version must be a whole number >= 1, got {json.dumps(version)}")
    if version > WORKSPACE_VERSION:
        r.fail(f"was saved by a newer lstmviz (workspace version {version}; this version reads up to "
               f"{WORKSPACE_VERSION}); update lstmviz to open it")
    recording = r.obj(r.get(data, "recording", "the workspace", required=True), "recording")
    relative = r.string(recording.get("path"), "recording path", allow_none=True)
    absolute = r.string(recording.get("absolute"), "recording absolute", allow_none=True)
    if relative is None and absolute is None:
        r.fail("recording has neither a 'path' nor an 'absolute' entry")
    tried = []
    found = None
    for candidate in (relative, absolute):
        if candidate is None:
            continue
        p = Path(candidate)
        if not p.is_absolute():
            p = path.parent / p
        p = Path(os.path.abspath(p))
        tried.append(str(p))
        if p.is_file():
            found = p
            break
    if found is None:
        r.fail(f"the recording it names is missing (looked for {' and '.join(dict.fromkeys(tried))})")
    return _state_from_dict(r, data, str(found))


# ---------------------------------------------------------------------------------------- against a recording

def restore_valid(state: WorkspaceState, recording) -> tuple[WorkspaceState, list[str]]:
    """``state`` with everything that does not fit ``recording`` dropped, and a sentence per thing dropped.

    Dropped: panes on a tap the recording lacks (or not over positions), brushes outside the corpus,
    added/removed units outside the tap, unknown annotations; a window past the end moves to 0. Of the
    probe settings: a label that is not a categorical annotation of the recording, taps it lacks, a
    probe to reopen that will not be there, a shift on an item's label, curves over training of a
    recording of one model state; without a label or a tap to probe, the result is not run again.
    """
    problems: list[str] = []
    n_positions = int(recording.n_positions)
    taps = recording.taps
    panes = []
    for i, pane in enumerate(state.panes):
        info = taps.get(pane.tap)
        if info is None or getattr(info, "axis", "positions") != "positions":
            problems.append(f"pane {i}: the recording has no tap {pane.tap!r} over positions; the pane was dropped")
            continue
        if pane.brush is not None and not 0 <= pane.brush[0] < pane.brush[1] <= n_positions:
            problems.append(f"pane {i}: the brush [{pane.brush[0]}, {pane.brush[1]}) is outside the corpus of "
                            f"{n_positions} positions; it was dropped")
            pane = replace(pane, brush=None)
        for what in ("added", "removed"):
            pairs = getattr(pane, what)
            bad = [u for u, _ in pairs if not 0 <= u < info.units]
            if bad:
                problems.append(f"pane {i}: {what} units {', '.join(map(str, bad))} are not in tap {pane.tap!r} "
                                f"(units 0-{info.units - 1}); they were dropped")
                pane = replace(pane, **{what: tuple(p for p in pairs if 0 <= p[0] < info.units)})
        panes.append(pane)
    active = state.active_pane if state.active_pane < len(panes) else 0
    annotations = []
    for name in state.annotations:
        if name in recording.annotations:
            annotations.append(name)
        else:
            problems.append(f"the recording has no annotation {name!r}; its track was dropped")
    aggregate = state.aggregate_annotation
    if aggregate is not None and aggregate not in recording.annotations:
        problems.append(f"the recording has no annotation {aggregate!r} to aggregate; it was dropped")
        aggregate = None
    window_start = state.window_start
    if window_start >= n_positions:
        problems.append(f"the window start {window_start} is past the corpus end ({n_positions} positions); "
                        f"it was moved to 0")
        window_start = 0
    probes = None if state.probes is None else _valid_probes(state.probes, recording, problems)
    restored = replace(state, panes=panes, active_pane=active, annotations=annotations,
                       aggregate_annotation=aggregate, window_start=window_start, probes=probes)
    return restored, problems


def _quoted(names) -> str:
    return ", ".join(map(repr, names))


def _valid_probes(p: ProbeState, recording, problems: list[str]) -> ProbeState:
    """``p`` without what does not fit ``recording`` (a sentence in ``problems`` for each thing)."""
    label, shift, taps, open_probe, curves, shown = p.label, p.shift, p.taps, p.open_probe, p.curves, p.shown
    not_again = []  # why the result that was shown cannot be computed again
    if label is not None:
        info = recording.annotations.get(label)
        if info is None:
            problems.append(f"probes: the recording has no annotation {label!r} to probe; the Probes panel shows "
                            f"its first label instead")
        elif info.kind != "categorical" or not info.labels:
            problems.append(f"probes: the annotation {label!r} is not categorical, so it cannot be probed; the "
                            f"Probes panel shows its first label instead")
            info = None
        elif info.level == "item" and shift != 0:
            problems.append(f"probes: {label!r} labels whole items, so its shift {shift} was set to 0")
            shift = 0
        if info is None:
            label = None
            not_again.append("its label")
    position_taps = [name for name, info in recording.taps.items()
                     if getattr(info, "axis", "positions") == "positions"]
    if taps is not None:
        missing = [t for t in taps if t not in position_taps]
        if missing:
            kept = tuple(t for t in taps if t in position_taps)
            what = f"tap {missing[0]!r}" if len(missing) == 1 else f"taps {_quoted(missing)}"
            if kept:
                problems.append(f"probes: the recording has no {what} over positions to probe; "
                                f"{'it was' if len(missing) == 1 else 'they were'} left out")
                taps = kept
            else:
                problems.append(f"probes: the recording has no {what} over positions to probe; every tap is "
                                f"ticked instead")
                taps = None
                not_again.append("its taps")
    if curves and len(getattr(recording, "checkpoints", None) or []) < 2:
        problems.append("probes: the recording holds the states of one model only, so the curves over training "
                        "were left out")
        curves = False
    if shown and not_again:
        problems.append(f"probes: the probe result that was shown was not computed again ({' and '.join(not_again)} "
                        f"did not fit); press Run in the Probes panel")
        shown = False
    if open_probe is not None:
        probed = position_taps if taps is None else taps
        if not shown:
            open_probe = None  # nothing to reopen (said above when it was shown)
        elif open_probe == PROBE_INPUT and not p.baseline:
            problems.append("probes: the input-token baseline is not computed, so its probe cannot be reopened; "
                            "the detail shows the best tap")
            open_probe = None
        elif open_probe != PROBE_INPUT and open_probe not in probed:
            problems.append(f"probes: the probe of {open_probe!r} cannot be reopened (it is not among the taps "
                            f"probed); the detail shows the best tap")
            open_probe = None
    return replace(p, label=label, shift=shift, taps=taps, curves=curves, shown=shown, open_probe=open_probe)


def validate_against(state: WorkspaceState, recording) -> list[str]:
    """A sentence for every part of ``state`` that does not fit ``recording`` (empty: all of it fits)."""
    return restore_valid(state, recording)[1]
