"""Saved workspaces: what the user was looking at, as a small versioned JSON file.

A workspace file (version 2) names every open recording by an id (relative to the JSON file when
possible, and absolute), the one the window shows, the window of positions, one entry per pane (the
recording it shows, tap, transform, threshold, brush, padding, tolerance, direction, units added and
removed by hand), the active pane, the visible annotation tracks and, under ``panels``, each panel's own
versioned part (``lstmviz.workspace.panel_state``: the Match panel's search settings, the Probes
panel's settings ...). Version 1 files (one recording; the match settings, the aggregated annotation
and the probe settings at the top level) are read through ``migrate_v1``.

``load_workspace`` reads only a regular file of a few megabytes, checks every entry's type and range
against one declarative schema (also applied by ``save_workspace``, so a saved file always loads) and
raises ``WorkspaceFileError`` with a sentence naming the entry for any problem; ``restore_valid`` /
``validate_against`` compare a loaded workspace with the recordings it names, so the GUI restores what
still fits and says what it dropped. The format is in docs/analysis.md.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from lstmviz.analysis.selection_types import DIRECTIONS
from lstmviz.errors import ExpectedError
from lstmviz.recording.tap_tracks import TRACK_PREFIX, tap_tracks
from lstmviz.workspace.panel_state import PanelStateFormat, panel_state_formats
from lstmviz.workspace.schema import (
    MAX_LISTED,
    MAX_PATH_CHARS,
    MAX_UNIT,
    REQUIRED,
    Anything,
    Brush,
    Invalid,
    ListOf,
    MapOf,
    Pair,
    Real,
    Record,
    Sign,
    Text,
    Whole,
    listed,
    show_value,
)
from lstmviz.workspace.state import (  # noqa: F401 - the saved types are read from here too
    FIRST_RECORDING,
    MAX_PANES,
    MAX_RECORDINGS,
    TRANSFORMS,
    PaneState,
    WorkspaceState,
)

WORKSPACE_VERSION = 2
MARKER = "lstmviz_workspace"
#: the largest position a file may name (exactly representable in JSON numbers everywhere)
MAX_POSITION = 2**53
#: a workspace file is a few kilobytes; anything much larger is not one (checked before reading it)
MAX_FILE_BYTES = 8 * 2**20
#: the pane's θ, off-padding and tolerance (the pane strip's boxes: θ 0-10,000 typed, more by dragging)
THRESHOLD_RANGE = (0.0, 1e6)
PADDING_RANGE = (0, 999)
#: positions the window shows at once (the window clamps to its own range)
WINDOW_WIDTH_RANGE = (1, 10_000)


class WorkspaceFileError(ExpectedError, ValueError):
    """A workspace file that cannot be loaded or a state that cannot be saved; the text says why."""


# ---------------------------------------------------------------------------------------- the schema

def _recording_named(values: dict, where: str) -> None:
    if values["path"] is None and values["absolute"] is None:
        raise Invalid(f"{where} has neither a 'path' nor an 'absolute' entry")


def _workspace_fits_together(values: dict, where: str) -> None:
    n = len(values["panes"])
    if values["active_pane"] >= max(1, n):
        raise Invalid(f"active_pane is {values['active_pane']} but the workspace has {n} pane(s)")
    ids = list(values["recordings"])
    if not ids:
        raise Invalid("recordings is empty; a workspace shows at least one recording")
    if values["shown"] is None:
        values["shown"] = ids[0]
    elif values["shown"] not in values["recordings"]:
        raise Invalid(f"shown is {values['shown']!r}, which is not one of the recordings ({listed(ids)})")
    for i, pane in enumerate(values["panes"]):
        if pane["recording"] is None:
            pane["recording"] = values["shown"]
        elif pane["recording"] not in values["recordings"]:
            raise Invalid(f"pane {i} recording is {pane['recording']!r}, which is not one of the recordings "
                          f"({listed(ids)})")


_UNIT_SIGNS = ListOf(Pair(Whole(0, MAX_UNIT), Sign(), ("unit", "sign")), MAX_LISTED)
_PANE = Record({
    "recording": (Text(nullable=True), None),  # null: the recording the window shows
    "tap": (Text(), REQUIRED),
    "transform": (Text(choices=TRANSFORMS), "tanh"),
    "threshold": (Real(*THRESHOLD_RANGE), 0.3),
    "brush": (Brush(Whole(0, MAX_POSITION), Whole(0, MAX_POSITION), ("start", "stop"), nullable=True), None),
    "pad_left": (Whole(*PADDING_RANGE), 1),
    "pad_right": (Whole(*PADDING_RANGE), 0),
    "tolerance": (Real(0.0, 1.0, low_open=True), 1.0),
    "direction": (Text(choices=DIRECTIONS), "positive"),
    "added": (_UNIT_SIGNS, []),
    "removed": (_UNIT_SIGNS, []),
})
_RECORDING = Record({"path": (Text(MAX_PATH_CHARS, nullable=True), None),
                     "absolute": (Text(MAX_PATH_CHARS, nullable=True), None)}, check=_recording_named)
#: the whole file (its version marker is checked first, apart: it says which schema applies); the
#: panels' parts are read by their formats
WORKSPACE_SCHEMA = Record({
    "recordings": (MapOf(_RECORDING, MAX_RECORDINGS), REQUIRED),
    "shown": (Text(nullable=True), None),
    "window": (Record({"start": (Whole(0, MAX_POSITION), 0),
                       "width": (Whole(*WINDOW_WIDTH_RANGE), 100)}), {"start": 0, "width": 100}),
    "panes": (ListOf(_PANE, MAX_PANES, name="pane {i}"), REQUIRED),
    "active_pane": (Whole(0, MAX_PANES), 0),
    "annotations": (ListOf(Text(), MAX_LISTED), []),
    "panels": (MapOf(Anything(), MAX_LISTED), {}),
}, check=_workspace_fits_together, title="the workspace")


def migrate_v1(data: dict) -> dict:
    """A version 1 file's JSON as version 2 has it (``Invalid`` for a v1 entry it cannot move).

    Version 1 held one recording (``"recording"``), and the Match panel's settings (``"match"``), the
    annotation it aggregates (``"aggregate_annotation"``) and the Probes panel's settings (``"probes"``)
    at the top level; they become the recording ``FIRST_RECORDING`` and the panels' parts "match" and
    "probes" (version 1 of each).
    """
    out = {k: v for k, v in data.items() if k not in ("recording", "match", "aggregate_annotation", "probes")}
    out[MARKER] = 2
    if "recording" not in data:
        raise Invalid("the workspace has no 'recording' entry")
    _RECORDING.read(data["recording"], "recording")  # named as the v1 file names it
    out["recordings"] = {FIRST_RECORDING: data["recording"]}
    out["shown"] = FIRST_RECORDING
    panels = {}
    match = data.get("match")
    if "aggregate_annotation" in data and (match is None or isinstance(match, dict)):
        match = {**(match or {}), "aggregate_annotation": data["aggregate_annotation"]}
    if match is not None:
        panels["match"] = {"version": 1, **match} if isinstance(match, dict) else match
    if data.get("probes") is not None:
        probes = data["probes"]
        panels["probes"] = {"version": 1, **probes} if isinstance(probes, dict) else probes
    if isinstance(data.get("panes"), list):
        out["panes"] = [{**p, "recording": FIRST_RECORDING} if isinstance(p, dict) else p for p in data["panes"]]
    out["panels"] = panels
    return out


def _check(data: dict, formats: Mapping[str, PanelStateFormat]) -> dict:
    """``data`` (version 2) read through ``WORKSPACE_SCHEMA`` and the panels' formats (``Invalid`` for
    the first problem). A part of a panel without a format is kept as it is, if it is a JSON object."""
    values = WORKSPACE_SCHEMA.read(data, "")
    panels = {}
    for name, section in values["panels"].items():
        fmt = formats.get(name)
        if fmt is not None:
            panels[name] = fmt.read(section, name)
        elif isinstance(section, dict):
            panels[name] = section
        else:
            raise Invalid(f"panels {name} must be a JSON object, got {show_value(section)}")
    values["panels"] = panels
    return values


def _state(values: dict, recordings: dict[str, str]) -> WorkspaceState:
    """The ``WorkspaceState`` of checked values (``recordings``: id -> the path found)."""
    panes = [
        PaneState(tap=p["tap"], transform=p["transform"], threshold=p["threshold"], brush=p["brush"],
                  pad_left=p["pad_left"], pad_right=p["pad_right"], tolerance=p["tolerance"],
                  direction=p["direction"], added=tuple(map(tuple, p["added"])),
                  removed=tuple(map(tuple, p["removed"])), recording=p["recording"])
        for p in values["panes"]
    ]
    return WorkspaceState(
        recordings=recordings,
        shown=values["shown"],
        window_start=values["window"]["start"],
        window_width=values["window"]["width"],
        panes=panes,
        active_pane=values["active_pane"],
        annotations=list(values["annotations"]),
        panels=values["panels"],
    )


def _state_to_dict(state: WorkspaceState, recordings: dict, formats: Mapping[str, PanelStateFormat]) -> dict:
    panels = {}
    for name, panel in state.panels.items():
        fmt = formats.get(name)
        if fmt is not None:
            panels[name] = fmt.write(panel)
        elif isinstance(panel, dict):  # a panel this lstmviz lacks: written back as it was read
            panels[name] = panel
        else:
            raise Invalid(f"no panel {name!r} is known to write its settings")
    return {
        MARKER: WORKSPACE_VERSION,
        "recordings": recordings,
        "shown": state.shown,
        "window": {"start": state.window_start, "width": state.window_width},
        "panes": [
            {
                "recording": p.recording, "tap": p.tap, "transform": p.transform, "threshold": p.threshold,
                "brush": None if p.brush is None else [p.brush[0], p.brush[1]],
                "pad_left": p.pad_left, "pad_right": p.pad_right, "tolerance": p.tolerance,
                "direction": p.direction,
                "added": [[u, s] for u, s in p.added], "removed": [[u, s] for u, s in p.removed],
            }
            for p in state.panes
        ],
        "active_pane": state.active_pane,
        "annotations": list(state.annotations),
        "panels": panels,
    }


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

def save_workspace(path, state: WorkspaceState, *, formats: Mapping[str, PanelStateFormat] | None = None) -> Path:
    """Write ``state`` to ``path`` as pretty JSON (temp file + rename) and return the path.

    Each recording is stored both relative to the JSON file's folder (when one exists, e.g. not on
    another Windows drive) and absolute. ``formats``: how panels' states are written (default: the
    registered ones). Raises ``WorkspaceFileError`` if ``state`` would not load back.
    """
    path = Path(path)
    formats = panel_state_formats() if formats is None else formats
    recordings = {}
    for rid, recording in state.recordings.items():
        absolute = Path(os.path.abspath(recording))
        try:
            relative = os.path.relpath(absolute, os.path.abspath(path.parent))
        except ValueError:
            relative = None
        recordings[rid] = {"path": relative, "absolute": str(absolute)}
    # the same schema as loading, so a saved file always loads (apart from a recording moved since)
    try:
        data = _plain(_state_to_dict(state, recordings, formats))
        _check(data, formats)
    except Invalid as exc:
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


def load_workspace(path, *, formats: Mapping[str, PanelStateFormat] | None = None) -> WorkspaceState:
    """Read a workspace file; ``WorkspaceFileError`` (naming the file) for anything wrong with it.

    Only a regular file of at most ``MAX_FILE_BYTES`` is read (a FIFO or a device would block or never
    end); a version 1 file is migrated (``migrate_v1``); every entry is checked against
    ``WORKSPACE_SCHEMA`` and each panel's part against its format (``formats``, default the registered
    ones). Each recording is looked up at the stored relative path (against the JSON file's folder),
    then at the absolute path; ``recordings`` of the result holds the absolute paths of the regular files
    found.
    """
    path = Path(path)
    formats = panel_state_formats() if formats is None else formats

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
        fail(f"the workspace version must be a whole number >= 1, got {show_value(version)}")
    if version > WORKSPACE_VERSION:
        fail(f"was saved by a newer lstmviz (workspace version {show_value(version)}; this version reads up to "
             f"{WORKSPACE_VERSION}); update lstmviz to open it")
    try:
        values = _check(migrate_v1(data) if version == 1 else data, formats)
    except Invalid as exc:
        fail(str(exc))
    found: dict[str, str] = {}
    for rid, named in values["recordings"].items():
        tried = []
        for candidate in (named["path"], named["absolute"]):
            if candidate is None:
                continue
            p = Path(candidate)
            if not p.is_absolute():
                p = path.parent / p
            p = Path(os.path.abspath(p))
            tried.append(str(p))
            try:
                if p.is_file():
                    found[rid] = str(p)
                    break
            except (OSError, ValueError):  # a name too long for the file system, say
                continue
        if rid not in found:
            which = "the recording it names" if len(values["recordings"]) == 1 else f"its recording {rid!r}"
            fail(f"{which} is missing (looked for {' and '.join(dict.fromkeys(tried))})")
    return _state(values, found)


# ---------------------------------------------------------------------------------------- against recordings

def restore_valid(state: WorkspaceState, recordings, *,
                  formats: Mapping[str, PanelStateFormat] | None = None) -> tuple[WorkspaceState, list[str]]:
    """``state`` with everything that does not fit its recordings dropped, and a sentence per thing dropped.

    ``recordings``: the open recording the window shows, or a mapping id -> open recording for every
    recording of ``state``. Dropped: panes on a recording that is not open, on a tap their recording
    lacks (or not over positions), brushes outside the corpus or across an item's end, added/removed
    units outside the tap, unknown annotations and annotations of whole items as tracks; a window past
    the end moves to 0. Each panel's state is fitted to the shown recording by its format (``fit``).
    """
    if not isinstance(recordings, Mapping):
        recordings = {state.shown: recordings}
    formats = panel_state_formats() if formats is None else formats
    problems: list[str] = []
    shown_recording = recordings[state.shown]
    panes = []
    for i, pane in enumerate(state.panes):
        recording = recordings.get(pane.recording)
        if recording is None:
            problems.append(f"pane {i}: its recording {pane.recording!r} is not open; the pane was dropped")
            continue
        n_positions = int(recording.n_positions)
        info = recording.taps.get(pane.tap)
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
                problems.append(f"pane {i}: {what} units {listed(bad, str)} are not in tap {pane.tap!r} "
                                f"(units 0-{info.units - 1}); they were dropped")
                pane = replace(pane, **{what: tuple(p for p in pairs if 0 <= p[0] < info.units)})
        panes.append(pane)
    active = state.active_pane if state.active_pane < len(panes) else 0
    annotations = []
    tracks = None  # the recording's taps shown as tracks, found when a saved name asks for one
    for name in dict.fromkeys(state.annotations):
        info = shown_recording.annotations.get(name)
        if info is None and name.startswith(TRACK_PREFIX):
            tracks = tap_tracks(shown_recording) if tracks is None else tracks
            info = tracks.get(name)
        if info is None:
            problems.append(f"the recording has no annotation {name!r}; its track was dropped")
        elif getattr(info, "level", "position") != "position":
            problems.append(f"the annotation {name!r} labels whole items, not positions, so it has no track "
                            f"under the tokens; it was dropped")
        else:
            annotations.append(name)
    window_start = state.window_start
    n_positions = int(shown_recording.n_positions)
    if window_start >= n_positions:
        problems.append(f"the window start {window_start} is past the corpus end ({n_positions} positions); "
                        f"it was moved to 0")
        window_start = 0
    panels = {}
    for name, panel in state.panels.items():
        fmt = formats.get(name)
        fitted = panel if fmt is None else fmt.fit(panel, shown_recording, problems)
        if fitted is not None:
            panels[name] = fitted
    restored = replace(state, panes=panes, active_pane=active, annotations=annotations, window_start=window_start,
                       panels=panels)
    return restored, problems


def _item_stop(recording, position: int) -> int:
    """The end of the item that holds ``position`` (a position of the corpus)."""
    return int(recording.item_range(int(recording.item_of(int(position))))[1])


def validate_against(state: WorkspaceState, recordings, **kwargs) -> list[str]:
    """A sentence for every part of ``state`` that does not fit its recordings (empty: all of it fits)."""
    return restore_valid(state, recordings, **kwargs)[1]
