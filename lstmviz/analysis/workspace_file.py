"""Saved workspaces: what the user was looking at, as a small versioned JSON file.

A workspace names the recording (relative to the JSON file when possible, and absolute), the window of
positions, one entry per pane (tap, transform, threshold, brush, padding, tolerance, direction, units
added and removed by hand), the match settings, the visible annotation tracks, the annotation being
aggregated and, optionally, the Probes panel's settings (``ProbeState``: label, shift, positions, taps,
control task, input baseline, curves over training, and whether a result was shown with which probe
open). ``load_workspace`` reads only a regular file of a few megabytes, checks every entry's type and
range against one declarative schema (``WORKSPACE_SCHEMA``, also applied by ``save_workspace``) and
raises ``WorkspaceFileError`` with a sentence naming the entry for any problem; ``restore_valid`` / ``validate_against`` compare a loaded workspace with the recording it
names, so the GUI restores what still fits and says what it dropped. The format is in docs/analysis.md.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
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


# ---------------------------------------------------------------------------------------- the schema
#
# One declarative description of the file: every entry's type, range and default, and how its name
# reads in a message. ``schema.read(value, where)`` checks parsed JSON against it and returns plain
# Python values; the first problem raises ``_Invalid`` with a sentence that names the entry. Loading and
# saving use the same schema, so a saved file always loads.

#: the largest position a file may name (exactly representable in JSON numbers everywhere)
MAX_POSITION = 2**53
#: a workspace file is a few kilobytes; anything much larger is not one (checked before reading it)
MAX_FILE_BYTES = 8 * 2**20
#: panes a workspace may show (each is a plot row; more do not fit a screen and cost seconds to build)
MAX_PANES = 16
#: the pane's θ, off-padding and tolerance (the pane strip's boxes: θ 0-10,000 typed, more by dragging)
THRESHOLD_RANGE = (0.0, 1e6)
PADDING_RANGE = (0, 999)
#: positions the window shows at once (the window clamps to its own range)
WINDOW_WIDTH_RANGE = (1, 10_000)
#: the Match panel's boxes: results, shortest run, length weight, candidates scored, context columns
MATCH_RANGES = {
    "limit": (1, 10_000_000), "min_length": (1, 100_000), "length_weight": (0.0, 10.0),
    "candidate_cap": (1, 100_000_000), "left": (0, 200), "right": (0, 500),
}
#: names (taps, annotations, labels) and paths
MAX_NAME_CHARS = 1024
MAX_PATH_CHARS = 4096
MAX_UNIT = 2**31 - 1
MAX_LISTED = 65_536

_REQUIRED = object()


class _Invalid(Exception):
    """A value that does not fit the schema; the text is the sentence."""


def _shown(value) -> str:
    """A short rendering of a JSON value for a message (never the whole of a huge or deep one)."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) < 10**15:
            return f"{value:,}"
        try:
            return f"a number of {len(str(abs(value)))} digits"
        except ValueError:  # more digits than Python converts to text
            return "a number of thousands of digits"
    text = json.dumps(value) if value is None or isinstance(value, (bool, int, float, str)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _number(value) -> str:
    """A bound or a value in a message: whole numbers with thousands separators."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


@dataclass(frozen=True)
class _Whole:
    """A whole number in ``[low, high]`` (or null when ``nullable``)."""

    low: int
    high: int
    nullable: bool = False

    def read(self, value, where: str):
        if value is None and self.nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"{where} must be a whole number, got {_shown(value)}")
        if not self.low <= value <= self.high:
            raise _Invalid(f"{where} must be between {_number(self.low)} and {_number(self.high)}, "
                           f"got {_shown(value)}")
        return value


@dataclass(frozen=True)
class _Sign:
    """+1 or -1."""

    def read(self, value, where: str):
        if isinstance(value, bool) or value not in (1, -1) or not isinstance(value, int):
            raise _Invalid(f"{where} must be 1 or -1, got {_shown(value)}")
        return value


@dataclass(frozen=True)
class _Real:
    """A finite number in ``[low, high]`` (``(low, high]`` when ``low_open``)."""

    low: float
    high: float
    low_open: bool = False

    def read(self, value, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(f"{where} must be a finite number, got {_shown(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            number = math.inf
        if not math.isfinite(number):
            raise _Invalid(f"{where} must be a finite number, got {_shown(value)}")
        if self.low_open and not self.low < number <= self.high:
            raise _Invalid(f"{where} must be in ({_number(self.low)}, {_number(self.high)}], got {number:g}")
        if not self.low_open and not self.low <= number <= self.high:
            raise _Invalid(f"{where} must be between {_number(self.low)} and {_number(self.high)}, got {number:g}")
        return number


@dataclass(frozen=True)
class _Text:
    """A string of at most ``max_chars`` characters, without NUL or unpaired surrogates (it must be
    writable as UTF-8 and usable as a file name); one of ``choices`` when given."""

    max_chars: int = MAX_NAME_CHARS
    nullable: bool = False
    choices: tuple[str, ...] = ()

    def read(self, value, where: str):
        if value is None and self.nullable:
            return None
        if not isinstance(value, str):
            raise _Invalid(f"{where} must be a string, got {_shown(value)}")
        if len(value) > self.max_chars:
            raise _Invalid(f"{where} is {len(value):,} characters long; at most {self.max_chars:,} are allowed")
        if "\x00" in value:
            raise _Invalid(f"{where} contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Invalid(f"{where} is not valid text (it holds an unpaired surrogate)") from None
        if self.choices and value not in self.choices:
            shown = repr(value) if len(value) <= 60 else repr(value[:57]) + "…"
            raise _Invalid(f"{where} is {shown}, which is not one of {', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class _Flag:
    """true or false."""

    def read(self, value, where: str) -> bool:
        if not isinstance(value, bool):
            raise _Invalid(f"{where} must be true or false, got {_shown(value)}")
        return value


@dataclass(frozen=True)
class _List:
    """A list of at most ``max_items`` entries of ``item``; entry ``i`` is named ``name`` (a format of
    ``where`` and ``i``) in messages."""

    item: object
    max_items: int
    name: str = "{where}[{i}]"
    nullable: bool = False

    def read(self, value, where: str):
        if value is None and self.nullable:
            return None
        if not isinstance(value, list):
            raise _Invalid(f"{where} must be a list, got {_shown(value)}")
        if len(value) > self.max_items:
            raise _Invalid(f"{where} has {len(value):,} entries; at most {self.max_items:,} are allowed")
        return [self.item.read(v, self.name.format(where=where, i=i)) for i, v in enumerate(value)]


@dataclass(frozen=True)
class _Pair:
    """A list of exactly two entries, ``[first, second]``, named ``names`` in messages."""

    first: object
    second: object
    names: tuple[str, str]
    nullable: bool = False

    def read(self, value, where: str):
        if value is None and self.nullable:
            return None
        if not isinstance(value, list) or len(value) != 2:
            raise _Invalid(f"{where} must be [{', '.join(self.names)}], got {_shown(value)}")
        return (self.first.read(value[0], f"{where} {self.names[0]}"),
                self.second.read(value[1], f"{where} {self.names[1]}"))


@dataclass(frozen=True)
class _Record:
    """A JSON object: ``fields`` maps each key to (schema, default); ``_REQUIRED`` keys must be there.
    Unknown keys are ignored. ``check(values, where)`` runs after the fields were read."""

    fields: dict
    nullable: bool = False
    check: object = None
    title: str = ""  # how the object is named when a key is missing (default: ``where``)

    def read(self, value, where: str):
        if value is None and self.nullable:
            return None
        if not isinstance(value, dict):
            got = "null" if value is None else ("list" if isinstance(value, list) else _shown(value))
            raise _Invalid(f"{where} must be a JSON object, got {got}")
        out = {}
        for key, (schema, default) in self.fields.items():
            if key not in value:
                if default is _REQUIRED:
                    raise _Invalid(f"{self.title or where} has no {key!r} entry")
                out[key] = default
            else:
                out[key] = schema.read(value[key], f"{where} {key}".strip())
        if self.check is not None:
            self.check(out, where)
        return out


def _brush_not_empty(start_stop, where: str) -> None:
    if start_stop is not None and start_stop[1] <= start_stop[0]:
        raise _Invalid(f"{where} [{start_stop[0]}, {start_stop[1]}) is empty")


@dataclass(frozen=True)
class _Brush(_Pair):
    def read(self, value, where: str):
        pair = super().read(value, where)
        _brush_not_empty(pair, where)
        return pair


def _recording_named(values: dict, where: str) -> None:
    if values["path"] is None and values["absolute"] is None:
        raise _Invalid("recording has neither a 'path' nor an 'absolute' entry")


def _active_pane_exists(values: dict, where: str) -> None:
    n = len(values["panes"])
    if values["active_pane"] >= max(1, n):
        raise _Invalid(f"active_pane is {values['active_pane']} but the workspace has {n} pane(s)")


_PANE_DEFAULTS = {"transform": "tanh", "threshold": 0.3, "brush": None, "pad_left": 1, "pad_right": 0,
                  "tolerance": 1.0, "direction": "positive", "added": [], "removed": []}
_UNIT_SIGNS = _List(_Pair(_Whole(0, MAX_UNIT), _Sign(), ("unit", "sign")), MAX_LISTED)
_PANE = _Record({
    "tap": (_Text(), _REQUIRED),
    "transform": (_Text(choices=TRANSFORMS), "tanh"),
    "threshold": (_Real(*THRESHOLD_RANGE), 0.3),
    "brush": (_Brush(_Whole(0, MAX_POSITION), _Whole(0, MAX_POSITION), ("start", "stop"), nullable=True), None),
    "pad_left": (_Whole(*PADDING_RANGE), 1),
    "pad_right": (_Whole(*PADDING_RANGE), 0),
    "tolerance": (_Real(0.0, 1.0, low_open=True), 1.0),
    "direction": (_Text(choices=DIRECTIONS), "positive"),
    "added": (_UNIT_SIGNS, []),
    "removed": (_UNIT_SIGNS, []),
})
_MATCH = _Record({
    "mode": (_Text(choices=MODES), "lstmvis"),
    "limit": (_Whole(*MATCH_RANGES["limit"], nullable=True), 1000),
    "min_length": (_Whole(*MATCH_RANGES["min_length"]), 1),
    "length_weight": (_Real(*MATCH_RANGES["length_weight"]), 0.5),
    "candidate_cap": (_Whole(*MATCH_RANGES["candidate_cap"], nullable=True), 10000),
    "left": (_Whole(*MATCH_RANGES["left"]), 3),
    "right": (_Whole(*MATCH_RANGES["right"]), 20),
})
_PROBES = _Record({
    "label": (_Text(nullable=True), None),
    "shift": (_Whole(*PROBE_SHIFT_RANGE), 0),
    "at": (_Text(choices=PROBE_POSITIONS), "all"),
    "taps": (_List(_Text(), MAX_LISTED, nullable=True), None),
    "control": (_Flag(), True),
    "baseline": (_Flag(), True),
    "curves": (_Flag(), False),
    "shown": (_Flag(), False),
    "open_probe": (_Text(nullable=True), None),
}, nullable=True)
#: the whole file (its version marker is checked first, apart: it says which schema applies)
WORKSPACE_SCHEMA = _Record({
    "recording": (_Record({"path": (_Text(MAX_PATH_CHARS, nullable=True), None),
                           "absolute": (_Text(MAX_PATH_CHARS, nullable=True), None)},
                          check=_recording_named), _REQUIRED),
    "window": (_Record({"start": (_Whole(0, MAX_POSITION), 0),
                        "width": (_Whole(*WINDOW_WIDTH_RANGE), 100)}), {"start": 0, "width": 100}),
    "panes": (_List(_PANE, MAX_PANES, name="pane {i}"), _REQUIRED),
    "active_pane": (_Whole(0, MAX_PANES), 0),
    "match": (_MATCH, None),
    "annotations": (_List(_Text(), MAX_LISTED), []),
    "aggregate_annotation": (_Text(nullable=True), None),
    "probes": (_PROBES, None),
}, check=_active_pane_exists, title="the workspace")


def _check(data: dict) -> dict:
    """``data`` read through ``WORKSPACE_SCHEMA`` (``_Invalid`` for the first problem)."""
    return WORKSPACE_SCHEMA.read(data, "")


def _state(values: dict, recording: str) -> WorkspaceState:
    """The ``WorkspaceState`` of checked values."""
    panes = [
        PaneState(tap=p["tap"], transform=p["transform"], threshold=p["threshold"], brush=p["brush"],
                  pad_left=p["pad_left"], pad_right=p["pad_right"], tolerance=p["tolerance"],
                  direction=p["direction"], added=tuple(map(tuple, p["added"])),
                  removed=tuple(map(tuple, p["removed"])))
        for p in values["panes"]
    ]
    match = MatchSettings() if values["match"] is None else MatchSettings(**values["match"])
    probes = values["probes"]
    if probes is not None:
        taps = probes["taps"]
        probes = ProbeState(**{**probes, "taps": None if taps is None else tuple(dict.fromkeys(taps))})
    return WorkspaceState(
        recording=recording,
        window_start=values["window"]["start"],
        window_width=values["window"]["width"],
        panes=panes,
        active_pane=values["active_pane"],
        match=match,
        annotations=list(values["annotations"]),
        aggregate_annotation=values["aggregate_annotation"],
        probes=probes,
    )


def _probes_to_dict(p: ProbeState) -> dict:
    return {
        "label": p.label, "shift": p.shift, "at": p.at, "taps": None if p.taps is None else list(p.taps),
        "control": p.control, "baseline": p.baseline, "curves": p.curves,
        "shown": p.shown, "open_probe": p.open_probe,
    }


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
    # the same schema as loading, so a saved file always loads (apart from a recording moved since)
    try:
        _check(data)
    except _Invalid as exc:
        raise WorkspaceFileError(f"{path}: {exc}") from None
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

    Only a regular file of at most ``MAX_FILE_BYTES`` is read (a FIFO or a device would block or never
    end); every entry is checked against ``WORKSPACE_SCHEMA``. The recording is looked up at the stored
    relative path (against the JSON file's folder), then at the absolute path; ``recording`` of the
    result is the absolute path of the regular file found.
    """
    path = Path(path)

    def fail(problem: str):
        raise WorkspaceFileError(f"{path}: {problem}")

    try:
        mode, size = (lambda st: (st.st_mode, st.st_size))(os.stat(path))
    except FileNotFoundError:
        fail("no such file")
    except (OSError, ValueError) as e:
        fail(f"cannot be read ({getattr(e, 'strerror', None) or e})")
    if stat.S_ISDIR(mode):
        fail("is a folder, not a workspace file")
    if not stat.S_ISREG(mode):
        fail("is not a regular file (a FIFO, a device or a socket), so it is not read as a workspace file")
    if size > MAX_FILE_BYTES:
        fail(f"is {size:,} bytes; a workspace file is a few kilobytes (at most {MAX_FILE_BYTES:,} bytes are "
             f"read), so this is not one")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        fail("not a workspace file: it is not JSON text (not UTF-8)")
    except OSError as e:
        fail(f"cannot be read ({e.strerror or e})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"not a workspace file: it is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})")
    except RecursionError:
        fail("not a workspace file: its JSON is nested too deeply")
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        fail(f"not a workspace file: it is not valid JSON ({e})")
    if not isinstance(data, dict) or MARKER not in data:
        fail(f"not an lstmviz workspace file (no {MARKER!r} entry)")
    version = data[MARKER]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        fail(f"the workspace version must be a whole number >= 1, got {_shown(version)}")
    if version > WORKSPACE_VERSION:
        fail(f"was saved by a newer lstmviz (workspace version {_shown(version)}; this version reads up to "
             f"{WORKSPACE_VERSION}); update lstmviz to open it")
    try:
        values = _check(data)
    except _Invalid as exc:
        fail(str(exc))
    tried = []
    found = None
    for candidate in (values["recording"]["path"], values["recording"]["absolute"]):
        if candidate is None:
            continue
        p = Path(candidate)
        if not p.is_absolute():
            p = path.parent / p
        p = Path(os.path.abspath(p))
        tried.append(str(p))
        try:
            if p.is_file():
                found = p
                break
        except (OSError, ValueError):  # a name too long for the file system, say
            continue
    if found is None:
        fail(f"the recording it names is missing (looked for {' and '.join(dict.fromkeys(tried))})")
    return _state(values, str(found))


# ---------------------------------------------------------------------------------------- against a recording

def restore_valid(state: WorkspaceState, recording) -> tuple[WorkspaceState, list[str]]:
    """``state`` with everything that does not fit ``recording`` dropped, and a sentence per thing dropped.

    Dropped: panes on a tap the recording lacks (or not over positions), brushes outside the corpus or
    across an item's end, added/removed units outside the tap, unknown annotations and annotations of
    whole items as tracks; a window past the end moves to 0. Of the
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
        elif pane.brush is not None and pane.brush[1] > _item_stop(recording, pane.brush[0]):
            problems.append(f"pane {i}: the brush [{pane.brush[0]}, {pane.brush[1]}) runs past the end of its "
                            f"item (position {_item_stop(recording, pane.brush[0])}); it was dropped")
            pane = replace(pane, brush=None)
        for what in ("added", "removed"):
            pairs = getattr(pane, what)
            bad = sorted({u for u, _ in pairs if not 0 <= u < info.units})
            if bad:
                problems.append(f"pane {i}: {what} units {_listed(bad, str)} are not in tap {pane.tap!r} "
                                f"(units 0-{info.units - 1}); they were dropped")
                pane = replace(pane, **{what: tuple(p for p in pairs if 0 <= p[0] < info.units)})
        panes.append(pane)
    active = state.active_pane if state.active_pane < len(panes) else 0
    annotations = []
    for name in dict.fromkeys(state.annotations):
        info = recording.annotations.get(name)
        if info is None:
            problems.append(f"the recording has no annotation {name!r}; its track was dropped")
        elif getattr(info, "level", "position") != "position":
            problems.append(f"the annotation {name!r} labels whole items, not positions, so it has no track "
                            f"under the tokens; it was dropped")
        else:
            annotations.append(name)
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


def _item_stop(recording, position: int) -> int:
    """The end of the item that holds ``position`` (a position of the corpus)."""
    return int(recording.item_range(int(recording.item_of(int(position))))[1])


def _listed(values, show=repr, most: int = 10) -> str:
    """The first ``most`` values, then how many more (a sentence stays readable for any file)."""
    values = list(values)
    text = ", ".join(show(v) for v in values[:most])
    return text + (f" and {len(values) - most:,} more" if len(values) > most else "")


def _quoted(names) -> str:
    return _listed(names)


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
